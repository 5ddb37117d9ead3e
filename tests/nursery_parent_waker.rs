//! The waker of whoever polls a nursery is woken outside the lock that guards it: a parent
//! waker that polls the nursery again at once (an executor that runs a task inline when it is
//! woken), with another waker, must not deadlock on that lock.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use structured_async::nursery;

type Task = Pin<Box<dyn Future<Output = u32> + Send>>;

/// An executor of one task that polls it inline whenever it is woken.
struct Inline {
    task: Mutex<Option<Task>>,
    output: Mutex<Option<u32>>,
    polls: AtomicUsize,
}

/// A waker of [`Inline`]: a new allocation per poll, so every poll brings another waker.
struct Wakes(Arc<Inline>);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        poll_inline(&self.0);
    }
}

fn poll_inline(inline: &Arc<Inline>) {
    let mut task = inline.task.lock().unwrap();
    let Some(fut) = task.as_mut() else { return };
    inline.polls.fetch_add(1, Ordering::SeqCst);
    let waker = Waker::from(Arc::new(Wakes(Arc::clone(inline))));
    if let Poll::Ready(out) = fut.as_mut().poll(&mut Context::from_waker(&waker)) {
        *task = None;
        *inline.output.lock().unwrap() = Some(out);
    }
}

/// A send nursery whose one child keeps a clone of its waker in the returned slot, pends once
/// and then returns 40; the nursery returns the child's output + 2. The kept clone is counted,
/// so its wake takes the shared path, which wakes the nursery's parent.
fn keeps_its_childs_waker() -> (Task, Arc<Mutex<Option<Waker>>>) {
    let kept: Arc<Mutex<Option<Waker>>> = Arc::default();
    let child_kept = Arc::clone(&kept);
    let task: Task = Box::pin(nursery!(send move |n| {
        let kept = Arc::clone(&child_kept);
        let h = n.spawn(async move {
            let mut first = true;
            poll_fn(|cx| {
                if first {
                    first = false;
                    *kept.lock().unwrap() = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                Poll::Ready(())
            })
            .await;
            40
        });
        h.await + 2
    }));
    (task, kept)
}

/// Runs `f` on its own thread and fails if it does not end within 30 seconds (a deadlock),
/// instead of hanging the test run.
fn within_30_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(30))
        .expect("deadlocked: the parent waker was woken under the nursery's lock")
}

#[test]
fn a_parent_waker_that_polls_the_nursery_inline_does_not_deadlock() {
    let (polls, output) = within_30_seconds(|| {
        let (task, kept) = keeps_its_childs_waker();
        let inline = Arc::new(Inline {
            task: Mutex::new(Some(task)),
            output: Mutex::new(None),
            polls: AtomicUsize::new(0),
        });
        poll_inline(&inline);
        assert!(inline.output.lock().unwrap().is_none(), "the child waits");
        // Outside any poll, on the thread that polled: wakes the parent, which polls the
        // nursery again with a new waker, re-registering it.
        let waker = kept
            .lock()
            .unwrap()
            .take()
            .expect("the child kept its waker");
        waker.wake();
        let output = inline.output.lock().unwrap().take();
        (inline.polls.load(Ordering::SeqCst), output)
    });
    // The wake reached the parent, whose inline poll finished the nursery.
    assert_eq!(output, Some(42));
    assert_eq!(polls, 2);
}

/// The owner thread's end: where wakes ask for a poll, and where it says it polled.
struct Owner {
    polls: mpsc::SyncSender<()>,
    polled: Mutex<mpsc::Receiver<()>>,
}

/// A waker that asks the owner thread to poll and waits until it has; a new allocation per
/// poll, so every poll registers another waker.
struct Handoff(Arc<Owner>);

impl Wake for Handoff {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.0.polls.send(()).is_ok() {
            let _ = self.0.polled.lock().unwrap().recv();
        }
    }
}

/// The wake comes from another thread, and the parent's waker waits there for the owner's
/// poll, which registers a new waker: the waking thread must not hold the lock meanwhile.
#[test]
fn a_parent_waker_that_waits_for_the_owner_thread_to_poll_does_not_deadlock() {
    let output = within_30_seconds(|| {
        let (polls_tx, polls_rx) = mpsc::sync_channel(1);
        let (polled_tx, polled_rx) = mpsc::sync_channel(1);
        let owner = Arc::new(Owner {
            polls: polls_tx,
            polled: Mutex::new(polled_rx),
        });
        let (mut task, kept) = keeps_its_childs_waker();
        let mut poll = || {
            let waker = Waker::from(Arc::new(Handoff(Arc::clone(&owner))));
            task.as_mut().poll(&mut Context::from_waker(&waker))
        };
        assert!(poll().is_pending());
        let waker = kept
            .lock()
            .unwrap()
            .take()
            .expect("the child kept its waker");
        let waking = std::thread::spawn(move || waker.wake());
        // The waking thread waits in the parent's wake for this poll.
        polls_rx.recv().unwrap();
        let out = poll();
        polled_tx.send(()).unwrap();
        waking.join().unwrap();
        out
    });
    assert_eq!(output, Poll::Ready(42));
}
