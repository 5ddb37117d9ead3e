//! A spawned task is one allocation shared by the slab, the wakers and the `JoinHandle`
//! (`runtime/src/executor/cell.rs`). These tests check the rules its unsafe code relies on:
//! the future and the output are each dropped exactly once, on the executor's thread,
//! whichever of the handle, the runtime and the wakers goes last; a waker may outlive its task
//! and its runtime and be woken or dropped on another thread. Run them under Miri too:
//! `cargo +nightly miri test --test executor_task_cell`.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::thread::{self, ThreadId};
use structured_async::{Runtime, spawn_local, yield_now};

/// Where and how often the values of one test were dropped.
#[derive(Default)]
struct Drops {
    futures: Cell<usize>,
    outputs: Cell<usize>,
    threads: RefCell<Vec<ThreadId>>,
}

impl Drops {
    fn counts(&self) -> (usize, usize) {
        (self.futures.get(), self.outputs.get())
    }

    fn all_on(&self, thread: ThreadId) -> bool {
        self.threads.borrow().iter().all(|t| *t == thread)
    }
}

/// Counts its drop in `futures` or `outputs`; holds an `Rc`, so it is neither `Send` nor
/// `Sync` (a drop on another thread would be a bug the compiler no longer sees).
struct Tracked {
    drops: Rc<Drops>,
    output: bool,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let counter = if self.output {
            &self.drops.outputs
        } else {
            &self.drops.futures
        };
        counter.set(counter.get() + 1);
        self.drops.threads.borrow_mut().push(thread::current().id());
    }
}

/// A task future that owns a `Tracked`, parks its waker in `waker` (when given), waits for
/// `polls` polls, then returns a tracked output (or panics, with `panic`).
fn task(
    drops: &Rc<Drops>,
    polls: usize,
    waker: Option<Rc<RefCell<Option<Waker>>>>,
    panic: bool,
) -> impl Future<Output = Tracked> + 'static {
    let held = Tracked {
        drops: Rc::clone(drops),
        output: false,
    };
    let drops = Rc::clone(drops);
    async move {
        let _held = held;
        let mut left = polls;
        poll_fn(|cx| {
            if let Some(slot) = &waker {
                *slot.borrow_mut() = Some(cx.waker().clone());
            }
            if left == 0 {
                return Poll::Ready(());
            }
            left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        })
        .await;
        assert!(!panic, "the task panics on purpose");
        Tracked {
            drops,
            output: true,
        }
    }
}

#[test]
fn awaited_output_and_future_are_dropped_once() {
    let drops = Rc::new(Drops::default());
    let rt = Runtime::new();
    let out = rt.block_on(rt.spawn_local(task(&drops, 3, None, false)));
    assert_eq!(
        drops.counts(),
        (1, 0),
        "the future is dropped when it finishes"
    );
    drop(out);
    assert_eq!(drops.counts(), (1, 1));
    drop(rt);
    assert_eq!(drops.counts(), (1, 1));
}

#[test]
fn handle_dropped_before_completion_drops_the_output_when_it_is_made() {
    let drops = Rc::new(Drops::default());
    let rt = Runtime::new();
    rt.block_on(async {
        drop(spawn_local(task(&drops, 2, None, false)));
        for _ in 0..5 {
            yield_now().await;
        }
    });
    assert_eq!(drops.counts(), (1, 1));
    drop(rt);
    assert_eq!(drops.counts(), (1, 1));
}

#[test]
fn handle_dropped_after_completion_drops_the_unread_output() {
    let drops = Rc::new(Drops::default());
    let rt = Runtime::new();
    let handle = rt.spawn_local(task(&drops, 0, None, false));
    rt.block_on(yield_now());
    assert!(handle.is_finished());
    assert_eq!(drops.counts(), (1, 0), "the output waits for its handle");
    drop(rt);
    assert_eq!(drops.counts(), (1, 0), "the handle still holds the output");
    drop(handle);
    assert_eq!(drops.counts(), (1, 1));
}

#[test]
fn a_handle_outliving_its_runtime_still_yields_the_output() {
    let drops = Rc::new(Drops::default());
    let rt = Runtime::new();
    let handle = rt.spawn_local(task(&drops, 1, None, false));
    rt.block_on(async {
        yield_now().await;
        yield_now().await;
    });
    drop(rt);
    let mut handle = pin!(handle);
    let Poll::Ready(out) = handle
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    else {
        panic!("the task had finished");
    };
    assert!(out.output);
    drop(out);
    assert_eq!(drops.counts(), (1, 1));
}

#[test]
fn aborted_and_shut_down_tasks_drop_their_future_once_and_make_no_output() {
    let drops = Rc::new(Drops::default());
    let rt = Runtime::new();
    let (never_polled, pending) = rt.block_on(async {
        let aborted = spawn_local(task(&drops, 1_000, None, false));
        aborted.abort();
        aborted.abort();
        assert!(aborted.is_finished());
        let pending = spawn_local(task(&drops, usize::MAX, None, false));
        yield_now().await;
        // Spawned but never polled: the runtime drops it on shutdown.
        let never_polled = spawn_local(task(&drops, 0, None, false));
        (never_polled, pending)
    });
    assert_eq!(drops.counts(), (1, 0), "the aborted future, once");
    drop(rt);
    assert_eq!(drops.counts(), (3, 0), "shutdown dropped the other two");
    assert!(never_polled.is_finished() && pending.is_finished());
    drop((never_polled, pending));
    assert_eq!(drops.counts(), (3, 0));
}

#[test]
fn a_panicking_task_drops_its_future_once_and_its_handle_resumes_the_panic() {
    let drops = Rc::new(Drops::default());
    let rt = Runtime::new();
    let caught = rt.block_on(async {
        let handle = spawn_local(task(&drops, 1, None, true));
        let mut handle = pin!(handle);
        poll_fn(|cx| {
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handle.as_mut().poll(cx)
            })) {
                Ok(Poll::Pending) => Poll::Pending,
                Ok(Poll::Ready(_)) => Poll::Ready(None),
                Err(payload) => Poll::Ready(Some(payload)),
            }
        })
        .await
    });
    let payload = caught.expect("the handle resumed the task's panic");
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
    assert_eq!(message, Some("the task panics on purpose"));
    assert_eq!(drops.counts(), (1, 0));
    drop(rt);
    assert_eq!(drops.counts(), (1, 0));
}

#[test]
fn wakers_outliving_task_and_runtime_are_harmless_on_any_thread() {
    let drops = Rc::new(Drops::default());
    let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
    let rt = Runtime::new();
    let out = rt.block_on(rt.spawn_local(task(&drops, 2, Some(Rc::clone(&slot)), false)));
    let waker = slot.borrow_mut().take().expect("the task left its waker");
    let clones: Vec<Waker> = (0..4).map(|_| waker.clone()).collect();
    // After completion, on this thread: the task is done, nothing is queued or polled.
    waker.wake_by_ref();
    rt.block_on(yield_now());
    drop(rt);
    drop(out);
    assert_eq!(drops.counts(), (1, 1));
    // After the runtime is gone: wakes by reference and by value, from other threads, and
    // the last reference to the task's allocation dropped there.
    let main = thread::current().id();
    thread::scope(|s| {
        for w in clones {
            s.spawn(move || {
                w.wake_by_ref();
                w.wake();
            });
        }
    });
    thread::spawn(move || drop(waker)).join().unwrap();
    assert_eq!(drops.counts(), (1, 1));
    assert!(
        drops.all_on(main),
        "future and output dropped on the executor's thread"
    );
}

#[test]
fn a_cross_thread_wake_after_completion_neither_polls_nor_drops_again() {
    let drops = Rc::new(Drops::default());
    let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
    let polls = Rc::new(Cell::new(0));
    let rt = Runtime::new();
    let p = Rc::clone(&polls);
    let s = Rc::clone(&slot);
    let handle = rt.spawn_local(poll_fn(move |cx| {
        p.set(p.get() + 1);
        *s.borrow_mut() = Some(cx.waker().clone());
        Poll::Ready(())
    }));
    rt.block_on(handle);
    assert_eq!(polls.get(), 1);
    let waker = slot.borrow_mut().take().expect("the task left its waker");
    thread::spawn(move || waker.wake()).join().unwrap();
    // The remote wake is queued; draining it must not poll the finished task again.
    rt.block_on(async {
        yield_now().await;
        yield_now().await;
    });
    assert_eq!(polls.get(), 1);
    // A live task whose waker is woken from another thread while it waits runs again.
    let out = rt.block_on(async {
        let handle = spawn_local(task(&drops, 0, Some(Rc::clone(&slot)), false));
        yield_now().await;
        handle.await
    });
    let waker = slot.borrow_mut().take().expect("the task left its waker");
    thread::spawn(move || waker.wake()).join().unwrap();
    rt.block_on(yield_now());
    drop(out);
    drop(rt);
    assert_eq!(drops.counts(), (1, 1));
}

#[test]
fn a_task_aborting_itself_drops_its_future_after_the_poll() {
    let drops = Rc::new(Drops::default());
    let rt = Runtime::new();
    let handle_slot: Rc<RefCell<Option<structured_async::JoinHandle<Tracked>>>> = Rc::default();
    let h = Rc::clone(&handle_slot);
    let d = Rc::clone(&drops);
    let handle = rt.spawn_local(async move {
        let _held = Tracked {
            drops: Rc::clone(&d),
            output: false,
        };
        yield_now().await;
        if let Some(me) = h.borrow().as_ref() {
            me.abort();
        }
        assert_eq!(d.futures.get(), 0, "not dropped while it runs");
        yield_now().await;
        unreachable!("an aborted task is not polled again");
    });
    *handle_slot.borrow_mut() = Some(handle);
    rt.block_on(async {
        for _ in 0..4 {
            yield_now().await;
        }
    });
    assert_eq!(drops.counts(), (1, 0));
    assert!(
        handle_slot
            .borrow()
            .as_ref()
            .is_some_and(|h| h.is_finished())
    );
}

/// A finished future whose destructor panics: the panic is the task's, delivered to its
/// handle like a panic of `poll` (not unwinding into `block_on`, which left the task's slab
/// slot taken for ever), the future and the output dropped once each.
#[test]
fn a_destructor_panicking_after_completion_is_the_task_panic_for_the_handle() {
    /// Panics when dropped (the future's state after it returned).
    struct Bomb(Rc<Cell<usize>>);
    impl Drop for Bomb {
        fn drop(&mut self) {
            self.0.set(self.0.get() + 1);
            panic!("destructor panics on purpose");
        }
    }
    let drops = Rc::new(Drops::default());
    let bomb_drops = Rc::new(Cell::new(0));
    let rt = Runtime::new();
    let bomb = Bomb(Rc::clone(&bomb_drops));
    let d = Rc::clone(&drops);
    // A `poll_fn` keeps its closure (and the bomb) after returning, until it is dropped; an
    // `async` block would drop its locals inside the last poll.
    let handle = rt.spawn_local(poll_fn(move |_| {
        let _armed = &bomb;
        Poll::Ready(Tracked {
            drops: Rc::clone(&d),
            output: true,
        })
    }));
    rt.block_on(yield_now());
    assert_eq!(bomb_drops.get(), 1, "the future was dropped once");
    // The output went with the future: the handle gets the panic instead.
    assert_eq!(drops.counts(), (0, 1));
    assert!(handle.is_finished());
    let mut handle = pin!(handle);
    let joined = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handle
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
    }));
    let Err(payload) = joined else {
        panic!("the handle resumes the destructor's panic");
    };
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"destructor panics on purpose")
    );
    // The runtime still works, and shuts down without touching the finished task again.
    assert_eq!(rt.block_on(async { spawn_local(async { 5 }).await }), 5);
    drop(rt);
    assert_eq!(bomb_drops.get(), 1);
    assert_eq!(drops.counts(), (0, 1));
}

#[test]
fn wakes_racing_with_completion_and_shutdown_free_the_task_once() {
    // Other threads wake and drop clones of a task's waker while the task finishes, its
    // handle is dropped and the runtime shuts down: whichever thread drops the last
    // reference frees the allocation, once (Miri checks the reference count's orderings and
    // reports a double free or a leak).
    const ROUNDS: usize = if cfg!(miri) { 3 } else { 200 };
    const THREADS: usize = 3;
    for round in 0..ROUNDS {
        let drops = Rc::new(Drops::default());
        let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
        let rt = Runtime::new();
        let handle = rt.spawn_local(task(&drops, 3, Some(Rc::clone(&slot)), false));
        rt.block_on(yield_now());
        let waker = slot.borrow_mut().take().expect("the task left its waker");
        let go = std::sync::Arc::new(std::sync::Barrier::new(THREADS + 1));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (w, go) = (waker.clone(), std::sync::Arc::clone(&go));
                thread::spawn(move || {
                    go.wait();
                    for _ in 0..4 {
                        w.wake_by_ref();
                    }
                    w.wake();
                })
            })
            .collect();
        drop(waker);
        go.wait();
        // Until the task finishes: a wake from another thread may have queued it remotely,
        // and the loop takes that queue at the start of its next turn.
        rt.block_on(async {
            while !handle.is_finished() {
                yield_now().await;
            }
        });
        // The task's own last waker goes too, so the threads may hold the last references.
        drop(slot.borrow_mut().take());
        if round % 2 == 0 {
            drop(handle);
            drop(rt);
        } else {
            drop(rt);
            drop(handle);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(drops.counts(), (1, 1), "round {round}");
        assert!(drops.all_on(thread::current().id()), "round {round}");
    }
}
