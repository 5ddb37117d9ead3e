//! A turn polls children queued one after another with the same type in one loop that knows
//! the type (`VTable::run`). These tests mix child types of different sizes and outputs in
//! one run queue, so a run that went on into a child of another type would poll (and read
//! the output of) a payload as the wrong type: wrong values here, undefined behaviour under
//! Miri. They also check that runs keep spawn order, the turn budget, pend-once children and
//! panics as the per-child path did.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};

use structured_async::{block_on, nursery, yield_now};

/// Groups of children of three types (two sizes of payload, two output types) alternate in
/// the run queue; every output comes back to its own handle and children run in spawn order.
#[test]
fn runs_of_different_types_keep_their_outputs_apart_and_spawn_order() {
    let log = RefCell::new(Vec::new());
    let log = &log;
    let (small, big, words) = block_on(nursery!(|n| {
        let mut small = Vec::new();
        let mut big = Vec::new();
        let mut words = Vec::new();
        let mut id = 0u64;
        for group in 0..6u64 {
            for _ in 0..=group {
                let i = id;
                small.push(n.spawn(async move {
                    log.borrow_mut().push(i);
                    i * 3
                }));
                id += 1;
            }
            for _ in 0..2 {
                let i = id;
                let wide = [i; 24];
                big.push(n.spawn(async move {
                    log.borrow_mut().push(i);
                    wide.iter().sum::<u64>()
                }));
                id += 1;
            }
            let i = id;
            words.push(n.spawn(async move {
                log.borrow_mut().push(i);
                format!("child {i}")
            }));
            id += 1;
        }
        let mut out = (Vec::new(), Vec::new(), Vec::new());
        for h in small {
            out.0.push(h.await);
        }
        for h in big {
            out.1.push(h.await);
        }
        for h in words {
            out.2.push(h.await);
        }
        out
    }));
    // Ids by group: `group + 1` small ones, two big ones, one word.
    let mut want = (Vec::new(), Vec::new(), Vec::new());
    let mut id = 0u64;
    for group in 0..6u64 {
        for _ in 0..=group {
            want.0.push(id * 3);
            id += 1;
        }
        for _ in 0..2 {
            want.1.push(id * 24);
            id += 1;
        }
        want.2.push(format!("child {id}"));
        id += 1;
    }
    assert_eq!((small, big, words), want);
    assert_eq!(log.take(), (0..id).collect::<Vec<_>>());
}

/// A run longer than the turn's budget, with children that pend once and children of another
/// type among them: every child is polled in spawn order, a pend-once child exactly twice,
/// and the nursery still yields to its caller between turns.
#[test]
fn a_long_run_keeps_the_budget_and_polls_pending_children_again() {
    let polls = RefCell::new(Vec::new());
    let polls = &polls;
    let done = Cell::new(0u32);
    let done = &done;
    let mut turns = 0;
    let mut fut = std::pin::pin!(nursery!(|n| {
        for i in 0..1000u32 {
            if i % 97 == 0 {
                // Another type in the middle of the run.
                drop(n.spawn(async move {
                    polls.borrow_mut().push(i);
                    done.set(done.get() + 1);
                }));
            } else {
                drop(n.spawn(async move {
                    polls.borrow_mut().push(i);
                    if i % 3 == 0 {
                        yield_now().await;
                        polls.borrow_mut().push(i);
                    }
                    done.set(done.get() + 1);
                }));
            }
        }
    }));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    while fut.as_mut().poll(&mut cx).is_pending() {
        turns += 1;
    }
    assert_eq!(done.get(), 1000);
    let polls = polls.take();
    let yielders = (0..1000u32).filter(|i| i % 3 == 0 && i % 97 != 0).count();
    assert_eq!(polls.len(), 1000 + yielders);
    // First polls come in spawn order.
    let mut first = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for &i in &polls {
        if seen.insert(i) {
            first.push(i);
        }
    }
    assert_eq!(first, (0..1000).collect::<Vec<_>>());
    // 1,000 first polls and the second polls cannot all fit in one turn of 128 polls (the
    // runtime's `TURN_BUDGET` in runtime/src/nursery/driver.rs; a loose lower bound).
    assert!(turns >= (1000 + yielders) / 128, "{turns} turns");
}

/// A child that panics in the middle of a run stops the run: the children after it are
/// dropped unpolled, and the panic resumes in the nursery's caller.
#[test]
fn a_panic_in_a_run_stops_it_and_drops_the_rest() {
    struct Counted<'a>(&'a Cell<u32>);
    impl Drop for Counted<'_> {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
        }
    }
    let polled = Cell::new(0u32);
    let dropped = Cell::new(0u32);
    let (polled, dropped) = (&polled, &dropped);
    let out = catch_unwind(AssertUnwindSafe(|| {
        block_on(nursery!(|n| {
            for i in 0..50u32 {
                let guard = Counted(dropped);
                drop(n.spawn(async move {
                    let _guard = guard;
                    polled.set(polled.get() + 1);
                    assert!(i != 20, "child 20 fails");
                }));
            }
        }))
    }));
    let panic = out.expect_err("the child's panic resumes");
    assert_eq!(panic.downcast_ref::<&str>(), Some(&"child 20 fails"));
    assert_eq!(polled.get(), 21);
    assert_eq!(dropped.get(), 50);
}
