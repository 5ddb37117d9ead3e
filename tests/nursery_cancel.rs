//! Async cleanup on cancellation: children spawned with `spawn_cancellable` run
//! `AsyncCancel::poll_cancel` before they are dropped, bounded by the grace period.

use std::cell::RefCell;
use std::future::{Future, pending};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use structured_async::executor::AsyncCancel;
use structured_async::{block_on, nursery, yield_now};

/// Finishes at once when `finishes`, else never on its own; its cleanup takes `steps` polls
/// (each waking itself), or never finishes when `steps` is `None`.
struct Session<'a> {
    log: &'a RefCell<Vec<String>>,
    name: &'static str,
    steps: Option<u32>,
    finishes: bool,
}

impl Future for Session<'_> {
    type Output = Result<(), String>;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        if self.finishes {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

impl AsyncCancel for Session<'_> {
    fn poll_cancel(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        self.log.borrow_mut().push(format!("{} cleanup", self.name));
        match &mut self.steps {
            Some(0) => Poll::Ready(()),
            Some(n) => {
                *n -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            None => Poll::Pending,
        }
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        self.log.borrow_mut().push(format!("{} dropped", self.name));
    }
}

#[test]
fn a_cancelled_child_finishes_its_async_cleanup_before_it_is_dropped() {
    let log = RefCell::new(Vec::new());
    let log = &log;
    let out: Result<(), String> = block_on(nursery!(|n| {
        n.spawn_cancellable(Session {
            log,
            name: "db",
            steps: Some(2),
            finishes: false,
        });
        n.spawn(async move {
            let _s = Session {
                log,
                name: "plain",
                steps: Some(0),
                finishes: false,
            };
            pending::<Result<(), String>>().await
        });
        n.spawn(async {
            yield_now().await;
            Err::<(), _>("boom".to_string())
        });
        pending().await
    }));
    assert_eq!(out, Err("boom".to_string()));
    assert_eq!(
        *log.borrow(),
        [
            "plain dropped",
            "db cleanup",
            "db cleanup",
            "db cleanup",
            "db dropped"
        ]
    );
}

#[test]
fn the_grace_period_bounds_a_cleanup_that_never_ends() {
    let log = RefCell::new(Vec::new());
    let log = &log;
    let start = Instant::now();
    let out: Result<(), String> = block_on(nursery!(|n| {
        n.set_grace(Duration::from_millis(30));
        n.spawn_cancellable(async_session(log));
        yield_now().await;
        Err("body failed".to_string())
    }));
    assert_eq!(out, Err("body failed".to_string()));
    // Cleanup was attempted, then the child was dropped when the grace period ran out.
    assert_eq!(*log.borrow(), ["stuck cleanup", "stuck dropped"]);
    assert!(start.elapsed() >= Duration::from_millis(30));
}

fn async_session(log: &RefCell<Vec<String>>) -> Session<'_> {
    Session {
        log,
        name: "stuck",
        steps: None,
        finishes: false,
    }
}

#[test]
fn a_nursery_that_ends_normally_never_cancels() {
    let log = RefCell::new(Vec::new());
    let log = &log;
    let out: Result<u8, String> = block_on(nursery!(|n| {
        n.spawn_cancellable(Session {
            log,
            name: "finishes",
            steps: Some(0),
            finishes: true,
        });
        let h = n.spawn(async { Ok(4) });
        Ok(h.await? + 1)
    }));
    assert_eq!(out, Ok(5));
    assert_eq!(*log.borrow(), ["finishes dropped"]);
}
