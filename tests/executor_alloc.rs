//! Waking and re-polling a task allocates nothing: a counting global allocator watches N
//! wake + re-poll cycles after a warm-up, for wakes from the executor's own thread (by
//! reference, by value, through a cloned waker) and from another thread. Spawning a task
//! allocates exactly once: header, join slot and future share one allocation.
//!
//! Only the threads taking part (the test's and the waking thread) are counted: the test
//! harness's own thread allocates now and then, on its own schedule.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Poll, Waker};
use structured_async::{block_on, spawn_local, yield_now};

struct Counting;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Whether this thread's allocations count (const-initialised: reading it never allocates).
    static TAKES_PART: Cell<bool> = const { Cell::new(false) };
}

fn counted() -> bool {
    COUNTING.load(Ordering::Relaxed) && TAKES_PART.try_with(Cell::get).unwrap_or(false)
}

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if counted() {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: as in `dealloc`; the caller upholds `realloc`'s contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The tests share the global counter: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Makes this thread's allocations count until dropped; a test's thread goes on allocating
/// (reporting its result) after the test returns, while the next test counts.
struct TakePart;

impl TakePart {
    fn new() -> Self {
        TAKES_PART.set(true);
        TakePart
    }
}

impl Drop for TakePart {
    fn drop(&mut self) {
        TAKES_PART.set(false);
    }
}

const WARM_UP: usize = 100;
const CYCLES: usize = 10_000;

/// Counts the allocations made while `during` runs.
fn count(during: impl FnOnce()) -> usize {
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    during();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst)
}

#[test]
fn wake_and_repoll_allocate_nothing() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _part = TakePart::new();
    // The counter itself must see allocations, or a zero below would prove nothing.
    assert_eq!(count(|| drop(Box::new(1u8))), 1);

    // Local wakes: a task parks its (cloned) waker in a slot; the root wakes it, by value
    // or by reference, and yields so it runs again; yield_now wakes by reference too.
    let local = block_on(async {
        let slot: Rc<RefCell<Option<Waker>>> = Rc::default();
        let polls = Rc::new(RefCell::new(0usize));
        let (s, p) = (Rc::clone(&slot), Rc::clone(&polls));
        let worker = spawn_local(async move {
            loop {
                let mut parked = false;
                poll_fn(|cx| {
                    if parked {
                        return Poll::Ready(());
                    }
                    parked = true;
                    *p.borrow_mut() += 1;
                    *s.borrow_mut() = Some(cx.waker().clone());
                    Poll::Pending
                })
                .await;
                yield_now().await;
            }
        });
        let cycle = |i: usize| {
            let waker = slot.borrow_mut().take();
            match waker {
                Some(w) if i % 2 == 0 => w.wake(),
                Some(w) => w.wake_by_ref(),
                None => {}
            }
        };
        for i in 0..WARM_UP {
            cycle(i);
            yield_now().await;
            yield_now().await;
        }
        let before = *polls.borrow();
        ALLOCATIONS.store(0, Ordering::SeqCst);
        COUNTING.store(true, Ordering::SeqCst);
        for i in 0..CYCLES {
            cycle(i);
            yield_now().await;
            yield_now().await;
        }
        COUNTING.store(false, Ordering::SeqCst);
        let allocations = ALLOCATIONS.load(Ordering::SeqCst);
        let repolls = *polls.borrow() - before;
        worker.abort();
        (allocations, repolls)
    });
    assert!(
        local.1 >= CYCLES,
        "the task was woken and re-polled each cycle: {local:?}"
    );
    assert_eq!(
        local.0, 0,
        "allocations during {} local wake + re-poll cycles",
        CYCLES
    );

    // Remote wakes: another thread wakes the root, which re-polls; the two take turns
    // through an atomic so that neither allocates to synchronise.
    let turn = Arc::new(AtomicUsize::new(0));
    let (waker_tx, waker_rx) = std::sync::mpsc::channel::<Waker>();
    let t = Arc::clone(&turn);
    let waker_thread = std::thread::spawn(move || {
        let _part = TakePart::new();
        let waker = waker_rx.recv().unwrap();
        for i in 0..WARM_UP + CYCLES {
            // Wait until the executor has re-polled after the previous wake.
            while t.load(Ordering::Acquire) != 2 * i + 1 {
                std::hint::spin_loop();
            }
            if i == WARM_UP {
                ALLOCATIONS.store(0, Ordering::SeqCst);
                COUNTING.store(true, Ordering::SeqCst);
            }
            t.store(2 * i + 2, Ordering::Release);
            waker.wake_by_ref();
        }
    });
    let mut sent = Some(waker_tx);
    let mut polls = 0;
    block_on(poll_fn(|cx| {
        if let Some(tx) = sent.take() {
            tx.send(cx.waker().clone()).unwrap();
        }
        let now = turn.load(Ordering::Acquire);
        if now == 2 * (WARM_UP + CYCLES) {
            return Poll::Ready(());
        }
        if now % 2 == 0 {
            polls += 1;
            turn.store(now + 1, Ordering::Release);
        }
        Poll::Pending
    }));
    COUNTING.store(false, Ordering::SeqCst);
    waker_thread.join().unwrap();
    assert!(
        polls > WARM_UP + CYCLES - 1,
        "re-polled after every remote wake: {polls}"
    );
    assert_eq!(
        ALLOCATIONS.load(Ordering::SeqCst),
        0,
        "allocations during {CYCLES} remote wake + re-poll cycles"
    );
}

#[test]
fn spawn_local_allocates_once_per_task() {
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let _part = TakePart::new();
    const TASKS: u64 = 1_000;
    let rt = structured_async::Runtime::new();
    // Futures of different sizes and outputs, each awaited; a state of 256 bytes would not
    // fit a small inline header, so a second allocation for it would show.
    let round = || {
        rt.block_on(async {
            let handles: Vec<_> = (0..TASKS)
                .map(|i| {
                    spawn_local(async move {
                        let big = [i as u8; 256];
                        yield_now().await;
                        u64::from(big[7]) + i
                    })
                })
                .collect();
            let mut sum = 0;
            for h in handles {
                sum += h.await;
            }
            let detached: Vec<_> = (0..TASKS).map(|i| spawn_local(async move { i })).collect();
            drop(detached);
            yield_now().await;
            sum
        })
    };
    // Warm-up: the slab, its free list and the ready queue grow to their peak once.
    let expected = round();
    let allocations = count(|| assert_eq!(round(), expected));
    assert_eq!(
        allocations as u64,
        2 * TASKS + 2,
        "one allocation per spawned task, plus the two vectors of handles"
    );
}
