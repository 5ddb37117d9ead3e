//! The bounds a generated machine's `Future` (or `Coroutine`) impl puts on its block closures.
//!
//! Each block is a closure, called as `FnMut(live) -> Transition` or, after an await,
//! `FnMut(live, F::Output) -> Transition`. Written as `Fn` bounds on the impl, the second one
//! makes rustc normalize `F::Output` every time it selects the impl, and when `F` is itself a
//! `#[structured]` machine that means selecting *its* impl, normalizing its awaited future's
//! output, and so on down the whole await chain: quadratic work per level. These two traits
//! hold the same bounds behind a blanket impl; `B: Resume<L, F, T>` is an ordinary trait bound,
//! proven once per type and cached, so each level is checked once. The constructor keeps the
//! `Fn` bounds, which is what rustc infers closure signatures from.

use core::future::Future;

/// A block entered with its live tuple: the start block, a `goto` target, or the block after
/// a yield.
///
/// ```
/// use structured_async::__private::Block;
/// let mut add = |(x,): (u32,)| x + 1;
/// assert_eq!(Block::call(&mut add, (1,)), 2);
/// ```
pub trait Block<L, T> {
    /// Runs the block.
    fn call(&mut self, live: L) -> T;
}

impl<L, T, C: FnMut(L) -> T> Block<L, T> for C {
    #[inline(always)]
    fn call(&mut self, live: L) -> T {
        self(live)
    }
}

/// A block entered when the future `F` it awaited completed, with the live tuple and the
/// future's output.
///
/// ```
/// use core::future::Ready;
/// use structured_async::__private::Resume;
/// let mut add = |(x,): (u32,), out: u32| x + out;
/// assert_eq!(Resume::<_, Ready<u32>, _>::call(&mut add, (1,), 2), 3);
/// ```
pub trait Resume<L, F: Future, T> {
    /// Runs the block.
    fn call(&mut self, live: L, out: F::Output) -> T;
}

impl<L, F: Future, T, C: FnMut(L, F::Output) -> T> Resume<L, F, T> for C {
    #[inline(always)]
    fn call(&mut self, live: L, out: F::Output) -> T {
        self(live, out)
    }
}
