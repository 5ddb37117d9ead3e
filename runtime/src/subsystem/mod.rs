//! Subsystems: event sources the poll loop knows about (timers, readiness, completion rings).
//!
//! A subsystem collects the wakers of the coroutines waiting on it and, when polled, wakes
//! exactly those whose event arrived. The loop polls it in proportion to its priority and its
//! number of waiters, never busy-polls one that has no waiters, and parks the thread in the one
//! that can block when nothing else is ready.

pub(crate) mod registry;
pub mod ring;

use std::rc::Rc;
use std::time::Instant;

/// The (first) subsystem of type `S` registered with the runtime running on this thread; `None`
/// outside a runtime or when no such subsystem is registered.
///
/// Futures use it to find the subsystem they register their waker with (`sleep` finds the
/// timers this way).
///
/// ```
/// use structured_async::{block_on, subsystem, time::Timers};
///
/// assert!(subsystem::current::<Timers>().is_none());
/// block_on(async {
///     assert!(subsystem::current::<Timers>().is_some(), "every runtime has timers");
/// });
/// ```
pub fn current<S: Subsystem>() -> Option<Rc<S>> {
    crate::executor::current_core()?.registry.find::<S>()
}

/// How a subsystem would like the loop to wait for its next event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParkHint {
    /// Events arrive without any notification (a shared-memory ring): while it has waiters the
    /// loop must keep polling it and must not park the thread.
    Busy,
    /// The next event is due at this instant (a timer): the loop may park until then.
    Deadline(Instant),
    /// Events are signalled on this file descriptor; the loop may block in
    /// [`Subsystem::park`].
    #[cfg(unix)]
    Fd(std::os::fd::RawFd),
    /// Nothing is expected from this subsystem right now.
    Idle,
}

/// An event source registered with the runtime's poll loop.
///
/// All methods take `&self`: a subsystem is shared between the loop and the futures that
/// register waiters with it, on one thread, so it keeps its state in `Cell`/`RefCell`.
pub trait Subsystem: 'static {
    /// Delivers the events that have arrived by `now`: wakes exactly the waiters whose event
    /// arrived, and returns how many it woke.
    fn poll(&self, now: Instant) -> usize;

    /// How many coroutines currently wait on this subsystem.
    fn waiters(&self) -> usize;

    /// How the loop should wait for this subsystem's next event.
    fn park_hint(&self) -> ParkHint;

    /// A memory-only readiness check (a ring's head against its tail, a flag), with no
    /// syscall, that the loop may call between task polls. `true` means "an event may be
    /// there, poll me"; the default always says so.
    fn ready_hint(&self) -> bool {
        true
    }

    /// Blocks the thread until an event arrives or `timeout` elapses (`None`: no limit).
    /// Only called on a subsystem whose hint is [`ParkHint::Fd`]; returns `false` when this
    /// subsystem cannot block, in which case the loop parks the thread itself.
    fn park(&self, timeout: Option<std::time::Duration>) -> bool {
        let _ = timeout;
        false
    }

    /// A waker that interrupts [`Subsystem::park`] from any thread (for an epoll subsystem:
    /// one that writes to an eventfd registered with the epoll set). The runtime asks for it
    /// once, when it is built, and wakes it when another thread queues a wake or a task while
    /// the loop is blocked in this subsystem. The default, `None`, suits subsystems that never
    /// block in `park`; one that does block without offering a waker sees such wakes only when
    /// its park returns.
    fn unpark_waker(&self) -> Option<std::task::Waker> {
        None
    }
}
