//! Shared helpers of the differential lowering tests (`tests/lowering_diff*.rs`).
//!
//! Every body is compiled twice, once through `#[structured]` and once as a native `async fn`,
//! and both are driven under identical conditions: the same plan of how often each awaited
//! [`Tick`] pends, and the same number of polls before the future is dropped. Everything a
//! body does that could differ between the two — events it logs, values created and dropped,
//! sub-futures dropped finished or unfinished, its output, the number of polls and wakes — goes
//! into one ordered log, so interleavings are compared too, not just sets of events.

// Each test binary compiles this module and uses a different part of it.
#![allow(dead_code, unused_imports, unused_macros)]

pub mod harness;
pub mod macros;
pub mod rng;

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use harness::{check, check_inputs, compare, compare_plans, default_plans};
pub use rng::SplitMix;

thread_local! {
    /// The ordered record of one run; every test thread has its own.
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// How many times the next awaited [`Tick`]s pend.
    static PLAN: RefCell<PendPlan> = const { RefCell::new(PendPlan::Each(0)) };
}

/// Appends an event to this thread's log.
pub fn ev(event: impl Into<String>) {
    let event = event.into();
    LOG.with(|log| log.borrow_mut().push(event));
}

/// Takes this thread's log, leaving it empty.
pub fn take_log() -> Vec<String> {
    LOG.with(|log| std::mem::take(&mut *log.borrow_mut()))
}

/// How many times each [`Tick`] pends, decided at its first poll, in first-poll order.
#[derive(Clone, Debug)]
pub enum PendPlan {
    /// Every tick pends this many times.
    Each(u32),
    /// Each tick pends a pseudo-random number of times in `0..=max`.
    Random {
        /// The generator; its seed names the plan in failure messages.
        rng: SplitMix,
        /// The most a single tick pends.
        max: u32,
    },
}

impl PendPlan {
    /// A pseudo-random plan: each tick pends `0..=max` times.
    pub fn random(seed: u64, max: u32) -> Self {
        PendPlan::Random {
            rng: SplitMix::new(seed),
            max,
        }
    }

    fn next_pends(&mut self) -> u32 {
        match self {
            PendPlan::Each(n) => *n,
            PendPlan::Random { rng, max } => rng.below(u64::from(*max) + 1) as u32,
        }
    }
}

/// Installs the plan the following ticks on this thread draw from.
pub fn set_plan(plan: PendPlan) {
    PLAN.with(|p| *p.borrow_mut() = plan);
}

/// A value that logs its creation and its drop: `new NAME` and `drop NAME`.
#[derive(PartialEq, Eq)]
pub struct Noisy(String);

impl Noisy {
    /// Creates a value named `name`, logging `new NAME`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        ev(format!("new {name}"));
        Noisy(name)
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.0
    }

    /// Logs `use NAME` and returns the length of the name.
    pub fn touch(&self) -> usize {
        ev(format!("use {}", self.0));
        self.0.len()
    }
}

impl fmt::Debug for Noisy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Noisy({})", self.0)
    }
}

impl fmt::Display for Noisy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Drop for Noisy {
    fn drop(&mut self) {
        ev(format!("drop {}", self.0));
    }
}

/// A future that pends as often as the installed [`PendPlan`] says (decided at its first
/// poll), waking itself each time, then returns its value.
///
/// A named tick also logs its own drop, `drop-tick NAME done` or `drop-tick NAME pending`, so
/// the moment an awaited future is dropped is compared too.
pub struct Tick<T> {
    value: Option<T>,
    pends_left: Option<u32>,
    name: Option<&'static str>,
}

// `Tick` never pins its value: it only moves it out by `Option::take`.
impl<T> Unpin for Tick<T> {}

/// A [`Tick`] that returns `value`.
pub fn tick<T>(value: T) -> Tick<T> {
    Tick {
        value: Some(value),
        pends_left: None,
        name: None,
    }
}

/// A [`Tick`] that returns `value` and logs its drop under `name`.
pub fn tick_named<T>(name: &'static str, value: T) -> Tick<T> {
    Tick {
        value: Some(value),
        pends_left: None,
        name: Some(name),
    }
}

impl<T> Future for Tick<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        let left = this
            .pends_left
            .get_or_insert_with(|| PLAN.with(|p| p.borrow_mut().next_pends()));
        if *left > 0 {
            *left -= 1;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(this.value.take().expect("Tick polled after it returned"))
    }
}

impl<T> Drop for Tick<T> {
    fn drop(&mut self) {
        if let Some(name) = self.name {
            let state = if self.value.is_some() {
                "pending"
            } else {
                "done"
            };
            ev(format!("drop-tick {name} {state}"));
        }
    }
}

/// A native `async fn` that borrows: logs `show NAME`, waits one tick, returns the name's length.
pub async fn show(n: &Noisy) -> usize {
    ev(format!("show {}", n.name()));
    tick(n.name().len()).await
}

/// A native `async fn` that takes ownership and gives the value back after one tick.
pub async fn pass<T>(value: T) -> T {
    tick(()).await;
    value
}

/// Drives a generator as a future for the differential harness: logs each yielded value and,
/// after each yield, returns `Pending` once (waking itself), so that the harness also cancels
/// the generator right after every yield.
pub struct Drain<G: structured_async::Coroutine> {
    generator: Pin<Box<G>>,
}

impl<G: structured_async::Coroutine> Drain<G> {
    /// Drains `generator`.
    pub fn new(generator: G) -> Self {
        Drain {
            generator: Box::pin(generator),
        }
    }
}

impl<G> Future for Drain<G>
where
    G: structured_async::Coroutine,
    G::Yield: fmt::Debug,
{
    type Output = G::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<G::Output> {
        match self.generator.as_mut().resume(cx) {
            structured_async::Step::Pending => Poll::Pending,
            structured_async::Step::Yielded(v) => {
                ev(format!("yield {v:?}"));
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            structured_async::Step::Complete(r) => Poll::Ready(r),
        }
    }
}
