//! Children spawned one after another with the same type (a spawn loop's "batch"), seen from
//! outside: outputs, handles awaited in any order or before their child ran, wakers cloned in
//! a child's first poll (woken by a sibling, another thread, the child itself, or stale after
//! the child finished), cancellation and panics in the middle of such a run, children spawning
//! siblings of their own type, the turn budget, memory of a long-lived nursery, and futures
//! that are large, zero-sized or over-aligned.
//!
//! Public API only: these tests describe what the nursery does, whatever the layout of its
//! storage, so that a new layout for same-typed children is checked against the old one's
//! behaviour. Where the exact order is not spelled out in the rustdoc, the test says that it
//! pins the order the nursery had when it was written (the contract for the new layout).
//!
//! The binary counts allocations (stats_alloc is its global allocator), and that counter is
//! global: every test takes [`serial`] first.

use std::alloc::System;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::{Future, pending, poll_fn};
use std::marker::PhantomPinned;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, mpsc};
use std::task::{Context, Poll, Wake, Waker};

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use structured_async::{ChildHandle, Scope, block_on, nursery, timeout, yield_now};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The allocation counter is global: tests in this binary take turns.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs `fut` on the runtime's `block_on`, failing the test instead of hanging it if the
/// future never finishes (a lost wake): a watchdog far beyond the tests' fraction of a second,
/// not a measurement.
fn finish<F: Future>(fut: F) -> F::Output {
    block_on(timeout(std::time::Duration::from_secs(120), fut))
        .expect("the nursery finished (a lost wake would leave it pending forever)")
}

/// An ordered record of events.
type Log = RefCell<Vec<String>>;

fn push(log: &Log, event: impl Into<String>) {
    log.borrow_mut().push(event.into());
}

/// Logs `drop NAME` when dropped.
struct Tag<'a> {
    log: &'a Log,
    name: String,
}

fn tag<'a>(log: &'a Log, name: impl Into<String>) -> Tag<'a> {
    Tag {
        log,
        name: name.into(),
    }
}

impl Drop for Tag<'_> {
    fn drop(&mut self) {
        push(self.log, format!("drop {}", self.name));
    }
}

/// Counts the wakes of whoever polls the nursery.
struct CountWakes(AtomicUsize);

impl Wake for CountWakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What driving a future by hand saw.
struct Driven<T> {
    output: T,
    /// Polls that returned `Pending`.
    pendings: usize,
    /// Wakes of the driver's waker.
    wakes: usize,
}

/// Polls `fut` with a counting waker until it is ready, calling `after_poll` after every poll
/// (`Pending` or not). Only for futures that never wait on another thread.
fn drive<F: Future>(fut: F, mut after_poll: impl FnMut()) -> Driven<F::Output> {
    let mut fut = pin!(fut);
    let counter = Arc::new(CountWakes(AtomicUsize::new(0)));
    let waker = Waker::from(Arc::clone(&counter));
    let mut cx = Context::from_waker(&waker);
    let mut pendings = 0;
    loop {
        let poll = fut.as_mut().poll(&mut cx);
        after_poll();
        match poll {
            Poll::Ready(output) => {
                return Driven {
                    output,
                    pendings,
                    wakes: counter.0.load(Ordering::SeqCst),
                };
            }
            Poll::Pending => pendings += 1,
        }
        assert!(pendings < 100_000, "the nursery does not finish");
    }
}

/// A tiny deterministic generator (xorshift64*), for shuffled orders.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) as usize % n
    }

    fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Outputs of one type's run, awaited in any order; outputs whose handle was dropped.

/// One child type for a whole spawn loop: every fifth child pends once on the way.
async fn square(i: u64, first_polls: &RefCell<Vec<u64>>) -> u64 {
    first_polls.borrow_mut().push(i);
    if i % 5 == 3 {
        yield_now().await;
    }
    i * i + 1
}

/// 300 children of one type (more than a turn's budget), their handles awaited in reverse
/// spawn order (the first awaited before any child ran) and in two shuffled orders: every
/// handle gets its own child's output, and children still start in spawn order.
#[test]
fn a_runs_outputs_reach_their_handles_in_reverse_and_shuffled_order() {
    let _turn = serial();
    const CHILDREN: u64 = 300;
    for seed in [0, 0x9e37_79b9_7f4a_7c15, 0xdead_beef_cafe_f00d] {
        let first_polls = RefCell::new(Vec::new());
        let first_polls = &first_polls;
        let got = finish(nursery!(|n| {
            let mut handles: Vec<(u64, ChildHandle<'_, u64>)> = (0..CHILDREN)
                .map(|i| (i, n.spawn(square(i, first_polls))))
                .collect();
            if seed == 0 {
                handles.reverse();
            } else {
                Rng(seed).shuffle(&mut handles);
            }
            let mut got = Vec::new();
            for (i, h) in handles {
                got.push((i, h.await));
            }
            got
        }));
        assert_eq!(got.len(), CHILDREN as usize);
        for (i, out) in got {
            assert_eq!(out, i * i + 1, "child {i}, seed {seed:#x}");
        }
        assert_eq!(first_polls.take(), (0..CHILDREN).collect::<Vec<_>>());
    }
}

/// An output that logs its drop.
struct Out<'a> {
    id: u32,
    log: &'a Log,
}

impl Drop for Out<'_> {
    fn drop(&mut self) {
        push(self.log, format!("drop out {}", self.id));
    }
}

/// Pends until [`Gate::open`], keeping a clone of the waker of its first poll only.
#[derive(Default)]
struct Gate {
    open: Cell<bool>,
    waiters: RefCell<Vec<Waker>>,
}

impl Gate {
    async fn wait(&self) {
        let mut registered = false;
        poll_fn(|cx| {
            if self.open.get() {
                return Poll::Ready(());
            }
            if !registered {
                registered = true;
                self.waiters.borrow_mut().push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// Opens the gate and wakes the waiters in the order they came.
    fn open(&self) {
        self.open.set(true);
        for waker in self.waiters.take() {
            waker.wake();
        }
    }
}

/// One child type: waits at `gate` if given, logs `end ID`, returns an [`Out`].
async fn made<'a>(id: u32, gate: Option<&Gate>, log: &'a Log) -> Out<'a> {
    if let Some(gate) = gate {
        gate.wait().await;
    }
    push(log, format!("end {id}"));
    Out { id, log }
}

/// Outputs of a run of one type whose handles are dropped: an output is dropped exactly once,
/// when its child finishes if the handle was gone by then, or when the handle drops if the
/// child had finished first; an awaited output is the caller's to drop.
#[test]
fn outputs_of_dropped_handles_are_dropped_once_when_both_are_gone() {
    let _turn = serial();
    let log = Log::default();
    let gate = Gate::default();
    let (log, gate) = (&log, &gate);
    finish(nursery!(|n| {
        let mut hs: Vec<Option<ChildHandle<'_, Out<'_>>>> = (0..6)
            .map(|id| {
                let waits = id == 2 || id == 4;
                Some(n.spawn(made(id, waits.then_some(gate), log)))
            })
            .collect();
        for id in [0, 2] {
            push(log, format!("drop handle {id}"));
            hs[id] = None;
        }
        // Runs 0, 1, 3, 5 to their end (2 and 4 wait at the gate).
        let five = hs[5].take().expect("handle 5").await;
        push(log, format!("got {}", five.id));
        drop(five);
        for id in [1, 3] {
            push(log, format!("drop handle {id}"));
            hs[id] = None;
        }
        gate.open();
        push(log, "drop handle 4");
        hs[4] = None;
        // Child 2 finishes first (its handle is long gone), then child 4.
        while n.running() > 0 {
            yield_now().await;
        }
        push(log, "body end");
    }));
    let want = [
        "drop handle 0",
        "drop handle 2",
        "end 0",
        "drop out 0",
        "end 1",
        "end 3",
        "end 5",
        "got 5",
        "drop out 5",
        "drop handle 1",
        "drop out 1",
        "drop handle 3",
        "drop out 3",
        "drop handle 4",
        "end 2",
        "drop out 2",
        "end 4",
        "drop out 4",
        "body end",
    ];
    assert_eq!(log.take(), want);
}

// ---------------------------------------------------------------------------------------------
// 2. A handle awaited before its child was ever polled.

/// Handles parked for [`relay`]s, by id.
type Slots<'s> = RefCell<Vec<Option<ChildHandle<'s, u32>>>>;

/// One child type: takes the handle parked for it in `slots[id]` (if any), awaits it, and
/// returns `id * 10` plus what it awaited.
async fn relay<'s>(id: u32, slots: Rc<Slots<'s>>, log: &Log) -> u32 {
    push(log, format!("poll {id}"));
    let parked = slots.borrow_mut()[id as usize].take();
    let mut out = id * 10;
    if let Some(h) = parked {
        out += h.await;
        push(log, format!("{id} got its handle's output"));
    }
    out
}

/// In a run of ten same-typed children, the body awaits child 6 and child 2 awaits child 7,
/// both before any child was polled: each await gets its child's output, each awaiting
/// child is polled exactly twice (it pends on the handle, then is woken by the child's end),
/// and the run's first polls keep spawn order, then the awaiters' second polls in the order
/// they were woken (the body by child 6's end, then child 2 by child 7's).
#[test]
fn a_handle_awaited_before_its_child_ran_in_the_middle_of_a_run() {
    let _turn = serial();
    let log = Log::default();
    let log = &log;
    let (body_got, outs) = finish(nursery!(|n| {
        // Children cannot borrow the body's locals (they may outlive the body), and `'scope`
        // cannot be named outside it: a shared cell carries the handle to the sibling.
        let slots = Rc::new(RefCell::new((0..10).map(|_| None).collect::<Vec<_>>()));
        let hs: Vec<_> = (0..10)
            .map(|id| n.spawn(relay(id, Rc::clone(&slots), log)))
            .collect();
        let mut hs: Vec<Option<_>> = hs.into_iter().map(Some).collect();
        slots.borrow_mut()[2] = hs[7].take();
        // Not polled yet: awaiting it is the first thing the body does after the spawns.
        let body_got = hs[6].take().expect("handle 6").await;
        push(log, "body got 6");
        let mut outs = Vec::new();
        for h in hs.into_iter().flatten() {
            outs.push(h.await);
        }
        (body_got, outs)
    }));
    assert_eq!(body_got, 60);
    // Children 0..10 without 6 and 7; child 2 added child 7's 70.
    assert_eq!(outs, [0, 10, 20 + 70, 30, 40, 50, 80, 90]);
    let mut want: Vec<String> = (0..10).map(|id| format!("poll {id}")).collect();
    want.push("body got 6".into());
    want.push("2 got its handle's output".into());
    assert_eq!(log.take(), want);
}

// ---------------------------------------------------------------------------------------------
// 3. and 4. Wakers cloned in a child's first poll.

/// What a [`member`] does when polled.
#[derive(Clone, Copy, Debug)]
enum Plan {
    /// Ready at once.
    Ready,
    /// First poll: parks a clone of its waker in the board and pends; ready when polled again.
    Park,
    /// First poll: parks a clone of its waker; pends `times` times, never cloning again.
    ParkKeep(u32),
    /// Wakes (by value) the waker `id` parked, then is ready.
    WakeParked(usize),
    /// First poll: wakes a clone of its own waker (by value) and pends; then ready.
    WakeClone,
    /// First poll: wakes its own waker (`cx.waker().wake_by_ref()`) and pends; then ready.
    WakeByRef,
    /// First poll: hands a clone of its waker to the board's thread and pends; then ready.
    Thread,
    /// Parks a clone of its waker, then is ready at once: the clone is stale.
    ParkThenReady,
    /// First poll: parks a clone of its waker; pends at every poll until released.
    Hold,
}

/// What [`member`]s share: per-child poll counts, the order of polls, parked wakers.
struct Board {
    polls: Vec<Cell<u32>>,
    order: RefCell<Vec<usize>>,
    parked: RefCell<HashMap<usize, Waker>>,
    released: Vec<Cell<bool>>,
    to_thread: Option<mpsc::Sender<Waker>>,
}

impl Board {
    fn new(children: usize) -> Self {
        Board {
            polls: (0..children).map(|_| Cell::new(0)).collect(),
            order: RefCell::new(Vec::new()),
            parked: RefCell::new(HashMap::new()),
            released: (0..children).map(|_| Cell::new(false)).collect(),
            to_thread: None,
        }
    }

    fn polls(&self) -> Vec<u32> {
        self.polls.iter().map(Cell::get).collect()
    }

    fn total(&self) -> u32 {
        self.polls.iter().map(Cell::get).sum()
    }

    fn parked(&self, id: usize) -> Waker {
        self.parked.borrow()[&id].clone()
    }
}

/// The one child type of these tests: what it does is data (`plan`), not type.
async fn member(id: usize, plan: Plan, board: &Board) -> usize {
    let mut polls = 0u32;
    poll_fn(|cx| {
        polls += 1;
        board.polls[id].set(board.polls[id].get() + 1);
        board.order.borrow_mut().push(id);
        let first = polls == 1;
        match plan {
            Plan::Ready => Poll::Ready(id),
            Plan::Park if first => {
                board.parked.borrow_mut().insert(id, cx.waker().clone());
                Poll::Pending
            }
            Plan::ParkKeep(times) => {
                if first {
                    board.parked.borrow_mut().insert(id, cx.waker().clone());
                }
                if polls <= times {
                    Poll::Pending
                } else {
                    Poll::Ready(id)
                }
            }
            Plan::WakeParked(other) => {
                let waker = board.parked.borrow_mut().remove(&other);
                waker.expect("a parked waker").wake();
                Poll::Ready(id)
            }
            Plan::WakeClone if first => {
                // A clone made in the first poll, not `cx.waker()` itself.
                let clone = cx.waker().clone();
                clone.wake();
                Poll::Pending
            }
            Plan::WakeByRef if first => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Plan::Thread if first => {
                let to = board.to_thread.as_ref().expect("a thread");
                to.send(cx.waker().clone()).expect("the thread listens");
                Poll::Pending
            }
            Plan::Hold => {
                if first {
                    board.parked.borrow_mut().insert(id, cx.waker().clone());
                }
                if board.released[id].get() {
                    Poll::Ready(id)
                } else {
                    Poll::Pending
                }
            }
            Plan::ParkThenReady => {
                board.parked.borrow_mut().insert(id, cx.waker().clone());
                Poll::Ready(id)
            }
            Plan::Park | Plan::WakeClone | Plan::WakeByRef | Plan::Thread => Poll::Ready(id),
        }
    })
    .await
}

/// Every other child of a run parks its waker in its first poll and the next one (same
/// type) wakes it: each parked child is polled exactly twice, the others once, all in the
/// nursery's first turn (1 + 40 + 20 polls, within its budget), first polls in spawn order,
/// then the woken ones in the order they were woken.
#[test]
fn a_sibling_wakes_a_child_that_parked_its_first_polls_waker() {
    let _turn = serial();
    const CHILDREN: usize = 40;
    let board = Board::new(CHILDREN);
    let board = &board;
    let driven = drive(
        nursery!(|n| {
            for id in 0..CHILDREN {
                let plan = if id % 2 == 0 {
                    Plan::Park
                } else {
                    Plan::WakeParked(id - 1)
                };
                n.spawn(member(id, plan, board));
            }
        }),
        || {},
    );
    assert_eq!(driven.pendings, 0, "one turn");
    let want: Vec<u32> = (0..CHILDREN).map(|id| 2 - (id % 2) as u32).collect();
    assert_eq!(board.polls(), want);
    let mut order: Vec<usize> = (0..CHILDREN).collect();
    order.extend((0..CHILDREN).step_by(2));
    assert_eq!(board.order.take(), order);
}

/// Children that wake themselves in their first poll, through a clone of their waker (woken
/// by value) or through `cx.waker()` itself, are polled exactly twice, the rest of the run
/// once; the run of 60 (40 of them pending once) finishes in the nursery's first turn, the
/// pending ones' second polls after every first poll, in spawn order.
#[test]
fn a_child_that_wakes_itself_in_its_first_poll_runs_again_once() {
    let _turn = serial();
    const CHILDREN: usize = 60;
    let board = Board::new(CHILDREN);
    let board = &board;
    let plan = |id: usize| match id % 3 {
        1 => Plan::WakeClone,
        2 => Plan::WakeByRef,
        _ => Plan::Ready,
    };
    let driven = drive(
        nursery!(|n| {
            for id in 0..CHILDREN {
                n.spawn(member(id, plan(id), board));
            }
        }),
        || {},
    );
    assert_eq!(driven.pendings, 0, "one turn");
    let want: Vec<u32> = (0..CHILDREN).map(|id| 1 + u32::from(id % 3 != 0)).collect();
    assert_eq!(board.polls(), want);
    let mut order: Vec<usize> = (0..CHILDREN).collect();
    order.extend((0..CHILDREN).filter(|id| id % 3 != 0));
    assert_eq!(board.order.take(), order);
}

/// Three children in the middle of a run hand their first poll's waker to another thread;
/// then 1,000 more children of the same type are spawned and finish; then the thread wakes
/// the three (in reverse): each of them is polled exactly twice, every other child once, and
/// the nursery (a `Local` tree, under the runtime's `block_on`) finishes.
#[test]
fn a_thread_wakes_first_poll_wakers_after_a_thousand_siblings_came_and_went() {
    let _turn = serial();
    const FIRST_RUN: usize = 30;
    const LATER: usize = 1_000;
    let (to_thread, wakers) = mpsc::channel::<Waker>();
    let (go, gone) = mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let mut got: Vec<Waker> = (0..3).map(|_| wakers.recv().expect("a waker")).collect();
        gone.recv().expect("the go signal");
        while let Some(waker) = got.pop() {
            waker.wake();
        }
    });
    let mut board = Board::new(FIRST_RUN + LATER);
    board.to_thread = Some(to_thread);
    let board = &board;
    finish(nursery!(|n| {
        let mut first = Vec::new();
        for id in 0..FIRST_RUN {
            let plan = if id % 10 == 5 {
                Plan::Thread
            } else {
                Plan::Ready
            };
            let h = n.spawn(member(id, plan, board));
            if matches!(plan, Plan::Ready) {
                first.push(h);
            }
        }
        for h in first {
            h.await;
        }
        for burst in 0..10 {
            let hs: Vec<_> = (0..LATER / 10)
                .map(|k| {
                    n.spawn(member(
                        FIRST_RUN + burst * LATER / 10 + k,
                        Plan::Ready,
                        board,
                    ))
                })
                .collect();
            for h in hs {
                h.await;
            }
        }
        assert_eq!(
            board.total() as usize,
            FIRST_RUN + LATER,
            "none ran twice yet"
        );
        go.send(()).expect("the thread waits");
    }));
    thread.join().expect("the waking thread");
    let want: Vec<u32> = (0..FIRST_RUN + LATER)
        .map(|id| 1 + u32::from(id < FIRST_RUN && id % 10 == 5))
        .collect();
    assert_eq!(board.polls(), want);
}

/// The one child type of the race tests: polls counted in `polls[id]`; a racer hands a clone
/// of its first poll's waker to a new thread that wakes it at once, maybe before the first
/// poll has returned `Pending`.
async fn racer(id: usize, races: bool, polls: Arc<[AtomicUsize]>) {
    let mut sent = false;
    poll_fn(|cx| {
        polls[id].fetch_add(1, Ordering::SeqCst);
        if sent || !races {
            return Poll::Ready(());
        }
        sent = true;
        let waker = cx.waker().clone();
        std::thread::spawn(move || waker.wake());
        Poll::Pending
    })
    .await
}

/// Every fifth child of a run of 50 (one type) is woken from another thread while, or just
/// after, its first poll returns `Pending`: each is polled exactly twice (the wake is neither
/// lost nor doubled), the rest once; in a `Local` tree under `block_on` and in a `send`
/// nursery run on another thread, 20 times each.
#[test]
fn a_wake_racing_the_first_poll_from_another_thread_polls_that_child_once_more() {
    let _turn = serial();
    const CHILDREN: usize = 50;
    let races = |id: usize| id % 5 == 2;
    let want: Vec<usize> = (0..CHILDREN).map(|id| 1 + usize::from(races(id))).collect();
    let fresh = || -> Arc<[AtomicUsize]> { (0..CHILDREN).map(|_| AtomicUsize::new(0)).collect() };
    let counts = |polls: &[AtomicUsize]| -> Vec<usize> {
        polls.iter().map(|p| p.load(Ordering::SeqCst)).collect()
    };
    for _ in 0..20 {
        let polls = fresh();
        finish(nursery!(|n| {
            for id in 0..CHILDREN {
                n.spawn(racer(id, races(id), Arc::clone(&polls)));
            }
        }));
        assert_eq!(counts(&polls), want, "local tree");

        let polls = fresh();
        let shared = Arc::clone(&polls);
        let fut = nursery!(send move |n| {
            for id in 0..CHILDREN {
                n.spawn(racer(id, races(id), Arc::clone(&shared)));
            }
        });
        std::thread::spawn(move || finish(fut))
            .join()
            .expect("the send nursery");
        assert_eq!(counts(&polls), want, "send tree");
    }
}

/// Three children in the middle of a run park their first poll's waker; bursts of 500 more
/// children of the same type are spawned and finish (some probably in memory the first run
/// used); then each parked waker, woken by the body, polls exactly its own child once, and
/// no other child. A fourth child keeps its first poll's waker (never cloning another) and
/// pends five times: each wake through that first clone polls it, and only it.
#[test]
fn a_first_poll_waker_wakes_only_its_own_child_after_bursts_of_siblings() {
    let _turn = serial();
    const FIRST_RUN: usize = 100;
    const BURSTS: usize = 5;
    const BURST: usize = 500;
    const KEEPER: usize = 70;
    let board = Board::new(FIRST_RUN + BURSTS * BURST);
    let board = &board;
    let driven = drive(
        nursery!(|n| {
            for id in 0..FIRST_RUN {
                let plan = match id {
                    5 | 50 | 95 => Plan::Park,
                    KEEPER => Plan::ParkKeep(5),
                    _ => Plan::Ready,
                };
                drop(n.spawn(member(id, plan, board)));
            }
            while board.total() < FIRST_RUN as u32 {
                yield_now().await;
            }
            for burst in 0..BURSTS {
                let first = FIRST_RUN + burst * BURST;
                for id in first..first + BURST {
                    drop(n.spawn(member(id, Plan::Ready, board)));
                }
                while n.running() > 4 {
                    yield_now().await;
                }
            }
            for id in [95, 5, KEEPER, 50, KEEPER, KEEPER, KEEPER, KEEPER] {
                let before = board.polls();
                let waker = board.parked(id);
                waker.wake();
                let mut yields = 0;
                while board.total() == before.iter().sum::<u32>() {
                    yield_now().await;
                    yields += 1;
                    assert!(yields < 10, "the wake of child {id} was lost");
                }
                let mut want = before;
                want[id] += 1;
                assert_eq!(board.polls(), want, "the wake of child {id}");
            }
            assert_eq!(n.running(), 0);
        }),
        || {},
    );
    // The nursery wakes itself when its budget is spent; nothing else wakes it.
    assert_eq!(driven.pendings, driven.wakes);
    let want: Vec<u32> = (0..board.polls.len())
        .map(|id| match id {
            5 | 50 | 95 => 2,
            KEEPER => 6,
            _ => 1,
        })
        .collect();
    assert_eq!(board.polls(), want);
}

/// A child parks a clone of its waker in its first poll and returns `Ready` in that same
/// poll, so the clone is stale. Its handle was dropped, so its memory is free for the next
/// run of the same type, all of whose children park their first poll's waker and stay
/// pending (a spurious poll finds them still waiting). Waking the stale clone three times
/// must poll no child but, at most, the one that took the finished child's place, once per
/// stale wake: a stale wake is a spurious poll of one child, never of a whole run. Then each
/// parked child, released and woken by its own waker, is polled exactly once more.
///
/// Measured on the nursery this test was written against: 3 extra polls, all of one child
/// (child 32: the finished child's wake node went to it, so each stale wake is a spurious
/// poll of that child, which futures must tolerate); a nursery with no such extra poll
/// passes too.
#[test]
fn a_stale_clone_from_a_first_poll_that_finished_polls_at_most_one_child() {
    let _turn = serial();
    const RUN: usize = 20;
    const STALE_WAKES: u32 = 3;
    let board = Board::new(2 * RUN);
    let board = &board;
    let mut extra = Vec::new();
    let driven = drive(
        nursery!(|n| {
            for id in 0..RUN {
                let plan = if id == 7 {
                    Plan::ParkThenReady
                } else {
                    Plan::Ready
                };
                drop(n.spawn(member(id, plan, board)));
            }
            while n.running() > 0 {
                yield_now().await;
            }
            for id in RUN..2 * RUN {
                drop(n.spawn(member(id, Plan::Hold, board)));
            }
            while board.total() < 2 * RUN as u32 {
                yield_now().await;
            }
            let before = board.polls();
            let stale = board.parked(7);
            for _ in 0..STALE_WAKES {
                stale.wake_by_ref();
                for _ in 0..3 {
                    yield_now().await;
                }
            }
            extra = board
                .polls()
                .iter()
                .zip(&before)
                .map(|(now, was)| now - was)
                .collect();
            for id in (RUN..2 * RUN).rev() {
                board.released[id].set(true);
                board.parked(id).wake();
            }
            while n.running() > 0 {
                yield_now().await;
            }
        }),
        || {},
    );
    assert_eq!(driven.pendings, driven.wakes);
    let hit: Vec<usize> = (0..2 * RUN).filter(|&id| extra[id] > 0).collect();
    assert!(hit.len() <= 1, "stale wakes polled children {hit:?}");
    assert!(
        hit.iter().all(|&id| id >= RUN),
        "a finished child was polled"
    );
    assert!(extra.iter().sum::<u32>() <= STALE_WAKES, "{extra:?}");
    let want: Vec<u32> = (0..2 * RUN)
        .map(|id| 1 + u32::from(id >= RUN) + extra[id])
        .collect();
    assert_eq!(board.polls(), want);
}

// ---------------------------------------------------------------------------------------------
// 5. and 6. Cancellation and panics while a run of one type is pending, finished or unpolled.

/// What a [`worker`] does when polled.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Act {
    /// Returns an output (logged `drop out ID` when dropped).
    Finish,
    /// Pends forever.
    Pend,
    /// Returns `Err`, ending the nursery.
    Fail,
    /// Panics.
    Panic,
}

/// The one child type of the cancel tests: holds `guard` (`drop fut ID` when the future is
/// dropped, which is also when it finishes) and logs `poll ID` when polled.
async fn worker<'a>(
    id: u32,
    act: Act,
    guard: Tag<'a>,
    log: &'a Log,
) -> Result<Tag<'a>, &'static str> {
    push(log, format!("poll {id}"));
    let _guard = guard;
    match act {
        Act::Finish => Ok(tag(log, format!("out {id}"))),
        Act::Pend => pending().await,
        Act::Fail => Err("fail"),
        Act::Panic => std::panic::panic_any("a worker panics"),
    }
}

/// The first twelve workers: every third one (1, 4, 7, 10) pends, the rest finish.
fn head_act(id: u32) -> Act {
    if id % 3 == 1 { Act::Pend } else { Act::Finish }
}

/// A nursery whose body holds a tag and every handle: it spawns workers 0..12
/// ([`head_act`]), yields once (they all run), then spawns one worker per `tail` entry
/// (ids 12..) and pends forever.
fn run_of_workers<'a>(
    log: &'a Log,
    tail: &'a [Act],
) -> impl Future<Output = Result<(), &'static str>> + 'a {
    nursery!(move |n| {
        let _body = tag(log, "body");
        let mut kept = Vec::new();
        for id in 0..12 {
            let guard = tag(log, format!("fut {id}"));
            kept.push(n.spawn(worker(id, head_act(id), guard, log)));
        }
        yield_now().await;
        push(log, "body resumed");
        for (k, &act) in tail.iter().enumerate() {
            let id = 12 + k as u32;
            kept.push(n.spawn(worker(id, act, tag(log, format!("fut {id}")), log)));
        }
        pending::<()>().await;
        Ok(())
    })
}

/// The log of the workers' polls: `poll ID` for each id in `ids`, followed at once by
/// `drop fut ID` for a worker that finished (its future is dropped as it ends).
fn polls_of(ids: impl IntoIterator<Item = u32>, act: impl Fn(u32) -> Act) -> Vec<String> {
    let mut log = Vec::new();
    for id in ids {
        log.push(format!("poll {id}"));
        if matches!(act(id), Act::Finish | Act::Fail | Act::Panic) {
            log.push(format!("drop fut {id}"));
        }
    }
    log
}

/// Dropping a nursery part-way through a long run of one type (finished children whose
/// handles hold their outputs, pending children, children never polled because the turn's
/// budget ran out) drops every future and every output exactly once, by slot (spawn order:
/// no slot was freed), and then the body, as the rustdoc of `nursery()` says.
#[test]
fn dropping_the_nursery_mid_run_drops_each_child_and_output_once_by_slot() {
    let _turn = serial();
    const TAIL: u32 = 200;
    let tail: Vec<Act> = (12..12 + TAIL).map(head_act).collect();
    let act = |id: u32| head_act(id);
    let log = Log::default();
    {
        let mut fut = Box::pin(run_of_workers(&log, &tail));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(fut);
    }
    // The first turn: the body, workers 0..12, the body again, then workers 12.. up to the
    // budget of 128 polls: 128 - 14 = 114 of the tail.
    let polled = 12 + 114;
    let mut want = polls_of(0..12, act);
    want.push("body resumed".into());
    want.extend(polls_of(12..polled, act));
    for id in 0..12 + TAIL {
        let finished = id < polled && act(id) == Act::Finish;
        want.push(format!(
            "drop {} {id}",
            if finished { "out" } else { "fut" }
        ));
    }
    want.push("drop body".into());
    assert_eq!(log.take(), want);
}

/// The workers after the first twelve for a run that ends at worker 14 (`end` is `Fail` or
/// `Panic`), and the log that ending must leave: the polls up to worker 14; then the body,
/// whose handles drop the outputs they hold in spawn order, then its tag; then the children
/// still alive, by slot: the pending ones and the unpolled tail.
fn ended_at_worker_14(end: Act) -> (Vec<Act>, Vec<String>) {
    let mut tail = vec![Act::Finish, Act::Pend, end];
    tail.extend((15..40).map(head_act));
    let act = |id: u32| {
        if id < 12 {
            head_act(id)
        } else {
            tail[id as usize - 12]
        }
    };
    let mut want = polls_of(0..12, act);
    want.push("body resumed".into());
    want.extend(polls_of(12..15, act));
    want.extend(
        (0..15)
            .filter(|&id| act(id) == Act::Finish)
            .map(|id| format!("drop out {id}")),
    );
    want.push("drop body".into());
    want.extend(
        (0..40)
            .filter(|&id| act(id) == Act::Pend || id >= 15)
            .map(|id| format!("drop fut {id}")),
    );
    (tail, want)
}

/// A worker's `Err` in the middle of a run of one type: the workers after it are never
/// polled; the body is dropped first (its handles drop the outputs they hold, in the order
/// the body holds them), then every child left, by slot; each future and output exactly
/// once. The nursery resolves to the error.
#[test]
fn an_err_in_a_run_drops_the_body_then_each_child_once_by_slot() {
    let _turn = serial();
    let (tail, want) = ended_at_worker_14(Act::Fail);
    let log = Log::default();
    let driven = drive(run_of_workers(&log, &tail), || {});
    assert_eq!(driven.output, Err("fail"));
    assert_eq!(driven.pendings, driven.wakes, "no wake was lost");
    assert_eq!(log.take(), want);
}

/// A worker that panics in the middle of a run of one type: the workers after it are never
/// polled, every future and output is dropped exactly once (the panicking worker's guard as
/// it unwinds; then the body with the outputs its handles hold; then the children left by
/// slot), and the panic resumes from the nursery.
#[test]
fn a_panic_in_a_run_drops_the_body_then_each_child_once_by_slot() {
    let _turn = serial();
    let (tail, want) = ended_at_worker_14(Act::Panic);
    let log = Log::default();
    let caught = catch_unwind(AssertUnwindSafe(|| {
        drive(run_of_workers(&log, &tail), || {});
    }));
    let payload = caught.expect_err("the worker's panic resumes");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"a worker panics"));
    assert_eq!(log.take(), want);
}

// ---------------------------------------------------------------------------------------------
// 7. Children spawning siblings of their own type from their first poll.

/// A child that spawns `spawns` siblings of its own type in its first poll (each spawning one
/// more, `depth` levels down), optionally pending once (waking itself) after that.
struct Fork<'scope, 'env> {
    n: &'scope Scope<'scope, 'env, ()>,
    name: String,
    spawns: u32,
    depth: u32,
    yields: bool,
    polls: u32,
    log: &'env Log,
}

fn fork<'scope, 'env>(
    n: &'scope Scope<'scope, 'env, ()>,
    name: impl Into<String>,
    spawns: u32,
    depth: u32,
    yields: bool,
    log: &'env Log,
) -> Fork<'scope, 'env> {
    Fork {
        n,
        name: name.into(),
        spawns,
        depth,
        yields,
        polls: 0,
        log,
    }
}

impl Future for Fork<'_, '_> {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let this = self.get_mut();
        this.polls += 1;
        if this.polls > 1 {
            push(this.log, format!("{} again", this.name));
            return Poll::Ready(this.name.len());
        }
        push(this.log, this.name.clone());
        for k in 0..this.spawns {
            let name = format!("{}.{k}", this.name);
            let more = u32::from(this.depth > 0);
            let depth = this.depth.saturating_sub(1);
            drop(
                this.n
                    .spawn(fork(this.n, name, more, depth, false, this.log)),
            );
        }
        if this.yields {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(this.name.len())
    }
}

/// A child of another type that spawns two `Fork`s.
async fn other<'scope, 'env>(n: &'scope Scope<'scope, 'env, ()>, log: &'env Log) -> usize {
    push(log, "B");
    for k in 0..2 {
        drop(n.spawn(fork(n, format!("B.{k}"), 0, 0, false, log)));
    }
    1
}

/// Types interleaved as A, A, B, A, A (A = `Fork`), where children of both types spawn `Fork`s
/// from their first poll and one A pends once after spawning: the exact order of polls.
///
/// The order is the one the nursery had when this test was written (the contract): the
/// queue is first in, first out; children spawned during a poll go to its end; a child that
/// woke itself runs again after everything queued in the turn's first lap.
#[test]
fn children_spawning_their_own_type_keep_a_first_in_first_out_order() {
    let _turn = serial();
    let log = Log::default();
    let log = &log;
    let driven = drive(
        nursery!(|n| {
            drop(n.spawn(fork(n, "A0", 2, 0, false, log)));
            drop(n.spawn(fork(n, "A1", 0, 0, false, log)));
            drop(n.spawn(other(n, log)));
            drop(n.spawn(fork(n, "A2", 1, 1, true, log)));
            drop(n.spawn(fork(n, "A3", 0, 0, false, log)));
            push(log, "body");
        }),
        || {},
    );
    assert_eq!(driven.pendings, 0, "one turn");
    let want = [
        "body", "A0", "A1", "B", "A2", "A3", "A0.0", "A0.1", "B.0", "B.1", "A2.0", "A2.0.0",
        "A2 again",
    ];
    assert_eq!(log.take(), want);
}

/// A thousand children of one type, each spawning one more of the same type from its first
/// poll (2,000 in all, so many turns): every child runs exactly once, first the spawned
/// thousand in spawn order, then their children in the order they were spawned.
#[test]
fn a_run_that_spawns_its_own_type_re_entrantly_runs_each_child_once_in_order() {
    let _turn = serial();
    const CHILDREN: usize = 1_000;
    let log = Log::default();
    let log = &log;
    let driven = drive(
        nursery!(|n| {
            for i in 0..CHILDREN {
                drop(n.spawn(fork(n, format!("{i}"), 1, 0, false, log)));
            }
        }),
        || {},
    );
    // 1 + 2,000 polls, 128 a turn.
    assert_eq!(driven.pendings, (1 + 2 * CHILDREN).div_ceil(128) - 1);
    assert_eq!(driven.wakes, driven.pendings);
    let mut want: Vec<String> = (0..CHILDREN).map(|i| format!("{i}")).collect();
    want.extend((0..CHILDREN).map(|i| format!("{i}.0")));
    assert_eq!(log.take(), want);
}

// ---------------------------------------------------------------------------------------------
// 8. More ready children of one type than a turn's budget.

/// Ready children of one type, more than the turn budget of 128 polls (the body's first poll
/// included): each poll of the nursery polls at most 128, returns `Pending` after waking its
/// caller while any are left, and all run in spawn order. The budget counts children, not
/// groups of them.
#[test]
fn ready_children_beyond_the_budget_run_128_a_turn_in_spawn_order() {
    let _turn = serial();
    for children in [1, 126, 127, 128, 255, 256, 1_000, 3_000] {
        let ran = RefCell::new(Vec::new());
        let ran = &ran;
        let mut per_poll = Vec::new();
        let driven = drive(
            nursery!(|n| {
                for i in 0..children {
                    n.spawn(async move { ran.borrow_mut().push(i) });
                }
            }),
            || per_poll.push(ran.borrow().len()),
        );
        // 127 after the body in the first turn, 128 in each turn after.
        let mut want = Vec::new();
        let mut done = children.min(127);
        want.push(done);
        while done < children {
            done = children.min(done + 128);
            want.push(done);
        }
        assert_eq!(per_poll, want, "{children} children");
        assert_eq!(driven.pendings, want.len() - 1);
        assert_eq!(
            driven.wakes, driven.pendings,
            "it wakes its caller as it yields"
        );
        assert_eq!(ran.take(), (0..children).collect::<Vec<_>>());
    }
}

// ---------------------------------------------------------------------------------------------
// 9. A long-lived nursery of bursts.

/// A nursery alive for 100 bursts of 1,000 ready children of one type (odd bursts keep and
/// await the handles, even ones drop them at once), waiting for a yield (or, every tenth, a
/// timer) between bursts: after the first burst its memory does not grow, because finished
/// children give their memory back.
///
/// Measured when this test was written (debug build, the runtime's `block_on`): 224 bytes
/// in 2 allocations over bursts 2..=100, all of them the timer's (0 with yields only); a
/// nursery that kept each burst's memory would need megabytes (99,000 children).
#[test]
fn a_long_lived_nursery_of_bursts_keeps_its_memory_bounded() {
    let _turn = serial();
    const BURSTS: u64 = 100;
    const BURST: u64 = 1_000;
    let sum = Cell::new(0u64);
    let sum = &sum;
    // Plain `block_on`: the watchdog's timer would add its own allocations to the count.
    let (outputs, bytes) = block_on(nursery!(|n| {
        let mut handles = Vec::with_capacity(BURST as usize);
        let mut region = None;
        let mut outputs = 0u64;
        for burst in 0..BURSTS {
            if burst == 1 {
                region = Some(Region::new(GLOBAL));
            }
            for i in 0..BURST {
                let h = n.spawn(async move {
                    sum.set(sum.get() + 1);
                    burst * BURST + i
                });
                if burst % 2 == 1 {
                    handles.push(h);
                }
            }
            for h in handles.drain(..) {
                outputs += h.await;
            }
            if burst % 10 == 9 {
                structured_async::sleep(std::time::Duration::from_millis(1)).await;
            } else {
                yield_now().await;
            }
            while n.running() > 0 {
                yield_now().await;
            }
        }
        let change = region.expect("measured").change();
        let bytes = change.bytes_allocated + change.bytes_reallocated.max(0) as usize;
        (outputs, bytes)
    }));
    assert_eq!(sum.get(), BURSTS * BURST);
    let want: u64 = (0..BURSTS)
        .filter(|b| b % 2 == 1)
        .map(|b| (0..BURST).map(|i| b * BURST + i).sum::<u64>())
        .sum();
    assert_eq!(outputs, want);
    assert!(
        bytes < 64 * 1024,
        "{bytes} bytes allocated over bursts 2..=100"
    );
}

// ---------------------------------------------------------------------------------------------
// 10. Large, zero-sized and over-aligned futures and outputs.

thread_local! {
    static ZST_POLLS: Cell<u32> = const { Cell::new(0) };
}

/// A zero-sized future whose output (4 KiB) is larger than itself.
struct Wide;

impl Future for Wide {
    type Output = [u64; 512];

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<[u64; 512]> {
        ZST_POLLS.with(|p| p.set(p.get() + 1));
        Poll::Ready([7; 512])
    }
}

/// A zero-sized future with a zero-sized output.
struct Nothing;

impl Future for Nothing {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        ZST_POLLS.with(|p| p.set(p.get() + 1_000));
        Poll::Ready(())
    }
}

/// An output aligned to 64 bytes.
#[repr(align(64))]
#[derive(Debug, PartialEq)]
struct Line([u64; 8]);

/// A future aligned to 64 bytes that may not move (it records its address at every poll):
/// pends once (waking itself), then returns a [`Line`].
#[repr(align(64))]
struct Pinned64<'a> {
    id: u64,
    polls: Cell<u32>,
    addrs: &'a RefCell<Vec<(u64, usize)>>,
    _pin: PhantomPinned,
}

impl Future for Pinned64<'_> {
    type Output = Line;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Line> {
        let this = &*self;
        this.addrs
            .borrow_mut()
            .push((this.id, std::ptr::from_ref(this) as usize));
        this.polls.set(this.polls.get() + 1);
        if this.polls.get() == 1 {
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(Line([this.id; 8]))
    }
}

/// An 8 KiB future; an even `id` pends once. Records where its array is at the first poll
/// and at the last: a future must not move once polled.
async fn big(id: u64, data: [u64; 1024], addrs: &RefCell<Vec<(u64, usize)>>) -> u64 {
    addrs.borrow_mut().push((id, data.as_ptr() as usize));
    if id % 2 == 0 {
        yield_now().await;
    }
    addrs.borrow_mut().push((id, data.as_ptr() as usize));
    data.iter().sum::<u64>() + id
}

/// Runs of 8 KiB futures, zero-sized futures (with a 4 KiB output and with none) and
/// 64-byte-aligned futures with 64-byte-aligned outputs: outputs exact, each polled as often
/// as it needs, an aligned future always at an aligned address, and no future moved between
/// its polls (also those that pend on their first poll).
#[test]
fn large_zero_sized_and_aligned_futures_in_runs() {
    let _turn = serial();
    assert_eq!(size_of::<Wide>(), 0);
    assert_eq!(size_of::<Nothing>(), 0);
    ZST_POLLS.with(|p| p.set(0));
    let big_addrs = RefCell::new(Vec::new());
    let aligned_addrs = RefCell::new(Vec::new());
    let (big_addrs, aligned_addrs) = (&big_addrs, &aligned_addrs);
    let (bigs, wides, lines) = finish(nursery!(|n| {
        let mut bigs = Vec::new();
        let mut wides = Vec::new();
        let mut lines = Vec::new();
        for round in 0..3u64 {
            for k in 0..8 {
                let id = round * 100 + k;
                bigs.push(n.spawn(big(id, [id; 1024], big_addrs)));
            }
            for k in 0..40 {
                let h = n.spawn(Wide);
                if k % 4 == 0 {
                    wides.push(h);
                }
            }
            for _ in 0..30 {
                n.spawn(Nothing);
            }
            for k in 0..16 {
                lines.push(n.spawn(Pinned64 {
                    id: round * 100 + k,
                    polls: Cell::new(0),
                    addrs: aligned_addrs,
                    _pin: PhantomPinned,
                }));
            }
        }
        let mut out = (Vec::new(), Vec::new(), Vec::new());
        for h in bigs.into_iter().rev() {
            out.0.push(h.await);
        }
        for h in wides.into_iter().rev() {
            out.1.push(h.await);
        }
        for h in lines.into_iter().rev() {
            out.2.push(h.await);
        }
        out
    }));
    let ids = |per_round: u64| -> Vec<u64> {
        (0..3u64)
            .flat_map(|r| (0..per_round).map(move |k| r * 100 + k))
            .rev()
            .collect()
    };
    let want_bigs: Vec<u64> = ids(8).into_iter().map(|id| id * 1024 + id).collect();
    assert_eq!(bigs, want_bigs);
    assert_eq!(wides.len(), 30);
    assert!(wides.iter().all(|w| w.iter().all(|&x| x == 7)));
    let want_lines: Vec<Line> = ids(16).into_iter().map(|id| Line([id; 8])).collect();
    assert_eq!(lines, want_lines);
    // 120 `Wide`s polled once (1 each) and 90 `Nothing`s once (1,000 each).
    assert_eq!(ZST_POLLS.with(Cell::get), 120 + 90 * 1_000);
    for (addrs, polls) in [(big_addrs, 2), (aligned_addrs, 2)] {
        let mut by_id: HashMap<u64, Vec<usize>> = HashMap::new();
        for &(id, addr) in addrs.borrow().iter() {
            by_id.entry(id).or_default().push(addr);
        }
        for (id, seen) in by_id {
            assert_eq!(seen.len(), polls, "child {id}");
            assert!(
                seen.iter().all(|&a| a == seen[0]),
                "child {id} moved: {seen:?}"
            );
        }
    }
    assert_eq!(aligned_addrs.borrow().len(), 3 * 16 * 2);
    assert!(aligned_addrs.borrow().iter().all(|&(_, a)| a % 64 == 0));
}

/// One child's view in [`running_is_exact_at_every_poll_of_a_spawn_loops_children`].
#[derive(Debug)]
enum Seen {
    /// A poll of child `.0` read `Scope::running() == .1`.
    Poll(usize, usize),
    /// Child `.0` is about to return `Ready`.
    Done(usize),
}

/// `Scope::running()` read from inside a spawn loop's children is exact at every poll: it
/// counts every child whose future has not returned `Ready` yet, whatever order the nursery
/// polls them in. Children finish in their first poll, yield once, or have their handle
/// awaited before they ever ran; 300 of them span three turns of the budget.
#[test]
fn running_is_exact_at_every_poll_of_a_spawn_loops_children() {
    let _serial = serial();
    const N: usize = 300;
    const AWAITED: usize = 200;
    let seen: RefCell<Vec<Seen>> = RefCell::new(Vec::new());
    let seen = &seen;
    finish(nursery!(|n| {
        let mut awaited = None;
        for k in 0..N {
            let handle = n.spawn(async move {
                seen.borrow_mut().push(Seen::Poll(k, n.running()));
                if k % 3 == 1 {
                    yield_now().await;
                    seen.borrow_mut().push(Seen::Poll(k, n.running()));
                }
                seen.borrow_mut().push(Seen::Done(k));
            });
            if k == AWAITED {
                awaited = Some(handle);
            }
        }
        awaited.expect("spawned above").await;
    }));
    let seen = seen.take();
    let mut ended = Vec::new();
    for event in &seen {
        match *event {
            Seen::Poll(k, running) => {
                let finished = ended.len();
                assert_eq!(
                    running,
                    N - finished,
                    "child {k} polled after {finished} ended"
                );
            }
            Seen::Done(k) => ended.push(k),
        }
    }
    ended.sort_unstable();
    assert_eq!(ended, (0..N).collect::<Vec<_>>());
    let polls = seen.iter().filter(|e| matches!(e, Seen::Poll(..))).count();
    assert_eq!(polls, N + N / 3);
}
