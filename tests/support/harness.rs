//! Driving one future by hand and comparing two of them run by run.
//!
//! No executor: the future is boxed, polled with a waker that only counts wakes, and dropped
//! after a chosen number of polls. Test futures wake themselves before they pend, so a
//! `Pending` with no wake during that poll is logged as `LOST WAKE` (an executor would hang).

use std::fmt::{self, Debug};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use super::{PendPlan, SplitMix, ev, set_plan, take_log};

/// A future that needs more polls than this is taken to loop forever.
const POLL_LIMIT: usize = 100_000;

/// Everything observable about one run of one future.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Run {
    /// Polls made (at most the limit given to [`run`]).
    pub polls: usize,
    /// Wakes the future asked for.
    pub wakes: usize,
    /// `Debug` of the output, if the future completed.
    pub output: Option<String>,
    /// The ordered log: creation, every event and drop, and the harness's own markers.
    pub log: Vec<String>,
}

struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Creates a future with `make` under `plan` and polls it until it completes or `max_polls`
/// polls were made, then drops it (cancelling it if it had not completed).
///
/// The log separates what happened at creation (before `<created>`), during polls, to the
/// output (after `<ready>`), and at the future's drop (after `<drop future>`).
pub fn run<F>(make: impl Fn() -> F, plan: PendPlan, max_polls: Option<usize>) -> Run
where
    F: Future,
    F::Output: Debug,
{
    take_log();
    set_plan(plan);
    let mut fut = Box::pin(make());
    ev("<created>");
    let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let limit = max_polls.unwrap_or(POLL_LIMIT);
    let mut polls = 0;
    let mut output = None;
    while polls < limit {
        polls += 1;
        let wakes_before = counter.0.load(Ordering::Relaxed);
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(value) => {
                ev("<ready>");
                output = Some(format!("{value:?}"));
                drop(value);
                break;
            }
            Poll::Pending => {
                if counter.0.load(Ordering::Relaxed) == wakes_before {
                    ev(format!("LOST WAKE at poll {polls}"));
                }
            }
        }
    }
    if output.is_none() && max_polls.is_none() {
        ev("POLL LIMIT");
    }
    ev("<drop future>");
    drop(fut);
    Run {
        polls,
        wakes: counter.0.load(Ordering::Relaxed),
        output,
        log: take_log(),
    }
}

/// The first run in which the lowered future and the native one differ.
#[derive(Debug)]
pub struct Mismatch {
    /// The pend plan of that run.
    pub plan: PendPlan,
    /// `None` for a run to completion, `Some(k)` when both were dropped after `k` polls.
    pub cancel_after: Option<usize>,
    /// What the `#[structured]` future did.
    pub lowered: Run,
    /// What the native `async fn` did.
    pub native: Run,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cancel_after {
            None => writeln!(f, "run to completion under {:?} differs", self.plan)?,
            Some(k) => writeln!(f, "cancel after {k} polls under {:?} differs", self.plan)?,
        }
        let (l, n) = (&self.lowered, &self.native);
        writeln!(f, "  polls   lowered {:>4}  native {:>4}", l.polls, n.polls)?;
        writeln!(f, "  wakes   lowered {:>4}  native {:>4}", l.wakes, n.wakes)?;
        writeln!(
            f,
            "  output  lowered {:?}\n          native  {:?}",
            l.output, n.output
        )?;
        let same = l.log.iter().zip(&n.log).take_while(|(a, b)| a == b).count();
        writeln!(f, "  logs agree on their first {same} entries, then:")?;
        writeln!(f, "    lowered: {:?}", &l.log[same..])?;
        writeln!(f, "    native:  {:?}", &n.log[same..])?;
        write!(f, "  full native log: {:?}", n.log)
    }
}

/// Runs both futures under `plan`: to completion, then cancelled after every number of polls
/// from 0 to one less than the native future needed. Returns the number of runs compared.
pub fn compare<L, N>(
    lowered: impl Fn() -> L,
    native: impl Fn() -> N,
    plan: &PendPlan,
) -> Result<usize, Box<Mismatch>>
where
    L: Future,
    N: Future,
    L::Output: Debug,
    N::Output: Debug,
{
    let needed = compare_runs(&lowered, &native, plan, None)?.polls;
    for k in 0..needed {
        compare_runs(&lowered, &native, plan, Some(k))?;
    }
    Ok(needed + 1)
}

fn compare_runs<L, N>(
    lowered: &impl Fn() -> L,
    native: &impl Fn() -> N,
    plan: &PendPlan,
    cancel_after: Option<usize>,
) -> Result<Run, Box<Mismatch>>
where
    L: Future,
    N: Future,
    L::Output: Debug,
    N::Output: Debug,
{
    let l = run(lowered, plan.clone(), cancel_after);
    let n = run(native, plan.clone(), cancel_after);
    if l == n {
        return Ok(n);
    }
    Err(Box::new(Mismatch {
        plan: plan.clone(),
        cancel_after,
        lowered: l,
        native: n,
    }))
}

/// [`compare`] under every plan of `plans`; returns the total number of runs compared.
pub fn compare_plans<L, N>(
    lowered: impl Fn() -> L,
    native: impl Fn() -> N,
    plans: &[PendPlan],
) -> Result<usize, Box<Mismatch>>
where
    L: Future,
    N: Future,
    L::Output: Debug,
    N::Output: Debug,
{
    let mut runs = 0;
    for plan in plans {
        runs += compare(&lowered, &native, plan)?;
    }
    Ok(runs)
}

/// The plans every hand-written body runs under: no pends, one and two pends per await, and
/// eight pseudo-random mixes of zero to three.
pub fn default_plans() -> Vec<PendPlan> {
    let mut plans = vec![PendPlan::Each(0), PendPlan::Each(1), PendPlan::Each(2)];
    plans.extend((0..8).map(|seed| PendPlan::random(0x5eed_0000 + seed, 3)));
    plans
}

/// [`compare_plans`] under [`default_plans`], panicking with the first mismatch.
pub fn check<L, N>(lowered: impl Fn() -> L, native: impl Fn() -> N)
where
    L: Future,
    N: Future,
    L::Output: Debug,
    N::Output: Debug,
{
    if let Err(mismatch) = compare_plans(lowered, native, &default_plans()) {
        panic!("#[structured] differs from the native async fn:\n{mismatch}");
    }
}

/// How many inputs each generated program runs under: 32, or `LOWERING_DIFF_INPUTS`.
pub fn inputs_per_case() -> usize {
    std::env::var("LOWERING_DIFF_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

/// Checks a program that takes an input on [`inputs_per_case`] inputs drawn from `seed`. Per
/// input: cancelled after every poll count with one pend per await (so every await reached on
/// that input's path is a cancellation point), to completion with no pends, and to completion
/// plus three random cancellation points under a random plan of 0 to 3 pends per await.
pub fn check_inputs<L, N>(lowered: impl Fn(u64) -> L, native: impl Fn(u64) -> N, seed: u64)
where
    L: Future,
    N: Future,
    L::Output: Debug,
    N::Output: Debug,
{
    let mut rng = SplitMix::new(seed);
    for _ in 0..inputs_per_case() {
        let input = rng.next_u64();
        let l = || lowered(input);
        let n = || native(input);
        let mut one_input = || -> Result<(), Box<Mismatch>> {
            compare(l, n, &PendPlan::Each(1))?;
            compare_runs(&l, &n, &PendPlan::Each(0), None)?;
            let random = PendPlan::random(rng.next_u64(), 3);
            let needed = compare_runs(&l, &n, &random, None)?.polls;
            for _ in 0..3 {
                let k = rng.below(needed as u64) as usize;
                compare_runs(&l, &n, &random, Some(k))?;
            }
            Ok(())
        };
        if let Err(mismatch) = one_input() {
            panic!(
                "#[structured] differs from the native async fn on input {input:#x}:\n{mismatch}"
            );
        }
    }
}
