//! `sleep`, `timeout` and `interval` awaited outside a structured-async runtime (under
//! `futures::executor` and tokio) fall back to the global timer thread: they complete, never
//! early, and never panic.

use std::time::{Duration, Instant};
use structured_async::{interval, sleep, timeout};

#[test]
fn sleep_completes_under_futures_executor() {
    let start = Instant::now();
    futures::executor::block_on(sleep(Duration::from_millis(30)));
    assert!(start.elapsed() >= Duration::from_millis(30));
}

#[test]
fn a_thousand_sleeps_joined_under_futures_executor_none_early() {
    let start = Instant::now();
    let naps = (0..1_000u64).map(|i| async move {
        let nap = sleep(Duration::from_millis(1 + i % 50));
        let deadline = nap.deadline();
        nap.await;
        Instant::now() >= deadline
    });
    let on_time = futures::executor::block_on(futures::future::join_all(naps));
    assert!(on_time.iter().all(|&ok| ok), "a sleep completed early");
    assert!(start.elapsed() >= Duration::from_millis(50));
}

#[tokio::test]
async fn timers_work_inside_a_tokio_runtime() {
    let start = Instant::now();
    sleep(Duration::from_millis(20)).await;
    assert!(start.elapsed() >= Duration::from_millis(20));

    let slow = tokio::time::sleep(Duration::from_secs(10));
    assert!(timeout(Duration::from_millis(10), slow).await.is_err());
    let fast = tokio::time::sleep(Duration::from_millis(1));
    assert_eq!(timeout(Duration::from_secs(10), fast).await, Ok(()));

    let mut ticks = interval(Duration::from_millis(5));
    let first = ticks.tick().await;
    assert_eq!(ticks.tick().await, first + Duration::from_millis(5));
}

#[tokio::test]
async fn sleeps_are_send_and_run_as_tokio_tasks() {
    let tasks: Vec<_> = (0..100u64)
        .map(|i| {
            tokio::spawn(async move {
                let nap = sleep(Duration::from_millis(i % 10 + 1));
                let deadline = nap.deadline();
                nap.await;
                Instant::now() >= deadline
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap(), "a sleep completed early");
    }
}
