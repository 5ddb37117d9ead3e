//! Unit tests of the lowering: which bodies lower explicitly, and the report it gives.

use super::*;

/// Lowers `src` (an `async fn`) and returns whether the machine is explicit, with the
/// report line.
fn lowered(args: &str, src: &str) -> (bool, String) {
    let item: ItemFn = syn::parse_str(src).unwrap();
    let args = crate::args::parse(args.parse().unwrap()).unwrap();
    let parts = crate::sig::split(&item);
    let mut report = Report::new("f");
    match lower(&item, &parts, &args, &mut report) {
        Ok(out) => (out.is_some(), report.lines().join("\n")),
        Err(e) => (false, e.to_string()),
    }
}

#[test]
fn control_flow_is_lowered_explicitly() {
    for body in [
        "async fn f(n: u32) -> u32 { let a = g(n).await; a + 1 }",
        "async fn f(n: u32) -> Result<u32, E> { let a = g(n).await?; if a > 1 { return Ok(a); } Ok(0) }",
        "async fn f(n: u32) { let mut i = 0; while i < n { g(i).await; i += 1; } }",
        "async fn f(v: Option<u32>) -> u32 { match v { Some(x) if x > 2 => g(x).await, Some(x) => x, None => 0 } }",
        "async fn f(v: Option<u32>) -> u32 { match v { Some(x) => g(x).await, _ => 0 } }",
        "async fn f(n: u32) -> u32 { let mut t = 0; for i in 0..n { t += g(i).await; } t }",
        "async fn f(&mut self) -> u32 { self.n = g(self.n).await; self.n }",
        "async fn f(s: String) -> usize { let n: usize = g(&s).await; n + s.len() }",
        "async fn f() -> u32 { g(1).await + g(2).await * g(3).await }",
        "async fn f() -> Result<u32, E> { let x = g(1).await? + g(2).await?; Ok(x) }",
        "async fn f(n: u32) -> u32 { let mut a: u32 = n; let b = a; a = g(b).await; a + b }",
        "async fn f(mut rx: Rx) { while let Some(x) = rx.recv().await { h(x).await; } }",
        "async fn f(n: u32) -> u32 { if n > 1 { return g(n).await + 1; } if n > 0 { return g(1).await * g(2).await; } 0 }",
    ] {
        let (explicit, report) = lowered("", body);
        assert!(explicit, "{body}: {report}");
        assert!(report.contains("fallbacks: none"), "{body}: {report}");
    }
}

#[test]
fn borrows_across_awaits_and_hidden_awaits_keep_a_native_frame() {
    let (explicit, report) = lowered(
        "",
        "async fn f(v: Vec<u32>) { let r = &v; g().await; h(r); }",
    );
    assert!(!explicit);
    assert!(report.contains("`r` may hold a borrow"), "{report}");

    let (_, report) = lowered(
        "",
        "async fn f() -> u32 { let x = g().await; join!(a, b); x }",
    );
    assert!(report.contains("native region from"), "{report}");
    assert!(report.contains("`join!` may hide an await"), "{report}");
}

#[test]
fn a_region_ends_where_no_local_borrows_another_and_the_lowering_goes_on() {
    for (body, statements) in [
        // The loop's `x` borrows `v` across the await: the loop alone needs the frame.
        (
            "async fn f(v: Vec<u32>) -> u32 { for x in &v { g(x).await; } let n = h().await; n + v.len() as u32 }",
            1,
        ),
        // The guard dies at the block's end; `?` and `return` inside leave the region.
        (
            "async fn f(c: RefCell<u32>) -> Option<u32> { { let b = c.borrow(); g(*b).await?; if *b > 2 { return None; } } let n = h().await; Some(n) }",
            1,
        ),
        // The borrow is taken a statement before the await and dies after the next.
        (
            "async fn f(v: Vec<u32>) -> usize { let r = &v; g().await; h(r); let n = k().await; n }",
            3,
        ),
    ] {
        let (explicit, report) = lowered("", body);
        assert!(explicit, "{body}: {report}");
        assert!(
            report.contains(&format!(
                "over {statements} statement(s), explicit after it"
            )),
            "{body}: {report}"
        );
        assert!(!report.contains("to the end"), "{body}: {report}");
    }
}

#[test]
fn a_local_moved_in_a_region_and_assigned_again_is_not_lost() {
    // `a` is moved and assigned again around the region: it may hold a value the native
    // frame drops at the end, so it comes back from the region with its drop flag.
    let (_, report) = lowered(
        "",
        "async fn f(mut a: S, v: Vec<u32>) { drop(a); for x in &v { g(x).await; } a = S::new(); h().await; k().await; }",
    );
    assert!(report.contains("explicit after it"), "{report}");
    assert!(
        report.contains("drop flags (held as `Option`): `a`"),
        "{report}"
    );
}

#[test]
fn a_region_is_not_left_by_break_or_continue() {
    // `continue` out of the region cannot come back as a value: the loop body keeps its
    // frame to the end, so the region is the rest of the fn.
    let (_, report) = lowered(
        "",
        "async fn f(v: Vec<u32>) { 'o: loop { for x in &v { if *x > 1 { continue 'o; } g(x).await; } if h().await { break; } } }",
    );
    assert!(!report.contains("explicit after it"), "{report}");
    // A `continue` of a loop inside the region stays native.
    let (_, report) = lowered(
        "",
        "async fn f(v: Vec<u32>) { loop { for x in &v { if *x > 1 { continue; } g(x).await; } if h().await { break; } } }",
    );
    assert!(
        report.contains("over 1 statement(s), explicit after it"),
        "{report}"
    );
}

#[test]
fn strict_mode_names_the_local_and_the_await() {
    let item: ItemFn =
        syn::parse_str("async fn f(v: Vec<u32>) { let r = &v; g().await; h(r); }").unwrap();
    let args = crate::args::parse("strict".parse().unwrap()).unwrap();
    let parts = crate::sig::split(&item);
    let err = lower(&item, &parts, &args, &mut Report::new("f")).unwrap_err();
    assert!(
        err.to_string().contains("local `r` may hold a borrow"),
        "{err}"
    );
}

#[test]
fn the_macro_does_not_panic_on_odd_bodies() {
    for body in [
        "async fn f() { loop {} }",
        "async fn f() -> u8 { return g().await; }",
        "async fn f() { let _: () = g().await; let (a, b) = h().await; }",
        "async fn f(x: u8) { 'a: { if x > 1 { break 'a; } g().await; } }",
        "async fn f() { let x; x = g().await; drop(x); }",
        "async fn f() -> u8 { match g().await { _ => h().await } }",
    ] {
        let _ = lowered("", body);
        let _ = lowered("strict", body);
    }
}

#[test]
fn drop_flag_bodies_lower_explicitly() {
    for body in [
        // Moved on one path: dropped at the end on the others.
        "async fn f(c: bool, a: S) -> u32 { if c { drop(a); } let x = g(1).await; x }",
        // Moved, then assigned again and read.
        "async fn f(c: bool, mut a: S) -> u32 { if c { drop(a); } let x = g(1).await; a = g(S).await; h(&a); x }",
        "async fn f(mut a: S) { a = g(a).await; h(&a); k().await; }",
        // Declared without a value, assigned on both paths.
        "async fn f(c: bool) -> u32 { let b: S; if c { b = g(S).await; } else { b = S; } h(&b); k().await }",
        // Consumed and replaced in a loop, also inside a branch of it.
        "async fn f(n: u32) { let mut a = S; let mut i = 0; while i < n { i += 1; let s = g(S).await; drop(a); a = s; } }",
        "async fn f(n: u32) { let mut a = S; let mut i = 0; while i < n { i += 1; if i % 2 == 0 { drop(a); a = g(S).await; } } }",
    ] {
        let (explicit, report) = lowered("", body);
        assert!(explicit, "{body}: {report}");
        assert!(report.contains("fallbacks: none"), "{body}: {report}");
        assert!(report.contains("drop flags"), "{body}: {report}");
    }
}

#[test]
fn a_flag_is_not_taken_where_the_move_may_be_a_copy_read_again() {
    // `n` may be `Copy`: read after the conditional move, it must keep its value (no flag).
    for body in [
        "async fn f(c: bool, n: N) -> N { if c { h(n); } g().await; n }",
        "async fn f(c: bool, n: N) -> u32 { if c { drop(n); } g().await; k(&n) }",
        "async fn f(c: bool, n: N) { loop { if c { h(n); } g().await; } }",
        // A `continue` (or `break`) between the move and the assignment skips it.
        "async fn f(c: bool, n: N) { loop { if c { h(n); if g().await { continue; } n = N::new(); } } }",
    ] {
        let (_, report) = lowered("", body);
        assert!(!report.contains("drop flags"), "{body}: {report}");
    }
}

#[test]
fn an_expression_with_two_awaits_and_a_try_in_a_loop_without_exit_is_lowered() {
    // B7: this shape once panicked inside the lowering (so the body fell back whole).
    let body = "async fn f(n: u64) -> Result<u64, E> { 'l2: loop { let v4 = ((show(&N::new(1)).await as u64)).wrapping_mul(7).wrapping_add(fallible(49u64 % 100).await?); } }";
    let (explicit, report) = lowered("", body);
    assert!(explicit, "{report}");
    assert!(report.contains("fallbacks: none"), "{report}");
}

#[test]
fn a_move_closure_owns_its_captures() {
    // A `move` closure of plain locals holds no borrow: carried across the await explicitly.
    // A non-`move` one borrows what it captures and keeps a native region.
    let (explicit, report) = lowered(
        "",
        "async fn f(n: u64) -> u64 { let k: u64 = n % 13; let f = move |x: u64| x ^ k; let v = g(1).await; f(v) }",
    );
    assert!(explicit && report.contains("fallbacks: none"), "{report}");
    let (_, report) = lowered(
        "",
        "async fn f(n: u64) -> u64 { let k = V::new(n); let f = |x: u64| x ^ k.get(); let v = g(1).await; f(v) }",
    );
    assert!(report.contains("`f` may hold a borrow"), "{report}");
}

#[test]
fn no_flag_where_a_mention_is_a_place_the_rewrite_cannot_reach() {
    // A struct update moves only some fields; a destructuring assignment is a pattern.
    for body in [
        "async fn f(c: bool, x: S) { if c { let s = S { a: 1, ..x }; h(s); } g().await; }",
        "async fn f(c: bool, mut x: S, mut y: S) { if c { (x, y) = (S::new(), S::new()); } g().await; h(&y); }",
    ] {
        let (_, report) = lowered("", body);
        assert!(!report.contains("drop flags"), "{body}: {report}");
    }
}

#[test]
fn matching_a_place_moves_it_only_where_the_patterns_take_all_of_it() {
    // `Ok(x)` leaves an `Err` behind, `(a, _)` leaves `.1`, a guard may send `Some` to `_`:
    // the local may still hold something to drop at the end of its scope.
    for body in [
        "async fn f(r: Result<N, N>) -> u32 { if let Ok(x) = r { h(x); } g().await }",
        "async fn f(r: Result<N, N>) -> u32 { match r { Ok(x) => h(x), _ => {} } g().await }",
        "async fn f(p: (N, N)) -> u32 { let (a, _) = p; h(a); g().await }",
        "async fn f(o: Option<N>) -> u32 { match o { Some(x) if k(&x) => h(x), _ => {} } g().await }",
    ] {
        let (_, report) = lowered("", body);
        assert!(report.contains("cannot tell whether"), "{body}: {report}");
    }
    // Taking all of it, or matching without binding by value, keeps the machine explicit.
    for body in [
        "async fn f(o: Option<N>) -> u32 { if let Some(x) = o { h(x); } g().await }",
        "async fn f(o: Option<N>) -> u32 { match o { Some(x) => h(x), _ => {} } g().await }",
        "async fn f(r: Result<N, N>) -> u32 { match r { Ok(x) => h(x), Err(e) => h(e) } g().await }",
        "async fn f(r: Result<N, N>) -> u32 { match r { Ok(_) => {} Err(_) => {} } g().await; k(&r) }",
        "async fn f(p: (N, N)) -> u32 { let (a, b) = p; h(a); g().await; k(&b) }",
    ] {
        let (explicit, report) = lowered("", body);
        assert!(
            explicit && report.contains("fallbacks: none"),
            "{body}: {report}"
        );
    }
}

#[test]
fn a_match_or_if_awaiting_only_in_its_scrutinee_runs_in_one_resume_block() {
    for body in [
        "async fn f(r: u32) -> Result<u32, E> { let v = match g(r).await { Ok(v) => v, Err(e) => return Err(e) }; Ok(v) }",
        "async fn f(r: u32) -> u32 { let mut n = 0; match g(r).await { Ok(v) => n += v, Err(_) => n = 1 } h(n).await }",
        "async fn f(r: u32) -> u32 { if g(r).await > 2 { 1 } else { 2 } }",
        // An arm body that is an expression with awaits runs as one adapter.
        "async fn f(m: u32) -> Vec<u32> { let mut out = Vec::new(); match m { n => out.push(g(n).await + g(1).await), } out }",
        // An item popped from a collection is the item, not a borrow of the collection.
        "async fn f(&mut self) { while let Some(j) = self.q.pop_front() { self.run(j).await; } }",
        // Items of `&[T]`, `.iter()`, `.lines()` are references: copied, never moved out.
        "async fn f(ms: &[M]) -> u32 { for m in ms { match m { M::A(t) if t.ok() => { g(t).await; } _ => {} } } 0 }",
        "async fn f(t: &str, v: Vec<u32>) -> u32 { for l in t.lines() { let _r = N::new(format!(\"{l}\")); g(1).await; } for (i, x) in v.into_iter().enumerate() { g(x).await; } 0 }",
    ] {
        let (explicit, report) = lowered("", body);
        assert!(
            explicit && report.contains("fallbacks: none"),
            "{body}: {report}"
        );
    }
}

#[test]
fn a_let_that_may_borrow_its_lent_local_is_a_region() {
    // `f` may borrow `v`: the adapter cannot hand back both, the rest runs natively (here
    // the whole body).
    let (explicit, report) = lowered(
        "",
        "async fn f(v: Vec<String>) -> usize { let f = first(&v).await; f.len() + v.len() }",
    );
    assert!(!explicit, "{report}");
    assert!(
        report.contains("`f` may hold a borrow of `v`, lent to this await"),
        "{report}"
    );
    let (explicit, report) = lowered(
        "",
        "async fn f(s: Vec<u32>) -> u32 { g().await; let x = s.get(0).await; *x + s.len() as u32 }",
    );
    assert!(explicit, "{report}");
    assert!(report.contains("native region from `let x"), "{report}");
    assert!(report.contains("`x` may hold a borrow of `s`"), "{report}");
    // A primitive result holds no borrow: the `let` stays explicit.
    let (explicit, report) = lowered(
        "",
        "async fn f(s: String) -> usize { let n: usize = g(&s).await; h().await; n + s.len() }",
    );
    assert!(explicit, "{report}");
    assert!(report.contains("fallbacks: none"), "{report}");
}

#[test]
fn for_items_guessed_copy_are_checked_where_the_loop_binds_them() {
    let expansion = |src: &str| {
        let item: ItemFn = syn::parse_str(src).unwrap();
        let args = crate::args::parse(TokenStream::new()).unwrap();
        let parts = crate::sig::split(&item);
        let mut report = Report::new("f");
        let out = lower(&item, &parts, &args, &mut report).unwrap();
        out.map(|t| t.to_string()).unwrap_or_default()
    };
    // Guessed from names: `iter()` (and adapters keeping its items), `&v`, a parameter whose
    // written type iterates references (`&[T]`, `&[T; N]`, `&Vec<T>`, `&HashMap<K, V>`...).
    for (src, checked) in [
        (
            "async fn f(v: &Grid) { for c in v.iter() { g(c).await; } }",
            &["c"][..],
        ),
        (
            "async fn f(v: &Vec<u32>) { for (i, x) in v.iter().enumerate() { g(*x + i).await; } }",
            &["i", "x"],
        ),
        (
            "async fn f(v: &Vec<u32>) { for x in v { g(*x).await; } }",
            &["x"],
        ),
        (
            "async fn f(v: &[u32]) { for x in v { g(*x).await; } }",
            &["x"],
        ),
        (
            "async fn f(v: &[u32; 3]) { for x in (v) { g(*x).await; } }",
            &["x"],
        ),
        (
            "async fn f(m: &std::collections::HashMap<u32, u8>) { for (k, v) in m { g(*k, *v).await; } }",
            &["k", "v"],
        ),
    ] {
        let out = expansion(src);
        assert!(!out.is_empty(), "{src}: not lowered");
        for name in checked {
            let call = format!("assert_copy_item (& {name})");
            assert!(out.contains(&call), "{src}: no `{call}` in {out}");
        }
    }
    // A `_` leaves part of a guessed item in the loop's `match`: the whole item is checked.
    let out = expansion(
        "async fn f(v: &Vec<u32>) { for (i, _) in v.iter().enumerate() { g(i).await; } }",
    );
    assert!(out.contains("assert_copy_item (& __n)"), "{out}");
    assert!(out.contains("assert_copy_item (& i)"), "{out}");
    // ... and of an item not guessed `Copy` it is dropped at the end of the iteration only
    // by a native frame.
    let (explicit, report) = lowered(
        "",
        "async fn f(v: Vec<(u32, Noisy)>) -> u32 { for (a, _) in v.into_iter() { g(a).await; } 0 }",
    );
    assert!(explicit, "{report}");
    assert!(
        report.contains("a `_` or `..` in a `for` pattern"),
        "{report}"
    );
    // Proven or not assumed: a range's items, owned items of `into_iter()`.
    for src in [
        "async fn f(n: u32) { for i in 0..n { g(i).await; } }",
        "async fn f(n: u32) { for _ in 0..n { g().await; } }",
        "async fn f(v: Vec<Noisy>) { for x in v.into_iter() { g(&x).await; } }",
        // A `&T` parameter whose `&T: IntoIterator` may yield owned items: no guess.
        "async fn f(rx: &std::sync::mpsc::Receiver<Noisy>) { for m in rx { g(&m).await; } }",
        "async fn f<C>(items: &C) where for<'a> &'a C: IntoIterator<Item = Noisy> { for x in items { g(&x).await; } }",
        "async fn f(v: &mut Vec<Noisy>) { for x in v { g(x).await; } }",
    ] {
        let out = expansion(src);
        assert!(!out.is_empty(), "{src}: not lowered");
        assert!(!out.contains("assert_copy_item"), "{src}: {out}");
    }
}

#[test]
fn tracing_sigils_and_spans_keep_the_lowering_explicit() {
    for body in [
        // `?frame` records with `Debug`: a sigil, not the try operator.
        "async fn f(frame: Vec<u8>) -> Result<usize, E> { debug!(?frame); let n = g().await?; Ok(n + frame.len()) }",
        "async fn f(k: u32) -> Result<u32, E> { tracing::info!(key = ?k, %k, \"get\"); Ok(g(k).await? + k) }",
        "async fn f(x: u32) -> Result<u32, E> { let span = tracing::info_span!(\"work\", x); let n = g().await?; drop(span); Ok(n + x) }",
        "async fn f(x: u32) -> u32 { tracing::event!(Level::INFO, x); g(x).await }",
        // A local named in a log macro is borrowed, not maybe moved.
        "async fn f(&mut self) -> Result<usize, E> { let frame = vec![1u8]; debug!(request = ?frame); self.conn.write(&frame).await }",
        "async fn f(c: &mut Conn) -> Result<usize, E> { let frame = vec![1u8]; tracing::info!(%frame, \"{}\", frame.len()); c.write(&frame).await }",
    ] {
        let (explicit, report) = lowered("", body);
        assert!(explicit, "{body}: {report}");
        assert!(report.contains("fallbacks: none"), "{body}: {report}");
    }
    // A try operator inside such a macro still leaves the fn from inside its tokens.
    for body in [
        "async fn f() -> Result<u32, E> { debug!(\"{}\", h()?); g().await }",
        "async fn f() -> Result<u32, E> { info!(?x, \"{}\", y??); g().await }",
        "async fn f() -> Result<u32, E> { info!(value = x?); g().await }",
    ] {
        let (_, report) = lowered("", body);
        assert!(report.contains("contains `?`"), "{body}: {report}");
    }
}

#[test]
fn reports_name_the_receiver_self() {
    let (explicit, report) = lowered(
        "",
        "async fn f(&mut self) -> Result<usize, E> { self.conn.read().await }",
    );
    assert!(!explicit, "{report}");
    assert!(report.contains("`self`"), "{report}");
    assert!(!report.contains("__self"), "{report}");
    // A region's report quotes its first statement.
    let (_, report) = lowered(
        "",
        "async fn f(&mut self) -> usize { let n = self.n; let r = self.m.lock().await; h().await; r.len() + n }",
    );
    assert!(
        report.contains("native region from `let r = self . m"),
        "{report}"
    );
    assert!(!report.contains("__self"), "{report}");
}

#[test]
fn a_move_closure_takes_its_captures_where_it_stands() {
    for body in [
        // The closure body runs later (or never), but `c` moves into it here, on every path.
        "async fn f(c: &mut Counter) -> u32 { let mut inc = move || { c.n += 1; c.n }; g(()).await; inc() + inc() }",
        "async fn f(s: String) -> usize { let fut = async move { s.len() }; g().await; fut.await }",
    ] {
        let (explicit, report) = lowered("", body);
        assert!(explicit, "{body}: {report}");
        assert!(report.contains("fallbacks: none"), "{body}: {report}");
    }
}
