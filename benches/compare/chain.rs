//! Workload 3: an await chain D levels deep whose leaf pends 1,000 times. Each level is a
//! separate function (`Level<K>` awaits `Level<K - 1>`), so the compiler cannot merge the levels;
//! we poll the outermost future with a no-op waker and report ns per poll and `size_of`.

use std::future::Future;
use std::hint::black_box;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};

use crate::harness::{Contestant, Group, GroupResult, Role, Sample, measure, run_group};

/// How many times the leaf returns `Pending` before it completes.
const LEAF_PENDS: u32 = 1_000;

/// The innermost future: pends `remaining` times (waking itself), then returns 1.
#[derive(Debug)]
pub struct LeafFut {
    remaining: u32,
}

impl Future for LeafFut {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        if self.remaining == 0 {
            Poll::Ready(1)
        } else {
            self.remaining -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

/// A hand-written state machine for one level: await the level below, add one. It is eager:
/// constructing the outermost level constructs the whole chain (see [`LazyLevel`]).
pub enum HandLevel<Below: Chain> {
    Awaiting(Below::Hand),
    Done,
}

impl<Below: Chain> Future for HandLevel<Below> {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        match &mut *self {
            HandLevel::Awaiting(inner) => match Pin::new(inner).poll(cx) {
                Poll::Ready(v) => {
                    *self = HandLevel::Done;
                    Poll::Ready(v + 1)
                }
                Poll::Pending => Poll::Pending,
            },
            HandLevel::Done => panic!("HandLevel polled after completion"),
        }
    }
}

/// A hand-written state machine with the semantics of the `async fn`: nothing runs before the
/// first poll, so the level starts holding only its argument and builds the level below when
/// first polled. ([`HandLevel`] builds the whole chain eagerly, when constructed: a different
/// program, which checks only for `Done` at each level.)
pub enum LazyLevel<Below: Chain> {
    Start(u32),
    Awaiting(Below::Lazy),
    Done,
}

impl<Below: Chain> Future for LazyLevel<Below> {
    type Output = u64;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        loop {
            match &mut *self {
                LazyLevel::Start(pends) => {
                    let pends = *pends;
                    *self = LazyLevel::Awaiting(Below::lazy(pends));
                }
                LazyLevel::Awaiting(inner) => {
                    return match Pin::new(inner).poll(cx) {
                        Poll::Ready(v) => {
                            *self = LazyLevel::Done;
                            Poll::Ready(v + 1)
                        }
                        Poll::Pending => Poll::Pending,
                    };
                }
                LazyLevel::Done => panic!("LazyLevel polled after completion"),
            }
        }
    }
}

/// Level `K` of a chain; level 0 is the leaf. Levels are numbered rather than nested
/// (`Up<Up<…>>`) because rustc overflows its stack printing 1,000-deep generic types.
pub struct Level<const K: usize>;

/// A chain of levels, built several ways.
pub trait Chain {
    /// The hand-written enum for this level.
    type Hand: Future<Output = u64> + Unpin;
    /// The lazy hand-written enum for this level.
    type Lazy: Future<Output = u64> + Unpin;
    /// Native `async fn`s, one per level.
    fn native(pends: u32) -> impl Future<Output = u64>;
    /// Hand-written enums, one per level.
    fn hand(pends: u32) -> Self::Hand;
    /// Lazy hand-written enums, one per level.
    fn lazy(pends: u32) -> Self::Lazy;
    /// `#[structured] async fn`s, one per level.
    fn structured(pends: u32) -> impl Future<Output = u64>;
}

impl Chain for Level<0> {
    type Hand = LeafFut;
    type Lazy = LeafFut;

    fn native(pends: u32) -> impl Future<Output = u64> {
        LeafFut { remaining: pends }
    }

    fn hand(pends: u32) -> LeafFut {
        LeafFut { remaining: pends }
    }

    fn lazy(pends: u32) -> LeafFut {
        LeafFut { remaining: pends }
    }

    fn structured(pends: u32) -> impl Future<Output = u64> {
        LeafFut { remaining: pends }
    }
}

async fn native_level<Below: Chain>(pends: u32) -> u64 {
    Below::native(pends).await + 1
}

#[structured_async::structured]
async fn structured_level<Below: Chain>(pends: u32) -> u64 {
    Below::structured(pends).await + 1
}

pin_project_lite::pin_project! {
    /// Every 100th level sits behind a call that is never inlined, in every variant alike.
    /// Without it LLVM inlines all 1,000 levels into one function per variant, which takes
    /// tens of CPU minutes to compile; with it, depth 1,000 polls through ten extra calls.
    pub struct Boundary<F> {
        #[pin]
        inner: F,
    }
}

impl<F: Future<Output = u64>> Future for Boundary<F> {
    type Output = u64;

    #[inline(never)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        self.project().inner.poll(cx)
    }
}

/// `Level<{n + 1}>` awaits `Level<{n}>`; `boundary` wraps it in a [`Boundary`].
macro_rules! level {
    ($n:expr) => {
        impl Chain for Level<{ $n + 1 }> {
            type Hand = HandLevel<Level<{ $n }>>;
            type Lazy = LazyLevel<Level<{ $n }>>;

            fn native(pends: u32) -> impl Future<Output = u64> {
                native_level::<Level<{ $n }>>(pends)
            }

            fn hand(pends: u32) -> Self::Hand {
                HandLevel::Awaiting(<Level<{ $n }>>::hand(pends))
            }

            fn lazy(pends: u32) -> Self::Lazy {
                LazyLevel::Start(pends)
            }

            fn structured(pends: u32) -> impl Future<Output = u64> {
                structured_level::<Level<{ $n }>>(pends)
            }
        }
    };
    (boundary $n:expr) => {
        impl Chain for Level<{ $n + 1 }> {
            type Hand = Boundary<HandLevel<Level<{ $n }>>>;
            type Lazy = Boundary<LazyLevel<Level<{ $n }>>>;

            fn native(pends: u32) -> impl Future<Output = u64> {
                Boundary {
                    inner: native_level::<Level<{ $n }>>(pends),
                }
            }

            fn hand(pends: u32) -> Self::Hand {
                Boundary {
                    inner: HandLevel::Awaiting(<Level<{ $n }>>::hand(pends)),
                }
            }

            fn lazy(pends: u32) -> Self::Lazy {
                Boundary {
                    inner: LazyLevel::Start(pends),
                }
            }

            fn structured(pends: u32) -> impl Future<Output = u64> {
                Boundary {
                    inner: structured_level::<Level<{ $n }>>(pends),
                }
            }
        }
    };
}

macro_rules! ten_levels {
    ($n:expr) => {
        level!($n);
        level!($n + 1);
        level!($n + 2);
        level!($n + 3);
        level!($n + 4);
        level!($n + 5);
        level!($n + 6);
        level!($n + 7);
        level!($n + 8);
        level!($n + 9);
    };
}

/// Levels `n + 1 ..= n + 100`, the last one a boundary.
macro_rules! hundred_levels {
    ($n:expr) => {
        ten_levels!($n);
        ten_levels!($n + 10);
        ten_levels!($n + 20);
        ten_levels!($n + 30);
        ten_levels!($n + 40);
        ten_levels!($n + 50);
        ten_levels!($n + 60);
        ten_levels!($n + 70);
        ten_levels!($n + 80);
        level!($n + 90);
        level!($n + 91);
        level!($n + 92);
        level!($n + 93);
        level!($n + 94);
        level!($n + 95);
        level!($n + 96);
        level!($n + 97);
        level!($n + 98);
        level!(boundary $n + 99);
    };
}

hundred_levels!(0);
hundred_levels!(100);
hundred_levels!(200);
hundred_levels!(300);
hundred_levels!(400);
hundred_levels!(500);
hundred_levels!(600);
hundred_levels!(700);
hundred_levels!(800);
hundred_levels!(900);

fn size_of_future<F>(_: &F) -> usize {
    size_of::<F>()
}

/// Builds `iterations` chains with `make` and polls each to completion; returns ns per poll of
/// the outermost future and its size.
fn drive<F: Future<Output = u64>>(depth: u64, iterations: u64, make: impl Fn() -> F) -> Sample {
    let size = size_of_future(&make());
    let polls = iterations * (u64::from(LEAF_PENDS) + 1);
    let (_, sample) = measure(polls, || {
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..iterations {
            let mut fut = pin!(make());
            let v = loop {
                // The opaque pointer stops LLVM from folding the whole chain into a constant.
                if let Poll::Ready(v) = black_box(fut.as_mut()).poll(&mut cx) {
                    break v;
                }
            };
            assert_eq!(v, depth + 1);
            black_box(v);
        }
    });
    sample.with("size_of (bytes)", size as f64)
}

fn iterations(depth: u64, quick: bool) -> u64 {
    (if quick { 10_000 } else { 40_000 }) / depth
}

fn group<T: Chain + 'static>(depth: u64, quick: bool) -> Group {
    let iterations = iterations(depth, quick);
    Group {
        workload: "await chain",
        case: format!("depth {depth}"),
        unit: "poll",
        contestants: vec![
            Contestant::new("#[structured] async fn", Role::Ours, move || {
                drive(depth, iterations, || T::structured(black_box(LEAF_PENDS)))
            }),
            Contestant::new("native async fn", Role::Peer, move || {
                drive(depth, iterations, || T::native(black_box(LEAF_PENDS)))
            }),
            Contestant::new("hand-written enum", Role::Peer, move || {
                drive(depth, iterations, || T::hand(black_box(LEAF_PENDS)))
            }),
            Contestant::new(
                "hand-written enum, lazy (Start state)",
                Role::Peer,
                move || drive(depth, iterations, || T::lazy(black_box(LEAF_PENDS))),
            ),
        ],
    }
}

/// Runs this workload.
pub fn run(quick: bool, rounds: usize) -> Vec<GroupResult> {
    vec![
        run_group(group::<Level<10>>(10, quick), rounds),
        run_group(group::<Level<100>>(100, quick), rounds),
        run_group(group::<Level<1000>>(1000, quick), rounds),
    ]
}
