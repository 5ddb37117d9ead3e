//! Differential tests of `#[structured]` on bodies written the way async Rust is written in
//! practice: methods touching several fields, generic fns over traits returning futures,
//! `async fn` in traits, `move` blocks and closures, nurseries, shadowing, early returns.
//! Each body is compiled both as `#[structured]` and as a native `async fn` (see
//! `support/macros.rs`); both must agree on output, event and drop order, run to completion
//! and cancelled after every poll. The first group once failed to compile or behaved
//! differently under `#[structured]`; the rest guard shapes that already agreed.

mod support;

use std::future::Future;

use support::macros::differential;
#[allow(unused_imports)]
use support::{Noisy, ev, pass, show, tick, tick_named};

// A `move` block captures `name` by value although its body only borrows it (`name.len()`):
// the adapter handed `name` back after the block had taken it.
differential! {
    async_move_block_awaited_inline,
    entry: blocks(Noisy::new("arg")),
    #[lowered]
    async fn blocks(arg: Noisy) -> usize {
        let name = arg.name().to_string();
        let a = async move { tick(name.len()).await }.await;
        let other = Noisy::new("other");
        let fut = async { show(&other).await + show(&arg).await };
        let b = fut.await;
        let c = async move { tick(arg.touch()).await }.await;
        a + b + c
    }
}

// A `move` block or closure that names one field takes only that field (edition 2021).
differential! {
    move_captures_of_one_field,
    entry: fields(),
    struct Two { a: Noisy, b: Noisy }
    #[lowered]
    async fn fields() -> usize {
        let t = Two { a: Noisy::new("a"), b: Noisy::new("b") };
        let x = async move { tick(t.a.touch()).await }.await;
        let u = Two { a: Noisy::new("ua"), b: Noisy::new("ub") };
        let f = move || u.a.touch();
        let y = tick(f()).await;
        ev("after");
        x + y + tick(t.b.touch() + u.b.touch()).await
    }
}

// `let i = format!("<{i}>")` reads the `i` it shadows through the format string.
differential! {
    shadowing_read_by_a_format_string,
    entry: shadows(3),
    #[lowered]
    async fn shadows(n: u32) -> String {
        let mut acc = String::new();
        for i in 0..n {
            let i = tick(i * 2).await;
            let i = format!("<{i}>");
            let i = Noisy::new(i);
            tick(()).await;
            acc.push_str(i.name());
        }
        acc
    }
}

// A `mut self` receiver: the first block bound `self` without `mut`.
differential! {
    mut_self_and_self_receivers,
    entry: async {
        let b = Batch { items: vec![Noisy::new("i1")], tag: Noisy::new("tag") };
        let b = b.add(Noisy::new("i2")).await;
        b.finish().await
    },
    struct Batch { items: Vec<Noisy>, tag: Noisy }
    impl Batch {
        #[lowered]
        async fn add(mut self, n: Noisy) -> Self {
            tick(()).await;
            self.items.push(n);
            self
        }
        #[lowered]
        async fn finish(self) -> Vec<String> {
            let mut names = vec![];
            for it in self.items {
                names.push(tick(it.name().to_string()).await);
            }
            names.push(self.tag.name().to_string());
            names
        }
    }
}

// Calling a local closure borrows it: the future of an `AsyncFn` goes on borrowing it, and a
// `move` closure called before an await still holds its captures to the end of the scope.
differential! {
    calls_of_local_closures,
    entry: async { run_cb(async |x: u32| tick(x * 2).await).await },
    #[lowered]
    async fn run_cb(f: impl AsyncFn(u32) -> u32) -> u32 {
        let n = Noisy::new("n");
        let g = move || n.touch() as u32;
        let a = f(g()).await;
        let b = f(a).await;
        ev("end");
        a + b
    }
}

// `collect` of an iterator over borrowed items borrows too: here, futures borrowing `items`.
differential! {
    collected_futures_borrow_their_source,
    entry: handles(),
    #[lowered]
    async fn handles() -> Vec<usize> {
        let items = vec![Noisy::new("x"), Noisy::new("yy")];
        let futs: Vec<_> = items.iter().map(|n| async move { tick(n.touch()).await }).collect();
        let mut out = vec![];
        for f in futs {
            out.push(f.await);
        }
        let longest = items.iter().map(|n| n.name().len()).max();
        out.push(tick(longest.unwrap_or(0)).await);
        drop(items);
        out
    }
}

// The temporaries of a `match` scrutinee live to the end of the `match`, across its arms'
// awaits: the vector here, and the one in the awaited call's argument.
differential! {
    match_scrutinee_temporaries,
    entry: scrut(),
    #[lowered]
    async fn scrut() -> u32 {
        let mut r = 0;
        match vec![Noisy::new("t")].len() {
            0 => {}
            n => {
                r = tick(n as u32).await;
            }
        }
        ev("after match");
        match tick(vec![Noisy::new("x")].len() as u32).await {
            1 => {
                ev("one");
                r + tick(1).await
            }
            n => n,
        }
    }
}

// `#![allow(..)]` at the top of the body went in front of the generated fn.
differential! {
    inner_attribute_of_the_body,
    entry: inner(),
    #[lowered]
    async fn inner() -> u32 {
        #![allow(unused_variables)]
        let unused = tick(1).await;
        tick(2).await
    }
}

// `vec![..]` holding `async` blocks was taken for an await and computed apart from the
// `let`'s type, where the closures coerce to `Box<dyn Fn>`.
differential! {
    boxed_callbacks_coerced_by_the_let_type,
    entry: callbacks(),
    #[lowered]
    #[allow(clippy::type_complexity)]
    async fn callbacks() -> Vec<u32> {
        let fs: Vec<Box<dyn Fn(u32) -> std::pin::Pin<Box<dyn Future<Output = u32>>>>> = vec![
            Box::new(|x| Box::pin(async move { tick(x + 1).await })),
            Box::new(|x| Box::pin(tick(x * 3))),
        ];
        let mut out = vec![];
        for f in &fs {
            out.push(f(tick(2).await).await);
        }
        let g: Box<dyn Fn(u32) -> u32> = Box::new(|x| x + tick_sync(1));
        out.push(g(tick(4).await));
        out
    }
    fn tick_sync(x: u32) -> u32 {
        x
    }
}

// Only the compiler evaluates `#[cfg]`: a statement under it ran, a local under it was
// carried, a move under it counted, and the user's lint attributes were dropped.
differential! {
    cfg_and_lint_attributes_on_statements,
    entry: attrs(),
    #[lowered]
    #[deny(unused_variables, unused_mut)]
    async fn attrs() -> usize {
        #[allow(unused_variables)]
        let n = Noisy::new("n");
        #[cfg(any())]
        let x = tick(100).await;
        #[cfg(all())]
        let x = tick(1).await;
        #[cfg(any())]
        tick(1000).await;
        #[cfg(any())]
        let y = Noisy::new("y-off");
        #[cfg(all())]
        let y = Noisy::new("y-on");
        #[cfg(any())]
        {
            drop(n);
        }
        #[allow(unused_variables)]
        let unused = tick(2).await;
        #[allow(unused_mut)]
        let mut m = tick(3).await;
        ev("end");
        x + m + y.touch()
    }
}

// An `async fn` may elide a lifetime inside an argument's `impl Trait`; the plain fn the
// macro writes may not, in a free fn or in a trait impl (`Fn(&str)` keeps its own elision).
differential! {
    elided_lifetimes_in_impl_trait_arguments,
    entry: async {
        let v = [1u32, 2];
        let w = vec![String::from("a")];
        (sum_refs(v.iter()).await, Summer.sum(v.iter(), &w).await, Summer.sum2(v.iter().copied(), |s| s.len()).await)
    },
    #[lowered]
    async fn sum_refs(it: impl Iterator<Item = &u32>) -> u32 {
        let mut s = 0;
        for x in it {
            s += tick(*x).await;
        }
        s
    }
    trait Sum {
        async fn sum(&self, it: impl Iterator<Item = &u32>, names: &[String]) -> u32;
        async fn sum2(&self, it: impl Iterator<Item = u32> + '_, f: impl Fn(&str) -> usize) -> u32;
    }
    struct Summer;
    impl Sum for Summer {
        #[lowered]
        async fn sum(&self, it: impl Iterator<Item = &u32>, names: &[String]) -> u32 {
            let mut s = names.len() as u32;
            for x in it {
                s += tick(*x).await;
            }
            s
        }
        #[lowered]
        async fn sum2(&self, it: impl Iterator<Item = u32> + '_, f: impl Fn(&str) -> usize) -> u32 {
            let mut s = f("ab") as u32;
            for x in it {
                s += tick(x).await;
            }
            s
        }
    }
}

// Matching a local moves only what the patterns bind: `if let Ok(x) = res` leaves an `Err`,
// `(a, _)` leaves `.1`, `let _ = x` moves nothing; what is left drops at the end of the scope,
// after the awaits, not before them.
differential! {
    partial_moves_by_patterns,
    entry: async {
        (
            moves(Ok(Noisy::new("ok")), Noisy::new("x")).await,
            moves(Err(Noisy::new("err")), Noisy::new("x")).await,
            by_match(Err(Noisy::new("m-err"))).await,
            by_match(Ok(Noisy::new("m-ok"))).await,
        )
    },
    #[allow(dead_code)] // `b` is never read, only dropped
    struct P { a: Noisy, b: Noisy }
    #[lowered]
    async fn moves(res: Result<Noisy, Noisy>, x: Noisy) -> usize {
        let mut n = 0;
        if let Ok(v) = res {
            n += v.touch();
        }
        let pair = (Noisy::new("p0"), Noisy::new("p1"));
        let (a, _) = pair;
        let p = P { a: Noisy::new("pa"), b: Noisy::new("pb") };
        let P { a: pa, .. } = p;
        let _ = x;
        tick(()).await;
        ev("end");
        n + a.touch() + pa.touch()
    }
    #[lowered]
    async fn by_match(res: Result<Noisy, Noisy>) -> usize {
        let n = match res {
            Ok(v) => v.touch(),
            _ => 0,
        };
        let k = match tick(Some(Noisy::new("o"))).await {
            Some(o) => o.touch(),
            _ => 0,
        };
        tick(()).await;
        ev("end");
        n + k
    }
}

// An async lock's guard borrows the lock: `*g += x.await` through it (the deref was taken for
// a move of `g`), and the adapter of `m.lock().await` handing back the guard with `m`;
// `tokio::pin!(f)` declares a new `f` the lowering cannot see.
differential! {
    async_locks_and_pinning,
    entry: async {
        let mut c = Counter2 { m: tokio::sync::Mutex::new(1), n: 10 };
        (local_mutex().await, shared_mutex().await, pinned().await, c.bump().await, c.read().await)
    },
    struct Counter2 { m: tokio::sync::Mutex<u32>, n: u32 }
    impl Counter2 {
        // Through `&mut self` the guard reborrows `self`; through `&self` it does not.
        #[lowered]
        async fn bump(&mut self) -> u32 {
            let mut g = self.m.lock().await;
            *g += 1;
            let v = *g;
            drop(g);
            self.n += tick(v).await;
            self.n
        }
        #[lowered]
        async fn read(&self) -> u32 {
            let g = self.m.lock().await;
            let v = *g;
            drop(g);
            tick(v).await + self.n
        }
    }
    #[lowered]
    async fn local_mutex() -> u32 {
        let m = tokio::sync::Mutex::new(5u32);
        {
            let mut g = m.lock().await;
            *g += tick(1).await;
        }
        let v = *m.lock().await;
        v + tick(0).await
    }
    #[lowered]
    async fn shared_mutex() -> u32 {
        let st = std::sync::Arc::new(tokio::sync::Mutex::new(1u32));
        let other = std::sync::Arc::clone(&st);
        let mut g = st.lock().await;
        *g += 1;
        drop(g);
        tick(()).await;
        let n = tick(*other.lock().await).await;
        n + *st.lock().await
    }
    #[lowered]
    async fn pinned() -> u32 {
        let a = tick(1).await;
        let f = tick(2);
        tokio::pin!(f);
        let b = (&mut f).await;
        let p = std::pin::pin!(tick(3));
        a + b + p.await
    }
}

// An awaited value may borrow the local it was asked of (`cfg.host().await` returns a `&str`
// into `cfg`): what is made of it (`.len()`, a condition, a discarded value) is finished with
// in the adapter that holds `cfg`, before handing `cfg` back.
differential! {
    awaited_borrows_of_a_local,
    entry: getters(),
    struct Cfg { host: String }
    impl Cfg {
        async fn host(&self) -> &str {
            tick(()).await;
            &self.host
        }
    }
    async fn first(v: &[Noisy]) -> &Noisy {
        tick(()).await;
        &v[0]
    }
    #[lowered]
    async fn getters() -> usize {
        let cfg = Cfg { host: "hh".into() };
        let mut n = 0;
        for _ in 0..2 {
            n += cfg.host().await.len();
        }
        cfg.host().await;
        if cfg.host().await.is_empty() {
            n += 100;
        }
        let v = vec![Noisy::new("a")];
        let k = first(&v).await.touch();
        tick(()).await;
        n + k + cfg.host.len()
    }
}

// A format string may name the receiver (`{self:?}`): the lowered body calls it otherwise.
// A string that only looks like one (`"{self}"` as a value, `{{self}}`) stays as written.
differential! {
    receiver_named_in_format_strings,
    entry: async {
        let mut l = Label { n: 3 };
        let a = l.show().await;
        (a, l.take().await)
    },
    #[derive(Debug)]
    struct Label { n: u32 }
    impl Label {
        #[lowered]
        async fn show(&mut self) -> Vec<String> {
            let a = format!("{self:?}");
            self.n += tick(1).await;
            let mut out = vec![a, format!("{self:?} {{self}} {}", "{self}"), String::new()];
            use std::fmt::Write;
            write!(out[2], "{}{self:?}", self.n).unwrap();
            assert!(self.n > 0, "{self:?}");
            out
        }
        #[lowered]
        async fn take(self) -> String {
            tick(()).await;
            format!("{self:?}")
        }
    }
}

// `-> !`: `impl Future<Output = !>` is not stable Rust. (It leaves by unwinding here;
// `resume_unwind` skips the panic hook, so the runs print nothing.)
differential! {
    never_returning_loop,
    entry: async {
        let caught = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(serve(3))).await;
        caught.map_err(|e| e.downcast_ref::<u32>().copied())
    },
    #[lowered]
    async fn serve(n: u32) -> ! {
        let _g = Noisy::new("g");
        let mut i = 0;
        loop {
            let step = Noisy::new(format!("step{i}"));
            i += tick(n).await;
            if i > 7 {
                drop(step);
                std::panic::resume_unwind(Box::new(i));
            }
        }
    }
}

// Typed receivers, and a one-expression body kept native: the frame once wrapped it in a
// block rustc calls "unnecessary braces", a warning at the user's span (an error here).
differential! {
    typed_receivers_without_warnings,
    entry: async {
        let a = Box::new(Shape { n: 1, v: vec![2] }).boxed().await;
        let b = Box::new(Shape { n: 1, v: vec![] }).boxed_mut().await;
        (a, b, std::rc::Rc::new(Shape { n: 5, v: vec![] }).rc().await)
    },
    struct Shape { n: u32, v: Vec<u32> }
    impl Shape {
        #[lowered]
        #[deny(warnings)]
        async fn boxed(self: Box<Self>) -> u32 {
            tick(self.n).await + self.v.len() as u32
        }
        #[lowered]
        #[deny(warnings)]
        async fn boxed_mut(mut self: Box<Self>) -> u32 {
            self.n += tick(1).await;
            self.n
        }
        #[lowered]
        #[deny(warnings)]
        async fn rc(self: std::rc::Rc<Self>) -> u32 {
            tick(self.n).await + self.n
        }
    }
}

// Shapes that now lower to explicit states instead of native regions: `for` over an adapter
// chain of a reference parameter or of an owned value, a `match` or `if` awaiting only in its
// scrutinee (with an early return, a `_` arm, temporaries), `format!` inside a call.
differential! {
    explicit_loops_and_scrutinee_awaits,
    entry: async { (lines("a=1\nb=x\n#c", &[Noisy::new("g")]).await, steps(vec![Ok(1), Err(Noisy::new("e"))]).await) },
    #[lowered]
    async fn lines(text: &str, guards: &[Noisy]) -> (Vec<(String, u32)>, Vec<String>) {
        let mut ok = vec![];
        let mut bad = vec![];
        for (i, line) in text.lines().enumerate() {
            let _row = Noisy::new(format!("row{i}"));
            let Some((k, v)) = line.split_once('=') else {
                bad.push(line.to_string());
                continue;
            };
            match tick(v.parse::<u32>()).await {
                Ok(n) => ok.push((k.to_string(), n)),
                Err(_) => bad.push(format!("{k}: {v}")),
            }
        }
        for g in guards.iter().rev() {
            ok.push((g.name().to_string(), tick(g.touch() as u32).await));
        }
        (ok, bad)
    }
    #[lowered]
    async fn steps(inputs: Vec<Result<u32, Noisy>>) -> Result<u32, Noisy> {
        let mut sum = 0;
        for (i, r) in inputs.into_iter().enumerate() {
            let _step = Noisy::new(format!("step{i}"));
            let v = match tick(r).await {
                Ok(v) => v,
                Err(e) => return Err(e),
            };
            sum += if tick(v).await > 0 { v } else { 100 };
        }
        Ok(sum)
    }
}

differential! {
    job_queue_popped_from_self,
    entry: async {
        let mut w = Work { queue: std::collections::VecDeque::from(vec![1, 2, 3]), done: vec![], fails: 0 };
        let r = w.run().await;
        (r, w.done, w.fails)
    },
    struct Work { queue: std::collections::VecDeque<u32>, done: Vec<u32>, fails: u32 }
    impl Work {
        async fn process(&mut self, j: u32) -> Result<u32, String> {
            if j == 2 {
                self.fails += 1;
                return Err(format!("job {j}"));
            }
            Ok(tick(j * 10).await)
        }
        #[lowered]
        async fn run(&mut self) -> Result<usize, String> {
            while let Some(job) = self.queue.pop_front() {
                match self.process(job).await {
                    Ok(v) => self.done.push(v),
                    Err(e) if self.fails < 2 => {
                        ev(format!("retry {e}"));
                        self.queue.push_back(job + 10);
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(self.done.len())
        }
    }
}

differential! {
    scrutinee_awaits_with_jumps_and_copy_params,
    entry: async {
        let x = [1u32, 2, 3];
        (jumps(vec![3, 0, 5, 1, 7]).await, jumps(vec![9]).await, raw(x.as_ptr(), 3).await)
    },
    #[lowered]
    async fn jumps(v: Vec<u32>) -> (u32, Vec<u32>) {
        let mut acc = 0;
        let mut seen = vec![];
        let g = Noisy::new("g");
        'outer: for x in v {
            let _n = Noisy::new(format!("n{x}"));
            match tick(x).await {
                0 => continue,
                1 => break 'outer,
                k if k > acc => acc = k,
                _ => {}
            }
            let y = match tick(Some(x)).await {
                Some(y) if y > 4 => y,
                Some(_) => continue,
                None => break,
            };
            if tick(y).await > 8 {
                return (999, seen);
            } else {
                seen.push(y);
            }
        }
        ev(g.name());
        (acc, seen)
    }
    fn offset(p: *const u32, i: usize) -> usize {
        p.wrapping_add(i) as usize - p as usize
    }
    #[lowered]
    async fn raw(p: *const u32, n: usize) -> usize {
        let mut s = 0;
        for i in 0..n {
            let v = offset(p, i);
            s += tick(v).await;
        }
        s
    }
}

differential! {
    method_touching_several_fields,
    entry: async {
        let mut c = Conn { buf: vec![1, 2, 3], sent: 0, name: Noisy::new("conn"), log: Vec::new() };
        let r = c.flush(2).await;
        (r, c.sent, c.log.clone(), c.buf.len())
    },
    struct Conn { buf: Vec<u8>, sent: usize, name: Noisy, log: Vec<String> }
    impl Conn {
        #[lowered]
        async fn flush(&mut self, max: usize) -> usize {
            let start = self.sent;
            while !self.buf.is_empty() && self.sent - start < max {
                let b = self.buf.remove(0);
                let n = tick(b as usize).await;
                self.sent += 1;
                self.log.push(format!("{} sent {n}", self.name));
            }
            self.name.touch();
            self.sent - start
        }
    }
}

differential! {
    generic_fns_over_traits_returning_futures,
    entry: async {
        let mut r = Repo { rows: vec![] };
        let n = ingest(&mut r, vec!["a".to_string(), "bb".to_string()]).await;
        (n, r.rows, sum_all(&Store { base: 10 }, &[1, 2, 3]).await)
    },
    trait Source {
        fn fetch(&self, k: u32) -> impl Future<Output = u32>;
    }
    struct Store { base: u32 }
    impl Source for Store {
        fn fetch(&self, k: u32) -> impl Future<Output = u32> {
            let b = self.base;
            async move { tick(b + k).await }
        }
    }
    trait Sink<T> {
        fn put(&mut self, t: T) -> impl Future<Output = Result<usize, String>>;
    }
    struct Repo { rows: Vec<String> }
    impl Sink<String> for Repo {
        fn put(&mut self, t: String) -> impl Future<Output = Result<usize, String>> {
            self.rows.push(t);
            let n = self.rows.len();
            async move { tick(Ok(n)).await }
        }
    }
    #[lowered]
    async fn sum_all<S>(s: &S, keys: &[u32]) -> u32
    where
        S: Source + ?Sized,
    {
        let mut total = 0;
        for k in keys {
            total += s.fetch(*k).await;
        }
        total
    }
    #[lowered]
    async fn ingest<S, I>(sink: &mut S, items: I) -> Result<usize, String>
    where
        S: Sink<String> + ?Sized,
        I: IntoIterator<Item = String>,
    {
        let mut last = 0;
        for it in items {
            last = sink.put(it.to_uppercase()).await?;
        }
        Ok(last)
    }
}

differential! {
    async_fn_in_a_trait_impl,
    entry: async {
        let mut w = Worker { done: Vec::new(), tag: Noisy::new("w") };
        let a = w.step(3).await;
        let b = w.step(0).await;
        (a, b, w.done.clone())
    },
    trait Step {
        async fn step(&mut self, n: u32) -> Result<u32, String>;
    }
    struct Worker { done: Vec<u32>, tag: Noisy }
    impl Step for Worker {
        #[lowered]
        async fn step(&mut self, n: u32) -> Result<u32, String> {
            if n == 0 {
                return Err(format!("{}: zero", self.tag));
            }
            let v = tick(n * 2).await;
            self.done.push(v);
            Ok(v + self.done.len() as u32)
        }
    }
}

differential! {
    match_on_enum_references_with_guards,
    entry: async {
        let ms = vec![Msg::Text(Noisy::new("hi")), Msg::Num(4), Msg::Num(40), Msg::Pair(1, 2), Msg::Quit];
        handle(&ms).await
    },
    enum Msg { Text(Noisy), Num(u32), Pair(u32, u32), Quit }
    #[lowered]
    async fn handle(ms: &[Msg]) -> Vec<String> {
        let mut out = Vec::new();
        for m in ms {
            match m {
                Msg::Text(t) if t.name().len() > 1 => {
                    let n = show(t).await;
                    out.push(format!("text {n}"));
                }
                Msg::Text(_) => out.push("short".into()),
                Msg::Num(n) if *n > 10 => out.push(format!("big {}", tick(*n).await)),
                Msg::Num(n) => {
                    let doubled = tick(n * 2).await;
                    out.push(format!("num {doubled} {n}"));
                }
                &Msg::Pair(a, b) => {
                    let (x, y) = (tick(a).await, tick(b).await);
                    out.push(format!("pair {x} {y}"));
                }
                Msg::Quit => break,
            }
        }
        out
    }
}

differential! {
    errors_with_question_marks_and_conversions,
    entry: async {
        let show = |r: Result<u32, Box<dyn std::error::Error>>| r.map_err(|e| e.to_string());
        (show(load("12").await), show(load("x").await), show(load("").await), step_all(vec![Ok(1), Err("bad".into()), Ok(3)]).await.map_err(AppErr::text))
    },
    enum AppErr { Io(String), Limit(u32) }
    impl From<String> for AppErr { fn from(s: String) -> Self { AppErr::Io(s) } }
    impl AppErr {
        fn text(self) -> String {
            match self {
                AppErr::Io(s) => s,
                AppErr::Limit(n) => format!("limit {n}"),
            }
        }
    }
    #[lowered]
    async fn load(src: &'static str) -> Result<u32, Box<dyn std::error::Error>> {
        let guard = Noisy::new("g");
        let text = tick(src).await;
        if text.is_empty() {
            return Err("empty".into());
        }
        let n: u32 = text.parse().map_err(|e: std::num::ParseIntError| format!("bad {text}: {e}"))?;
        let m = tick(n.checked_mul(2)).await.ok_or("overflow")?;
        ev(guard.name());
        Ok(m)
    }
    #[lowered]
    async fn step_all(inputs: Vec<Result<u32, String>>) -> Result<u32, AppErr> {
        let mut sum = 0;
        for (i, r) in inputs.into_iter().enumerate() {
            let v = match tick(r).await {
                Ok(v) if v > 100 => return Err(AppErr::Limit(v)),
                Ok(v) => v,
                Err(e) => {
                    let _g = Noisy::new(format!("err{i}"));
                    tick(()).await;
                    return Err(e.into());
                }
            };
            sum += v;
        }
        Ok(sum)
    }
}

differential! {
    early_returns_from_nested_loops,
    entry: async { (find(&[vec![1, 2], vec![3, 4]], 4).await, find(&[vec![1]], 9).await) },
    #[lowered]
    async fn find(grid: &[Vec<u32>], target: u32) -> Option<(usize, usize)> {
        let _g = Noisy::new("g");
        for (i, row) in grid.iter().enumerate() {
            let _r = Noisy::new(format!("row{i}"));
            for (j, &cell) in row.iter().enumerate() {
                if tick(cell).await == target {
                    return Some((i, j));
                }
            }
        }
        None
    }
}

differential! {
    take_and_replace_fields_across_awaits,
    entry: async {
        let mut st = State { pending: vec![Noisy::new("p1"), Noisy::new("p2")], cur: Noisy::new("c0") };
        let n = st.drain().await;
        (n, st.pending.len(), st.cur.name().to_string())
    },
    struct State { pending: Vec<Noisy>, cur: Noisy }
    impl State {
        #[lowered]
        async fn drain(&mut self) -> usize {
            let batch = std::mem::take(&mut self.pending);
            let mut n = 0;
            for item in batch {
                n += tick(item.touch()).await;
                let old = std::mem::replace(&mut self.cur, item);
                tick(()).await;
                drop(old);
            }
            n
        }
    }
}

differential! {
    borrowed_data_in_and_out,
    entry: async {
        let v = vec!["alpha".to_string(), "be".to_string()];
        let data = [1u8, 2, 3, 4, 5];
        let mut r = Reader { buf: &data, pos: 0 };
        let a = r.read(2).await.to_vec();
        (longest(&v, 1).await.to_string(), a, r.read(9).await.to_vec())
    },
    struct Reader<'a> { buf: &'a [u8], pos: usize }
    impl<'a> Reader<'a> {
        #[lowered]
        async fn read(&mut self, n: usize) -> &'a [u8] {
            let end = (self.pos + tick(n).await).min(self.buf.len());
            let out = &self.buf[self.pos..end];
            self.pos = end;
            out
        }
    }
    #[lowered]
    async fn longest<'a>(v: &'a [String], min: usize) -> &'a str {
        let mut best: &'a str = "";
        for s in v {
            if tick(s.len()).await > min.max(best.len()) {
                best = s.as_str();
            }
        }
        best
    }
}

differential! {
    shared_state_in_cells,
    entry: shared(),
    #[lowered]
    #[allow(clippy::await_holding_refcell_ref)] // `push`'s receiver is borrowed before its argument awaits
    async fn shared() -> (u32, Vec<u32>) {
        use std::cell::{Cell, RefCell};
        use std::rc::Rc;
        let hits = Cell::new(0u32);
        let log = Rc::new(RefCell::new(Vec::new()));
        let log2 = Rc::clone(&log);
        for i in 0..3 {
            hits.set(hits.get() + tick(i).await);
            log2.borrow_mut().push(i);
        }
        log.borrow_mut().push(tick(99).await);
        drop(log2);
        let out = Rc::try_unwrap(log).unwrap().into_inner();
        (hits.get(), out)
    }
}

struct Counter {
    left: u32,
    pending: bool,
}

impl Counter {
    fn next(&mut self) -> NextItem<'_> {
        NextItem { c: self }
    }
}

// A hand-written stream step: pends once, then yields the next count down.
struct NextItem<'a> {
    c: &'a mut Counter,
}

impl Future for NextItem<'_> {
    type Output = Option<u32>;
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<u32>> {
        let c = &mut *self.c;
        if !c.pending {
            c.pending = true;
            cx.waker().wake_by_ref();
            return std::task::Poll::Pending;
        }
        c.pending = false;
        if c.left == 0 {
            return std::task::Poll::Ready(None);
        }
        c.left -= 1;
        std::task::Poll::Ready(Some(c.left))
    }
}

differential! {
    while_let_over_a_stream_and_loop_break_values,
    entry: async { (drain_stream(3).await, search(vec![Some(1), None, Some(30), Some(4)]).await) },
    #[lowered]
    async fn drain_stream(n: u32) -> Vec<u32> {
        let mut s = Counter { left: n, pending: false };
        let mut out = Vec::new();
        let _n = Noisy::new("keep");
        while let Some(x) = s.next().await {
            let y = tick(x * 10).await;
            out.push(y);
        }
        out
    }
    #[lowered]
    async fn search(items: Vec<Option<u32>>) -> Result<u32, String> {
        let mut it = items.into_iter();
        let found = loop {
            match it.next() {
                Some(Some(v)) if tick(v).await > 10 => break v,
                Some(Some(v)) => ev(format!("small {v}")),
                Some(None) => {
                    tick(()).await;
                    continue;
                }
                None => break 0,
            }
        };
        if found == 0 {
            return Err("none".into());
        }
        Ok(found)
    }
}

differential! {
    deferred_initialisation,
    entry: async { (late(true).await, late(false).await) },
    #[lowered]
    #[allow(clippy::needless_late_init)] // the late initialisations are the point
    async fn late(c: bool) -> u32 {
        let x;
        if c {
            x = tick(5).await;
        } else {
            x = 7;
        }
        let y: Noisy;
        if x > 5 {
            y = Noisy::new("big");
        } else {
            y = tick(Noisy::new("small")).await;
        }
        x + tick(y.touch() as u32).await
    }
}

differential! {
    nurseries_whose_children_borrow_locals,
    entry: async { (nurse(vec![1, 2, 3]).await, nests().await) },
    #[lowered]
    async fn nurse(data: Vec<u32>) -> u32 {
        let factor = Noisy::new("factor");
        let total = structured_async::nursery!(|n| {
            let mut hs = Vec::new();
            for x in &data {
                let f = &factor;
                hs.push(n.spawn(async move { tick(x * f.name().len() as u32).await }));
            }
            let mut s = 0;
            for h in hs {
                s += h.await;
            }
            s
        })
        .await;
        total + tick(data.len() as u32).await
    }
    #[lowered]
    async fn nests() -> Vec<u32> {
        let mut out = vec![0u32; 4];
        let base = tick(10).await;
        structured_async::nursery!(|n| {
            let (left, right) = out.split_at_mut(2);
            n.spawn(async move {
                structured_async::nursery!(|m| {
                    for (i, slot) in left.iter_mut().enumerate() {
                        m.spawn(async move { *slot = tick(base + i as u32).await; });
                    }
                })
                .await;
            });
            n.spawn(async move { right[0] = tick(base * 2).await; });
        })
        .await;
        out
    }
}

differential! {
    state_machine_method_over_an_enum,
    entry: async {
        let mut p = Parser { state: PState::Idle, out: vec![] };
        for c in "a1b22".chars() {
            p.feed(c).await;
        }
        p.out
    },
    enum PState { Idle, Word(String), Num(u32) }
    struct Parser { state: PState, out: Vec<String> }
    impl Parser {
        #[lowered]
        async fn feed(&mut self, c: char) {
            let st = std::mem::replace(&mut self.state, PState::Idle);
            self.state = match (st, c) {
                (PState::Idle, c) if c.is_ascii_digit() => PState::Num(tick(c.to_digit(10).unwrap()).await),
                (PState::Idle, c) => PState::Word(c.to_string()),
                (PState::Num(n), c) if c.is_ascii_digit() => PState::Num(n * 10 + tick(c.to_digit(10).unwrap()).await),
                (PState::Num(n), c) => {
                    self.out.push(format!("n{n}"));
                    PState::Word(c.to_string())
                }
                (PState::Word(mut w), c) if !c.is_ascii_digit() => {
                    w.push(c);
                    PState::Word(w)
                }
                (PState::Word(w), c) => {
                    self.out.push(tick(w).await);
                    PState::Num(c.to_digit(10).unwrap())
                }
            };
        }
    }
}

differential! {
    callbacks_recursion_and_select,
    entry: async { (apply(|x| async move { tick(x + 1).await }, 3).await, fib(5).await, sel().await) },
    #[lowered]
    async fn apply<F, Fut>(f: F, n: u32) -> u32
    where
        F: Fn(u32) -> Fut,
        Fut: Future<Output = u32>,
    {
        let mut acc = 0;
        for i in 0..n {
            acc += f(i).await;
        }
        acc + f(100).await
    }
    #[lowered]
    async fn fib(n: u32) -> u64 {
        if n < 2 {
            return tick(n as u64).await;
        }
        let a = Box::pin(fib(n - 1)).await;
        let b = Box::pin(fib(n - 2)).await;
        a + b
    }
    #[lowered]
    async fn sel() -> u32 {
        let a = Noisy::new("a");
        let r = tokio::select! {
            biased;
            x = tick(1) => x + a.touch() as u32,
            y = tick(2) => y,
        };
        r + tick(10).await
    }
}

differential! {
    retry_loop_with_string_building,
    entry: async { (retry(3).await, render(vec![("a", 1), ("b", 22)]).await) },
    #[lowered]
    async fn retry(fail_times: u32) -> Result<String, String> {
        let mut attempt = 0u32;
        let mut delay = 1u32;
        loop {
            attempt += 1;
            let res: Result<String, String> = if attempt <= fail_times {
                Err(format!("try {attempt}"))
            } else {
                Ok(tick(format!("ok after {attempt}")).await)
            };
            match res {
                Ok(v) => break Ok(v),
                Err(e) if attempt >= 5 => break Err(e),
                Err(e) => {
                    ev(format!("retry: {e}, waiting {delay}"));
                    tick(()).await;
                    delay *= 2;
                }
            }
        }
    }
    #[lowered]
    async fn render(rows: Vec<(&'static str, u32)>) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        s.push('[');
        for (k, v) in &rows {
            let v2 = tick(*v).await;
            write!(s, "{k}={v2};").unwrap();
            writeln!(&mut s, " {}", tick(k.len()).await).unwrap();
        }
        s.push_str(&format!("] {}", tick(rows.len()).await));
        s
    }
}

// A user type whose `iter()` yields owned `Copy` items: the lowering guesses `Copy` from the
// name `iter` and has rustc check the guess (a non-`Copy` item is a compile error, see
// ui-tests/lowering/fail/guessed-copy-item.rs), so the loop still lowers explicitly.
#[derive(Clone, Copy)]
struct Cell {
    row: u32,
    col: u32,
}

struct Grid(u32);

static GRID: Grid = Grid(5);

impl Grid {
    fn iter(&self) -> impl Iterator<Item = Cell> + '_ {
        (0..self.0).map(|i| Cell {
            row: i / 2,
            col: i % 2,
        })
    }
}

differential! {
    owned_copy_items_of_a_user_iter,
    entry: cells(&GRID),
    #[lowered]
    async fn cells(grid: &Grid) -> u32 {
        let label = Noisy::new("label");
        let mut sum = 0;
        for c in grid.iter() {
            let r = tick(c.row).await;
            ev(format!("cell {r}"));
            sum += tick(c.col).await + label.touch() as u32;
        }
        sum
    }
}

#[structured_async::structured(strict)]
async fn cells_strict(grid: &Grid) -> u32 {
    let mut sum = 0;
    for c in grid.iter() {
        let r = tick(c.row).await;
        sum += r * 10 + tick(c.col).await;
    }
    sum
}

#[test]
fn owned_copy_items_of_a_user_iter_lower_explicitly() {
    // `strict` refuses any native region: compiling proves the loop is explicit.
    let sum = structured_async::block_on(cells_strict(&GRID));
    // Cells (0,0) (0,1) (1,0) (1,1) (2,0).
    assert_eq!(sum, 42);
}

// A result bound by `let` may borrow the local lent to its await (`first(&v)` returns a
// `&Noisy` into `v`, `s.get(0)` a `&u32` into `s`) while that local is used later too: the
// adapter cannot hand back both, so the statements from the `let` to the end of the result's
// scope run natively (these once failed to compile).
differential! {
    bound_borrows_of_a_lent_local,
    entry: async { (bound_first().await, bound_get(vec![4, 5]).await, in_block().await) },
    async fn first(v: &[Noisy]) -> &Noisy {
        tick(()).await;
        &v[0]
    }
    struct Store(Vec<u32>);
    impl Store {
        async fn get(&self, i: usize) -> &u32 {
            tick(()).await;
            &self.0[i]
        }
    }
    #[lowered]
    async fn bound_first() -> usize {
        let a = Noisy::new("a");
        let n = tick(2).await;
        let v = vec![Noisy::new("v0"), Noisy::new("v1")];
        let f = first(&v).await;
        f.touch() + v.len() + n + a.touch()
    }
    #[lowered]
    async fn bound_get(items: Vec<u32>) -> u32 {
        let s = Store(items);
        let before = tick(1).await;
        let x = s.get(0).await;
        let y = tick(*x).await;
        *x + y + s.0.len() as u32 + before
    }
    #[lowered]
    async fn in_block() -> usize {
        let mut total = 0;
        for round in 0..2 {
            let v = vec![Noisy::new(format!("r{round}"))];
            {
                let f = first(&v).await;
                total += f.touch() + v.len();
            }
            total += tick(round).await;
        }
        total
    }
}

// The same in a scrutinee: `match first(&v).await` and `if let Some(x) = s.get(0).await`
// with `v`/`s` used in the arms and an await after the match (guards a shape that already
// agreed: the bindings may borrow the lender, so the match runs natively).
differential! {
    scrutinee_borrows_of_a_lent_local,
    entry: async { (matched().await, if_let(vec![7]).await, if_let(Vec::new()).await) },
    async fn first(v: &[Noisy]) -> &Noisy {
        tick(()).await;
        &v[0]
    }
    struct Store(Vec<u32>);
    impl Store {
        async fn get(&self, i: usize) -> Option<&u32> {
            tick(()).await;
            self.0.get(i)
        }
    }
    #[lowered]
    async fn matched() -> usize {
        let v = vec![Noisy::new("m0")];
        let n = tick(1).await;
        let k = match first(&v).await {
            f if f.touch() > 5 => 0,
            f => f.touch() + v.len() + n,
        };
        k + v.len() + tick(n).await
    }
    #[lowered]
    async fn if_let(items: Vec<u32>) -> u32 {
        let s = Store(items);
        let n = tick(1).await;
        if let Some(x) = s.get(0).await {
            ev(format!("got {x}"));
            return *x + s.0.len() as u32 + n;
        }
        n + s.0.len() as u32 + tick(2).await
    }
}

// A `for` pattern that leaves part of an owned item unbound (`_`, `..`, `ref`): natively that
// part stays in the loop's `match` until the end of the iteration, across its awaits.
differential! {
    for_pattern_leaving_part_of_the_item,
    entry: async {
        let w = wild(vec![(1, Noisy::new("w1")), (2, Noisy::new("w2"))]).await;
        (w, by_ref(vec![Noisy::new("r1")]).await, guessed_wild(&VALS).await)
    },
    static VALS: [(u32, u32); 2] = [(3, 30), (4, 40)];
    // Items guessed `Copy` (`&(u32, u32)`) stay explicit: the whole item is checked.
    #[lowered]
    async fn guessed_wild(v: &[(u32, u32)]) -> usize {
        let mut t = 0;
        for (i, (a, _)) in v.iter().enumerate() {
            t += tick(i).await + *a as usize;
        }
        t
    }
    #[lowered]
    async fn wild(pairs: Vec<(u32, Noisy)>) -> u32 {
        let mut t = 0;
        for (a, _) in pairs.into_iter() {
            ev(format!("item {a}"));
            t += tick(a).await;
            ev("after await");
        }
        t
    }
    #[lowered]
    async fn by_ref(items: Vec<Noisy>) -> usize {
        let mut t = 0;
        for ref x in items.into_iter() {
            t += x.touch();
            tick(()).await;
            ev("after await");
        }
        t
    }
}

// Other places a pattern leaves part of a temporary unbound across awaits: `while let` over
// `next()`, a `match` on an owned call, `let` of a pair whose `_` part drops at once.
differential! {
    patterns_leaving_part_of_a_temporary,
    entry: async {
        let a = while_wild(vec![(1, Noisy::new("a1")), (2, Noisy::new("a2"))]).await;
        (a, match_wild(3).await, let_wild(4).await)
    },
    fn pair(n: u32) -> (u32, Noisy) {
        (n, Noisy::new(format!("p{n}")))
    }
    #[lowered]
    #[allow(clippy::while_let_on_iterator)]
    async fn while_wild(pairs: Vec<(u32, Noisy)>) -> u32 {
        let mut it = pairs.into_iter();
        let mut t = 0;
        while let Some((a, _)) = it.next() {
            t += tick(a).await;
            ev("after await");
        }
        t
    }
    #[lowered]
    #[allow(clippy::match_single_binding)]
    async fn match_wild(n: u32) -> u32 {
        match pair(n) {
            (a, _) => {
                let b = tick(a).await;
                ev("after await");
                b
            }
        }
    }
    #[lowered]
    async fn let_wild(n: u32) -> u32 {
        let (a, _) = pair(n);
        ev("after let");
        tick(a).await
    }
}

// `for m in rx` over a `&Receiver<T>` parameter yields owned `T`s: a `&T` parameter is guessed
// to iterate references only when its written type says so (`&[T]`, `&Vec<T>`...). Each `m`
// must drop at the end of its iteration, after the awaits, not where it is last used (this
// was a compile error from the guess's check).
differential! {
    receiver_param_yields_owned_items,
    entry: async {
        let (tx, rx) = std::sync::mpsc::channel();
        for i in 0..3 {
            tx.send(Noisy::new(format!("m{i}"))).unwrap();
        }
        drop(tx);
        let n = drain(&rx).await;
        (n, drain(&rx).await)
    },
    #[lowered]
    async fn drain(rx: &std::sync::mpsc::Receiver<Noisy>) -> usize {
        let mut t = 0;
        for m in rx {
            t += tick(m.touch()).await;
            ev("after await");
            t += tick(1).await;
        }
        ev("drained");
        t
    }
}

// The same through a generic `&C` whose `&C: IntoIterator` yields owned items.
differential! {
    generic_ref_param_yields_owned_items,
    entry: async { (total(&Makes(3)).await, pairs(&Makes(2)).await) },
    struct Makes(u32);
    fn make(i: u32) -> Noisy {
        Noisy::new(format!("n{i}"))
    }
    impl<'a> IntoIterator for &'a Makes {
        type Item = Noisy;
        type IntoIter = std::iter::Map<std::ops::Range<u32>, fn(u32) -> Noisy>;
        fn into_iter(self) -> Self::IntoIter {
            (0..self.0).map(make as fn(u32) -> Noisy)
        }
    }
    #[lowered]
    async fn total<C>(items: &C) -> usize
    where
        for<'a> &'a C: IntoIterator<Item = Noisy>,
    {
        let mut t = 0;
        for x in items {
            let n = x.touch();
            t += tick(n).await;
            ev("after await");
        }
        t
    }
    #[lowered]
    async fn pairs(items: &Makes) -> usize {
        let mut t = 0;
        for x in items {
            t += show(&x).await;
            ev("after await");
        }
        t
    }
}

// A `&[T]`, `&[T; N]` or `&Vec<T>` parameter iterated directly still binds references (guessed
// `Copy`, checked by rustc): the loop lowers explicitly (`strict` refuses any native region).
#[structured_async::structured(strict)]
async fn slice_param_strict(v: &[u32], a: &[u32; 2], w: &Vec<(u32, u32)>) -> u32 {
    let mut t = 0;
    for x in v {
        t += tick(*x).await;
    }
    for x in a {
        t += tick(*x * 10).await;
    }
    for (k, x) in w {
        t += tick(*k * 100).await + *x;
    }
    t
}

#[test]
fn slice_and_vec_params_still_lower_explicitly() {
    let w = vec![(1, 5), (2, 6)];
    let t = structured_async::block_on(slice_param_strict(&[1, 2], &[3, 4], &w));
    // 1 + 2, then 30 + 40, then 100 + 5 + 200 + 6.
    assert_eq!(t, 384);
}

// A local moved in a branch that returns through an await (`drop(conn); return x.await`) and
// read after that branch: the branch's await carried the moved local (E0382).
differential! {
    moved_in_a_branch_returning_through_an_await,
    entry: async { (close_or_send(Noisy::new("c1"), 0).await, close_or_send(Noisy::new("c2"), 2).await) },
    #[lowered]
    async fn close_or_send(conn: Noisy, n: u32) -> usize {
        let buf = Noisy::new("buf");
        if n == 0 {
            drop(conn);
            return tick(buf.touch()).await;
        }
        tick(conn.touch() + n as usize).await + buf.touch()
    }
}

// An async `RwLock`'s guard borrows the lock (`read()`/`write()` with no argument, unlike the
// io ones taking a buffer): `let r = cache.read().await` was taken for an owned output, so a
// one-statement native region handed `r` back beside `cache` (E0505).
differential! {
    rwlock_guards_held_across_awaits,
    entry: cache(),
    #[lowered]
    async fn cache() -> (usize, Vec<u32>) {
        let cache = tokio::sync::RwLock::new(vec![1u32]);
        {
            let r = cache.read().await;
            ev(format!("len {}", r.len()));
            tick(()).await;
        }
        let n = cache.read().await.len();
        {
            let mut w = cache.write().await;
            w.push(tick(2).await);
        }
        let w = cache.write().await;
        tick(()).await;
        drop(w);
        (n, cache.into_inner())
    }
}

// A user type's methods named like `Option`'s consuming ones (a parser's `expect(&mut self)`,
// a grid's `map(&self)`, `ok(&self)`) borrow: the receiver, taken for moved out, dropped at
// the await instead of at the end of its scope (a silent drop-order difference).
differential! {
    borrowing_methods_named_like_consuming_ones,
    entry: async {
        (
            parse("ab").await,
            parse("xb").await,
            grid().await,
            std_values(Some(2), Ok(Noisy::new("ok"))).await,
            from_a_getter().await,
            named_like_a_result().await,
            split_tiles(&Image).await,
        )
    },
    struct Parser { src: Vec<char>, pos: usize, _n: Noisy }
    impl Parser {
        fn expect(&mut self, c: char) -> Result<(), String> {
            if self.src.get(self.pos) == Some(&c) {
                self.pos += 1;
                Ok(())
            } else {
                Err(format!("want {c} at {}", self.pos))
            }
        }
    }
    struct Grid { cells: Vec<u32>, _n: Noisy }
    impl Grid {
        fn map(&self, f: impl Fn(u32) -> u32) -> Vec<u32> {
            self.cells.iter().map(|c| f(*c)).collect()
        }
        fn ok(&self) -> bool {
            !self.cells.is_empty()
        }
    }
    #[lowered]
    async fn parse(s: &str) -> Result<usize, String> {
        let mut p = Parser { src: s.chars().collect(), pos: 0, _n: Noisy::new("parser") };
        p.expect('a')?;
        let v = tick(1).await;
        ev("end");
        Ok(v)
    }
    #[lowered]
    async fn grid() -> usize {
        let g = Grid { cells: vec![1, 2], _n: Noisy::new("grid") };
        let doubled = g.map(|c| c * 2);
        let fine = g.ok();
        let v = tick(doubled.len()).await;
        ev("end");
        v + fine as usize
    }
    // The local comes from a method named like one returning an `Option` (`get`), or its
    // type is named like a `Result`: neither makes it one.
    struct Registry;
    impl Registry {
        fn get(&self) -> Parser {
            Parser { src: vec!['a'], pos: 0, _n: Noisy::new("got") }
        }
    }
    struct SearchResult { hits: u32, _n: Noisy }
    impl SearchResult {
        fn ok(&self) -> bool {
            self.hits > 0
        }
    }
    #[lowered]
    async fn from_a_getter() -> Result<usize, String> {
        let reg = Registry;
        let mut p = reg.get();
        p.expect('a')?;
        let v = tick(2).await;
        ev("end");
        Ok(v)
    }
    #[lowered]
    async fn named_like_a_result() -> bool {
        let r: SearchResult = SearchResult { hits: 1, _n: Noisy::new("found") };
        let good = r.ok();
        tick(()).await;
        ev("end");
        good
    }
    // Nor is a local from a method named like one making an iterator (`split`).
    struct Image;
    impl Image {
        fn split(&self, k: u32) -> Tiles {
            Tiles { n: k * 2, _n: Noisy::new("tiles") }
        }
    }
    struct Tiles { n: u32, _n: Noisy }
    impl Tiles {
        fn map(&self, f: impl Fn(u32) -> u32) -> u32 {
            f(self.n)
        }
    }
    #[lowered]
    async fn split_tiles(img: &Image) -> u32 {
        let tiles = img.split(2);
        let t = tiles.map(|n| n + 1);
        tick(()).await;
        ev("end");
        t
    }
    // Known `Option`s and `Result`s are still moved by them.
    #[lowered]
    async fn std_values(o: Option<u32>, r: Result<Noisy, String>) -> u32 {
        let n = Some(Noisy::new("some"));
        let name = n.map(|n| n.name().len()).unwrap_or(0);
        let k = r.unwrap().touch();
        let v = tick(o.unwrap_or(0)).await;
        ev("end");
        v + name as u32 + k as u32
    }
}

// The awaited value a body's tail expression reads (`fetch(..).await.touch() + ..`) is a
// temporary of that expression: it drops before the body's locals and parameters, not after
// them as a local of the last block.
differential! {
    awaited_value_read_by_the_tail_expression,
    entry: async { (reply(Noisy::new("req")).await, fresh().await, matched(Noisy::new("m")).await) },
    async fn fetch(name: &str) -> Noisy {
        tick(()).await;
        Noisy::new(format!("resp-{name}"))
    }
    #[lowered]
    async fn reply(req: Noisy) -> usize {
        let buf = Noisy::new("buf");
        tick(()).await;
        fetch(req.name()).await.touch() + buf.name().len()
    }
    #[lowered]
    async fn fresh() -> usize {
        let buf = Noisy::new("buf");
        tick(Noisy::new("t")).await.touch() + buf.name().len()
    }
    #[lowered]
    async fn matched(m: Noisy) -> usize {
        let _g = Noisy::new("g");
        match tick(Noisy::new("s")).await.touch() {
            0 => 0,
            n => n + m.name().len(),
        }
    }
}
