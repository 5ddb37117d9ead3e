//! Workload 4: N sleeps with deadlines uniform in 0..=50 ms. Reported: wall time beyond the
//! last deadline per timer (the cost of managing them), heap traffic, and CPU time over wall
//! time, for the whole process and for the loop's thread alone (a loop that spins while it
//! waits shows ~1.0). At 100,000 timers, creating and firing them is itself ~50 ms of CPU, as
//! long as the 50 ms window, so only the 10,000 case can tell a parked loop from a spinning
//! one.
//!
//! Second part: N *tokio* sleeps as children of one scope inside tokio's current-thread
//! runtime, where tokio's cooperative budget (128 operations per task poll) makes a scope that
//! re-polls everything in one turn quadratic.

use std::time::Duration;

use futures::StreamExt as _;

use crate::harness::{
    Contestant, Group, GroupResult, Rng, Role, Sample, measure, process_cpu_ns, run_group,
    run_group_cold, thread_cpu_ns,
};

const MAX_DEADLINE_MS: u64 = 50;

/// The same deadlines for every contestant (microsecond resolution).
fn deadlines(n: usize) -> Vec<Duration> {
    let mut rng = Rng::new(0x5eed_7173);
    (0..n)
        .map(|_| Duration::from_micros(rng.below_or_eq(MAX_DEADLINE_MS * 1000)))
        .collect()
}

/// Measures `f`, which must wait for every deadline in `ds`, and reports overhead past the
/// last deadline per timer, process CPU / wall and the calling (loop) thread's CPU / wall.
fn timed(ds: &[Duration], f: impl FnOnce()) -> Sample {
    let n = ds.len() as u64;
    let last = ds.iter().max().copied().unwrap_or_default();
    let cpu0 = process_cpu_ns();
    let thread0 = thread_cpu_ns();
    let ((), s) = measure(n, f);
    let thread = thread_cpu_ns().saturating_sub(thread0) as f64;
    let cpu = process_cpu_ns().saturating_sub(cpu0) as f64;
    let wall = s.ns_per_op * n as f64;
    let beyond = (wall - last.as_nanos() as f64) / n as f64;
    Sample {
        ns_per_op: beyond,
        ..s
    }
    .with("CPU / wall", cpu / wall)
    .with("loop thread CPU / wall", thread / wall)
}

fn tokio_joinset(rt: &tokio::runtime::Runtime, ds: &[Duration]) -> Sample {
    timed(ds, || {
        rt.block_on(async {
            let mut set = tokio::task::JoinSet::new();
            for &d in ds {
                set.spawn(tokio::time::sleep(d));
            }
            while set.join_next().await.is_some() {}
        });
    })
}

fn tokio_futures_unordered(rt: &tokio::runtime::Runtime, ds: &[Duration]) -> Sample {
    timed(ds, || {
        rt.block_on(async {
            let mut set: futures::stream::FuturesUnordered<_> =
                ds.iter().map(|&d| tokio::time::sleep(d)).collect();
            while set.next().await.is_some() {}
        });
    })
}

fn tokio_buffered_unordered(rt: &tokio::runtime::Runtime, ds: &[Duration]) -> Sample {
    timed(ds, || {
        rt.block_on(async {
            let mut set = futures_buffered::FuturesUnordered::new();
            for &d in ds {
                set.push(tokio::time::sleep(d));
            }
            while set.next().await.is_some() {}
        });
    })
}

fn ours_nursery(rt: &structured_async::Runtime, ds: &[Duration]) -> Sample {
    timed(ds, || {
        rt.block_on(structured_async::nursery!(|s| {
            for &d in ds {
                drop(s.spawn(structured_async::sleep(d)));
            }
        }));
    })
}

fn ours_nursery_under_tokio(rt: &tokio::runtime::Runtime, ds: &[Duration]) -> Sample {
    timed(ds, || {
        rt.block_on(structured_async::nursery!(|s| {
            for &d in ds {
                drop(s.spawn(tokio::time::sleep(d)));
            }
        }));
    })
}

fn ours_spawn_local(rt: &structured_async::Runtime, ds: &[Duration]) -> Sample {
    timed(ds, || {
        rt.block_on(async {
            let handles: Vec<_> = ds
                .iter()
                .map(|&d| structured_async::spawn_local(structured_async::sleep(d)))
                .collect();
            for h in handles {
                h.await;
            }
        });
    })
}

/// Runs this workload.
pub fn run(quick: bool, rounds: usize) -> Vec<GroupResult> {
    let sizes: &[usize] = &[10_000, 100_000];
    let mut out = Vec::new();
    for &n in sizes {
        let ds = deadlines(n);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("tokio");
        let ours = structured_async::Runtime::new();
        let ours2 = structured_async::Runtime::new();
        let (d0, d, d00) = (ds.clone(), ds.clone(), ds.clone());
        let contestants = vec![
            Contestant::new("ours, nursery! of sleeps", Role::Ours, move || {
                ours_nursery(&ours2, &d00)
            }),
            Contestant::new("ours, spawn_local of sleeps", Role::Ours, move || {
                ours_spawn_local(&ours, &d0)
            }),
            Contestant::new("tokio JoinSet of sleeps", Role::Peer, move || {
                tokio_joinset(&rt, &d)
            }),
        ];
        out.push(run_group(
            Group {
                workload: "timers",
                case: format!("{n} sleeps"),
                unit: "timer",
                contestants,
            },
            rounds,
        ));

        let rt = std::rc::Rc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("tokio"),
        );
        let (d1, d2, rt1, rt2) = (ds.clone(), ds.clone(), rt.clone(), rt.clone());
        let (d3, rt3) = (ds.clone(), rt.clone());
        let contestants = vec![
            Contestant::new("ours, nursery! under tokio", Role::Ours, move || {
                ours_nursery_under_tokio(&rt3, &d3)
            }),
            Contestant::new("futures FuturesUnordered", Role::Peer, move || {
                tokio_futures_unordered(&rt1, &d1)
            }),
            Contestant::new("futures-buffered FuturesUnordered", Role::Peer, move || {
                tokio_buffered_unordered(&rt2, &d2)
            }),
        ];
        let group = Group {
            workload: "timers",
            case: format!("{n} tokio sleeps in one scope under tokio"),
            unit: "timer",
            contestants,
        };
        if n >= 100_000 {
            // futures' FuturesUnordered takes seconds per run at 100k here (the point of the
            // row): no warm-up, one round in quick mode.
            out.push(run_group_cold(group, if quick { 1 } else { 3 }));
        } else {
            // ~50 ms per run. The time past the last deadline, ~1.5 ms here, moves by up to a
            // millisecond (tokio's timer tick) from run to run: one cold round read 0.8x-1.9x
            // futures-buffered while callgrind counts 727 instructions per sleep for ours
            // against 1,125 for futures-buffered. A warm-up and every round steady it.
            out.push(run_group(group, rounds));
        }
    }
    out
}
