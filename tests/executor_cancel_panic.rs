//! A task whose future panics in its destructor while it is cancelled (`abort`, `Cancel`, a
//! task aborting itself, the runtime dropped with the task still in it): the panic never
//! unwinds into whoever cancelled; it becomes the task's result, which awaiting the handle
//! resumes (as for a task that panicked while polled), the future is dropped exactly once,
//! and the runtime goes on running tasks. Without a handle to deliver it to (a detached task,
//! a task queued from another thread), the panic is swallowed after the panic hook reported
//! it, as tokio does.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll, Waker};

use structured_async::executor::{Cancel, Spawner};
use structured_async::{JoinHandle, Runtime, spawn_local, yield_now};

/// Never finishes; counts its drops and panics with `message` when dropped.
struct Bomb {
    drops: Rc<Cell<u32>>,
    message: &'static str,
}

impl Future for Bomb {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
        std::panic::panic_any(self.message);
    }
}

fn bomb(drops: &Rc<Cell<u32>>, message: &'static str) -> Bomb {
    Bomb {
        drops: Rc::clone(drops),
        message,
    }
}

fn message(payload: &(dyn std::any::Any + Send)) -> &'static str {
    payload.downcast_ref::<&str>().copied().unwrap_or("?")
}

/// Polls `handle` to its end: `Ok` with the output, `Err` with the message of the panic that
/// awaiting it resumed.
fn poll_join<T>(handle: &mut JoinHandle<T>, cx: &mut Context<'_>) -> Poll<Result<T, &'static str>> {
    match catch_unwind(AssertUnwindSafe(|| Pin::new(&mut *handle).poll(cx))) {
        Ok(Poll::Pending) => Poll::Pending,
        Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
        Err(payload) => Poll::Ready(Err(message(&*payload))),
    }
}

async fn joined<T>(mut handle: JoinHandle<T>) -> Result<T, &'static str> {
    poll_fn(|cx| poll_join(&mut handle, cx)).await
}

/// The runtime still runs new tasks, spawned and awaited, after what the test did.
fn still_runs(rt: &Runtime) {
    let sum = rt.block_on(async {
        let a = spawn_local(async {
            yield_now().await;
            40
        });
        let b = spawn_local(async { 2 });
        a.await + b.await
    });
    assert_eq!(sum, 42);
}

#[test]
fn abort_never_panics_and_the_handle_gets_the_destructor_panic() {
    let drops = Rc::new(Cell::new(0));
    let rt = Runtime::new();
    let joined = rt.block_on(async {
        let h = spawn_local(bomb(&drops, "dropped by abort"));
        yield_now().await;
        assert!(!h.is_finished(), "polled once, pending");
        let aborted = catch_unwind(AssertUnwindSafe(|| h.abort()));
        assert!(
            aborted.is_ok(),
            "the destructor's panic unwound out of abort"
        );
        assert_eq!(drops.get(), 1, "the future was dropped by the abort");
        assert!(h.is_finished());
        joined(h).await
    });
    assert_eq!(joined, Err("dropped by abort"));
    assert_eq!(drops.get(), 1, "dropped once");
    still_runs(&rt);
}

/// Another task already awaits the handle when the task is aborted: it is woken and its await
/// resumes the destructor's panic.
#[test]
fn a_task_awaiting_the_aborted_handle_gets_the_destructor_panic() {
    let drops = Rc::new(Cell::new(0));
    let rt = Runtime::new();
    let seen = rt.block_on(async {
        let h = Rc::new(RefCell::new(spawn_local(bomb(
            &drops,
            "aborted while awaited",
        ))));
        let watched = Rc::clone(&h);
        let watcher =
            spawn_local(
                async move { poll_fn(|cx| poll_join(&mut watched.borrow_mut(), cx)).await },
            );
        yield_now().await;
        assert!(!watcher.is_finished(), "the watcher waits for the bomb");
        let aborted = catch_unwind(AssertUnwindSafe(|| h.borrow().abort()));
        assert!(
            aborted.is_ok(),
            "the destructor's panic unwound out of abort"
        );
        watcher.await
    });
    assert_eq!(seen, Err("aborted while awaited"));
    assert_eq!(drops.get(), 1);
    still_runs(&rt);
}

/// A task that aborts itself is dropped right after its poll returns, by the executor: the
/// destructor's panic goes to the handle, not into `block_on`.
#[test]
fn a_task_that_aborts_itself_delivers_its_destructor_panic_to_its_handle() {
    let drops = Rc::new(Cell::new(0));
    let rt = Runtime::new();
    let joined = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            let own: Rc<RefCell<Option<JoinHandle<()>>>> = Rc::default();
            let me = Rc::clone(&own);
            let guard = bomb(&drops, "aborted itself");
            let h = spawn_local(async move {
                let _guard = guard;
                me.borrow().as_ref().expect("stored before it runs").abort();
                std::future::pending::<()>().await
            });
            *own.borrow_mut() = Some(h);
            yield_now().await;
            assert_eq!(drops.get(), 1, "dropped after its poll");
            let h = own.borrow_mut().take().expect("stored above");
            joined(h).await
        })
    }));
    let joined = joined.expect("the destructor's panic unwound into block_on");
    assert_eq!(joined, Err("aborted itself"));
    assert_eq!(drops.get(), 1);
    still_runs(&rt);
}

/// Cancelled through the `Cancel` trait from outside `block_on`, before it ever ran.
#[test]
fn cancel_from_outside_block_on_delivers_the_destructor_panic() {
    let drops = Rc::new(Cell::new(0));
    let rt = Runtime::new();
    let mut h = rt.spawn_local(bomb(&drops, "cancelled from outside"));
    let cancelled = catch_unwind(AssertUnwindSafe(|| Pin::new(&mut h).cancel()));
    assert!(
        cancelled.is_ok(),
        "the destructor's panic unwound out of cancel"
    );
    assert_eq!(drops.get(), 1);
    assert_eq!(rt.block_on(joined(h)), Err("cancelled from outside"));
    still_runs(&rt);
}

/// `Send`, for `Handle::spawn`: counts its drops and panics when dropped.
struct SendBomb(Arc<AtomicU32>);

impl Future for SendBomb {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for SendBomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
        panic!("queued from another thread");
    }
}

/// Dropping the runtime drops every task it holds, whatever their destructors do: a task with
/// a handle (which then resumes the panic), a detached one, one given to `Spawner::spawn`, one
/// another thread queued after the last `block_on`, one whose destructor spawns another such
/// task, and a quiet one. None of the panics leaves the runtime's drop.
#[test]
fn dropping_the_runtime_drops_every_task_and_panics_only_into_handles() {
    let drops = Rc::new(Cell::new(0));
    let remote = Arc::new(AtomicU32::new(0));
    let quiet = Rc::new(());
    let mut rt = Runtime::new();
    let mut h = rt.spawn_local(bomb(&drops, "with a handle"));
    drop(rt.spawn_local(bomb(&drops, "detached")));
    assert!(
        Spawner::spawn(&mut rt, Box::pin(bomb(&drops, "boxed"))).is_ok(),
        "the default runtime takes every task"
    );
    let held = Rc::clone(&quiet);
    drop(rt.spawn_local(async move {
        let _held = held;
        std::future::pending::<()>().await
    }));
    // Its destructor spawns one more bomb on the runtime being dropped, then panics.
    let d = Rc::clone(&drops);
    let spawner = rt.spawn_local(async move {
        struct SpawnsThenPanics(Rc<Cell<u32>>);
        impl Drop for SpawnsThenPanics {
            fn drop(&mut self) {
                drop(spawn_local(bomb(&self.0, "spawned during the drop")));
                self.0.set(self.0.get() + 1);
                panic!("spawned, then panicked");
            }
        }
        let _s = SpawnsThenPanics(d);
        std::future::pending::<()>().await
    });
    rt.block_on(yield_now());
    let handle = rt.handle();
    let r = Arc::clone(&remote);
    std::thread::spawn(move || handle.spawn(SendBomb(r)).expect("the runtime is alive"))
        .join()
        .expect("the spawning thread");
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
    assert!(
        dropped.is_ok(),
        "a destructor's panic unwound out of the runtime's drop"
    );
    assert_eq!(
        drops.get(),
        5,
        "each bomb dropped once, the one spawned in a drop too"
    );
    assert_eq!(
        remote.load(Ordering::Relaxed),
        1,
        "the queued task was dropped once"
    );
    assert_eq!(
        Rc::strong_count(&quiet),
        1,
        "the quiet task was dropped too"
    );
    let mut cx = Context::from_waker(Waker::noop());
    assert_eq!(
        poll_join(&mut h, &mut cx),
        Poll::Ready(Err("with a handle"))
    );
    let mut spawner = spawner;
    assert_eq!(
        poll_join(&mut spawner, &mut cx),
        Poll::Ready(Err("spawned, then panicked"))
    );
}

/// The free `block_on` drops its runtime, with the tasks it left, before it returns: their
/// destructors' panics do not replace its output.
#[test]
fn block_on_returns_its_output_though_a_leftover_task_panics_when_dropped() {
    let drops = Rc::new(Cell::new(0));
    let out = catch_unwind(AssertUnwindSafe(|| {
        structured_async::block_on(async {
            drop(spawn_local(bomb(&drops, "left behind")));
            yield_now().await;
            7
        })
    }));
    assert_eq!(out.ok(), Some(7));
    assert_eq!(drops.get(), 1);
}

/// An output whose destructor panics is dropped with the handle: the panic stays there (as in
/// tokio, the handle's owner did not ask for the output).
#[test]
fn dropping_a_handle_whose_output_panics_when_dropped_does_not_panic() {
    struct Output(Rc<Cell<u32>>);
    impl Drop for Output {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
            panic!("the output's destructor");
        }
    }
    let drops = Rc::new(Cell::new(0));
    let rt = Runtime::new();
    rt.block_on(async {
        let d = Rc::clone(&drops);
        let h = spawn_local(async move { Output(d) });
        yield_now().await;
        assert!(h.is_finished());
        assert!(catch_unwind(AssertUnwindSafe(move || drop(h))).is_ok());
        assert_eq!(drops.get(), 1, "the output was dropped with its handle");
    });
    still_runs(&rt);
}

/// A waker that panics when woken (a broken executor's), to await a handle with.
struct PanicsOnWake;

impl std::task::Wake for PanicsOnWake {
    fn wake(self: Arc<Self>) {
        panic!("the awaiter's waker");
    }
}

/// The runtime's drop wakes the handles awaiting its tasks; when those wakers panic, the
/// first panic leaves the drop, but only once every task was dropped (two of them aborted the
/// process before), and each handle still says its task was cancelled.
#[test]
fn panicking_awaiter_wakers_skip_no_task_when_the_runtime_drops() {
    let held = Rc::new(());
    let rt = Runtime::new();
    let waker = Waker::from(Arc::new(PanicsOnWake));
    let mut cx = Context::from_waker(&waker);
    let mut handles: Vec<JoinHandle<()>> = (0..2)
        .map(|_| {
            let held = Rc::clone(&held);
            rt.spawn_local(async move {
                let _held = held;
                std::future::pending::<()>().await
            })
        })
        .collect();
    for h in &mut handles {
        assert!(Pin::new(h).poll(&mut cx).is_pending());
    }
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(rt)));
    let payload = dropped.expect_err("the waker's panic left the runtime's drop");
    assert_eq!(message(&*payload), "the awaiter's waker");
    assert_eq!(Rc::strong_count(&held), 1, "both tasks were dropped");
    let mut cx = Context::from_waker(Waker::noop());
    for mut h in handles {
        let joined = poll_join(&mut h, &mut cx);
        assert!(matches!(joined, Poll::Ready(Err(m)) if m.contains("cancelled")));
    }
}
