//! Mutations on the syntax tree: most token-level mutants no longer parse as a fn, so these
//! keep the item a fn and change what the lowering sees (expressions wrapped in awaits, `?`,
//! jumps and blocks, statements moved, deleted or brought in from other bodies, patterns and
//! signatures changed).

use quote::quote;
use syn::parse::Parser;
use syn::visit::{self, Visit};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, ItemFn, Pat, Stmt, parse_quote};

use super::Rng;

/// Expressions and statements of the corpus, to bring into other bodies.
#[derive(Default)]
pub(super) struct Donors {
    exprs: Vec<Expr>,
    stmts: Vec<Stmt>,
}

impl Donors {
    pub(super) fn add(&mut self, item: &ItemFn) {
        struct Collect<'d>(&'d mut Donors);
        impl<'ast> Visit<'ast> for Collect<'_> {
            fn visit_expr(&mut self, e: &'ast Expr) {
                self.0.exprs.push(e.clone());
                visit::visit_expr(self, e);
            }
            fn visit_stmt(&mut self, s: &'ast Stmt) {
                self.0.stmts.push(s.clone());
                visit::visit_stmt(self, s);
            }
        }
        Collect(self).visit_block(&item.block);
    }
}

/// Statements to insert.
const STMTS: &[&str] = &[
    "yield_!(1);",
    "yield_!(tick(2).await);",
    "return;",
    "return tick(1).await;",
    "break;",
    "continue;",
    "break 'a;",
    "let x = tick(1).await;",
    "let mut x = 0;",
    "let x;",
    "x = tick(2).await;",
    "let Some(y) = tick(x).await else { return; };",
    "let (a, _) = (tick(1).await, Noisy::new(\"n\"));",
    "drop(x);",
    "let _ = x;",
    "let r = &x;",
    "let n = Noisy::new(\"n\");",
    "tick(1).await?;",
    "join!(a, b);",
    "fn inner() {}",
    "struct S;",
    "#[cfg(any())] tick(1).await;",
    "#[allow(unused)] let z = tick(1).await;",
];

/// Expressions that reach the corners of the lowering: nested awaits, macros around awaits,
/// `self`, shadowing, labelled blocks, closures and `async` blocks holding jumps or yields.
const EXPRS: &[&str] = &[
    "x.await.await",
    "(tick(1).await, tick(2).await)",
    "[tick(1).await; 2]",
    "tick(1).await..tick(2).await",
    "println!(\"{}\", tick(1).await)",
    "format!(\"{x}\")",
    "vec![tick(1).await, x]",
    "matches!(tick(x).await, Some(_))",
    "join!(a, b)",
    "self.f(tick(1).await)",
    "self",
    "Self::g(self).await",
    "&mut self.v",
    "{ let x = x; tick(x).await }",
    "{ let x = tick(x).await; let x = x + 1; x }",
    "'b: { if tick(true).await { break 'b 1; } 2 }",
    "'b: { tick(1).await; break 'b; }",
    "|| yield_!(1)",
    "async { yield_!(1) }",
    "async { return tick(1).await?; }",
    "|x| { break; }",
    "async move || tick(1).await",
    "const { 1 }",
    "if let Some(x) = tick(x).await { x } else { return None; }",
    "if let Some(x) = y && tick(x).await { 1 } else { 2 }",
    "match tick(x).await { Some(y) if tick(y).await => y, None | Some(_) => 0 }",
    "loop { yield_!(tick(1).await); if x { break tick(2).await; } }",
    "while let Some(y) = tick(x).await { yield_!(y) }",
    "for (i, y) in tick(v).await.into_iter().enumerate() { continue; }",
    "Box::pin(async move { x }).await",
    "x?.await?",
    "S { x: tick(1).await, ..tick(s).await }",
    "(x.await)(tick(1).await)",
    "x[tick(1).await]",
    "-tick(1).await",
    "!tick(true).await",
    "tick(1).await as u64",
    "let Some(y) = x",
    "return",
    "break 'a",
    "continue 'a",
    "yield_!()",
    "yield_!(1, 2)",
    "yield_!(break)",
    "yield_!(return 1)",
    "yield_!(yield_!(1))",
];

/// One mutation of `item` that keeps it a fn.
pub(super) fn mutate(rng: &mut Rng, donors: &Donors, item: &mut ItemFn) {
    match rng.below(10) {
        0..=4 => {
            let n = count_exprs(&item.block);
            if n > 0 {
                let k = rng.below(n);
                let mut f = |e: &mut Expr| *e = mutate_expr(rng, donors, e.clone());
                NthExpr {
                    n: k,
                    f: Some(&mut f),
                }
                .visit_block_mut(&mut item.block);
            }
        }
        5..=7 => {
            let n = count_blocks(&item.block);
            let k = rng.below(n);
            let mut f = |b: &mut Block| mutate_stmts(rng, donors, &mut b.stmts);
            NthBlock {
                n: k,
                f: Some(&mut f),
            }
            .visit_block_mut(&mut item.block);
        }
        8 => mutate_pattern(rng, item),
        _ => mutate_signature(rng, item),
    }
}

/// `e` wrapped or replaced (kept when the wrapper would not parse around it).
fn mutate_expr(rng: &mut Rng, donors: &Donors, e: Expr) -> Expr {
    let new = match rng.below(30) {
        0 | 1 => quote!(#e.await),
        2 => quote!(#e?),
        3 => quote!(#e.await?),
        4 => quote!({ tick(1).await; #e }),
        5 => quote!(if tick(true).await { #e } else { #e }),
        6 => quote!(match #e { x if tick(x).await => x, _ => tick(0).await }),
        7 => quote!(loop { break #e; }),
        8 => quote!('a: loop { if tick(true).await { break 'a #e; } }),
        9 => quote!('a: { if c { break 'a #e; } tick(#e).await }),
        10 if !donors.exprs.is_empty() => return rng.pick(&donors.exprs).clone(),
        11 => rng.word(EXPRS).parse().unwrap_or_default(),
        12 => quote!(yield_!(#e)),
        13 => quote!(return #e),
        14 => quote!(async move { #e }.await),
        15 => quote!((#e, tick(2).await)),
        16 => quote!(&#e),
        17 => quote!(&mut #e),
        18 => quote!({ let x = #e; tick(1).await; x }),
        19 => quote!(drop(#e)),
        20 => quote!((|| #e)()),
        21 => quote!(#e + tick(1).await),
        22 => quote!(while let Some(x) = #e { tick(x).await; }),
        23 => quote!(for x in #e { if tick(x).await { continue; } }),
        24 => quote!(S { f: #e, g: tick(1).await }),
        25 => quote!([#e, tick(1).await]),
        26 => quote!(x = #e),
        27 => quote!(*#e),
        28 => quote!(#e.m(tick(1).await)),
        _ => quote!(f(#e).await),
    };
    syn::parse2(new).unwrap_or(e)
}

fn mutate_stmts(rng: &mut Rng, donors: &Donors, stmts: &mut Vec<Stmt>) {
    let len = stmts.len();
    let pos = rng.below(len + 1);
    match rng.below(10) {
        0 if len > 0 => {
            stmts.remove(pos.min(len - 1));
        }
        1 if len > 0 => {
            let s = stmts[pos.min(len - 1)].clone();
            stmts.insert(pos, s);
        }
        2 if len > 1 => stmts.swap(rng.below(len), rng.below(len)),
        3 | 4 if !donors.stmts.is_empty() => {
            let mut s = rng.pick(&donors.stmts).clone();
            // A tail expression in the middle of a block needs its `;`.
            if let Stmt::Expr(_, semi @ None) = &mut s
                && pos < len
            {
                *semi = Some(Default::default());
            }
            stmts.insert(pos, s);
        }
        5 if len > 0 => {
            let start = rng.below(len);
            let end = start + 1 + rng.below(len - start);
            let mut inner: Vec<Stmt> = stmts.drain(start..end).collect();
            // The run's tail expression (if any) becomes a statement inside the wrapper.
            if let Some(Stmt::Expr(_, semi @ None)) = inner.last_mut() {
                *semi = Some(Default::default());
            }
            let wrapped = match rng.below(7) {
                0 => quote!({ #(#inner)* }),
                1 => quote!(loop { #(#inner)* break; }),
                2 => quote!('a: loop { #(#inner)* break 'a; }),
                3 => quote!(if tick(true).await { #(#inner)* }),
                4 => quote!(for i in 0..2 { #(#inner)* }),
                5 => quote!(async { #(#inner)* }.await;),
                _ => quote!(while tick(false).await { #(#inner)* }),
            };
            match syn::parse2::<Stmt>(wrapped) {
                Ok(w) => stmts.insert(start, w),
                Err(_) => stmts.splice(start..start, inner).for_each(drop),
            }
        }
        6 => {
            let src = format!("{};", rng.word(EXPRS));
            if let Ok(block) = syn::parse_str::<Block>(&format!("{{ {src} }}")) {
                let at = pos.min(stmts.len());
                stmts.splice(at..at, block.stmts);
            }
        }
        _ => {
            let src = rng.word(STMTS);
            let block: Block = syn::parse_str(&format!("{{ {src} }}"))
                .unwrap_or_else(|e| panic!("statement `{src}`: {e}"));
            let at = pos.min(stmts.len());
            stmts.splice(at..at, block.stmts);
        }
    }
}

/// Changes the pattern of a random `let`.
fn mutate_pattern(rng: &mut Rng, item: &mut ItemFn) {
    let mut lets = 0;
    CountLets(&mut lets).visit_block(&item.block);
    if lets == 0 {
        return;
    }
    let k = rng.below(lets);
    let choice = rng.below(8);
    let mut f = |p: &mut Pat| {
        let old = p.clone();
        let new = match choice {
            0 => quote!(mut x),
            1 => quote!((#old, _)),
            2 => quote!(_),
            3 => quote!(ref x),
            4 => quote!(x @ Some(_)),
            5 => quote!(S { x, .. }),
            6 => quote!(Some(#old)),
            _ => quote!([#old, ..]),
        };
        if let Ok(new) = Pat::parse_single.parse2(new) {
            *p = new;
        }
    };
    NthLet {
        n: k,
        f: Some(&mut f),
    }
    .visit_block_mut(&mut item.block);
}

/// Adds a receiver, a parameter, a generic or changes the output.
fn mutate_signature(rng: &mut Rng, item: &mut ItemFn) {
    const PARAMS: &[&str] = &[
        "&self",
        "&'a mut self",
        "self",
        "mut self: Box<Self>",
        "self: ::core::pin::Pin<&mut Self>",
        "(a, b): (u32, Noisy)",
        "_: Noisy",
        "mut y: impl Fn() -> u32",
        "S { x, .. }: S",
        "&(ref a, _): &(u32, u32)",
        "[a, b, ..]: [u32; 3]",
        "x @ 1..=3: u32",
        "T(mut a): T",
        "self: Self",
        "a: u32",
    ];
    let sig = &mut item.sig;
    match rng.below(8) {
        0..=2 => {
            if let Ok(arg) = syn::parse_str::<syn::FnArg>(rng.word(PARAMS)) {
                let at = rng.below(sig.inputs.len() + 1);
                sig.inputs.insert(at, arg);
            }
        }
        3 => sig.generics = parse_quote!(<'a, T: Clone + 'a, const N: usize>),
        4 => sig.output = parse_quote!(-> impl Sized),
        5 => sig.output = parse_quote!(-> Result<u32, Fail>),
        6 => sig.generics.where_clause = Some(parse_quote!(where Self: Sized)),
        _ => {
            sig.constness = rng.chance(2).then(Default::default);
            sig.abi = rng.chance(2).then(|| parse_quote!(extern "C"));
            sig.asyncness = (!rng.chance(4)).then(Default::default);
        }
    }
}

fn count_exprs(b: &Block) -> usize {
    struct C(usize);
    impl<'ast> Visit<'ast> for C {
        fn visit_expr(&mut self, e: &'ast Expr) {
            self.0 += 1;
            visit::visit_expr(self, e);
        }
    }
    let mut c = C(0);
    c.visit_block(b);
    c.0
}

fn count_blocks(b: &Block) -> usize {
    struct C(usize);
    impl<'ast> Visit<'ast> for C {
        fn visit_block(&mut self, b: &'ast Block) {
            self.0 += 1;
            visit::visit_block(self, b);
        }
    }
    let mut c = C(0);
    c.visit_block(b);
    c.0
}

struct CountLets<'c>(&'c mut usize);

impl<'ast> Visit<'ast> for CountLets<'_> {
    fn visit_local(&mut self, l: &'ast syn::Local) {
        *self.0 += 1;
        visit::visit_local(self, l);
    }
}

/// Applies `f` to the `n`th expression (pre-order).
struct NthExpr<'f> {
    n: usize,
    f: Option<&'f mut dyn FnMut(&mut Expr)>,
}

impl VisitMut for NthExpr<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        if self.f.is_none() {
            return;
        }
        if self.n == 0 {
            if let Some(f) = self.f.take() {
                f(e);
            }
            return;
        }
        self.n -= 1;
        visit_mut::visit_expr_mut(self, e);
    }
}

/// Applies `f` to the `n`th block (pre-order).
struct NthBlock<'f> {
    n: usize,
    f: Option<&'f mut dyn FnMut(&mut Block)>,
}

impl VisitMut for NthBlock<'_> {
    fn visit_block_mut(&mut self, b: &mut Block) {
        if self.f.is_none() {
            return;
        }
        if self.n == 0 {
            if let Some(f) = self.f.take() {
                f(b);
            }
            return;
        }
        self.n -= 1;
        visit_mut::visit_block_mut(self, b);
    }
}

/// Applies `f` to the pattern of the `n`th `let`.
struct NthLet<'f> {
    n: usize,
    f: Option<&'f mut dyn FnMut(&mut Pat)>,
}

impl VisitMut for NthLet<'_> {
    fn visit_local_mut(&mut self, l: &mut syn::Local) {
        if self.f.is_none() {
            return;
        }
        if self.n == 0 {
            if let Some(f) = self.f.take() {
                f(&mut l.pat);
            }
            return;
        }
        self.n -= 1;
        visit_mut::visit_local_mut(self, l);
    }
}
