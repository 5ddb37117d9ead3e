//! The user-facing side of the local executor: [`Runtime`], its [`Builder`], [`Handle`], and
//! the free functions [`block_on`], [`spawn_local`], [`yield_now`].

use super::context;
use super::core::{Core, LocalTask};
use super::join::JoinHandle;
use super::queue::Shared;
use super::task::{ROOT, Runnable};
use super::traits::{Executor, Scheduler, Spawner, WorkStealingSpawner};
use crate::subsystem::Subsystem;
use crate::subsystem::registry::Registry;
use crate::time::Timers;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

/// How many ready tasks one turn of the loop polls before it polls the subsystems.
///
/// ```
/// use structured_async::{Runtime, executor::DEFAULT_BUDGET};
/// let rt = Runtime::builder().budget(DEFAULT_BUDGET / 2).build();
/// # drop(rt);
/// ```
pub const DEFAULT_BUDGET: usize = 64;

/// The priority of the timer subsystem every runtime registers (timers are polled when a
/// deadline is due, so the priority only matters against a builder-supplied `Timers`).
///
/// ```
/// use std::rc::Rc;
/// use structured_async::{Runtime, executor::TIMERS_PRIORITY, time::Timers};
/// let rt = Runtime::builder().subsystem(Rc::new(Timers::new()), TIMERS_PRIORITY).build();
/// # drop(rt);
/// ```
pub const TIMERS_PRIORITY: u32 = 1;

/// A single-threaded runtime: a local executor plus its subsystems.
///
/// Every runtime registers a [`Timers`] subsystem (so `sleep` works) unless the builder was
/// given one. Tasks spawned on it survive between `block_on` calls, as in tokio; dropping the
/// runtime drops every task it still holds. A task whose future panics in its destructor
/// there does not make the drop panic: the panic goes to the task's [`JoinHandle`] (awaiting
/// it resumes the panic), and is swallowed for a task with no handle (detached, or queued by
/// [`Handle::spawn`]), as in tokio; the panic hook reports it either way.
///
/// ```
/// use structured_async::{Runtime, spawn_local};
///
/// let rt = Runtime::new();
/// let handle = rt.spawn_local(async { "spawned before block_on" });
/// assert_eq!(rt.block_on(handle), "spawned before block_on");
/// assert_eq!(rt.block_on(async { spawn_local(async { 7 }).await }), 7);
/// ```
pub struct Runtime {
    core: Rc<Core>,
}

/// Configures a [`Runtime`]: subsystems with their priorities, the task budget.
///
/// ```
/// use std::rc::Rc;
/// use structured_async::{Runtime, time::Timers};
///
/// let rt = Runtime::builder()
///     .subsystem(Rc::new(Timers::new()), 4)
///     .budget(32)
///     .build();
/// assert_eq!(rt.block_on(async { 1 + 1 }), 2);
/// ```
#[must_use = "a Builder does nothing until .build()"]
pub struct Builder {
    registry: Registry,
    budget: usize,
}

impl Builder {
    /// Registers `subsystem` with `priority`: the loop polls it in proportion to
    /// `priority × waiters`. A priority of 0 counts as 1. Several subsystems of one type may
    /// be registered; [`subsystem::current`](crate::subsystem::current) finds the first.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use structured_async::{Runtime, subsystem::{self, ParkHint, Subsystem}};
    ///
    /// struct Doorbell;
    /// impl Subsystem for Doorbell {
    ///     fn poll(&self, _now: std::time::Instant) -> usize { 0 }
    ///     fn waiters(&self) -> usize { 0 }
    ///     fn park_hint(&self) -> ParkHint { ParkHint::Idle }
    /// }
    ///
    /// let rt = Runtime::builder().subsystem(Rc::new(Doorbell), 3).build();
    /// assert!(rt.block_on(async { subsystem::current::<Doorbell>().is_some() }));
    /// ```
    pub fn subsystem<S: Subsystem>(mut self, subsystem: Rc<S>, priority: u32) -> Self {
        self.registry.register(subsystem, priority);
        self
    }

    /// How many ready tasks one turn polls before the subsystems get their turn (default
    /// [`DEFAULT_BUDGET`]). A budget of 0 counts as 1.
    ///
    /// ```
    /// let rt = structured_async::Runtime::builder().budget(1).build();
    /// assert_eq!(rt.block_on(async { 1 }), 1);
    /// ```
    pub fn budget(mut self, budget: usize) -> Self {
        self.budget = budget;
        self
    }

    /// The runtime, owned by (and only usable on) the current thread.
    ///
    /// ```
    /// let rt = structured_async::Runtime::builder().build();
    /// assert_eq!(rt.block_on(async { "built" }), "built");
    /// ```
    pub fn build(mut self) -> Runtime {
        if !self.registry.contains::<Timers>() {
            self.registry
                .register(Rc::new(Timers::new()), TIMERS_PRIORITY);
        }
        Runtime {
            core: Core::new(self.registry, self.budget),
        }
    }
}

impl Runtime {
    /// A runtime with the default subsystems (timers) and budget.
    ///
    /// ```
    /// let rt = structured_async::Runtime::new();
    /// assert_eq!(rt.block_on(async { 5 }), 5);
    /// ```
    pub fn new() -> Self {
        Runtime::builder().build()
    }

    /// A [`Builder`] to register subsystems and set the budget.
    ///
    /// ```
    /// let rt = structured_async::Runtime::builder().budget(8).build();
    /// assert_eq!(rt.block_on(async { 5 }), 5);
    /// ```
    pub fn builder() -> Builder {
        Builder {
            registry: Registry::default(),
            budget: DEFAULT_BUDGET,
        }
    }

    /// Runs `future` to completion on this thread, together with every task spawned on this
    /// runtime, and returns its output. A panic of `future` propagates out of `block_on`.
    ///
    /// # Panics
    /// If called from inside a task of this same runtime (it would have to poll itself).
    ///
    /// ```
    /// let rt = structured_async::Runtime::new();
    /// let words = vec!["borrowed", "from", "the", "caller"];
    /// assert_eq!(rt.block_on(async { words.len() }), 4);
    /// ```
    pub fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.core.block_on(future)
    }

    /// Spawns a task on this runtime (it runs during `block_on`).
    ///
    /// ```
    /// let rt = structured_async::Runtime::new();
    /// let h = rt.spawn_local(async { 3 });
    /// assert_eq!(rt.block_on(h), 3);
    /// ```
    pub fn spawn_local<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        self.core.spawn(future)
    }

    /// A handle other threads can use to spawn `Send` tasks on this runtime.
    ///
    /// ```
    /// use std::sync::mpsc;
    ///
    /// let rt = structured_async::Runtime::new();
    /// let handle = rt.handle();
    /// let (tx, rx) = mpsc::channel();
    /// std::thread::spawn(move || handle.spawn(async move { tx.send(9).unwrap() }).unwrap())
    ///     .join()
    ///     .unwrap();
    /// rt.block_on(structured_async::yield_now());
    /// assert_eq!(rx.try_recv(), Ok(9));
    /// ```
    pub fn handle(&self) -> Handle {
        Handle {
            shared: Arc::clone(self.core.shared()),
        }
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Runtime::new()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("budget", &self.core.budget)
            .finish_non_exhaustive()
    }
}

/// The default runtime as a [`Spawner`]: it takes any boxed local future.
impl Spawner for Runtime {
    type Task = LocalTask;

    fn spawn(&mut self, task: LocalTask) -> Result<(), LocalTask> {
        self.core.insert_boxed(task);
        Ok(())
    }
}

/// The default runtime as a [`Scheduler`]: tasks come out in the order they were woken.
impl Scheduler for Runtime {
    type Runnable = Runnable;

    fn next_task(&mut self) -> Option<Runnable> {
        self.core.drain_remote();
        loop {
            let header = self.core.pop_ready()?;
            // The root of a `block_on` is not a task of the slab; outside `block_on` it is
            // finished.
            if header.key != ROOT {
                return Some(Runnable(header));
            }
        }
    }
}

/// Running a [`Runnable`] polls it once, inside this runtime's context.
impl Executor for Runtime {
    fn run(&mut self, task: Runnable) -> Poll<()> {
        let _enter = context::enter(&self.core);
        self.core.run_task(task.0)
    }
}

/// A `Send + Sync` handle to a [`Runtime`], to spawn `Send` tasks on it from any thread.
///
/// ```
/// let rt = structured_async::Runtime::new();
/// let handle = rt.handle();
/// std::thread::spawn(move || handle.spawn(async { println!("queued from afar") }))
///     .join()
///     .unwrap()
///     .unwrap();
/// rt.block_on(structured_async::yield_now());
/// ```
#[derive(Clone)]
pub struct Handle {
    shared: Arc<Shared>,
}

/// The error of [`Handle::spawn`] and [`try_spawn_local`]: there is no runtime to take the task.
///
/// ```
/// let err = structured_async::executor::try_spawn_local(async {}).unwrap_err();
/// assert_eq!(err.to_string(), "spawn_local called outside a structured-async runtime");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpawnError {
    reason: &'static str,
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.reason)
    }
}

impl std::error::Error for SpawnError {}

impl Handle {
    /// Queues `future` on the runtime and unparks its thread; it runs during `block_on`.
    /// Fails when the runtime was dropped.
    ///
    /// ```
    /// let rt = structured_async::Runtime::new();
    /// let handle = rt.handle();
    /// drop(rt);
    /// assert!(handle.spawn(async {}).is_err());
    /// ```
    pub fn spawn<F>(&self, future: F) -> Result<(), SpawnError>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.spawn_stealable(Box::pin(future))
            .map_err(|_| SpawnError {
                reason: "the runtime behind this Handle was dropped",
            })
    }
}

/// The default runtime's queue of `Send` tasks, which any thread may fill.
impl WorkStealingSpawner for Handle {
    type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

    fn spawn_stealable(&self, task: Self::Task) -> Result<(), Self::Task> {
        self.shared.push_spawn(task)
    }
}

impl std::fmt::Debug for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handle")
            .field("closed", &self.shared.is_closed())
            .finish()
    }
}

/// Runs `future` to completion on a new default [`Runtime`] on this thread. Tasks it spawned
/// and did not await are dropped when it returns (a panic in their destructors does not
/// replace the output; see [`Runtime`]).
///
/// A panic of `future` propagates out of `block_on`, as in tokio.
///
/// ```
/// assert_eq!(structured_async::block_on(async { 40 + 2 }), 42);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    Runtime::new().block_on(future)
}

/// Spawns a task on the runtime running on this thread and returns its [`JoinHandle`].
///
/// The task need not be `Send`: it never leaves this thread.
///
/// # Panics
/// Outside a runtime; see [`try_spawn_local`] for the fallible form.
///
/// ```
/// use std::rc::Rc;
/// use structured_async::{block_on, spawn_local};
///
/// let shared = Rc::new(5); // not Send, and that is fine
/// let out = block_on(async move {
///     let s = Rc::clone(&shared);
///     spawn_local(async move { *s * 2 }).await
/// });
/// assert_eq!(out, 10);
/// ```
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match try_spawn_local(future) {
        Ok(handle) => handle,
        Err(e) => panic!("{e}"),
    }
}

/// Spawns a task on the runtime running on this thread, or fails outside a runtime.
///
/// ```
/// assert!(structured_async::executor::try_spawn_local(async {}).is_err());
/// ```
pub fn try_spawn_local<F>(future: F) -> Result<JoinHandle<F::Output>, SpawnError>
where
    F: Future + 'static,
    F::Output: 'static,
{
    match context::current() {
        Some(core) => Ok(core.spawn(future)),
        None => Err(SpawnError {
            reason: "spawn_local called outside a structured-async runtime",
        }),
    }
}

/// Gives the other ready tasks (and the subsystems) a turn, then resumes.
///
/// ```
/// use std::cell::Cell;
/// use std::rc::Rc;
/// use structured_async::{block_on, spawn_local, yield_now};
///
/// block_on(async {
///     let ran = Rc::new(Cell::new(false));
///     let r = Rc::clone(&ran);
///     let _detached = spawn_local(async move { r.set(true) });
///     yield_now().await;
///     assert!(ran.get());
/// });
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`]: pending once (after waking itself), then ready.
///
/// ```
/// use std::pin::pin;
/// use std::task::{Context, Poll, Waker};
///
/// let mut y = pin!(structured_async::yield_now());
/// let mut cx = Context::from_waker(Waker::noop());
/// assert!(y.as_mut().poll(&mut cx).is_pending());
/// assert!(y.as_mut().poll(&mut cx).is_ready());
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
