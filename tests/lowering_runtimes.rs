//! A `#[structured]` coroutine is a plain `Future`: lazy, `Send` when its state is, and it
//! runs on this crate's `block_on`, on tokio (spawned onto worker threads) and on smol's
//! executor.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use structured_async::structured;

async fn hop(n: u64) -> u64 {
    // A real suspension: tokio and smol see `Pending` and wake us.
    let mut pending_once = true;
    std::future::poll_fn(|cx| {
        if std::mem::take(&mut pending_once) {
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    n
}

#[structured]
async fn sum(n: u64, started: Arc<AtomicUsize>) -> u64 {
    started.fetch_add(1, Ordering::SeqCst);
    let mut total = 0;
    let mut i = 0;
    while i < n {
        total += hop(i).await;
        i += 1;
    }
    total
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[test]
fn lazy_until_polled() {
    let started = Arc::new(AtomicUsize::new(0));
    let fut = sum(3, Arc::clone(&started));
    assert_eq!(started.load(Ordering::SeqCst), 0);
    assert_eq!(structured_async::block_on(fut), 3);
    assert_eq!(started.load(Ordering::SeqCst), 1);
}

#[test]
fn spawns_on_a_multi_threaded_tokio_runtime() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    let started = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..8)
        .map(|k| rt.spawn(assert_send(sum(k, Arc::clone(&started)))))
        .collect();
    let outs: Vec<u64> = rt.block_on(async {
        let mut v = Vec::new();
        for h in handles {
            v.push(h.await.unwrap());
        }
        v
    });
    assert_eq!(outs, [0, 0, 1, 3, 6, 10, 15, 21]);
    assert_eq!(started.load(Ordering::SeqCst), 8);
}

#[test]
fn runs_on_smols_executor() {
    let ex = async_executor::Executor::new();
    let started = Arc::new(AtomicUsize::new(0));
    let task = ex.spawn(sum(5, Arc::clone(&started)));
    let out = futures::executor::block_on(ex.run(task));
    assert_eq!(out, 10);
}
