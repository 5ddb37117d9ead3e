//! Side-by-side benchmarks of structured-async against the ways Rust programs do the same
//! thing today (futures, futures-buffered, tokio, moro, async-executor, async-scoped).
//!
//! `cargo bench --bench compare` runs every workload; `STRUCTURED_BENCH_QUICK=1` runs a
//! reduced version (smaller sizes, fewer rounds). Every group runs each contestant once per
//! round, several rounds interleaved with a rotating starting offset, in this one process,
//! and the report prints medians, minimums, ratios (ours / peer) and heap traffic per
//! operation counted by a global allocator. `BENCHMARKS.md` explains the results.

#![recursion_limit = "4096"]

#[path = "compare/chain.rs"]
mod chain;
#[path = "compare/common.rs"]
mod common;
#[path = "compare/harness.rs"]
mod harness;
#[path = "compare/pingpong.rs"]
mod pingpong;
#[path = "compare/shapes.rs"]
mod shapes;
#[path = "compare/spawn.rs"]
mod spawn;
#[path = "compare/subsystem.rs"]
mod subsystem;
#[path = "compare/timers.rs"]
mod timers;

#[path = "compare/targets.rs"]
mod targets;

use harness::{GroupResult, table};

/// One workload: its name for the command-line filter, and the function that runs it.
type Workload = (&'static str, fn(bool, usize) -> Vec<GroupResult>);

fn main() {
    let quick = std::env::var_os("STRUCTURED_BENCH_QUICK").is_some_and(|v| v != "0");
    // `cargo bench` passes `--bench`; a filter argument selects workloads by name.
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let rounds = if quick { 5 } else { 11 };
    let workloads: [Workload; 6] = [
        ("spawn", spawn::run),
        ("pingpong", pingpong::run),
        ("chain", chain::run),
        ("timers", timers::run),
        ("subsystem", subsystem::run),
        ("shapes", shapes::run),
    ];
    let started = std::time::Instant::now();
    let mut report = String::new();
    let mut all = Vec::new();
    for (name, run) in workloads {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        eprintln!("workload {name}");
        let results = run(quick, rounds);
        let title = results.first().map_or(name, |g| g.workload);
        report.push_str(&format!("\n### {title}\n\n{}", table(&results)));
        all.extend(results);
    }
    println!(
        "## Results ({} mode, {rounds} rounds, {:.0} s)\n{report}\n### Targets\n\n{}",
        if quick { "quick" } else { "full" },
        started.elapsed().as_secs_f64(),
        targets::report(&all)
    );
}
