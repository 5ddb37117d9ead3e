//! What every thread may know of a task: its [`Header`] (scheduling state, reference count,
//! slab key, the executor's `Shared` part) and [`TaskRef`], a counted reference to it. The
//! header is the first part of the task's single allocation (`cell.rs`), so a waker, a queue
//! entry and a `JoinHandle` are each one pointer to the same block.

use super::cell::Vtable;
use super::queue::Shared;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering, fence};

/// The key of the root future of a `block_on` call, which lives on the caller's stack rather
/// than in the slab.
pub(crate) const ROOT: usize = usize::MAX;

/// The task is in a ready queue (local or remote) or about to be; further wakes are no-ops.
const SCHEDULED: u8 = 1;
/// The task finished or was cancelled; wakes are ignored for good.
const DONE: u8 = 2;

/// The part of a task that wakers on any thread read. Only `Sync` fields: the future and its
/// output, in the rest of the allocation, are never reached through a header on another
/// thread (rule 2 in `cell.rs`).
pub(crate) struct Header {
    /// Live [`TaskRef`]s, wakers included; the allocation is freed when it drops to zero.
    refs: AtomicUsize,
    state: AtomicU8,
    /// The task's slot in the slab, or [`ROOT`].
    pub(crate) key: usize,
    pub(crate) shared: Arc<Shared>,
    /// The functions that know the type of the future behind this header.
    pub(super) vtable: &'static Vtable,
}

impl Header {
    /// A header for the task in slot `key`, not yet scheduled, with one reference.
    pub(super) fn new(key: usize, shared: Arc<Shared>, vtable: &'static Vtable) -> Self {
        Header {
            refs: AtomicUsize::new(1),
            state: AtomicU8::new(0),
            key,
            shared,
            vtable,
        }
    }

    /// Marks the task scheduled; `true` when the caller must queue it (it was neither queued
    /// already nor done).
    #[must_use]
    #[inline]
    pub(crate) fn transition_to_scheduled(&self) -> bool {
        self.state.fetch_or(SCHEDULED, Ordering::AcqRel) & (SCHEDULED | DONE) == 0
    }

    /// Called by the executor right before it polls the task: wakes from now on queue it
    /// again. `false` when the task is done and must not be polled.
    #[must_use]
    #[inline]
    pub(crate) fn transition_to_running(&self) -> bool {
        self.state.fetch_and(!SCHEDULED, Ordering::AcqRel) & DONE == 0
    }

    /// The task finished or was cancelled: no wake will queue it again.
    #[inline]
    pub(crate) fn transition_to_done(&self) {
        self.state.fetch_or(DONE, Ordering::AcqRel);
    }

    /// A done root header that nothing else references gets a fresh life as the root of the
    /// next `block_on` (scheduled, not done). `false` if some waker or queue still holds it.
    pub(super) fn try_reset_root(&self) -> bool {
        // Acquire: the other holders' last uses happen before this reuse.
        if self.refs.load(Ordering::Acquire) != 1 {
            return false;
        }
        self.state.store(SCHEDULED, Ordering::Release);
        true
    }
}

/// A counted reference to a task's header, as a waker, a ready-queue entry or a `JoinHandle`
/// holds it. Cloning it bumps the count; dropping the last one frees the task's allocation.
pub(crate) struct TaskRef {
    ptr: NonNull<Header>,
}

// SAFETY: a `TaskRef` gives access to the `Header` only, whose fields are `Sync` (atomics,
// `Arc<Shared>`, a `'static` vtable). The one other thing it can do from any thread is free
// the allocation when it holds the last reference, and by rule 2 in `cell.rs` the future and
// the output are gone by then, so that drops only `Send` data.
unsafe impl Send for TaskRef {}
// SAFETY: as for `Send`: `&TaskRef` reaches nothing but the `Sync` header.
unsafe impl Sync for TaskRef {}

impl TaskRef {
    /// Takes over one reference counted in the header at `ptr`.
    ///
    /// # Safety
    /// `ptr` points to a live header of a task allocation (made in `cell.rs`), and the
    /// caller owns one of its counted references, which the new `TaskRef` now owns.
    #[inline]
    pub(super) unsafe fn from_raw(ptr: NonNull<Header>) -> Self {
        TaskRef { ptr }
    }

    /// The header's address, which names the task.
    #[inline]
    pub(super) fn as_ptr(&self) -> NonNull<Header> {
        self.ptr
    }

    /// Whether both name the same task.
    #[inline]
    pub(crate) fn ptr_eq(&self, other: &TaskRef) -> bool {
        self.ptr == other.ptr
    }

    /// Counts one more reference to the header at `ptr`.
    ///
    /// # Safety
    /// `ptr` points to a live task header (some reference to it is held for the whole call).
    #[inline]
    pub(super) unsafe fn increment(ptr: NonNull<Header>) {
        // SAFETY: the caller guarantees the header is alive.
        let header = unsafe { ptr.as_ref() };
        // Relaxed, as in `Arc::clone`: the new reference is made from an existing one, so the
        // count cannot reach zero meanwhile.
        let old = header.refs.fetch_add(1, Ordering::Relaxed);
        // A count near overflow means references are leaked in a loop; stop before it wraps
        // (as `Arc` does) rather than free a live task later.
        if old > isize::MAX as usize {
            std::process::abort();
        }
    }
}

impl std::ops::Deref for TaskRef {
    type Target = Header;

    #[inline]
    fn deref(&self) -> &Header {
        // SAFETY: we own a counted reference, so the allocation (and its header) is alive.
        unsafe { self.ptr.as_ref() }
    }
}

impl Clone for TaskRef {
    #[inline]
    fn clone(&self) -> Self {
        // SAFETY: `self` keeps the header alive during the call, and the count incremented
        // here is the one the new `TaskRef` owns.
        unsafe {
            TaskRef::increment(self.ptr);
            TaskRef::from_raw(self.ptr)
        }
    }
}

impl Drop for TaskRef {
    #[inline]
    fn drop(&mut self) {
        // Release, then Acquire before freeing, as in `Arc::drop`: every use of the task
        // through other references happens before the free.
        if self.refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        let dealloc = self.vtable.dealloc;
        // SAFETY: this was the last reference, so nothing else can reach the allocation; the
        // vtable's `dealloc` is the one made for this allocation's type (`cell.rs`).
        unsafe { dealloc(self.ptr) }
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
pub struct Runnable(pub(crate) TaskRef);

impl std::fmt::Debug for Runnable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runnable")
            .field("key", &self.0.key)
            .finish()
    }
}
