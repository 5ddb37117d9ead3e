//! Edition 2021 drops the temporaries of a block's tail expression after the block's locals
//! (2024 drops them before), and those of a body's tail after its locals but before its
//! parameters. `#[structured]` cannot ask the edition: the blocks that end in the body's tail
//! carry the span of the user's braces, whose edition rustc applies. Each body is compiled
//! as `#[structured]` and as a native `async fn` in this edition 2021 crate; both must agree
//! on output and event and drop order, run to completion and cancelled after every poll.

// Formatted with the other tests (style edition 2024), not as part of this crate.
#[path = "../../support/mod.rs"]
#[rustfmt::skip]
mod support;

use support::macros::differential;
#[allow(unused_imports)]
use support::{ev, tick, Noisy};

fn opt(n: &Noisy, some: bool) -> Option<usize> {
    if some {
        Some(n.touch())
    } else {
        None
    }
}

// The tail of an explicit machine's last block, of a native region ending the body, and of a
// body kept whole as a native frame.
differential! {
    body_tail_temporaries_drop_after_the_locals,
    entry: async {
        (
            explicit().await,
            awaited(Noisy::new("p")).await,
            region(Noisy::new("p")).await,
            whole(Noisy::new("p")).await,
        )
    },
    #[lowered]
    async fn explicit() -> usize {
        let x = Noisy::new("x");
        let k = tick(1).await;
        Noisy::new("tmp").touch() + k + x.name().len()
    }
    #[lowered]
    async fn awaited(p: Noisy) -> usize {
        let x = Noisy::new("x");
        tick(()).await;
        tick(Noisy::new("t")).await.touch() + x.name().len() + p.name().len()
    }
    #[lowered]
    async fn region(p: Noisy) -> usize {
        let x = Noisy::new("x");
        tick(()).await;
        let y = Noisy::new("y");
        tick(Noisy::new("tmp").touch() + y.touch()).await + x.touch() + p.touch()
    }
    #[lowered]
    async fn whole(p: Noisy) -> usize {
        let x = Noisy::new("x");
        let r = &x;
        tick(()).await;
        Noisy::new("tmp").touch() + r.touch() + p.touch()
    }
}

// An `if let` ending the body keeps its scrutinee's temporaries to the end of the whole
// `if`/`else`, after the locals; an inner block's tail temporaries live to the end of its
// statement.
differential! {
    if_let_and_block_tails,
    entry: async { (iflet(true).await, iflet(false).await, block_tail().await) },
    #[lowered]
    async fn iflet(some: bool) -> usize {
        let _g = Noisy::new("g");
        tick(()).await;
        if let Some(n) = opt(&Noisy::new("scrut"), some) {
            n + tick(1).await
        } else {
            ev("else");
            tick(2).await
        }
    }
    #[lowered]
    async fn block_tail() -> usize {
        let v = {
            let a = Noisy::new("a");
            tick(()).await;
            Noisy::new("tmp").touch() + a.touch()
        };
        let w = {
            let b = Noisy::new("b");
            tick(b.touch()).await + Noisy::new("tmp2").touch()
        };
        v + w
    }
}

fn len(n: &Noisy) -> usize {
    n.touch()
}

// An `if` branch or `match` arm ending the body is a scope of its own for temporaries: its
// tail's temporaries drop after the branch's locals but before the locals and parameters
// from outside it.
differential! {
    branch_tails_drop_before_the_outer_locals,
    entry: async {
        (
            arms(0, Noisy::new("p")).await,
            arms(1, Noisy::new("p")).await,
            arms(2, Noisy::new("p")).await,
            by_match(Some(3)).await,
            by_match(None).await,
        )
    },
    #[lowered]
    async fn arms(k: u32, p: Noisy) -> usize {
        let x = Noisy::new("x");
        if k == 0 {
            tick(()).await;
            Noisy::new("t0").touch() + len(&x)
        } else if k == 1 {
            let y = Noisy::new("y");
            tick(Noisy::new("t1")).await.touch() + len(&y)
        } else {
            len(&p) + tick(Noisy::new("t2").touch()).await
        }
    }
    #[lowered]
    async fn by_match(o: Option<u32>) -> usize {
        let g = Noisy::new("g");
        match o {
            Some(v) => {
                let w = tick(v).await;
                let z = Noisy::new("z");
                Noisy::new("ts").touch() + w as usize + len(&g) + len(&z)
            }
            None => tick(Noisy::new("tn")).await.touch(),
        }
    }
}

// A tail awaiting inside an operand (`Some(f(o).await?.touch())`, `v.await[1]`): the awaited
// value is a temporary of the tail.
differential! {
    tails_awaiting_inside_an_operand,
    entry: async { (wrapped(Some(Noisy::new("o"))).await, indexed().await) },
    #[lowered]
    async fn wrapped(o: Option<Noisy>) -> Option<usize> {
        let _x = Noisy::new("x");
        Some(tick(o).await?.touch())
    }
    #[lowered]
    async fn indexed() -> usize {
        let _x = Noisy::new("x");
        tick(vec![Noisy::new("v0"), Noisy::new("v1")]).await[1].touch()
    }
}

// The fix for an explicit machine is in its last block: `explicit` above must stay explicit,
// not become a native region (whose tail the user's braces also cover). The same body under
// `strict`, which refuses any native region, must compile and agree with native.
#[structured_async::structured(strict)]
async fn explicit_strict() -> usize {
    let x = Noisy::new("x");
    let k = tick(1).await;
    Noisy::new("tmp").touch() + k + x.name().len()
}

async fn explicit_native() -> usize {
    let x = Noisy::new("x");
    let k = tick(1).await;
    Noisy::new("tmp").touch() + k + x.name().len()
}

#[test]
fn an_explicit_machine_tail_stays_explicit_and_agrees() {
    support::check(explicit_strict, explicit_native);
}
