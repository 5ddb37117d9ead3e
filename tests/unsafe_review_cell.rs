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

/// Aborting a task whose future panics in its destructor: the panic goes to the handle, not
/// out of `abort` (`tests/executor_cancel_panic.rs`), and the task is over for its handle and
/// whoever awaits it (it used to stay "running" forever, so the awaiting task was never
/// woken).
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
            unwound.is_ok(),
            "the destructor's panic goes to the handle, not out of abort"
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

/// A task's destructor that panics while the runtime is dropped: the panic goes to the task's
/// handle, not out of the drop (`tests/executor_cancel_panic.rs`), and the runtime is gone:
/// other threads' spawns are refused (it used to stay open, taking spawned futures that
/// nothing would ever run or drop), and the other tasks' futures are dropped.
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
        unwound.is_ok(),
        "the destructor's panic goes to the handle, not out of the drop"
    );
    assert_eq!(bomb_drops.get(), 1);
    assert_eq!(Rc::strong_count(&other), 1, "the other task was dropped");
    let spawned = std::thread::spawn(move || handle.spawn(async {}).is_err());
    assert!(spawned.join().unwrap(), "a dropped runtime refuses spawns");
}

/// In its destructor, a task's future wakes (and drops) a clone of its own waker taken
/// during its poll, and spawns a task: while the future is dropped in place (rule 3), the
/// wake touches only the header (the task is done: not queued, never polled again), and the
/// spawn goes into the task's own runtime, which runs it if it goes on and drops it unrun if
/// it shuts down. Also when the abort comes from outside `block_on` (the spawn used to panic
/// there, as no runtime was current while the future was dropped).
#[test]
fn a_destructor_that_wakes_its_own_task_and_spawns_on_abort_and_on_shutdown() {
    struct Reentrant {
        waker: RefCell<Option<std::task::Waker>>,
        ran: Rc<Cell<usize>>,
        spawned_alive: Rc<()>,
    }
    impl Drop for Reentrant {
        fn drop(&mut self) {
            if let Some(waker) = self.waker.borrow_mut().take() {
                waker.wake_by_ref();
                waker.wake();
            }
            let (ran, alive) = (Rc::clone(&self.ran), Rc::clone(&self.spawned_alive));
            drop(structured_async::spawn_local(async move {
                let _alive = alive;
                ran.set(ran.get() + 1);
            }));
        }
    }
    for (shutdown, abort_inside) in [(false, true), (false, false), (true, false)] {
        let rt = Runtime::new();
        let (ran, spawned_alive, polls) = (Rc::default(), Rc::new(()), Rc::new(Cell::new(0)));
        let guard = Reentrant {
            waker: RefCell::default(),
            ran: Rc::clone(&ran),
            spawned_alive: Rc::clone(&spawned_alive),
        };
        let p = Rc::clone(&polls);
        let handle = rt.spawn_local(async move {
            poll_fn(|cx| {
                p.set(p.get() + 1);
                *guard.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::<()>::Pending
            })
            .await
        });
        rt.block_on(yield_now());
        assert_eq!(polls.get(), 1);
        if shutdown {
            drop(rt);
            assert_eq!(ran.get(), 0, "a task spawned during shutdown is not run");
        } else {
            if !abort_inside {
                handle.abort();
            }
            rt.block_on(async {
                if abort_inside {
                    handle.abort();
                }
                for _ in 0..3 {
                    yield_now().await;
                }
            });
            assert_eq!(
                ran.get(),
                1,
                "a task spawned by an aborted task's destructor runs"
            );
            drop(rt);
        }
        assert_eq!(
            polls.get(),
            1,
            "woken in its destructor, never polled again"
        );
        assert_eq!(
            Rc::strong_count(&spawned_alive),
            1,
            "the spawned future was dropped"
        );
        assert!(handle.is_finished());
    }
}
