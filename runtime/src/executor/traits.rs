//! The executor interface from the proposal: small capability traits that a library can be
//! written against and that any executor — the default [`Runtime`](super::Runtime), a
//! fixed-capacity one with no heap, a user's own — can implement.
//!
//! A [`Spawner`] takes a task, a [`Scheduler`] hands out the next runnable one, and an
//! [`Executor`] is both plus the step that runs a task, which gives it a provided
//! [`Executor::run_next`]. [`WorkStealingSpawner`] is the optional capability of accepting
//! tasks that other threads may take (`Send` ones). [`Cancel`] and [`AsyncCancel`] are the two
//! ways a running coroutine can be stopped: at once, or after some asynchronous cleanup.

use core::pin::Pin;
use core::task::{Context, Poll};

/// Hands out the next task that is ready to run.
///
/// ```
/// use structured_async::executor::Scheduler;
///
/// /// Runs task ids in the order they became ready.
/// struct Fifo(std::collections::VecDeque<usize>);
///
/// impl Scheduler for Fifo {
///     type Runnable = usize;
///     fn next_task(&mut self) -> Option<usize> {
///         self.0.pop_front()
///     }
/// }
///
/// let mut s = Fifo([3, 1].into());
/// assert_eq!(s.next_task(), Some(3));
/// assert_eq!(s.next_task(), Some(1));
/// assert_eq!(s.next_task(), None);
/// ```
pub trait Scheduler {
    /// A handle to one ready task: an index, a reference-counted task, …
    type Runnable;

    /// The next task to run, or `None` when no task is ready right now.
    fn next_task(&mut self) -> Option<Self::Runnable>;
}

/// Takes a task to run later.
///
/// A spawner with bounded room gives the task back in `Err` instead of dropping it, so the
/// caller decides what to do (run it inline, wait, report).
///
/// ```
/// use structured_async::executor::Spawner;
///
/// /// Holds at most two tasks.
/// struct Pair(Vec<&'static str>);
///
/// impl Spawner for Pair {
///     type Task = &'static str;
///     fn spawn(&mut self, task: &'static str) -> Result<(), &'static str> {
///         if self.0.len() == 2 {
///             return Err(task);
///         }
///         self.0.push(task);
///         Ok(())
///     }
/// }
///
/// let mut p = Pair(Vec::new());
/// assert!(p.spawn("a").is_ok() && p.spawn("b").is_ok());
/// assert_eq!(p.spawn("c"), Err("c"));
/// ```
pub trait Spawner {
    /// What this spawner accepts: a boxed future, an enum of known coroutines, …
    type Task;

    /// Takes `task`, or gives it back when there is no room for it.
    fn spawn(&mut self, task: Self::Task) -> Result<(), Self::Task>;
}

/// A [`Scheduler`] and a [`Spawner`] that can also run the tasks it schedules.
///
/// Implementors write [`Executor::run`]; [`Executor::run_next`] comes for free.
///
/// ```
/// use core::task::Poll;
/// use structured_async::executor::{Executor, Scheduler, Spawner};
///
/// /// Runs closures, one per step.
/// #[derive(Default)]
/// struct Inline(Vec<fn() -> u32>, u32);
///
/// impl Scheduler for Inline {
///     type Runnable = fn() -> u32;
///     fn next_task(&mut self) -> Option<Self::Runnable> {
///         self.0.pop()
///     }
/// }
/// impl Spawner for Inline {
///     type Task = fn() -> u32;
///     fn spawn(&mut self, task: Self::Task) -> Result<(), Self::Task> {
///         self.0.push(task);
///         Ok(())
///     }
/// }
/// impl Executor for Inline {
///     fn run(&mut self, task: Self::Runnable) -> Poll<()> {
///         self.1 += task();
///         Poll::Ready(())
///     }
/// }
///
/// let mut ex = Inline::default();
/// ex.spawn(|| 2).unwrap();
/// ex.spawn(|| 40).unwrap();
/// while ex.run_next() {}
/// assert_eq!(ex.1, 42);
/// ```
pub trait Executor: Scheduler + Spawner {
    /// Runs `task` until it suspends or finishes: `Ready` when it finished.
    fn run(&mut self, task: Self::Runnable) -> Poll<()>;

    /// Runs the next ready task, if any; `false` when none was ready.
    fn run_next(&mut self) -> bool {
        match self.next_task() {
            Some(task) => {
                let _finished = self.run(task);
                true
            }
            None => false,
        }
    }
}

/// Takes tasks that any thread may run (`Send` ones), the second of a worker's two queues.
///
/// Work for another thread is a new tree, so these tasks must not borrow from the spawner.
///
/// ```
/// use std::sync::mpsc;
/// use structured_async::executor::WorkStealingSpawner;
///
/// /// Forwards tasks over a channel that other threads drain.
/// struct Shared(mpsc::Sender<Box<dyn FnOnce() + Send>>);
///
/// impl WorkStealingSpawner for Shared {
///     type Task = Box<dyn FnOnce() + Send>;
///     fn spawn_stealable(&self, task: Self::Task) -> Result<(), Self::Task> {
///         self.0.send(task).map_err(|e| e.0)
///     }
/// }
///
/// let (tx, rx) = mpsc::channel();
/// assert!(Shared(tx).spawn_stealable(Box::new(|| println!("ran"))).is_ok());
/// std::thread::spawn(move || rx.recv().unwrap()()).join().unwrap();
/// ```
pub trait WorkStealingSpawner {
    /// What this spawner accepts; it crosses threads.
    type Task: Send;

    /// Takes `task` so that some thread runs it, or gives it back when that is impossible
    /// (the executor shut down, the queue is full).
    fn spawn_stealable(&self, task: Self::Task) -> Result<(), Self::Task>;
}

/// Synchronous cancellation: stop now, dropping whatever the coroutine holds.
///
/// After `cancel` the coroutine is not resumed again.
///
/// ```
/// use core::pin::Pin;
/// use structured_async::executor::Cancel;
///
/// struct Download { buffer: Option<Vec<u8>> }
///
/// impl Cancel for Download {
///     fn cancel(mut self: Pin<&mut Self>) {
///         self.buffer = None; // release the memory at once
///     }
/// }
///
/// let mut d = Download { buffer: Some(vec![0; 1024]) };
/// Pin::new(&mut d).cancel();
/// assert!(d.buffer.is_none());
/// ```
pub trait Cancel {
    /// Stops the coroutine at once and releases what it holds.
    fn cancel(self: Pin<&mut Self>);
}

/// Asynchronous cancellation: a coroutine asked to stop may first run async cleanup (flush a
/// buffer, send a goodbye) and is dropped only once `poll_cancel` returns `Ready`.
///
/// ```
/// use core::pin::Pin;
/// use core::task::{Context, Poll};
/// use structured_async::executor::AsyncCancel;
///
/// /// Needs two more polls to say goodbye before it can be dropped.
/// struct Session { goodbyes_left: u32 }
///
/// impl AsyncCancel for Session {
///     fn poll_cancel(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
///         if self.goodbyes_left == 0 {
///             return Poll::Ready(());
///         }
///         self.goodbyes_left -= 1;
///         cx.waker().wake_by_ref();
///         Poll::Pending
///     }
/// }
///
/// let mut s = Session { goodbyes_left: 2 };
/// let mut cx = Context::from_waker(core::task::Waker::noop());
/// assert!(Pin::new(&mut s).poll_cancel(&mut cx).is_pending());
/// assert!(Pin::new(&mut s).poll_cancel(&mut cx).is_pending());
/// assert!(Pin::new(&mut s).poll_cancel(&mut cx).is_ready());
/// ```
pub trait AsyncCancel {
    /// Drives the cleanup; `Ready` once the coroutine may be dropped.
    fn poll_cancel(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()>;
}
