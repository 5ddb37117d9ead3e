//! The wakers' safety and precision: they are `Send + Sync`, may be woken from any thread at
//! any time — after their task finished, after the slot was reused, after the runtime was
//! dropped — and wake exactly their own task.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Poll, Waker};
use structured_async::executor::flag_waker;
use structured_async::{Runtime, block_on, spawn_local, yield_now};

fn assert_send_sync<T: Send + Sync>(_: &T) {}

/// A future that parks its waker in `slot`, counts its polls, and finishes once `open`.
fn gate(
    slot: Rc<RefCell<Option<Waker>>>,
    polls: Rc<Cell<usize>>,
    open: Rc<Cell<bool>>,
) -> impl Future<Output = ()> {
    poll_fn(move |cx| {
        polls.set(polls.get() + 1);
        if open.get() {
            return Poll::Ready(());
        }
        *slot.borrow_mut() = Some(cx.waker().clone());
        Poll::Pending
    })
}

#[test]
fn a_task_waker_is_send_and_sync() {
    block_on(poll_fn(|cx| {
        assert_send_sync(cx.waker());
        Poll::Ready(())
    }));
}

#[test]
fn a_stale_waker_does_not_wake_the_task_that_reused_its_slot() {
    block_on(async {
        // Task A finishes, leaving its waker behind.
        let a_slot: Rc<RefCell<Option<Waker>>> = Rc::default();
        let s = Rc::clone(&a_slot);
        spawn_local(poll_fn(move |cx| {
            *s.borrow_mut() = Some(cx.waker().clone());
            Poll::Ready(())
        }))
        .await;
        let stale = a_slot.borrow_mut().take().unwrap();

        // Task B takes A's slot in the slab and waits.
        let (b_slot, b_polls, b_open) = (Rc::default(), Rc::new(Cell::new(0)), Rc::default());
        let b = spawn_local(gate(
            Rc::clone(&b_slot),
            Rc::clone(&b_polls),
            Rc::clone(&b_open),
        ));
        yield_now().await;
        assert_eq!(b_polls.get(), 1);

        stale.wake_by_ref();
        stale.wake();
        yield_now().await;
        yield_now().await;
        assert_eq!(b_polls.get(), 1, "A's waker must not poll B");

        b_open.set(true);
        b_slot.borrow_mut().take().unwrap().wake();
        b.await;
        assert_eq!(b_polls.get(), 2, "B's own waker polls B, once");
    });
}

#[test]
fn waking_a_finished_task_from_another_thread_is_harmless() {
    let rt = Runtime::new();
    let stale = rt.block_on(async {
        let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
        let s = Rc::clone(&slot);
        spawn_local(poll_fn(move |cx| {
            *s.borrow_mut() = Some(cx.waker().clone());
            Poll::Ready(())
        }))
        .await;
        slot.borrow_mut().take().unwrap()
    });
    std::thread::spawn(move || {
        for _ in 0..100 {
            stale.wake_by_ref();
            drop(stale.clone());
        }
        stale.wake();
    })
    .join()
    .unwrap();
    assert_eq!(rt.block_on(async { spawn_local(async { 3 }).await }), 3);
}

#[test]
fn wakers_outlive_their_runtime_on_other_threads() {
    let wakers = Arc::new(std::sync::Mutex::new(Vec::new()));
    let start = Arc::new(Barrier::new(5));
    let rt = Runtime::new();
    rt.block_on(async {
        for _ in 0..4 {
            let (slot, polls, open) = (Rc::default(), Rc::default(), Rc::default());
            drop(spawn_local(gate(Rc::clone(&slot), polls, open)));
            yield_now().await;
            wakers
                .lock()
                .unwrap()
                .push(slot.borrow_mut().take().unwrap());
        }
    });
    // Four threads hammer the wakers while the runtime (and its pending tasks) is dropped.
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let waker: Waker = wakers.lock().unwrap()[i].clone();
            let start = Arc::clone(&start);
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..10_000 {
                    waker.wake_by_ref();
                    drop(waker.clone());
                }
                waker
            })
        })
        .collect();
    start.wait();
    drop(rt);
    for t in threads {
        let waker = t
            .join()
            .expect("waking after the runtime dropped does not panic");
        waker.wake();
    }
    wakers.lock().unwrap().clear();
}

#[test]
fn a_wake_from_another_thread_polls_exactly_the_woken_task() {
    let polls: Vec<Rc<Cell<usize>>> = (0..3).map(|_| Rc::default()).collect();
    let (tx, rx) = std::sync::mpsc::channel::<Waker>();
    let waker_thread = std::thread::spawn(move || {
        let waker = rx.recv().unwrap();
        waker.wake();
    });
    let p = polls.clone();
    block_on(async move {
        let opens: Vec<Rc<Cell<bool>>> = (0..3).map(|_| Rc::default()).collect();
        let slots: Vec<Rc<RefCell<Option<Waker>>>> = (0..3).map(|_| Rc::default()).collect();
        let handles: Vec<_> = (0..3)
            .map(|i| {
                spawn_local(gate(
                    Rc::clone(&slots[i]),
                    Rc::clone(&p[i]),
                    Rc::clone(&opens[i]),
                ))
            })
            .collect();
        yield_now().await;
        opens[1].set(true);
        tx.send(slots[1].borrow_mut().take().unwrap()).unwrap();
        let mut handles = handles.into_iter();
        let (first, second, third) = (
            handles.next().unwrap(),
            handles.next().unwrap(),
            handles.next().unwrap(),
        );
        second.await;
        first.abort();
        third.abort();
    });
    waker_thread.join().unwrap();
    let counts: Vec<usize> = polls.iter().map(|p| p.get()).collect();
    assert_eq!(counts, [1, 2, 1], "only task 1 was polled again");
}

#[test]
fn flag_wakers_set_their_flag_from_any_thread_and_clone_freely() {
    static FLAGS: [AtomicBool; 4] = [const { AtomicBool::new(false) }; 4];
    let wakers: Vec<Waker> = FLAGS.iter().map(flag_waker).collect();
    assert!(wakers[0].will_wake(&wakers[0].clone()));
    assert!(!wakers[0].will_wake(&wakers[1]));
    let threads: Vec<_> = [1usize, 3]
        .into_iter()
        .map(|i| {
            let w = wakers[i].clone();
            std::thread::spawn(move || {
                let again = w.clone();
                drop(w);
                again.wake();
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let set: Vec<bool> = FLAGS.iter().map(|f| f.load(Ordering::Acquire)).collect();
    assert_eq!(set, [false, true, false, true]);
}

/// A wake that another thread completes while the task is being polled must queue the task
/// again (the executor clears the task's "scheduled" bit before polling, not after). Were it
/// lost, the task would never be polled again and the timeout would fire.
#[test]
fn a_wake_from_another_thread_during_the_poll_polls_the_task_again() {
    use std::time::Duration;
    use structured_async::time::timeout;

    let polls = Rc::new(Cell::new(0));
    let p = Rc::clone(&polls);
    let task = poll_fn(move |cx| {
        p.set(p.get() + 1);
        if p.get() > 1 {
            return Poll::Ready(());
        }
        let waker = cx.waker().clone();
        std::thread::spawn(move || waker.wake()).join().unwrap();
        Poll::Pending
    });
    let result = block_on(timeout(Duration::from_secs(10), async move {
        spawn_local(task).await
    }));
    assert!(result.is_ok(), "the wake during the poll was lost");
    assert_eq!(polls.get(), 2);
}
