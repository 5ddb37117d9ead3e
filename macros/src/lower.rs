//! The explicit lowering: body → blocks split at each await and `yield_!`.
//!
//! Desugar from:
//! ```text
//! async fn f(n: u32) -> u32 { let a = g(n).await; if a > 1 { h(&a).await; } a }
//! ```
//! into blocks (closures) that take the locals alive at their entry and return a transition:
//! ```text
//! b0 |(n,)|          { Await1(g(n), ()) }                       // g(n) owns nothing local
//! b1 |(), r|         { let a = r; if a > 1 { Goto2((a,)) } else { Goto3((a,)) } }
//! b2 |(a,)|          { Await4(async move { let a = a; let r = h(&a).await; (r, (a,)) }, ()) }
//! b4 |(), (r, (a,))| { discard(r); Goto3((a,)) }
//! b3 |(a,)|          { Return(a) }
//! ```
//! A statement this pass cannot lower (see [`Fallback`]) makes the whole body one native frame.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, ItemFn, Stmt};

use crate::args::Args;
use crate::liveness::{Analysis, LocalId, Point, Use, key};
use crate::machine::{self, BlockOut, Entry};
use crate::report::Report;
use crate::sig::FnParts;
use crate::yields;

/// Why a body keeps a native frame.
#[derive(Clone)]
pub(crate) struct Fallback {
    pub(crate) span: Span,
    pub(crate) reason: String,
}

fn fallback<T>(span: Span, reason: impl Into<String>) -> Result<T, Fallback> {
    Err(Fallback {
        span,
        reason: reason.into(),
    })
}

/// The explicit machine, or `None` when the body keeps one native frame (the reason goes to
/// the report; strict mode turns it into an error instead).
pub(crate) fn lower(
    item: &ItemFn,
    parts: &FnParts,
    args: &Args,
    report: &mut Report,
) -> syn::Result<Option<TokenStream>> {
    // The lowering is heuristic code over arbitrary input: should it ever panic, the body
    // keeps its native frame rather than the build failing.
    let lowered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lower_body(item, parts, args)
    }))
    .unwrap_or_else(|_| {
        fallback(
            item.sig.ident.span(),
            "internal error in the lowering (please report it)",
        )
    });
    match lowered {
        Ok((tokens, summary)) => {
            for l in summary {
                report.line(l);
            }
            Ok(Some(tokens))
        }
        Err(f) => {
            if args.strict.is_some() {
                return Err(syn::Error::new(
                    f.span,
                    format!(
                        "#[structured(strict)]: this needs a native frame: {}",
                        f.reason
                    ),
                ));
            }
            report.line(format!(
                "states: 1 native adapter for the whole body (fallback: {})",
                f.reason
            ));
            Ok(None)
        }
    }
}

struct LoopCtx {
    label: Option<String>,
    header: usize,
    exit: usize,
}

struct Lowerer<'a> {
    a: &'a Analysis,
    generator: bool,
    names: machine::Names,
    blocks: Vec<Block0>,
    cur: usize,
    /// Names of the locals bound in the current block (the user's, or a hidden one).
    bound: Vec<(LocalId, Ident)>,
    loops: Vec<LoopCtx>,
    items: Vec<TokenStream>,
    adapters: usize,
    /// Control-flow edges (from, to), to order the closures so each block's input type is
    /// fixed by an earlier closure (reverse post-order), and to find dead blocks.
    edges: std::cell::RefCell<Vec<(usize, usize)>>,
    strict: bool,
    /// Native regions made so far, for the report.
    regions: Vec<String>,
    /// How many more bounded regions may be tried (each try lowers the rest of its list).
    budget: usize,
}

/// A block being built: its entry, its input locals, and the names they have in it.
#[derive(Clone)]
struct Block0 {
    entry: Entry,
    input: Vec<LocalId>,
    hidden: Vec<LocalId>,
    from_live: usize,
    code: TokenStream,
    term: Option<TokenStream>,
}

/// What [`Lowerer::restore`] copies prefixes of.
struct Saved {
    blocks: Vec<Block0>,
    edges: Vec<(usize, usize)>,
    items: Vec<TokenStream>,
    regions: Vec<String>,
}

/// The lowering's state before a statement, to go back to when it must become a region.
struct Snapshot {
    cur: usize,
    blocks: usize,
    current: Block0,
    bound: Vec<(LocalId, Ident)>,
    edges: usize,
    adapters: usize,
    items: usize,
    loops: usize,
    regions: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// The statements end the fn: their value is its output.
    FnTail,
    /// The statements are a `()` block inside the body.
    Unit,
}

fn lower_body(
    item: &ItemFn,
    parts: &FnParts,
    args: &Args,
) -> Result<(TokenStream, Vec<String>), Fallback> {
    if crate::sig::has_impl_trait(&parts.output)
        || args
            .yields
            .as_ref()
            .is_some_and(|(_, y)| crate::sig::has_impl_trait(y))
    {
        return fallback(
            item.sig.output.span(),
            "an `impl Trait` output cannot be named for the state machine",
        );
    }
    // Closures cannot bind `self`: the body refers to the receiver as `__self` instead.
    let mut body = item.block.clone();
    let self_ident = parts.receiver.map(|span| Ident::new("__self", span));
    let mut a = Analysis::default();
    if let Some(this) = &self_ident {
        crate::receiver::rename_self(&mut body, this);
        a.declare_param(&ident_pat(this), receiver_type(item).as_ref());
    }
    for p in &parts.params {
        match &p.pat {
            // `_: T` still moves the argument in; it drops when the body ends.
            syn::Pat::Wild(_) => a.declare_param(&ident_pat(&p.outer), None),
            pat if !p.simple && has_wild(pat) => {
                return fallback(
                    pat.span(),
                    "a parameter pattern with `_` or `..` (its unbound parts drop at the end)",
                );
            }
            pat => a.declare_param(pat, Some(&p.ty)),
        }
    }
    let n_params = a.locals.len();
    a.visit_block(&body);
    let mut lw = Lowerer {
        a: &a,
        generator: args.yields.is_some(),
        names: machine::Names::new(),
        blocks: Vec::new(),
        cur: 0,
        bound: Vec::new(),
        loops: Vec::new(),
        items: Vec::new(),
        adapters: 0,
        edges: std::cell::RefCell::new(Vec::new()),
        strict: args.strict.is_some(),
        regions: Vec::new(),
        budget: 256,
    };
    // Block 0 takes the arguments as the signature names them and binds the patterns.
    let binds = crate::sig::bind_params(&parts.params);
    lw.blocks.push(Block0 {
        entry: Entry::Start(binds),
        input: Vec::new(),
        hidden: Vec::new(),
        from_live: parts.params.len() + usize::from(parts.receiver.is_some()),
        code: TokenStream::new(),
        term: None,
    });
    lw.bound = (0..n_params)
        .map(|id| (id, a.locals[id].name.clone()))
        .collect();
    lw.lower_stmts(&body.stmts, Ctx::FnTail)?;
    let mut outer: Vec<Ident> = parts.params.iter().map(|p| p.outer.clone()).collect();
    // Unpolled, a native future drops its arguments in declaration order: keep them so.
    let init = match (&self_ident, parts.receiver) {
        (Some(this), Some(span)) => {
            let receiver = Ident::new("self", span);
            let init = quote!((#receiver, #(#outer,)*));
            outer.insert(0, this.clone());
            init
        }
        _ => quote!((#(#outer,)*)),
    };
    let mut out_blocks = Vec::new();
    let start_input: Vec<(Ident, bool)> = outer.iter().map(|o| (o.clone(), false)).collect();
    let n_blocks = lw.blocks.len();
    let n_awaits = lw
        .blocks
        .iter()
        .filter(|b| matches!(b.entry, Entry::Await(_)))
        .count();
    let n_yields = lw
        .blocks
        .iter()
        .filter(|b| matches!(b.entry, Entry::Yield))
        .count();
    let blocks = std::mem::take(&mut lw.blocks);
    for (k, b) in blocks.into_iter().enumerate() {
        let input = if k == 0 {
            start_input.clone()
        } else {
            block_names(&a, &b.input, &b.hidden)
                .into_iter()
                .map(|(id, name)| (name, a.locals[id].mutable))
                .collect()
        };
        out_blocks.push(BlockOut {
            entry: b.entry,
            input,
            from_live: b.from_live,
            code: b.code,
            term: b.term,
        });
    }
    let yields = args.yields.as_ref().map(|(_, t)| t);
    let order = reverse_post_order(n_blocks, &lw.edges.borrow());
    let tokens = machine::emit(
        &lw.names,
        &out_blocks,
        &order,
        &init,
        &parts.output,
        yields,
        &lw.items,
    );
    let fallbacks = if lw.regions.is_empty() {
        "none".to_owned()
    } else {
        lw.regions.join("; ")
    };
    let summary = vec![format!(
        "states: {} (start, {} await, {} yield), blocks: {}, adapters: {}, fallbacks: {}",
        1 + n_awaits + n_yields,
        n_awaits,
        n_yields,
        n_blocks,
        lw.adapters,
        fallbacks
    )];
    Ok((tokens, summary))
}

/// Blocks reachable from the start, each after one of its predecessors; `None` for dead ones.
fn reverse_post_order(n: usize, edges: &[(usize, usize)]) -> Vec<Option<usize>> {
    let mut seen = vec![false; n];
    let mut post = Vec::new();
    let mut stack = vec![(0usize, 0usize)];
    seen[0] = true;
    while let Some(&mut (node, ref mut next)) = stack.last_mut() {
        let succ: Vec<usize> = edges.iter().filter(|e| e.0 == node).map(|e| e.1).collect();
        if let Some(&s) = succ.get(*next) {
            *next += 1;
            if !seen[s] {
                seen[s] = true;
                stack.push((s, 0));
            }
        } else {
            post.push(node);
            stack.pop();
        }
    }
    post.reverse();
    let mut position = vec![None; n];
    for (i, &b) in post.iter().enumerate() {
        position[b] = Some(i);
    }
    position
}

fn receiver_type(item: &ItemFn) -> Option<syn::Type> {
    match item.sig.inputs.first() {
        Some(syn::FnArg::Receiver(r)) => Some((*r.ty).clone()),
        _ => None,
    }
}

fn ident_pat(ident: &Ident) -> syn::Pat {
    syn::Pat::Ident(syn::PatIdent {
        attrs: Vec::new(),
        by_ref: None,
        mutability: None,
        ident: ident.clone(),
        subpat: None,
    })
}

fn has_wild(pat: &syn::Pat) -> bool {
    struct W(bool);
    impl<'ast> Visit<'ast> for W {
        fn visit_pat_wild(&mut self, _: &'ast syn::PatWild) {
            self.0 = true;
        }
        fn visit_pat_rest(&mut self, _: &'ast syn::PatRest) {
            self.0 = true;
        }
        fn visit_pat_struct(&mut self, p: &'ast syn::PatStruct) {
            self.0 |= p.rest.is_some();
            syn::visit::visit_pat_struct(self, p);
        }
    }
    let mut w = W(false);
    w.visit_pat(pat);
    w.0
}

/// The names a block binds its input with: the user's, unless shadowed by a newer local of
/// the same name in the input or about to be shadowed by the block's first statement.
fn block_names(a: &Analysis, input: &[LocalId], hidden: &[LocalId]) -> Vec<(LocalId, Ident)> {
    input
        .iter()
        .map(|&id| {
            let l = a.local(id);
            let shadowed = hidden.contains(&id)
                || input
                    .iter()
                    .any(|&o| o != id && a.local(o).name == l.name && a.local(o).decl > l.decl);
            let name = if shadowed {
                format_ident!("__shadowed{}", id, span = Span::mixed_site())
            } else {
                l.name.clone()
            };
            (id, name)
        })
        .collect()
}

fn finder(visit: impl FnOnce(&mut AwaitFinder)) -> AwaitFinder {
    let mut f = AwaitFinder {
        found: None,
        macro_await: None,
        suspect: None,
    };
    visit(&mut f);
    f
}

fn has_await(visit: impl FnOnce(&mut AwaitFinder)) -> Option<Span> {
    let f = finder(visit);
    f.found.or(f.macro_await)
}

/// Finds awaits (and `yield_!`) that belong to the body, not to closures or `async` blocks.
struct AwaitFinder {
    found: Option<Span>,
    macro_await: Option<Span>,
    /// The first macro that may expand to an await (any macro not known to be await-free).
    suspect: Option<(Span, String)>,
}

/// Macros known not to expand to `.await`; any other macro may (`join!`, `select!`, a user's
/// `macro_rules!`), and an await cannot stand in a block closure, so it keeps a native frame.
const AWAIT_FREE_MACROS: &[&str] = &[
    "format",
    "print",
    "println",
    "eprint",
    "eprintln",
    "write",
    "writeln",
    "vec",
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "panic",
    "unreachable",
    "todo",
    "unimplemented",
    "matches",
    "dbg",
    "format_args",
    "concat",
    "stringify",
    "line",
    "column",
    "file",
    "module_path",
    "cfg",
    "env",
    "option_env",
    "include_str",
    "include_bytes",
    "compile_error",
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "thread_local",
    "addr_of",
    "addr_of_mut",
];

impl<'ast> Visit<'ast> for AwaitFinder {
    fn visit_expr(&mut self, e: &'ast Expr) {
        match e {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Await(a) => {
                self.found.get_or_insert(a.await_token.span);
            }
            _ => syn::visit::visit_expr(self, e),
        }
    }
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if yields::is_yield(m) {
            self.found.get_or_insert(m.path.span());
            return;
        }
        let last = m.path.segments.last().map(|s| s.ident.to_string());
        if !AWAIT_FREE_MACROS.iter().any(|n| last.as_deref() == Some(n)) {
            self.macro_await.get_or_insert(m.path.span());
            self.suspect.get_or_insert_with(|| {
                (
                    m.path.span(),
                    quote::ToTokens::to_token_stream(&m.path)
                        .to_string()
                        .replace(' ', ""),
                )
            });
            return;
        }
        let mut idents = Vec::new();
        crate::liveness::token_idents(m.tokens.clone(), &mut idents);
        if idents.iter().any(|i| i == "await" || i == "yield_") {
            self.macro_await.get_or_insert(m.path.span());
        }
    }
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

fn stmt_await(s: &Stmt) -> Option<Span> {
    has_await(|f| f.visit_stmt(s))
}

fn expr_await(e: &Expr) -> Option<Span> {
    has_await(|f| f.visit_expr(e))
}

/// The await on the evaluation spine of `e` (the first thing `e` evaluates), if `e` has exactly
/// one await and it is there: `x.await`, `x.await?`, `x.await.method(args)`, `x.await + rhs`…
fn spine(e: &Expr) -> Option<(&Expr, &Expr)> {
    match e {
        Expr::Await(a) => (expr_await(&a.base).is_none()).then_some((e, &*a.base)),
        Expr::Try(t) => spine(&t.expr),
        Expr::Paren(p) => spine(&p.expr),
        Expr::Field(f) => spine(&f.base),
        Expr::Cast(c) => spine(&c.expr),
        Expr::Unary(u) => spine(&u.expr),
        Expr::MethodCall(m) if m.args.iter().all(|a| expr_await(a).is_none()) => spine(&m.receiver),
        Expr::Binary(b) if expr_await(&b.right).is_none() => spine(&b.left),
        _ => None,
    }
}

/// `e` with its spine await replaced by `r`.
fn replace_spine(e: &Expr, r: &Expr) -> Expr {
    let mut e = e.clone();
    fn go(e: &mut Expr, r: &Expr) {
        match e {
            Expr::Await(_) => *e = r.clone(),
            Expr::Try(t) => go(&mut t.expr, r),
            Expr::Paren(p) => go(&mut p.expr, r),
            Expr::Field(f) => go(&mut f.base, r),
            Expr::Cast(c) => go(&mut c.expr, r),
            Expr::Unary(u) => go(&mut u.expr, r),
            Expr::MethodCall(m) => go(&mut m.receiver, r),
            Expr::Binary(b) => go(&mut b.left, r),
            _ => {}
        }
    }
    go(&mut e, r);
    e
}

fn contains_let(e: &Expr) -> bool {
    match e {
        Expr::Let(_) => true,
        Expr::Binary(b) => contains_let(&b.left) || contains_let(&b.right),
        Expr::Paren(p) => contains_let(&p.expr),
        _ => false,
    }
}

fn diverges_expr(e: &Expr) -> bool {
    match e {
        Expr::Return(_) | Expr::Break(_) | Expr::Continue(_) => true,
        Expr::Macro(m) => ["panic", "unreachable", "todo", "unimplemented"]
            .iter()
            .any(|n| m.mac.path.is_ident(n)),
        _ => false,
    }
}

/// `a..b`, `a..=b` with plain ends: a value holding no borrow and no temporary.
fn is_range(e: &Expr) -> bool {
    match e {
        Expr::Range(r) => {
            let plain = |x: &Option<Box<Expr>>| {
                x.as_deref().is_none_or(|x| {
                    matches!(x, Expr::Lit(_) | Expr::Path(_))
                        || simple_future(x)
                        || crate::liveness::owned_result(x)
                })
            };
            plain(&r.start) && plain(&r.end)
        }
        Expr::Paren(p) => is_range(&p.expr),
        _ => false,
    }
}

/// A place whose evaluation has no effects: `x`, `x.field`, `*x`, `self.a.b`.
fn pure_place(e: &Expr) -> bool {
    match e {
        Expr::Path(p) => p.qself.is_none() && p.path.get_ident().is_some(),
        Expr::Field(f) => pure_place(&f.base),
        Expr::Unary(u) => matches!(u.op, syn::UnOp::Deref(_)) && pure_place(&u.expr),
        Expr::Paren(p) => pure_place(&p.expr),
        _ => false,
    }
}

fn is_identity(e: &Expr) -> bool {
    matches!(e, Expr::Await(_))
}

/// A future expression the block can build itself: a call whose arguments are literals or
/// plain locals (moved or copied in), so the future holds no borrow of the frame and no
/// temporary.
fn simple_future(e: &Expr) -> bool {
    fn plain(a: &Expr) -> bool {
        match a {
            Expr::Lit(_) => true,
            Expr::Path(p) => p.qself.is_none(),
            Expr::Binary(b) => plain(&b.left) && plain(&b.right),
            Expr::Unary(u) => !matches!(u.op, syn::UnOp::Deref(_)) && plain(&u.expr),
            Expr::Cast(c) => plain(&c.expr),
            Expr::Paren(p) => plain(&p.expr),
            Expr::Group(g) => plain(&g.expr),
            _ => false,
        }
    }
    match e {
        Expr::Call(c) => matches!(&*c.func, Expr::Path(_)) && c.args.iter().all(plain),
        Expr::Path(_) => true,
        _ => false,
    }
}

impl Lowerer<'_> {
    fn tr(&self) -> &Ident {
        &self.names.tr
    }

    fn new_block(&mut self, entry: Entry, input: Vec<LocalId>, hidden: Vec<LocalId>) -> usize {
        self.blocks.push(Block0 {
            entry,
            from_live: input.len(),
            input,
            hidden,
            code: TokenStream::new(),
            term: None,
        });
        self.blocks.len() - 1
    }

    fn switch(&mut self, k: usize) {
        self.cur = k;
        let b = &self.blocks[k];
        self.bound = block_names(self.a, &b.input, &b.hidden);
    }

    fn emit(&mut self, t: TokenStream) {
        self.blocks[self.cur].code.extend(t);
    }

    fn terminated(&self) -> bool {
        self.blocks[self.cur].term.is_some()
    }

    fn terminate(&mut self, t: TokenStream) {
        self.blocks[self.cur].term = Some(t);
    }

    fn name_of(&self, id: LocalId, span: Span) -> Result<Ident, Fallback> {
        self.bound
            .iter()
            .rev()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| n.clone())
            .ok_or_else(|| Fallback {
                span,
                reason: format!(
                    "`{}` is declared where this lowering does not track it",
                    self.a.local(id).name
                ),
            })
    }

    fn pack_ids(&self, ids: &[LocalId], span: Span) -> Result<TokenStream, Fallback> {
        let names = ids
            .iter()
            .map(|&id| self.name_of(id, span))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(machine::pack(&names))
    }

    fn goto(&self, k: usize, span: Span) -> Result<TokenStream, Fallback> {
        let tr = self.tr();
        let v = format_ident!("Goto{}", k);
        let packed = self.pack_ids(&self.blocks[k].input, span)?;
        self.edges.borrow_mut().push((self.cur, k));
        Ok(quote!(#tr::#v(#packed)))
    }

    /// The locals a native frame still holds at `p`: in scope and not moved out.
    fn carried(&self, p: &Point, span: Span) -> Result<Vec<LocalId>, Fallback> {
        let a = self.a;
        let mut out = Vec::new();
        for &id in &p.in_scope {
            let l = a.local(id);
            let mentions = || a.mentions.iter().filter(move |m| m.local == id);
            let used_after = mentions().any(|m| m.pos > p.pos && m.pos < l.end)
                || a.loops.iter().any(|&(s, e)| {
                    s <= p.pos
                        && p.pos <= e
                        && s > l.decl
                        && mentions().any(|m| s <= m.pos && m.pos <= e)
                });
            let before = || mentions().filter(|m| m.pos > l.decl && m.pos <= p.pos);
            let moved = before().any(|m| m.kind == Use::Move);
            let moved_conditionally = before().any(|m| m.kind == Use::Move && m.depth > l.depth);
            let next_after = mentions()
                .filter(|m| m.pos > p.pos && m.pos < l.end)
                .min_by_key(|m| m.pos);
            // Moving a `Copy` local copies it: no drop flag.
            if moved && !l.known_copy && next_after.is_some_and(|m| m.kind == Use::Assign) {
                return fallback(
                    span,
                    format!(
                        "`{}` may be moved out here and is assigned again later (a drop flag)",
                        l.name
                    ),
                );
            }
            if moved_conditionally && !used_after && !l.known_copy {
                return fallback(
                    span,
                    format!("`{}` is moved out on some paths only (a drop flag)", l.name),
                );
            }
            // Nothing moves out through a reference parameter.
            let field_moves = !l.ref_param && before().any(|m| m.kind == Use::Field);
            let uncertain = before().any(|m| m.kind == Use::Unknown) || field_moves;
            if l.unusual {
                return fallback(
                    span,
                    format!(
                        "`{}` (declared without a value, or bound by `ref`) is alive across this await",
                        l.name
                    ),
                );
            }
            if used_after && !l.known_copy && field_moves {
                return fallback(
                    span,
                    format!(
                        "a field of `{}` may be moved out before this await and `{}` is used after it",
                        l.name, l.name
                    ),
                );
            }
            let carry = if used_after {
                true
            } else if l.known_copy {
                false
            } else if uncertain {
                return fallback(
                    span,
                    format!(
                        "cannot tell whether `{}` is moved out before this await",
                        l.name
                    ),
                );
            } else {
                !moved
            };
            if carry && l.borrowing {
                return fallback(
                    span,
                    format!(
                        "local `{}` may hold a borrow of another local across this await",
                        l.name
                    ),
                );
            }
            if carry {
                out.push(id);
            }
        }
        Ok(out)
    }

    fn point(&self, node: usize, span: Span) -> Result<Point, Fallback> {
        self.a.points.get(&node).cloned().ok_or_else(|| Fallback {
            span,
            reason: "internal: no liveness point".to_owned(),
        })
    }

    fn after(&self, node: usize, span: Span) -> Result<Point, Fallback> {
        self.a.after.get(&node).cloned().ok_or_else(|| Fallback {
            span,
            reason: "internal: no liveness point".to_owned(),
        })
    }

    /// Ends the current block with a goto to a fresh one holding what is alive at `p`.
    fn split(&mut self, p: &Point, hidden: Vec<LocalId>, span: Span) -> Result<(), Fallback> {
        let input = self.carried(p, span)?;
        let k = self.new_block(Entry::Goto, input, hidden);
        let g = self.goto(k, span)?;
        self.terminate(g);
        self.switch(k);
        Ok(())
    }

    fn lower_stmts(&mut self, stmts: &[Stmt], ctx: Ctx) -> Result<(), Fallback> {
        self.lower_list(stmts, 0, ctx)
    }

    /// Lowers `stmts[from..]`. When a statement cannot be lowered, the smallest run of
    /// statements around it that can is made one native region (see [`Self::bounded_region`])
    /// and the lowering goes on explicitly after it. Failing that, the rest of a body-ending
    /// list becomes one native region: an adapter owning every live local, whose output is the
    /// fn's. Either region starts at the statement, or earlier if the cause lies earlier (a
    /// local moved on some paths, a borrow taken before the await).
    fn lower_list(&mut self, stmts: &[Stmt], from: usize, ctx: Ctx) -> Result<(), Fallback> {
        let regions_allowed = ctx == Ctx::FnTail && !self.generator && !self.strict;
        let bounded_allowed = !self.generator && !self.strict;
        let mut snapshots = Vec::new();
        for i in from..stmts.len() {
            let s = &stmts[i];
            let last = i + 1 == stmts.len();
            if self.terminated() {
                return fallback(
                    s.span(),
                    "statements after a diverging await are not lowered",
                );
            }
            if !regions_allowed && !bounded_allowed {
                self.lower_stmt(s, last, ctx)?;
                continue;
            }
            snapshots.push(self.snapshot());
            if let Err(f) = self.lower_stmt(s, last, ctx) {
                let full = self.saved();
                if bounded_allowed {
                    for start in (from..=i).rev() {
                        for end in i..stmts.len().saturating_sub(1) {
                            if self.budget == 0 {
                                break;
                            }
                            self.budget -= 1;
                            self.restore(&snapshots[start - from], &full);
                            if self
                                .bounded_region(stmts, start, end, &f)
                                .and_then(|()| self.lower_list(stmts, end + 1, ctx))
                                .is_ok()
                            {
                                return Ok(());
                            }
                        }
                    }
                }
                if regions_allowed {
                    for start in (from..=i).rev() {
                        let at = &snapshots[start - from];
                        if at.blocks == 1 && at.cur == 0 && at.current.code.is_empty() {
                            // A region from the very first statement is the whole body: keep
                            // it as the plain native frame, without a machine around it.
                            break;
                        }
                        self.restore(&snapshots[start - from], &full);
                        if self
                            .native_region(&stmts[start..], &stmts[start], f.clone())
                            .is_ok()
                        {
                            return Ok(());
                        }
                    }
                }
                return Err(f);
            }
        }
        let diverges = matches!(stmts.last(), Some(Stmt::Expr(e, _)) if diverges_expr(e));
        if diverges && !self.terminated() {
            self.terminate(TokenStream::new());
        }
        if ctx == Ctx::FnTail && !self.terminated() {
            let ends_in_value = matches!(stmts.last(), Some(Stmt::Expr(_, None)));
            if !ends_in_value {
                let tr = self.tr();
                self.terminate(quote!(#tr::Return(())));
            }
        }
        Ok(())
    }

    /// `stmts[start..=end]` (not the list's last statement) as one native region: an adapter
    /// owning every live local, running the statements as written and handing back the locals
    /// still in scope after them (those declared before it and those its statements declare),
    /// so they drop where the native frame drops them. A `return` or `?` inside leaves the
    /// adapter as `ControlFlow::Break(output)`. The lowering goes on after it.
    fn bounded_region(
        &mut self,
        stmts: &[Stmt],
        start: usize,
        end: usize,
        why: &Fallback,
    ) -> Result<(), Fallback> {
        let span = why.span;
        let region = &stmts[start..=end];
        let first = &stmts[start];
        let p = self.point(key(first), span)?;
        let owned = self.carried(&p, span)?;
        // Where the region ends, no local may borrow another any more.
        let q = self.point(key(&stmts[end + 1]), span)?;
        let back = self.carried(&q, span)?;
        // A local moved inside the region may be assigned again on some paths only (a drop
        // flag): it cannot come back.
        for &id in &back {
            let l = self.a.local(id);
            let moved = self.a.mentions.iter().any(|m| {
                m.local == id
                    && m.pos > p.pos
                    && m.pos <= q.pos
                    && matches!(m.kind, Use::Move | Use::Unknown | Use::Field)
            });
            if moved && !l.known_copy {
                return fallback(
                    span,
                    format!("`{}` may be moved out inside a native region", l.name),
                );
            }
        }
        // One moved out and assigned again inside may hold a value the native frame drops at
        // its scope's end.
        for &id in q.in_scope.iter().filter(|id| !back.contains(id)) {
            let l = self.a.local(id);
            let assigned =
                self.a.mentions.iter().any(|m| {
                    m.local == id && m.pos > p.pos && m.pos <= q.pos && m.kind == Use::Assign
                });
            if assigned && !l.known_copy {
                return fallback(
                    span,
                    format!(
                        "`{}` is moved out and assigned again in a native region",
                        l.name
                    ),
                );
            }
        }
        let mut binds = TokenStream::new();
        let mut inner_names = Vec::new();
        for &id in &owned {
            let n = self.name_of(id, span)?;
            let m = self.a.local(id).mutable.then(|| quote!(mut));
            binds.extend(quote!(#[allow(unused_mut, unused_variables, unused_assignments, clippy::redundant_locals)] let #m #n = #n;));
            inner_names.push((id, n));
        }
        // The names the locals handed back have at the region's end: every one must be the
        // innermost local of its name there (or a hidden name no statement can shadow).
        let mut back_inner = Vec::new();
        for &id in &back {
            let l = self.a.local(id);
            let name = match inner_names.iter().find(|(i, _)| *i == id) {
                Some((_, n)) => n.clone(),
                None => l.name.clone(),
            };
            if name == l.name {
                let innermost = q
                    .in_scope
                    .iter()
                    .rev()
                    .find(|&&o| self.a.local(o).name == l.name);
                if innermost != Some(&id) {
                    return fallback(span, format!("`{}` is shadowed in a native region", l.name));
                }
            }
            back_inner.push(name);
        }
        // Items stay visible to the statements after the region.
        let mut body = Vec::new();
        let mut items = Vec::new();
        for s in region {
            match s {
                Stmt::Item(item) => items.push(quote::ToTokens::to_token_stream(item)),
                s => {
                    let mut s = s.clone();
                    let mut rw = RegionCf::default();
                    rw.visit_stmt_mut(&mut s);
                    if let Some(f) = rw.error {
                        return Err(f);
                    }
                    body.push((s, rw.exits));
                }
            }
        }
        let exits = body.iter().any(|(_, e)| *e);
        let body = body.into_iter().map(|(s, _)| s);
        // In declaration order, as the machine rebinds its inputs: the newest drops first.
        let packed = quote!((#(#back_inner,)*));
        let f = Ident::new("__f", Span::mixed_site());
        let r = Ident::new("__r", Span::mixed_site());
        let v = Ident::new("__v", Span::mixed_site());
        let value = if exits {
            quote!(::core::ops::ControlFlow::Continue(#packed))
        } else {
            packed
        };
        self.emit(quote!(let #f = async move { #binds #(#body)* #value };));
        self.items.extend(items);
        let k = self.new_block(Entry::Await(quote!(#r)), Vec::new(), Vec::new());
        let var = format_ident!("Await{}", k);
        let tr = self.tr().clone();
        self.terminate(quote!(#tr::#var(#f, ())));
        self.edges.borrow_mut().push((self.cur, k));
        self.adapters += 1;
        self.switch(k);
        let names = block_names(self.a, &back, &[]);
        let pats: Vec<TokenStream> = names
            .iter()
            .map(|(id, n)| {
                if self.a.local(*id).mutable {
                    quote!(mut #n)
                } else {
                    quote!(#n)
                }
            })
            .collect();
        let pat = quote!((#(#pats,)*));
        let out = if exits {
            quote!(match #r {
                ::core::ops::ControlFlow::Continue(#v) => #v,
                ::core::ops::ControlFlow::Break(#v) => return #tr::Return(#v),
            })
        } else {
            quote!(#r)
        };
        self.emit(quote!(#[allow(unused_mut, unused_variables)] let #pat = #out;));
        self.bound = names;
        let mut text = quote::ToTokens::to_token_stream(first).to_string();
        if let Some((cut, _)) = text.char_indices().nth(40) {
            text.truncate(cut);
            text.push('…');
        }
        self.regions.push(format!(
            "native region from `{text}` over {} statement(s), explicit after it ({})",
            region.len(),
            why.reason
        ));
        Ok(())
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            cur: self.cur,
            blocks: self.blocks.len(),
            current: self.blocks[self.cur].clone(),
            bound: self.bound.clone(),
            edges: self.edges.borrow().len(),
            adapters: self.adapters,
            items: self.items.len(),
            loops: self.loops.len(),
            regions: self.regions.len(),
        }
    }

    /// The lowering as it stood when a statement failed: every snapshot taken before it is a
    /// prefix of this, so the snapshots of a list can be restored in any order.
    fn saved(&self) -> Saved {
        Saved {
            blocks: self.blocks.clone(),
            edges: self.edges.borrow().clone(),
            items: self.items.clone(),
            regions: self.regions.clone(),
        }
    }

    fn restore(&mut self, s: &Snapshot, full: &Saved) {
        self.cur = s.cur;
        self.blocks = full.blocks[..s.blocks].to_vec();
        self.blocks[self.cur] = s.current.clone();
        self.bound.clone_from(&s.bound);
        *self.edges.borrow_mut() = full.edges[..s.edges].to_vec();
        self.adapters = s.adapters;
        self.items = full.items[..s.items].to_vec();
        self.loops.truncate(s.loops);
        self.regions = full.regions[..s.regions].to_vec();
    }

    /// `rest` (from `first` on) as one native region ending the fn.
    fn native_region(
        &mut self,
        rest: &[Stmt],
        first: &Stmt,
        why: Fallback,
    ) -> Result<(), Fallback> {
        let p = self.point(key(first), why.span)?;
        let owned = self.carried(&p, why.span)?;
        let mut binds = TokenStream::new();
        for &id in &owned {
            let n = self.name_of(id, why.span)?;
            let m = self.a.local(id).mutable.then(|| quote!(mut));
            binds.extend(quote!(#[allow(unused_mut, unused_variables, unused_assignments, clippy::redundant_locals)] let #m #n = #n;));
        }
        // Items stay where they are, inside the region.
        let f = Ident::new("__f", Span::mixed_site());
        let r = Ident::new("__r", Span::mixed_site());
        self.emit(quote!(let #f = async move { #binds #(#rest)* };));
        let k = self.new_block(Entry::Await(quote!(#r)), Vec::new(), Vec::new());
        let v = format_ident!("Await{}", k);
        let tr = self.tr().clone();
        self.terminate(quote!(#tr::#v(#f, ())));
        self.edges.borrow_mut().push((self.cur, k));
        self.switch(k);
        self.terminate(quote!(#tr::Return(#r)));
        let mut text = quote::ToTokens::to_token_stream(first).to_string();
        if let Some((cut, _)) = text.char_indices().nth(40) {
            text.truncate(cut);
            text.push('…');
        }
        self.regions.push(format!(
            "native region from `{text}` to the end ({})",
            why.reason
        ));
        Ok(())
    }

    fn lower_stmt(&mut self, s: &Stmt, last: bool, ctx: Ctx) -> Result<(), Fallback> {
        if let Stmt::Item(item) = s {
            self.items.push(quote::ToTokens::to_token_stream(item));
            return Ok(());
        }
        // A `let` that shadows a local still alive starts a block, so the older local can be
        // bound under a hidden name there.
        if let Stmt::Local(_) = s {
            let p = self.point(key(s), s.span())?;
            let declared = self.a.stmt_locals.get(&key(s)).cloned().unwrap_or_default();
            let shadowed: Vec<LocalId> = self
                .bound
                .iter()
                .filter(|(id, _)| {
                    declared
                        .iter()
                        .any(|&d| self.a.local(d).name == self.a.local(*id).name)
                })
                .map(|(id, _)| *id)
                .collect();
            if !shadowed.is_empty() {
                self.split(&p, shadowed, s.span())?;
            }
        }
        if let Some((span, name)) = finder(|f| f.visit_stmt(s)).suspect {
            return fallback(
                span,
                format!("`{name}!` may hide an await, which only a native frame can run"),
            );
        }
        let tail = last && ctx == Ctx::FnTail;
        let Some(await_span) = stmt_await(s) else {
            return self.verbatim(s, tail);
        };
        match s {
            Stmt::Local(l) => {
                let Some(init) = &l.init else {
                    return fallback(await_span, "unsupported await position");
                };
                if let Some((_, els)) = &init.diverge
                    && expr_await(els).is_some()
                {
                    return fallback(await_span, "an await inside a `let … else` block");
                }
                let declared = self.a.stmt_locals.get(&key(s)).cloned().unwrap_or_default();
                let Some((aw, fut)) = spine(&init.expr) else {
                    // `let x = a.await + b.await;`: the whole initialiser runs in one adapter.
                    if matches!(&*init.expr, Expr::Reference(_)) {
                        return fallback(
                            await_span,
                            "a reference to an awaited temporary (its lifetime is extended)",
                        );
                    }
                    let els = match &init.diverge {
                        Some((_, e)) => {
                            let e = self.rewrite_expr(e, (**e).clone())?;
                            quote!(else #e)
                        }
                        None => quote!(),
                    };
                    let e = &init.expr;
                    let value = self.suspend_expr(key(&**e), e, quote!(#e), await_span)?;
                    let pat = &l.pat;
                    self.emit(quote!(#[allow(unused_mut)] let #pat = #value #els;));
                    for id in declared {
                        self.bound.push((id, self.a.local(id).name.clone()));
                    }
                    return Ok(());
                };
                let r = Ident::new("__r", Span::mixed_site());
                let value = self.rewrite_expr(
                    &init.expr,
                    replace_spine(&init.expr, &syn::parse_quote!(#r)),
                )?;
                let wrapped = if is_identity(&init.expr) {
                    quote!(#value)
                } else {
                    quote!({ let #r = #r; #value })
                };
                let pat = &l.pat;
                let els = match &init.diverge {
                    Some((_, e)) => {
                        let e = self.rewrite_expr(e, (**e).clone())?;
                        quote!(else #e)
                    }
                    None => quote!(),
                };
                self.suspend_await(aw, fut, await_span)?;
                self.emit(quote!(#[allow(unused_mut)] let #pat = #wrapped #els;));
                for id in declared {
                    self.bound.push((id, self.a.local(id).name.clone()));
                }
                Ok(())
            }
            Stmt::Expr(e, semi) => {
                self.lower_expr_stmt(e, semi.is_none() && tail, last, await_span)
            }
            Stmt::Macro(m) if self.generator && yields::is_yield(&m.mac) => {
                let v = yields::value(&m.mac).map_err(|e| Fallback {
                    span: e.span(),
                    reason: e.to_string(),
                })?;
                self.suspend_yield(&v, m.mac.path.span(), key(s))
            }
            Stmt::Macro(m) => {
                let mac = &m.mac;
                let as_expr: Expr = syn::parse_quote!(#mac);
                let value = self.suspend_expr(key(s), &as_expr, quote!(#mac), await_span)?;
                self.emit(quote!(::structured_async::__private::discard(#value);));
                Ok(())
            }
            Stmt::Item(_) => fallback(await_span, "unsupported await position"),
        }
    }

    fn lower_expr_stmt(
        &mut self,
        e: &Expr,
        tail: bool,
        last: bool,
        await_span: Span,
    ) -> Result<(), Fallback> {
        match e {
            Expr::If(i) => return self.lower_if(e, i, tail),
            Expr::Match(m) => return self.lower_match(e, m, tail),
            Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => {
                self.lower_loop(e)?;
                if tail && !self.terminated() {
                    // A loop ending the body: its value, `()`, is the output.
                    let tr = self.tr();
                    self.terminate(quote!(#tr::Return(())));
                }
                return Ok(());
            }
            Expr::Block(b) if b.label.is_none() => {
                self.lower_stmts(&b.block.stmts, if tail { Ctx::FnTail } else { Ctx::Unit })?;
                if !tail && !self.terminated() {
                    let p = self.after(key(e), e.span())?;
                    self.split(&p, Vec::new(), e.span())?;
                }
                return Ok(());
            }
            Expr::Macro(m) if self.generator && yields::is_yield(&m.mac) => {
                let v = yields::value(&m.mac).map_err(|e| Fallback {
                    span: e.span(),
                    reason: e.to_string(),
                })?;
                return self.suspend_yield(&v, m.mac.path.span(), key(e));
            }
            _ => {}
        }
        let _ = last;
        // `place = value` and `place op= value` evaluate the value first (for the primitive
        // types compound assignment is mostly used with; a pure place has no effects to order).
        let assign = match e {
            Expr::Assign(a) => Some((&*a.left, quote!(=), &*a.right)),
            Expr::Binary(b) if crate::liveness::is_compound_assign(&b.op) => {
                let op = &b.op;
                Some((&*b.left, quote!(#op), &*b.right))
            }
            _ => None,
        };
        if let Some((place, op, rhs)) = assign
            && !tail
            && pure_place(place)
            && expr_await(place).is_none()
            && let Some((aw, fut)) = spine(rhs)
        {
            let r = Ident::new("__r", Span::mixed_site());
            let value = self.rewrite_expr(rhs, replace_spine(rhs, &syn::parse_quote!(#r)))?;
            self.suspend_await(aw, fut, await_span)?;
            self.emit(quote!(#place #op { let #r = #r; #value };));
            return Ok(());
        }
        let Some((aw, fut)) = spine(e) else {
            let what = match e {
                Expr::ForLoop(_) => "a `for` loop with awaits in its body",
                Expr::Block(_) => "a labelled block with awaits",
                Expr::Loop(_) | Expr::While(_) => "a loop producing a value",
                _ => {
                    // `f(g().await).await;`, `x = a.await * b.await;`: one adapter.
                    let value = self.suspend_expr(key(e), e, quote!(#e), await_span)?;
                    if tail {
                        let tr = self.tr();
                        self.terminate(quote!(#tr::Return(#value)));
                    } else {
                        self.emit(quote!(::structured_async::__private::discard(#value);));
                    }
                    return Ok(());
                }
            };
            return fallback(await_span, what);
        };
        let r = Ident::new("__r", Span::mixed_site());
        let value = self.rewrite_expr(e, replace_spine(e, &syn::parse_quote!(#r)))?;
        self.suspend_await(aw, fut, await_span)?;
        if tail {
            let tr = self.tr();
            self.terminate(quote!(#tr::Return(#value)));
        } else if is_identity(e) {
            self.emit(quote!(::structured_async::__private::discard(#r);));
        } else {
            self.emit(quote!({ let #r = #r; #value; }));
        }
        Ok(())
    }

    /// Ends the block with `AwaitK(future, live)` and continues in the resume block `K`.
    fn suspend_await(&mut self, aw: &Expr, fut: &Expr, span: Span) -> Result<(), Fallback> {
        let p = self.point(key(aw), span)?;
        let carried = self.carried(&p, span)?;
        let mentions = self
            .a
            .await_mentions
            .get(&key(aw))
            .cloned()
            .unwrap_or_default();
        let mentioned: Vec<LocalId> = mentions.iter().map(|(id, _)| *id).collect();
        self.no_borrowing_in_flight(&mentioned, span)?;
        let lent: Vec<LocalId> = mentions
            .iter()
            .filter(|(_, k)| *k != Use::Move)
            .map(|(id, _)| *id)
            .collect();
        let f = Ident::new("__f", Span::mixed_site());
        let r = Ident::new("__r", Span::mixed_site());
        let fut = self.rewrite_expr(fut, fut.clone())?;
        let tr = self.tr().clone();
        if lent.is_empty() && simple_future(&fut) {
            let packed = self.pack_ids(&carried, span)?;
            let k = self.new_block(Entry::Await(quote!(#r)), carried, Vec::new());
            let v = format_ident!("Await{}", k);
            self.emit(quote!(let #f = #fut;));
            self.terminate(quote!(#tr::#v(#f, #packed)));
            self.edges.borrow_mut().push((self.cur, k));
            self.switch(k);
            return Ok(());
        }
        // The future borrows locals (or temporaries): it runs in an adapter that owns every
        // local from the oldest one it mentions on, and hands them back with the result, so
        // cancellation still drops them after the future and before the older locals.
        let oldest = lent.iter().map(|&id| self.a.local(id).decl).min();
        let (rest, owned): (Vec<LocalId>, Vec<LocalId>) = carried
            .iter()
            .partition(|&&id| oldest.is_none_or(|o| self.a.local(id).decl < o));
        let mut binds = TokenStream::new();
        for &id in &owned {
            let n = self.name_of(id, span)?;
            let m = self.a.local(id).mutable.then(|| quote!(mut));
            binds.extend(quote!(#[allow(unused_mut, unused_variables, unused_assignments, clippy::redundant_locals)] let #m #n = #n;));
        }
        let owned_packed = self.pack_ids(&owned, span)?;
        let rest_packed = self.pack_ids(&rest, span)?;
        let names = block_names(self.a, &owned, &[]);
        let _ = names;
        let owned_names = owned
            .iter()
            .map(|&id| self.name_of(id, span))
            .collect::<Result<Vec<_>, _>>()?;
        let binder_inner = machine::pack(&owned_names);
        self.emit(quote!(let #f = async move { #binds let #r = #fut.await; (#r, #owned_packed) };));
        let mut input = rest;
        input.extend(owned.iter().copied());
        let from_live = input.len() - owned.len();
        let k = self.new_block(Entry::Await(quote!((#r, #binder_inner))), input, Vec::new());
        self.blocks[k].from_live = from_live;
        let v = format_ident!("Await{}", k);
        self.terminate(quote!(#tr::#v(#f, #rest_packed)));
        self.edges.borrow_mut().push((self.cur, k));
        self.adapters += 1;
        // The resume block binds the owned locals under the same names the adapter used.
        self.switch(k);
        self.fix_adapter_names(k, &owned, &owned_names);
        Ok(())
    }

    /// The resume block must bind the adapter's locals under the names the binder pattern uses.
    fn fix_adapter_names(&mut self, k: usize, owned: &[LocalId], names: &[Ident]) {
        let fresh = block_names(self.a, &self.blocks[k].input, &self.blocks[k].hidden);
        let differs = owned
            .iter()
            .zip(names)
            .any(|(id, n)| fresh.iter().any(|(i, f)| i == id && f != n));
        if differs {
            // Same shadowing in both: the hidden names come from the local ids, so they agree.
            self.bound = fresh;
        }
    }

    /// Runs a whole expression with awaits inside (`a.await + b.await`, `f(g().await).await`,
    /// `vec![x.await, y.await]`) as one adapter state: natively, so in Rust's evaluation order
    /// and with its temporaries, owning the locals it mentions and handing them back. A `?`
    /// inside leaves the adapter with `ControlFlow::Break(output)`. Returns the tokens of the
    /// expression's value in the resume block.
    fn suspend_expr(
        &mut self,
        node: usize,
        original: &Expr,
        tokens: TokenStream,
        span: Span,
    ) -> Result<TokenStream, Fallback> {
        let mut check = AdapterCheck::default();
        check.visit_expr(original);
        if let Some(why) = check.refuse {
            return fallback(span, why);
        }
        let p = self.after(node, span)?;
        let carried = self.carried(&p, span)?;
        let Some(&(start, end)) = self.a.ranges.get(&node) else {
            return fallback(span, "internal: no range for an expression");
        };
        let mentioned: Vec<LocalId> = self
            .a
            .mentions
            .iter()
            .filter(|m| m.pos > start && m.pos <= end)
            .map(|m| m.local)
            .collect();
        self.no_borrowing_in_flight(&mentioned, span)?;
        let oldest = self
            .a
            .mentions
            .iter()
            .filter(|m| m.pos > start && m.pos <= end)
            .map(|m| self.a.local(m.local).decl)
            .min();
        let (rest, owned): (Vec<LocalId>, Vec<LocalId>) = carried
            .iter()
            .partition(|&&id| oldest.is_none_or(|o| self.a.local(id).decl < o));
        let mut binds = TokenStream::new();
        let mut owned_names = Vec::new();
        for &id in &owned {
            let n = self.name_of(id, span)?;
            let m = self.a.local(id).mutable.then(|| quote!(mut));
            binds.extend(quote!(#[allow(unused_mut, unused_variables, unused_assignments, clippy::redundant_locals)] let #m #n = #n;));
            owned_names.push(n);
        }
        let owned_packed = machine::pack(&owned_names);
        let rest_packed = self.pack_ids(&rest, span)?;
        let f = Ident::new("__f", Span::mixed_site());
        let r = Ident::new("__r", Span::mixed_site());
        let tr = self.tr().clone();
        let value_expr = if check.has_try {
            let label = syn::Lifetime::new("'__structured_expr", Span::mixed_site());
            let mut e: Expr = syn::parse2(tokens).map_err(|e| Fallback {
                span,
                reason: e.to_string(),
            })?;
            TryToBreak { label: &label }.visit_expr_mut(&mut e);
            quote!(#label: { ::core::ops::ControlFlow::Continue(#e) })
        } else {
            tokens
        };
        self.emit(
            quote!(let #f = async move { #binds let #r = #value_expr; (#r, #owned_packed) };),
        );
        let mut input = rest;
        input.extend(owned.iter().copied());
        let from_live = input.len() - owned.len();
        let k = self.new_block(Entry::Await(quote!((#r, #owned_packed))), input, Vec::new());
        self.blocks[k].from_live = from_live;
        let v = format_ident!("Await{}", k);
        self.terminate(quote!(#tr::#v(#f, #rest_packed)));
        self.edges.borrow_mut().push((self.cur, k));
        self.adapters += 1;
        self.switch(k);
        Ok(if check.has_try {
            let v = Ident::new("__v", Span::mixed_site());
            quote!(match #r {
                ::core::ops::ControlFlow::Continue(#v) => #v,
                ::core::ops::ControlFlow::Break(#v) => return #tr::Return(#v),
            })
        } else {
            quote!(#r)
        })
    }

    /// A future in flight that holds a local which may borrow another local would make the
    /// state self-referential: that needs a native frame.
    fn no_borrowing_in_flight(&self, mentioned: &[LocalId], span: Span) -> Result<(), Fallback> {
        match mentioned.iter().find(|&&id| self.a.local(id).borrowing) {
            Some(&id) => fallback(
                span,
                format!(
                    "`{}` may hold a borrow of another local and is used by this await",
                    self.a.local(id).name
                ),
            ),
            None => Ok(()),
        }
    }

    fn suspend_yield(&mut self, v: &Expr, span: Span, node: usize) -> Result<(), Fallback> {
        if expr_await(v).is_some() {
            return fallback(span, "an await inside a `yield_!` value");
        }
        let p = self.after(node, span)?;
        let carried = self.carried(&p, span)?;
        let packed = self.pack_ids(&carried, span)?;
        let v = self.rewrite_expr(v, v.clone())?;
        let val = Ident::new("__yielded", Span::mixed_site());
        let k = self.new_block(Entry::Yield, carried, Vec::new());
        let var = format_ident!("Yield{}", k);
        let tr = self.tr().clone();
        self.emit(quote!(let #val = #v;));
        self.terminate(quote!(#tr::#var(#val, #packed)));
        self.edges.borrow_mut().push((self.cur, k));
        self.switch(k);
        Ok(())
    }

    fn lower_if(&mut self, e: &Expr, i: &syn::ExprIf, tail: bool) -> Result<(), Fallback> {
        let span = i.if_token.span;
        let (cond, then_bindings) = self.condition(&i.cond, span)?;
        let branch_point = self.point(key(&i.then_branch), span)?;
        let input = self.carried(&branch_point, span)?;
        let join = if tail {
            None
        } else {
            let after = self.after(key(e), span)?;
            let join_input = self.carried(&after, span)?;
            Some(self.new_block(Entry::Goto, join_input, Vec::new()))
        };
        let then_k = self.new_block(Entry::Goto, input.clone(), Vec::new());
        let else_k = match (&i.else_branch, join) {
            (Some(_), _) => self.new_block(Entry::Goto, input, Vec::new()),
            (None, Some(j)) => j,
            (None, None) => return fallback(span, "an `if` without `else` as the fn's value"),
        };
        let g_then = self.with_bound(&then_bindings, |lw| lw.goto(then_k, span))?;
        let g_else = self.goto(else_k, span)?;
        self.terminate(quote!(if #cond { #g_then } else { #g_else }));
        let ctx = if tail { Ctx::FnTail } else { Ctx::Unit };
        self.switch(then_k);
        self.lower_stmts(&i.then_branch.stmts, ctx)?;
        self.close_branch(join, span)?;
        if let Some((_, els)) = &i.else_branch {
            self.switch(else_k);
            match &**els {
                Expr::Block(b) => self.lower_stmts(&b.block.stmts, ctx)?,
                Expr::If(inner) => self.lower_if(els, inner, tail)?,
                other => return fallback(other.span(), "unsupported `else`"),
            }
            self.close_branch(join, span)?;
        }
        if let Some(j) = join {
            self.switch(j);
        }
        Ok(())
    }

    /// An `if`/`while` condition: `cond`, `let PAT = scrutinee`, or either with an await on
    /// its spine (which suspends first). Returns the tokens and the `let` bindings.
    fn condition(
        &mut self,
        cond: &Expr,
        span: Span,
    ) -> Result<(TokenStream, Vec<LocalId>), Fallback> {
        if let Expr::Let(l) = cond {
            let scrut = self.scrutinee(&l.expr, span, &[&l.pat])?;
            let pat = &l.pat;
            let bindings = self
                .a
                .stmt_locals
                .get(&key(cond))
                .cloned()
                .unwrap_or_default();
            return Ok((quote!(let #pat = #scrut), bindings));
        }
        if contains_let(cond) {
            return fallback(span, "a `let` chain in a condition");
        }
        if expr_await(cond).is_some() {
            let Some((aw, fut)) = spine(cond) else {
                return fallback(span, "an await nested inside a condition");
            };
            let r = Ident::new("__r", Span::mixed_site());
            let value = self.rewrite_expr(cond, replace_spine(cond, &syn::parse_quote!(#r)))?;
            self.suspend_await(aw, fut, span)?;
            return Ok((quote!({ let #r = #r; #value }), Vec::new()));
        }
        let c = self.rewrite_expr(cond, cond.clone())?;
        Ok((quote!(#c), Vec::new()))
    }

    /// A `match`/`if let` scrutinee. Its temporaries would live through the arms natively, so
    /// only scrutinees without droppable temporaries are lowered: a place, an arithmetic value,
    /// or an awaited value that the patterns take apart completely.
    fn scrutinee(
        &mut self,
        scrut: &Expr,
        span: Span,
        pats: &[&syn::Pat],
    ) -> Result<TokenStream, Fallback> {
        let place = pure_place(scrut);
        if !place && pats.iter().any(|p| has_wild(p)) {
            return fallback(
                span,
                "a `_` pattern keeps part of a temporary scrutinee alive across the arms' awaits",
            );
        }
        if expr_await(scrut).is_some() {
            let Some((aw, fut)) = spine(scrut) else {
                return fallback(span, "an await nested inside a scrutinee");
            };
            let r = Ident::new("__r", Span::mixed_site());
            let value = self.rewrite_expr(scrut, replace_spine(scrut, &syn::parse_quote!(#r)))?;
            self.suspend_await(aw, fut, span)?;
            return Ok(if is_identity(scrut) {
                quote!(#r)
            } else {
                quote!({ let #r = #r; #value })
            });
        }
        if !place && !crate::liveness::owned_result(scrut) {
            return fallback(
                span,
                "a scrutinee whose temporaries would live across the arms' awaits",
            );
        }
        let s = self.rewrite_expr(scrut, scrut.clone())?;
        Ok(quote!(#s))
    }

    /// Runs `f` with `bindings` (pattern bindings of a dispatch) named as the user names them.
    fn with_bound<T>(
        &mut self,
        bindings: &[LocalId],
        f: impl FnOnce(&mut Self) -> Result<T, Fallback>,
    ) -> Result<T, Fallback> {
        let before = self.bound.len();
        for &id in bindings {
            let name = self.a.local(id).name.clone();
            if self.bound.iter().any(|(_, n)| *n == name) {
                return fallback(
                    name.span(),
                    format!("the pattern binding `{name}` shadows a local alive here"),
                );
            }
            self.bound.push((id, name));
        }
        let r = f(self);
        self.bound.truncate(before);
        r
    }

    fn lower_match(&mut self, e: &Expr, m: &syn::ExprMatch, tail: bool) -> Result<(), Fallback> {
        let span = m.match_token.span;
        if m.arms.iter().any(|a| {
            a.guard
                .as_ref()
                .is_some_and(|(_, g)| expr_await(g).is_some())
        }) {
            return fallback(span, "an await in a match guard");
        }
        let pats: Vec<&syn::Pat> = m.arms.iter().map(|a| &a.pat).collect();
        let scrut = self.scrutinee(&m.expr, span, &pats)?;
        let join = if tail {
            None
        } else {
            let after = self.after(key(e), span)?;
            let input = self.carried(&after, span)?;
            Some(self.new_block(Entry::Goto, input, Vec::new()))
        };
        let mut arms = TokenStream::new();
        let mut targets = Vec::new();
        for arm in &m.arms {
            let p = self.point(key(arm), span)?;
            let input = self.carried(&p, span)?;
            let k = self.new_block(Entry::Goto, input, Vec::new());
            let bindings = self
                .a
                .stmt_locals
                .get(&key(arm))
                .cloned()
                .unwrap_or_default();
            let g = self.with_bound(&bindings, |lw| lw.goto(k, span))?;
            let pat = &arm.pat;
            let guard = match &arm.guard {
                Some((_, g)) => {
                    let g = self.rewrite_expr(g, (**g).clone())?;
                    quote!(if #g)
                }
                None => quote!(),
            };
            arms.extend(quote!(#pat #guard => #g,));
            targets.push(k);
        }
        self.terminate(quote!(match #scrut { #arms }));
        let ctx = if tail { Ctx::FnTail } else { Ctx::Unit };
        for (arm, k) in m.arms.iter().zip(targets) {
            self.switch(k);
            match &*arm.body {
                Expr::Block(b) if b.label.is_none() => self.lower_stmts(&b.block.stmts, ctx)?,
                body => self.lower_arm_expr(body, tail)?,
            }
            self.close_branch(join, span)?;
        }
        if let Some(j) = join {
            self.switch(j);
        }
        Ok(())
    }

    fn lower_arm_expr(&mut self, body: &Expr, tail: bool) -> Result<(), Fallback> {
        if let Some(await_span) = expr_await(body) {
            return self.lower_expr_stmt(body, tail, true, await_span);
        }
        let b = self.rewrite_expr(body, body.clone())?;
        if tail {
            let tr = self.tr();
            self.terminate(quote!(#tr::Return(#b)));
        } else if !diverges_expr(body) {
            self.emit(quote!(#b;));
        } else {
            self.emit(quote!(#b));
            self.terminate(TokenStream::new());
        }
        Ok(())
    }

    fn close_branch(&mut self, join: Option<usize>, span: Span) -> Result<(), Fallback> {
        if let Some(j) = join
            && !self.terminated()
        {
            let g = self.goto(j, span)?;
            self.terminate(g);
        }
        Ok(())
    }

    fn lower_loop(&mut self, e: &Expr) -> Result<(), Fallback> {
        let span = e.span();
        let (label, body, cond) = match e {
            Expr::Loop(l) => (&l.label, &l.body, None),
            Expr::While(w) => (&w.label, &w.body, Some(&*w.cond)),
            Expr::ForLoop(f) => return self.lower_for(e, f),
            _ => return fallback(span, "unsupported loop"),
        };
        let start = self.point(key(e), span)?;
        let after = self.after(key(e), span)?;
        let header_in = self.carried(&start, span)?;
        let exit_in = self.carried(&after, span)?;
        let header = self.new_block(Entry::Goto, header_in, Vec::new());
        let exit = self.new_block(Entry::Goto, exit_in, Vec::new());
        let g = self.goto(header, span)?;
        self.terminate(g);
        self.switch(header);
        if let Some(cond) = cond {
            let body_point = self.point(key(body), span)?;
            let body_in = self.carried(&body_point, span)?;
            let body_k = self.new_block(Entry::Goto, body_in, Vec::new());
            let (cond, bindings) = self.condition(cond, span)?;
            let g_body = self.with_bound(&bindings, |lw| lw.goto(body_k, span))?;
            let g_exit = self.goto(exit, span)?;
            self.terminate(quote!(if #cond { #g_body } else { #g_exit }));
            self.switch(body_k);
        }
        self.loops.push(LoopCtx {
            label: label.as_ref().map(|l| l.name.ident.to_string()),
            header,
            exit,
        });
        self.lower_stmts(&body.stmts, Ctx::Unit)?;
        if !self.terminated() {
            let g = self.goto(header, span)?;
            self.terminate(g);
        }
        self.loops.pop();
        self.switch(exit);
        Ok(())
    }

    fn lower_for(&mut self, e: &Expr, f: &syn::ExprForLoop) -> Result<(), Fallback> {
        let span = f.for_token.span;
        if expr_await(&f.expr).is_some() {
            return fallback(span, "an await in a `for` loop's iterator expression");
        }
        // The iterator expression's temporaries would live through the whole loop.
        if !(pure_place(&f.expr) || simple_future(&f.expr) || is_range(&f.expr)) {
            return fallback(
                span,
                "a `for` loop over an expression whose temporaries would live across its awaits",
            );
        }
        let iter_id = self
            .a
            .stmt_locals
            .get(&key(e))
            .and_then(|v| v.first().copied());
        let Some(iter_id) = iter_id else {
            return fallback(span, "internal: no iterator local");
        };
        let iter = self.a.local(iter_id).name.clone();
        let expr = self.rewrite_expr(&f.expr, (*f.expr).clone())?;
        self.emit(quote!(#[allow(unused_mut)] let mut #iter = ::core::iter::IntoIterator::into_iter(#expr);));
        self.bound.push((iter_id, iter.clone()));
        let start = self.point(key(e), span)?;
        let after = self.after(key(e), span)?;
        let header_in = self.carried(&start, span)?;
        let exit_in = self.carried(&after, span)?;
        let header = self.new_block(Entry::Goto, header_in, Vec::new());
        let exit = self.new_block(Entry::Goto, exit_in, Vec::new());
        let g = self.goto(header, span)?;
        self.terminate(g);
        self.switch(header);
        let body_point = self.point(key(&f.body), span)?;
        let body_in = self.carried(&body_point, span)?;
        let body_k = self.new_block(Entry::Goto, body_in, Vec::new());
        let bindings = self
            .a
            .stmt_locals
            .get(&key(&*f.pat))
            .cloned()
            .unwrap_or_default();
        let g_body = self.with_bound(&bindings, |lw| lw.goto(body_k, span))?;
        let g_exit = self.goto(exit, span)?;
        let pat = &f.pat;
        self.terminate(quote!(match ::core::iter::Iterator::next(&mut #iter) {
            ::core::option::Option::Some(#pat) => #g_body,
            ::core::option::Option::None => #g_exit,
        }));
        self.switch(body_k);
        self.loops.push(LoopCtx {
            label: f.label.as_ref().map(|l| l.name.ident.to_string()),
            header,
            exit,
        });
        self.lower_stmts(&f.body.stmts, Ctx::Unit)?;
        if !self.terminated() {
            let g = self.goto(header, span)?;
            self.terminate(g);
        }
        self.loops.pop();
        self.switch(exit);
        Ok(())
    }

    fn verbatim(&mut self, s: &Stmt, tail: bool) -> Result<(), Fallback> {
        if let Stmt::Expr(e, None) = s
            && tail
        {
            let rewritten = self.rewrite_expr(e, e.clone())?;
            if diverges_expr(e) {
                // `Return(unreachable!())` would warn of an unreachable call.
                self.emit(quote!(#rewritten;));
                self.terminate(TokenStream::new());
                return Ok(());
            }
            let tr = self.tr();
            self.terminate(quote!(#tr::Return(#rewritten)));
            return Ok(());
        }
        let mut s2 = s.clone();
        let mut rw = CfRewriter::new(self, jump_keys(|v| v.visit_stmt(s)));
        rw.visit_stmt_mut(&mut s2);
        if let Some(f) = rw.error {
            return Err(f);
        }
        let declared = self.a.stmt_locals.get(&key(s)).cloned().unwrap_or_default();
        if declared.iter().any(|&id| self.a.local(id).mutable) {
            // The mutation may happen in a later block, where the local is bound again.
            self.emit(quote!(#[allow(unused_mut)]));
        }
        self.emit(quote::ToTokens::to_token_stream(&s2));
        for id in declared {
            self.bound.push((id, self.a.local(id).name.clone()));
        }
        Ok(())
    }

    /// `e` (a copy of `original`, perhaps with its spine await replaced) with its control
    /// flow rewritten.
    fn rewrite_expr(&self, original: &Expr, mut e: Expr) -> Result<Expr, Fallback> {
        let keys = jump_keys(|v| v.visit_expr(original));
        let mut rw = CfRewriter::new(self, keys);
        rw.visit_expr_mut(&mut e);
        match rw.error {
            Some(f) => Err(f),
            None => Ok(e),
        }
    }
}

/// What an expression run as one adapter may not contain: control flow leaving it (other than
/// `?`, which becomes a `ControlFlow::Break`), or a `yield_!`.
#[derive(Default)]
struct AdapterCheck {
    has_try: bool,
    refuse: Option<&'static str>,
    loops: usize,
}

impl<'ast> Visit<'ast> for AdapterCheck {
    fn visit_expr(&mut self, e: &'ast Expr) {
        match e {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Try(_) => {
                self.has_try = true;
                syn::visit::visit_expr(self, e);
            }
            Expr::Return(_) => self.refuse = Some("a `return` inside an expression with awaits"),
            Expr::Break(b) if b.label.is_some() || self.loops == 0 => {
                self.refuse = Some("a `break` out of an expression with awaits");
            }
            Expr::Continue(c) if c.label.is_some() || self.loops == 0 => {
                self.refuse = Some("a `continue` out of an expression with awaits");
            }
            Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => {
                self.loops += 1;
                syn::visit::visit_expr(self, e);
                self.loops -= 1;
            }
            _ => syn::visit::visit_expr(self, e),
        }
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if yields::is_yield(m) {
            self.refuse = Some("a `yield_!` inside an expression with awaits");
            return;
        }
        let mut tokens = Vec::new();
        crate::liveness::token_idents(m.tokens.clone(), &mut tokens);
        if tokens
            .iter()
            .any(|t| t == "return" || t == "break" || t == "continue")
            || m.tokens.to_string().contains('?')
        {
            self.refuse = Some("control flow inside a macro in an expression with awaits");
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The control flow of a bounded native region's statements: `return v` and `e?` leave the
/// adapter as `ControlFlow::Break(output)`; a `break`/`continue` that leaves the region, or
/// control flow inside a macro, is refused. Closures, `async` blocks and items keep their own.
#[derive(Default)]
struct RegionCf {
    /// Labels of the loops (`true`) and labelled blocks (`false`) inside, innermost last.
    inner: Vec<(Option<String>, bool)>,
    exits: bool,
    error: Option<Fallback>,
}

impl RegionCf {
    fn refuse(&mut self, span: Span, reason: &str) {
        self.error = Some(Fallback {
            span,
            reason: reason.to_owned(),
        });
    }

    fn inside(&self, label: Option<&syn::Lifetime>) -> bool {
        match label {
            None => self.inner.iter().any(|(_, is_loop)| *is_loop),
            Some(l) => {
                let name = l.ident.to_string();
                self.inner.iter().any(|(n, _)| n.as_deref() == Some(&name))
            }
        }
    }

    fn check_macro(&mut self, m: &syn::Macro) {
        fn leaves(tokens: TokenStream) -> bool {
            tokens.into_iter().any(|t| match t {
                proc_macro2::TokenTree::Ident(i) => {
                    i == "return" || i == "break" || i == "continue"
                }
                proc_macro2::TokenTree::Punct(p) => p.as_char() == '?',
                proc_macro2::TokenTree::Group(g) => leaves(g.stream()),
                proc_macro2::TokenTree::Literal(_) => false,
            })
        }
        if leaves(m.tokens.clone()) {
            self.refuse(
                m.path.span(),
                "control flow inside a macro in a native region",
            );
        }
    }
}

impl VisitMut for RegionCf {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Return(r) => {
                if let Some(v) = &mut r.expr {
                    self.visit_expr_mut(v);
                }
                let v = r.expr.as_ref().map_or_else(|| quote!(()), |v| quote!(#v));
                let span = r.return_token.span;
                *e = syn::parse_quote_spanned!(span=> return ::core::ops::ControlFlow::Break(#v));
                self.exits = true;
            }
            Expr::Try(t) => {
                self.visit_expr_mut(&mut t.expr);
                let inner = &t.expr;
                let span = t.question_token.span;
                let v = Ident::new("__v", Span::mixed_site());
                let res = Ident::new("__residual", Span::mixed_site());
                // A call, so that `x? % 3` keeps its precedence wherever it stands.
                *e = syn::parse_quote_spanned!(span=>
                    ::core::convert::identity(match ::structured_async::__private::Branch::branch(#inner) {
                        ::core::ops::ControlFlow::Continue(#v) => #v,
                        ::core::ops::ControlFlow::Break(#res) => return ::core::ops::ControlFlow::Break(
                            ::structured_async::__private::FromResidual::from_residual(#res)
                        ),
                    })
                );
                self.exits = true;
            }
            Expr::Break(b) => {
                if !self.inside(b.label.as_ref()) {
                    self.refuse(b.break_token.span, "a `break` out of a native region");
                    return;
                }
                visit_mut::visit_expr_mut(self, e);
            }
            Expr::Continue(c) => {
                if !self.inside(c.label.as_ref()) {
                    self.refuse(c.continue_token.span, "a `continue` out of a native region");
                }
            }
            Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => {
                let label = match e {
                    Expr::Loop(l) => l.label.as_ref(),
                    Expr::While(w) => w.label.as_ref(),
                    Expr::ForLoop(f) => f.label.as_ref(),
                    _ => None,
                }
                .map(|l| l.name.ident.to_string());
                self.inner.push((label, true));
                visit_mut::visit_expr_mut(self, e);
                self.inner.pop();
            }
            Expr::Block(b) if b.label.is_some() => {
                let label = b.label.as_ref().map(|l| l.name.ident.to_string());
                self.inner.push((label, false));
                visit_mut::visit_expr_mut(self, e);
                self.inner.pop();
            }
            Expr::Macro(m) => self.check_macro(&m.mac),
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }

    fn visit_stmt_mut(&mut self, s: &mut Stmt) {
        if let Stmt::Macro(m) = s {
            self.check_macro(&m.mac);
            return;
        }
        visit_mut::visit_stmt_mut(self, s);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// `e?` → `match branch(e) { Continue(v) => v, Break(r) => break 'label Break(from_residual(r)) }`.
struct TryToBreak<'a> {
    label: &'a syn::Lifetime,
}

impl VisitMut for TryToBreak<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Try(t) => {
                self.visit_expr_mut(&mut t.expr);
                let inner = &t.expr;
                let label = self.label;
                let v = Ident::new("__v", Span::mixed_site());
                let res = Ident::new("__residual", Span::mixed_site());
                *e = syn::parse_quote_spanned!(t.question_token.span=>
                    match ::structured_async::__private::Branch::branch(#inner) {
                        ::core::ops::ControlFlow::Continue(#v) => #v,
                        // Not `break 'label ::path`: a label before `::` reads as `'label:`.
                        ::core::ops::ControlFlow::Break(#res) => {
                            let #res = ::core::ops::ControlFlow::Break(
                                ::structured_async::__private::FromResidual::from_residual(#res)
                            );
                            break #label #res
                        }
                    }
                );
            }
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// Rewrites the control flow that leaves a block closure: `return e` → `return Return(e)`,
/// `e?` → an early `Return` of the residual, `break`/`continue` of a lowered loop → a `Goto`.
/// Closures, `async` blocks and items keep their own control flow.
struct CfRewriter<'l, 'a> {
    lw: &'l Lowerer<'a>,
    /// Labels of loops inside the statement (verbatim), innermost last; `None` if unlabelled.
    inner_loops: Vec<Option<String>>,
    error: Option<Fallback>,
    /// Analysis keys of the original `break`/`continue` nodes, in visiting order (the tree
    /// being rewritten is a copy).
    origins: std::vec::IntoIter<usize>,
}

/// Keys of `break`/`continue` expressions in the order [`CfRewriter`] meets them.
fn jump_keys(walk: impl FnOnce(&mut JumpKeys)) -> Vec<usize> {
    let mut j = JumpKeys(Vec::new());
    walk(&mut j);
    j.0
}

struct JumpKeys(Vec<usize>);

impl<'ast> Visit<'ast> for JumpKeys {
    fn visit_expr(&mut self, e: &'ast Expr) {
        match e {
            Expr::Closure(_) | Expr::Async(_) | Expr::Macro(_) => {}
            Expr::Break(_) | Expr::Continue(_) => {
                self.0.push(key(e));
                syn::visit::visit_expr(self, e);
            }
            _ => syn::visit::visit_expr(self, e),
        }
    }
    fn visit_stmt(&mut self, s: &'ast Stmt) {
        if !matches!(s, Stmt::Macro(_)) {
            syn::visit::visit_stmt(self, s);
        }
    }
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

impl<'l, 'a> CfRewriter<'l, 'a> {
    fn new(lw: &'l Lowerer<'a>, origins: Vec<usize>) -> Self {
        CfRewriter {
            lw,
            inner_loops: Vec::new(),
            error: None,
            origins: origins.into_iter(),
        }
    }

    fn target(&self, label: Option<&syn::Lifetime>) -> Option<&LoopCtx> {
        match label {
            None => {
                if self.inner_loops.is_empty() {
                    self.lw.loops.last()
                } else {
                    None
                }
            }
            Some(l) => {
                let name = l.ident.to_string();
                if self.inner_loops.iter().any(|x| x.as_deref() == Some(&name)) {
                    return None;
                }
                self.lw
                    .loops
                    .iter()
                    .rev()
                    .find(|c| c.label.as_deref() == Some(&name))
            }
        }
    }

    fn jump(&mut self, e: &Expr, origin: Option<usize>, k: usize) -> Option<Expr> {
        let span = e.span();
        // Every local the target needs must still be reachable by its name here.
        let Some(p) = origin.and_then(|o| self.lw.a.points.get(&o)) else {
            self.error = Some(Fallback {
                span,
                reason: "internal: a `break`/`continue` the analysis did not see".to_owned(),
            });
            return None;
        };
        for &id in &self.lw.blocks[k].input {
            let name = self.lw.name_of(id, span).ok()?;
            let l = self.lw.a.local(id);
            if name == l.name {
                let innermost = p
                    .in_scope
                    .iter()
                    .rev()
                    .find(|&&o| self.lw.a.local(o).name == l.name);
                if innermost != Some(&id) {
                    self.error = Some(Fallback {
                        span,
                        reason: format!("`{}` is shadowed where the loop is left", l.name),
                    });
                    return None;
                }
            }
        }
        match self.lw.goto(k, span) {
            Ok(g) => Some(syn::parse_quote_spanned!(span=> return #g)),
            Err(f) => {
                self.error = Some(f);
                None
            }
        }
    }
}

impl VisitMut for CfRewriter<'_, '_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        let tr = self.lw.tr().clone();
        match e {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Return(r) => {
                if let Some(v) = &mut r.expr {
                    self.visit_expr_mut(v);
                }
                let v = r.expr.as_ref().map_or_else(|| quote!(()), |v| quote!(#v));
                let span = r.return_token.span;
                *e = syn::parse_quote_spanned!(span=> return #tr::Return(#v));
            }
            Expr::Try(t) => {
                self.visit_expr_mut(&mut t.expr);
                let inner = &t.expr;
                let span = t.question_token.span;
                let v = Ident::new("__v", Span::mixed_site());
                let res = Ident::new("__residual", Span::mixed_site());
                // A call, so that `x? % 3` keeps its precedence wherever it stands.
                *e = syn::parse_quote_spanned!(span=>
                    ::core::convert::identity(match ::structured_async::__private::Branch::branch(#inner) {
                        ::core::ops::ControlFlow::Continue(#v) => #v,
                        ::core::ops::ControlFlow::Break(#res) => return #tr::Return(
                            ::structured_async::__private::FromResidual::from_residual(#res)
                        ),
                    })
                );
            }
            Expr::Break(b) => {
                let origin = self.origins.next();
                if b.expr.is_some() && self.target(b.label.as_ref()).is_some() {
                    self.error = Some(Fallback {
                        span: b.break_token.span,
                        reason: "`break` with a value out of a loop with awaits".to_owned(),
                    });
                    return;
                }
                if let Some(k) = self.target(b.label.as_ref()).map(|c| c.exit) {
                    if let Some(new) = self.jump(e, origin, k) {
                        *e = new;
                    }
                } else {
                    visit_mut::visit_expr_mut(self, e);
                }
            }
            Expr::Continue(c) => {
                let origin = self.origins.next();
                if let Some(k) = self.target(c.label.as_ref()).map(|c| c.header) {
                    if let Some(new) = self.jump(e, origin, k) {
                        *e = new;
                    }
                }
            }
            Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => {
                let label = match e {
                    Expr::Loop(l) => l.label.as_ref(),
                    Expr::While(w) => w.label.as_ref(),
                    Expr::ForLoop(f) => f.label.as_ref(),
                    _ => None,
                }
                .map(|l| l.name.ident.to_string());
                self.inner_loops.push(label);
                visit_mut::visit_expr_mut(self, e);
                self.inner_loops.pop();
            }
            Expr::Macro(m) => self.check_macro(&m.mac),
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }

    fn visit_stmt_mut(&mut self, s: &mut Stmt) {
        if let Stmt::Macro(m) = s {
            self.check_macro(&m.mac);
            return;
        }
        visit_mut::visit_stmt_mut(self, s);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

impl CfRewriter<'_, '_> {
    /// Control flow inside a macro's tokens cannot be rewritten: keep a native frame.
    fn check_macro(&mut self, m: &syn::Macro) {
        fn leaves(tokens: TokenStream) -> bool {
            tokens.into_iter().any(|t| match t {
                proc_macro2::TokenTree::Ident(i) => {
                    i == "return" || i == "break" || i == "continue"
                }
                proc_macro2::TokenTree::Punct(p) => p.as_char() == '?',
                proc_macro2::TokenTree::Group(g) => leaves(g.stream()),
                proc_macro2::TokenTree::Literal(_) => false,
            })
        }
        if leaves(m.tokens.clone()) {
            self.error = Some(Fallback {
                span: m.path.span(),
                reason: format!(
                    "`{}!` contains `?`, `return`, `break` or `continue`",
                    quote::ToTokens::to_token_stream(&m.path)
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
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
            "async fn f(v: Option<u32>) -> u32 { match v { Some(x) if x > 2 => g(x).await, _ => 0 } }",
            "async fn f(n: u32) -> u32 { let mut t = 0; for i in 0..n { t += g(i).await; } t }",
            "async fn f(&mut self) -> u32 { self.n = g(self.n).await; self.n }",
            "async fn f(s: String) -> usize { let n = g(&s).await; n + s.len() }",
            "async fn f() -> u32 { g(1).await + g(2).await * g(3).await }",
            "async fn f() -> Result<u32, E> { let x = g(1).await? + g(2).await?; Ok(x) }",
            "async fn f(n: u32) -> u32 { let mut a: u32 = n; let b = a; a = g(b).await; a + b }",
            "async fn f(mut rx: Rx) { while let Some(x) = rx.recv().await { h(x).await; } }",
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
        // `a` is moved and assigned again inside the region: it cannot come back as a plain
        // local (it may hold a value the native frame drops at the end), so the region grows.
        let (_, report) = lowered(
            "",
            "async fn f(mut a: S, v: Vec<u32>) { drop(a); for x in &v { g(x).await; } a = S::new(); h().await; k().await; }",
        );
        assert!(!report.contains("explicit after it"), "{report}");
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
}
