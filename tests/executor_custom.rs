//! Runs the fixed-capacity executor of `examples/custom_executor.rs` under `cargo test`: every
//! job runs to completion in round-robin order, a job that waits is woken by its flag waker,
//! a full executor hands jobs back, and nothing touches the heap (the example's counting
//! allocator is this binary's global allocator).

#[allow(dead_code)]
#[path = "../examples/custom_executor.rs"]
mod custom_executor;

use custom_executor::{Event, Report, run_jobs};

#[test]
fn the_fixed_executor_runs_every_job_in_turn_without_the_heap() {
    let mut events = [None; 32];
    let mut n = 0;
    let (steps, allocations) = run_jobs(|event| {
        events[n] = Some(event);
        n += 1;
    });
    assert_eq!(allocations, 0, "heap allocations on the executor's thread");
    let events: Vec<Event> = events[..n].iter().map(|e| e.unwrap()).collect();
    use Event::{Finished, Yielded};
    use Report::*;
    let expected = [
        // Slot 0 holds the reader, which waits (no event); slots 1 and 2 take turns.
        Yielded(1, Countdown(3)),
        Yielded(2, Fib(1)),
        Yielded(1, Countdown(2)),
        Yielded(2, Fib(1)),
        Yielded(1, Countdown(1)),
        Yielded(2, Fib(2)),
        Finished(1, Liftoff("liftoff")),
        // The fourth job waited in the backlog for a free slot.
        Yielded(2, Fib(3)),
        Yielded(1, Countdown(2)),
        Yielded(2, Fib(5)),
        Yielded(1, Countdown(1)),
        Yielded(2, Fib(8)),
        Finished(1, Liftoff("liftoff")),
        Yielded(2, Fib(13)),
        Finished(2, Posted(13)),
        // The post woke the reader through its flag waker.
        Finished(0, Received(13)),
    ];
    assert_eq!(events, expected);
    assert_eq!(
        steps,
        expected.len() + 1,
        "plus the reader's first, pending step"
    );
}
