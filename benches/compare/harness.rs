//! The measuring harness: a counting global allocator, interleaved rounds with a rotating
//! starting offset, medians and minimums, and the markdown tables printed at the end.

use std::alloc::System;
use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Instant;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// One run of one peer: time and heap traffic per operation, plus workload-specific columns.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub ns_per_op: f64,
    pub allocs_per_op: f64,
    pub bytes_per_op: f64,
    /// Extra columns (name, value), e.g. source checks per completion or `size_of`.
    pub extra: Vec<(&'static str, f64)>,
}

impl Sample {
    /// Adds a workload-specific column.
    pub fn with(mut self, name: &'static str, value: f64) -> Self {
        self.extra.push((name, value));
        self
    }
}

/// Runs `f` once, timing it and counting every heap allocation (on any thread) it makes;
/// `ops` divides both.
pub fn measure<R>(ops: u64, f: impl FnOnce() -> R) -> (R, Sample) {
    let region = Region::new(GLOBAL);
    let start = Instant::now();
    let out = black_box(f());
    let elapsed = start.elapsed();
    let stats = region.change();
    let ops = ops as f64;
    let allocs = (stats.allocations + stats.reallocations) as f64;
    let bytes = stats.bytes_allocated as f64 + stats.bytes_reallocated.max(0) as f64;
    let sample = Sample {
        ns_per_op: elapsed.as_nanos() as f64 / ops,
        allocs_per_op: allocs / ops,
        bytes_per_op: bytes / ops,
        extra: Vec::new(),
    };
    (out, sample)
}

/// How a row relates to the others in its group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Our runtime; the first `Ours` row is the numerator of every ratio in the group.
    Ours,
    /// A peer the ratio is taken against.
    Peer,
    /// The no-concurrency floor (a `Vec` awaited in turn), reported as its own row.
    Floor,
}

/// One contestant of a group: a name and a closure that does the whole workload once.
pub struct Contestant {
    pub name: String,
    pub role: Role,
    run: Box<dyn FnMut() -> Sample>,
}

impl Contestant {
    pub fn new(name: impl Into<String>, role: Role, run: impl FnMut() -> Sample + 'static) -> Self {
        Self {
            name: name.into(),
            role,
            run: Box::new(run),
        }
    }
}

/// Rows measured against each other: one workload at one size.
pub struct Group {
    pub workload: &'static str,
    pub case: String,
    pub unit: &'static str,
    pub contestants: Vec<Contestant>,
}

/// The summary of one contestant over all rounds.
#[derive(Debug, Clone)]
pub struct Row {
    pub name: String,
    pub role: Role,
    pub median: f64,
    pub min: f64,
    pub allocs: f64,
    pub bytes: f64,
    pub extra: Vec<(&'static str, f64)>,
}

/// The summary of one group.
#[derive(Debug, Clone)]
pub struct GroupResult {
    pub workload: &'static str,
    pub case: String,
    pub unit: &'static str,
    pub rows: Vec<Row>,
}

impl GroupResult {
    /// The first row flagged [`Role::Ours`].
    pub fn ours(&self) -> Option<&Row> {
        self.rows.iter().find(|r| r.role == Role::Ours)
    }

    /// The row with this exact name.
    pub fn row(&self, name: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.name == name)
    }
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

/// Runs every contestant once as a warm-up, then `rounds` rounds; round `r` runs every
/// contestant once, starting at contestant `r % n` and going on in an order shuffled anew
/// each round (see [`round_order`]), so no peer always runs first or last, nor always right
/// after the same neighbour (an allocator-heavy one leaves caches and the heap cold).
pub fn run_group(group: Group, rounds: usize) -> GroupResult {
    run_rounds(group, rounds, true)
}

/// [`run_group`] without the warm-up round, for contestants that take seconds per run.
pub fn run_group_cold(group: Group, rounds: usize) -> GroupResult {
    run_rounds(group, rounds, false)
}

fn run_rounds(mut group: Group, rounds: usize, warmup: bool) -> GroupResult {
    let n = group.contestants.len();
    eprintln!(
        "  {} / {} ({} contestants, {} rounds)",
        group.workload, group.case, n, rounds
    );
    if warmup {
        for c in &mut group.contestants {
            black_box((c.run)());
        }
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); n];
    for round in 0..rounds {
        for k in round_order(round, n) {
            let s = (group.contestants[k].run)();
            samples[k].push(s);
        }
    }
    let rows = group
        .contestants
        .iter()
        .zip(samples)
        .map(|(c, s)| {
            let col = |f: &dyn Fn(&Sample) -> f64| median(&mut s.iter().map(f).collect::<Vec<_>>());
            let names: Vec<&'static str> = s
                .first()
                .map(|x| x.extra.iter().map(|e| e.0).collect())
                .unwrap_or_default();
            let extra = names
                .iter()
                .enumerate()
                .map(|(j, name)| (*name, col(&|x: &Sample| x.extra[j].1)))
                .collect();
            Row {
                name: c.name.clone(),
                role: c.role,
                median: col(&|x| x.ns_per_op),
                min: s.iter().map(|x| x.ns_per_op).fold(f64::INFINITY, f64::min),
                allocs: col(&|x| x.allocs_per_op),
                bytes: col(&|x| x.bytes_per_op),
                extra,
            }
        })
        .collect();
    let result = GroupResult {
        workload: group.workload,
        case: group.case,
        unit: group.unit,
        rows,
    };
    eprint!("{}", table(std::slice::from_ref(&result)));
    result
}

/// The order of round `round` over `n` contestants: contestant `round % n` first, the others
/// after it in an order drawn from a generator seeded by the round (the same in every run of
/// the bench). With a fixed cyclic order, as a plain rotation keeps, each contestant would
/// always run right after the same neighbour: in the spawn + join groups the first row then
/// always followed the allocator-heaviest peer, and paid for the caches and heap it left.
fn round_order(round: usize, n: usize) -> Vec<usize> {
    let first = round % n;
    let mut order: Vec<usize> = (0..n).filter(|&k| k != first).collect();
    // splitmix64: enough for a shuffle, and no dependency.
    let mut state = (round as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    // Fisher-Yates.
    for i in (1..order.len()).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    order.insert(0, first);
    order
}

fn fmt_num(v: f64) -> String {
    if v.is_nan() {
        "—".to_owned()
    } else if v == 0.0 {
        "0".to_owned()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else if v.abs() >= 0.01 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

/// A markdown table of groups from one workload: medians, minimums, ratios ours / peer
/// (medians), allocations and bytes per operation, and the workload's extra columns.
pub fn table(groups: &[GroupResult]) -> String {
    let mut out = String::new();
    let extra_names: Vec<&'static str> = {
        let mut names = Vec::new();
        for g in groups {
            for r in &g.rows {
                for (n, _) in &r.extra {
                    if !names.contains(n) {
                        names.push(*n);
                    }
                }
            }
        }
        names
    };
    out.push_str("| case | contestant | per | median ns | min ns | ours / this | allocs | bytes |");
    for n in &extra_names {
        let _ = write!(out, " {n} |");
    }
    out.push('\n');
    out.push_str("|---|---|---|--:|--:|--:|--:|--:|");
    for _ in &extra_names {
        out.push_str("--:|");
    }
    out.push('\n');
    for g in groups {
        let ours = g.ours().map(|r| r.median);
        for r in &g.rows {
            let ratio = match (ours, r.role) {
                (Some(o), Role::Peer | Role::Floor) => format!("{:.2}", o / r.median),
                (Some(_), Role::Ours) if Some(r.median) != ours => {
                    format!("({:.2})", ours.unwrap_or(f64::NAN) / r.median)
                }
                _ => "—".to_owned(),
            };
            let name = match r.role {
                Role::Ours => format!("**{}**", r.name),
                Role::Floor => format!("{} (floor)", r.name),
                Role::Peer => r.name.clone(),
            };
            let _ = write!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} |",
                g.case,
                name,
                g.unit,
                fmt_num(r.median),
                fmt_num(r.min),
                ratio,
                fmt_num(r.allocs),
                fmt_num(r.bytes)
            );
            for n in &extra_names {
                let v = r
                    .extra
                    .iter()
                    .find(|(k, _)| k == n)
                    .map_or(f64::NAN, |e| e.1);
                let _ = write!(out, " {} |", fmt_num(v));
            }
            out.push('\n');
        }
    }
    out
}

/// CPU time (user + system) of the whole process so far, in nanoseconds, summed over its
/// threads from `/proc/self/task/*/schedstat` (the kernel's nanosecond run-time counters).
pub fn process_cpu_ns() -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|v| v.parse::<u64>().ok())
        })
        .sum()
}

/// CPU time (user + system) of the calling thread so far, in nanoseconds, from
/// `/proc/thread-self/schedstat`: for a runtime whose loop runs on the caller's thread
/// (ours, tokio's current-thread), the loop's own CPU time, whatever other threads do.
pub fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A small deterministic generator (xorshift64*), so every peer gets the same inputs.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..=max` (the modulo bias is irrelevant at these sizes).
    pub fn below_or_eq(&mut self, max: u64) -> u64 {
        self.next_u64() % (max + 1)
    }
}
