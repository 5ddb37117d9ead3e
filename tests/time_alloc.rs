//! Once the wheel's slab has grown, registering, re-polling, firing and cancelling sleeps
//! allocates nothing. One test function only, so no other test allocates while counting.

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use structured_async::{block_on, sleep};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Registers `n` sleeps (half far away, half due in a millisecond), polls them all until
/// the near half fired, then drops the rest (cancelling them).
async fn round(n: usize, naps: &mut Vec<structured_async::time::Sleep>) {
    naps.extend((0..n).map(|i| {
        let far = i % 2 == 0;
        sleep(Duration::from_millis(if far { 60_000 } else { 1 }))
    }));
    poll_fn(|cx| {
        let mut pending = 0;
        for nap in naps.iter_mut() {
            if Pin::new(nap).poll(cx).is_pending() {
                pending += 1;
            }
        }
        if pending <= n / 2 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    naps.clear();
}

#[test]
fn warm_timers_do_not_allocate() {
    block_on(async {
        let mut naps = Vec::with_capacity(1_000);
        // Warm-up: the slab, the fired-wakers buffer and the runtime's queues grow.
        round(1_000, &mut naps).await;
        round(1_000, &mut naps).await;
        let region = Region::new(GLOBAL);
        for _ in 0..5 {
            round(1_000, &mut naps).await;
        }
        let change = region.change();
        assert_eq!(
            (change.allocations, change.reallocations),
            (0, 0),
            "5 × 1000 sleeps registered, fired or cancelled after warm-up"
        );
    });
}
