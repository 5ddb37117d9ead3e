//! Pieces every workload shares: a minimal `block_on` for the executor-agnostic peers, the
//! two kinds of child, and a yield that any executor understands.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;

struct ThreadWaker {
    thread: Thread,
    woken: AtomicBool,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

/// Drives a future on this thread with a waker that sets a flag (and unparks): the cheapest
/// honest executor, used for the combinators that bring no executor of their own
/// (`FuturesUnordered`, moro, `LocalExecutor::run`).
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let flag = Arc::new(ThreadWaker {
        thread: std::thread::current(),
        woken: AtomicBool::new(false),
    });
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        while !flag.woken.swap(false, Ordering::AcqRel) {
            std::thread::park();
        }
    }
}

/// Returns `Pending` once, after waking its own task, then `Ready`: the cheapest future that
/// really suspends, understood by every executor.
#[derive(Debug, Default)]
pub struct YieldOnce {
    yielded: bool,
}

impl Future for YieldOnce {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            Poll::Ready(())
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Yields once to whatever executor runs the caller.
pub fn yield_once() -> YieldOnce {
    YieldOnce::default()
}

/// The child futures of the spawn + join workload.
pub trait ChildKind: 'static {
    /// The child's type: the same for every peer.
    type Fut: Future<Output = u64> + Send + 'static;
    /// Its label in the tables.
    const NAME: &'static str;
    /// The `i`-th child.
    fn make(i: u64) -> Self::Fut;
}

/// A child that is ready on its first poll.
pub struct Ready;

impl ChildKind for Ready {
    type Fut = std::future::Ready<u64>;
    const NAME: &'static str = "ready";
    fn make(i: u64) -> Self::Fut {
        std::future::ready(i)
    }
}

/// A child that pends once (waking itself) and then returns.
pub struct PendOnce;

/// A pend-once child with a nameable, unboxed type.
#[derive(Debug)]
pub struct PendOnceChild {
    value: u64,
    yielded: bool,
}

impl Future for PendOnceChild {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        if self.yielded {
            Poll::Ready(self.value)
        } else {
            self.yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl ChildKind for PendOnce {
    type Fut = PendOnceChild;
    const NAME: &'static str = "pend-once";
    fn make(i: u64) -> Self::Fut {
        PendOnceChild {
            value: i,
            yielded: false,
        }
    }
}
