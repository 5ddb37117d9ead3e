//! A spawned task: a header shared with its wakers (allocated once, at spawn) and the boxed
//! future stored in the executor's slab, wrapped so that its output or panic reaches the
//! [`JoinHandle`](super::JoinHandle).

use super::queue::Shared;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, Waker};

/// The key of the root future of a `block_on` call, which lives on the caller's stack rather
/// than in the slab.
pub(crate) const ROOT: usize = usize::MAX;

/// The task is in a ready queue (local or remote) or about to be; further wakes are no-ops.
const SCHEDULED: u8 = 1;
/// The task finished or was cancelled; wakes are ignored for good.
const DONE: u8 = 2;

/// What wakers of one task share with the executor. Reference-counted, so cloning or waking a
/// waker never allocates.
pub(crate) struct Header {
    /// The task's slot in the slab, or [`ROOT`].
    pub(crate) key: usize,
    state: AtomicU8,
    pub(crate) shared: Arc<Shared>,
}

impl Header {
    /// A header for the task in slot `key`, not yet scheduled.
    pub(crate) fn new(key: usize, shared: Arc<Shared>) -> Self {
        Header {
            key,
            state: AtomicU8::new(0),
            shared,
        }
    }

    /// Marks the task scheduled; `true` when the caller must queue it (it was neither queued
    /// already nor done).
    #[must_use]
    pub(crate) fn transition_to_scheduled(&self) -> bool {
        self.state.fetch_or(SCHEDULED, Ordering::AcqRel) & (SCHEDULED | DONE) == 0
    }

    /// Called by the executor right before it polls the task: wakes from now on queue it
    /// again. `false` when the task is done and must not be polled.
    #[must_use]
    pub(crate) fn transition_to_running(&self) -> bool {
        self.state.fetch_and(!SCHEDULED, Ordering::AcqRel) & DONE == 0
    }

    /// The task finished or was cancelled: no wake will queue it again.
    pub(crate) fn transition_to_done(&self) {
        self.state.fetch_or(DONE, Ordering::AcqRel);
    }
}

/// Where a task's result goes; shared between the task and its `JoinHandle`.
pub(crate) struct JoinCell<T> {
    pub(crate) state: RefCell<JoinState<T>>,
}

/// The life of a task as its `JoinHandle` sees it.
pub(crate) enum JoinState<T> {
    /// Still running; the waker of whoever awaits the handle.
    Running(Option<Waker>),
    /// Finished with its output, or with the payload of its panic.
    Finished(std::thread::Result<T>),
    /// The output was handed out.
    Taken,
    /// Dropped before it finished.
    Cancelled,
}

impl<T> JoinCell<T> {
    pub(crate) fn new() -> Self {
        JoinCell {
            state: RefCell::new(JoinState::Running(None)),
        }
    }

    /// Stores the task's result and wakes the awaiting handle, if any.
    fn finish(&self, result: std::thread::Result<T>) {
        let previous = self.state.replace(JoinState::Finished(result));
        if let JoinState::Running(Some(waker)) = previous {
            waker.wake();
        }
    }
}

/// Marks the task cancelled if it is dropped before it finished.
struct Completion<T>(Rc<JoinCell<T>>);

impl<T> Drop for Completion<T> {
    fn drop(&mut self) {
        let mut state = self.0.state.borrow_mut();
        if let JoinState::Running(waker) = &mut *state {
            let waker = waker.take();
            *state = JoinState::Cancelled;
            drop(state);
            if let Some(waker) = waker {
                waker.wake();
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A spawned future as the slab stores it: runs it, catches its panic, delivers the result.
    pub(crate) struct TaskFuture<F: Future> {
        #[pin]
        future: F,
        completion: Completion<F::Output>,
    }
}

impl<F: Future> TaskFuture<F> {
    pub(crate) fn new(future: F, cell: Rc<JoinCell<F::Output>>) -> Self {
        TaskFuture {
            future,
            completion: Completion(cell),
        }
    }
}

impl<F: Future> Future for TaskFuture<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        let future = this.future;
        // A panic is delivered to the JoinHandle instead of unwinding through the executor;
        // the future is never polled again after it panicked (the task is done either way).
        let result = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(output)) => Ok(output),
            Err(payload) => Err(payload),
        };
        this.completion.0.finish(result);
        Poll::Ready(())
    }
}

/// A task that is ready to run, as [`Scheduler::next_task`](super::Scheduler::next_task) of the
/// default [`Runtime`](super::Runtime) hands it out; run it with
/// [`Executor::run`](super::Executor::run).
///
/// ```
/// use structured_async::executor::{Executor, Scheduler};
/// use structured_async::Runtime;
///
/// let mut rt = Runtime::new();
/// let handle = rt.spawn_local(async { 6 * 7 });
/// let runnable = rt.next_task().expect("a new task is ready");
/// assert!(rt.run(runnable).is_ready());
/// assert!(handle.is_finished());
/// ```
pub struct Runnable(pub(crate) Arc<Header>);

impl std::fmt::Debug for Runnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runnable")
            .field("key", &self.0.key)
            .finish()
    }
}
