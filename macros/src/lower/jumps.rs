//! Control flow leaving a block closure: `return`, `?`, and `break`/`continue` of a lowered
//! loop become transitions.

use super::*;

/// Rewrites the control flow that leaves a block closure: `return e` → `return Return(e)`,
/// `e?` → an early `Return` of the residual, `break`/`continue` of a lowered loop → a `Goto`.
/// Closures, `async` blocks and items keep their own control flow.
pub(super) struct CfRewriter<'l, 'a> {
    lw: &'l Lowerer<'a>,
    /// Labels of loops inside the statement (verbatim), innermost last; `None` if unlabelled.
    inner_loops: Vec<Option<String>>,
    pub(super) error: Option<Fallback>,
    /// Analysis keys of the original `break`/`continue` nodes, in visiting order (the tree
    /// being rewritten is a copy).
    origins: std::vec::IntoIter<usize>,
    /// The position the rewritten code starts at: locals declared after it are bound in it.
    from: usize,
}

/// Keys of `break`/`continue` expressions in the order [`CfRewriter`] meets them.
pub(super) fn jump_keys(walk: impl FnOnce(&mut JumpKeys)) -> Vec<usize> {
    let mut j = JumpKeys(Vec::new());
    walk(&mut j);
    j.0
}

pub(super) struct JumpKeys(Vec<usize>);

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
    pub(super) fn new(lw: &'l Lowerer<'a>, origins: Vec<usize>, from: usize) -> Self {
        CfRewriter {
            lw,
            inner_loops: Vec::new(),
            error: None,
            origins: origins.into_iter(),
            from,
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
                // A newer local of that name shadows it here only if the closure binds it:
                // one of this block's, or one declared in the code being rewritten.
                let shadows = |o: &LocalId| {
                    self.lw.bound.iter().any(|(b, _)| b == o)
                        || self.lw.a.local(*o).decl > self.from
                };
                if innermost.is_none_or(|o| *o != id && shadows(o)) {
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
                *e = wrapped_return(r, &quote!(#tr::Return));
            }
            Expr::Try(t) => {
                self.visit_expr_mut(&mut t.expr);
                *e = wrapped_try(t, &quote!(#tr::Return));
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
                    visit_mut::visit_expr_break_mut(self, b);
                    paren_path_break_value(b);
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
                let label = loop_label(e);
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
        if macro_leaves(m) {
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

/// `return v` (its `v` already rewritten) → `return WRAP(v)`.
pub(super) fn wrapped_return(r: &syn::ExprReturn, wrap: &TokenStream) -> Expr {
    let v = r.expr.as_ref().map_or_else(|| quote!(()), |v| quote!(#v));
    let span = r.return_token.span;
    syn::parse_quote_spanned!(span=> return #wrap(#v))
}

/// `e?` (its `e` already rewritten) → an early `return WRAP(residual)`.
pub(super) fn wrapped_try(t: &syn::ExprTry, wrap: &TokenStream) -> Expr {
    let inner = &t.expr;
    let span = t.question_token.span;
    let v = Ident::new("__v", Span::mixed_site());
    let res = Ident::new("__residual", Span::mixed_site());
    // A call, so that `x? % 3` keeps its precedence wherever it stands.
    syn::parse_quote_spanned!(span=>
        ::core::convert::identity(match ::structured_async::__private::Branch::branch(#inner) {
            ::core::ops::ControlFlow::Continue(#v) => #v,
            ::core::ops::ControlFlow::Break(#res) => return #wrap(
                ::structured_async::__private::FromResidual::from_residual(#res)
            ),
        })
    )
}

/// The label of a `loop`/`while`/`for`.
pub(super) fn loop_label(e: &Expr) -> Option<String> {
    match e {
        Expr::Loop(l) => l.label.as_ref(),
        Expr::While(w) => w.label.as_ref(),
        Expr::ForLoop(f) => f.label.as_ref(),
        _ => None,
    }
    .map(|l| l.name.ident.to_string())
}

/// Whether a macro's tokens hold `?`, `return`, `break` or `continue`, which cannot be
/// rewritten inside them.
pub(super) fn macro_leaves(m: &syn::Macro) -> bool {
    /// `sigils`: a `?` that does not follow an operand is a prefix sigil (tracing's and log's
    /// `?value`, "record with `Debug`"), not the try operator.
    fn leaves(tokens: TokenStream, sigils: bool) -> bool {
        // Whether the previous token ends an operand (`x`, `1`, `(..)`, `x?`).
        let mut after_operand = false;
        tokens.into_iter().any(|t| {
            let (leaves_here, ends_operand) = match t {
                proc_macro2::TokenTree::Ident(i) => {
                    (i == "return" || i == "break" || i == "continue", true)
                }
                proc_macro2::TokenTree::Punct(p) if p.as_char() == '?' => {
                    let is_try = !sigils || after_operand;
                    (is_try, is_try)
                }
                proc_macro2::TokenTree::Punct(_) => (false, false),
                proc_macro2::TokenTree::Group(g) => (leaves(g.stream(), sigils), true),
                proc_macro2::TokenTree::Literal(_) => (false, true),
            };
            after_operand = ends_operand;
            leaves_here
        })
    }
    // Only in macros known to take expressions: in any other, tokens may be pasted anywhere.
    let known = m
        .path
        .segments
        .last()
        .is_some_and(|s| super::syntax::is_await_free_macro(&s.ident.to_string()));
    leaves(m.tokens.clone(), known)
}
