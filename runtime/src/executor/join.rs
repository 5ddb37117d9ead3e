//! [`JoinHandle`]: await a spawned task's output, or cancel it.

use super::core::Core;
use super::task::{Header, JoinCell, JoinState};
use super::traits::{AsyncCancel, Cancel};
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::task::{Context, Poll};

/// The handle of a task started with [`spawn_local`](super::spawn_local): await it for the
/// task's output.
///
/// - If the task panicked, awaiting the handle resumes that panic (the runtime itself keeps
///   running its other tasks).
/// - Dropping the handle *detaches* the task, as in tokio: it keeps running and its output is
///   dropped. Use [`JoinHandle::abort`] (or [`Cancel`]) to stop it.
///
/// ```
/// use structured_async::{block_on, spawn_local};
///
/// let sum = block_on(async {
///     let a = spawn_local(async { 20 });
///     let b = spawn_local(async { 22 });
///     a.await + b.await
/// });
/// assert_eq!(sum, 42);
/// ```
pub struct JoinHandle<T> {
    cell: Rc<JoinCell<T>>,
    header: Arc<Header>,
    core: Weak<Core>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(cell: Rc<JoinCell<T>>, header: Arc<Header>, core: Weak<Core>) -> Self {
        JoinHandle { cell, header, core }
    }

    /// Whether the task has finished (returned, panicked or was cancelled).
    ///
    /// ```
    /// use structured_async::{block_on, spawn_local, yield_now};
    ///
    /// block_on(async {
    ///     let h = spawn_local(async {});
    ///     assert!(!h.is_finished());
    ///     yield_now().await;
    ///     assert!(h.is_finished());
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        !matches!(*self.cell.state.borrow(), JoinState::Running(_))
    }

    /// Cancels the task: its future is dropped now (or, if the task aborts itself, as soon as
    /// its current poll returns). Awaiting the handle afterwards panics.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use structured_async::{block_on, spawn_local, yield_now};
    ///
    /// block_on(async {
    ///     let guard = Rc::new(());
    ///     let held = Rc::clone(&guard);
    ///     let h = spawn_local(async move {
    ///         let _held = held;
    ///         std::future::pending::<()>().await
    ///     });
    ///     yield_now().await;
    ///     h.abort();
    ///     assert_eq!(Rc::strong_count(&guard), 1, "the task's future was dropped");
    ///     assert!(h.is_finished());
    /// });
    /// ```
    pub fn abort(&self) {
        if let Some(core) = self.core.upgrade() {
            core.cancel(&self.header);
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    /// # Panics
    /// Resumes the task's panic if it panicked; panics if the task was cancelled (by
    /// [`JoinHandle::abort`] or because its runtime was dropped) or if the output was already
    /// returned.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut state = self.cell.state.borrow_mut();
        match std::mem::replace(&mut *state, JoinState::Taken) {
            JoinState::Running(waker) => {
                let waker = match waker {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                *state = JoinState::Running(Some(waker));
                Poll::Pending
            }
            JoinState::Finished(Ok(output)) => Poll::Ready(output),
            JoinState::Finished(Err(payload)) => {
                drop(state);
                std::panic::resume_unwind(payload)
            }
            JoinState::Taken => panic!("JoinHandle polled again after it returned the output"),
            JoinState::Cancelled => {
                *state = JoinState::Cancelled;
                panic!("the task of this JoinHandle was cancelled before it finished")
            }
        }
    }
}

/// Cancelling the handle cancels the task (see [`JoinHandle::abort`]).
impl<T> Cancel for JoinHandle<T> {
    fn cancel(self: Pin<&mut Self>) {
        self.abort();
    }
}

/// The default runtime drops a cancelled task synchronously, so the cleanup is done at once.
impl<T> AsyncCancel for JoinHandle<T> {
    fn poll_cancel(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        self.abort();
        Poll::Ready(())
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}
