//! Runtime of structured-async: the [`Coroutine`] trait, the local executor and its
//! subsystem-aware poll loop, timers, and the machinery behind nurseries.
//!
//! Users normally depend on the `structured-async` facade, which re-exports this crate.

mod coroutine;
pub mod executor;
mod lowering;
pub mod nursery;
pub mod subsystem;
pub mod time;

pub use coroutine::{AsFuture, Coroutine, CoroutineExt, Step};
pub use executor::{
    AsyncCancel, Builder, Cancel, Executor, Handle, JoinHandle, Runtime, Scheduler, Spawner,
    WorkStealingSpawner, block_on, spawn_local, yield_now,
};
pub use nursery::{ChildHandle, ChildOutput, NeverFails, Scope};
pub use subsystem::{ParkHint, Subsystem};
pub use time::{Elapsed, Interval, interval, sleep, sleep_until, timeout};

/// Items the macros' expansions name; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::lowering::*;
    pub use crate::{Coroutine, Step};
    pub use core::convert::Infallible;
    pub use futures_core::Stream;
    pub use pin_project_lite::pin_project;
}
