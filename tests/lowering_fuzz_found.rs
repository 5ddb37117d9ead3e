//! Differential tests of the bodies the macros crate's fuzz test (macros/src/fuzz) found
//! lowered into code that did not compile where the native `async fn` does. Each is compiled
//! as `#[structured]` and as a native `async fn` and both must agree (see `support/macros.rs`).

mod support;

use support::macros::differential;
#[allow(unused_imports)]
use support::{Noisy, ev, pass, show, tick, tick_named};

// `let … else` whose awaited initialiser goes on: the value ended in `}` before `else`.
differential! {
    let_else_after_an_await_with_a_method,
    entry: let_else(vec![1, 2, 5]),
    #[lowered]
    async fn let_else(v: Vec<u32>) -> u32 {
        let mut sum = 0;
        for x in v {
            let Some(w) = tick(x).await.checked_sub(2) else { continue; };
            sum += w;
        }
        sum
    }
}

// The same with a `?` inside the awaited call (a `match` before the `else`).
differential! {
    let_else_with_try_inside_the_awaited_call,
    entry: let_else_try(vec![1, 2, 5]),
    #[lowered]
    async fn let_else_try(v: Vec<u32>) -> Option<u32> {
        let mut sum = 0;
        for x in v {
            let Some(w) = tick(x.checked_sub(tick(Some(1)).await?)).await else { continue; };
            sum += w;
        }
        Some(sum)
    }
}

// A drop-flagged local as a labelled break's value (`break 'l ::…::flag_take(..)`).
differential! {
    labelled_break_of_a_flagged_local,
    entry: flagged(3),
    #[lowered]
    async fn flagged(n: u32) -> u32 {
        let mut i = 0;
        let a = Noisy::new("a");
        let out = 'l: loop {
            i += 1;
            if i > n {
                break 'l a;
            }
            if i == 7 {
                drop(a);
                break 'l Noisy::new("b");
            }
        };
        tick(1).await;
        out.touch() as u32
    }
}

// A `?` in a labelled break's value inside a native region.
differential! {
    labelled_break_with_try_in_a_region,
    entry: break_try(),
    #[lowered]
    async fn break_try() -> Option<u32> {
        let s = 'a: loop {
            if tick(true).await {
                break 'a tick(Some(2)).await?;
            }
        };
        tick(1).await;
        Some(s)
    }
}

// A block's tail value that is not the fn's: it lost its `;` before the transition.
differential! {
    unit_block_with_a_value_tail,
    entry: unit_tail(3),
    #[lowered]
    async fn unit_tail(n: u32) -> u32 {
        let f = || n + 1;
        if tick(true).await { f() } else { f() + 1 };
        { let x = tick(n).await; std::convert::identity(x + 1) };
        n
    }
}

// A `let` that awaits and shadows a local still alive: its resume block bound the older local
// under the shared name, so the newer one was carried in its place (and moved twice).
differential! {
    shadowing_let_with_an_await,
    entry: shadow_await(),
    #[lowered]
    async fn shadow_await() -> u32 {
        let n = Noisy::new("n");
        let mut i = 0;
        while tick(i < 2).await {
            i += 1;
            let n = tick(Noisy::new("s")).await;
            tick(()).await;
            drop(n);
        }
        i + n.touch() as u32
    }
}

differential! {
    shadowing_let_else_with_an_await,
    entry: shadow_let_else(),
    #[lowered]
    async fn shadow_let_else() -> Option<u32> {
        let n = Noisy::new("n");
        let mut i = 0;
        while tick(i < 2).await {
            i += 1;
            let Some(n) = tick(Some(Noisy::new("s"))).await else {
                ev("none");
                return None;
            };
            drop(n);
        }
        Some(i + n.touch() as u32)
    }
}

// A shadowing `let` that reads the local it shadows (still alive, held for its drop): the
// older local is hidden from the `let` on, so this part keeps a native region.
differential! {
    shadowing_let_reading_the_older_local,
    entry: shadow_read(),
    async fn shadow_read() -> u32 {
        let n = Noisy::new("n");
        let mut i = 0;
        while tick(i < 2).await {
            i += 1;
            let n = n.touch() + 1;
            tick(n).await;
        }
        i
    }
}

// Found by random programs with partial patterns (not the fuzz test; predates session 4):
// what `_` leaves of an awaited value is a temporary natively, dropped at the end of the
// `let`; the lowered `let` matched a local of the resume block, which kept that part until
// the next await ("after" came before its drop).
fn noisy_pair(tag: &str) -> (Noisy, Noisy) {
    (
        Noisy::new(format!("{tag}.0")),
        Noisy::new(format!("{tag}.1")),
    )
}

differential! {
    let_with_wildcards_drops_the_unbound_part_at_once,
    entry: wild_let(),
    #[lowered]
    async fn wild_let() -> u32 {
        let _ = tick(Noisy::new("whole")).await;
        ev("after whole");
        let (a, _) = tick(noisy_pair("p")).await;
        ev("after p");
        let (_, _): (Noisy, Noisy) = tick(noisy_pair("q")).await;
        ev("after q");
        show(&a).await as u32
    }
}

// The same in a loop body, with a refutable pattern leaving a part (`let … else`).
differential! {
    let_with_wildcards_in_a_loop,
    entry: wild_loop(3),
    #[lowered]
    async fn wild_loop(n: u32) -> u32 {
        let mut s = 0;
        for i in 0..n {
            let Some((_, b)) = tick(Some(noisy_pair("r"))).await else {
                continue;
            };
            ev("after r");
            s += tick(i).await + b.touch() as u32;
        }
        s
    }
}

// Found by random programs with shadowing across awaits (session 5): a `let` whose initialiser
// is a plain awaited call and that shadows a local still alive binds in the await's resume
// block, which bound the older local under the shared name; after the `let` that name was the
// newer local, so the block handed the newer one on in the older one's place, and past the
// shadowing scope the older name read the newer value (no compile error: same type).
differential! {
    shadowing_let_with_a_plain_await_in_a_nested_block,
    entry: shadow_in_block(2),
    #[lowered]
    async fn shadow_in_block(input: u64) -> u64 {
        if input % 2 == 0 {
            let t = input + 1;
            let input = tick(t).await;
            ev(format!("inner {input}"));
        }
        tick(()).await;
        input
    }
}

// The same with owned values (the future a plain call of locals): the outer local was dropped
// at the end of the block and the inner one used after it in its place.
differential! {
    shadowing_owned_let_with_a_plain_await_in_a_nested_block,
    entry: shadow_owned_in_block(2),
    #[lowered]
    async fn shadow_owned_in_block(n: u64) -> usize {
        let v = Noisy::new("outer");
        if n > 1 {
            let w = Noisy::new("inner");
            let v = tick(w).await;
            ev(format!("inner {}", v.touch()));
        }
        tick(()).await;
        v.touch()
    }
}
