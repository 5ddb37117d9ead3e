//! `nursery!(send |n| ...)`: a nursery that is itself `Send`, for multi-threaded runtimes.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Waker};
use std::time::Duration;

use structured_async::{block_on, nursery, yield_now};

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[test]
fn a_send_nursery_runs_as_a_multi_threaded_tokio_task() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .unwrap();
    let data: Arc<Vec<u64>> = Arc::new((1..=100).collect());
    let total = rt.block_on(async move {
        tokio::spawn(nursery!(send move |n| {
            // A `'static` task: children own what they use (here, a share of the data).
            let handles: Vec<_> = (0..10)
                .map(|i| {
                    let data = Arc::clone(&data);
                    n.spawn(async move {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        data[i * 10..(i + 1) * 10].iter().sum::<u64>()
                    })
                })
                .collect();
            let mut total = 0;
            for h in handles {
                total += h.await;
            }
            total
        }))
        .await
        .unwrap()
    });
    assert_eq!(total, 5050);
}

#[test]
fn a_send_nursery_may_move_between_polls() {
    let counter = AtomicUsize::new(0);
    let mut fut = Box::pin(assert_send(nursery!(
        send | n | {
            let counter = &counter;
            // Two yields: the second waits for the nursery's next poll.
            let h = n.spawn(async move {
                yield_now().await;
                yield_now().await;
                counter.fetch_add(1, Ordering::SeqCst);
                7
            });
            yield_now().await;
            h.await
        }
    )));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    assert_eq!(counter.load(Ordering::SeqCst), 0);
    // Finish it on another thread: the scope and handles follow the thread polling it.
    let out = std::thread::scope(|s| s.spawn(move || block_on(fut)).join().unwrap());
    assert_eq!(out, 7);
    assert_eq!(counter.load(Ordering::SeqCst), 1);
}

#[test]
fn the_scope_of_a_send_nursery_refuses_other_threads() {
    let refused = block_on(nursery!(
        send | n | {
            let from_elsewhere = std::thread::scope(|s| {
                s.spawn(|| {
                    n.spawn(async {});
                })
                .join()
            });
            (from_elsewhere.is_err(), n.running())
        }
    ));
    assert_eq!(refused, (true, 0));
}
