//! Nurseries: scoped spawning whose children borrow from the parent and can never outlive it.
//!
//! A nursery is one future. Its children live inside it, not in the executor, so leaking the
//! nursery leaks its children with it: they are never polled again, and nothing they borrow
//! can dangle. That is what lets children borrow the caller's data with no `'static`.
//!
//! How it is built:
//! - **Storage** (`arena`): a child is written into a slot of a size class (four classes
//!   per doubling), carved from chunks that double in size and never move, and recycled
//!   through a free list threaded through free slots. Children of any type share it; nothing
//!   is boxed. A finished nursery's memory goes to a per-thread pool (`pool`) that later
//!   nurseries take from, so a warm thread runs nurseries, even a tree of them alive at once,
//!   without allocating.
//! - **Wakers** (`wake`): each slot has a 32-byte wake node (a link, the slot's bookkeeping, and
//!   the node's index with its queued flag in one word) in chunks that never move. A child's waker
//!   points at its node; waking pushes the node on the nursery's ready stack (a lock-free stack,
//!   one swap to take it all), or, for a wake on the polling thread while no other thread can wake
//!   (no waker cloned, or a `Local` tree inside its poll), appends it to a plain list, so a wake
//!   polls that child and no other. A child that wakes itself only sets a flag in a thread-local
//!   record of the child being polled. Cloning a waker counts one reference on the nursery's wake
//!   hub, which outlives the nursery while any waker does.
//! - **Batches** (`batch`): in a [`Local`] tree, the second and later children of one type
//!   spawned one after another (a spawn loop's) are written as records into a block from the
//!   arena (a burst's blocks double, up to 16 KiB), with one node on the run queue for the whole
//!   block, polled by one loop made for that type with the waker of one spare node. A child that
//!   finishes in its first poll, or only wakes itself while no waker of the nursery is held
//!   anywhere, never gets a wake node; one that pends with its waker possibly held elsewhere, or
//!   whose handle is awaited before its first poll, gets one then. Poll order, cancel order,
//!   handles and wakes are as for children with nodes of their own.
//! - **Turns** (`driver`): one poll of the nursery polls the children woken before it began,
//!   children spawned during it and children their siblings wake during it, at most 128,
//!   then returns `Pending` after waking itself if more are ready. Children that woke
//!   themselves (yielded) in that first lap are polled once more in a second lap, so a
//!   nursery of children that pend once finishes in one turn while its memory is in cache;
//!   a child that wakes itself in the second lap waits for the next turn, so whoever polls
//!   the nursery gets its turn after at most two polls of a child that keeps yielding. A
//!   nursery polled in its parent's second lap runs its whole turn as a second lap, so
//!   nesting does not multiply the polls a yield gets (`d + 1` at depth `d`). Under tokio,
//!   whose coop budget makes resources return `Pending` and wake at once when spent, the
//!   budget and the two laps keep many children in one task linear. Children of one type
//!   queued one after another (a spawn loop's) are polled by one loop made for that type
//!   (`VTable::run`), with the child's poll, output and drop inlined, in the same order and
//!   with the same bookkeeping as one by one.
//! - **Threads** ([`TreeKind`]): `nursery!(|n| ...)` is a [`Local`] tree, polled by one thread,
//!   whose children need not be `Send`; `nursery!(send |n| ...)` is a [`Shared`] tree, a `Send`
//!   future for multi-threaded runtimes, whose children must be `Send`.
//! - **Lifetimes** ([`Scope`]): the body gets `&'scope Scope<'scope, 'env, R>` with `'scope`
//!   invariant and chosen per run, as in [`std::thread::scope`], so `n` and handles cannot
//!   leave the body, while children may borrow anything that outlives `'env`.
//!
//! ```
//! use structured_async::{block_on, nursery};
//!
//! let mut data = vec![1u64; 1000];
//! let total: u64 = block_on(nursery!(|n| {
//!     // Children borrow disjoint chunks of `data` mutably: no `Arc`, no `'static`.
//!     for chunk in data.chunks_mut(100) {
//!         n.spawn(async move { chunk.iter_mut().for_each(|x| *x *= 2) });
//!     }
//!     0
//! }));
//! assert_eq!(total, 0);
//! assert_eq!(data.iter().sum::<u64>(), 2000);
//! ```

mod arena;
mod batch;
mod children;
mod driver;
mod kind;
mod outcome;
mod pool;
mod scope;
mod slot;
mod wake;

use core::future::Future;
use core::pin::{Pin, pin};

pub use kind::{Admits, Local, LocalTree, Shared, TreeKind};
pub use outcome::{ChildOutput, NeverFails};
pub use scope::{ChildHandle, Scope};

/// Runs `body` with a [`Scope`], then every child it spawned, and resolves once all are done.
///
/// This is what [`nursery!`](crate::nursery!) expands to; `body` is an async closure, so it
/// may borrow the caller's locals and hand them on to children.
///
/// - Resolves to the body's output after the body and every child finished.
/// - In a nursery whose body returns `Result<_, E>`, the first `Err` from the body or a child
///   cancels (drops) everything else and becomes the output (see [`ChildOutput`]).
/// - A panicking child cancels everything else; the panic resumes here.
/// - Dropping the returned future drops every child before the drop returns.
/// - Cancel order: dropping the nursery drops its children and the outputs their handles
///   have not taken, by slot (spawn order, except that a child may take the slot of one that
///   finished), then the body; ending early (an `Err`, a panic) drops the body first, then
///   the children in the same order.
/// - A destructor that panics there does not stop the rest: as when dropping a `Vec`,
///   everything else is still dropped, then one panic comes out, never two at once. A
///   panicking child's panic wins over the destructor panics its cancel causes; a destructor's
///   panic wins over an `Err` (and over a grace period's end), and the first destructor's
///   panic resumes from the drop of the nursery, unless the thread is unwinding already
///   (then it is dropped). The others are reported by the panic hook only.
///
/// ```
/// use structured_async::block_on;
/// use structured_async::nursery::nursery;
///
/// let name = String::from("child");
/// let len = block_on(nursery(async |n| n.spawn(async { name.len() }).await));
/// assert_eq!(len, 5);
/// ```
pub async fn nursery<'env, F, R>(body: F) -> R
where
    F: for<'scope> AsyncFnOnce(&'scope Scope<'scope, 'env, R>) -> R + 'env,
    R: ChildOutput<R> + 'env,
{
    let scope = Scope::new();
    let body = pin!(Some(body(&scope)));
    driver::Driver::new(&scope, body).await
}

/// Like [`nursery()`], for a tree that is itself `Send`: a multi-threaded runtime may move the
/// nursery (with all its children) between threads between polls, so every child and output
/// must be `Send`. The scope and handles may be used only by the thread polling the nursery
/// (they panic otherwise). `nursery!(send |n| BODY)` expands to it, boxing the body once.
///
/// ```
/// use structured_async::{block_on, nursery, yield_now};
///
/// let data = vec![1u64, 2, 3];
/// // A `Send + 'static` future: built here, run on another thread.
/// let fut = nursery!(send move |n| {
///     let hs: Vec<_> = data
///         .into_iter()
///         .map(|x| n.spawn(async move { yield_now().await; x * 10 }))
///         .collect();
///     let mut total = 0;
///     for h in hs {
///         total += h.await;
///     }
///     total
/// });
/// let total = std::thread::spawn(move || block_on(fut)).join().unwrap();
/// assert_eq!(total, 60);
/// ```
pub async fn nursery_send<'env, F, R>(body: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env, R, Shared>) -> SendBody<'scope, R> + 'env,
    R: ChildOutput<R> + 'env,
{
    let scope = Scope::new();
    let body = pin!(Some(body(&scope)));
    driver::Driver::new(&scope, body).await
}

/// Moves one value into an async block that otherwise borrows (used by `nursery!(send ...)`).
#[doc(hidden)]
pub struct ByValue<T>(pub T);

impl<T> ByValue<T> {
    /// The value; taking `self` makes an async block capture the whole wrapper by move.
    #[doc(hidden)]
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// The body of a `send` nursery: boxed once per nursery, so that the body's `Send`-ness is
/// checked where it is written (rustc cannot yet prove it through an async closure).
pub type SendBody<'scope, R> = Pin<Box<dyn Future<Output = R> + Send + 'scope>>;

/// `nursery!(|n| BODY)`: a future that runs the async `BODY` with the nursery's [`Scope`] `n`,
/// and every child spawned with `n.spawn(future)`, resolving once all of them are done.
///
/// Children may borrow anything that outlives the nursery (no `'static`, no `Send`). `n` and
/// the [`ChildHandle`]s it returns cannot leave the body. `nursery!(move |n| BODY)` moves the
/// captured variables into the nursery instead of borrowing them.
///
/// ```
/// use structured_async::{block_on, nursery};
///
/// let pages = ["a", "bb", "ccc"];
/// let sizes: Result<usize, String> = block_on(nursery!(|n| {
///     let handles: Vec<_> = pages.iter().map(|p| n.spawn(async move { Ok(p.len()) })).collect();
///     let mut total = 0;
///     for h in handles {
///         total += h.await?;
///     }
///     Ok(total)
/// }));
/// assert_eq!(sizes, Ok(6));
/// ```
#[macro_export]
macro_rules! nursery {
    (|$n:pat_param| $body:expr) => {
        $crate::nursery::nursery(async |$n| $body)
    };
    (move |$n:pat_param| $body:expr) => {
        $crate::nursery::nursery(async move |$n| $body)
    };
    // The body borrows the caller's variables like the closure form does: only the scope is
    // moved into the async block (a non-`Copy` wrapper makes it move alone).
    (send |$n:pat_param| $body:expr) => {
        $crate::nursery::nursery_send(|scope| {
            let scope = $crate::nursery::ByValue(scope);
            ::std::boxed::Box::pin(async {
                let $n = scope.into_inner();
                $body
            })
        })
    };
    (send move |$n:pat_param| $body:expr) => {
        $crate::nursery::nursery_send(move |scope| {
            ::std::boxed::Box::pin(async move {
                let $n = scope;
                $body
            })
        })
    };
    ($($other:tt)*) => {
        ::core::compile_error!(
            "expected a closure: `nursery!(|n| body)`, `nursery!(move |n| body)` or `nursery!(send |n| body)`, where `body` spawns children with `n.spawn(future)`"
        )
    };
}
