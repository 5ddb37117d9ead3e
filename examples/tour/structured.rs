//! `#[structured]`: an async fn compiled into an explicit state machine, next to the same
//! body as a native `async fn`.

use std::mem::size_of_val;

use structured_async::{Coroutine, Step, block_on, structured, yield_};

async fn lookup(key: u32) -> Option<u32> {
    structured_async::yield_now().await;
    (key % 5 != 0).then_some(key * 3)
}

/// Sums the lookups of `0..n` (odd ones divided by 3), skipping misses.
#[structured]
async fn sum_found(n: u32) -> u32 {
    let mut total = 0;
    let mut i = 0;
    while i < n {
        match lookup(i).await {
            Some(v) if v % 2 == 0 => total += v,
            Some(v) => total += v / 3,
            None => {}
        }
        i += 1;
    }
    total
}

/// The same body as a native async fn.
async fn sum_found_native(n: u32) -> u32 {
    let mut total = 0;
    let mut i = 0;
    while i < n {
        match lookup(i).await {
            Some(v) if v % 2 == 0 => total += v,
            Some(v) => total += v / 3,
            None => {}
        }
        i += 1;
    }
    total
}

/// A generator: the squares below `limit`.
#[structured(yields = u32)]
async fn squares(limit: u32) {
    let mut k = 1;
    while k * k < limit {
        yield_!(k * k);
        k += 1;
    }
}

pub fn run() {
    println!("\n== #[structured]: explicit state machines ==");
    let ours = sum_found(10);
    let native = sum_found_native(10);
    println!(
        "future size: #[structured] {} bytes, native async fn {} bytes",
        size_of_val(&ours),
        size_of_val(&native)
    );
    println!(
        "results: #[structured] {}, native {}",
        block_on(ours),
        block_on(native)
    );

    let mut g = core::pin::pin!(squares(50));
    let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    let mut yielded = Vec::new();
    while let Step::Yielded(v) = g.as_mut().resume(&mut cx) {
        yielded.push(v);
    }
    println!("generator squares(50), the squares below 50: yielded {yielded:?}");
    println!("(build with STRUCTURED_ASYNC_REPORT=1 to see each fn's states and fallbacks)");
}
