//! Wakers. A task's waker is a counted reference to its [`Header`] (one pointer into the
//! task's allocation): cloning it bumps the count, waking it pushes the header onto a queue
//! whose capacity is reused, so neither allocates. [`flag_waker`] is a waker for executors
//! with no heap at all: it sets a `'static` flag.

use super::context;
use super::task::{Header, TaskRef};
use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{RawWaker, RawWakerVTable, Waker};

impl TaskRef {
    /// Queues the task unless it is queued already or done (invariant 3).
    #[inline]
    pub(crate) fn wake_by_ref(&self) {
        if self.transition_to_scheduled() {
            enqueue(self.clone());
        }
    }

    /// As [`TaskRef::wake_by_ref`], consuming this reference.
    #[inline]
    pub(crate) fn wake(self) {
        if self.transition_to_scheduled() {
            enqueue(self);
        }
    }

    /// A waker for this task that borrows this reference instead of counting its own: it
    /// costs no atomic operation, and its clones count theirs as usual.
    #[inline]
    pub(crate) fn waker_ref(&self) -> WakerRef<'_> {
        let raw = RawWaker::new(self.as_ptr().as_ptr().cast_const().cast(), &TASK_VTABLE);
        WakerRef {
            // SAFETY: `TASK_VTABLE` honours the `RawWaker` contract for a data pointer to a
            // live task header: clone counts a new reference, wake-by-value and drop give one
            // back, all through `TaskRef`, which is `Send + Sync`. This waker owns no
            // reference: it is never dropped (`ManuallyDrop`), only lent out as `&Waker`
            // while `self` keeps the header alive, and a `&Waker` cannot be woken by value
            // (that takes a `Waker`, which only `clone` makes, counting its own reference).
            waker: ManuallyDrop::new(unsafe { Waker::from_raw(raw) }),
            _task: std::marker::PhantomData,
        }
    }
}

/// A waker borrowed from a [`TaskRef`] (see [`TaskRef::waker_ref`]).
pub(crate) struct WakerRef<'a> {
    waker: ManuallyDrop<Waker>,
    _task: std::marker::PhantomData<&'a TaskRef>,
}

impl std::ops::Deref for WakerRef<'_> {
    type Target = Waker;

    fn deref(&self) -> &Waker {
        &self.waker
    }
}

// A `static`, so that every task waker points at one vtable and `will_wake` recognises
// clones of one waker.
static TASK_VTABLE: RawWakerVTable =
    RawWakerVTable::new(task_clone, task_wake, task_wake_by_ref, task_drop);

/// The header a task waker's data pointer names.
fn header_ptr(data: *const ()) -> NonNull<Header> {
    // Task wakers are only made from a `NonNull<Header>` (`waker_ref`, `task_clone`).
    NonNull::new(data.cast_mut().cast()).expect("a task waker names a header")
}

fn task_clone(data: *const ()) -> RawWaker {
    // SAFETY: the waker being cloned keeps the header alive (it owns or borrows a counted
    // reference); the count added here belongs to the new waker.
    unsafe { TaskRef::increment(header_ptr(data)) };
    RawWaker::new(data, &TASK_VTABLE)
}

fn task_wake(data: *const ()) {
    // SAFETY: waking by value consumes a waker that owns one counted reference (only
    // `task_clone` makes owning wakers; a `waker_ref` is never woken by value, see there).
    unsafe { TaskRef::from_raw(header_ptr(data)) }.wake();
}

fn task_wake_by_ref(data: *const ()) {
    // SAFETY: the waker keeps the header alive for this call; `ManuallyDrop` leaves its count
    // untouched.
    let task = ManuallyDrop::new(unsafe { TaskRef::from_raw(header_ptr(data)) });
    task.wake_by_ref();
}

fn task_drop(data: *const ()) {
    // SAFETY: the waker dropped owned one counted reference (see `task_wake`).
    drop(unsafe { TaskRef::from_raw(header_ptr(data)) });
}

/// Puts a header that was just marked scheduled on a ready queue: the local one when the wake
/// happens on the executor's thread while it runs, the remote one (plus an unpark) otherwise.
fn enqueue(task: TaskRef) {
    let task = match context::push_local(task) {
        Ok(()) => return,
        Err(task) => task,
    };
    // Keep `Shared` alive on our own until the push returns: the task may be the last thing
    // holding it, and is dropped (if refused) before `shared` is.
    let shared = Arc::clone(&task.shared);
    let _refused = shared.push_wake(task);
}

/// A waker that sets `flag` when woken, from any thread, and never allocates (not even when
/// created or cloned). For executors that keep one ready flag per task in static memory.
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use structured_async::executor::flag_waker;
///
/// static READY: AtomicBool = AtomicBool::new(false);
/// let waker = flag_waker(&READY);
/// std::thread::spawn(move || waker.wake()).join().unwrap();
/// assert!(READY.load(Ordering::Acquire));
/// ```
pub fn flag_waker(flag: &'static AtomicBool) -> Waker {
    let raw = RawWaker::new(std::ptr::from_ref(flag).cast(), &FLAG_VTABLE);
    // SAFETY: `Waker::from_raw` asks that the vtable functions honour the `RawWaker` contract
    // and be safe to call from any thread. The data pointer is a `&'static AtomicBool`, valid
    // for the rest of the program and `Sync`; clone copies the pointer, wake stores to the
    // atomic, drop does nothing, so every function is thread-safe and none frees anything.
    unsafe { Waker::from_raw(raw) }
}

// A `static`, not a `const`: every waker must point at the same vtable, or `will_wake` would
// tell clones of one waker apart (a `const` may be instantiated at several addresses).
static FLAG_VTABLE: RawWakerVTable =
    RawWakerVTable::new(flag_clone, flag_wake, flag_wake, flag_drop);

fn flag_clone(data: *const ()) -> RawWaker {
    RawWaker::new(data, &FLAG_VTABLE)
}

fn flag_wake(data: *const ()) {
    // SAFETY: every `RawWaker` with `FLAG_VTABLE` was made by `flag_waker` or `flag_clone`
    // from a `&'static AtomicBool`, so `data` points to a live `AtomicBool` forever.
    let flag = unsafe { &*data.cast::<AtomicBool>() };
    flag.store(true, Ordering::Release);
}

fn flag_drop(_data: *const ()) {}
