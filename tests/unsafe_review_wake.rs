//! A nursery's waker is `Sync`: safe code may wake one `&Waker` from several threads at once,
//! both while the child that got it is being polled (scoped threads borrowing `cx.waker()`)
//! and after the nursery is gone (the last clone shared through an `Arc`). Such wakes must
//! not touch the owner's unsynchronised state. Miri's data-race detector checks it:
//! `cargo +nightly miri test --test unsafe_review_wake`.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use structured_async::nursery;

fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("the nursery did not finish");
}

#[test]
fn a_borrowed_waker_woken_from_scoped_threads_during_the_poll() {
    let polls = run(nursery!(|n| {
        n.spawn(async {
            let mut polls = 0;
            poll_fn(|cx| {
                polls += 1;
                if polls > 1 {
                    return Poll::Ready(());
                }
                // Two threads and this one wake the borrowed waker at the same time.
                let waker: &Waker = cx.waker();
                std::thread::scope(|s| {
                    for _ in 0..2 {
                        s.spawn(|| waker.wake_by_ref());
                    }
                    waker.wake_by_ref();
                });
                Poll::Pending
            })
            .await;
            polls
        })
        .await
    }));
    // The wakes were not lost: the child ran again and finished.
    assert_eq!(polls, 2);
}

#[test]
fn the_last_waker_of_a_finished_nursery_woken_from_two_threads() {
    let mut kept = None;
    run(nursery!(|n| {
        let kept = &mut kept;
        n.spawn(poll_fn(move |cx: &mut Context<'_>| {
            *kept = Some(cx.waker().clone());
            Poll::Ready(())
        }));
    }));
    // The nursery is gone; this clone is the hub's only reference, shared by two threads.
    let waker = Arc::new(kept.expect("a child kept its waker"));
    let other = {
        let waker = waker.clone();
        std::thread::spawn(move || {
            for _ in 0..3 {
                waker.wake_by_ref();
            }
        })
    };
    for _ in 0..3 {
        waker.wake_by_ref();
    }
    other.join().unwrap();
    Arc::try_unwrap(waker).expect("joined").wake();
}
