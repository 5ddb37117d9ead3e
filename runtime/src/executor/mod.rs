//! The local executor: `block_on`, `spawn_local`, wakers, the executor traits, and the
//! subsystem-aware poll loop.
//!
//! A [`Runtime`] runs on one thread. A spawned task is one allocation (header, join slot and
//! future, `cell.rs`) owned by a slab; a woken task is queued by its waker, a counted
//! reference to the task's header, so waking or cloning a waker never allocates. Wakes from
//! other threads go through a locked queue and an unpark.
//!
//! ```
//! use std::rc::Rc;
//! use structured_async::{Runtime, spawn_local, yield_now};
//!
//! let rt = Runtime::builder().budget(16).build();
//! let log = Rc::new(std::cell::RefCell::new(Vec::new()));
//! let l = Rc::clone(&log);
//! rt.block_on(async move {
//!     let child = spawn_local({
//!         let l = Rc::clone(&l);
//!         async move { l.borrow_mut().push("child") }
//!     });
//!     yield_now().await;
//!     l.borrow_mut().push("parent");
//!     child.await;
//! });
//! assert_eq!(*log.borrow(), ["child", "parent"]);
//! ```
//!
//! # Invariants
//!
//! 1. No `RefCell` of the executor is borrowed while user code runs (a task's poll, a future's
//!    destructor, a subsystem's poll): futures are taken out of the slab to be polled and
//!    dropped after the borrow ends, so a task may spawn, cancel or wake anything.
//! 2. While a task is polled its slot says `Running`; a cancel that arrives then (the task
//!    aborting itself) is recorded in the slot and carried out when the poll returns.
//! 3. A header is in at most one ready queue at a time: a waker queues it only when it moves
//!    the header's state from "not scheduled" to "scheduled", and the executor clears that bit
//!    right before polling, so a wake during the poll queues it again, once.
//! 4. A header keeps the executor's `Shared` part alive, never the executor itself: a waker
//!    woken after its task finished, or after the runtime was dropped, touches only that
//!    `Shared` (finished tasks are marked done and skipped; a dropped runtime closes its remote
//!    queue, which then refuses pushes).
//! 5. A task's future and output live and die on the executor's thread, whoever drops the
//!    last reference to the task's allocation (rules 1–4 in `cell.rs`).
//! 6. A panic of a task's future (its `poll`, or its destructor, whether the task finished or
//!    was cancelled by an abort or the runtime's drop) never unwinds into the executor or the
//!    canceller: it is the task's result, which the handle resumes, or is swallowed for a task
//!    with no handle. So is a panic of the drop of an output nobody takes. Only a waker of a
//!    handle awaiting the task, woken once the future is gone, can unwind out of a poll, an
//!    abort or the runtime's drop, leaving the task ended and its slot freed.

mod cell;
mod context;
mod core;
mod join;
mod queue;
mod run_loop;
mod runtime;
mod task;
mod traits;
mod waker;

pub use join::JoinHandle;
pub use runtime::{
    Builder, DEFAULT_BUDGET, Handle, Runtime, SpawnError, TIMERS_PRIORITY, YieldNow, block_on,
    spawn_local, try_spawn_local, yield_now,
};
pub use task::Runnable;
pub use traits::{AsyncCancel, Cancel, Executor, Scheduler, Spawner, WorkStealingSpawner};
pub use waker::flag_waker;

pub(crate) use context::current as current_core;
