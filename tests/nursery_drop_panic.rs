//! A child whose future panics in its destructor as it finishes (dropped inside the nursery's
//! poll): the panic is the child's, so it reaches the nursery's parent like a panic of the
//! child's `poll`; every other child is dropped once, and later nurseries on the thread (which
//! reuse the first one's memory) run normally.

use std::cell::Cell;
use std::future::{Future, pending};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use structured_async::{nursery, yield_now};

/// Ready on its first poll; panics when dropped.
struct PanicsOnDrop(Rc<Cell<u32>>);

impl Future for PanicsOnDrop {
    type Output = u32;

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<u32> {
        Poll::Ready(1)
    }
}

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        panic!("a finished child's destructor");
    }
}

/// Counts its drops.
struct Counted(Rc<Cell<u32>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

fn poll_until_done<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..100 {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
    }
    panic!("the nursery did not finish");
}

#[test]
fn the_destructor_panic_reaches_the_parent_and_siblings_are_dropped_once() {
    for with_handle in [false, true] {
        let (bombs, siblings) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
        let ended = catch_unwind(AssertUnwindSafe(|| {
            poll_until_done(nursery!(|n| {
                // Siblings before and after it in the same run of children, one waiting.
                let a = Counted(Rc::clone(&siblings));
                n.spawn(async move {
                    let _a = a;
                    pending::<()>().await
                });
                let h = n.spawn(PanicsOnDrop(Rc::clone(&bombs)));
                let b = Counted(Rc::clone(&siblings));
                n.spawn(async move {
                    let _b = b;
                    yield_now().await;
                });
                if with_handle {
                    h.await;
                } else {
                    drop(h);
                    pending::<()>().await
                }
            }))
        }));
        let payload = ended.expect_err("the child's panic reached the parent");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"a finished child's destructor")
        );
        assert_eq!(
            (bombs.get(), siblings.get()),
            (1, 2),
            "with_handle {with_handle}"
        );
        // The thread's next nursery (on the recycled memory) runs as usual.
        let out = poll_until_done(nursery!(|n| {
            let hs: Vec<_> = (0..40u32)
                .map(|i| {
                    n.spawn(async move {
                        yield_now().await;
                        i
                    })
                })
                .collect();
            let mut sum = 0;
            for h in hs {
                sum += h.await;
            }
            sum
        }));
        assert_eq!(out, (0..40).sum::<u32>());
    }
}
