//! Nurseries: children that borrow from their parent, stored inside it, woken one at a time.

use std::cell::Cell;
use std::time::Duration;
use structured_async::{block_on, nursery, sleep, timeout, yield_now};

/// Runs `fut`, counting how often it is polled.
async fn counted<F: Future>(polls: &Cell<usize>, fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        polls.set(polls.get() + 1);
        fut.as_mut().poll(cx)
    })
    .await
}

pub fn run() {
    println!("\n== nurseries: scoped children that borrow and cannot outlive their parent ==");

    // Fan-out over borrowed data: no Arc, no 'static, no Send.
    let input: Vec<u64> = (1..=1000).collect();
    let mut squares = vec![0u64; input.len()];
    let sum: u64 = block_on(nursery!(|n| {
        let handles: Vec<_> = input
            .chunks(250)
            .zip(squares.chunks_mut(250))
            .map(|(inp, out)| {
                n.spawn(async move {
                    for (x, o) in inp.iter().zip(out.iter_mut()) {
                        *o = x * x;
                    }
                    yield_now().await;
                    out.iter().sum::<u64>()
                })
            })
            .collect();
        let mut sum = 0;
        for h in handles {
            sum += h.await;
        }
        sum
    }));
    println!("fan-out: 4 children squared borrowed chunks in place, sum = {sum}");
    assert_eq!(squares[999], 1_000_000);

    // A wake polls only the woken child.
    let polls = Cell::new(0);
    block_on(nursery!(|n| {
        for _ in 0..10_000 {
            n.spawn(counted(&polls, sleep(Duration::from_millis(50))));
        }
        let busy = n.spawn(counted(&polls, async {
            for _ in 0..1_000 {
                yield_now().await;
            }
        }));
        busy.await;
    }));
    println!(
        "10,000 sleeping children + one that yields 1,000 times: {} child polls, not 10 million",
        with_commas(polls.get())
    );

    // The first error cancels the rest; a timeout cancels a whole subtree.
    let out: Result<(), String> = block_on(nursery!(|n| {
        n.spawn(async {
            sleep(Duration::from_secs(60)).await;
            Ok(())
        });
        n.spawn(async {
            sleep(Duration::from_millis(5)).await;
            Err::<(), _>("disk full".to_string())
        });
        Ok(())
    }));
    println!("first error: {out:?} (the 60 s sibling was cancelled at once)");
    let timed = block_on(timeout(
        Duration::from_millis(20),
        nursery!(|n| {
            n.spawn(async { sleep(Duration::from_secs(60)).await });
        }),
    ));
    println!("timeout over a nursery: {timed:?}, its children dropped with it");
}

/// `21001` as `21,001`, to read next to the other numbers on its line.
fn with_commas(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(d);
    }
    out
}
