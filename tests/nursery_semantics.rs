//! Behaviour of `nursery!`: borrowing, completion, cancellation, errors, panics, nesting, and
//! running under our executor and under tokio.

use std::cell::{Cell, RefCell};
use std::future::{Future, pending};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use structured_async::{block_on, nursery, yield_now};

/// Records its name in the log when dropped.
struct Logged<'a>(&'a RefCell<Vec<String>>, String);

impl Drop for Logged<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().push(format!("drop {}", self.1));
    }
}

#[test]
fn children_borrow_data_owned_by_the_parent() {
    let data: Vec<u64> = (1..=100).collect();
    let total = Cell::new(0);
    block_on(nursery!(|n| {
        for chunk in data.chunks(10) {
            let total = &total;
            n.spawn(async move {
                yield_now().await;
                total.set(total.get() + chunk.iter().sum::<u64>());
            });
        }
    }));
    assert_eq!(total.get(), 5050);
}

#[test]
fn children_mutate_disjoint_chunks() {
    let mut data = vec![0u32; 64];
    let mut flags = [false; 4];
    block_on(nursery!(|n| {
        for (i, chunk) in data.chunks_mut(16).enumerate() {
            n.spawn(async move {
                yield_now().await;
                chunk.iter_mut().for_each(|x| *x = i as u32);
            });
        }
        for flag in flags.iter_mut() {
            n.spawn(async move { *flag = true });
        }
    }));
    let expected: Vec<u32> = (0..4).flat_map(|i| [i; 16]).collect();
    assert_eq!(data, expected);
    assert_eq!(flags, [true; 4]);
}

#[test]
fn resolves_only_after_the_body_and_every_child() {
    let log = RefCell::new(Vec::new());
    block_on(nursery!(|n| {
        for i in 0..3 {
            let log = &log;
            n.spawn(async move {
                for _ in 0..=i {
                    yield_now().await;
                }
                log.borrow_mut().push(format!("child {i}"));
            });
        }
        log.borrow_mut().push("body".to_string());
    }));
    log.borrow_mut().push("nursery".to_string());
    assert_eq!(
        *log.borrow(),
        ["body", "child 0", "child 1", "child 2", "nursery"]
    );
}

#[test]
fn handles_give_outputs_to_the_body_and_to_other_children() {
    let out = block_on(nursery!(|n| {
        let a = n.spawn(async {
            yield_now().await;
            String::from("left")
        });
        let b = n.spawn(async move { a.await + "+right" });
        let c = n.spawn(async { 42u8 });
        (b.await, c.await)
    }));
    assert_eq!(out, ("left+right".to_string(), 42));
}

#[test]
fn children_spawn_siblings_through_the_scope() {
    let count = Cell::new(0);
    block_on(nursery!(|n| {
        let count = &count;
        n.spawn(async move {
            for _ in 0..10 {
                n.spawn(async move {
                    yield_now().await;
                    count.set(count.get() + 1);
                });
            }
        });
    }));
    assert_eq!(count.get(), 10);
}

#[test]
fn a_dropped_handle_lets_its_child_finish_and_drops_the_output() {
    let log = RefCell::new(Vec::new());
    block_on(nursery!(|n| {
        let log = &log;
        let h = n.spawn(async move {
            yield_now().await;
            log.borrow_mut().push("ran".to_string());
            Logged(log, "output".into())
        });
        drop(h);
    }));
    assert_eq!(*log.borrow(), ["ran", "drop output"]);
}

#[test]
fn dropping_the_nursery_drops_every_child_before_returning() {
    let log = RefCell::new(Vec::new());
    {
        let log = &log;
        let mut fut = Box::pin(nursery!(|n| {
            for i in 0..5 {
                n.spawn(async move {
                    let _guard = Logged(log, format!("child {i}"));
                    pending::<()>().await
                });
            }
            let _guard = Logged(log, "body".into());
            pending::<()>().await
        }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(log.borrow().is_empty());
        drop(fut);
        log.borrow_mut().push("after drop".into());
    }
    let log = log.into_inner();
    assert_eq!(log.len(), 7);
    assert_eq!(log.last().map(String::as_str), Some("after drop"));
    for i in 0..5 {
        assert!(log.contains(&format!("drop child {i}")), "{log:?}");
    }
    assert!(log.contains(&"drop body".to_string()));
}

#[test]
fn the_first_child_error_cancels_everything_else() {
    let log = RefCell::new(Vec::new());
    let log = &log;
    let out: Result<u32, String> = block_on(nursery!(|n| {
        for i in 0..3 {
            n.spawn(async move {
                let _guard = Logged(log, format!("sibling {i}"));
                pending::<Result<(), String>>().await
            });
        }
        n.spawn(async {
            yield_now().await;
            Err::<(), _>("first".to_string())
        });
        n.spawn(async {
            for _ in 0..5 {
                yield_now().await;
            }
            Err::<(), _>("second".to_string())
        });
        let _guard = Logged(log, "body".into());
        pending::<()>().await;
        Ok(7)
    }));
    assert_eq!(out, Err("first".to_string()));
    let mut log = log.take();
    log.sort();
    assert_eq!(
        log,
        [
            "drop body",
            "drop sibling 0",
            "drop sibling 1",
            "drop sibling 2"
        ]
    );
}

#[test]
fn a_body_error_cancels_the_children() {
    let log = RefCell::new(Vec::new());
    let log = &log;
    let out: Result<(), &str> = block_on(nursery!(|n| {
        n.spawn(async move {
            let _guard = Logged(log, "child".into());
            pending::<()>().await
        });
        yield_now().await;
        Err("body failed")
    }));
    assert_eq!(out, Err("body failed"));
    assert_eq!(*log.borrow(), ["drop child"]);
}

#[test]
fn ok_children_leave_the_result_to_the_body() {
    let out: Result<usize, std::io::Error> = block_on(nursery!(|n| {
        let h = n.spawn(async { Ok(3) });
        n.spawn(async {});
        Ok(h.await? + 1)
    }));
    assert_eq!(out.unwrap(), 4);
}

#[test]
fn a_child_panic_cancels_its_siblings_and_resumes_in_the_parent() {
    let log = RefCell::new(Vec::new());
    let log = &log;
    let caught = catch_unwind(AssertUnwindSafe(|| {
        block_on(nursery!(|n| {
            n.spawn(async move {
                let _guard = Logged(log, "sibling".into());
                pending::<()>().await
            });
            n.spawn(async {
                yield_now().await;
                panic!("child panicked");
            });
            let _guard = Logged(log, "body".into());
            pending::<()>().await
        }))
    }));
    let payload = caught.expect_err("the panic reaches the parent");
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"child panicked"));
    let mut log = log.take();
    log.sort();
    assert_eq!(log, ["drop body", "drop sibling"]);
}

#[test]
fn nurseries_nest() {
    let data = [1u32, 2, 3, 4];
    let total = block_on(nursery!(|outer| {
        let halves: Vec<_> = data
            .chunks(2)
            .map(|half| {
                outer.spawn(async move {
                    nursery!(|inner| {
                        let hs: Vec<_> = half
                            .iter()
                            .map(|x| inner.spawn(async move { x * 10 }))
                            .collect();
                        let mut sum = 0;
                        for h in hs {
                            sum += h.await;
                        }
                        sum
                    })
                    .await
                })
            })
            .collect();
        let mut sum = 0;
        for h in halves {
            sum += h.await;
        }
        sum
    }));
    assert_eq!(total, 100);
}

#[test]
fn runs_inside_tokio_current_thread() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let data = vec![5u64; 100];
    let total = rt.block_on(nursery!(|n| {
        let hs: Vec<_> = data
            .iter()
            .enumerate()
            .map(|(i, x)| {
                n.spawn(async move {
                    tokio::time::sleep(Duration::from_millis(i as u64 % 5)).await;
                    *x
                })
            })
            .collect();
        let mut total = 0;
        for h in hs {
            total += h.await;
        }
        total
    }));
    assert_eq!(total, 500);
}

#[test]
fn runs_under_futures_block_on() {
    let words = ["a", "bb"];
    let n = futures::executor::block_on(nursery!(|n| {
        let h = n.spawn(async { words[1].len() });
        h.await + words[0].len()
    }));
    assert_eq!(n, 3);
}

#[test]
fn a_timeout_cancels_the_whole_subtree() {
    let log = RefCell::new(Vec::new());
    let log = &log;
    let out = block_on(structured_async::timeout(
        Duration::from_millis(20),
        nursery!(|n| {
            n.spawn(async move {
                let _guard = Logged(log, "child".into());
                nursery!(|inner| {
                    inner.spawn(async move {
                        let _guard = Logged(log, "grandchild".into());
                        structured_async::sleep(Duration::from_secs(60)).await
                    });
                })
                .await
            });
            n.spawn(async move { Logged(log, "finished".into()) });
        }),
    ));
    assert!(out.is_err(), "the nursery timed out");
    let mut log = log.take();
    log.sort();
    assert_eq!(log, ["drop child", "drop finished", "drop grandchild"]);
}

#[test]
fn stale_wakers_outlive_the_nursery() {
    let stash: RefCell<Option<Waker>> = RefCell::new(None);
    {
        let stash = &stash;
        let mut fut = pin!(nursery!(|n| {
            n.spawn(std::future::poll_fn(move |cx| {
                *stash.borrow_mut() = Some(cx.waker().clone());
                Poll::<()>::Pending
            }));
        }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }
    // The nursery is gone; its child's waker still works (and does nothing harmful).
    let waker = stash.take().expect("the child stored its waker");
    let clone = waker.clone();
    waker.wake_by_ref();
    drop(waker);
    clone.wake();
}

/// Counts its wakes.
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A nursery polled by one waker, then by another (its future moved to another task), wakes
/// the one that polled it last when a child is woken from another thread.
#[test]
fn a_wake_from_another_thread_reaches_the_latest_poller() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;

    let stash: RefCell<Option<Waker>> = RefCell::new(None);
    let stash = &stash;
    let mut fut = pin!(nursery!(|n| {
        n.spawn(std::future::poll_fn(move |cx| {
            if stash.borrow().is_some() {
                return Poll::Ready(());
            }
            *stash.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        }));
    }));
    let first = Arc::new(CountingWaker(Default::default()));
    let second = Arc::new(CountingWaker(Default::default()));
    for parent in [&first, &first, &second] {
        let waker = Waker::from(Arc::clone(parent));
        assert!(
            fut.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
    }
    let child = stash.borrow().clone().expect("the child stored its waker");
    std::thread::spawn(move || child.wake()).join().unwrap();
    assert_eq!(first.0.load(Ordering::SeqCst), 0);
    assert_eq!(second.0.load(Ordering::SeqCst), 1);
    let waker = Waker::from(second);
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_ready()
    );
}

/// A nursery future stays small: its children live in its storage, not inline.
#[test]
fn sizes_stay_small() {
    let fut = nursery!(|n| {
        n.spawn(async {});
    });
    assert!(size_of_val(&fut) < 256, "{}", size_of_val(&fut));
    block_on(fut);
}

#[test]
fn a_handle_can_be_awaited_from_a_nested_nursery() {
    let out = block_on(nursery!(|outer| {
        let slow = outer.spawn(async {
            for _ in 0..3 {
                yield_now().await;
            }
            40
        });
        let relay = outer.spawn(async move {
            // Awaited by a child of another nursery: its waker is not one of `outer`'s.
            nursery!(|inner| inner.spawn(async move { slow.await + 2 }).await).await
        });
        relay.await
    }));
    assert_eq!(out, 42);
}

/// Names from a table that outlives the call; the nursery borrows the table for less.
fn longest_name(table: &[&'static str]) -> Result<&'static str, &'static str> {
    block_on(nursery!(|n| {
        let handles: Vec<_> = table
            .iter()
            .map(|name| n.spawn(async move { Ok(*name) }))
            .collect();
        let mut best = "";
        for h in handles {
            let name = h.await?;
            if name.len() > best.len() {
                best = name;
            }
        }
        if best.is_empty() {
            Err("empty table")
        } else {
            Ok(best)
        }
    }))
}

#[test]
fn outputs_may_hold_longer_lived_borrows_than_the_nursery() {
    let table = vec!["ab", "abcd", "abc"];
    assert_eq!(longest_name(&table), Ok("abcd"));
    assert_eq!(longest_name(&[]), Err("empty table"));
}

/// Records the address it is pinned at, then never finishes.
struct Pinned<'a>(&'a Cell<usize>);

impl Future for Pinned<'_> {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        self.0.set(&*self as *const Self as usize);
        Poll::Pending
    }
}

/// Panics when dropped.
struct Bomb;

impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("drop panicked");
    }
}

#[test]
fn children_left_undropped_by_a_panicking_drop_keep_their_memory() {
    let first = Cell::new(0);
    let caught = catch_unwind(AssertUnwindSafe(|| {
        let mut fut = Box::pin(nursery!(|n| {
            n.spawn(async {
                let _bomb = Bomb;
                pending::<()>().await
            });
            n.spawn(Pinned(&first));
            pending::<()>().await
        }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        // Dropping cancels the children; the first one's drop panics before the second is
        // dropped, so the second stays pinned where it is, undropped.
        drop(fut);
    }));
    assert!(caught.is_err());
    assert_ne!(first.get(), 0);
    // A later nursery on this thread must not be given that memory.
    for _ in 0..3 {
        let later = Cell::new(0);
        let mut fut = Box::pin(nursery!(|n| {
            n.spawn(Pinned(&later));
        }));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_ne!(later.get(), 0);
        assert_ne!(later.get(), first.get());
    }
}

#[test]
fn a_stale_waker_does_not_reach_the_next_nursery_on_the_thread() {
    let stash: RefCell<Option<Waker>> = RefCell::new(None);
    block_on(nursery!(|n| {
        let stash = &stash;
        n.spawn(std::future::poll_fn(move |cx| {
            if stash.borrow().is_none() {
                *stash.borrow_mut() = Some(cx.waker().clone());
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            Poll::Ready(())
        }));
    }));
    let polls = Cell::new(0);
    let parked = RefCell::new(None);
    block_on(nursery!(|n| {
        n.spawn(std::future::poll_fn(|cx| {
            polls.set(polls.get() + 1);
            if polls.get() == 1 {
                *parked.borrow_mut() = Some(cx.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(())
        }));
        yield_now().await;
        // The first nursery's leftover waker: it must not poll this nursery's child.
        stash.take().expect("stashed").wake();
        yield_now().await;
        yield_now().await;
        assert_eq!(polls.get(), 1);
        parked.take().expect("parked").wake();
    }));
    assert_eq!(polls.get(), 2);
}

#[test]
fn a_body_panic_drops_the_children_on_its_way_out() {
    let log = RefCell::new(Vec::new());
    let log = &log;
    let caught = catch_unwind(AssertUnwindSafe(|| {
        block_on(nursery!(|n| {
            n.spawn(async move {
                let _guard = Logged(log, "child".into());
                pending::<()>().await
            });
            yield_now().await;
            panic!("body panicked");
        }))
    }));
    assert!(caught.is_err());
    assert_eq!(*log.borrow(), ["drop child"]);
}

#[test]
fn a_body_that_never_ends_still_spawns_children() {
    let served = Cell::new(0);
    let served = &served;
    // A server-shaped body: its type is `!`.
    let out = block_on(structured_async::timeout(
        Duration::from_millis(30),
        nursery!(|n| loop {
            n.spawn(async move { served.set(served.get() + 1) });
            structured_async::sleep(Duration::from_millis(2)).await;
        }),
    ));
    assert!(out.is_err(), "it ran until the timeout");
    assert!(served.get() >= 2, "{} children ran", served.get());
}
