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

#[test]
fn spawning_100_000_children_allocates_logarithmically() {
    // Warm the executor's thread-locals so they are not counted.
    allocations_for(1);
    let none = allocations_for(0);
    let thousand = allocations_for(1_000);
    let many = allocations_for(100_000);
    // Storage doubles: 100x the children costs a handful more chunks per table, not 99,000.
    assert!(many < 64, "{many} allocations for 100,000 children");
    assert!(
        many - thousand <= 3 * 8,
        "{thousand} -> {many}: more than ~log2(100) more chunks per table"
    );
    assert!(none <= 4, "{none} allocations for an empty nursery");
}
