//! Syntax questions the lowering asks: where a statement's awaits are (not counting closures'
//! and `async` blocks'), the await on an expression's evaluation spine, and which expressions
//! are plain enough to evaluate in a block closure.

use super::*;

pub(super) fn finder(visit: impl FnOnce(&mut AwaitFinder)) -> AwaitFinder {
    let mut f = AwaitFinder {
        found: None,
        macro_await: None,
        suspect: None,
    };
    visit(&mut f);
    f
}

pub(super) fn has_await(visit: impl FnOnce(&mut AwaitFinder)) -> Option<Span> {
    let f = finder(visit);
    f.found.or(f.macro_await)
}

/// Finds awaits (and `yield_!`) that belong to the body, not to closures or `async` blocks.
pub(super) struct AwaitFinder {
    found: Option<Span>,
    macro_await: Option<Span>,
    /// The first macro that may expand to an await (any macro not known to be await-free).
    pub(super) suspect: Option<(Span, String)>,
}

/// Whether a macro of this name is known not to expand to `.await`.
pub(super) fn is_await_free_macro(name: &str) -> bool {
    crate::liveness::borrows_only(name) || crate::liveness::OTHER_AWAIT_FREE_MACROS.contains(&name)
}

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
        if !last.as_deref().is_some_and(is_await_free_macro) {
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
        // Arguments that read as expressions are searched like the body, so an await inside
        // a closure or `async` block among them (`vec![Box::pin(async { .. })]`) is theirs.
        let parser = syn::punctuated::Punctuated::<Expr, syn::Token![,]>::parse_terminated;
        if let Ok(args) = m.parse_body_with(parser) {
            for a in &args {
                self.visit_expr(a);
            }
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

/// The first `#[cfg]` or `#[cfg_attr]` in `s` outside closures, `async` blocks and items: only
/// the compiler can tell whether the code under it exists, so a statement splitting around it
/// would run code the native frame removes.
pub(super) fn cfg_attribute(s: &Stmt) -> Option<Span> {
    struct Cfg(Option<Span>);
    impl<'ast> Visit<'ast> for Cfg {
        fn visit_attribute(&mut self, a: &'ast syn::Attribute) {
            if a.path().is_ident("cfg") || a.path().is_ident("cfg_attr") {
                self.0.get_or_insert(a.path().span());
            }
        }
        fn visit_expr(&mut self, e: &'ast Expr) {
            if !matches!(e, Expr::Closure(_) | Expr::Async(_)) {
                syn::visit::visit_expr(self, e);
            }
        }
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut c = Cfg(None);
    c.visit_stmt(s);
    c.0
}

pub(super) fn stmt_await(s: &Stmt) -> Option<Span> {
    has_await(|f| f.visit_stmt(s))
}

pub(super) fn expr_await(e: &Expr) -> Option<Span> {
    has_await(|f| f.visit_expr(e))
}

/// The await on the evaluation spine of `e` (the first thing `e` evaluates), if `e` has exactly
/// one await and it is there: `x.await`, `x.await?`, `x.await.method(args)`, `x.await + rhs`…
pub(super) fn spine(e: &Expr) -> Option<(&Expr, &Expr)> {
    match e {
        Expr::Await(a) => (expr_await(&a.base).is_none()).then_some((e, &*a.base)),
        Expr::Try(t) => spine(&t.expr),
        Expr::Paren(p) => spine(&p.expr),
        Expr::Field(f) => spine(&f.base),
        Expr::Cast(c) => spine(&c.expr),
        Expr::Unary(u) => spine(&u.expr),
        Expr::MethodCall(m) if m.args.iter().all(|a| expr_await(a).is_none()) => spine(&m.receiver),
        Expr::Binary(b) if expr_await(&b.right).is_none() => spine(&b.left),
        // `match x.await { .. }` whose arms do not await runs in the resume block; the
        // awaited operand's temporaries would live through the arms natively.
        Expr::Match(m)
            if no_temporaries(&m.expr)
                && m.arms.iter().all(|a| {
                    expr_await(&a.body).is_none()
                        && a.guard
                            .as_ref()
                            .is_none_or(|(_, g)| expr_await(g).is_none())
                }) =>
        {
            spine(&m.expr)
        }
        // `if x.await { .. } else { .. }` whose branches do not await (not `if let`: its
        // scrutinee is a temporary dropped before the `else`).
        Expr::If(i)
            if !matches!(&*i.cond, Expr::Let(_))
                && has_await(|f| f.visit_block(&i.then_branch)).is_none()
                && i.else_branch
                    .as_ref()
                    .is_none_or(|(_, e)| expr_await(e).is_none()) =>
        {
            spine(&i.cond)
        }
        _ => None,
    }
}

/// The local whose guard a future resolves to: `m.lock()`, `l.read()`, `s.acquire()` (the
/// async locks' and semaphores' methods; `read`/`write` with no argument, unlike the io ones).
pub(super) fn guard_receiver(fut: &Expr) -> Option<&Ident> {
    let Expr::MethodCall(m) = fut else {
        return None;
    };
    let name = m.method.to_string();
    let guard = match name.as_str() {
        "lock" | "read" | "write" | "acquire" => m.args.is_empty(),
        "acquire_many" => true,
        _ => false,
    };
    let mut root = &*m.receiver;
    while let Expr::Field(f) = root {
        root = &f.base;
    }
    match root {
        Expr::Path(p) if guard && p.qself.is_none() => p.path.get_ident(),
        _ => None,
    }
}

/// `e` with its spine await replaced by `r`.
pub(super) fn replace_spine(e: &Expr, r: &Expr) -> Expr {
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
            Expr::Match(m) => go(&mut m.expr, r),
            Expr::If(i) => go(&mut i.cond, r),
            _ => {}
        }
    }
    go(&mut e, r);
    e
}

pub(super) fn contains_let(e: &Expr) -> bool {
    match e {
        Expr::Let(_) => true,
        Expr::Binary(b) => contains_let(&b.left) || contains_let(&b.right),
        Expr::Paren(p) => contains_let(&p.expr),
        _ => false,
    }
}

pub(super) fn diverges_expr(e: &Expr) -> bool {
    match e {
        Expr::Return(_) | Expr::Break(_) | Expr::Continue(_) => true,
        Expr::Macro(m) => diverges_macro(&m.mac),
        _ => false,
    }
}

/// `panic!`, `unreachable!`, `todo!`, `unimplemented!`.
pub(super) fn diverges_macro(m: &syn::Macro) -> bool {
    ["panic", "unreachable", "todo", "unimplemented"]
        .iter()
        .any(|n| m.path.is_ident(n))
}

/// `a..b`, `a..=b` with plain ends: a value holding no borrow and no temporary.
pub(super) fn is_range(e: &Expr) -> bool {
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
pub(super) fn pure_place(e: &Expr) -> bool {
    match e {
        Expr::Path(p) => p.qself.is_none() && p.path.get_ident().is_some(),
        Expr::Field(f) => pure_place(&f.base),
        Expr::Unary(u) => matches!(u.op, syn::UnOp::Deref(_)) && pure_place(&u.expr),
        Expr::Paren(p) => pure_place(&p.expr),
        _ => false,
    }
}

pub(super) fn is_identity(e: &Expr) -> bool {
    matches!(e, Expr::Await(_))
}

/// A future expression the block can build itself: a call whose arguments are literals or
/// plain locals (moved or copied in), so the future holds no borrow of the frame and no
/// temporary.
pub(super) fn simple_future(e: &Expr) -> bool {
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

/// Whether evaluating `e` leaves no temporary behind (one that would live to the end of the
/// statement): locals, literals, arithmetic, calls of paths, borrows of places, awaits of such.
pub(super) fn no_temporaries(e: &Expr) -> bool {
    match e {
        Expr::Lit(_) | Expr::Path(_) => true,
        // Comparisons borrow their operands: a computed one is a temporary.
        Expr::Binary(b) if is_comparison(&b.op) => {
            let plain = |x: &Expr| pure_place(x) || matches!(x, Expr::Lit(_));
            plain(&b.left) && plain(&b.right)
        }
        Expr::Binary(b) => no_temporaries(&b.left) && no_temporaries(&b.right),
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) => pure_place(&u.expr),
        Expr::Unary(u) => no_temporaries(&u.expr),
        Expr::Paren(p) => no_temporaries(&p.expr),
        Expr::Group(g) => no_temporaries(&g.expr),
        Expr::Cast(c) => no_temporaries(&c.expr),
        Expr::Await(a) => no_temporaries(&a.base),
        // `v?` moves `v` into its `match`.
        Expr::Try(t) => no_temporaries(&t.expr),
        Expr::Reference(r) => pure_place(&r.expr),
        Expr::Field(f) => pure_place(&f.base),
        Expr::Tuple(t) => t.elems.iter().all(no_temporaries),
        Expr::Array(a) => a.elems.iter().all(no_temporaries),
        Expr::Call(c) => matches!(&*c.func, Expr::Path(_)) && c.args.iter().all(no_temporaries),
        // An iterator adapter takes its receiver by value: no temporary is left of it.
        Expr::MethodCall(m) => {
            let by_value =
                crate::liveness::BY_VALUE_ADAPTERS.contains(&m.method.to_string().as_str());
            (pure_place(&m.receiver) || (by_value && no_temporaries(&m.receiver)))
                && m.args.iter().all(no_temporaries)
        }
        // A closure is a value; what it captures, it borrows or moves from places.
        Expr::Closure(_) => true,
        _ => false,
    }
}

pub(super) fn is_comparison(op: &syn::BinOp) -> bool {
    matches!(
        op,
        syn::BinOp::Eq(_)
            | syn::BinOp::Ne(_)
            | syn::BinOp::Lt(_)
            | syn::BinOp::Le(_)
            | syn::BinOp::Gt(_)
            | syn::BinOp::Ge(_)
    )
}

/// `break 'a ::path(..)` is Rust, but syn reads `'a ::` as the label of a labelled expression
/// (`break 'a: loop {}`), so an attribute below `#[structured]` could not parse the fn. A
/// rewrite (drop flags, `?`) that makes a labelled break's value start with `::` puts it in
/// parentheses.
pub(super) fn paren_path_break_value(b: &mut syn::ExprBreak) {
    let Some(value) = &mut b.expr else {
        return;
    };
    let leading_colon = matches!(
        quote::ToTokens::to_token_stream(&**value).into_iter().next(),
        Some(proc_macro2::TokenTree::Punct(p)) if p.as_char() == ':'
    );
    if b.label.is_some() && leading_colon {
        let inner = std::mem::replace(&mut **value, Expr::Verbatim(TokenStream::new()));
        **value = syn::parse_quote!((#inner));
    }
}

/// Whether `name` appears as an identifier anywhere in `s` (macro arguments included).
pub(super) fn mentions_ident(s: &Stmt, name: &Ident) -> bool {
    // Format strings name locals too (`format!("{x}")`).
    fn walk(tokens: TokenStream, name: &Ident) -> bool {
        let mut idents = Vec::new();
        crate::liveness::token_idents(tokens, &mut idents);
        idents.iter().any(|i| i == name)
    }
    let Stmt::Local(l) = s else {
        return walk(quote::ToTokens::to_token_stream(s), name);
    };
    // The pattern declares the new local; only the initialiser and `else` can read the old.
    l.init.as_ref().is_some_and(|init| {
        walk(quote::ToTokens::to_token_stream(&init.expr), name)
            || init
                .diverge
                .as_ref()
                .is_some_and(|(_, e)| walk(quote::ToTokens::to_token_stream(e), name))
    })
}
