//! The proposal's fan-out, done soundly: children borrow disjoint chunks of the caller's data
//! (read-only input, mutable output), with no `Arc`, no `'static`, no `Send`.
//!
//! In a spawn-based runtime the same program needs `'static` data, because a scope future that
//! is polled, then leaked with `mem::forget`, would leave its tasks running on freed memory.
//! Here the children live inside the nursery future: leak it and they are leaked with it,
//! never polled again.
//!
//! Run with `cargo run --example fanout`.

use std::time::Duration;

use structured_async::{block_on, nursery, sleep, yield_now};

/// Squares each input into the output, pausing now and then as real work would.
async fn square_into(input: &[u64], output: &mut [u64]) -> u64 {
    let mut sum = 0;
    for (x, out) in input.iter().zip(output.iter_mut()) {
        *out = x * x;
        sum += *out;
        if *x % 64 == 0 {
            yield_now().await;
        }
    }
    sum
}

fn main() {
    let input: Vec<u64> = (1..=10_000).collect();
    let mut output = vec![0u64; input.len()];
    const CHUNK: usize = 1_000;

    let total: u64 = block_on(nursery!(|n| {
        let handles: Vec<_> = input
            .chunks(CHUNK)
            .zip(output.chunks_mut(CHUNK))
            .map(|(inp, out)| n.spawn(square_into(inp, out)))
            .collect();
        println!(
            "fanout: {} children, each borrowing one chunk",
            handles.len()
        );
        // A slow child the others do not wait for; the nursery does.
        n.spawn(async {
            sleep(Duration::from_millis(5)).await;
            println!("fanout: the slow child finished before the nursery did");
        });
        let mut total = 0;
        for h in handles {
            total += h.await;
        }
        total
    }));

    let expected: u64 = input.iter().map(|x| x * x).sum();
    assert_eq!(total, expected);
    assert!(output.iter().zip(&input).all(|(o, x)| *o == x * x));
    println!("fanout: sum of squares 1..=10000 = {total}; every output slot written");
}
