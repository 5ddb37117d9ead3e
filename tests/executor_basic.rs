//! The local executor's everyday behaviour: `block_on`, `spawn_local`, join handles, panics,
//! cancellation, wakes from other threads, and the default runtime as an `Executor`.

use std::cell::{Cell, RefCell};
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::sync::mpsc;
use std::task::{Poll, Waker};
use structured_async::executor::{Cancel, Executor, Scheduler, Spawner, try_spawn_local};
use structured_async::{Runtime, block_on, spawn_local, yield_now};

#[test]
fn block_on_returns_the_output_and_may_borrow() {
    let mut log = Vec::new();
    let n = block_on(async {
        log.push("ran");
        21 * 2
    });
    assert_eq!(n, 42);
    assert_eq!(log, ["ran"]);
}

#[test]
fn spawned_tasks_run_and_join_in_any_order() {
    let order = Rc::new(RefCell::new(Vec::new()));
    let o = Rc::clone(&order);
    let total = block_on(async move {
        let handles: Vec<_> = (0..5u32)
            .map(|i| {
                let o = Rc::clone(&o);
                spawn_local(async move {
                    for _ in 0..i {
                        yield_now().await;
                    }
                    o.borrow_mut().push(i);
                    i * 10
                })
            })
            .collect();
        let mut total = 0;
        for h in handles.into_iter().rev() {
            total += h.await;
        }
        total
    });
    assert_eq!(total, 100);
    assert_eq!(
        *order.borrow(),
        [0, 1, 2, 3, 4],
        "fewer yields finish first"
    );
}

#[test]
fn root_panic_propagates_out_of_block_on() {
    let result = catch_unwind(|| block_on(async { panic!("root boom") }));
    let payload = result.expect_err("the panic propagates");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"root boom"));
}

#[test]
fn panicking_task_surfaces_on_its_handle_and_the_runtime_survives() {
    let out = block_on(async {
        let bad = spawn_local(async { panic!("child boom") });
        let good = spawn_local(async {
            yield_now().await;
            5
        });
        let caught = catch(bad).await;
        (caught, good.await)
    });
    let (caught, good) = out;
    assert_eq!(good, 5, "the sibling still ran");
    let payload = caught.expect_err("awaiting the handle resumes the panic");
    assert_eq!(message(&*payload), "child boom");
}

/// Runs `future`, turning a panic during any of its polls into `Err`.
async fn catch<F: Future>(future: F) -> std::thread::Result<F::Output> {
    let mut future = pin!(future);
    poll_fn(
        |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Err(payload) => Poll::Ready(Err(payload)),
        },
    )
    .await
}

/// The text of a panic payload.
fn message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

#[test]
fn dropping_a_handle_detaches_the_task() {
    let done = Rc::new(Cell::new(false));
    let d = Rc::clone(&done);
    block_on(async move {
        drop(spawn_local(async move {
            yield_now().await;
            d.set(true);
        }));
        yield_now().await;
        yield_now().await;
    });
    assert!(done.get(), "a detached task keeps running");
}

#[test]
fn cancel_drops_the_task_future_at_once() {
    let alive = Rc::new(());
    let a = Rc::clone(&alive);
    block_on(async move {
        let mut h = spawn_local(async move {
            let _a = a;
            std::future::pending::<()>().await;
        });
        yield_now().await;
        assert_eq!(Rc::strong_count(&alive), 2);
        Pin::new(&mut h).cancel();
        assert_eq!(Rc::strong_count(&alive), 1);
        assert!(h.is_finished());
    });
}

#[test]
fn a_task_can_abort_itself_while_running() {
    let slot: Rc<RefCell<Option<structured_async::JoinHandle<()>>>> = Rc::default();
    let polls = Rc::new(Cell::new(0));
    let (s, p) = (Rc::clone(&slot), Rc::clone(&polls));
    block_on(async move {
        let h = spawn_local(async move {
            loop {
                p.set(p.get() + 1);
                if let Some(me) = s.borrow().as_ref() {
                    me.abort();
                }
                yield_now().await;
            }
        });
        *slot.borrow_mut() = Some(h);
        for _ in 0..5 {
            yield_now().await;
        }
        assert!(slot.borrow().as_ref().unwrap().is_finished());
    });
    assert_eq!(
        polls.get(),
        1,
        "dropped right after the poll that aborted it"
    );
}

#[test]
fn awaiting_a_cancelled_task_panics_with_a_clear_message() {
    let result = catch_unwind(|| {
        block_on(async {
            let h = spawn_local(std::future::pending::<()>());
            h.abort();
            h.await
        })
    });
    let payload = result.expect_err("cancelled");
    let msg = message(&*payload);
    assert!(msg.contains("cancelled"), "{msg}");
}

#[test]
fn wake_from_another_thread_completes_block_on() {
    let (tx, rx) = mpsc::channel::<Waker>();
    let woken = std::thread::spawn(move || {
        let waker = rx.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        waker.wake();
    });
    let mut sent = Some(tx);
    let mut polls = 0;
    block_on(poll_fn(|cx| {
        polls += 1;
        match sent.take() {
            Some(tx) => {
                tx.send(cx.waker().clone()).unwrap();
                Poll::Pending
            }
            None => Poll::Ready(()),
        }
    }));
    woken.join().unwrap();
    assert_eq!(polls, 2, "parked until the other thread woke it");
}

#[test]
fn spawn_local_outside_a_runtime_is_an_error() {
    let err = try_spawn_local(async {}).unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
}

#[test]
fn nested_block_on_of_another_runtime_works() {
    let outer = Runtime::new();
    let v = outer.block_on(async {
        let inner = spawn_local(async { 1 });
        let nested = block_on(async { spawn_local(async { 2 }).await });
        inner.await + nested
    });
    assert_eq!(v, 3);
}

#[test]
fn block_on_of_the_same_runtime_inside_itself_panics_clearly() {
    let rt = Rc::new(Runtime::new());
    let r = Rc::clone(&rt);
    let result = catch_unwind(AssertUnwindSafe(|| {
        rt.block_on(async move { r.block_on(async {}) })
    }));
    let payload = result.expect_err("refused");
    let msg = message(&*payload);
    assert!(msg.contains("inside the same runtime"), "{msg}");
    assert_eq!(rt.block_on(async { 4 }), 4, "still usable afterwards");
}

#[test]
fn tasks_outlive_one_block_on_and_die_with_the_runtime() {
    let alive = Rc::new(());
    let a = Rc::clone(&alive);
    let rt = Runtime::new();
    let counter = Rc::new(Cell::new(0));
    let c = Rc::clone(&counter);
    drop(rt.spawn_local(async move {
        let _a = a;
        loop {
            c.set(c.get() + 1);
            yield_now().await;
        }
    }));
    rt.block_on(yield_now());
    let after_first = counter.get();
    assert!(after_first >= 1);
    rt.block_on(yield_now());
    assert!(
        counter.get() > after_first,
        "the task kept running in the next block_on"
    );
    drop(rt);
    assert_eq!(
        Rc::strong_count(&alive),
        1,
        "dropping the runtime dropped the task"
    );
}

#[test]
fn the_runtime_is_an_executor() {
    let mut rt = Runtime::new();
    let ran = Rc::new(Cell::new(0));
    for _ in 0..3 {
        let r = Rc::clone(&ran);
        assert!(
            rt.spawn(Box::pin(async move { r.set(r.get() + 1) }))
                .is_ok()
        );
    }
    let mut steps = 0;
    while rt.run_next() {
        steps += 1;
    }
    assert_eq!((steps, ran.get()), (3, 3));
    assert!(rt.next_task().is_none());
}

#[test]
fn handle_spawns_send_tasks_from_other_threads() {
    let rt = Runtime::new();
    let handle = rt.handle();
    let (tx, rx) = mpsc::channel();
    let t = std::thread::spawn(move || {
        handle
            .spawn(async move {
                yield_now().await;
                tx.send("from afar").unwrap();
            })
            .unwrap();
    });
    t.join().unwrap();
    let got = rt.block_on(async {
        loop {
            if let Ok(v) = rx.try_recv() {
                break v;
            }
            yield_now().await;
        }
    });
    assert_eq!(got, "from afar");
}

#[test]
fn panicking_raw_and_remote_tasks_do_not_kill_the_runtime() {
    let mut rt = Runtime::new();
    let handle = rt.handle();
    std::thread::spawn(move || handle.spawn(async { panic!("remote boom") }).unwrap())
        .join()
        .unwrap();
    assert!(rt.spawn(Box::pin(async { panic!("raw boom") })).is_ok());
    let v = rt.block_on(async {
        yield_now().await;
        yield_now().await;
        8
    });
    assert_eq!(v, 8);
}

#[test]
fn async_cancel_of_a_handle_drops_the_task() {
    use structured_async::executor::AsyncCancel;
    let alive = Rc::new(());
    let a = Rc::clone(&alive);
    block_on(async move {
        let mut h = spawn_local(async move {
            let _a = a;
            std::future::pending::<()>().await;
        });
        yield_now().await;
        poll_fn(|cx| Pin::new(&mut h).poll_cancel(cx)).await;
        assert_eq!(
            Rc::strong_count(&alive),
            1,
            "cleanup done when poll_cancel is Ready"
        );
    });
}

#[test]
fn a_runtime_handle_is_send_and_sync() {
    fn send_sync<T: Send + Sync + Clone>(_: &T) {}
    send_sync(&Runtime::new().handle());
}
