//! # structured-async
//!
//! Structured async for stable Rust.
//!
//! - [`Coroutine`]: one trait for every resumable computation; every future is one.
//! - `#[structured] async fn`: the body compiled into an explicit state machine.
//! - `nursery!`: children that borrow from their parent and can never outlive it.
//! - A compact runtime whose poll loop knows about [`Subsystem`]s (timers, rings, readiness).

extern crate self as structured_async;

pub use structured_async_runtime::*;

pub use structured_async_macros::{structured, yield_};

/// Everything a user types, in one import.
pub mod prelude {
    pub use structured_async_macros::{structured, yield_};
    pub use structured_async_runtime::{
        AsyncCancel, Cancel, Executor, JoinHandle, Runtime, Scheduler, Spawner,
        WorkStealingSpawner, block_on, spawn_local, yield_now,
    };
    pub use structured_async_runtime::{ChildHandle, Scope, nursery};
    pub use structured_async_runtime::{Coroutine, CoroutineExt, Step, Subsystem};
    pub use structured_async_runtime::{Elapsed, Interval, interval, sleep, sleep_until, timeout};
}

/// Paths the macros' expansions go through; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use structured_async_runtime::__private::*;
}
