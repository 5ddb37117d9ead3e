//! Differential tests of `#[structured]`: each body is written once and compiled both as
//! `#[structured]` and as a native `async fn` (see `support/macros.rs`); both must agree on
//! output, event order, drop order, poll and wake counts, run to completion under several pend
//! plans and cancelled after every possible number of polls.

mod support;

use support::macros::differential;
#[allow(unused_imports)]
use support::{Noisy, ev, pass, show, tick, tick_named};

/// The harness must be able to fail: two deliberately different native bodies are fed to the
/// same comparison and each difference has to be reported.
mod self_check {
    use super::support::{PendPlan, compare, compare_plans, default_plans};
    use super::*;

    async fn drops_a_then_b() {
        let b = Noisy::new("b");
        let a = Noisy::new("a");
        tick(()).await;
        drop(a);
        drop(b);
    }

    async fn drops_b_then_a() {
        let b = Noisy::new("b");
        let a = Noisy::new("a");
        tick(()).await;
        drop(b);
        drop(a);
    }

    #[test]
    fn reports_a_different_drop_order() {
        let mismatch = compare_plans(drops_a_then_b, drops_b_then_a, &default_plans()).unwrap_err();
        assert_eq!(mismatch.cancel_after, None, "seen on the run to completion");
        assert_ne!(mismatch.lowered.log, mismatch.native.log);
    }

    async fn output_one() -> u32 {
        tick(1).await
    }

    async fn output_two() -> u32 {
        tick(2).await
    }

    #[test]
    fn reports_a_different_output() {
        let mismatch = compare_plans(output_one, output_two, &default_plans()).unwrap_err();
        assert_eq!(mismatch.lowered.output.as_deref(), Some("1"));
        assert_eq!(mismatch.native.output.as_deref(), Some("2"));
        assert_eq!(
            mismatch.lowered.log, mismatch.native.log,
            "only the output differs"
        );
    }

    // Same log on completion; differs only while the await is pending: `held` lives across the
    // await, `late` is created after it.
    async fn held_across() {
        let n = Noisy::new("n");
        tick(()).await;
        drop(n);
    }

    async fn created_late() {
        tick(()).await;
        let n = Noisy::new("n");
        drop(n);
    }

    #[test]
    fn reports_a_difference_seen_only_on_cancellation() {
        let plan = PendPlan::Each(1);
        let mismatch = compare(held_across, created_late, &plan).unwrap_err();
        assert_eq!(
            mismatch.cancel_after,
            Some(1),
            "completion agrees, cancel after 1 poll does not"
        );
        assert!(mismatch.lowered.log.contains(&"drop n".to_string()));
        assert!(!mismatch.native.log.contains(&"drop n".to_string()));
    }

    // Same log under a plan where nothing pends; only the poll count tells them apart.
    async fn one_await() -> u32 {
        tick(1).await + 1
    }

    async fn two_awaits() -> u32 {
        tick(1).await + tick(1).await
    }

    #[test]
    fn reports_a_difference_seen_only_when_futures_pend() {
        assert!(compare(one_await, two_awaits, &PendPlan::Each(0)).is_ok());
        let mismatch = compare(one_await, two_awaits, &PendPlan::Each(1)).unwrap_err();
        assert_eq!((mismatch.lowered.polls, mismatch.native.polls), (2, 3));
    }

    #[test]
    fn agrees_with_itself() {
        let runs = compare_plans(held_across, held_across, &default_plans()).unwrap();
        assert!(
            runs > default_plans().len(),
            "cancellation runs were made too: {runs}"
        );
    }

    // A future that pends without arranging a wake is flagged.
    struct Sleepy(bool);

    impl std::future::Future for Sleepy {
        type Output = ();
        fn poll(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<()> {
            if std::mem::replace(&mut self.0, true) {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        }
    }

    #[test]
    fn reports_a_lost_wake() {
        let mismatch = compare(|| Sleepy(false), || tick(()), &PendPlan::Each(1)).unwrap_err();
        assert!(
            mismatch
                .lowered
                .log
                .contains(&"LOST WAKE at poll 1".to_string())
        );
        assert_eq!(mismatch.lowered.wakes + 1, mismatch.native.wakes);
    }
}

differential! {
    if_else,
    entry: branch(Noisy::new("arg"), 3),
    #[lowered]
    async fn branch(arg: Noisy, n: u32) -> u32 {
        let a = Noisy::new("a");
        let x = if tick(n).await > 2 {
            let t = Noisy::new("then");
            tick(t.touch() as u32).await + 10
        } else if n == 0 {
            0
        } else {
            let e = Noisy::new("else");
            tick(e.touch() as u32).await
        };
        ev(format!("x = {x} {} {}", a.name(), arg.name()));
        x
    }
}

differential! {
    match_with_guards,
    entry: classify(vec![Some(1), None, Some(7), Some(4)]),
    #[derive(Debug)]
    enum Kind {
        Small(Noisy),
        Big(u32),
        Missing,
    }
    #[lowered]
    async fn classify(items: Vec<Option<u32>>) -> Vec<String> {
        let mut out = Vec::new();
        for item in items {
            let k = match item {
                Some(n) if tick(n).await < 3 => Kind::Small(Noisy::new(format!("small{n}"))),
                Some(n) if n % 2 == 0 => {
                    let g = Noisy::new("guard-arm");
                    Kind::Big(tick(n * 10).await + g.touch() as u32)
                }
                Some(n) => Kind::Big(n),
                None => Kind::Missing,
            };
            let s = match &k {
                Kind::Small(noisy) => format!("small {}", show(noisy).await),
                Kind::Big(n) => format!("big {n}"),
                Kind::Missing => String::from("missing"),
            };
            out.push(s);
        }
        out
    }
}

differential! {
    loops_with_awaits_in_conditions,
    entry: loops(4),
    #[lowered]
    async fn loops(n: u32) -> (u32, u32, u32) {
        let keep = Noisy::new("keep");
        let mut i = 0;
        let mut total = 0;
        while tick(i).await < n {
            let body = Noisy::new(format!("while{i}"));
            total += tick(i).await;
            ev(format!("{} {total}", body.name()));
            i += 1;
        }
        let mut stack = vec![Noisy::new("s1"), Noisy::new("s2"), Noisy::new("s3")];
        let mut popped = 0;
        let mut pushed = false;
        while let Some(top) = stack.pop() {
            popped += tick(top.touch() as u32).await;
            if popped > 3 && !pushed {
                pushed = true;
                stack.push(Noisy::new("late"));
                drop(stack.remove(0));
            }
        }
        let mut j = 0;
        let last = loop {
            let l = Noisy::new(format!("loop{j}"));
            j = tick(j + 1).await;
            if j == 3 {
                break j * 100 + l.touch() as u32;
            }
        };
        ev(keep.name());
        (total, popped, last)
    }
}

differential! {
    for_loops_over_locals,
    entry: for_loops(),
    #[lowered]
    async fn for_loops() -> usize {
        let names = vec![Noisy::new("x"), Noisy::new("yy"), Noisy::new("zzz")];
        let mut sum = 0;
        for n in &names {
            sum += show(n).await;
        }
        let owned = vec![Noisy::new("o1"), Noisy::new("o2")];
        for o in owned {
            let inner = Noisy::new(format!("in-{}", o.name()));
            sum += tick(inner.touch()).await;
        }
        for i in 0..tick(3usize).await {
            sum += tick(i).await;
        }
        for (i, n) in names.iter().enumerate().rev() {
            if i == 1 {
                continue;
            }
            sum += show(n).await * i;
        }
        sum
    }
}

differential! {
    labelled_break_continue_and_blocks,
    entry: labelled(5),
    #[lowered]
    async fn labelled(n: u32) -> (u32, u32) {
        let mut hits = 0;
        let found = 'outer: loop {
            let o = Noisy::new("outer");
            for i in 0..n {
                let inner = Noisy::new(format!("i{i}"));
                if tick(i).await == 1 {
                    continue;
                }
                'mid: for j in 0..3 {
                    if tick(j).await == 2 {
                        continue 'mid;
                    }
                    hits += 1;
                    if i == 3 && j == 1 {
                        break 'outer i * 10 + j + o.touch() as u32 + inner.touch() as u32;
                    }
                    if j == 1 {
                        break 'mid;
                    }
                }
            }
        };
        let block = 'b: {
            let b = Noisy::new("block");
            if tick(found).await > 30 {
                break 'b b.touch() as u32;
            }
            ev("not broken");
            7
        };
        (found + hits, block)
    }
}

differential! {
    early_return,
    entry: early(Noisy::new("arg"), 6),
    #[lowered]
    async fn early(arg: Noisy, limit: u32) -> Result<u32, String> {
        let guard = Noisy::new("guard");
        let mut acc = 0;
        for i in 0.. {
            let step = Noisy::new(format!("step{i}"));
            acc += tick(i).await;
            if acc > limit {
                let r = Noisy::new("ret");
                return Err(format!("{} {} {} {}", r.name(), step.name(), guard.name(), arg.name()));
            }
            if i == 100 {
                return Ok(acc);
            }
        }
        unreachable!()
    }
}
