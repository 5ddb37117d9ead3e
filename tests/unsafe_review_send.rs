//! A `send` nursery's scope is `Sync`, so safe code can hand `&Scope` to another thread during a
//! poll. Every use of the scope from a thread other than the one polling the nursery must be
//! refused before it reads the nursery's unsynchronised state, `Debug` included (otherwise the
//! read races with the owner's spawns: a data race Miri reports).
//! `cargo +nightly miri test --test unsafe_review_send`

use std::future::{Future, poll_fn};
use std::pin::pin;
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
fn formatting_a_send_scope_from_another_thread_is_refused() {
    let (refused, spawned) = run(nursery!(
        send | n | {
            let refused = std::thread::scope(|s| {
                let other = s.spawn(|| format!("{n:?}").len());
                // The owner keeps spawning (writing the running count) meanwhile.
                for _ in 0..20 {
                    n.spawn(async {});
                }
                other.join().is_err()
            });
            let spawned = n.running();
            // Let the children run.
            let mut once = false;
            poll_fn(|cx: &mut Context<'_>| {
                if once {
                    return Poll::Ready(());
                }
                once = true;
                cx.waker().wake_by_ref();
                Poll::Pending
            })
            .await;
            (refused, spawned)
        }
    ));
    assert!(refused, "another thread read the scope's state");
    assert_eq!(spawned, 20);
}

#[test]
fn a_send_scope_formats_on_the_polling_thread() {
    let text = run(nursery!(
        send | n | {
            n.spawn(async {});
            format!("{n:?}")
        }
    ));
    assert!(text.contains("running: 1"), "{text}");
}
