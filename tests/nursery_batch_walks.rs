//! Walks of a spawn loop's batch, seen from its children: `Scope::running()` exact at every
//! poll and in every cancel's drop of a batched child, the turn budget with records
//! materialised by an awaited handle and with re-entrant spawns, and batches of futures whose
//! records are only 4-aligned. Public API only. (Written by a read-only soundness review of
//! d470196; each test was checked to fail with a deliberate break of what it covers, and the
//! last one is the misaligned store Miri found: run it with `cargo +nightly miri test`.)

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use structured_async::{ChildHandle, Scope, block_on, nursery, timeout, yield_now};

type R = Result<(), u32>;
type Handle<'s> = ChildHandle<'s, R>;

thread_local! {
    /// Mismatches seen by any check on this thread.
    static BAD: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    /// Polls of kids and of bodies wrapped in `Counted`, on this thread.
    static POLLS: Cell<usize> = const { Cell::new(0) };
}

fn bad(s: String) {
    BAD.with(|b| b.borrow_mut().push(s));
}

fn take_bad() -> Vec<String> {
    BAD.with(|b| b.take())
}

/// Fails with the first few mismatches `take_bad` returns.
fn assert_none_bad(what: &str) {
    let bad = take_bad();
    assert!(
        bad.is_empty(),
        "{what}: {} mismatches, first {:?}",
        bad.len(),
        &bad[..bad.len().min(6)]
    );
}

fn finish<F: Future>(fut: F) -> F::Output {
    if cfg!(miri) {
        return block_on(fut);
    }
    block_on(timeout(std::time::Duration::from_secs(120), fut)).expect("the nursery finished")
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Act {
    Ready,
    /// Wakes itself with no clone once (a yielded record), then ready.
    YieldOnce,
    /// Clones its waker, wakes the clone, pends once (materialised into the probe).
    CloneWake,
    /// Parks its waker until a `WakeParked` sibling (or the body) wakes it.
    Park,
    WakeParked,
    /// Spawns this many siblings of its own type from its first poll (alternately `Ready`
    /// and `YieldOnce`), then ready.
    Spawn(u32),
    /// Awaits the handle of sibling `.0` (spawned after it: not polled yet).
    AwaitLater(usize),
    /// Runs a nested nursery of this many kids (which check this nursery's count too).
    Nested(u32),
    Fail,
    YieldThenFail,
    Panic,
    YieldThenPanic,
}

/// What a nursery's kids did (leaked, so the test reads it after the nursery is gone).
#[derive(Default)]
struct Counts {
    spawned: Cell<usize>,
    ended: Cell<usize>,
    /// Unfinished kids dropped by a cancel.
    dropped: Cell<usize>,
}

fn counts() -> &'static Counts {
    Box::leak(Box::default())
}

struct Ctx<'s> {
    c: &'static Counts,
    parked: RefCell<Vec<Waker>>,
    handles: RefCell<Vec<Option<Handle<'s>>>>,
    spawn_only_ready: Cell<bool>,
}

fn ctx<'s>(c: &'static Counts) -> &'s Ctx<'s> {
    Box::leak(Box::new(Ctx {
        c,
        parked: RefCell::default(),
        handles: RefCell::default(),
        spawn_only_ready: Cell::new(false),
    }))
}

impl<'s> Ctx<'s> {
    fn check(&self, n: &Scope<'s, '_, R>, who: &str) {
        let c = self.c;
        let want = c.spawned.get() - c.ended.get() - c.dropped.get();
        let got = n.running();
        if got != want {
            bad(format!("{who}: running() {got}, want {want}"));
        }
    }
}

type Check<'s> = &'s (dyn Fn() + 's);

struct Kid<'s, 'e> {
    n: &'s Scope<'s, 'e, R>,
    ctx: &'s Ctx<'s>,
    /// The enclosing nursery's check, for kids of a nested nursery.
    outer: Option<Check<'s>>,
    id: usize,
    act: Act,
    polls: u32,
    ended: bool,
    waiting: Option<Handle<'s>>,
    clone: Option<Waker>,
    inner: Option<Pin<Box<dyn Future<Output = R> + 's>>>,
}

fn spawn_kid<'s, 'e>(
    n: &'s Scope<'s, 'e, R>,
    ctx: &'s Ctx<'s>,
    outer: Option<Check<'s>>,
    act: Act,
) -> Handle<'s> {
    let id = ctx.c.spawned.get();
    ctx.c.spawned.set(id + 1);
    n.spawn(Kid {
        n,
        ctx,
        outer,
        id,
        act,
        polls: 0,
        ended: false,
        waiting: None,
        clone: None,
        inner: None,
    })
}

impl<'s, 'e> Future for Kid<'s, 'e> {
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        this.polls += 1;
        POLLS.with(|p| p.set(p.get() + 1));
        let first = this.polls == 1;
        let ctx = this.ctx;
        ctx.check(this.n, &format!("kid {} poll {}", this.id, this.polls));
        if let Some(outer) = this.outer {
            outer();
        }
        let out = match this.act {
            Act::YieldOnce | Act::YieldThenFail | Act::YieldThenPanic if first => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Act::CloneWake if first => {
                let w = cx.waker().clone();
                w.wake_by_ref();
                this.clone = Some(w);
                Poll::Pending
            }
            Act::Park if first => {
                ctx.parked.borrow_mut().push(cx.waker().clone());
                Poll::Pending
            }
            Act::WakeParked => {
                ctx.parked.take().into_iter().for_each(Waker::wake);
                Poll::Ready(Ok(()))
            }
            Act::Spawn(k) => {
                for i in 0..k {
                    let act = if i % 2 == 0 || ctx.spawn_only_ready.get() {
                        Act::Ready
                    } else {
                        Act::YieldOnce
                    };
                    drop(spawn_kid(this.n, ctx, this.outer, act));
                }
                Poll::Ready(Ok(()))
            }
            Act::AwaitLater(j) => {
                if first {
                    this.waiting = ctx.handles.borrow_mut().get_mut(j).and_then(Option::take);
                }
                match this.waiting.as_mut() {
                    Some(h) => Pin::new(h).poll(cx),
                    None => Poll::Ready(Ok(())),
                }
            }
            Act::Nested(k) => {
                if first {
                    let (n, ctx) = (this.n, this.ctx);
                    let own: Check<'s> = Box::leak(Box::new(move || ctx.check(n, "outer")));
                    let inner: Pin<Box<dyn Future<Output = R> + 's>> =
                        Box::pin(inner_nursery(k, own));
                    this.inner = Some(inner);
                }
                this.inner.as_mut().expect("set above").as_mut().poll(cx)
            }
            Act::Fail | Act::YieldThenFail => Poll::Ready(Err(this.id as u32)),
            Act::Panic | Act::YieldThenPanic => panic!("kid {} panics", this.id),
            Act::Ready | Act::YieldOnce | Act::CloneWake | Act::Park => Poll::Ready(Ok(())),
        };
        if out.is_ready() {
            this.ended = true;
            ctx.c.ended.set(ctx.c.ended.get() + 1);
        }
        out
    }
}

impl Drop for Kid<'_, '_> {
    fn drop(&mut self) {
        if !self.ended {
            // Dropped unfinished (a cancel): it no longer counts as running.
            self.ctx.c.dropped.set(self.ctx.c.dropped.get() + 1);
            self.ctx
                .check(self.n, &format!("drop of unfinished kid {}", self.id));
        }
    }
}

fn inner_nursery<'o>(k: u32, outer: Check<'o>) -> impl Future<Output = R> + 'o {
    nursery!(move |m| {
        let ictx = ctx(counts());
        for i in 0..k {
            let act = match i % 4 {
                0 => Act::Ready,
                1 => Act::YieldOnce,
                2 => Act::CloneWake,
                _ => Act::Spawn(2),
            };
            drop(spawn_kid(m, ictx, Some(outer), act));
        }
        ictx.check(m, "inner body");
        while m.running() > 0 {
            yield_now().await;
            ictx.check(m, "inner body loop");
        }
        Ok(())
    })
}

/// Every kind of record in one batch, `len` of them.
fn plan(len: usize) -> Vec<Act> {
    (0..len)
        .map(|i| match i % 10 {
            0 | 7 => Act::Ready,
            1 => Act::YieldOnce,
            2 => Act::CloneWake,
            3 => Act::Park,
            4 => Act::Spawn(3),
            5 if i + 7 < len => Act::AwaitLater(i + 7),
            6 if i % 40 == 6 => Act::Nested(9),
            8 => Act::WakeParked,
            _ => Act::Ready,
        })
        .collect()
}

/// `running()` equals "spawned minus finished" at every poll of every kid, in the fresh
/// records' walk, the yielded records' walk, materialised records and nodes, with kids that
/// spawn kids of their own type mid-walk, and from kids of a nursery nested in a batched kid
/// (checking both nurseries).
#[test]
fn running_is_exact_with_reentrant_spawns_nested_nurseries_and_awaited_handles() {
    let len = if cfg!(miri) { 90 } else { 400 };
    take_bad();
    let c = counts();
    finish(nursery!(|n| {
        let ctx = ctx(c);
        for act in plan(len) {
            let h = spawn_kid(n, ctx, None, act);
            ctx.handles.borrow_mut().push(Some(h));
        }
        ctx.check(n, "body");
        // Awaited before their kids ran: materialised fresh.
        for j in [len - 1, len / 2 + 3] {
            let h = ctx.handles.borrow_mut()[j].take();
            if let Some(h) = h {
                h.await.expect("no kid fails");
            }
            ctx.check(n, "body after await");
        }
        while n.running() > 0 {
            ctx.parked.take().into_iter().for_each(Waker::wake);
            yield_now().await;
            ctx.check(n, "body loop");
        }
        drop(ctx.handles.take());
        Ok(())
    }))
    .expect("no kid fails");
    assert_none_bad("running");
    let (spawned, ended) = (c.spawned.get(), c.ended.get());
    assert_eq!((spawned, c.dropped.get()), (ended, 0));
    let extra: u32 = plan(len)
        .iter()
        .map(|a| if let Act::Spawn(k) = a { *k } else { 0 })
        .sum();
    assert_eq!(spawned, len + extra as usize);
}

/// Where the nursery fails or a kid panics, `running()` read in the drop of every unfinished
/// kid (the cancel) is exact: the walk counted the kids it finished off before the cancel
/// began, including the failed one.
#[test]
fn running_is_exact_in_every_cancel_drop_after_a_failure_or_panic_in_a_walk() {
    let len = if cfg!(miri) { 60 } else { 300 };
    for failing in [
        Act::Fail,
        Act::YieldThenFail,
        Act::Panic,
        Act::YieldThenPanic,
    ] {
        for at in [0, 1, 45, len - 1] {
            for awaited in [false, true] {
                take_bad();
                let c = counts();
                let run = catch_unwind(AssertUnwindSafe(|| {
                    finish(nursery!(|n| {
                        let ctx = ctx(c);
                        let mut acts = plan(len);
                        acts[at] = failing;
                        for act in acts {
                            let h = spawn_kid(n, ctx, None, act);
                            ctx.handles.borrow_mut().push(Some(h));
                        }
                        if awaited {
                            // The failing kid materialised before its first poll.
                            let h = ctx.handles.borrow_mut()[at].take();
                            if let Some(h) = h {
                                h.await?;
                            }
                        }
                        while n.running() > 0 {
                            ctx.parked.take().into_iter().for_each(Waker::wake);
                            yield_now().await;
                        }
                        Ok(())
                    }))
                }));
                let what = format!("{failing:?} at {at}, awaited {awaited}");
                match failing {
                    Act::Fail | Act::YieldThenFail => {
                        assert_eq!(run.expect("no panic"), Err(at as u32), "{what}");
                    }
                    _ => assert!(run.is_err(), "{what}: the panic resumes"),
                }
                assert_none_bad(&what);
                let (spawned, ended, dropped) = (c.spawned.get(), c.ended.get(), c.dropped.get());
                assert!(spawned >= len, "{what}");
                assert_eq!(ended + dropped, spawned, "{what}");
                if at < 40 && matches!(failing, Act::Fail | Act::Panic) {
                    // The records after it were never polled.
                    assert!(dropped > len - at - 5, "{what}: {dropped} dropped");
                }
            }
        }
    }
}

/// Counts the polls of the future it wraps (a nursery's body) in `POLLS`.
struct Counted<F>(F);

impl<F: Future + Unpin> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        POLLS.with(|p| p.set(p.get() + 1));
        Pin::new(&mut self.0).poll(cx)
    }
}

struct CountWakes(AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A turn polls exactly 128 futures (kids and the body) while more are ready, when the
/// batch holds records that are awaited before they ran (by the body or a sibling), kids
/// that pend on a sibling's handle, and kids that spawn siblings of their own type.
#[test]
fn every_full_turn_polls_exactly_the_budget_with_materialised_and_respawning_records() {
    let len = if cfg!(miri) { 400 } else { 1_500 };
    let acts: Vec<Act> = (0..len)
        .map(|i| match i % 7 {
            1 => Act::Spawn(2),
            3 if i + 40 < len => Act::AwaitLater(i + 40),
            5 if i + 300 < len => Act::AwaitLater(i + 300),
            _ => Act::Ready,
        })
        .collect();
    let mut fut = pin!(nursery!(move |n| {
        Counted(Box::pin(async move {
            let ctx = ctx(counts());
            ctx.spawn_only_ready.set(true);
            for &act in &acts {
                let h = spawn_kid(n, ctx, None, act);
                ctx.handles.borrow_mut().push(Some(h));
            }
            for j in [len / 3, len - 2] {
                let h = ctx.handles.borrow_mut()[j].take();
                if let Some(h) = h {
                    h.await.expect("no kid fails");
                }
            }
            drop(ctx.handles.take());
            Ok(())
        }))
        .await
    }));
    let wakes = Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&wakes));
    let mut cx = Context::from_waker(&waker);
    let mut per_turn = Vec::new();
    POLLS.with(|p| p.set(0));
    loop {
        let before = POLLS.with(Cell::get);
        let poll = fut.as_mut().poll(&mut cx);
        per_turn.push(POLLS.with(Cell::get) - before);
        if let Poll::Ready(out) = poll {
            assert_eq!(out, Ok(()));
            break;
        }
        assert!(per_turn.len() < 10_000, "the nursery does not finish");
    }
    let (last, full) = per_turn.split_last().expect("polled");
    assert!(
        full.iter().all(|&p| p == 128),
        "polls per turn: {per_turn:?}"
    );
    assert!(*last <= 128 && *last > 0, "polls per turn: {per_turn:?}");
    assert_eq!(wakes.0.load(Ordering::SeqCst), full.len());
}

/// Batches of futures whose records are 4-aligned with a size that is not a multiple of 8
/// (an 8-byte head and a 1- or 2-byte future): every output arrives. Under Miri, an aligned
/// 8-byte store to a record's head (as `Core::append` had) is reported as undefined behaviour
/// here.
#[test]
fn batches_of_one_and_two_byte_futures() {
    let sum = finish(nursery!(|n| {
        for _ in 0..20 {
            drop(n.spawn(async {}));
        }
        let handles: Vec<_> = (0..40u8).map(|k| n.spawn(async move { k })).collect();
        let mut sum = 0u32;
        for h in handles {
            sum += u32::from(h.await);
        }
        sum
    }));
    assert_eq!(sum, (0..40).sum::<u32>());
}

/// Panics in `Drop` when told to.
struct Boom(bool);

impl Drop for Boom {
    fn drop(&mut self) {
        if self.0 {
            panic!("output drop");
        }
    }
}

/// A child that finishes in its first poll, or yields once first, with an output whose drop
/// panics for one of them; its own drop, unfinished (a cancel's), checks `running()`.
struct Dropper<'s, 'e> {
    n: &'s Scope<'s, 'e, ()>,
    /// Children neither finished nor dropped.
    live: &'s Cell<usize>,
    boom: bool,
    yields: bool,
    polls: u32,
    done: bool,
}

impl Future for Dropper<'_, '_> {
    type Output = Boom;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Boom> {
        let this = self.get_mut();
        this.polls += 1;
        if this.yields && this.polls == 1 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        this.done = true;
        this.live.set(this.live.get() - 1);
        Poll::Ready(Boom(this.boom))
    }
}

impl Drop for Dropper<'_, '_> {
    fn drop(&mut self) {
        if !self.done {
            self.live.set(self.live.get() - 1);
            if self.n.running() != self.live.get() {
                bad(format!(
                    "running() {} in a cancel's drop, want {}",
                    self.n.running(),
                    self.live.get()
                ));
            }
        }
    }
}

/// A batched child's output whose drop panics (its handle was dropped, so the output is
/// dropped as the child finishes), in the child's first poll (the walk of fresh records) or
/// in its second (the walk of records that yielded): the nursery ends with that panic, every
/// other child finishes or is dropped once, and `running()` read in those drops is exact.
#[test]
fn a_panicking_output_drop_in_either_walk_ends_the_nursery_with_that_panic() {
    const N: usize = 60;
    for yields in [false, true] {
        take_bad();
        let live = Cell::new(N);
        let run = catch_unwind(AssertUnwindSafe(|| {
            block_on(nursery!(|n| {
                for k in 0..N {
                    drop(n.spawn(Dropper {
                        n,
                        live: &live,
                        boom: k == 20,
                        yields,
                        polls: 0,
                        done: false,
                    }));
                }
            }))
        }));
        let what = if yields { "yielded walk" } else { "fresh walk" };
        let panic = run.expect_err("the output's drop panics");
        assert_eq!(panic.downcast_ref::<&str>(), Some(&"output drop"), "{what}");
        assert_none_bad(what);
        assert_eq!(
            live.get(),
            0,
            "{what}: every child finished or was dropped once"
        );
    }
}
