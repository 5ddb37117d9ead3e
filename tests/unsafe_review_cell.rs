//! Second-look review of the task cell (`runtime/src/executor/cell.rs`): what its rules rely on
//! that no other test pins down, and the paths where a destructor panics. Run under Miri too:
//! `cargo +nightly miri test --test unsafe_review_cell`.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use structured_async::{JoinHandle, Runtime, yield_now};

/// Panics when dropped, counting the drop first.
struct Bomb(Rc<Cell<usize>>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        panic!("destructor panics on purpose");
    }
}

/// `IsSend::<T>::SEND` is true exactly when `T: Send` (the inherent constant wins when it
/// applies; otherwise the trait's default does).
struct IsSend<T>(PhantomData<T>);
trait NotSend {
    const SEND: bool = false;
}
impl<T> NotSend for IsSend<T> {}
impl<T: Send> IsSend<T> {
    const SEND: bool = true;
}

/// As [`IsSend`], for `Sync`.
struct IsSync<T>(PhantomData<T>);
trait NotSync {
    const SYNC: bool = false;
}
impl<T> NotSync for IsSync<T> {}
impl<T: Sync> IsSync<T> {
    const SYNC: bool = true;
}

// Rule 4 of the cell (the join slot's `RefCell`, and a `!Send` output, are touched on the
// executor's thread only) holds because a `JoinHandle` never leaves that thread, even for a
// `Send` output. Checked when this file compiles; the probe itself tells `Send` from not
// (known types first).
const _: () = {
    assert!(IsSend::<u32>::SEND && IsSync::<u32>::SYNC);
    assert!(!IsSend::<Rc<u32>>::SEND && !IsSync::<Cell<u32>>::SYNC);
    assert!(!IsSend::<JoinHandle<u32>>::SEND);
    assert!(!IsSync::<JoinHandle<u32>>::SYNC);
    assert!(!IsSend::<JoinHandle<Rc<u32>>>::SEND);
};

/// Aborting a task whose future panics in its destructor: the panic comes out of `abort`,
/// but the task is still over for its handle and whoever awaits it (it used to stay
/// "running" forever, so the awaiting task was never woken).
#[test]
fn an_abort_whose_destructor_panics_still_tells_the_handle_and_its_awaiter() {
    let rt = Runtime::new();
    let bomb_drops = Rc::new(Cell::new(0));
    let bomb = Bomb(Rc::clone(&bomb_drops));
    let target = Rc::new(RefCell::new(rt.spawn_local(async move {
        let _armed = bomb;
        std::future::pending::<()>().await
    })));
    let awaited = Rc::clone(&target);
    // Awaits the target's handle, reporting how the await ended instead of unwinding.
    let awaiter = rt.spawn_local(poll_fn(move |cx| {
        let polled = catch_unwind(AssertUnwindSafe(|| {
            Pin::new(&mut *awaited.borrow_mut()).poll(cx)
        }));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(())) => Poll::Ready("finished"),
            Err(_) => Poll::Ready("cancelled"),
        }
    }));
    rt.block_on(async {
        // Both tasks run once: the awaiter's waker now waits in the target's join slot.
        yield_now().await;
        assert!(!awaiter.is_finished());
        let unwound = catch_unwind(AssertUnwindSafe(|| target.borrow().abort()));
        assert!(
            unwound.is_err(),
            "the destructor's panic comes out of abort"
        );
        assert_eq!(bomb_drops.get(), 1);
        assert!(
            target.borrow().is_finished(),
            "an aborted task is finished for its handle"
        );
        for _ in 0..4 {
            if awaiter.is_finished() {
                break;
            }
            yield_now().await;
        }
    });
    assert!(awaiter.is_finished(), "the awaiting task was woken");
    assert_eq!(rt.block_on(awaiter), "cancelled");
    drop(rt);
    assert_eq!(bomb_drops.get(), 1, "the future was dropped once");
}

/// A task's destructor that panics while the runtime is dropped: the panic comes out of the
/// drop, but the runtime is gone all the same: other threads' spawns are refused (it used to
/// stay open, taking spawned futures that nothing would ever run or drop), and the other
/// tasks' futures are dropped.
#[test]
fn a_runtime_whose_task_destructor_panics_still_shuts_down() {
    let rt = Runtime::new();
    let handle = rt.handle();
    let bomb_drops = Rc::new(Cell::new(0));
    let bomb = Bomb(Rc::clone(&bomb_drops));
    let other = Rc::new(());
    let held = Rc::clone(&other);
    let _first = rt.spawn_local(async move {
        let _armed = bomb;
        std::future::pending::<()>().await
    });
    let _second = rt.spawn_local(async move {
        let _held = held;
        std::future::pending::<()>().await
    });
    rt.block_on(yield_now());
    let unwound = catch_unwind(AssertUnwindSafe(|| drop(rt)));
    assert!(
        unwound.is_err(),
        "the destructor's panic comes out of the drop"
    );
    assert_eq!(bomb_drops.get(), 1);
    assert_eq!(Rc::strong_count(&other), 1, "the other task was dropped");
    let spawned = std::thread::spawn(move || handle.spawn(async {}).is_err());
    assert!(spawned.join().unwrap(), "a dropped runtime refuses spawns");
}
