//! A user-written executor on the proposal's traits: fixed capacity, no heap at all.
//!
//! The tasks are a closed set of hand-written coroutines, stored by value in an enum, in an
//! array of slots. Each slot has a ready flag in static memory and a `flag_waker` pointing at
//! it, so waking costs one atomic store. A counting global allocator checks that running
//! everything allocates nothing (`tests/executor_custom.rs` runs it under `cargo test`).
//!
//! Run it with `cargo run --example custom_executor`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use structured_async::executor::{Executor, Scheduler, Spawner, flag_waker};
use structured_async::{Coroutine, Step};

/// Counts the heap allocations of the executor's thread while `COUNTING` is on (other
/// threads, such as a test harness's, allocate on their own schedule).
struct Counting;
static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
thread_local! {
    // Const-initialised, so reading it from the allocator never allocates.
    static EXECUTOR_THREAD: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: forwards every call unchanged to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) && EXECUTOR_THREAD.try_with(Cell::get).unwrap_or(false)
        {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which we pass on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

// ---------------------------------------------------------------------------------------
// The coroutines: three hand-written state machines.

/// Yields `n, n-1, …, 1`, then completes.
struct Countdown(u32);

impl Coroutine for Countdown {
    type Yield = u32;
    type Output = &'static str;
    fn resume(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Step<u32, &'static str> {
        match self.0 {
            0 => Step::Complete("liftoff"),
            n => {
                self.0 = n - 1;
                Step::Yielded(n)
            }
        }
    }
}

/// A one-value mailbox between two coroutines, in static memory.
struct Mailbox {
    value: Option<u32>,
    reader: Option<Waker>,
}
static MAILBOX: Mutex<Mailbox> = Mutex::new(Mailbox {
    value: None,
    reader: None,
});

/// Waits (pending, not spinning) until the mailbox holds a value.
struct Reader;

impl Coroutine for Reader {
    type Yield = Infallible;
    type Output = u32;
    fn resume(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Step<Infallible, u32> {
        let mut mailbox = MAILBOX.lock().unwrap();
        match mailbox.value.take() {
            Some(v) => Step::Complete(v),
            None => {
                // A clone of a flag waker copies a pointer: no allocation.
                mailbox.reader = Some(cx.waker().clone());
                Step::Pending
            }
        }
    }
}

/// Computes Fibonacci numbers below a limit, one per step, then posts the last to the mailbox.
enum Fib {
    Running { a: u32, b: u32, limit: u32 },
    Done,
}

impl Coroutine for Fib {
    type Yield = u32;
    type Output = u32;
    fn resume(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Step<u32, u32> {
        match *self {
            Fib::Running { a, b, limit } if b < limit => {
                *self = Fib::Running {
                    a: b,
                    b: a + b,
                    limit,
                };
                Step::Yielded(b)
            }
            Fib::Running { a, .. } => {
                *self = Fib::Done;
                let mut mailbox = MAILBOX.lock().unwrap();
                mailbox.value = Some(a);
                if let Some(reader) = mailbox.reader.take() {
                    reader.wake();
                }
                Step::Complete(a)
            }
            Fib::Done => panic!("resumed after completion"),
        }
    }
}

/// The closed set of coroutines this executor runs, stored by value.
enum Job {
    Countdown(Countdown),
    Reader(Reader),
    Fib(Fib),
}

/// What a step of a job reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    /// A countdown's next number.
    Countdown(u32),
    /// A countdown's end.
    Liftoff(&'static str),
    /// What the reader found in the mailbox.
    Received(u32),
    /// The next Fibonacci number.
    Fib(u32),
    /// What the Fibonacci job posted to the mailbox.
    Posted(u32),
}

/// One step the executor ran: a job yielded or finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The job in this slot yielded.
    Yielded(usize, Report),
    /// The job in this slot finished.
    Finished(usize, Report),
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Report::Countdown(n) => write!(f, "countdown {n}"),
            Report::Liftoff(s) => write!(f, "{s}"),
            Report::Received(v) => write!(f, "received {v} from the mailbox"),
            Report::Fib(n) => write!(f, "fibonacci {n}"),
            Report::Posted(v) => write!(f, "posted {v} to the mailbox"),
        }
    }
}

impl Coroutine for Job {
    type Yield = Report;
    type Output = Report;
    fn resume(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Step<Report, Report> {
        // Every variant is `Unpin`, so the enum can be matched through `get_mut`.
        match self.get_mut() {
            Job::Countdown(c) => match Pin::new(c).resume(cx) {
                Step::Pending => Step::Pending,
                Step::Yielded(n) => Step::Yielded(Report::Countdown(n)),
                Step::Complete(s) => Step::Complete(Report::Liftoff(s)),
            },
            Job::Reader(r) => match Pin::new(r).resume(cx) {
                Step::Pending => Step::Pending,
                Step::Yielded(never) => match never {},
                Step::Complete(v) => Step::Complete(Report::Received(v)),
            },
            Job::Fib(f) => match Pin::new(f).resume(cx) {
                Step::Pending => Step::Pending,
                Step::Yielded(n) => Step::Yielded(Report::Fib(n)),
                Step::Complete(v) => Step::Complete(Report::Posted(v)),
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// The executor.

/// Up to `N` jobs in an array; slot `i` is ready when `ready[i]` is set.
struct FixedExecutor<const N: usize> {
    slots: [Option<Job>; N],
    ready: &'static [AtomicBool; N],
    /// Where the next scan for a ready slot starts, for round-robin fairness.
    cursor: usize,
    /// What the last `run` did, for the caller to show.
    last: Option<Event>,
}

impl<const N: usize> FixedExecutor<N> {
    fn new(ready: &'static [AtomicBool; N]) -> Self {
        FixedExecutor {
            slots: [const { None }; N],
            ready,
            cursor: 0,
            last: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }
}

impl<const N: usize> Spawner for FixedExecutor<N> {
    type Task = Job;

    /// Takes the job into a free slot, or gives it back when all `N` are taken.
    fn spawn(&mut self, job: Job) -> Result<(), Job> {
        match self.slots.iter().position(Option::is_none) {
            Some(i) => {
                self.slots[i] = Some(job);
                self.ready[i].store(true, Ordering::Release);
                Ok(())
            }
            None => Err(job),
        }
    }
}

impl<const N: usize> Scheduler for FixedExecutor<N> {
    /// A slot index.
    type Runnable = usize;

    fn next_task(&mut self) -> Option<usize> {
        for offset in 0..N {
            let i = (self.cursor + offset) % N;
            if self.slots[i].is_some() && self.ready[i].swap(false, Ordering::AcqRel) {
                self.cursor = (i + 1) % N;
                return Some(i);
            }
        }
        None
    }
}

impl<const N: usize> Executor for FixedExecutor<N> {
    fn run(&mut self, i: usize) -> Poll<()> {
        let waker = flag_waker(&self.ready[i]);
        let mut cx = Context::from_waker(&waker);
        let Some(job) = self.slots[i].as_mut() else {
            return Poll::Ready(());
        };
        match Pin::new(job).resume(&mut cx) {
            Step::Pending => Poll::Pending,
            Step::Yielded(report) => {
                self.last = Some(Event::Yielded(i, report));
                // A yield is not a wait: the job is ready again at once.
                self.ready[i].store(true, Ordering::Release);
                Poll::Pending
            }
            Step::Complete(report) => {
                self.last = Some(Event::Finished(i, report));
                self.slots[i] = None;
                Poll::Ready(())
            }
        }
    }
}

static READY: [AtomicBool; 3] = [const { AtomicBool::new(false) }; 3];

/// Runs the demo's four jobs on a three-slot executor, calling `on_event` after each step
/// that yielded or finished. Returns the number of steps and the heap allocations made
/// on this thread meanwhile (by the executor, the jobs, and `on_event`).
pub fn run_jobs(mut on_event: impl FnMut(Event)) -> (usize, usize) {
    for flag in &READY {
        flag.store(false, Ordering::SeqCst);
    }
    *MAILBOX.lock().unwrap() = Mailbox {
        value: None,
        reader: None,
    };
    EXECUTOR_THREAD.set(true);
    ALLOCATIONS.store(0, Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);

    let mut ex = FixedExecutor::new(&READY);
    let mut backlog = [
        Job::Reader(Reader),
        Job::Countdown(Countdown(3)),
        Job::Fib(Fib::Running {
            a: 0,
            b: 1,
            limit: 20,
        }),
        Job::Countdown(Countdown(2)),
    ]
    .map(Some);
    let mut steps = 0;
    while backlog.iter().any(Option::is_some) || !ex.is_empty() {
        // Spawn what fits; a full executor hands the job back, and it waits in the backlog.
        for job in &mut backlog {
            if let Some(j) = job.take() {
                if let Err(j) = ex.spawn(j) {
                    *job = Some(j);
                }
            }
        }
        if ex.run_next() {
            steps += 1;
            if let Some(event) = ex.last.take() {
                on_event(event);
            }
        } else {
            // Nothing ready: every remaining job waits for another thread (none here).
            std::hint::spin_loop();
        }
    }

    COUNTING.store(false, Ordering::SeqCst);
    EXECUTOR_THREAD.set(false);
    (steps, ALLOCATIONS.load(Ordering::SeqCst))
}

/// Runs the jobs, printing each step, and checks that nothing was allocated.
pub fn main() {
    println!("custom executor: 3 slots, jobs stored by value, no heap");
    println!("  size of one job: {} bytes", size_of::<Job>());
    let (steps, allocations) = run_jobs(|event| match event {
        Event::Yielded(slot, report) => println!("  slot {slot}: yielded {report}"),
        Event::Finished(slot, report) => println!("  slot {slot}: finished: {report}"),
    });
    println!("  {steps} steps, heap allocations while running: {allocations}");
    assert_eq!(allocations, 0, "the fixed executor must not touch the heap");
}
