//! Timers: `sleep`, `timeout` and `interval` served by the runtime's timing wheel.

use std::time::{Duration, Instant};
use structured_async::time::Timers;
use structured_async::{Subsystem, block_on, interval, sleep, spawn_local, subsystem, timeout};

pub fn run() {
    println!("\n== timers: a hierarchical timing wheel as a subsystem ==");
    block_on(async {
        let start = Instant::now();
        sleep(Duration::from_millis(25)).await;
        println!("sleep(25ms) took {} ms", start.elapsed().as_millis());

        let start = Instant::now();
        let fast = timeout(Duration::from_millis(50), sleep(Duration::from_millis(10))).await;
        let slow = timeout(Duration::from_millis(20), sleep(Duration::from_secs(10))).await;
        println!(
            "timeout: fast future -> {fast:?}, slow future -> {:?} ({}), both in {} ms",
            slow,
            slow.unwrap_err(),
            start.elapsed().as_millis()
        );

        let start = Instant::now();
        let mut ticks = interval(Duration::from_millis(10));
        let mut at = Vec::new();
        for _ in 0..4 {
            ticks.tick().await;
            at.push(start.elapsed().as_millis());
        }
        println!("interval(10ms): ticks at {at:?} ms (the first one at once)");

        let timers = subsystem::current::<Timers>().expect("every runtime has timers");
        let start = Instant::now();
        let handles: Vec<_> = (0..10_000u64)
            .map(|i| spawn_local(sleep(Duration::from_millis(20 + i % 30))))
            .collect();
        structured_async::yield_now().await;
        let waiting = timers.waiters();
        for handle in handles {
            handle.await;
        }
        println!(
            "10,000 concurrent sleeps ({waiting} waiting in the wheel at once) done in {} ms",
            start.elapsed().as_millis()
        );
    });
}
