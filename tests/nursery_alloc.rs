//! Spawning allocates only when the nursery's storage grows: O(log n) allocations for n
//! children, counted by stats_alloc as this test binary's global allocator.

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

use structured_async::nursery;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Allocations made while one nursery runs `children` pend-once children, all alive at once.
fn allocations_for(children: usize) -> usize {
    let data = vec![3u64; 16];
    let data = &data;
    let fut = nursery!(|n| {
        for i in 0..children {
            n.spawn(async move {
                structured_async::yield_now().await;
                data[i % 16]
            });
        }
    });
    let region = Region::new(GLOBAL);
    futures::executor::block_on(fut);
    let change = region.change();
    change.allocations + change.reallocations
}

/// The counter is global: tests in this binary take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn spawning_100_000_children_allocates_logarithmically() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // Each size on a fresh thread, so no nursery storage is left over to reuse.
    let fresh = |children| {
        std::thread::spawn(move || allocations_for(children))
            .join()
            .unwrap()
    };
    let none = fresh(0);
    let thousand = fresh(1_000);
    let many = fresh(100_000);
    // The counter must see allocations, or the bounds below would prove nothing: a fresh
    // thread's first nursery allocates its storage.
    assert!(none > 0, "the counting allocator saw no allocation");
    // Storage doubles: 100x the children cost a few more chunks per table (nodes, entries,
    // slots, and the slot class's chunk list: about log2(100) each), not 99,000 more.
    assert!(
        many - none < 64,
        "{many} allocations for 100,000 children, {none} for none"
    );
    assert!(
        many - thousand <= 4 * 8,
        "{thousand} -> {many}: more than ~log2(100) more chunks per table"
    );
}

#[test]
fn a_warm_thread_spawns_without_allocating() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    allocations_for(100_000);
    // The finished nursery's storage is reused by the next one on this thread.
    assert_eq!(allocations_for(100_000), 0);
    assert_eq!(allocations_for(1_000), 0);
}

/// Bytes allocated while one nursery's body spawns `children` detached children one after
/// another (each handle dropped at once), yielding twice after each so that the child runs and
/// finishes before the next spawn: at most one child is alive at any time.
fn bytes_for_one_at_a_time(children: usize) -> usize {
    let fut = nursery!(|n| {
        for i in 0..children {
            drop(n.spawn(async move { i as u64 }));
            structured_async::yield_now().await;
            structured_async::yield_now().await;
        }
    });
    let region = Region::new(GLOBAL);
    futures::executor::block_on(fut);
    let change = region.change();
    change.bytes_allocated + change.bytes_reallocated.max(0) as usize
}

#[test]
fn a_detached_child_that_finishes_gives_its_slot_back() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // On a fresh thread, warmed by a nursery of a few children: a finished child whose slot
    // were never freed would make the nursery's storage grow with every child it ever
    // spawned (10,000 slots and wake nodes: hundreds of KiB). Bytes, not allocation counts,
    // because the counter is global and the test harness may start a thread meanwhile (a few
    // small allocations).
    let measured = std::thread::spawn(|| {
        bytes_for_one_at_a_time(100);
        bytes_for_one_at_a_time(10_000)
    })
    .join()
    .unwrap();
    assert!(
        measured < 16 * 1024,
        "{measured} bytes allocated: finished detached children kept their slots"
    );
}

/// Allocations made by a tree of nurseries three deep, `branch` wide at every level, each
/// leaf a child that yields eight times: a yield nested three nurseries deep runs at most four
/// times per poll of the outermost one (wake rule 8), so `branch + branch²` inner nurseries
/// are alive at once when that poll returns.
fn allocations_for_tree(branch: u64) -> usize {
    let fut = nursery!(|outer| {
        for _ in 0..branch {
            outer.spawn(nursery!(|mid| {
                for _ in 0..branch {
                    mid.spawn(nursery!(|leaves| {
                        for _ in 0..branch {
                            leaves.spawn(async {
                                for _ in 0..8 {
                                    structured_async::yield_now().await;
                                }
                            });
                        }
                    }));
                }
            }));
        }
    });
    let region = Region::new(GLOBAL);
    futures::executor::block_on(fut);
    let change = region.change();
    change.allocations + change.reallocations
}

#[test]
fn a_warm_thread_runs_a_tree_of_nurseries_without_allocating() {
    let _turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    std::thread::spawn(|| {
        // Cold: every one of the 1 + 20 + 400 nurseries allocates its storage.
        let cold = allocations_for_tree(20);
        assert!(cold >= 421, "{cold} allocations for 421 cold nurseries");
        // Warm: each nursery takes the storage one of the last tree's left behind.
        assert_eq!(allocations_for_tree(20), 0);
        // A smaller tree too: each level's nurseries find storage laid out for their own
        // children, whatever order the last tree's nurseries finished in.
        assert_eq!(allocations_for_tree(10), 0);
        assert_eq!(allocations_for_tree(20), 0);
    })
    .join()
    .unwrap();
}
