//! [`JoinHandle`]: await a spawned task's output, or cancel it.

use super::cell::{self, JoinSlot, Joined};
use super::context;
use super::core::Core;
use super::task::TaskRef;
use super::traits::{AsyncCancel, Cancel};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::rc::Weak;
use std::task::{Context, Poll};

/// The handle of a task started with [`spawn_local`](super::spawn_local): await it for the
/// task's output.
///
/// - If the task panicked (in its `poll`, or in the destructor of its future, which the
///   runtime runs before it hands the output over, and also when the task is cancelled),
///   awaiting the handle resumes that panic (the runtime itself keeps running its other
///   tasks).
/// - Dropping the handle *detaches* the task, as in tokio: it keeps running and its output is
///   dropped. Use [`JoinHandle::abort`] (or [`Cancel`]) to stop it. A detached task that
///   panics, in its `poll` or in a destructor, ends quietly (the panic hook reports it).
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
    /// A counted reference to the task, whose allocation holds the join slot.
    task: TaskRef,
    /// Also what makes the handle `!Send`, as the join slot requires (rule 4 in `cell.rs`).
    core: Weak<Core>,
    _output: PhantomData<fn() -> T>,
}

impl<T> JoinHandle<T> {
    /// The handle of `task`.
    ///
    /// # Safety
    /// `task` was allocated for a future whose output is `T`, on the executor `core` of this
    /// thread, and no other handle exists for it.
    pub(crate) unsafe fn new(task: TaskRef, core: Weak<Core>) -> Self {
        JoinHandle {
            task,
            core,
            _output: PhantomData,
        }
    }

    fn slot(&self) -> &JoinSlot<T> {
        // SAFETY: `new`'s contract gives the output type; the handle is `!Send`, so this runs
        // on the executor's thread.
        unsafe { cell::join_slot(&self.task) }
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
        self.slot().is_finished()
    }

    /// Cancels the task: its future is dropped now (or, if the task aborts itself, as soon as
    /// its current poll returns). Awaiting the handle afterwards panics: with the panic of the
    /// future's destructor if it panicked (as in tokio, where that becomes the task's panic
    /// `JoinError`), else with a message that the task was cancelled. `abort` itself does not
    /// panic when the destructor does (only a waker that panics when woken, registered by a
    /// poll of this handle, would unwind out of it, after the future is dropped). Aborting a
    /// finished task does nothing.
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
            // Inside the task's runtime, as when it shuts down: the future's destructor may
            // spawn (or look up subsystems) even when the abort comes from outside `block_on`.
            let _enter = context::enter(&core);
            core.cancel(&self.task);
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    /// # Panics
    /// Resumes the task's panic if it panicked (in its `poll` or in its future's destructor,
    /// also when that destructor ran because the task was cancelled); panics if the task was
    /// cancelled (by [`JoinHandle::abort`] or because its runtime was dropped) or if the
    /// output was already returned.
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.slot().poll_join(cx.waker()) {
            Joined::Pending => Poll::Pending,
            Joined::Ready(Ok(output)) => Poll::Ready(output),
            Joined::Ready(Err(payload)) => std::panic::resume_unwind(payload),
            Joined::Taken => panic!("JoinHandle polled again after it returned the output"),
            Joined::Cancelled => {
                panic!("the task of this JoinHandle was cancelled before it finished")
            }
        }
    }
}

/// Dropping the handle detaches the task; an output it already produced is dropped here. A
/// panic of that output's destructor does not unwind out of the handle's drop (as in tokio:
/// the panic hook reports it, and nobody asked for the output).
impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.slot().detach();
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
