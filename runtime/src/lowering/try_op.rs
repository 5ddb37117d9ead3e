//! The `?` operator for code that runs inside a block closure.
//!
//! A block closure returns a `Transition`, not the function's output, so a `?` written by the
//! user cannot stay a `?` there. The macro rewrites `expr?` into
//! `match Branch::branch(expr) { Continue(v) => v, Break(r) => return Return(FromResidual::from_residual(r)) }`,
//! which is what `core::ops::Try` does on nightly, restricted to the types `?` is used with on
//! stable: `Result`, `Option` and `ControlFlow`.

use core::convert::Infallible;
use core::ops::ControlFlow;

/// Splits a `?` operand into the value to go on with or the residual to return early with.
pub trait Branch {
    /// The value `expr?` evaluates to.
    type Output;
    /// What an early return carries (`Result<Infallible, E>` for a `Result`).
    type Residual;
    /// `Continue(value)` to go on, `Break(residual)` to return early.
    fn branch(self) -> ControlFlow<Self::Residual, Self::Output>;
}

/// Builds a function's output from the residual of a `?` that returned early.
pub trait FromResidual<R> {
    /// The early-return value, converting the error with `From` as `?` does.
    fn from_residual(residual: R) -> Self;
}

impl<T, E> Branch for Result<T, E> {
    type Output = T;
    type Residual = Result<Infallible, E>;
    #[inline]
    fn branch(self) -> ControlFlow<Result<Infallible, E>, T> {
        match self {
            Ok(v) => ControlFlow::Continue(v),
            Err(e) => ControlFlow::Break(Err(e)),
        }
    }
}

impl<T, E, F: From<E>> FromResidual<Result<Infallible, E>> for Result<T, F> {
    #[inline]
    fn from_residual(residual: Result<Infallible, E>) -> Self {
        match residual {
            Err(e) => Err(From::from(e)),
            Ok(never) => match never {},
        }
    }
}

impl<T> Branch for Option<T> {
    type Output = T;
    type Residual = Option<Infallible>;
    #[inline]
    fn branch(self) -> ControlFlow<Option<Infallible>, T> {
        match self {
            Some(v) => ControlFlow::Continue(v),
            None => ControlFlow::Break(None),
        }
    }
}

impl<T> FromResidual<Option<Infallible>> for Option<T> {
    #[inline]
    fn from_residual(_: Option<Infallible>) -> Self {
        None
    }
}

impl<B, C> Branch for ControlFlow<B, C> {
    type Output = C;
    type Residual = ControlFlow<B, Infallible>;
    #[inline]
    fn branch(self) -> ControlFlow<ControlFlow<B, Infallible>, C> {
        match self {
            ControlFlow::Continue(c) => ControlFlow::Continue(c),
            ControlFlow::Break(b) => ControlFlow::Break(ControlFlow::Break(b)),
        }
    }
}

impl<B, C> FromResidual<ControlFlow<B, Infallible>> for ControlFlow<B, C> {
    #[inline]
    fn from_residual(residual: ControlFlow<B, Infallible>) -> Self {
        match residual {
            ControlFlow::Break(b) => ControlFlow::Break(b),
            ControlFlow::Continue(never) => match never {},
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question<T: Branch, R: FromResidual<T::Residual>>(v: T) -> Result<T::Output, R> {
        match v.branch() {
            ControlFlow::Continue(v) => Ok(v),
            ControlFlow::Break(r) => Err(R::from_residual(r)),
        }
    }

    #[test]
    fn result_converts_the_error_with_from() {
        let r: Result<u8, Result<(), String>> = question(Err::<u8, &str>("bad"));
        assert_eq!(r, Err(Err("bad".to_string())));
        let ok: Result<u8, Result<(), String>> = question(Ok::<u8, &str>(3));
        assert_eq!(ok, Ok(3));
    }

    #[test]
    fn option_and_control_flow_short_circuit() {
        let none: Result<u8, Option<u32>> = question(None::<u8>);
        assert_eq!(none, Err(None));
        let brk: Result<u8, ControlFlow<&str, ()>> = question(ControlFlow::<&str, u8>::Break("x"));
        assert_eq!(brk, Err(ControlFlow::Break("x")));
    }
}
