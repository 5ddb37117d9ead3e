//! Timers as a subsystem: a hierarchical timing wheel, [`sleep()`], [`timeout()`], [`interval()`].
//!
//! Every runtime registers one [`Timers`] subsystem. A [`Sleep`] polled on a runtime thread
//! puts its deadline and waker in that thread's wheel; the poll loop asks the wheel for its
//! next deadline ([`ParkHint::Deadline`]), parks the thread until then when nothing else is
//! ready, and [`Subsystem::poll`] wakes exactly the sleeps that are due. Polled anywhere else
//! (under tokio, smol, `futures::executor`), a `Sleep` registers with one global timer thread
//! instead, so the same future works on every executor.
//!
//! Timers have a resolution of one millisecond and never fire early: a deadline is rounded up
//! to the next millisecond tick, the current time down.

mod global;
mod interval;
mod sleep;
mod timeout;
mod wheel;

pub use interval::{Interval, MissedTickBehavior, interval, interval_at};
pub use sleep::{Sleep, sleep, sleep_until};
pub use timeout::{Elapsed, Timeout, timeout, timeout_at};

use crate::subsystem::{ParkHint, Subsystem};
use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};
use wheel::{Key, Wheel};

/// The runtime's timer subsystem: a hierarchical timing wheel of the sleeps polled on this
/// thread.
///
/// A runtime creates and registers one for you; its [`waiters`](Subsystem::waiters) are the
/// sleeps currently registered, and its [`park_hint`](Subsystem::park_hint) is the next
/// instant at which the wheel has work.
///
/// ```
/// use std::time::{Duration, Instant};
/// use structured_async_runtime::time::Timers;
/// use structured_async_runtime::{ParkHint, Subsystem};
///
/// let timers = Timers::new();
/// assert_eq!(timers.waiters(), 0);
/// assert_eq!(timers.park_hint(), ParkHint::Idle);
/// assert_eq!(timers.poll(Instant::now() + Duration::from_secs(1)), 0);
/// ```
pub struct Timers {
    clock: Clock,
    wheel: RefCell<Wheel>,
    /// Wakers of the timers that fired, woken after the wheel is released; kept to reuse its
    /// allocation.
    fired: RefCell<Vec<Waker>>,
    /// Cancellations of sleeps dropped on another thread; also identifies this wheel.
    remote: Arc<RemoteCancels>,
}

impl Timers {
    /// An empty timer subsystem whose clock starts now.
    ///
    /// ```
    /// use structured_async_runtime::time::Timers;
    /// use structured_async_runtime::Subsystem;
    ///
    /// assert_eq!(Timers::new().waiters(), 0);
    /// ```
    pub fn new() -> Self {
        Timers {
            clock: Clock::new(),
            wheel: RefCell::new(Wheel::new()),
            fired: RefCell::new(Vec::new()),
            remote: Arc::new(RemoteCancels::default()),
        }
    }

    fn drain_remote_cancels(&self) {
        if self.remote.any.swap(false, Ordering::Acquire) {
            let keys = std::mem::take(&mut *self.remote.lock());
            let mut wheel = self.wheel.borrow_mut();
            for key in keys {
                wheel.remove(key);
            }
        }
    }
}

impl Default for Timers {
    fn default() -> Self {
        Timers::new()
    }
}

impl fmt::Debug for Timers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wheel = self.wheel.try_borrow();
        f.debug_struct("Timers")
            .field("waiters", &wheel.as_ref().map(|w| w.len()).ok())
            .finish_non_exhaustive()
    }
}

impl Subsystem for Timers {
    fn poll(&self, now: Instant) -> usize {
        self.drain_remote_cancels();
        let mut fired = self.fired.borrow_mut();
        let count = self
            .wheel
            .borrow_mut()
            .advance(self.clock.now_tick(now), &mut fired);
        // Woken with the wheel released, so a waker may register or cancel timers.
        fired.drain(..).for_each(Waker::wake);
        count
    }

    fn waiters(&self) -> usize {
        self.wheel.borrow().len()
    }

    /// Timers are driven by their deadline ([`ParkHint::Deadline`]), never busy-polled, so
    /// the loop has nothing to gain from polling them between two tasks: always `false`.
    fn ready_hint(&self) -> bool {
        false
    }

    fn park_hint(&self) -> ParkHint {
        match self.wheel.borrow().next_expiration() {
            Some(tick) => self
                .clock
                .instant(tick)
                .map_or(ParkHint::Idle, ParkHint::Deadline),
            None => ParkHint::Idle,
        }
    }
}

/// Sleeps dropped away from the thread of the wheel they are registered in, removed at the
/// wheel's next poll.
#[derive(Debug, Default)]
struct RemoteCancels {
    any: AtomicBool,
    keys: Mutex<Vec<Key>>,
}

impl RemoteCancels {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Key>> {
        // The list stays consistent whatever panicked while holding it.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cancel(&self, key: Key) {
        self.lock().push(key);
        self.any.store(true, Ordering::Release);
    }
}

/// Converts instants to the wheel's millisecond ticks: deadlines round up and the current
/// time rounds down, so a timer never fires before its deadline.
#[derive(Debug, Clone, Copy)]
struct Clock {
    origin: Instant,
}

impl Clock {
    fn new() -> Self {
        Clock {
            origin: Instant::now(),
        }
    }

    fn deadline_tick(&self, deadline: Instant) -> u64 {
        let nanos = deadline.saturating_duration_since(self.origin).as_nanos();
        u64::try_from(nanos.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }

    fn now_tick(&self, now: Instant) -> u64 {
        let millis = now.saturating_duration_since(self.origin).as_millis();
        u64::try_from(millis).unwrap_or(u64::MAX)
    }

    fn instant(&self, tick: u64) -> Option<Instant> {
        self.origin.checked_add(Duration::from_millis(tick))
    }
}

/// The timer subsystem of the runtime running on this thread, if any.
fn current_timers() -> Option<Rc<Timers>> {
    crate::subsystem::current::<Timers>()
}

/// `now + duration`; see [`later`].
fn deadline_after(duration: Duration) -> Instant {
    later(Instant::now(), duration)
}

/// `base + duration`, or an instant about 30 years after `base` when that is not
/// representable (as a `Duration::MAX` sleep asks for).
fn later(base: Instant, duration: Duration) -> Instant {
    base.checked_add(duration)
        .or_else(|| base.checked_add(Duration::from_secs(86_400 * 365 * 30)))
        .unwrap_or(base)
}
