//! Runtime side of `#[structured]`: the pieces its expansions name through `__private`.
//!
//! The macro generates each function's state enum and block closures itself (their number and
//! types differ per function); what is the same for every function lives here: `?` on stable
//! ([`Branch`], [`FromResidual`]), the generator wrapper that makes a coroutine a
//! `futures_core::Stream` ([`Generator`]), and the yield slot a native-frame generator body
//! uses ([`NativeGenerator`]).

mod generator;
mod try_op;

pub use generator::{Generator, NativeGenerator, YieldNow, YieldSlot, native_generator};
pub use try_op::{Branch, FromResidual};

/// Drops a value on the spot: an awaited expression statement (`f().await;`) drops its output
/// at the end of the statement, and a block that resumes after it calls this to do the same.
#[inline]
pub fn discard<T>(value: T) {
    drop(value);
}
