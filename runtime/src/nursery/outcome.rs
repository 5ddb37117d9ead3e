//! Which outputs end a nursery early: in a nursery whose body returns `Result<_, E>`, the first
//! `Err(E)` from the body or a child cancels everything else and becomes the nursery's output.
//! Any other body accepts children of any output type and never ends early.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How a finished child (or the body) of a nursery whose body returns `R` settles: `Ok` with
/// the value its handle yields, or `Err` with the nursery's output, cancelling the rest.
///
/// - Body `Result<U, E>`: children return `()` or `Result<T, E>`; an `Err` ends the nursery.
/// - Body of a [`NeverFails`] type (`()`, numbers, `String`, collections, … and types that
///   implement it): children return anything.
///
/// ```
/// use structured_async::nursery::ChildOutput;
///
/// assert_eq!(<Result<u8, &str> as ChildOutput<Result<(), &str>>>::settle(Err("no")), Err(Err("no")));
/// assert_eq!(<Result<u8, &str> as ChildOutput<Result<(), &str>>>::settle(Ok(1)), Ok(Ok(1)));
/// assert_eq!(<Result<u8, &str> as ChildOutput<()>>::settle(Err("kept")), Ok(Err("kept")));
/// ```
#[diagnostic::on_unimplemented(
    message = "a child returning `{Self}` cannot run in a nursery whose body returns `{R}`",
    label = "this child's output",
    note = "in a nursery whose body returns `Result<_, E>`, children return `()` or `Result<_, E>`, and the first `Err` cancels the rest",
    note = "for a body of a type of your own, implement `structured_async::nursery::NeverFails` for it"
)]
pub trait ChildOutput<R>: Sized {
    /// `Ok(self)` to hand to the child's handle, or `Err(output)` to end the nursery with.
    fn settle(self) -> Result<Self, R>;
}

impl<T, U, E> ChildOutput<Result<U, E>> for Result<T, E> {
    #[inline]
    fn settle(self) -> Result<Self, Result<U, E>> {
        match self {
            Err(e) => Err(Err(e)),
            ok => Ok(ok),
        }
    }
}

impl<U, E> ChildOutput<Result<U, E>> for () {
    #[inline]
    fn settle(self) -> Result<(), Result<U, E>> {
        Ok(())
    }
}

/// Names the never type `!` on stable Rust, so a body that never finishes (a server's accept
/// loop) can spawn children: `fn() -> !` is a type whose output is `!`.
pub trait FnOutput {
    /// The function type's return type.
    type Output;
}

impl<T> FnOutput for fn() -> T {
    type Output = T;
}

/// The type of a body that never finishes.
type Never = <fn() -> ! as FnOutput>::Output;

/// A body type that never ends a nursery early, so the nursery's children may return
/// anything. Implemented for `()`, `!`, numbers, `bool`, `char`, `String`, `Duration`,
/// `Option`, `Vec`, `VecDeque`, maps, sets, tuples, arrays, references and smart pointers;
/// implement it for a type of your own to return that type from a nursery body.
///
/// ```
/// use structured_async::nursery::NeverFails;
/// use structured_async::{block_on, nursery};
///
/// struct Report { pages: usize }
/// impl NeverFails for Report {}
///
/// let report = block_on(nursery!(|n| {
///     let pages = n.spawn(async { 3 }).await;
///     Report { pages }
/// }));
/// assert_eq!(report.pages, 3);
/// ```
pub trait NeverFails {}

impl<O, R: NeverFails> ChildOutput<R> for O {
    #[inline]
    fn settle(self) -> Result<O, R> {
        Ok(self)
    }
}

// `!` cannot implement `NeverFails` (downstream impls would then conflict with the unnormalized
// projection), so it gets its own impl.
impl<O> ChildOutput<Never> for O {
    #[inline]
    fn settle(self) -> Result<O, Never> {
        Ok(self)
    }
}

macro_rules! never_fails {
    ($([$($gen:tt)*] $body:ty;)*) => {$(
        impl<$($gen)*> NeverFails for $body {}
    )*};
}

never_fails! {
    [] ();
    [] bool; [] char; [] String; [] Duration;
    [] u8; [] u16; [] u32; [] u64; [] u128; [] usize;
    [] i8; [] i16; [] i32; [] i64; [] i128; [] isize;
    [] f32; [] f64;
    [V] Option<V>; [V] Vec<V>; [V] VecDeque<V>; [V: ?Sized] Box<V>; [V: ?Sized] Rc<V>;
    [V: ?Sized] Arc<V>; ['a, V: ?Sized] &'a V; ['a, V: ?Sized] &'a mut V;
    [K, V, S] HashMap<K, V, S>; [K, V] BTreeMap<K, V>; [V, S] HashSet<V, S>;
    [A, B] (A, B); [A, B, C] (A, B, C); [A, B, C, D] (A, B, C, D);
    [V, const N: usize] [V; N];
}
