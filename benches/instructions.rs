//! Spawn + join of ready or pend-once children in one nursery, alone in its process, for
//! counting instructions per child with callgrind (repeatable on a loaded machine, where
//! `compare`'s times are not). `BENCHMARKS.md` quotes its counts.
//!
//! ```sh
//! cargo bench --bench instructions --no-run     # prints the executable's path, $BIN below
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null $BIN ready 1 100000
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null $BIN ready 3 100000
//! ```
//!
//! Instructions per child: (the second total - the first) / (2 × 100,000); the difference
//! cancels the process's start-up. Arguments: a mode (`ready`, `pend`, `floor-ready`,
//! `floor-pend`), how many runs, children per run (default `ready 11 100000`). Each prints
//! the median wall time per child, a figure for a quiet machine only. `cargo bench` runs
//! the default.

// `compare`'s children and minimal `block_on`; `yield_once` serves `compare` only.
#[allow(dead_code)]
#[path = "compare/common.rs"]
mod common;

use std::time::Instant;

use common::{ChildKind, PendOnce, Ready, block_on};
use structured_async::{Runtime, nursery};

/// `compare`'s "ours, nursery! on Runtime::block_on": `n` children in one nursery, their
/// handles dropped at once.
fn ours<K: ChildKind>(rt: &Runtime, n: u64) {
    rt.block_on(nursery!(|s| {
        for i in 0..n {
            drop(s.spawn(K::make(i)));
        }
    }));
}

/// `compare`'s floor: the same futures in a `Vec`, awaited in turn on the minimal `block_on`.
fn floor<K: ChildKind>(_: &Runtime, n: u64) {
    let sum = block_on(async {
        let children: Vec<K::Fut> = (0..n).map(K::make).collect();
        let mut sum = 0;
        for child in children {
            sum += child.await;
        }
        sum
    });
    std::hint::black_box(sum);
}

fn main() {
    // `cargo bench` passes `--bench`.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mode = args.first().map_or("ready", String::as_str);
    let parse = |i: usize, default: u64| match args.get(i) {
        None => Ok(default),
        Some(a) => a
            .parse::<u64>()
            .ok()
            .filter(|&v| v > 0)
            .ok_or_else(|| format!("`{a}` is not a positive whole number")),
    };
    let (runs, n) = match (parse(1, 11), parse(2, 100_000)) {
        (Ok(runs), Ok(n)) => (runs, n),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("instructions: {e} (usage: instructions [MODE] [RUNS] [CHILDREN])");
            std::process::exit(2);
        }
    };
    let run: fn(&Runtime, u64) = match mode {
        "ready" => ours::<Ready>,
        "pend" => ours::<PendOnce>,
        "floor-ready" => floor::<Ready>,
        "floor-pend" => floor::<PendOnce>,
        other => {
            eprintln!(
                "instructions: unknown mode `{other}` (ready, pend, floor-ready, floor-pend)"
            );
            std::process::exit(2);
        }
    };
    let rt = Runtime::new();
    let mut per_child: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            run(&rt, n);
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    per_child.sort_by(f64::total_cmp);
    println!(
        "{mode}: {n} children, {runs} runs, median {:.2} ns per child (wall)",
        per_child[per_child.len() / 2]
    );
}
