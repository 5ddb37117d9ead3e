//! The targets, checked against one run's medians.

use std::fmt::Write as _;

use crate::harness::GroupResult;

struct Check {
    target: String,
    measured: String,
    goal: &'static str,
    met: Option<bool>,
}

fn ratio_check(out: &mut Vec<Check>, g: &GroupResult, peer: &str, limit: f64, goal: &'static str) {
    let (Some(ours), Some(p)) = (g.ours(), g.row(peer)) else {
        out.push(Check {
            target: format!("{} {}: ours / {peer}", g.workload, g.case),
            measured: "no ours row".to_owned(),
            goal,
            met: None,
        });
        return;
    };
    let r = ours.median / p.median;
    out.push(Check {
        target: format!("{} {}: {} / {peer}", g.workload, g.case, ours.name),
        measured: format!("{r:.2}"),
        goal,
        met: Some(r <= limit),
    });
}

fn value_check(
    out: &mut Vec<Check>,
    g: &GroupResult,
    what: &str,
    value: Option<f64>,
    ok: impl Fn(f64) -> bool,
    goal: &'static str,
) {
    let name = g.ours().map_or("ours", |r| r.name.as_str());
    out.push(Check {
        target: format!("{} {}: {name} {what}", g.workload, g.case),
        measured: value.map_or("no ours row".to_owned(), |v| format!("{v:.3}")),
        goal,
        met: value.map(ok),
    });
}

fn extra(g: &GroupResult, name: &str) -> Option<f64> {
    g.ours()?
        .extra
        .iter()
        .find(|(n, _)| *n == name)
        .map(|e| e.1)
}

/// A markdown table: every target, the measured value, and whether it is met.
pub fn report(results: &[GroupResult]) -> String {
    let mut checks = Vec::new();
    for g in results {
        match g.workload {
            "spawn + join" if !g.case.starts_with("10000 ") => {
                ratio_check(
                    &mut checks,
                    g,
                    "futures-buffered FuturesUnordered",
                    0.5,
                    "≤ 0.5",
                );
                let floor = if g.case.starts_with("tree") {
                    "Vec of Vecs awaited in turn"
                } else {
                    "Vec awaited in turn"
                };
                ratio_check(&mut checks, g, floor, 2.0, "≤ 2 (within 2× of the floor)");
                let allocs = g.ours().map(|r| r.allocs);
                value_check(
                    &mut checks,
                    g,
                    "allocs/child",
                    allocs,
                    |v| v < 0.01,
                    "0 amortized",
                );
                let bytes = g.ours().map(|r| r.bytes);
                value_check(&mut checks, g, "bytes/child", bytes, |v| v < 64.0, "< 64");
            }
            "wake ping-pong" => {
                ratio_check(
                    &mut checks,
                    g,
                    "tokio current-thread, mpsc::channel(1)",
                    0.5,
                    "≤ 0.5",
                );
                let allocs = g.ours().map(|r| r.allocs);
                value_check(
                    &mut checks,
                    g,
                    "allocs/round trip",
                    allocs,
                    |v| v < 0.001,
                    "0",
                );
            }
            "await chain" => {
                ratio_check(&mut checks, g, "native async fn", 1.1, "≤ 1.1");
                // Issue #3 asks more of the lowering: within 10 % of a hand-written enum.
                ratio_check(
                    &mut checks,
                    g,
                    "hand-written enum",
                    1.1,
                    "≤ 1.1 (issue #3's limit)",
                );
                // The same limit against the hand-written enum with the async fn's semantics
                // (lazy: a Start state per level), the program the lowering has to compile.
                ratio_check(
                    &mut checks,
                    g,
                    "hand-written enum, lazy (Start state)",
                    1.1,
                    "≤ 1.1 (issue #3's limit, same semantics)",
                );
                let native = g
                    .row("native async fn")
                    .and_then(|r| r.extra.first())
                    .map_or(f64::NAN, |e| e.1);
                let size = extra(g, "size_of (bytes)").map(|s| s / native);
                value_check(
                    &mut checks,
                    g,
                    "size_of / native",
                    size,
                    |v| v <= 1.0,
                    "≤ 1.0",
                );
            }
            "timers" if g.case.contains("under tokio") => {
                ratio_check(
                    &mut checks,
                    g,
                    "futures-buffered FuturesUnordered",
                    1.5,
                    "linear: ≤ 1.5 × futures-buffered",
                );
            }
            "timers" => {
                ratio_check(&mut checks, g, "tokio JoinSet of sleeps", 1.0, "≤ 1.0");
                // Only a size whose timer work is small against the 50 ms window can show
                // whether the loop parks (see timers.rs): the 10,000 case.
                if g.case.starts_with("10000 ") {
                    let cpu = extra(g, "loop thread CPU / wall");
                    value_check(
                        &mut checks,
                        g,
                        "loop thread CPU / wall",
                        cpu,
                        |v| v < 0.25,
                        "well under 1 (< 0.25)",
                    );
                }
            }
            "subsystem dedup" => {
                let checks_per = extra(g, "source checks / completion");
                value_check(
                    &mut checks,
                    g,
                    "source checks / completion",
                    checks_per,
                    |v| v <= 1.1,
                    "≤ 1.1",
                );
            }
            "scheduler shapes" => {
                ratio_check(&mut checks, g, "tokio current-thread", 1.0, "≤ 1.0");
            }
            _ => {}
        }
    }
    // ns per completion flat in K: the largest K against the smallest repeated one.
    let dedup: Vec<_> = results
        .iter()
        .filter(|g| g.workload == "subsystem dedup")
        .collect();
    if let (Some(small), Some(large)) = (dedup.get(1), dedup.last()) {
        let flat = match (small.ours(), large.ours()) {
            (Some(a), Some(b)) => Some(b.median / a.median),
            _ => None,
        };
        checks.push(Check {
            target: format!(
                "subsystem dedup: ns/completion at {} over {}",
                large.case, small.case
            ),
            measured: flat.map_or("no ours row".to_owned(), |v| format!("{v:.2}")),
            goal: "flat (≤ 1.5)",
            met: flat.map(|v| v <= 1.5),
        });
    }
    let mut out = String::from("| target | measured | goal | met |\n|---|--:|---|---|\n");
    for c in checks {
        let met = match c.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "not measured",
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {met} |",
            c.target, c.measured, c.goal
        );
    }
    out
}
