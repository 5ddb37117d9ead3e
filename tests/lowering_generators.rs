//! Differential tests of `#[structured(yields = T)]` generators: each body is compiled as the
//! explicit machine and as the native frame the lowering falls back to, and both must agree on
//! yielded values, output, events and drop order, run to completion and cancelled after every
//! poll, including right after each yield (see `support::Drain`).

mod support;

use structured_async::yield_;
use support::macros::generator_differential;
#[allow(unused_imports)]
use support::{Noisy, ev, pass, show, tick};

generator_differential! {
    plain_yields_keep_locals_alive,
    yields: u32,
    entry: counted(3),
    async fn counted(n: u32) -> usize {
        let a = Noisy::new("a");
        let mut total = 0;
        for i in 0..n {
            let step = tick(i).await;
            let held = Noisy::new("held");
            yield_!(step * 10);
            total += show(&held).await;
        }
        drop(a);
        total
    }
}

generator_differential! {
    awaits_inside_the_yielded_value,
    yields: u64,
    entry: awaited(3),
    async fn awaited(n: u64) -> u64 {
        let a = Noisy::new("a");
        let mut i = 0;
        while i < n {
            i += 1;
            yield_!(tick(i).await * 10);
            yield_!(tick(i).await + pass(i).await);
            yield_!(tick(i).await);
        }
        drop(a);
        i
    }
}

generator_differential! {
    a_native_region_between_yields,
    yields: usize,
    entry: regions(vec![Noisy::new("x"), Noisy::new("y")]),
    async fn regions(items: Vec<Noisy>) -> usize {
        let before = Noisy::new("before");
        yield_!(items.len());
        let mut seen = 0;
        for item in &items {
            seen += show(item).await;
        }
        let after = Noisy::new("after");
        yield_!(seen);
        drop(before);
        tick(()).await;
        yield_!(seen + 1);
        drop(after);
        seen
    }
}

generator_differential! {
    a_region_to_the_end_after_yields,
    yields: u32,
    entry: tail_region(2),
    async fn tail_region(n: u32) -> usize {
        let v = vec![Noisy::new("v0"), Noisy::new("v1")];
        yield_!(n);
        let first = &v[0];
        let shown = show(first).await;
        shown + v.len()
    }
}

generator_differential! {
    a_drop_flag_across_yields,
    yields: u32,
    entry: flagged(true),
    async fn flagged(c: bool) -> u32 {
        let a = Noisy::new("a");
        if c {
            drop(a);
        }
        yield_!(1);
        let b = Noisy::new("b");
        yield_!(2);
        drop(b);
        3
    }
}

generator_differential! {
    a_yielded_value_with_a_temporary,
    yields: usize,
    entry: temps(),
    async fn temps() {
        let keep = Noisy::new("keep");
        // The temporary lives until the generator resumes, natively.
        yield_!(measure(&Noisy::new("temp")));
        tick(()).await;
        yield_!(measure(&keep));
    }
    fn measure(n: &Noisy) -> usize {
        n.touch()
    }
}

generator_differential! {
    early_return_and_try_between_yields,
    yields: u32,
    entry: fallible(4),
    async fn fallible(n: u32) -> Result<u32, u32> {
        let guard = Noisy::new("guard");
        let mut i = 0;
        loop {
            i += 1;
            let held = Noisy::new("held");
            yield_!(i);
            let checked = pass(if i < n { Ok(i) } else { Err(i) }).await?;
            if checked == 2 {
                yield_!(show(&held).await as u32);
                continue;
            }
            if checked > 10 {
                return Ok(show(&guard).await as u32);
            }
        }
    }
}
