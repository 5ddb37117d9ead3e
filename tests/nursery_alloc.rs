//! Spawning allocates only when the nursery's storage grows: O(log n) allocations for n
//! children, counted by a global allocator in this test binary of its own.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use structured_async::nursery;

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System`, only counting the calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    let before = ALLOCS.load(Ordering::Relaxed);
    futures::executor::block_on(fut);
    ALLOCS.load(Ordering::Relaxed) - before
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
