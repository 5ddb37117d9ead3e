//! [`interval`]: ticks at a fixed period, driven by one reusable [`Sleep`].

use super::later;
use super::sleep::{Sleep, sleep_until};
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The timer resolution, and the shortest period an [`Interval`] accepts.
const MIN_PERIOD: Duration = Duration::from_millis(1);

/// An [`Interval`] whose first tick completes at once and then every `period`.
///
/// A zero `period` is raised to the timer resolution, one millisecond (an interval that is
/// always ready would starve every other task). Missed ticks are handled with
/// [`MissedTickBehavior::Burst`] unless set otherwise.
///
/// ```
/// use std::time::{Duration, Instant};
/// use structured_async_runtime::block_on;
/// use structured_async_runtime::time::interval;
///
/// block_on(async {
/// let start = Instant::now();
/// let mut ticks = interval(Duration::from_millis(10));
/// ticks.tick().await; // at once
/// ticks.tick().await;
/// ticks.tick().await;
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// });
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// An [`Interval`] whose first tick completes at `start`, then every `period` after it.
///
/// ```
/// use std::time::{Duration, Instant};
/// use structured_async_runtime::time::interval_at;
///
/// let start = Instant::now() + Duration::from_secs(1);
/// let ticks = interval_at(start, Duration::from_millis(100));
/// assert_eq!(ticks.period(), Duration::from_millis(100));
/// ```
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    Interval {
        period: period.max(MIN_PERIOD),
        sleep: sleep_until(start),
        missed: MissedTickBehavior::default(),
    }
}

/// What an [`Interval`] does when a tick is late by more than a period (the task was busy).
///
/// ```
/// use structured_async_runtime::time::MissedTickBehavior;
///
/// assert_eq!(MissedTickBehavior::default(), MissedTickBehavior::Burst);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissedTickBehavior {
    /// Keep the original schedule: the missed ticks complete at once, one per call, until the
    /// interval has caught up. The default, as in tokio.
    #[default]
    Burst,
    /// Restart the schedule from the late tick: the next tick is one period after it was taken.
    Delay,
    /// Drop the missed ticks: the next tick is the next one of the original schedule that is
    /// still in the future.
    Skip,
}

/// Ticks at a fixed period; see [`interval`].
///
/// ```
/// use std::time::Duration;
/// use structured_async_runtime::time::{MissedTickBehavior, interval};
///
/// let mut ticks = interval(Duration::from_millis(5));
/// ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
/// assert_eq!(ticks.missed_tick_behavior(), MissedTickBehavior::Skip);
/// ```
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    /// Sleeps until the next tick, whose instant is its deadline.
    sleep: Sleep,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Completes at the next tick with its scheduled instant. Cancel-safe: dropping the
    /// future loses no tick.
    ///
    /// ```
    /// use std::time::Duration;
    /// use structured_async_runtime::time::interval;
    ///
    /// let mut ticks = interval(Duration::from_millis(5));
    /// let first = ticks.tick();
    /// # drop(first);
    /// ```
    pub async fn tick(&mut self) -> Instant {
        poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick, for use inside a hand-written `poll`.
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// use std::time::Duration;
    /// use structured_async_runtime::time::interval;
    ///
    /// let mut ticks = interval(Duration::from_secs(1));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(ticks.poll_tick(&mut cx).is_ready()); // the first tick is immediate
    /// # drop(ticks);
    /// ```
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let scheduled = self.sleep.deadline();
        let now = Instant::now();
        let on_time = later(scheduled, self.period);
        let next = if now < on_time {
            on_time
        } else {
            match self.missed {
                MissedTickBehavior::Burst => on_time,
                MissedTickBehavior::Delay => later(now, self.period),
                MissedTickBehavior::Skip => {
                    let period = self.period.as_nanos();
                    let late = now.duration_since(scheduled).as_nanos() % period;
                    now + Duration::from_nanos((period - late) as u64)
                }
            }
        };
        Pin::new(&mut self.sleep).reset(next);
        Poll::Ready(scheduled)
    }

    /// Restarts the schedule: the next tick is one period from now.
    ///
    /// ```
    /// use std::time::Duration;
    /// use structured_async_runtime::time::interval;
    ///
    /// let mut ticks = interval(Duration::from_secs(1));
    /// ticks.reset();
    /// ```
    pub fn reset(&mut self) {
        Pin::new(&mut self.sleep).reset(later(Instant::now(), self.period));
    }

    /// The period between ticks.
    ///
    /// ```
    /// use std::time::Duration;
    /// use structured_async_runtime::time::interval;
    ///
    /// assert_eq!(interval(Duration::ZERO).period(), Duration::from_millis(1));
    /// ```
    pub fn period(&self) -> Duration {
        self.period
    }

    /// How missed ticks are handled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use structured_async_runtime::time::{MissedTickBehavior, interval};
    ///
    /// assert_eq!(interval(Duration::from_secs(1)).missed_tick_behavior(), MissedTickBehavior::Burst);
    /// ```
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets how missed ticks are handled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use structured_async_runtime::time::{MissedTickBehavior, interval};
    ///
    /// let mut ticks = interval(Duration::from_secs(1));
    /// ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    /// ```
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }
}

/// An interval is also an endless stream of its ticks.
///
/// ```
/// use std::time::Duration;
/// use futures_core::Stream;
/// use structured_async_runtime::time::interval;
///
/// fn ticks() -> impl Stream<Item = std::time::Instant> {
///     interval(Duration::from_millis(5))
/// }
/// # let _ = ticks();
/// ```
impl futures_core::Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_core::Stream;

    #[test]
    fn the_stream_yields_the_ticks_on_schedule() {
        crate::block_on(async {
            let period = Duration::from_millis(3);
            let mut ticks = interval(period);
            let mut ticks = Pin::new(&mut ticks);
            let first = poll_fn(|cx| ticks.as_mut().poll_next(cx))
                .await
                .expect("endless");
            for k in 1..=2 {
                let tick = poll_fn(|cx| ticks.as_mut().poll_next(cx)).await;
                assert_eq!(tick, Some(first + k * period));
            }
        });
    }
}
