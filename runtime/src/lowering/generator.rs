//! Generators: `#[structured(yields = T)]` fns.
//!
//! An explicitly lowered generator is a state machine whose `Yield` transitions return
//! [`Step::Yielded`] directly. A generator body that keeps a native frame (see the lowering
//! docs) cannot return from the middle of an `async` block, so its `yield_!(v)` stores `v` in a
//! [`YieldSlot`] shared with the outer [`NativeGenerator`] and suspends once; the outer
//! coroutine sees the filled slot and yields the value instead of reporting `Pending`.

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::sync::{Arc, Mutex, PoisonError};

use crate::{Coroutine, Step};

pin_project_lite::pin_project! {
    /// The coroutine a `#[structured(yields = T)]` fn returns: the generated machine, plus a
    /// [`futures_core::Stream`] impl when the output is `()`.
    ///
    /// ```
    /// use core::pin::pin;
    /// use structured_async::{structured, yield_, Coroutine, Step};
    ///
    /// #[structured(yields = u32)]
    /// async fn two() {
    ///     yield_!(1);
    ///     yield_!(2);
    /// }
    ///
    /// let mut g = pin!(two());
    /// let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    /// assert_eq!(g.as_mut().resume(&mut cx), Step::Yielded(1));
    /// assert_eq!(g.as_mut().resume(&mut cx), Step::Yielded(2));
    /// assert_eq!(g.as_mut().resume(&mut cx), Step::Complete(()));
    /// ```
    #[derive(Debug)]
    #[must_use = "generators do nothing unless resumed"]
    pub struct Generator<C> {
        #[pin]
        coroutine: C,
        done: bool,
    }
}

impl<C> Generator<C> {
    /// Wraps a coroutine.
    ///
    /// ```
    /// let g = structured_async::__private::Generator::new(async { 5 });
    /// # drop(g);
    /// ```
    pub fn new(coroutine: C) -> Self {
        Generator {
            coroutine,
            done: false,
        }
    }
}

impl<C: Coroutine> Coroutine for Generator<C> {
    type Yield = C::Yield;
    type Output = C::Output;
    fn resume(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Step<C::Yield, C::Output> {
        let this = self.project();
        let step = this.coroutine.resume(cx);
        if let Step::Complete(_) = step {
            *this.done = true;
        }
        step
    }
}

impl<C: Coroutine<Output = ()>> futures_core::Stream for Generator<C> {
    type Item = C::Yield;
    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<C::Yield>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.resume(cx) {
            Step::Pending => Poll::Pending,
            Step::Yielded(v) => Poll::Ready(Some(v)),
            Step::Complete(()) => Poll::Ready(None),
        }
    }
}

impl<C: Coroutine<Output = ()>> futures_core::FusedStream for Generator<C> {
    fn is_terminated(&self) -> bool {
        self.done
    }
}

/// Where a native-frame generator body leaves the value of a `yield_!` for its
/// [`NativeGenerator`] to pick up.
#[derive(Debug)]
pub struct YieldSlot<Y>(Arc<Mutex<Option<Y>>>);

impl<Y> Clone for YieldSlot<Y> {
    fn clone(&self) -> Self {
        YieldSlot(Arc::clone(&self.0))
    }
}

impl<Y> YieldSlot<Y> {
    /// A future that stores `value` in the slot and suspends exactly once.
    ///
    /// ```
    /// use core::pin::pin;
    /// use structured_async::{Coroutine, Step};
    /// use structured_async::__private::native_generator;
    ///
    /// let mut g = pin!(native_generator(|slot| async move { slot.yield_(7).await; "end" }));
    /// let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
    /// assert_eq!(g.as_mut().resume(&mut cx), Step::Yielded(7));
    /// assert_eq!(g.as_mut().resume(&mut cx), Step::Complete("end"));
    /// ```
    pub fn yield_(&self, value: Y) -> YieldNow<'_, Y> {
        YieldNow {
            slot: self,
            value: Some(value),
        }
    }

    fn take(&self) -> Option<Y> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

pin_project_lite::pin_project! {
    /// The future of [`YieldSlot::yield_`].
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct YieldNow<'a, Y> {
        slot: &'a YieldSlot<Y>,
        value: Option<Y>,
    }
}

impl<Y> Future for YieldNow<'_, Y> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        match this.value.take() {
            // First poll: hand the value over and suspend; the outer generator returns it as
            // `Step::Yielded` instead of `Pending`, so no wake-up is needed.
            Some(v) => {
                *this.slot.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(v);
                Poll::Pending
            }
            None => Poll::Ready(()),
        }
    }
}

pin_project_lite::pin_project! {
    /// A generator whose body is one native `async` block; made by [`native_generator`].
    #[derive(Debug)]
    #[must_use = "generators do nothing unless resumed"]
    pub struct NativeGenerator<Y, F> {
        slot: YieldSlot<Y>,
        #[pin]
        body: F,
    }
}

/// Builds a [`NativeGenerator`]: `make` receives the slot and returns the (lazy) body.
///
/// ```
/// use structured_async::__private::native_generator;
/// let g = native_generator(|slot| async move { slot.yield_('a').await });
/// # drop(g);
/// ```
pub fn native_generator<Y, R, F, M>(make: M) -> NativeGenerator<Y, F>
where
    F: Future<Output = R>,
    M: FnOnce(YieldSlot<Y>) -> F,
{
    let slot = YieldSlot(Arc::new(Mutex::new(None)));
    let body = make(slot.clone());
    NativeGenerator { slot, body }
}

impl<Y, F: Future> Coroutine for NativeGenerator<Y, F> {
    type Yield = Y;
    type Output = F::Output;
    fn resume(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Step<Y, F::Output> {
        let this = self.project();
        match this.body.poll(cx) {
            Poll::Ready(r) => Step::Complete(r),
            Poll::Pending => match this.slot.take() {
                Some(v) => Step::Yielded(v),
                None => Step::Pending,
            },
        }
    }
}
