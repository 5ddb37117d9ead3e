//! Deep chains of `#[structured]` fns compile with the default recursion limit, like the same
//! chain of native `async fn`s (issue #3).
//!
//! Each level is a generic `#[structured]` fn reached through a trait method returning
//! `impl Future`, the shape of the await-chain bench: `Level<K>` awaits `Level<K - 1>`.
//! Optimised builds ask rustc whether every machine is `Unpin` (for `noalias` on its
//! `Pin<&mut _>` arguments); when that answer walked every machine below, a chain of ~25
//! levels failed with E0275. This file asks the same question in a debug build
//! (`chain_of_36_levels_is_not_unpin`), so a plain `cargo test` fails to compile if the answer
//! grows with the depth again, and runs a shorter chain to check it adds one per level.
//!
//! A chain of 100 distinct `#[structured]` free fns is built and polled too: its compile time
//! was exponential in the depth while each machine named its awaited future more than once,
//! and it needs each level to cost one step of the default recursion limit.

use std::cell::Cell;
use std::future::Future;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use structured_async::structured;

thread_local! {
    static LEAF_POLLS: Cell<u32> = const { Cell::new(0) };
}

/// Pends `remaining` times (waking itself), then returns 1; counts its polls.
struct Leaf {
    remaining: u32,
}

impl Future for Leaf {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        LEAF_POLLS.with(|p| p.set(p.get() + 1));
        if self.remaining == 0 {
            Poll::Ready(1)
        } else {
            self.remaining -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// Level `K` of the chain; level 0 is the leaf.
struct Level<const K: usize>;

trait Chain {
    fn run(pends: u32) -> impl Future<Output = u64>;
}

impl Chain for Level<0> {
    fn run(pends: u32) -> impl Future<Output = u64> {
        Leaf { remaining: pends }
    }
}

#[structured]
async fn level<Below: Chain>(pends: u32) -> u64 {
    Below::run(pends).await + 1
}

/// `Level<{k + 1}>` awaits `Level<{k}>`, for each `k`.
macro_rules! levels {
    ($($k:literal)*) => {$(
        impl Chain for Level<{ $k + 1 }> {
            fn run(pends: u32) -> impl Future<Output = u64> {
                level::<Level<{ $k }>>(pends)
            }
        }
    )*};
}

levels!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35);

/// Implemented for `()` always and for `IfUnpin` only when `Self: Unpin`: inferring the
/// parameter of a call to `check` is ambiguous (a compile error) for an `Unpin` type, and to
/// settle it rustc must decide `Self: Unpin`.
trait NotUnpin<A> {
    fn check(&self) {}
}

impl<T: ?Sized> NotUnpin<()> for T {}

struct IfUnpin;

impl<T: ?Sized + Unpin> NotUnpin<IfUnpin> for T {}

/// Never called: type-checking it is the test. Deciding `NotUnpin` for the 36-level future
/// makes rustc decide whether it is `Unpin` (through each `impl Future`, as auto traits leak),
/// which failed with E0275 (overflow) while that answer walked the whole chain. Nothing here is
/// compiled to machine code, so the debug build does not spell out the chain's type for
/// debuginfo (a name that grows exponentially with the depth).
#[allow(dead_code)]
fn chain_of_36_levels_is_not_unpin() {
    <Level<36> as Chain>::run(0).check();
}

/// Polls `fut` to completion with a no-op waker: its output, how many times it was pending,
/// and how many times the leaf was polled.
fn run_counting(fut: impl Future<Output = u64>) -> (u64, u32, u32) {
    LEAF_POLLS.with(|p| p.set(0));
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    let mut pendings = 0;
    let out = loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => break v,
            Poll::Pending => pendings += 1,
        }
    };
    (out, pendings, LEAF_POLLS.with(Cell::get))
}

#[test]
fn a_chain_adds_one_per_level_and_polls_the_leaf_once_per_wake() {
    let (out, pendings, leaf_polls) = run_counting(<Level<8> as Chain>::run(3));
    assert_eq!(out, 1 + 8);
    assert_eq!(pendings, 3, "each pend of the leaf reaches the top once");
    assert_eq!(leaf_polls, 4, "no level polls the leaf twice");
}

/// The bottom of the free-fn chain: the counting leaf.
fn free0(pends: u32) -> Leaf {
    Leaf { remaining: pends }
}

/// `$name` is a `#[structured]` free fn awaiting `$below` and adding one.
macro_rules! free_levels {
    ($($name:ident awaits $below:ident;)*) => {$(
        #[structured]
        async fn $name(pends: u32) -> u64 {
            $below(pends).await + 1
        }
    )*};
}

// A chain of 100 distinct free fns. Each machine once named its awaited future (the machine
// below) in several of its type arguments, and rustc spelled out each nested opaque type once
// per mention: compile time grew about x2.8 per level (18 levels took 80 s in release), so
// such a chain did not build in any reasonable time. Its depth also checks that rustc proves
// a machine's bounds one level per step of its recursion limit (128): with two steps per level
// (a bound on the awaited future that rustc proves through a second impl), 64 levels fail.
free_levels!(
    free1 awaits free0; free2 awaits free1; free3 awaits free2; free4 awaits free3;
    free5 awaits free4; free6 awaits free5; free7 awaits free6; free8 awaits free7;
    free9 awaits free8; free10 awaits free9; free11 awaits free10; free12 awaits free11;
    free13 awaits free12; free14 awaits free13; free15 awaits free14; free16 awaits free15;
    free17 awaits free16; free18 awaits free17; free19 awaits free18; free20 awaits free19;
    free21 awaits free20; free22 awaits free21; free23 awaits free22; free24 awaits free23;
    free25 awaits free24; free26 awaits free25; free27 awaits free26; free28 awaits free27;
    free29 awaits free28; free30 awaits free29; free31 awaits free30; free32 awaits free31;
    free33 awaits free32; free34 awaits free33; free35 awaits free34; free36 awaits free35;
    free37 awaits free36; free38 awaits free37; free39 awaits free38; free40 awaits free39;
    free41 awaits free40; free42 awaits free41; free43 awaits free42; free44 awaits free43;
    free45 awaits free44; free46 awaits free45; free47 awaits free46; free48 awaits free47;
    free49 awaits free48; free50 awaits free49; free51 awaits free50; free52 awaits free51;
    free53 awaits free52; free54 awaits free53; free55 awaits free54; free56 awaits free55;
    free57 awaits free56; free58 awaits free57; free59 awaits free58; free60 awaits free59;
    free61 awaits free60; free62 awaits free61; free63 awaits free62; free64 awaits free63;
    free65 awaits free64; free66 awaits free65; free67 awaits free66; free68 awaits free67;
    free69 awaits free68; free70 awaits free69; free71 awaits free70; free72 awaits free71;
    free73 awaits free72; free74 awaits free73; free75 awaits free74; free76 awaits free75;
    free77 awaits free76; free78 awaits free77; free79 awaits free78; free80 awaits free79;
    free81 awaits free80; free82 awaits free81; free83 awaits free82; free84 awaits free83;
    free85 awaits free84; free86 awaits free85; free87 awaits free86; free88 awaits free87;
    free89 awaits free88; free90 awaits free89; free91 awaits free90; free92 awaits free91;
    free93 awaits free92; free94 awaits free93; free95 awaits free94; free96 awaits free95;
    free97 awaits free96; free98 awaits free97; free99 awaits free98; free100 awaits free99;
);

#[test]
fn a_chain_of_100_free_fns_builds_and_adds_one_per_level() {
    let (out, pendings, leaf_polls) = run_counting(free100(2));
    assert_eq!(out, 1 + 100);
    assert_eq!(pendings, 2, "each pend of the leaf reaches the top once");
    assert_eq!(leaf_polls, 3, "no level polls the leaf twice");
}

#[test]
fn a_level_alone_is_not_unpin_like_a_native_async_fn() {
    async fn native() -> u64 {
        std::future::ready(1).await
    }
    native().check();
    level::<Level<0>>(0).check();
}
