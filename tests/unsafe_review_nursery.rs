//! Adversarial checks of the nursery's unsafe mechanisms: over-aligned and zero-sized children
//! in the size-classed arena, drop-exactly-once of futures and outputs on every path, re-entrant
//! spawns and handle polls from a child's destructor, panicking destructors, and wakers used
//! from other threads while nurseries come and go on the thread that recycles their storage.
//!
//! No executor: each test polls the nursery itself with a no-op waker (every wake here comes
//! from inside the nursery), so the file also runs under Miri:
//! `MIRIFLAGS=-Zmiri-ignore-leaks cargo +nightly miri test --test unsafe_review_nursery` (one
//! test leaks a handle in an `Rc` cycle on purpose), and under valgrind:
//! `valgrind --error-exitcode=1 target/debug/deps/unsafe_review_nursery-*`.

use std::cell::{Cell, RefCell};
use std::future::{Future, pending, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use structured_async::{nursery, yield_now};

/// Polls `fut` to completion with a no-op waker (the nursery wakes itself through its parent).
fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..10_000 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("the nursery did not finish");
}

/// A page-aligned child that checks, on every poll, that it sits where its alignment says.
#[repr(align(4096))]
struct PageFuture {
    bytes: [u8; 4096],
    yields: u8,
}

/// A page-aligned output.
#[repr(align(4096))]
#[derive(Debug, PartialEq)]
struct Page([u8; 4096]);

impl Future for PageFuture {
    type Output = Page;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Page> {
        let at = &*self as *const Self as usize;
        assert_eq!(at % 4096, 0, "a page-aligned child is misplaced");
        assert!(
            self.bytes.iter().all(|&b| b == 7),
            "the child's bytes changed"
        );
        if self.yields == 0 {
            return Poll::Ready(Page([9; 4096]));
        }
        self.yields -= 1;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

/// A small child whose output is page-aligned: the slot must fit the larger alignment.
struct SmallToPage(u8);

impl Future for SmallToPage {
    type Output = Page;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Page> {
        Poll::Ready(Page([self.0; 4096]))
    }
}

#[test]
fn over_aligned_children_and_outputs_stay_aligned_across_recycled_storage() {
    for round in 0..3u8 {
        let total = run(nursery!(|n| {
            let mut handles = Vec::new();
            let mut small = Vec::new();
            for i in 0..20u8 {
                handles.push(n.spawn(PageFuture {
                    bytes: [7; 4096],
                    yields: i % 3,
                }));
                small.push(n.spawn(SmallToPage(i.wrapping_add(round))));
                // Interleave small children so page-sized slots are not the only class.
                n.spawn(async move { u64::from(i) });
            }
            let mut total = 0usize;
            for (i, h) in small.into_iter().enumerate() {
                let page = h.await;
                assert_eq!(&page as *const Page as usize % 4096, 0);
                assert!(page.0.iter().all(|&b| b == (i as u8).wrapping_add(round)));
            }
            for h in handles {
                let page = h.await;
                total += page.0.iter().map(|&b| b as usize).sum::<usize>();
            }
            total
        }));
        assert_eq!(total, 20 * 9 * 4096);
    }
}

thread_local! {
    static ZST_DROPS: Cell<usize> = const { Cell::new(0) };
}

/// A zero-sized child that counts its drops in a thread-local.
struct Zst;

impl Future for Zst {
    type Output = Zst;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Zst> {
        Poll::Ready(Zst)
    }
}

impl Drop for Zst {
    fn drop(&mut self) {
        ZST_DROPS.with(|d| d.set(d.get() + 1));
    }
}

#[test]
fn zero_sized_children_and_outputs_are_dropped_once() {
    ZST_DROPS.with(|d| d.set(0));
    run(nursery!(|n| {
        let kept: Vec<_> = (0..50).map(|_| n.spawn(Zst)).collect();
        for _ in 0..50 {
            // Handles dropped at once: the output is dropped when it comes.
            n.spawn(Zst);
        }
        for h in kept {
            drop(h.await);
        }
    }));
    // Each of the 100 children drops its future once and its output once.
    assert_eq!(ZST_DROPS.with(Cell::get), 200);
}

/// Counts its drops by id in a shared table.
struct Tracked<'a> {
    id: usize,
    drops: &'a RefCell<Vec<usize>>,
}

impl Drop for Tracked<'_> {
    fn drop(&mut self) {
        self.drops.borrow_mut()[self.id] += 1;
    }
}

/// A child that owns a tracked value, pends `yields` times, then returns another tracked value.
async fn tracked_child<'a>(
    id: usize,
    yields: usize,
    drops: &'a RefCell<Vec<usize>>,
) -> Tracked<'a> {
    let _mine = Tracked { id, drops };
    for _ in 0..yields {
        yield_now().await;
    }
    Tracked { id: id + 1, drops }
}

#[test]
fn every_future_and_output_is_dropped_exactly_once_on_every_path() {
    const N: usize = 12;
    let drops = RefCell::new(vec![0usize; 2 * N * 4]);
    let drops = &drops;
    // Path 1: the nursery finishes; handles are awaited, dropped early, dropped late or never
    // made use of.
    run(nursery!(|n| {
        let mut awaited = Vec::new();
        for c in 0..N {
            let h = n.spawn(tracked_child(2 * c, c % 4, drops));
            match c % 3 {
                0 => awaited.push(h),
                1 => drop(h),
                _ => {
                    yield_now().await;
                    drop(h)
                }
            }
        }
        for h in awaited {
            drop(h.await);
        }
    }));
    // Path 2: the nursery is dropped half-way, with finished outputs unclaimed.
    {
        let base = 2 * N;
        let mut fut = Box::pin(nursery!(|n| {
            let mut kept = Vec::new();
            for c in 0..N {
                kept.push(n.spawn(tracked_child(base + 2 * c, c % 4, drops)));
            }
            pending::<()>().await
        }));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..3 {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        drop(fut);
    }
    // Path 3: an error cancels the rest, some finished and some running.
    let base = 4 * N;
    let out: Result<(), usize> = run(nursery!(|n| {
        for c in 0..N {
            n.spawn(async move {
                let t = tracked_child(base + 2 * c, c % 4, drops).await;
                if c == N / 2 {
                    return Err(c);
                }
                drop(t);
                Ok(())
            });
        }
        Ok(())
    }));
    assert_eq!(out, Err(N / 2));
    let table = drops.borrow();
    for (id, &count) in table.iter().enumerate().take(6 * N) {
        if id % 2 == 0 {
            assert_eq!(count, 1, "future {id} dropped {count} times");
        } else if id < 2 * N {
            // Path 1 ran every child to completion: each output exists and is dropped once.
            assert_eq!(count, 1, "output {id} dropped {count} times");
        } else {
            // A cancelled child may never have produced its output; never dropped twice.
            assert!(count <= 1, "output {id} dropped {count} times");
        }
    }
    // Children that finished before the first poll ended left outputs, all dropped.
    assert_eq!(table[2 * N + 1], 1);
}

/// A child whose destructor uses the scope: it spawns (refused: dropped unpolled) and polls a
/// sibling's handle, while the nursery is dropping its children.
struct Reentrant<'s, 'e> {
    scope: &'s structured_async::Scope<'s, 'e, ()>,
    sibling: Option<structured_async::ChildHandle<'s, Vec<u64>>>,
    log: &'e RefCell<Vec<&'static str>>,
}

impl Future for Reentrant<'_, '_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for Reentrant<'_, '_> {
    fn drop(&mut self) {
        let log = self.log;
        self.log.borrow_mut().push("reentrant dropped");
        struct Late<'a>(&'a RefCell<Vec<&'static str>>);
        impl Drop for Late<'_> {
            fn drop(&mut self) {
                self.0.borrow_mut().push("late child dropped");
            }
        }
        let late = Late(log);
        let spawned = self.scope.spawn(async move {
            let _late = late;
            log.borrow_mut().push("late child polled");
        });
        drop(spawned);
        if let Some(mut sibling) = self.sibling.take() {
            let mut cx = Context::from_waker(Waker::noop());
            match Pin::new(&mut sibling).poll(&mut cx) {
                Poll::Ready(v) => {
                    assert_eq!(v, vec![1, 2, 3]);
                    log.borrow_mut().push("sibling output taken");
                }
                Poll::Pending => log.borrow_mut().push("sibling pending"),
            }
        }
    }
}

#[test]
fn a_childs_destructor_may_spawn_and_poll_handles_while_the_nursery_drops() {
    let log = RefCell::new(Vec::new());
    for finished_sibling in [true, false] {
        log.borrow_mut().clear();
        let mut fut = Box::pin(nursery!(|n| {
            let sibling = n.spawn(async move {
                if !finished_sibling {
                    pending::<()>().await;
                }
                vec![1u64, 2, 3]
            });
            n.spawn(Reentrant {
                scope: n,
                sibling: Some(sibling),
                log: &log,
            });
            pending::<()>().await
        }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        drop(fut);
        let log = log.borrow();
        assert!(log.contains(&"reentrant dropped"));
        assert!(log.contains(&"late child dropped"));
        assert!(!log.contains(&"late child polled"));
        assert_eq!(
            log.iter().filter(|l| **l == "late child dropped").count(),
            1
        );
    }
}

#[test]
// The children's outputs are handles on purpose: they must be dropped, never awaited.
#[allow(clippy::async_yields_async)]
fn outputs_holding_handles_are_dropped_with_the_nursery() {
    let drops = RefCell::new(vec![0usize; 8]);
    let drops = &drops;
    let mut fut = Box::pin(nursery!(|n| {
        // Each child's output is the handle of a child it spawned.
        let outer: Vec<_> = (0..4)
            .map(|c| {
                n.spawn(async move {
                    n.spawn(tracked_child(2 * c, if c % 2 == 0 { 0 } else { 9 }, drops))
                })
            })
            .collect();
        pending::<()>().await;
        drop(outer);
    }));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..3 {
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }
    drop(fut);
    let table = drops.borrow();
    for c in 0..4 {
        assert_eq!(table[2 * c], 1, "future of child {c}");
        // Finished inner children (even) produced an output, dropped once.
        assert_eq!(
            table[2 * c + 1],
            usize::from(c % 2 == 0),
            "output of child {c}"
        );
    }
}

/// Panics when dropped after it finished.
struct BombOnFinish<'a> {
    done: bool,
    drops: &'a Cell<usize>,
}

impl Future for BombOnFinish<'_> {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u32> {
        self.done = true;
        Poll::Ready(5)
    }
}

impl Drop for BombOnFinish<'_> {
    fn drop(&mut self) {
        self.drops.set(self.drops.get() + 1);
        if self.done {
            panic!("boom in drop");
        }
    }
}

#[test]
fn a_future_whose_drop_panics_at_completion_is_never_dropped_again() {
    let drops = Cell::new(0);
    let caught = catch_unwind(AssertUnwindSafe(|| {
        run(nursery!(|n| {
            let h = n.spawn(BombOnFinish {
                done: false,
                drops: &drops,
            });
            let sibling = n.spawn(async { vec![1u8; 100] });
            let _ = sibling.await;
            h.await
        }))
    }));
    assert!(caught.is_err());
    assert_eq!(drops.get(), 1);
    // The next nursery on this thread reuses the storage and works.
    let out = run(nursery!(|n| {
        let hs: Vec<_> = (0..40u32).map(|i| n.spawn(async move { i * 2 })).collect();
        let mut sum = 0;
        for h in hs {
            sum += h.await;
        }
        sum
    }));
    assert_eq!(out, (0..40).map(|i| i * 2).sum::<u32>());
}

#[test]
fn a_reused_slot_does_not_wake_the_body_when_its_child_finishes() {
    let body_polls = Cell::new(0);
    let done = Cell::new(false);
    let body_waker: RefCell<Option<Waker>> = RefCell::new(None);
    run(nursery!(|n| {
        // Slot 1 is used, finished and freed (its handle is dropped at once).
        n.spawn(async {});
        yield_now().await;
        // The next child reuses slot 1; its handle is kept but never awaited.
        let _kept = n.spawn(yield_now());
        n.spawn(async {
            for _ in 0..3 {
                yield_now().await;
            }
            done.set(true);
            body_waker.take().expect("the body waits").wake();
        });
        poll_fn(|cx| {
            body_polls.set(body_polls.get() + 1);
            if done.get() {
                return Poll::Ready(());
            }
            *body_waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }));
    // Once when it starts waiting, once when the last child wakes it: the first child's
    // finishing must not wake the body, which does not await its handle.
    assert_eq!(body_polls.get(), 2);
}

#[test]
fn wakers_woken_from_other_threads_while_nurseries_recycle_storage() {
    let rounds = if cfg!(miri) { 4 } else { 200 };
    let stash: Arc<Mutex<Vec<Waker>>> = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let waker_thread = {
        let stash = stash.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let wakers: Vec<Waker> = stash.lock().unwrap().drain(..).collect();
                for w in wakers {
                    w.wake_by_ref();
                    let w2 = w.clone();
                    drop(w);
                    w2.wake();
                }
                std::thread::yield_now();
            }
        })
    };
    for round in 0..rounds {
        let data = vec![round as u64; 16];
        let sum = run(nursery!(|n| {
            let hs: Vec<_> = (0..8)
                .map(|i| {
                    let stash = &stash;
                    let data = &data;
                    n.spawn(async move {
                        // Hand the waker to the other thread, then finish without it.
                        let mut first = true;
                        poll_fn(|cx| {
                            if first {
                                first = false;
                                stash.lock().unwrap().push(cx.waker().clone());
                                cx.waker().wake_by_ref();
                                return Poll::Pending;
                            }
                            Poll::Ready(())
                        })
                        .await;
                        data[i]
                    })
                })
                .collect();
            let mut sum = 0;
            for h in hs {
                sum += h.await;
            }
            sum
        }));
        assert_eq!(sum, 8 * round as u64);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    waker_thread.join().unwrap();
}

/// Sums `data` with a tree of nested nurseries, each level borrowing its half of the slice.
fn tree_sum(data: &[u64]) -> std::pin::Pin<Box<dyn Future<Output = u64> + '_>> {
    Box::pin(async move {
        if data.len() <= 2 {
            return data.iter().sum();
        }
        let (left, right) = data.split_at(data.len() / 2);
        nursery!(|n| {
            let l = n.spawn(tree_sum(left));
            let r = n.spawn(tree_sum(right));
            yield_now().await;
            l.await + r.await
        })
        .await
    })
}

#[test]
fn recursive_nurseries_share_the_threads_spare_storage_safely() {
    let data: Vec<u64> = (1..=64).collect();
    for _ in 0..3 {
        assert_eq!(run(tree_sum(&data)), 64 * 65 / 2);
    }
}

/// A child whose handle is kept alive by an `Rc` cycle: it is never dropped, so its slot is
/// never freed; the storage recycled by later nurseries must stay usable.
#[test]
fn a_handle_leaked_in_an_rc_cycle_leaves_later_nurseries_intact() {
    use std::rc::Rc;
    struct Cycle<'s> {
        _handle: RefCell<Option<structured_async::ChildHandle<'s, Vec<u64>>>>,
        me: RefCell<Option<Rc<Cycle<'s>>>>,
    }
    for round in 0..3u64 {
        let out = run(nursery!(|n| {
            let cycle = Rc::new(Cycle {
                _handle: RefCell::new(Some(n.spawn(async move { vec![round; 64] }))),
                me: RefCell::new(None),
            });
            *cycle.me.borrow_mut() = Some(cycle.clone());
            drop(cycle);
            let hs: Vec<_> = (0..20u64)
                .map(|i| n.spawn(async move { vec![i; 64] }))
                .collect();
            let mut sum = 0;
            for h in hs {
                sum += h.await.iter().sum::<u64>();
            }
            sum
        }));
        assert_eq!(out, 64 * (0..20).sum::<u64>());
    }
}
