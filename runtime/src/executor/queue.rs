//! The two ways a woken task gets back to the executor: the local ready queue, touched only by
//! the executor's own thread, and the remote queue that other threads push to before they
//! unpark the executor (invariants 3 and 4 in `executor/mod.rs`).

use super::task::TaskRef;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::thread::Thread;

/// A task other threads may hand to this executor (see `Handle::spawn`).
pub(crate) type SendTask = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The part of an executor that other threads can reach: wakers hold it through their task
/// header, so it outlives the executor when a waker does.
pub(crate) struct Shared {
    remote: Mutex<Remote>,
    /// Set (under the lock) whenever `remote` becomes non-empty, so the loop can check for
    /// remote work without taking the lock.
    pending: AtomicBool,
    /// The executor's thread, unparked after every remote push.
    thread: Thread,
    /// The loop is blocked in a subsystem's `park` rather than parking the thread.
    parked_in_subsystem: AtomicBool,
    /// Wakers that interrupt that blocking `park` (see `Subsystem::unpark_waker`).
    unpark_wakers: Vec<Waker>,
}

#[derive(Default)]
struct Remote {
    wakes: VecDeque<TaskRef>,
    spawned: VecDeque<SendTask>,
    /// The executor is gone: pushes are refused, so nothing keeps a header (and through it
    /// this `Shared`) alive in a cycle.
    closed: bool,
}

/// What the loop took out of the remote queue in one go.
#[derive(Default)]
pub(crate) struct RemoteBatch {
    pub(crate) wakes: VecDeque<TaskRef>,
    pub(crate) spawned: VecDeque<SendTask>,
}

impl Shared {
    /// State shared with wakers of an executor that runs on `thread`, whose blocking
    /// subsystems are interrupted by `unpark_wakers`.
    pub(crate) fn new(thread: Thread, unpark_wakers: Vec<Waker>) -> Self {
        Shared {
            remote: Mutex::new(Remote::default()),
            pending: AtomicBool::new(false),
            thread,
            parked_in_subsystem: AtomicBool::new(false),
            unpark_wakers,
        }
    }

    /// Wakes the executor after a push: unparks its thread and, if it blocks in a subsystem,
    /// interrupts that.
    fn notify(&self) {
        self.thread.unpark();
        // Pairs with `park_in_subsystem`: either the loop sees `pending` before it blocks, or
        // this sees `parked_in_subsystem` and interrupts the block (both sides are SeqCst).
        if self.parked_in_subsystem.load(Ordering::SeqCst) {
            self.unpark_wakers.iter().for_each(Waker::wake_by_ref);
        }
    }

    /// Runs `park` (a subsystem's blocking wait) unless other threads already queued work;
    /// `None` when it did not run.
    pub(crate) fn park_in_subsystem(&self, park: impl FnOnce() -> bool) -> Option<bool> {
        self.parked_in_subsystem.store(true, Ordering::SeqCst);
        let parked = (!self.pending.load(Ordering::SeqCst)).then(park);
        self.parked_in_subsystem.store(false, Ordering::SeqCst);
        parked
    }

    fn lock(&self) -> MutexGuard<'_, Remote> {
        // No user code runs under this lock, so a poisoned lock still holds consistent data.
        self.remote.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a wake from another thread and unparks the executor. Gives the header back when
    /// the executor is gone; the caller drops it after this call returns (dropping it here
    /// could free `self`).
    pub(crate) fn push_wake(&self, task: TaskRef) -> Result<(), TaskRef> {
        {
            let mut remote = self.lock();
            if remote.closed {
                return Err(task);
            }
            remote.wakes.push_back(task);
            self.pending.store(true, Ordering::SeqCst);
        }
        self.notify();
        Ok(())
    }

    /// Queues a task spawned from another thread and unparks the executor.
    pub(crate) fn push_spawn(&self, task: SendTask) -> Result<(), SendTask> {
        {
            let mut remote = self.lock();
            if remote.closed {
                return Err(task);
            }
            remote.spawned.push_back(task);
            self.pending.store(true, Ordering::SeqCst);
        }
        self.notify();
        Ok(())
    }

    /// Whether other threads queued something since the last [`Shared::take`].
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }

    /// Takes everything other threads queued, swapping in `spare` buffers so that steady-state
    /// wakes reuse capacity instead of allocating.
    pub(crate) fn take(&self, spare: &mut RemoteBatch) {
        let mut remote = self.lock();
        self.pending.store(false, Ordering::Relaxed);
        std::mem::swap(&mut remote.wakes, &mut spare.wakes);
        std::mem::swap(&mut remote.spawned, &mut spare.spawned);
    }

    /// Refuses all further pushes and returns what was still queued, for the caller to drop
    /// outside the lock.
    pub(crate) fn close(&self) -> RemoteBatch {
        let mut remote = self.lock();
        remote.closed = true;
        RemoteBatch {
            wakes: std::mem::take(&mut remote.wakes),
            spawned: std::mem::take(&mut remote.spawned),
        }
    }

    /// Whether the executor is gone.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }
}
