//! The waker of whoever polls a nursery is woken outside the lock that guards it: a parent
//! waker that polls the nursery again at once (an executor that runs a task inline when it is
//! woken), with another waker, must not deadlock on that lock. It is registered only by a poll
//! that returns `Pending`, without losing a wake from another thread meanwhile.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Wake, Waker};
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

/// Runs `f` on its own thread and fails if it does not end within 30 seconds (a deadlock or a
/// lost wake), instead of hanging the test run.
fn within_30_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(f()).unwrap());
    rx.recv_timeout(Duration::from_secs(30))
        .expect("hung: a deadlock on the nursery's lock, or a lost wake")
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

static CLONES: AtomicUsize = AtomicUsize::new(0);

/// A waker that does nothing but count its clones (in [`CLONES`]).
fn counting_waker() -> Waker {
    fn clone(data: *const ()) -> RawWaker {
        CLONES.fetch_add(1, Ordering::SeqCst);
        RawWaker::new(data, &VTABLE)
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, |_| {}, |_| {}, |_| {});
    // SAFETY: the vtable's functions never read the (null) data pointer and own nothing.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// A nursery (with one nested in it) whose children pend once finishes in its first poll and
/// never clones its caller's waker; one that returns `Pending` keeps exactly one clone, however
/// often the same caller polls it.
#[test]
fn only_a_poll_that_returns_pending_keeps_the_callers_waker() {
    let waker = counting_waker();
    let mut cx = Context::from_waker(&waker);
    let done = std::pin::pin!(nursery!(|outer| {
        outer.spawn(nursery!(|inner| {
            for _ in 0..10 {
                inner.spawn(structured_async::yield_now());
            }
        }));
        outer.spawn(structured_async::yield_now());
    }));
    assert!(done.poll(&mut cx).is_ready());
    assert_eq!(CLONES.load(Ordering::SeqCst), 0);

    let (tx, rx) = mpsc::channel::<()>();
    let mut waits = std::pin::pin!(nursery!(|n| {
        n.spawn(poll_fn(|_| match rx.try_recv() {
            Ok(()) => Poll::Ready(()),
            Err(_) => Poll::Pending,
        }));
    }));
    assert!(waits.as_mut().poll(&mut cx).is_pending());
    assert!(waits.as_mut().poll(&mut cx).is_pending());
    assert_eq!(CLONES.load(Ordering::SeqCst), 1);
    tx.send(()).unwrap();
    // Nothing woke the child (its waker was never used): a poll of the nursery alone does not
    // run it, which is what keeps the output pending here.
    assert!(waits.as_mut().poll(&mut cx).is_pending());
}

/// A child hands a clone of its waker to a thread that wakes it at once, while its siblings
/// keep the nursery's first poll busy for a varying while: the wake lands before, during or
/// after the poll registers its caller's waker, and is never lost (a lost one would hang the
/// run, caught here as a failure).
#[test]
fn a_wake_from_another_thread_at_the_end_of_the_first_poll_is_not_lost() {
    within_30_seconds(|| {
        for round in 0..if cfg!(miri) { 5 } else { 2_000 } {
            let out = futures::executor::block_on(nursery!(|n| {
                let h = n.spawn(async {
                    let mut sent = false;
                    poll_fn(|cx| {
                        if sent {
                            return Poll::Ready(7);
                        }
                        sent = true;
                        let waker = cx.waker().clone();
                        std::thread::spawn(move || waker.wake());
                        Poll::Pending
                    })
                    .await
                });
                for _ in 0..round % 16 {
                    n.spawn(async move {
                        for i in 0..(round % 7) * 200 {
                            std::hint::black_box(i);
                        }
                    });
                }
                h.await
            }));
            assert_eq!(out, 7);
        }
    });
}
