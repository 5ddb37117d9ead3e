//! # structured-async
//!
//! Structured async for stable Rust.
//!
//! - [`Coroutine`]: one trait for every resumable computation; every future is one.
//! - `#[structured] async fn`: the body compiled into an explicit state machine.
//! - `nursery!`: children that borrow from their parent and can never outlive it.
//! - A compact runtime whose poll loop knows about [`Subsystem`]s: timers and busy-polled rings
//!   built in; an fd-backed readiness source plugs into the same trait.
//!
//! ## `#[structured] async fn`
//!
//! A native `async fn` compiles to a future whose layout, size and drop behaviour you cannot
//! see or name. `#[structured]` compiles the same body into an explicit state machine instead:
//! one enum variant per suspension point, holding exactly the locals alive there and the
//! future in flight. It is still a plain [`Future`](core::future::Future) (so also a
//! [`Coroutine`]): lazy, `Send` when its state is, and it runs on [`block_on`], tokio or smol.
//!
//! ```
//! use structured_async::structured;
//!
//! async fn fetch(id: u32) -> Result<u32, String> {
//!     if id == 0 { Err("no such id".into()) } else { Ok(id * 10) }
//! }
//!
//! /// Sums the values of `ids`, stopping at the first error.
//! #[structured]
//! async fn total(ids: Vec<u32>) -> Result<u32, String> {
//!     let mut sum = 0;
//!     let mut i = 0;
//!     while i < ids.len() {
//!         let v = fetch(ids[i]).await?;
//!         if v > 100 {
//!             return Err(format!("{v} is too large"));
//!         }
//!         sum += v;
//!         i += 1;
//!     }
//!     Ok(sum)
//! }
//!
//! assert_eq!(structured_async::block_on(total(vec![1, 2, 3])), Ok(60));
//! assert_eq!(structured_async::block_on(total(vec![1, 0])), Err("no such id".into()));
//! ```
//!
//! Generators: `#[structured(yields = T)]` and `yield_!(value)` wherever an await may stand.
//! The result is a [`Coroutine`] with `Yield = T`, and a `futures_core::Stream` when the
//! output is `()`.
//!
//! ```
//! use structured_async::{structured, yield_, Coroutine, Step};
//!
//! #[structured(yields = u32)]
//! async fn evens(below: u32) {
//!     let mut n = 0;
//!     while n < below {
//!         yield_!(n);
//!         n += 2;
//!     }
//! }
//!
//! let mut g = core::pin::pin!(evens(5));
//! let mut cx = core::task::Context::from_waker(core::task::Waker::noop());
//! let mut seen = Vec::new();
//! while let Step::Yielded(v) = g.as_mut().resume(&mut cx) {
//!     seen.push(v);
//! }
//! assert_eq!(seen, [0, 2, 4]);
//! ```
//!
//! ### What is lowered explicitly
//!
//! - [x] straight-line code; `let`, `let … else`, expression statements and the tail with an
//!   await first in their evaluation (`f().await`, `f().await?`, `f().await.len() + 1`)
//! - [x] `x = f().await`, `x += f().await`; any other expression with awaits inside
//!   (`a.await + b.await`, `f(g().await).await`, `vec![x.await, y.await]`) runs as one adapter
//!   state, natively, so in Rust's evaluation order and with its temporaries
//! - [x] `if`/`else`, `if let`, `match` (with guards) with awaits in branches, arms and
//!   conditions/scrutinees (`match rx.recv().await { … }`)
//! - [x] `loop`, `while`, `while let Some(x) = src.next().await`, `for` over an owned value
//!   or a range, labelled `break`/`continue`
//! - [x] early `return`, `?` (with `From` conversion; `Result`, `Option`, `ControlFlow`)
//! - [x] shadowing across awaits, nested blocks, closures and `async` blocks inside the body
//! - [x] free fns, methods with `self`, `&self`, `&mut self`, generics, lifetimes,
//!   where-clauses, `impl Trait` arguments and outputs, trait impls of an `async fn`
//! - [x] generators (`yields = T`)
//!
//! Everything else still compiles and behaves like the native `async fn`, in a **native
//! region**: an `async move` block (exactly rustc's own desugaring) run as one adapter state
//! that owns the live locals. That happens for a local holding a borrow of another local
//! across an await (`for x in &v { … }`, a `RefCell` guard), a macro that may hide an await
//! (`join!`, `select!`). A local moved on some paths only, or declared without a value,
//! carries its drop flag as an `Option` in the explicit machine; only one the rewrite cannot
//! reach (named inside a macro or closure, or the receiver of a method that may consume it)
//! keeps a region. The region starts at such a statement, or at an earlier one where the
//! borrow or the move begins, and ends at the first statement after which no local borrows
//! another (at most the end of the enclosing block): it hands the locals still in scope back,
//! a `return` or `?` inside leaves it as a value, and the lowering goes on explicitly after
//! it. Only when
//! no such end exists (a `break` out of it, a local moved on some paths that lives on) does
//! it run to the end of the body, or, from the first statement, become the whole body as
//! one native frame.
//! `#[structured(strict)]` turns each of these into a
//! compile error naming the local or macro and the await; building with
//! `STRUCTURED_ASYNC_REPORT=1` prints, per function, its states, adapters and fallbacks.
//!
//! ### Explanation
//!
//! For
//!
//! ```text
//! #[structured]
//! async fn f(n: u32, name: String) -> usize {
//!     let a = g(n).await;
//!     if a > 1 { log(&name).await; }
//!     name.len()
//! }
//! ```
//!
//! the macro writes (names shortened; all of it inside `f`'s body, no `unsafe`):
//!
//! ```text
//! fn f(n: u32, name: String) -> impl Future<Output = usize> {
//!     pin_project! {                      // the state: one variant per suspension point
//!         enum State<L0, L1, F1, L4, F4> {
//!             Start  { live: L0 },                  // the arguments, before the first poll
//!             Await1 { #[pin] fut: F1, live: L1 },  // waiting on g(n), holding (name,)
//!             Await4 { #[pin] fut: F4, live: L4 },  // waiting on log(&name)
//!             Done,
//!         }
//!     }
//!     enum Transition<…> { Goto2(L2), Goto3(L3), Await1(F1, L1), Await4(F4, L4), Return(R) }
//!     struct Machine<…> { #[pin] state: State<…>, blocks: (B0, B1, B3, B4, B2) }
//!     impl Future for Machine<…> where B1: FnMut(L1, F1::Output) -> Transition<…>, … {
//!         // poll: poll the future in flight; when ready, take the live locals out with
//!         // project_replace(Done) (dropping the future in place), run the next block, and
//!         // follow Goto transitions until a block stores a new Await or returns.
//!     }
//!     new(PhantomData::<usize>, (n, name),           // arguments; live tuples: newest first
//!         |(n, name)| { let __f = g(n); Transition::Await1(__f, (name,)) },   // b0
//!         |(name,), __r| { let a = __r;                                       // b1
//!             if a > 1 { Transition::Goto3((a, name)) } else { Transition::Goto2((a, name)) } },
//!         |(a, name)| {             // b3: `log(&name)` borrows `name`, so the future runs in
//!             let __f = async move {   // an adapter owning `name` and every newer local, and
//!                 let name = name; let a = a;            // handing them back with the result
//!                 let __r = log(&name).await; (__r, (a, name)) };
//!             Transition::Await4(__f, ()) },
//!         |(), (__r, (a, name))| { discard(__r); Transition::Goto2((a, name)) },  // b4
//!         |(a, name)| Transition::Return(name.len()),                             // b2
//!     )
//! }
//! ```
//!
//! Every type is inferred: each block's input tuple is the value an earlier block (in reverse
//! post-order) put in its transition. Live tuples list locals newest first, so dropping the
//! machine mid-await drops the future in flight, then the locals in reverse declaration order,
//! as a native future does; a local is carried until its scope ends, not until its last use.

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

    /// `!` under a name stable Rust accepts in any type position: the output of a
    /// `#[structured] async fn f() -> !`, which `impl Future<Output = !>` could not spell.
    pub type Never = <fn() -> ! as FnOutput>::Output;

    /// The return type of a fn pointer (only to name [`Never`]).
    pub trait FnOutput {
        /// What the fn returns.
        type Output;
    }

    impl<O> FnOutput for fn() -> O {
        type Output = O;
    }

    /// Has rustc check that an item of a lowered `for` loop is `Copy`, as `#[structured]`
    /// guessed from the iterator's shape (`v.iter()`, `&v`): the lowering lets such an item go
    /// at its last use instead of at the end of the iteration, which only `Copy` items allow.
    /// Compiles to nothing.
    #[inline(always)]
    pub const fn assert_copy_item<T: CopyItem>(_: &T) {}

    /// Implemented by every `Copy` type (only to word [`assert_copy_item`]'s error).
    #[diagnostic::on_unimplemented(
        message = "`#[structured]` guessed this `for` loop's item is a reference or `Copy` (dropped at an await, not at the end of the iteration), but `{Self}` is not `Copy`: iterate references (`.iter()` over `&T` items), or write `while let Some(x) = it.next() {{ .. }}`, which keeps the native drop order",
        label = "the lowering would drop this item at an await, not at the end of the iteration",
        note = "iterate references (`for x in v.iter()` over `&T` items), or write the loop as `let mut it = ..; while let Some(x) = it.next() {{ .. }}`, which keeps the native drop order",
        note = "or move the loop into an `async {{ .. }}.await` block, which runs natively"
    )]
    pub trait CopyItem {}

    impl<T: Copy> CopyItem for T {}
}

/// The README's code blocks, compiled and run as doctests so the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
