//! While only timers are pending, the runtime parks the thread until the next deadline: the
//! process uses little CPU compared with the wall-clock time that passes. (Alone in its own
//! test binary, so no other test's CPU time is counted.)

use std::time::{Duration, Instant};
use structured_async::{block_on, sleep, spawn_local};

/// User + system CPU time of the whole process, from /proc/self/stat (in clock ticks of
/// 1/100 s, the Linux USER_HZ).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')').expect("malformed stat") + 2..];
    let fields: Vec<u64> = after_name
        .split_whitespace()
        .skip(11)
        .take(2)
        .map(|f| f.parse().expect("numeric field"))
        .collect();
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

#[test]
fn only_timers_pending_means_the_thread_sleeps() {
    block_on(async {
        // Warm up: the runtime, the wheel and the allocator are ready before measuring.
        sleep(Duration::from_millis(5)).await;
        let cpu_before = process_cpu();
        let wall_before = Instant::now();
        // 200 sleepers waking every few ms, plus one long sleep: the loop wakes often,
        // but only when a deadline is due.
        for i in 0..200u64 {
            let _sleeper = spawn_local(async move {
                for _ in 0..10 {
                    sleep(Duration::from_millis(20 + i % 17)).await;
                }
            });
        }
        sleep(Duration::from_millis(400)).await;
        let wall = wall_before.elapsed();
        let cpu = process_cpu() - cpu_before;
        eprintln!("cpu {cpu:?} over wall {wall:?}");
        assert!(wall >= Duration::from_millis(400));
        assert!(
            cpu.as_secs_f64() < 0.5 * wall.as_secs_f64(),
            "busy while only timers were pending: cpu {cpu:?}, wall {wall:?}"
        );
    });
}
