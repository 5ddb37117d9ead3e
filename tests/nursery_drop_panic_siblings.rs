//! Destructors that panic while a nursery drops its children in bulk: like dropping a `Vec`,
//! every other child, output and the body are still dropped, in the nursery's cancel order,
//! then one panic comes out (never two at once, which would abort the process). Which one:
//! - the nursery dropped part-way: the first destructor's, in the order things are dropped
//!   (children by slot, then the body);
//! - an `Err` ending the nursery: a destructor's panic beats the error (the body first, then
//!   children by slot);
//! - a panicking child (or a child's panicking destructor as it finishes its cleanup): that
//!   first panic; later destructor panics are swallowed after the panic hook reported them;
//! - the nursery dropped while its thread is already unwinding: the unwinding panic goes on.
//!
//! After each, the nursery's memory went back to the thread's pool (nothing leaked): the
//! thread's next nursery places its first child where the first nursery placed its own.

use std::cell::{Cell, RefCell};
use std::future::{Future, pending};
use std::panic::{AssertUnwindSafe, catch_unwind, panic_any};
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use structured_async::executor::AsyncCancel;
use structured_async::{nursery, yield_now};

type Log = Rc<RefCell<Vec<u32>>>;

/// Logs its id when dropped, then panics with `panics` if set.
struct Loud {
    id: u32,
    log: Log,
    panics: Option<&'static str>,
}

impl Drop for Loud {
    fn drop(&mut self) {
        self.log.borrow_mut().push(self.id);
        if let Some(message) = self.panics {
            panic_any(message);
        }
    }
}

fn loud(id: u32, log: &Log, panics: Option<&'static str>) -> Loud {
    Loud {
        id,
        log: Rc::clone(log),
        panics,
    }
}

/// A child that records where the nursery placed it; pending forever unless `finish`.
/// Spawned with `spawn_cancellable`, its cleanup finishes at once if `cleans`, never
/// otherwise.
struct Probe {
    addr: Rc<Cell<usize>>,
    _loud: Option<Loud>,
    finish: bool,
    cleans: bool,
}

impl AsyncCancel for Probe {
    fn poll_cancel(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        if self.cleans {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Future for Probe {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        self.addr.set(std::ptr::from_ref(&*self) as usize);
        if self.finish {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
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

/// The thread's next nursery runs normally and places its first child (a `Probe`, as was the
/// first child of the nursery that just ended) at `first`: that nursery's memory came back to
/// the pool. A leaked arena would never be handed out again.
fn next_nursery_reuses(first: usize) {
    assert_ne!(first, 0, "the first nursery polled its probe");
    let addr = Rc::new(Cell::new(0));
    let out = poll_until_done(nursery!(|n| {
        n.spawn(Probe {
            addr: Rc::clone(&addr),
            _loud: None,
            finish: true,
            cleans: false,
        });
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
    assert_eq!(
        addr.get(),
        first,
        "the next nursery reuses the memory of the one whose destructor panicked"
    );
}

/// What the fifth child does after yielding once.
#[derive(Clone, Copy)]
enum Fifth {
    Pends,
    Fails,
    Panics,
}

/// Messages of the destructors that may panic, by bit of a scenario's mask: the body's local,
/// child 1 (running), child 3's output (kept for its handle), child 4 (running).
const MESSAGES: [&str; 4] = ["body drop", "child 1 drop", "output 3 drop", "child 4 drop"];

/// A nursery whose body holds `Loud` 0 and child 3's handle, with children 1 (a `Probe`
/// holding `Loud` 1), 2 (`Loud` 2, never panics), 3 (finished, its output `Loud` 3 kept),
/// 4 (`Loud` 4) and 5 (`fifth`); the `Loud`s whose bit is set in `mask` panic when dropped.
fn scenario(
    log: &Log,
    mask: u32,
    fifth: Fifth,
    addr: &Rc<Cell<usize>>,
) -> impl Future<Output = Result<(), &'static str>> + use<> {
    let panics = |bit: usize| (mask & 1 << bit != 0).then_some(MESSAGES[bit]);
    let body = loud(0, log, panics(0));
    let (c1, c2, c3, c4) = (
        loud(1, log, panics(1)),
        loud(2, log, None),
        loud(3, log, panics(2)),
        loud(4, log, panics(3)),
    );
    let addr = Rc::clone(addr);
    nursery!(move |n| {
        let _body = body;
        n.spawn(Probe {
            addr,
            _loud: Some(c1),
            finish: false,
            cleans: false,
        });
        n.spawn(async move {
            let _c = c2;
            pending::<()>().await
        });
        let h3 = n.spawn(async move { Ok(c3) });
        n.spawn(async move {
            let _c = c4;
            pending::<()>().await
        });
        n.spawn(async move {
            yield_now().await;
            match fifth {
                Fifth::Pends => pending::<Result<(), &str>>().await,
                Fifth::Fails => Err("stop"),
                Fifth::Panics => panic_any("child 5"),
            }
        });
        yield_now().await;
        let _h3 = h3;
        pending::<()>().await;
        Ok(())
    })
}

/// The message of the first set bit of `mask`, taking bits in `order`.
fn first_panic(mask: u32, order: [usize; 4]) -> Option<&'static str> {
    order
        .into_iter()
        .find(|&bit| mask & 1 << bit != 0)
        .map(|bit| MESSAGES[bit])
}

fn message(payload: &(dyn std::any::Any + Send)) -> &'static str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .expect("a &str payload")
}

#[test]
fn dropping_a_nursery_drops_everything_then_resumes_the_first_destructor_panic() {
    for mask in 0..16 {
        let (log, addr) = (Log::default(), Rc::new(Cell::new(0)));
        let mut fut = Box::pin(scenario(&log, mask, Fifth::Pends, &addr));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..3 {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        assert!(log.borrow().is_empty());
        let dropped = catch_unwind(AssertUnwindSafe(|| drop(fut)));
        // Children by slot (a finished one's output too), then the body.
        assert_eq!(*log.borrow(), [1, 2, 3, 4, 0], "mask {mask:04b}");
        let want = first_panic(mask, [1, 2, 3, 0]);
        assert_eq!(
            dropped.err().as_deref().map(message),
            want,
            "mask {mask:04b}"
        );
        next_nursery_reuses(addr.get());
    }
}

/// The masks for a nursery that ends early while running, which drops its body before the
/// children: the body's handle then drops output 3 inside the body's own drop, so both
/// panicking would be two panics in one value's drop glue, an abort in any Rust code.
const BODY_DROPPED_FIRST: [u32; 12] = [0, 1, 2, 3, 4, 6, 8, 9, 10, 11, 12, 14];

#[test]
fn an_err_drops_every_sibling_and_a_destructor_panic_beats_it() {
    for mask in BODY_DROPPED_FIRST {
        let (log, addr) = (Log::default(), Rc::new(Cell::new(0)));
        let ended = catch_unwind(AssertUnwindSafe(|| {
            poll_until_done(scenario(&log, mask, Fifth::Fails, &addr))
        }));
        // The body first (its handle drops output 3, then its local), then children by slot.
        assert_eq!(*log.borrow(), [3, 0, 1, 2, 4], "mask {mask:04b}");
        match first_panic(mask, [2, 0, 1, 3]) {
            None => assert_eq!(ended.ok(), Some(Err("stop"))),
            Some(want) => assert_eq!(
                ended.err().as_deref().map(message),
                Some(want),
                "mask {mask:04b}"
            ),
        }
        next_nursery_reuses(addr.get());
    }
}

#[test]
fn a_panicking_child_drops_every_sibling_and_its_panic_wins() {
    for mask in BODY_DROPPED_FIRST {
        let (log, addr) = (Log::default(), Rc::new(Cell::new(0)));
        let ended = catch_unwind(AssertUnwindSafe(|| {
            poll_until_done(scenario(&log, mask, Fifth::Panics, &addr))
        }));
        assert_eq!(*log.borrow(), [3, 0, 1, 2, 4], "mask {mask:04b}");
        assert_eq!(
            ended.err().as_deref().map(message),
            Some("child 5"),
            "mask {mask:04b}"
        );
        next_nursery_reuses(addr.get());
    }
}

#[test]
fn a_nursery_dropped_by_an_unwinding_panic_swallows_destructor_panics() {
    let (log, addr) = (Log::default(), Rc::new(Cell::new(0)));
    let (body, c1, c2, c3) = (
        loud(0, &log, None),
        loud(1, &log, Some("child 1 drop")),
        loud(2, &log, None),
        loud(3, &log, Some("child 3 drop")),
    );
    let probe = Rc::clone(&addr);
    let ended = catch_unwind(AssertUnwindSafe(|| {
        poll_until_done(nursery!(move |n| {
            let _body = body;
            n.spawn(Probe {
                addr: probe,
                _loud: Some(c1),
                finish: false,
                cleans: false,
            });
            for c in [c2, c3] {
                n.spawn(async move {
                    let _c = c;
                    pending::<()>().await
                });
            }
            yield_now().await;
            panic_any("body")
        }))
    }));
    assert_eq!(ended.err().as_deref().map(message), Some("body"));
    // The body's local goes as its poll unwinds; the children as the nursery is dropped.
    assert_eq!(*log.borrow(), [0, 1, 2, 3]);
    next_nursery_reuses(addr.get());
}

/// Children 1 (`Loud` 1: a plain child, or cancellable if `cleans[0]` is set, finishing its
/// cleanup if it is true), 2 (cancellable, `Loud` 2, finishing its cleanup if `cleans[1]`),
/// 3 (`Loud` 3) and 4 (fails after a yield); `panics[i]` is the message of `Loud` i + 1's
/// destructor, if any.
fn with_cleanup(
    log: &Log,
    addr: &Rc<Cell<usize>>,
    panics: [Option<&'static str>; 3],
    cleans: (Option<bool>, bool),
    grace: Duration,
) -> Result<(), &'static str> {
    let (c1, c2, c3) = (
        loud(1, log, panics[0]),
        loud(2, log, panics[1]),
        loud(3, log, panics[2]),
    );
    let addr = Rc::clone(addr);
    structured_async::block_on(nursery!(move |n| {
        n.set_grace(grace);
        // Only child 1 tells where it was placed.
        let probe = |loud, addr, cleans| Probe {
            addr,
            _loud: Some(loud),
            finish: false,
            cleans,
        };
        match cleans.0 {
            Some(cleans) => drop(n.spawn_cancellable(probe(c1, addr, cleans))),
            None => drop(n.spawn(probe(c1, addr, false))),
        }
        n.spawn_cancellable(probe(c2, Rc::default(), cleans.1));
        n.spawn(async move {
            let _c = c3;
            pending::<()>().await
        });
        n.spawn(async {
            yield_now().await;
            Err::<(), &str>("stop")
        });
        pending().await
    }))
}

/// Runs [`with_cleanup`], then checks the panic that came out, the drop log, and that the
/// thread's next nursery reuses the pooled memory.
fn cleanup_ends_with(
    panics: [Option<&'static str>; 3],
    cleans: (Option<bool>, bool),
    grace: Duration,
    panic: &str,
    drops: [u32; 3],
) {
    let (log, addr) = (Log::default(), Rc::new(Cell::new(0)));
    let ended = catch_unwind(AssertUnwindSafe(|| {
        with_cleanup(&log, &addr, panics, cleans, grace)
    }));
    assert_eq!(ended.err().as_deref().map(message), Some(panic));
    assert_eq!(*log.borrow(), drops);
    next_nursery_reuses(addr.get());
}

#[test]
fn a_destructor_panic_while_cancelling_drops_the_cleaning_children_too() {
    // Child 1 panics as the error drops it: child 2, queued for its cleanup, is dropped at
    // once, in slot order, as if a child had panicked.
    cleanup_ends_with(
        [Some("child 1 drop"), None, Some("child 3 drop")],
        (None, false),
        Duration::from_secs(60),
        "child 1 drop",
        [1, 2, 3],
    );
}

#[test]
fn a_destructor_panic_after_cleanup_is_the_childs_panic_and_drops_the_rest() {
    // Child 3 is dropped by the error; child 1 finishes its cleanup and panics as it is
    // dropped; child 2, still cleaning, is dropped then, and its own panic is swallowed.
    cleanup_ends_with(
        [Some("cleaned 1 drop"), Some("cleaning 2 drop"), None],
        (Some(true), false),
        Duration::from_secs(60),
        "cleaned 1 drop",
        [3, 1, 2],
    );
}

#[test]
fn a_destructor_panic_when_the_grace_period_ends_beats_the_error() {
    // Children 1 and 2 never finish their cleanup: both are dropped when the (zero) grace
    // period ends, in slot order, and the first one's panic comes out instead of the error.
    cleanup_ends_with(
        [Some("cleaning 1 drop"), Some("cleaning 2 drop"), None],
        (Some(false), false),
        Duration::ZERO,
        "cleaning 1 drop",
        [3, 1, 2],
    );
}

/// A waker whose last reference panics when dropped.
struct PanicsWhenDropped;

impl std::task::Wake for PanicsWhenDropped {
    fn wake(self: std::sync::Arc<Self>) {}
}

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        panic_any("waker drop");
    }
}

#[test]
fn a_waker_that_panics_as_its_handle_is_forgotten_skips_nothing() {
    let (log, addr) = (Log::default(), Rc::new(Cell::new(0)));
    let (body, c1, c2, c3) = (
        loud(0, &log, None),
        loud(1, &log, None),
        loud(2, &log, None),
        loud(3, &log, None),
    );
    let probe = Rc::clone(&addr);
    let mut fut = Box::pin(nursery!(move |n| {
        let _body = body;
        n.spawn(Probe {
            addr: probe,
            _loud: Some(c1),
            finish: false,
            cleans: false,
        });
        let mut h2 = n.spawn(async move {
            let _c = c2;
            pending::<()>().await
        });
        n.spawn(async move {
            let _c = c3;
            pending::<()>().await
        });
        // Child 2's handle is awaited with a waker from outside the nursery, which keeps a
        // clone of it: the only one left once this one is dropped.
        let foreign = Waker::from(std::sync::Arc::new(PanicsWhenDropped));
        assert!(
            Pin::new(&mut h2)
                .poll(&mut Context::from_waker(&foreign))
                .is_pending()
        );
        drop(foreign);
        pending::<()>().await
    }));
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..3 {
        assert!(fut.as_mut().poll(&mut cx).is_pending());
    }
    // Dropping child 2 forgets who awaits its handle: the waker's drop panics there, and
    // child 3 and the body are dropped all the same.
    let dropped = catch_unwind(AssertUnwindSafe(|| drop(fut)));
    assert_eq!(dropped.err().as_deref().map(message), Some("waker drop"));
    assert_eq!(*log.borrow(), [1, 2, 3, 0]);
    next_nursery_reuses(addr.get());
}

/// Logs its id into a log shared between threads when dropped, then panics if `.2`.
struct SendLoud(u32, std::sync::Arc<std::sync::Mutex<Vec<u32>>>, bool);

impl Drop for SendLoud {
    fn drop(&mut self) {
        self.1.lock().unwrap().push(self.0);
        if self.2 {
            panic_any(if self.0 == 1 {
                "child 1 drop"
            } else {
                "child 3 drop"
            });
        }
    }
}

#[test]
fn a_send_nursery_dropped_on_another_thread_drops_every_child_there() {
    let log = std::sync::Arc::<std::sync::Mutex<Vec<u32>>>::default();
    let children = [
        SendLoud(1, std::sync::Arc::clone(&log), true),
        SendLoud(2, std::sync::Arc::clone(&log), false),
        SendLoud(3, std::sync::Arc::clone(&log), true),
    ];
    let mut fut = Box::pin(nursery!(send move |n| {
        for child in children {
            n.spawn(async move {
                let _child = child;
                pending::<()>().await
            });
        }
        pending::<()>().await
    }));
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    // Polled here, dropped on another thread: the first destructor's panic comes out there.
    let dropped = std::thread::spawn(move || {
        catch_unwind(AssertUnwindSafe(|| drop(fut)))
            .err()
            .map(|payload| message(&*payload))
    })
    .join()
    .expect("the drop's panic was caught on its thread");
    assert_eq!(dropped, Some("child 1 drop"));
    assert_eq!(*log.lock().unwrap(), [1, 2, 3]);
}
