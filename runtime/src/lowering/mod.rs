//! Runtime side of `#[structured]`: the pieces its expansions name through `__private`.
//!
//! The macro generates each function's state enum and block closures itself (their number and
//! types differ per function); what is the same for every function lives here: `?` on stable
//! ([`Branch`], [`FromResidual`]), the generator wrapper that makes a coroutine a
//! `futures_core::Stream` ([`Generator`]), the bounds on its block closures ([`Block`],
//! [`Resume`]), and the yield slot a native-frame generator body
//! uses ([`NativeGenerator`]).

mod block;
mod generator;
mod try_op;

pub use block::{Block, Resume};
pub use generator::{Generator, NativeGenerator, YieldNow, YieldSlot, native_generator};
pub use try_op::{Branch, FromResidual};

/// Drops a value on the spot: an awaited expression statement (`f().await;`) drops its output
/// at the end of the statement, and a block that resumes after it calls this to do the same.
#[inline]
pub fn discard<T>(value: T) {
    drop(value);
}

/// The value of a local that carries a drop flag (held as `Option<T>` by the lowering because
/// it is moved on some paths only), moved out at one of the user's moves. The native frame
/// rejects any use of a moved local, so the flag is always set where this is called.
#[inline]
pub fn flag_take<T>(flag: &mut Option<T>) -> T {
    match flag.take() {
        Some(value) => value,
        None => unreachable!("a moved local used again"),
    }
}

/// A shared borrow of a flagged local (see [`flag_take`]).
#[inline]
pub fn flag_ref<T>(flag: &Option<T>) -> &T {
    match flag {
        Some(value) => value,
        None => unreachable!("a moved local used again"),
    }
}

/// A unique borrow of a flagged local (see [`flag_take`]).
#[inline]
pub fn flag_mut<T>(flag: &mut Option<T>) -> &mut T {
    match flag {
        Some(value) => value,
        None => unreachable!("a moved local used again"),
    }
}
