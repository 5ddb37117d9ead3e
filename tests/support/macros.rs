//! `differential!`: one body written once, compiled as `#[structured]` and as a native `async fn`.
//!
//! ```text
//! differential! {
//!     name_of_test,
//!     entry: f(Noisy::new("arg"), 3),       // evaluated in each module, so `f` is that module's
//!     struct Shared;                        // items without a marker are copied to both
//!     #[lowered] async fn f(a: Noisy, n: u32) -> u32 { … }
//!     impl Shared { #[lowered] async fn m(&self) -> u32 { … } }
//! }
//! ```
//! expands to `mod name_of_test { mod lowered {…} mod native {…} #[test] fn differential() }`,
//! where `#[lowered]` becomes `#[structured_async::structured]` in `lowered` and disappears in
//! `native`.

/// Copies items, turning each `#[lowered]` marker into the real attribute (`lowered` mode) or
/// dropping it (`native` mode), also on methods inside `impl` blocks.
macro_rules! lowering_items {
    ($mode:ident) => {};
    (lowered #[lowered] $($rest:tt)*) => {
        $crate::support::macros::lowering_items!(
            @fn lowered [#[structured_async::structured]] $($rest)*
        );
    };
    (native #[lowered] $($rest:tt)*) => {
        $crate::support::macros::lowering_items!(@fn native [] $($rest)*);
    };
    // A marked fn: its tokens up to the first brace group (the body) are the signature.
    (@fn $mode:ident [$($sig:tt)*] { $($body:tt)* } $($rest:tt)*) => {
        $($sig)* { $($body)* }
        $crate::support::macros::lowering_items!($mode $($rest)*);
    };
    (@fn $mode:ident [$($sig:tt)*] $next:tt $($rest:tt)*) => {
        $crate::support::macros::lowering_items!(@fn $mode [$($sig)* $next] $($rest)*);
    };
    // An impl block: its header runs up to the first brace group, whose items are copied in turn.
    ($mode:ident impl $($rest:tt)*) => {
        $crate::support::macros::lowering_items!(@impl $mode [impl] $($rest)*);
    };
    (@impl $mode:ident [$($head:tt)*] { $($items:tt)* } $($rest:tt)*) => {
        $($head)* { $crate::support::macros::lowering_items!($mode $($items)*); }
        $crate::support::macros::lowering_items!($mode $($rest)*);
    };
    (@impl $mode:ident [$($head:tt)*] $next:tt $($rest:tt)*) => {
        $crate::support::macros::lowering_items!(@impl $mode [$($head)* $next] $($rest)*);
    };
    ($mode:ident $item:item $($rest:tt)*) => {
        $item
        $crate::support::macros::lowering_items!($mode $($rest)*);
    };
}

/// Compiles the items twice and adds a `#[test]` that checks both agree on every run of
/// [`default_plans`](super::default_plans), to completion and cancelled after every poll count.
macro_rules! differential {
    ($name:ident, entry: $entry:expr, $($items:tt)*) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            mod lowered {
                #[allow(unused_imports)]
                use super::*;
                $crate::support::macros::lowering_items!(lowered $($items)*);
                pub(super) fn entry() -> impl ::core::future::Future<Output = impl ::core::fmt::Debug> {
                    $entry
                }
            }

            mod native {
                #[allow(unused_imports)]
                use super::*;
                $crate::support::macros::lowering_items!(native $($items)*);
                pub(super) fn entry() -> impl ::core::future::Future<Output = impl ::core::fmt::Debug> {
                    $entry
                }
            }

            #[test]
            fn differential() {
                $crate::support::check(lowered::entry, native::entry);
            }
        }
    };
}

pub(crate) use differential;

/// A generator compiled twice: explicitly, and as the native frame the lowering falls back to
/// (forced by an `impl Trait` yield type, which the explicit machine cannot name); both are
/// drained by [`Drain`](super::Drain) and compared like [`differential!`] bodies.
///
/// ```text
/// generator_differential! {
///     name_of_test, yields: u32, entry: g(3),
///     async fn g(n: u32) -> usize { … yield_!(v); … }
///     // further items are copied to both modules
/// }
/// ```
macro_rules! generator_differential {
    (
        $name:ident, yields: $y:ty, entry: $entry:expr,
        async fn $f:ident ($($params:tt)*) $(-> $ret:ty)? $body:block
        $($items:item)*
    ) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            mod lowered {
                #[allow(unused_imports)]
                use super::*;
                $($items)*
                #[structured_async::structured(yields = $y)]
                pub(super) async fn $f($($params)*) $(-> $ret)? $body
                pub(super) fn entry() -> impl ::core::future::Future<Output = impl ::core::fmt::Debug> {
                    $crate::support::Drain::new($entry)
                }
            }

            mod native {
                #[allow(unused_imports)]
                use super::*;
                $($items)*
                #[structured_async::structured(yields = impl ::core::fmt::Debug)]
                pub(super) async fn $f($($params)*) $(-> $ret)? $body
                pub(super) fn entry() -> impl ::core::future::Future<Output = impl ::core::fmt::Debug> {
                    $crate::support::Drain::new($entry)
                }
            }

            #[test]
            fn differential() {
                $crate::support::check(lowered::entry, native::entry);
            }
        }
    };
}

pub(crate) use generator_differential;
pub(crate) use lowering_items;

/// One generated program (see `tests/gen/random_programs.py`): `async fn body(input: u64, arg:
/// Noisy)` compiled twice, checked by [`check_inputs`](super::check_inputs) with the case's seed.
macro_rules! random_case {
    ($name:ident, $seed:expr, async fn $f:ident $($rest:tt)*) => {
        mod $name {
            use super::*;

            mod lowered {
                use super::*;
                #[structured_async::structured]
                pub(super) async fn $f $($rest)*
            }

            mod native {
                use super::*;
                pub(super) async fn $f $($rest)*
            }

            #[test]
            fn differential() {
                $crate::support::check_inputs(
                    |input| lowered::$f(input, Noisy::new("arg")),
                    |input| native::$f(input, Noisy::new("arg")),
                    $seed,
                );
            }
        }
    };
}

pub(crate) use random_case;
