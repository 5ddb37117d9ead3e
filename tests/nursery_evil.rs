//! The proposal's "evil fan-out": poll a scope that lent borrowed data to its children, leak
//! it with `mem::forget`, free the data. Children live inside the leaked nursery, so nobody can
//! poll them again and nothing reads the freed data. Run under valgrind with
//! `valgrind --error-exitcode=1 <this test binary> evil`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use structured_async::nursery;

static CHILD_POLLS: AtomicUsize = AtomicUsize::new(0);
static WAKERS: Mutex<Vec<Waker>> = Mutex::new(Vec::new());

/// Reads its chunk on every poll, keeps its waker, and never finishes.
struct Reader<'a>(&'a [u64]);

impl Future for Reader<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        CHILD_POLLS.fetch_add(1, Ordering::SeqCst);
        assert_eq!(self.0.iter().sum::<u64>(), 7 * self.0.len() as u64);
        WAKERS.lock().unwrap().push(cx.waker().clone());
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[test]
fn evil() {
    let data = vec![7u64; 1024];
    let mut scope = Box::pin(nursery!(|n| {
        for chunk in data.chunks(64) {
            n.spawn(Reader(chunk));
        }
        std::future::pending::<()>().await
    }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(scope.as_mut().poll(&mut cx).is_pending());
    assert!(scope.as_mut().poll(&mut cx).is_pending());
    let polled = CHILD_POLLS.load(Ordering::SeqCst);
    // A child that wakes itself runs twice per poll of the scope (once more in its second
    // lap), so both polls really ran every child, reading its chunk.
    assert_eq!(
        polled,
        16 * 2 * 2,
        "each of the 16 children ran twice per poll of the scope"
    );

    std::mem::forget(scope);
    drop(data);

    // Wakers the children left behind are still safe to use: they only reach the nursery's
    // wake hub, which the leak keeps alive, and nobody polls the leaked children.
    for waker in WAKERS.lock().unwrap().drain(..) {
        waker.wake();
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert_eq!(CHILD_POLLS.load(Ordering::SeqCst), polled);
}
