//! Timers as a subsystem, driven by the runtime's poll loop: many concurrent sleeps, none
//! early; cancellation deregisters; sleeps find the runtime's wheel.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use structured_async::time::Timers;
use structured_async::{Subsystem, block_on, sleep, spawn_local, subsystem};

fn timers() -> Rc<Timers> {
    subsystem::current::<Timers>().expect("every runtime registers Timers")
}

#[test]
fn hundred_thousand_concurrent_sleeps_complete_and_none_early() {
    const SLEEPS: u64 = 100_000;
    let done = Rc::new(Cell::new(0u64));
    let early = Rc::new(Cell::new(0u64));
    let peak = Rc::new(Cell::new(0usize));
    block_on(async {
        let handles: Vec<_> = (0..SLEEPS)
            .map(|i| {
                let (done, early, peak) = (done.clone(), early.clone(), peak.clone());
                spawn_local(async move {
                    // Durations spread over 100..350 ms, so level-0 slots and cascades are
                    // exercised with many timers per tick.
                    let nap = sleep(Duration::from_micros(100_000 + (i * 7_919) % 250_000));
                    let deadline = nap.deadline();
                    nap.await;
                    peak.set(peak.get().max(timers().waiters()));
                    if Instant::now() < deadline {
                        early.set(early.get() + 1);
                    }
                    done.set(done.get() + 1);
                })
            })
            .collect();
        for handle in handles {
            handle.await;
        }
        assert_eq!(timers().waiters(), 0, "fired timers leave the wheel");
    });
    assert_eq!(done.get(), SLEEPS);
    assert_eq!(early.get(), 0, "a sleep completed before its deadline");
    // Registered in the runtime's wheel (not the global timer thread), many at once.
    assert!(peak.get() as u64 > SLEEPS / 10, "peak {}", peak.get());
}

/// Counts wakes.
struct CountWakes(AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn cancelled_sleeps_leave_the_wheel_and_wake_nothing() {
    block_on(async {
        let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
        let waker = Waker::from(wakes.clone());
        // Deadlines 200-219 ms away: far enough that none is due while the loop below polls
        // them all, even on a loaded machine (a 1 ms deadline once came due mid-loop).
        let mut sleeps: Vec<_> = (1..=1_000u64)
            .map(|i| sleep(Duration::from_millis(200 + i % 20)))
            .collect();
        for s in &mut sleeps {
            assert!(
                Pin::new(s)
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
            );
        }
        assert_eq!(timers().waiters(), 1_000);
        sleeps.truncate(400);
        assert_eq!(timers().waiters(), 400, "each dropped sleep deregistered");
        drop(sleeps);
        assert_eq!(timers().waiters(), 0);
        // Past every cancelled deadline.
        sleep(Duration::from_millis(250)).await;
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            0,
            "a cancelled sleep woke its task"
        );
    });
}

#[test]
fn repolling_with_another_waker_wakes_the_new_one_only() {
    block_on(async {
        let first = Arc::new(CountWakes(AtomicUsize::new(0)));
        let second = Arc::new(CountWakes(AtomicUsize::new(0)));
        // Not due before both polls, even on a loaded machine; due before the wait ends.
        let mut nap = sleep(Duration::from_millis(100));
        for waker in [Waker::from(first.clone()), Waker::from(second.clone())] {
            assert!(
                Pin::new(&mut nap)
                    .poll(&mut Context::from_waker(&waker))
                    .is_pending()
            );
        }
        assert_eq!(timers().waiters(), 1, "re-polling does not register twice");
        sleep(Duration::from_millis(150)).await;
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert!(
            nap.is_elapsed()
                || Pin::new(&mut nap)
                    .poll(&mut Context::from_waker(Waker::noop()))
                    .is_ready()
        );
    });
}

#[test]
fn zero_sleep_is_ready_on_first_poll() {
    block_on(async {
        let mut polls = 0;
        let mut zero = sleep(Duration::ZERO);
        poll_fn(|cx| {
            polls += 1;
            Pin::new(&mut zero).poll(cx)
        })
        .await;
        assert_eq!(polls, 1);
        assert_eq!(timers().waiters(), 0);
    });
}

#[test]
fn huge_durations_do_not_overflow() {
    block_on(async {
        let mut forever = sleep(Duration::MAX);
        assert!(forever.deadline() > Instant::now() + Duration::from_secs(86_400 * 365));
        poll_fn(|cx| {
            assert!(Pin::new(&mut forever).poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        assert_eq!(timers().waiters(), 1);
        drop(forever);
        assert_eq!(timers().waiters(), 0);
    });
}

#[test]
fn a_sleep_started_on_one_thread_finishes_on_another() {
    // Polled once on a runtime thread (registered in its wheel), then moved: it re-registers
    // where it is polled next, and the first wheel drops the stale entry.
    let (mut nap, first_wheel) = block_on(async {
        let mut nap = sleep(Duration::from_millis(200));
        poll_fn(|cx| {
            assert!(Pin::new(&mut nap).poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        assert_eq!(timers().waiters(), 1);
        (nap, timers())
    });
    let deadline = nap.deadline();
    std::thread::spawn(move || {
        block_on(async move {
            (&mut nap).await;
            assert!(Instant::now() >= deadline);
            assert_eq!(timers().waiters(), 0);
        })
    })
    .join()
    .unwrap();
    first_wheel.poll(Instant::now());
    assert_eq!(
        first_wheel.waiters(),
        0,
        "the stale entry was cancelled from afar"
    );
}

#[test]
fn reset_moves_a_registered_sleep_without_registering_twice() {
    block_on(async {
        let mut nap = std::pin::pin!(sleep(Duration::from_secs(3_600)));
        poll_fn(|cx| {
            assert!(nap.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        let soon = Instant::now() + Duration::from_millis(15);
        nap.as_mut().reset(soon);
        assert_eq!(timers().waiters(), 1, "moved, not duplicated");
        nap.as_mut().await;
        assert!(Instant::now() >= soon);
        assert_eq!(timers().waiters(), 0);
    });
}

#[test]
fn a_sleep_first_polled_outside_moves_into_the_runtime_wheel() {
    // Far enough that it is still pending when the runtime polls it, even on a loaded machine.
    let mut nap = sleep(Duration::from_millis(200));
    // Outside any runtime: registered with the global timer thread.
    assert!(
        Pin::new(&mut nap)
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    block_on(async {
        poll_fn(|cx| {
            assert!(Pin::new(&mut nap).poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        assert_eq!(
            timers().waiters(),
            1,
            "re-registered in the runtime's wheel"
        );
        let deadline = nap.deadline();
        (&mut nap).await;
        assert!(Instant::now() >= deadline);
    });
}
