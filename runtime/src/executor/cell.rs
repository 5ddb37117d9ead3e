//! A spawned task is one heap allocation, a [`TaskCell`]: the [`Header`] that wakers share,
//! the join slot where the output waits for the `JoinHandle`, and the future itself. The
//! executor's slab owns the future through an [`OwnedTask`]; wakers, queue entries and the
//! `JoinHandle` hold counted [`TaskRef`]s. Functions that know the future's type sit in a
//! per-type [`Vtable`] the header points to.
//!
//! # Rules (cited as "rule N" where the unsafe code relies on them)
//!
//! 1. **Layout.** `TaskCell<F>` is `repr(C)`: a `Joinable<F::Output>` (itself `repr(C)`,
//!    header first) at offset 0, then the future. So a pointer to the header is a pointer to
//!    the `Joinable<T>` and to the `TaskCell<F>`; the `JoinHandle<T>` finds its join slot
//!    without knowing `F`. A header's vtable is always the one made for its cell's `F`.
//! 2. **Thread of the payload.** The future and the output are touched and dropped only on
//!    the executor's thread: the future through the slab's [`OwnedTask`] (one per task, made
//!    on that thread, `!Send`), the output by the poll that produced it or by the
//!    `JoinHandle` (`!Send`). Both are gone before the last reference can be dropped: the
//!    `OwnedTask` drops the future before it gives up its reference, and an output is kept
//!    only while the `JoinHandle` lives, whose drop takes it. So a [`TaskRef`] that drops the
//!    last reference on another thread frees only `Send` data (the header, an empty future
//!    slot, a join slot holding at most a `Waker`).
//! 3. **Pinning and exclusivity.** The future is reached only through `&mut OwnedTask`, which
//!    the executor takes out of its slab while it polls or drops it (invariant 1 of
//!    `executor/mod.rs`), so no two accesses overlap and a poll never nests in itself. The
//!    future never moves: it stays in the allocation until it is dropped in place.
//! 4. **Join slot.** Its `RefCell` is borrowed only on the executor's thread and never while
//!    user code that could reach the slot runs: wakers are woken and outputs dropped after
//!    the borrow ends; only the awaiter's waker is cloned under it (dropping the one it
//!    replaces), while that awaiter holds the one handle by `&mut`.

use super::queue::Shared;
use super::task::{Header, ROOT, TaskRef};
use std::any::Any;
use std::cell::{RefCell, UnsafeCell};
use std::future::Future;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// The functions that know a task's future type.
pub(crate) struct Vtable {
    /// Polls the future once (rule 3), delivering its output or panic to the join slot;
    /// `Ready` when it finished (or was already gone).
    poll: unsafe fn(NonNull<Header>, &mut Context<'_>) -> Poll<()>,
    /// Drops the future if it is still there and tells a waiting `JoinHandle` it was
    /// cancelled, or hands it the panic of the future's destructor (rules 2 and 3).
    drop_future: unsafe fn(NonNull<Header>),
    /// Frees the allocation once the last reference is gone (rule 2).
    pub(super) dealloc: unsafe fn(NonNull<Header>),
}

/// The header and the join slot: what a `JoinHandle<T>` reaches, whatever the future's type.
#[repr(C)]
struct Joinable<T> {
    header: Header,
    join: JoinSlot<T>,
}

/// One task's allocation (rule 1).
#[repr(C)]
struct TaskCell<F: Future> {
    head: Joinable<F::Output>,
    /// `None` once the future finished or was dropped, and for a `block_on` root.
    future: UnsafeCell<Option<F>>,
}

/// Where a task's result waits for its `JoinHandle` (rule 4).
pub(crate) struct JoinSlot<T> {
    state: RefCell<JoinState<T>>,
}

/// The life of a task as its `JoinHandle` sees it.
enum JoinState<T> {
    /// Still running; the waker of whoever awaits the handle.
    Running(Option<Waker>),
    /// Finished with its output, or with the payload of its panic.
    Finished(std::thread::Result<T>),
    /// The output was handed out.
    Taken,
    /// Dropped before it finished (and its destructor did not panic: a panic there is the
    /// task's, `Finished` with its payload).
    Cancelled,
    /// No handle (dropped, or a task spawned without one): an output is dropped at once.
    Detached,
}

/// The payload of a panic, as `catch_unwind` returns it.
type Payload = Box<dyn Any + Send + 'static>;

/// What [`JoinSlot::poll_join`] found.
pub(crate) enum Joined<T> {
    Pending,
    Ready(std::thread::Result<T>),
    Cancelled,
    Taken,
}

impl<T> JoinSlot<T> {
    fn new(detached: bool) -> Self {
        let state = if detached {
            JoinState::Detached
        } else {
            JoinState::Running(None)
        };
        JoinSlot {
            state: RefCell::new(state),
        }
    }

    /// Stores the task's result and wakes the awaiting handle; with no handle, drops it.
    fn finish(&self, result: std::thread::Result<T>) {
        let mut state = self.state.borrow_mut();
        if matches!(*state, JoinState::Detached) {
            drop(state);
            // Nobody takes it: dropped here, and a panic in that drop is the detached task's,
            // which the hook reported; it does not unwind into the executor.
            drop_quietly(result);
            return;
        }
        let previous = std::mem::replace(&mut *state, JoinState::Finished(result));
        drop(state);
        if let JoinState::Running(Some(waker)) = previous {
            waker.wake();
        }
    }

    /// The task's future was dropped before it finished; `panic` is the payload of its
    /// destructor's panic, if it panicked. That panic is the task's result, as one of its
    /// `poll` would be: the handle resumes it. With no handle it is dropped here, like a
    /// detached task's output (the panic hook has reported it).
    fn cancel(&self, panic: Option<Payload>) {
        let mut state = self.state.borrow_mut();
        let JoinState::Running(waker) = &mut *state else {
            // `Detached`: the other states exist only once the future is gone.
            drop(state);
            drop_quietly(panic);
            return;
        };
        let waker = waker.take();
        *state = match panic {
            Some(payload) => JoinState::Finished(Err(payload)),
            None => JoinState::Cancelled,
        };
        drop(state);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Whether the task returned, panicked or was cancelled.
    pub(crate) fn is_finished(&self) -> bool {
        !matches!(*self.state.borrow(), JoinState::Running(_))
    }

    /// Takes the result if there is one, else remembers `waker` for when there is.
    pub(crate) fn poll_join(&self, waker: &Waker) -> Joined<T> {
        let mut state = self.state.borrow_mut();
        match &mut *state {
            JoinState::Running(slot) => {
                match slot {
                    Some(w) => w.clone_from(waker),
                    None => *slot = Some(waker.clone()),
                }
                Joined::Pending
            }
            JoinState::Finished(_) => match std::mem::replace(&mut *state, JoinState::Taken) {
                JoinState::Finished(result) => Joined::Ready(result),
                _ => unreachable!("matched Finished above"),
            },
            JoinState::Cancelled => Joined::Cancelled,
            JoinState::Taken | JoinState::Detached => Joined::Taken,
        }
    }

    /// The handle is dropped: an output already there is dropped now (after the borrow), a
    /// later one as soon as it is produced. A panic in that drop stays here, as in tokio: the
    /// handle's owner gave up the output, and the panic hook has reported it.
    pub(crate) fn detach(&self) {
        let previous = self.state.replace(JoinState::Detached);
        drop_quietly(previous);
    }
}

/// Drops `value`, swallowing a panic of its destructor: for what no one can be handed (a
/// detached task's output or panic), after the panic hook reported it.
pub(crate) fn drop_quietly<T>(value: T) {
    drop(catch_unwind(AssertUnwindSafe(move || drop(value))));
}

/// The slab's ownership of a task's future (rules 2 and 3): polls it, and drops it when the
/// `OwnedTask` is dropped. Not `Send`, not `Clone`.
///
/// Dropping it never lets the future's destructor unwind: a panic there is caught and handed
/// to the `JoinHandle` (dropped when there is none). Only the waker of a handle awaiting the
/// task, woken once the future is gone, can still unwind out of the drop.
pub(crate) struct OwnedTask {
    task: TaskRef,
    _not_send: PhantomData<*const ()>,
}

impl OwnedTask {
    /// The task's header, as the ready queue and wakers name it.
    pub(crate) fn task(&self) -> &TaskRef {
        &self.task
    }

    /// Polls the future once; `Ready` when it finished. A panic of the future's `poll`, or of
    /// the drop of the finished future, is caught and delivered to the `JoinHandle` (or
    /// dropped when there is none, as is an output nobody can take, whose drop may panic
    /// too).
    pub(crate) fn poll(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let poll = self.task.vtable.poll;
        // SAFETY: the vtable belongs to this allocation (rule 1); we are the one `OwnedTask`,
        // on the executor's thread, and hold it by `&mut`, as rule 3 asks.
        unsafe { poll(self.task.as_ptr(), cx) }
    }
}

impl Drop for OwnedTask {
    fn drop(&mut self) {
        let drop_future = self.task.vtable.drop_future;
        // SAFETY: as in `poll`; after this the future is gone, as rule 2 asks before our
        // reference (the `task` field) is dropped.
        unsafe { drop_future(self.task.as_ptr()) }
    }
}

/// Allocates a task for `future` in slab slot `key`. With `detached`, no `JoinHandle` will
/// ever look at its output (it is dropped at once).
pub(crate) fn allocate<F>(future: F, key: usize, shared: Arc<Shared>, detached: bool) -> OwnedTask
where
    F: Future + 'static,
{
    let task = new_cell(Some(future), key, shared, detached);
    OwnedTask {
        task,
        _not_send: PhantomData,
    }
}

/// A header for the root future of a `block_on`, which is polled by `block_on` itself: no
/// future in the allocation, no join slot in use.
pub(crate) fn root(shared: Arc<Shared>) -> TaskRef {
    new_cell::<std::future::Pending<()>>(None, ROOT, shared, true)
}

fn new_cell<F: Future + 'static>(
    future: Option<F>,
    key: usize,
    shared: Arc<Shared>,
    detached: bool,
) -> TaskRef {
    let cell = Box::new(TaskCell {
        head: Joinable {
            header: Header::new(key, shared, &VtableOf::<F>::VTABLE),
            join: JoinSlot::new(detached),
        },
        future: UnsafeCell::new(future),
    });
    // Rule 1: the header is at offset 0 of the cell.
    let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
    // SAFETY: a fresh allocation whose header counts one reference, handed to this TaskRef.
    unsafe { TaskRef::from_raw(ptr) }
}

/// The join slot of a task whose output type is `T`.
///
/// # Safety
/// `task` must name a task allocated for a future whose `Output` is `T`, and the caller must
/// be on the executor's thread (rule 4): a `JoinHandle<T>`, made by the spawn that allocated
/// that task.
pub(crate) unsafe fn join_slot<T>(task: &TaskRef) -> &JoinSlot<T> {
    // SAFETY: by rule 1 and the caller's guarantee, the header begins a `Joinable<T>`, alive
    // while `task` holds its reference.
    unsafe { &task.as_ptr().cast::<Joinable<T>>().as_ref().join }
}

/// Monomorphises the [`Vtable`] for one future type.
struct VtableOf<F>(PhantomData<F>);

impl<F: Future + 'static> VtableOf<F> {
    const VTABLE: Vtable = Vtable {
        poll: poll::<F>,
        drop_future: drop_future::<F>,
        dealloc: dealloc::<F>,
    };
}

/// # Safety
/// `ptr` is the header of a live `TaskCell<F>`, and the caller is the task's `OwnedTask`
/// (rule 3).
unsafe fn poll<F: Future>(ptr: NonNull<Header>, cx: &mut Context<'_>) -> Poll<()> {
    // SAFETY: the caller's guarantee and rule 1.
    let cell = unsafe { ptr.cast::<TaskCell<F>>().as_ref() };
    // SAFETY: rule 3: the `OwnedTask` is the only path to the future and is held by `&mut`.
    let slot = unsafe { &mut *cell.future.get() };
    let Some(future) = slot.as_mut() else {
        return Poll::Ready(());
    };
    // SAFETY: rule 3: the future stays at this address until it is dropped in place below or
    // in `drop_future`.
    let future = unsafe { Pin::new_unchecked(future) };
    // A panic is delivered to the JoinHandle instead of unwinding through the executor; the
    // future is never polled again after it panicked (the task is done either way).
    let result = match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
        Ok(Poll::Pending) => return Poll::Pending,
        Ok(Poll::Ready(output)) => Ok(output),
        Err(payload) => Err(payload),
    };
    // The finished future is dropped in place before its result is published: a panic in its
    // destructor is the task's panic, delivered to the handle like one from `poll` (and the
    // task still ends here, its slab slot freed), instead of unwinding into the executor. An
    // assignment whose drop unwinds still writes the new value, so the slot is `None` either
    // way and the future is never dropped twice.
    let result = match catch_unwind(AssertUnwindSafe(|| *slot = None)) {
        Ok(()) => result,
        Err(payload) => {
            // The output (or the poll's panic) goes in its place; a panic in its own drop is
            // one more of the same task's, reported by the hook like the first.
            drop_quietly(result);
            Err(payload)
        }
    };
    cell.head.join.finish(result);
    Poll::Ready(())
}

/// # Safety
/// As for [`poll`].
unsafe fn drop_future<F: Future>(ptr: NonNull<Header>) {
    // SAFETY: the caller's guarantee and rule 1.
    let cell = unsafe { ptr.cast::<TaskCell<F>>().as_ref() };
    // SAFETY: rule 3, as in `poll`.
    let slot = unsafe { &mut *cell.future.get() };
    if slot.is_none() {
        return;
    }
    // Dropped in place, as in `poll`, and first: a panic in the destructor is caught and
    // becomes the task's result instead of unwinding into whoever cancelled (an `abort`, the
    // runtime's drop, the poll loop), and the slot is `None` either way (see `poll`), so the
    // future is gone before anything below can unwind (an awaiting handle's waker).
    let dropped = catch_unwind(AssertUnwindSafe(|| *slot = None));
    cell.head.join.cancel(dropped.err());
}

/// # Safety
/// `ptr` is the header of a `TaskCell<F>` whose last reference was just dropped.
unsafe fn dealloc<F: Future>(ptr: NonNull<Header>) {
    // SAFETY: the cell was made by `Box::new` in `new_cell` (rule 1: same address as its
    // header) and nothing references it any more. By rule 2 it holds no future and no output,
    // so dropping it here, on whatever thread, drops only `Send` data.
    drop(unsafe { Box::from_raw(ptr.cast::<TaskCell<F>>().as_ptr()) });
}
