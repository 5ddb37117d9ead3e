//! `timeout` both ways and `interval` schedules, on the runtime.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use structured_async::time::MissedTickBehavior;
use structured_async::{Elapsed, block_on, interval, sleep, timeout};

/// Sets its flag when dropped.
struct DropFlag(Rc<Cell<bool>>);

impl Drop for DropFlag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

#[test]
fn timeout_returns_the_output_when_the_future_wins() {
    block_on(async {
        let fast = async {
            sleep(Duration::from_millis(5)).await;
            "fast"
        };
        assert_eq!(timeout(Duration::from_secs(10), fast).await, Ok("fast"));
        // Ready at once wins even against a zero duration: the future is polled first.
        assert_eq!(timeout(Duration::ZERO, async { 1 }).await, Ok(1));
    });
}

#[test]
fn timeout_elapses_and_drops_the_slow_future() {
    block_on(async {
        let dropped = Rc::new(Cell::new(false));
        let flag = DropFlag(dropped.clone());
        let start = Instant::now();
        let slow = async move {
            let _flag = flag;
            sleep(Duration::from_secs(60)).await;
            "slow"
        };
        let result = timeout(Duration::from_millis(20), slow).await;
        assert_eq!(result, Err(Elapsed::clone(result.as_ref().unwrap_err())));
        assert!(
            start.elapsed() >= Duration::from_millis(20),
            "elapsed early"
        );
        assert!(dropped.get(), "the abandoned future was dropped");
        let error: Box<dyn std::error::Error> = Box::new(result.unwrap_err());
        assert_eq!(error.to_string(), "deadline has elapsed");
    });
}

#[test]
fn interval_ticks_on_schedule_first_at_once() {
    block_on(async {
        let period = Duration::from_millis(10);
        let before = Instant::now();
        let mut ticks = interval(period);
        let first = ticks.tick().await;
        assert!(first >= before && first <= Instant::now());
        for k in 1..=5u32 {
            let tick = ticks.tick().await;
            assert_eq!(tick, first + period * k, "tick {k} off schedule");
            assert!(Instant::now() >= tick, "tick {k} early");
        }
    });
}

/// Takes the first tick, blocks the thread for 3.5 periods, then returns the next ticks.
fn ticks_after_a_stall(behavior: MissedTickBehavior) -> (Instant, Vec<Instant>, Instant) {
    block_on(async {
        let period = Duration::from_millis(10);
        let mut ticks = interval(period);
        ticks.set_missed_tick_behavior(behavior);
        let first = ticks.tick().await;
        std::thread::sleep(period * 7 / 2);
        let resumed = Instant::now();
        let mut next = Vec::new();
        for _ in 0..4 {
            next.push(ticks.tick().await);
        }
        (first, next, resumed)
    })
}

#[test]
fn missed_ticks_burst_delay_or_skip() {
    let p = Duration::from_millis(10);
    let (first, burst, _) = ticks_after_a_stall(MissedTickBehavior::Burst);
    assert_eq!(
        burst,
        [first + p, first + 2 * p, first + 3 * p, first + 4 * p]
    );

    let (first, skip, resumed) = ticks_after_a_stall(MissedTickBehavior::Skip);
    assert_eq!(skip[0], first + p, "the late tick itself is delivered");
    assert!(
        skip[1] >= resumed && skip[1] >= first + 4 * p,
        "missed ticks skipped"
    );
    let offset = (skip[1] - first).as_nanos() % p.as_nanos();
    assert_eq!(offset, 0, "skip keeps the original phase");
    assert_eq!(skip[2], skip[1] + p);

    let (first, delay, resumed) = ticks_after_a_stall(MissedTickBehavior::Delay);
    assert_eq!(delay[0], first + p);
    assert!(
        delay[1] >= resumed + p,
        "delay restarts one period after the late tick"
    );
    assert_eq!(delay[2], delay[1] + p);
}

#[test]
fn zero_period_is_raised_to_the_resolution() {
    block_on(async {
        let mut ticks = interval(Duration::ZERO);
        assert_eq!(ticks.period(), Duration::from_millis(1));
        let first = ticks.tick().await;
        assert_eq!(ticks.tick().await, first + Duration::from_millis(1));
    });
}

#[test]
fn reset_restarts_the_schedule_from_now() {
    block_on(async {
        let period = Duration::from_millis(5);
        let mut ticks = interval(period);
        ticks.tick().await;
        sleep(Duration::from_millis(2)).await;
        let reset_at = Instant::now();
        ticks.reset();
        let next = ticks.tick().await;
        assert!(
            next >= reset_at + period,
            "the next tick is a period after the reset"
        );
        assert_eq!(ticks.tick().await, next + period);
    });
}
