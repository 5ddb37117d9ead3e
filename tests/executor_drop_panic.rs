//! A task whose future panics in its destructor as it finishes (dropped inside the executor's
//! poll): the panic is the task's, delivered to its handle like a panic of `poll`, the future
//! and the output are each dropped at most once, and the runtime goes on running tasks.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use structured_async::{Runtime, spawn_local, yield_now};

/// Ready on its first poll with an output that counts its drops; panics when dropped.
struct PanicsOnDrop {
    drops: Rc<Cell<u32>>,
    output: Option<Counted>,
}

struct Counted(Rc<Cell<u32>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

impl Future for PanicsOnDrop {
    type Output = Counted;

    fn poll(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Counted> {
        Poll::Ready(self.output.take().expect("polled once"))
    }
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
        panic!("the finished future's destructor");
    }
}

fn panicking(drops: &Rc<Cell<u32>>, outputs: &Rc<Cell<u32>>) -> PanicsOnDrop {
    PanicsOnDrop {
        drops: Rc::clone(drops),
        output: Some(Counted(Rc::clone(outputs))),
    }
}

fn message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload.downcast_ref::<&str>().copied().unwrap_or("?")
}

#[test]
fn the_destructor_panic_reaches_the_handle_and_the_runtime_goes_on() {
    let (drops, outputs) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let rt = Runtime::new();
    let joined = rt.block_on(async {
        let mut h = pin!(spawn_local(panicking(&drops, &outputs)));
        // Awaited before it runs, so the result wakes this task.
        poll_fn(|cx| {
            let polled = catch_unwind(AssertUnwindSafe(|| h.as_mut().poll(cx)));
            match polled {
                Ok(Poll::Pending) => Poll::Pending,
                Ok(Poll::Ready(_)) => Poll::Ready(Ok(())),
                Err(payload) => Poll::Ready(Err(message(&*payload).to_owned())),
            }
        })
        .await
    });
    assert_eq!(joined, Err("the finished future's destructor".to_owned()));
    // Dropped once each: the future by its destructor's one run, the output in its place.
    assert_eq!((drops.get(), outputs.get()), (1, 1));
    // The runtime keeps working: more tasks, on the same runtime.
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
fn a_detached_task_whose_destructor_panics_does_not_unwind_into_block_on() {
    let (drops, outputs) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    let rt = Runtime::new();
    let out = rt.block_on(async {
        drop(spawn_local(panicking(&drops, &outputs)));
        for _ in 0..3 {
            yield_now().await;
        }
        7
    });
    assert_eq!(out, 7);
    assert_eq!((drops.get(), outputs.get()), (1, 1));
    assert_eq!(rt.block_on(rt.spawn_local(async { 8 })), 8);
}

/// A waker whose wake panics (a broken executor's), to await a handle with.
struct PanicsOnWake;

impl Wake for PanicsOnWake {
    fn wake(self: Arc<Self>) {
        panic!("the awaiter's waker");
    }
}

/// What still unwinds out of a task's poll (here the awaiting handle's waker, woken by the
/// task's result) ends that task: `block_on` sees the panic, and the runtime goes on.
#[test]
fn a_panic_that_unwinds_out_of_a_task_poll_leaves_a_working_runtime() {
    let rt = Runtime::new();
    let h = rt.spawn_local(async { 5 });
    let mut h = Box::pin(h);
    let waker = Waker::from(Arc::new(PanicsOnWake));
    assert!(
        h.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    let ended = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async {
            for _ in 0..3 {
                yield_now().await;
            }
        })
    }));
    assert_eq!(
        message(&*ended.expect_err("the waker panicked")),
        "the awaiter's waker"
    );
    // The task ended with its output, which the handle still returns.
    assert!(h.is_finished());
    assert_eq!(rt.block_on(h), 5);
    assert_eq!(rt.block_on(rt.spawn_local(async { 6 })), 6);
}
