//! Adversarial tests of nursery batches (a soundness review's repros): children that drop,
//! poll or await their own handle inside their first poll, yielded records awaited and dropped
//! while their batch runs, panics in a batch, stale and cross-thread probe wakers, `Debug` of
//! handles whose batch is gone. Each asserts exact drop and poll counts; before the fixes they
//! failed, or crashed the test binary. Public API only.

use std::cell::RefCell;
use std::future::{Future, pending, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use structured_async::{block_on, nursery, yield_now};

type Log = RefCell<Vec<String>>;

fn push(log: &Log, s: impl Into<String>) {
    log.borrow_mut().push(s.into());
}

fn count(log: &Log, s: &str) -> usize {
    log.borrow().iter().filter(|e| *e == s).count()
}

/// A child's output: logs its drop.
struct Out<'a>(usize, &'a Log);

impl Drop for Out<'_> {
    fn drop(&mut self) {
        push(self.1, format!("drop out {}", self.0));
    }
}

/// Logs its drop (held by a child future).
struct Tag<'a>(usize, &'a Log);

impl Drop for Tag<'_> {
    fn drop(&mut self) {
        push(self.1, format!("drop fut {}", self.0));
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Act {
    /// Ready in the first poll.
    Ready,
    /// Wakes itself (no clone) once, then ready.
    YieldOnce,
    /// First poll: drops its own handle (parked in `slots[id]`), then ready.
    DropOwnThenReady,
    /// First poll: drops its own handle, wakes itself (no clone), pends; then ready.
    DropOwnThenYield,
    /// First poll: drops its own handle, keeps a waker clone and wakes it, pends; then ready.
    DropOwnThenClone,
    /// First poll: polls its own handle once, then pends forever.
    AwaitOwnThenPend,
    /// Pends forever.
    Pend,
    /// Keeps a clone of its first waker forever (in `wakers`), ready at once.
    LeakCloneReady,
    /// Panics in its first poll.
    Panic,
}

/// The one child type: behaviour is data. `H` is the handle type (not nameable outside).
async fn kid<'a, H: Future + Unpin>(
    id: usize,
    act: Act,
    _tag: Tag<'a>,
    slots: &'a RefCell<Vec<Option<H>>>,
    wakers: &'a RefCell<Vec<Waker>>,
    log: &'a Log,
) -> Out<'a> {
    let mut polls = 0;
    let mut clone: Option<Waker> = None;
    poll_fn(|cx: &mut Context<'_>| {
        polls += 1;
        push(log, format!("poll {id}"));
        let first = polls == 1;
        match act {
            Act::Ready => Poll::Ready(()),
            Act::YieldOnce if first => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Act::DropOwnThenReady => {
                let own = slots.borrow_mut()[id].take();
                drop(own);
                Poll::Ready(())
            }
            Act::DropOwnThenYield if first => {
                let own = slots.borrow_mut()[id].take();
                drop(own);
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Act::DropOwnThenClone if first => {
                let own = slots.borrow_mut()[id].take();
                drop(own);
                let w = cx.waker().clone();
                w.wake_by_ref();
                clone = Some(w);
                Poll::Pending
            }
            Act::AwaitOwnThenPend => {
                if first {
                    let mut own = slots.borrow_mut()[id].take().expect("own handle");
                    let _ = Pin::new(&mut own).poll(cx);
                    slots.borrow_mut()[id] = Some(own);
                }
                Poll::Pending
            }
            Act::Pend => Poll::Pending,
            Act::LeakCloneReady => {
                wakers.borrow_mut().push(cx.waker().clone());
                Poll::Ready(())
            }
            Act::Panic => panic!("kid {id} panics"),
            Act::YieldOnce | Act::DropOwnThenYield | Act::DropOwnThenClone => Poll::Ready(()),
        }
    })
    .await;
    drop(clone);
    Out(id, log)
}

/// Spawns one kid per act (same type: the 2nd and later are batch records), parking every
/// handle in `slots`, then runs `after` on the body.
macro_rules! with_kids {
    ($log:expr, $acts:expr, |$n:ident, $slots:ident, $wakers:ident| $after:block) => {{
        let log: &Log = $log;
        let acts: Vec<Act> = $acts;
        nursery!(move |$n| {
            let $slots = &*Box::leak(Box::new(RefCell::new(Vec::new())));
            let $wakers: &RefCell<Vec<Waker>> = &*Box::leak(Box::new(RefCell::new(Vec::new())));
            for (id, &act) in acts.iter().enumerate() {
                let h = $n.spawn(kid(id, act, Tag(id, log), $slots, $wakers, log));
                $slots.borrow_mut().push(Some(h));
            }
            $after
        })
    }};
}

/// A child that drops its own handle during its first poll: its output has no handle to go
/// to and must be dropped once, like a node child's, whether the child then finishes at once,
/// pends once after waking itself with no clone (a yielded record), or keeps a waker clone
/// (materialised into the probe node).
#[test]
fn own_handle_dropped_in_first_poll_drops_output() {
    for act in [
        Act::DropOwnThenReady,
        Act::DropOwnThenYield,
        Act::DropOwnThenClone,
    ] {
        let log = &Log::default();
        block_on(with_kids!(
            log,
            vec![Act::Ready, Act::Ready, act, Act::Ready],
            |n, slots, _w| {
                // Keep the other handles until the kids ran.
                yield_now().await;
                yield_now().await;
                slots.borrow_mut().clear();
            }
        ));
        assert_eq!(count(log, "drop out 2"), 1, "{act:?}: {:?}", log.borrow());
    }
}

/// A child that polls its own handle during its first poll, then pends: dropping the nursery
/// must drop its future exactly once.
#[test]
fn own_handle_polled_in_first_poll_then_nursery_dropped_drops_future_once() {
    let log = &Log::default();
    {
        let mut fut = Box::pin(with_kids!(
            log,
            vec![Act::Ready, Act::Ready, Act::AwaitOwnThenPend, Act::Ready],
            |n, slots, _w| {
                let _keep = slots;
                pending::<()>().await;
            }
        ));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(fut);
    }
    assert_eq!(count(log, "drop fut 2"), 1, "{:?}", log.borrow());
}

/// A yielded record whose handle the body polls once and drops before the record's second
/// poll: that poll (through the record's own node, from the yielded records' node) finishes
/// the batch's last record. The nursery must go on working: afterwards more batches of the
/// same type run and every output is dropped exactly once.
#[test]
fn yielded_record_awaited_then_dropped_finishes_last_in_its_ynode_run() {
    let log = &Log::default();
    let total = block_on(with_kids!(
        log,
        vec![Act::Ready, Act::Ready, Act::YieldOnce],
        |n, slots, wakers| {
            let h2 = slots.borrow_mut()[2].take().expect("h2");
            slots.borrow_mut()[0] = None;
            slots.borrow_mut()[1] = None;
            yield_now().await;
            let mut h2 = h2;
            poll_fn(|cx| {
                let _ = Pin::new(&mut h2).poll(cx);
                Poll::Ready(())
            })
            .await;
            drop(h2);
            yield_now().await;
            // More batches of the same type, from the arena class the freed block had.
            let mut hs = Vec::new();
            for id in 3..40 {
                hs.push(n.spawn(kid(id, Act::Ready, Tag(id, log), slots, wakers, log)));
            }
            let mut total = 0;
            for h in hs {
                total += h.await.0;
            }
            total
        }
    ));
    assert_eq!(total, (3..40).sum::<usize>());
    for id in 0..40 {
        assert_eq!(
            count(log, &format!("drop out {id}")),
            1,
            "out {id}: {:?}",
            log.borrow()
        );
        assert_eq!(
            count(log, &format!("drop fut {id}")),
            1,
            "fut {id}: {:?}",
            log.borrow()
        );
    }
}

/// As above, with a pending child of another type spawned afterwards (a higher slot than
/// the extra node the self-await made), so the walk reaches that extra node while `live` is
/// still positive: the future of kid 2 must be dropped once (twice is a double drop).
#[test]
fn own_handle_polled_in_first_poll_future_dropped_once_among_pending_siblings() {
    let log = &Log::default();
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut fut = Box::pin(with_kids!(
            log,
            vec![Act::Ready, Act::Ready, Act::AwaitOwnThenPend],
            |n, slots, _w| {
                let _keep = slots;
                yield_now().await;
                let tag = Tag(99, log);
                n.spawn(async move {
                    let _tag = tag;
                    pending::<()>().await;
                });
                pending::<()>().await;
            }
        ));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(fut);
    }));
    assert_eq!(
        count(log, "drop fut 2"),
        1,
        "{:?} (drop: {:?})",
        log.borrow(),
        dropped.is_ok()
    );
}

/// A kid of a batch panics in its first poll, between finished and pending siblings: the
/// panic comes out of the nursery and every future and output is dropped exactly once.
#[test]
fn a_panic_in_a_batch_record_drops_everything_once() {
    let log = &Log::default();
    let acts = vec![
        Act::Ready,
        Act::Ready,
        Act::Pend,
        Act::YieldOnce,
        Act::Panic,
        Act::Pend,
        Act::Ready,
    ];
    let n_kids = acts.len();
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        block_on(with_kids!(log, acts, |n, slots, _w| {
            let _keep = slots;
            pending::<()>().await;
        }))
    }));
    assert!(res.is_err());
    for id in 0..n_kids {
        assert_eq!(
            count(log, &format!("drop fut {id}")),
            1,
            "fut {id}: {:?}",
            log.borrow()
        );
    }
    for id in [0, 1] {
        assert_eq!(
            count(log, &format!("drop out {id}")),
            1,
            "out {id}: {:?}",
            log.borrow()
        );
    }
    // Kid 6 was never polled (the panic stopped the batch), so it has no output.
    assert_eq!(count(log, "poll 6"), 0, "{:?}", log.borrow());
}

/// Kids leak clones of their first poll's waker (the probe's) and finish; later kids of the
/// same batch pend and are woken through those stale clones and through their own: each
/// kid's output reaches its handle once, nothing is polled after it finished.
#[test]
fn stale_probe_clones_wake_later_records_harmlessly() {
    let log = &Log::default();
    let mut acts = Vec::new();
    for i in 0..30 {
        acts.push(if i % 3 == 0 {
            Act::LeakCloneReady
        } else if i % 3 == 1 {
            Act::YieldOnce
        } else {
            Act::Ready
        });
    }
    let total = block_on(with_kids!(log, acts, |n, slots, wakers| {
        yield_now().await;
        for w in wakers.borrow_mut().drain(..) {
            w.wake();
        }
        let hs: Vec<_> = slots
            .borrow_mut()
            .drain(..)
            .map(|h| h.expect("handle"))
            .collect();
        let mut total = 0;
        for h in hs.into_iter().rev() {
            total += h.await.0;
        }
        total
    }));
    assert_eq!(total, (0..30).sum::<usize>());
    for id in 0..30 {
        assert_eq!(
            count(log, &format!("drop out {id}")),
            1,
            "{:?}",
            log.borrow()
        );
        // Polled once, or twice for the yielding ones, never after finishing.
        let polls = count(log, &format!("poll {id}"));
        assert_eq!(
            polls,
            if id % 3 == 1 { 2 } else { 1 },
            "kid {id}: {:?}",
            log.borrow()
        );
    }
}

/// A kid lends its first poll's (probe) waker to a scoped thread that wakes it, and also
/// wakes itself: it runs again and finishes; a sibling pending with a clone right after it
/// (same probe node possibly) is woken only by its own clone.
#[test]
#[expect(
    clippy::waker_clone_wake,
    reason = "a clone woken and gone within the poll"
)]
fn a_scoped_thread_waking_the_probe_during_a_yield() {
    let log = &Log::default();
    let got = block_on(nursery!(|n| {
        let mut hs = Vec::new();
        for id in 0..20usize {
            hs.push(n.spawn(async move {
                let mut polls = 0;
                poll_fn(|cx| {
                    polls += 1;
                    push(log, format!("poll {id}"));
                    if polls == 1 {
                        if id % 2 == 0 {
                            let w: &Waker = cx.waker();
                            std::thread::scope(|s| {
                                s.spawn(move || w.wake_by_ref());
                            });
                            cx.waker().wake_by_ref();
                        } else {
                            cx.waker().clone().wake();
                            let w = cx.waker().clone();
                            w.wake_by_ref();
                        }
                        return Poll::Pending;
                    }
                    Poll::Ready(id)
                })
                .await
            }));
        }
        let mut got = Vec::new();
        for h in hs {
            got.push(h.await);
        }
        got
    }));
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    for id in 0..20 {
        assert_eq!(
            count(log, &format!("poll {id}")),
            2,
            "kid {id}: {:?}",
            log.borrow()
        );
    }
}

/// `Debug` of handles whose outputs were taken (awaited through `&mut`), after every record
/// of their batch was released: formatting must not read the freed block.
#[test]
fn debug_of_taken_handles_after_their_batch_is_gone() {
    let log = &Log::default();
    let shown = block_on(with_kids!(
        log,
        vec![Act::Ready, Act::Ready, Act::Ready, Act::Ready],
        |n, slots, _w| {
            let mut hs: Vec<_> = slots
                .borrow_mut()
                .drain(..)
                .map(|h| h.expect("handle"))
                .collect();
            let mut ids = Vec::new();
            for h in &mut hs {
                ids.push(h.await.0);
            }
            yield_now().await;
            let shown: Vec<String> = hs.iter().map(|h| format!("{h:?}")).collect();
            (ids, shown)
        }
    ));
    assert_eq!(shown.0, vec![0, 1, 2, 3]);
    for s in &shown.1 {
        assert!(s.contains("finished: false"), "{s}");
    }
}

/// The child of [`a_record_awaiting_by_the_probe_keeps_the_probe`]: `A` polls `other` once in
/// its first poll, then yields six times, holding `other`, and finishes; `P` hands a clone of
/// its waker to `parked` and pends until the body takes it back and wakes it; `D` finishes
/// at once.
async fn probe_kid<'a>(
    act: u8,
    mut other: Option<structured_async::nursery::ChildHandle<'a, ()>>,
    parked: &'a RefCell<Vec<Waker>>,
    polls: &'a std::cell::Cell<u32>,
) {
    let mut n = 0;
    poll_fn(|cx| {
        polls.set(polls.get() + 1);
        n += 1;
        match act {
            b'A' if n == 1 => {
                if let Some(h) = other.as_mut() {
                    let _ = Pin::new(h).poll(cx);
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            b'A' if n < 7 => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            // Parked until the body wakes it (and only then does it find its waker gone).
            b'P' if n == 1 || !parked.borrow().is_empty() => {
                if n == 1 {
                    parked.borrow_mut().push(cx.waker().clone());
                }
                Poll::Pending
            }
            _ => Poll::Ready(()),
        }
    })
    .await;
    drop(other);
}

/// A record that awaits a sibling's handle in its first poll registers the probe's waker as
/// that handle's waiter; when it then only yields, it must still keep the probe as its node,
/// or the sibling's end wakes whichever record the probe served next ("a wake polls only the
/// woken child": here the record that parked its waker would be polled a third time).
#[test]
fn a_record_awaiting_by_the_probe_keeps_the_probe() {
    let parked = RefCell::new(Vec::new());
    let polls: Vec<std::cell::Cell<u32>> = (0..3).map(|_| std::cell::Cell::new(0)).collect();
    let (parked, polls) = (&parked, &polls);
    block_on(nursery!(|n| {
        let slow = n.spawn(async {
            for _ in 0..3 {
                yield_now().await;
            }
        });
        // The first of the type has a node; the next two are records of one batch.
        drop(n.spawn(probe_kid(b'D', None, parked, &polls[0])));
        drop(n.spawn(probe_kid(b'A', Some(slow), parked, &polls[1])));
        drop(n.spawn(probe_kid(b'P', None, parked, &polls[2])));
        for _ in 0..10 {
            yield_now().await;
        }
        parked.take().into_iter().for_each(Waker::wake);
    }));
    let polls: Vec<u32> = polls.iter().map(std::cell::Cell::get).collect();
    assert_eq!(polls, [1, 7, 2]);
}
