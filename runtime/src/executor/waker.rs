//! Wakers. A task's waker is its reference-counted [`Header`]: cloning it bumps a count,
//! waking it pushes the header onto a queue whose capacity is reused, so neither allocates.
//! [`flag_waker`] is a waker for executors with no heap at all: it sets a `'static` flag.

use super::context;
use super::task::Header;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{RawWaker, RawWakerVTable, Wake, Waker};

impl Wake for Header {
    fn wake(self: Arc<Self>) {
        if self.transition_to_scheduled() {
            enqueue(self);
        }
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.transition_to_scheduled() {
            enqueue(Arc::clone(self));
        }
    }
}

/// Puts a header that was just marked scheduled on a ready queue: the local one when the wake
/// happens on the executor's thread while it runs, the remote one (plus an unpark) otherwise.
fn enqueue(header: Arc<Header>) {
    let header = match context::push_local(header) {
        Ok(()) => return,
        Err(header) => header,
    };
    // Keep `Shared` alive on our own until the push returns: the header may be the last thing
    // holding it, and is dropped (if refused) before `shared` is.
    let shared = Arc::clone(&header.shared);
    let _refused = shared.push_wake(header);
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
