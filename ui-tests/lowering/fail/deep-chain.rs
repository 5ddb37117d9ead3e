// Known limit (README): each machine's type holds the machine it awaits, and rustc spends
// about three recursion-limit steps per level of this shape (a generic fn awaiting a trait
// method's `impl Future`). The same 44 native levels compile; these overflow the default 128.
use std::future::Future;

pub struct Level<const K: usize>;

pub trait Chain {
    fn run(x: u64) -> impl Future<Output = u64>;
}

impl Chain for Level<0> {
    fn run(x: u64) -> impl Future<Output = u64> {
        std::future::ready(x)
    }
}

#[structured_async::structured]
async fn level<B: Chain>(x: u64) -> u64 {
    B::run(x).await + 1
}

macro_rules! levels {
    ($($k:literal on $below:literal),*) => {
        $(impl Chain for Level<$k> {
            fn run(x: u64) -> impl Future<Output = u64> {
                level::<Level<$below>>(x)
            }
        })*
    };
}

levels!(1 on 0, 2 on 1, 3 on 2, 4 on 3, 5 on 4, 6 on 5, 7 on 6, 8 on 7, 9 on 8, 10 on 9,
    11 on 10, 12 on 11, 13 on 12, 14 on 13, 15 on 14, 16 on 15, 17 on 16, 18 on 17, 19 on 18,
    20 on 19, 21 on 20, 22 on 21, 23 on 22, 24 on 23, 25 on 24, 26 on 25, 27 on 26, 28 on 27,
    29 on 28, 30 on 29, 31 on 30, 32 on 31, 33 on 32, 34 on 33, 35 on 34, 36 on 35, 37 on 36,
    38 on 37, 39 on 38, 40 on 39, 41 on 40, 42 on 41, 43 on 42, 44 on 43);

fn main() {
    let v = structured_async::block_on(<Level<44> as Chain>::run(1));
    assert_eq!(v, 45);
}
