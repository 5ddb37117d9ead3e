//! The one entry point every computation in structured-async goes through.
//!
//! A [`Coroutine`] is resumed with a [`Context`] and answers with a [`Step`]: not ready yet,
//! a value yielded on the way, or the final output. Every [`Future`] is a coroutine that never
//! yields (a blanket impl), and a coroutine that never yields runs as a future through
//! [`CoroutineExt::into_awaitable`].

use core::convert::Infallible;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};

/// What one [`Coroutine::resume`] call produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use = "a Step says whether the coroutine finished; ignoring it loses the output"]
pub enum Step<Y, R> {
    /// Not ready; the coroutine registered the context's waker and will be woken.
    Pending,
    /// The coroutine produced an intermediate value and can be resumed again.
    Yielded(Y),
    /// The coroutine finished with its output; it must not be resumed again.
    Complete(R),
}

impl<Y, R> Step<Y, R> {
    /// Whether this is [`Step::Pending`].
    ///
    /// ```
    /// use structured_async::Step;
    /// assert!(Step::<(), ()>::Pending.is_pending());
    /// ```
    pub fn is_pending(&self) -> bool {
        matches!(self, Step::Pending)
    }
}

/// A resumable computation: a state machine that may suspend, yield values, and complete.
///
/// Hand-written state machines implement it directly; `#[structured]` fns generate it.
///
/// ```
/// use core::pin::Pin;
/// use core::task::Context;
/// use structured_async::{Coroutine, Step};
///
/// /// Counts down, yielding each number, then completes with "liftoff".
/// enum Countdown { Running(u32), Done }
///
/// impl Coroutine for Countdown {
///     type Yield = u32;
///     type Output = &'static str;
///     fn resume(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Step<u32, &'static str> {
///         match *self {
///             Countdown::Running(0) => { *self = Countdown::Done; Step::Complete("liftoff") }
///             Countdown::Running(n) => { *self = Countdown::Running(n - 1); Step::Yielded(n) }
///             Countdown::Done => panic!("resumed after completion"),
///         }
///     }
/// }
///
/// let mut c = Countdown::Running(2);
/// let mut cx = Context::from_waker(core::task::Waker::noop());
/// assert_eq!(Pin::new(&mut c).resume(&mut cx), Step::Yielded(2));
/// assert_eq!(Pin::new(&mut c).resume(&mut cx), Step::Yielded(1));
/// assert_eq!(Pin::new(&mut c).resume(&mut cx), Step::Complete("liftoff"));
/// ```
pub trait Coroutine {
    /// The type of intermediate values; [`Infallible`] for coroutines that never yield.
    type Yield;
    /// The type of the final value.
    type Output;
    /// Runs the coroutine until it suspends, yields or completes.
    fn resume(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Step<Self::Yield, Self::Output>;
}

/// Every future is a coroutine that never yields.
impl<F: Future + ?Sized> Coroutine for F {
    type Yield = Infallible;
    type Output = F::Output;
    fn resume(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Step<Infallible, F::Output> {
        match self.poll(cx) {
            Poll::Pending => Step::Pending,
            Poll::Ready(r) => Step::Complete(r),
        }
    }
}

pin_project_lite::pin_project! {
    /// A coroutine that never yields, run as a [`Future`]; made by [`CoroutineExt::into_awaitable`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct AsFuture<C> {
        #[pin]
        coroutine: C,
    }
}

impl<C: Coroutine<Yield = Infallible>> Future for AsFuture<C> {
    type Output = C::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        match self.project().coroutine.resume(cx) {
            Step::Pending => Poll::Pending,
            Step::Complete(r) => Poll::Ready(r),
            Step::Yielded(never) => match never {},
        }
    }
}

/// Adapters for any [`Coroutine`].
pub trait CoroutineExt: Coroutine + Sized {
    /// Runs a coroutine that never yields as a [`Future`].
    ///
    /// ```
    /// use core::{convert::Infallible, pin::Pin, task::Context};
    /// use structured_async::{Coroutine, CoroutineExt, Step};
    ///
    /// struct Answer;
    /// impl Coroutine for Answer {
    ///     type Yield = Infallible;
    ///     type Output = u32;
    ///     fn resume(self: Pin<&mut Self>, _: &mut Context<'_>) -> Step<Infallible, u32> {
    ///         Step::Complete(42)
    ///     }
    /// }
    /// assert_eq!(structured_async::block_on(Answer.into_awaitable()), 42);
    /// ```
    fn into_awaitable(self) -> AsFuture<Self>
    where
        Self: Coroutine<Yield = Infallible>,
    {
        AsFuture { coroutine: self }
    }
}

impl<C: Coroutine> CoroutineExt for C {}
