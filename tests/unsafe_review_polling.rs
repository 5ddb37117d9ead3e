//! Second-look review of wake rule 8 (`runtime/src/nursery/wake.rs`): a node's wake of
//! itself is recognised through a thread-local record of the node being polled, saved and
//! given back around each poll of a nursery, as nurseries nest. Run under Miri too:
//! `cargo +nightly miri test --test unsafe_review_polling`.

use std::cell::Cell;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use structured_async::nursery;

/// A child that woke itself and then polls a nested nursery: its wake belongs to it, not to
/// the first child the nested nursery polls, which must not be polled again unwoken (the
/// nested nursery used to read the outer child's record as its own child's self-wake).
#[test]
fn a_self_wake_outside_a_nested_nursery_is_not_its_childs() {
    let inner_polls = Cell::new(0);
    let outer = nursery!(|_p| {
        let mut inner = pin!(nursery!(|_m| {
            // Never woken: polled once, when the nested nursery starts.
            poll_fn(|_| {
                inner_polls.set(inner_polls.get() + 1);
                Poll::<()>::Pending
            })
            .await
        }));
        let mut first = true;
        poll_fn(|cx| {
            if first {
                first = false;
                cx.waker().wake_by_ref();
            }
            inner.as_mut().poll(cx)
        })
        .await
    });
    let mut outer = pin!(outer);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..3 {
        assert!(outer.as_mut().poll(&mut cx).is_pending());
    }
    assert_eq!(
        inner_polls.get(),
        1,
        "polled only when started, never woken"
    );
}
