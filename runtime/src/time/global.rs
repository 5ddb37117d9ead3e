//! The timer thread that serves sleeps polled outside a structured-async runtime (under tokio,
//! smol, `futures::executor`): one wheel behind a mutex, and a thread that parks until the
//! wheel's next deadline, fires what is due and wakes the wakers. Started on first use.

use super::Clock;
use super::wheel::{Key, Wheel};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};
use std::task::Waker;
use std::thread::{self, Thread};
use std::time::Instant;

/// The global wheel and the thread that drives it.
pub(super) struct GlobalTimers {
    clock: Clock,
    state: Mutex<State>,
    thread: Thread,
}

struct State {
    wheel: Wheel,
    /// The tick the timer thread parks until (`u64::MAX`: no timer); an earlier deadline
    /// unparks it.
    parked_until: u64,
}

impl GlobalTimers {
    /// The global timers, starting the timer thread on first use.
    pub(super) fn get() -> &'static GlobalTimers {
        static GLOBAL: OnceLock<GlobalTimers> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let thread = thread::Builder::new()
                .name("structured-async-timer".into())
                .spawn(|| run(GlobalTimers::get()))
                .expect("structured-async: cannot start the timer thread");
            GlobalTimers {
                clock: Clock::new(),
                state: Mutex::new(State {
                    wheel: Wheel::new(),
                    parked_until: u64::MAX,
                }),
                thread: thread.thread().clone(),
            }
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Wheel operations do not panic midway, so the state is consistent after a poison.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a timer for `deadline`.
    pub(super) fn insert(&self, deadline: Instant, waker: Waker) -> Key {
        let when = self.clock.deadline_tick(deadline);
        let mut state = self.lock();
        let key = state.wheel.insert(when, waker);
        self.unpark_if_earlier(&mut state, when);
        key
    }

    /// Replaces the waker of a registered timer; `false` if it fired.
    pub(super) fn update_waker(&self, key: Key, waker: &Waker) -> bool {
        self.lock().wheel.update_waker(key, waker)
    }

    /// Moves a registered timer to `deadline`; `false` if it fired.
    pub(super) fn reschedule(&self, key: Key, deadline: Instant) -> bool {
        let when = self.clock.deadline_tick(deadline);
        let mut state = self.lock();
        let moved = state.wheel.reschedule(key, when);
        if moved {
            self.unpark_if_earlier(&mut state, when);
        }
        moved
    }

    /// Removes a timer that has not fired.
    pub(super) fn remove(&self, key: Key) {
        self.lock().wheel.remove(key);
    }

    /// Whether `key` is still registered.
    #[cfg(test)]
    pub(super) fn contains(&self, key: Key) -> bool {
        self.lock().wheel.contains(key)
    }

    fn unpark_if_earlier(&self, state: &mut State, when: u64) {
        if when < state.parked_until {
            state.parked_until = when;
            self.thread.unpark();
        }
    }
}

/// The timer thread: fire what is due, then park until the next deadline.
fn run(global: &'static GlobalTimers) {
    let mut fired = Vec::new();
    loop {
        let now = Instant::now();
        let next = {
            let mut state = global.lock();
            state.wheel.advance(global.clock.now_tick(now), &mut fired);
            let next = state.wheel.next_expiration();
            state.parked_until = next.unwrap_or(u64::MAX);
            next
        };
        fired.drain(..).for_each(Waker::wake);
        match next.and_then(|tick| global.clock.instant(tick)) {
            Some(at) => thread::park_timeout(at.saturating_duration_since(Instant::now())),
            None => thread::park(),
        }
    }
}
