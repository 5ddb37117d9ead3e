//! Unit tests of the liveness analysis.

use super::*;

fn analyse(body: &str) -> (Analysis, syn::Block) {
    let block: syn::Block = syn::parse_str(body).unwrap();
    let mut a = Analysis::default();
    a.visit_block(&block);
    (a, block)
}

fn id(a: &Analysis, name: &str, nth: usize) -> LocalId {
    (0..a.locals.len())
        .filter(|&i| a.locals[i].name == name)
        .nth(nth)
        .unwrap()
}

fn kinds(a: &Analysis, local: LocalId) -> Vec<Use> {
    a.mentions
        .iter()
        .filter(|m| m.local == local)
        .map(|m| m.kind)
        .collect()
}

#[test]
fn shadowing_makes_a_new_local_and_the_old_one_stays_in_scope() {
    let (a, block) = analyse("{ let x = f(); let x = x.len(); g().await; x }");
    let (old, new) = (id(&a, "x", 0), id(&a, "x", 1));
    assert_ne!(old, new);
    assert_eq!(kinds(&a, old), [Use::Ref]);
    assert_eq!(kinds(&a, new), [Use::Move]);
    let Stmt::Expr(await_expr @ Expr::Await(_), _) = &block.stmts[2] else {
        panic!("the third statement is the await")
    };
    let p = &a.points[&key(await_expr)];
    assert_eq!(p.in_scope, [old, new]);
}

#[test]
fn scopes_end_where_their_block_ends() {
    let (a, block) = analyse("{ let outer = 1; { let inner = 2; } h().await; }");
    let inner = id(&a, "inner", 0);
    let outer = id(&a, "outer", 0);
    assert!(a.locals[inner].end < a.locals[outer].end);
    let Stmt::Expr(await_expr, _) = &block.stmts[2] else {
        panic!("the third statement is the await")
    };
    assert_eq!(a.points[&key(await_expr)].in_scope, [outer]);
}

#[test]
fn how_a_local_is_used() {
    let (a, _) = analyse(
        "{ let mut v = Vec::new(); v.push(1); consume(v.into_iter()); \
           let w = s; let r = &t; let n = p.field; q = 3; z += 1; \
           println!(\"{k}\"); mystery!(m); let c = || c2; }",
    );
    let declared: Vec<_> = a.locals.iter().map(|l| l.name.to_string()).collect();
    assert_eq!(declared, ["v", "w", "r", "n", "c"]);
    let v = id(&a, "v", 0);
    assert_eq!(kinds(&a, v), [Use::Ref, Use::Move]);
    // `t` is not a local of this body, so `&t` borrows nothing the frame owns.
    assert!(!a.locals[id(&a, "r", 0)].borrowing);
}

#[test]
fn borrows_of_locals_are_found_transitively() {
    let (a, _) = analyse(
        "{ let v = vec![1]; let first = &v[0]; let alias = first; \
           let len = v.len(); let it = v.iter(); let copy = v.clone(); }",
    );
    let borrowing = |n: &str| a.locals[id(&a, n, 0)].borrowing;
    assert!(borrowing("first"));
    assert!(borrowing("alias"));
    assert!(borrowing("it"));
    assert!(!borrowing("len"));
    assert!(!borrowing("copy"));
}

#[test]
fn what_a_result_carries_from_its_receiver() {
    let (a, _) = analyse(
        "{ let v = vec![1]; let s = String::new(); let parts: Vec<&str> = s.split(' ').collect(); \
           let all: Vec<_> = v.iter().collect(); let top = v.iter().max(); let again = parts.clone(); \
           let n = v.iter().count(); let owned = v.clone(); }",
    );
    let borrowing = |n: &str| a.locals[id(&a, n, 0)].borrowing;
    assert!(borrowing("parts"));
    assert!(borrowing("all"));
    assert!(borrowing("top"));
    assert!(
        borrowing("again"),
        "a clone of a borrowing local borrows too"
    );
    assert!(!borrowing("n"));
    assert!(!borrowing("owned"));
}

#[test]
fn a_move_closure_or_block_takes_its_captures_by_value() {
    let (a, _) = analyse(
        "{ let s = f(); let t = f(); let u = f(); let k = f(); \
           let b = async move { s.len() }; let c = move || t.a.len(); let d = || u.len(); \
           let e = move |k: u32| k; }",
    );
    let first = |n: &str| kinds(&a, id(&a, n, 0));
    assert_eq!(first("s"), [Use::Move]);
    assert_eq!(first("t"), [Use::Field], "only the field named is captured");
    assert_eq!(first("u"), [Use::Ref], "a plain closure borrows for `len`");
    assert!(
        first("k").is_empty(),
        "the closure's own `k` is another local"
    );
    // Drop flags never rewrite a mention inside a `move` capture.
    assert!(
        a.mentions
            .iter()
            .filter(|m| m.kind == Use::Move)
            .all(|m| m.node.is_none())
    );
}

#[test]
fn a_call_of_a_local_may_borrow_or_consume_it() {
    let (a, _) = analyse("{ let f = g(); let x = f(1); }");
    assert_eq!(kinds(&a, id(&a, "f", 0)), [Use::Unknown]);
}

#[test]
fn a_local_of_a_primitive_type_holds_no_borrow_whatever_is_assigned() {
    let (a, _) = analyse(
        "{ let v = vec![1]; let f = |x: u64| x; let r = &v[0]; \
           let mut n: u64 = f(v[0]); n = *r; let mut m = 0; m = *r; \
           let mut s: &u64 = &0; s = &v[0]; let mut k = f(v[0]); k = *r; }",
    );
    let borrowing = |n: &str| a.locals[id(&a, n, 0)].borrowing;
    assert!(borrowing("r"));
    assert!(!borrowing("n"));
    assert!(!borrowing("m"));
    assert!(borrowing("s"));
    // Without a type, a value read through a borrowing local may be a borrow itself.
    assert!(borrowing("k"));
}

#[test]
fn moves_inside_branches_are_conditional() {
    let (a, _) = analyse("{ let s = f(); if c() { drop(s); } g().await; }");
    let s = id(&a, "s", 0);
    let m = a.mentions.iter().find(|m| m.local == s).unwrap();
    assert_eq!(m.kind, Use::Move);
    assert!(m.depth > a.locals[s].depth);
}

#[test]
fn format_strings_capture_locals_by_name() {
    let mut out = Vec::new();
    token_idents(quote::quote!(format!("{a} {{b}} {c:?} {0}", d)), &mut out);
    token_idents(quote::quote!(println!(r"{e}", r#"{f}"#)), &mut out);
    let names: Vec<String> = out.iter().map(ToString::to_string).collect();
    assert_eq!(names, ["format", "a", "c", "d", "println", "e", "f"]);
}

#[test]
fn pattern_bindings_skip_constants_and_take_the_first_or_case() {
    let pat = syn::parse::Parser::parse_str(
        Pat::parse_single,
        "(Some(ref a), mut b, None, [c, .., MAX], (d | d))",
    )
    .unwrap();
    let mut out = Vec::new();
    pattern_bindings(&pat, &mut out);
    let got: Vec<(String, bool, bool)> = out
        .into_iter()
        .map(|(i, m, r)| (i.to_string(), m, r))
        .collect();
    assert_eq!(
        got,
        [
            ("a".into(), false, true),
            ("b".into(), true, false),
            ("c".into(), false, false),
            ("d".into(), false, false),
        ]
    );
}
