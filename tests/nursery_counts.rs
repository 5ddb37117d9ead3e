//! Exact poll counts: a wake polls only the woken child, and a nursery under tokio stays linear
//! when tokio's coop budget runs out.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Poll, Waker};
use std::time::Duration;

use structured_async::{block_on, nursery};

/// A child that pends once, parking its waker in `parked`, and finishes when polled again.
async fn parked(polls: &Cell<usize>, parked: &RefCell<Vec<Waker>>) {
    let mut first = true;
    poll_fn(|cx| {
        polls.set(polls.get() + 1);
        if first {
            first = false;
            parked.borrow_mut().push(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}

/// A child that wakes itself and pends `times` times before finishing.
async fn restless(polls: &Cell<usize>, times: usize) {
    let mut left = times;
    poll_fn(|cx| {
        polls.set(polls.get() + 1);
        if left == 0 {
            return Poll::Ready(());
        }
        left -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

#[test]
fn a_wake_polls_only_the_woken_child() {
    const PARKED: usize = 10_000;
    const PENDS: usize = 1_000;
    let polls = Cell::new(0);
    let wakers = RefCell::new(Vec::new());
    block_on(nursery!(|n| {
        for _ in 0..PARKED {
            n.spawn(parked(&polls, &wakers));
        }
        // While this child pends a thousand times, the parked ones must not be polled.
        n.spawn(restless(&polls, PENDS)).await;
        assert_eq!(polls.get(), PARKED + PENDS + 1);
        for waker in wakers.take() {
            waker.wake();
        }
    }));
    assert_eq!(polls.get(), PARKED * 2 + PENDS + 1);
}

#[test]
fn tokio_sleeps_in_one_nursery_stay_linear() {
    const SLEEPS: usize = 20_000;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let polls = Cell::new(0);
    let polls = &polls;
    rt.block_on(nursery!(|n| {
        for i in 0..SLEEPS {
            n.spawn(async move {
                let mut sleep = std::pin::pin!(tokio::time::sleep(Duration::from_millis(
                    1 + (i % 3) as u64
                )));
                poll_fn(|cx| {
                    polls.set(polls.get() + 1);
                    sleep.as_mut().poll(cx)
                })
                .await
            });
        }
    }));
    // Two polls per sleep (register, fire), plus the few tokio's coop budget sends back at
    // the end of a turn; polling all 20,000 again per turn would be hundreds of times more.
    assert!(polls.get() >= SLEEPS * 2);
    assert!(polls.get() < SLEEPS * 3, "{} polls", polls.get());
}

/// Pends once, handing a clone of its waker to another thread that wakes it; then finishes.
async fn woken_from_a_thread(polls: &Cell<usize>) {
    let mut sent = false;
    poll_fn(|cx| {
        polls.set(polls.get() + 1);
        if sent {
            return Poll::Ready(());
        }
        sent = true;
        let waker = cx.waker().clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2));
            waker.wake();
        });
        Poll::Pending
    })
    .await
}

#[test]
fn wakes_from_other_threads_mix_with_local_ones() {
    const REMOTE: usize = 50;
    const LOCAL: usize = 200;
    let remote_polls = Cell::new(0);
    let local_polls = Cell::new(0);
    for _ in 0..3 {
        remote_polls.set(0);
        local_polls.set(0);
        block_on(nursery!(|n| {
            for i in 0..REMOTE + LOCAL {
                if i % 5 == 0 {
                    n.spawn(woken_from_a_thread(&remote_polls));
                } else {
                    n.spawn(restless(&local_polls, 3));
                }
            }
        }));
        // Each remote child: one poll to pend, one after its wake; each local one: four.
        assert_eq!(remote_polls.get(), REMOTE * 2);
        assert_eq!(local_polls.get(), LOCAL * 4);
    }
}

/// A child lends its waker to threads that wake it while, in the same poll, it spawns
/// siblings and wakes itself: the nursery marks the siblings queued with plain stores (no
/// other thread can reach them) and the child with atomic swaps, so every node is queued
/// exactly once and each child is polled exactly as often as it needs.
#[test]
fn wakes_from_lent_wakers_race_no_sibling_spawned_meanwhile() {
    const SIBLINGS: usize = 20;
    for _ in 0..if cfg!(miri) { 2 } else { 20 } {
        let lender_polls = Cell::new(0);
        let sibling_polls = Cell::new(0);
        block_on(nursery!(|n| {
            n.spawn(async {
                let mut lent = false;
                poll_fn(|cx| {
                    lender_polls.set(lender_polls.get() + 1);
                    if lent {
                        return Poll::Ready(());
                    }
                    lent = true;
                    let waker = cx.waker();
                    std::thread::scope(|s| {
                        for _ in 0..2 {
                            s.spawn(|| {
                                for _ in 0..50 {
                                    waker.wake_by_ref();
                                }
                            });
                        }
                        for _ in 0..SIBLINGS {
                            n.spawn(async { sibling_polls.set(sibling_polls.get() + 1) });
                            waker.wake_by_ref();
                        }
                    });
                    Poll::Pending
                })
                .await
            });
        }));
        assert_eq!(lender_polls.get(), 2);
        assert_eq!(sibling_polls.get(), SIBLINGS);
    }
}

/// Polls `fut` with a no-op waker until it is ready; returns how many polls that took.
fn polls_to_finish<F: Future>(fut: F) -> usize {
    let mut fut = std::pin::pin!(fut);
    let mut cx = std::task::Context::from_waker(Waker::noop());
    let mut polls = 1;
    while fut.as_mut().poll(&mut cx).is_pending() {
        polls += 1;
        assert!(polls < 100_000, "the nursery does not finish");
    }
    polls
}

/// A one-value rendezvous between two children, holding a clone of the receiver's waker.
#[derive(Default)]
struct Rendezvous {
    value: Cell<Option<u32>>,
    waiter: RefCell<Option<Waker>>,
}

impl Rendezvous {
    fn send(&self, v: u32) {
        self.value.set(Some(v));
        if let Some(w) = self.waiter.take() {
            w.wake();
        }
    }

    async fn recv(&self) -> u32 {
        poll_fn(|cx| match self.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                *self.waiter.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await
    }
}

/// Children that wake each other (through cloned wakers) run in the same turn of the nursery,
/// up to its budget of 128 polls: 1,000 round trips take a few dozen polls of the nursery,
/// not one per hop.
#[test]
fn siblings_woken_by_siblings_run_in_the_same_turn() {
    const ROUNDS: u32 = 1_000;
    let (there, back) = (Rendezvous::default(), Rendezvous::default());
    let polls = polls_to_finish(nursery!(|n| {
        n.spawn(async {
            for i in 0..ROUNDS {
                there.send(i);
                assert_eq!(back.recv().await, i + 1);
            }
        });
        n.spawn(async {
            for _ in 0..ROUNDS {
                let v = there.recv().await;
                back.send(v + 1);
            }
        });
    }));
    // 2 × 1,000 hops, at most 128 polls a turn: at least 16 turns, and not many more.
    assert!((16..=20).contains(&polls), "{polls} polls of the nursery");
}

/// A child that wakes itself (yields) is polled at most twice per turn: once more after the
/// nodes queued before it, then its second wake waits for the next turn, so whoever polls the
/// nursery gets its turn after every second yield.
#[test]
fn a_child_that_yields_runs_twice_per_turn() {
    const YIELDS: usize = 50;
    let child_polls = Cell::new(0);
    let polls = polls_to_finish(nursery!(|n| {
        n.spawn(restless(&child_polls, YIELDS));
    }));
    assert_eq!(child_polls.get(), YIELDS + 1);
    assert_eq!(polls, (YIELDS + 1).div_ceil(2));
}

/// Builds `depth` nurseries, each the only child of the one above, around `restless`.
fn nested<'a>(
    depth: usize,
    polls: &'a Cell<usize>,
    yields: usize,
) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
    if depth == 0 {
        return Box::pin(restless(polls, yields));
    }
    Box::pin(nursery!(move |n| {
        n.spawn(nested(depth - 1, polls, yields));
    }))
}

/// A child that never stops yielding, `depth` nurseries deep, cannot starve whoever polls the
/// outermost one: every poll returns, having run the child `depth + 1` times (twice in the
/// innermost nursery's first turn, once in each turn an enclosing nursery gives it when
/// polling the nursery below a second time), not `2^depth` times.
#[test]
fn a_child_that_keeps_yielding_lets_the_caller_run_at_every_depth() {
    for depth in 1..=6 {
        let child_polls = Cell::new(0);
        let mut fut = std::pin::pin!(nested(depth, &child_polls, usize::MAX));
        let mut cx = std::task::Context::from_waker(Waker::noop());
        for poll in 1..=5 {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
            assert_eq!(child_polls.get(), poll * (depth + 1), "depth {depth}");
        }
    }
}

/// Many children that never stop yielding: each poll of the nursery ends after its budget of
/// 128 polls (the body's first included) and returns, and every child gets its polls in turn.
#[test]
fn children_that_keep_yielding_end_each_turn_at_the_budget() {
    const CHILDREN: usize = 1_000;
    let counts: Vec<Cell<usize>> = (0..CHILDREN).map(|_| Cell::new(0)).collect();
    let mut fut = std::pin::pin!(nursery!(|n| {
        for count in &counts {
            n.spawn(restless(count, usize::MAX));
        }
    }));
    let mut cx = std::task::Context::from_waker(Waker::noop());
    let total = || counts.iter().map(Cell::get).sum::<usize>();
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(total(), 127);
    for turn in 2..=40 {
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(total(), 127 + 128 * (turn - 1));
    }
    // 4,999 polls over 1,000 children, each queued behind all the others: none is left out.
    assert!(counts.iter().all(|c| (4..=6).contains(&c.get())));
}

/// Children that pend once, and the nurseries of a tree of them, finish in the turn that
/// first polls them: a leaf nursery's children run their second poll while their memory is
/// still in cache, instead of the whole tree being walked again in a later turn.
#[test]
fn children_that_pend_once_finish_in_one_turn_through_a_tree() {
    const BRANCH: usize = 10;
    let child_polls = Cell::new(0);
    let child_polls = &child_polls;
    let polls = polls_to_finish(nursery!(|outer| {
        for _ in 0..BRANCH {
            outer.spawn(nursery!(|mid| {
                for _ in 0..BRANCH {
                    mid.spawn(nursery!(|leaves| {
                        for _ in 0..BRANCH {
                            leaves.spawn(restless(child_polls, 1));
                        }
                    }));
                }
            }));
        }
    }));
    assert_eq!(child_polls.get(), 2 * BRANCH * BRANCH * BRANCH);
    assert_eq!(polls, 1);
}

/// A yield deep in nested nurseries reaches whoever polls the outermost one: the innermost
/// nursery runs the child twice in a turn, the one above it polls the inner nursery once more
/// (which then runs the child once), and then the turn passes up.
#[test]
fn a_yield_in_a_nested_nursery_reaches_the_top() {
    const YIELDS: usize = 30;
    let child_polls = Cell::new(0);
    let polls = polls_to_finish(nursery!(|outer| {
        outer.spawn(nursery!(|inner| {
            inner.spawn(restless(&child_polls, YIELDS));
        }));
    }));
    assert_eq!(child_polls.get(), YIELDS + 1);
    assert_eq!(polls, (YIELDS + 1).div_ceil(3));
}
