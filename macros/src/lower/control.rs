//! Control flow with awaits inside: `if`, `match`, `loop`/`while`/`for` become dispatching
//! blocks with a join (or exit) block; await-free statements are emitted verbatim with their
//! control flow rewritten.

use super::*;
use quote::quote_spanned;

impl Lowerer<'_> {
    pub(super) fn lower_if(
        &mut self,
        e: &Expr,
        i: &syn::ExprIf,
        tail: bool,
    ) -> Result<(), Fallback> {
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
        let then_stmts = &i.then_branch.stmts;
        self.in_tail_scope(then_stmts, |lw| lw.lower_stmts(then_stmts, ctx))?;
        self.close_branch(join, span)?;
        if let Some((_, els)) = &i.else_branch {
            self.switch(else_k);
            match &**els {
                Expr::Block(b) => {
                    let stmts = &b.block.stmts;
                    self.in_tail_scope(stmts, |lw| lw.lower_stmts(stmts, ctx))?;
                }
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
    pub(super) fn condition(
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
            self.suspend_await(aw, fut, cond, span)?;
            let value = self.rewrite_expr(cond, replace_spine(cond, &syn::parse_quote!(#r)))?;
            return Ok((quote!({ let #r = #r; #value }), Vec::new()));
        }
        let c = self.rewrite_expr(cond, cond.clone())?;
        Ok((quote!(#c), Vec::new()))
    }

    /// A `match`/`if let` scrutinee. Its temporaries would live through the arms natively, so
    /// only scrutinees without droppable temporaries are lowered: a place, an arithmetic value,
    /// or an awaited value that the patterns take apart completely.
    pub(super) fn scrutinee(
        &mut self,
        scrut: &Expr,
        span: Span,
        pats: &[&syn::Pat],
    ) -> Result<TokenStream, Fallback> {
        let place = pure_place(scrut);
        if !place && pats.iter().any(|p| leaves_parts(p)) {
            return fallback(
                span,
                "a `_` pattern keeps part of a temporary scrutinee alive across the arms' awaits",
            );
        }
        // The temporaries of a scrutinee (`match f(&g()).await`, `match v().len()`) live to
        // the end of the `match`, across the arms' awaits.
        if !place && !no_temporaries(scrut) {
            return fallback(
                span,
                "a scrutinee whose temporaries would live across the arms' awaits",
            );
        }
        if expr_await(scrut).is_some() {
            let Some((aw, fut)) = spine(scrut) else {
                return fallback(span, "an await nested inside a scrutinee");
            };
            let r = Ident::new("__r", Span::mixed_site());
            self.suspend_await(aw, fut, scrut, span)?;
            let value = self.rewrite_expr(scrut, replace_spine(scrut, &syn::parse_quote!(#r)))?;
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
    pub(super) fn with_bound<T>(
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

    pub(super) fn lower_match(
        &mut self,
        e: &Expr,
        m: &syn::ExprMatch,
        tail: bool,
    ) -> Result<(), Fallback> {
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
                Expr::Block(b) if b.label.is_none() => {
                    let stmts = &b.block.stmts;
                    self.in_tail_scope(stmts, |lw| lw.lower_stmts(stmts, ctx))?;
                }
                body => self.in_tail_scope(&[], |lw| lw.lower_arm_expr(body, tail))?,
            }
            self.close_branch(join, span)?;
        }
        if let Some(j) = join {
            self.switch(j);
        }
        Ok(())
    }

    pub(super) fn lower_arm_expr(&mut self, body: &Expr, tail: bool) -> Result<(), Fallback> {
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

    pub(super) fn close_branch(&mut self, join: Option<usize>, span: Span) -> Result<(), Fallback> {
        if let Some(j) = join
            && !self.terminated()
        {
            let g = self.goto(j, span)?;
            self.terminate(g);
        }
        Ok(())
    }

    pub(super) fn lower_loop(&mut self, e: &Expr) -> Result<(), Fallback> {
        let span = e.span();
        let (label, body, cond) = match e {
            Expr::Loop(l) => (&l.label, &l.body, None),
            Expr::While(w) => (&w.label, &w.body, Some(&*w.cond)),
            Expr::ForLoop(f) => return self.lower_for(e, f),
            _ => return fallback(span, "unsupported loop"),
        };
        let (header, exit) = self.enter_loop(e, span)?;
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
        let label = label.as_ref().map(|l| l.name.ident.to_string());
        self.loop_body(label, header, exit, &body.stmts, span)
    }

    pub(super) fn lower_for(&mut self, e: &Expr, f: &syn::ExprForLoop) -> Result<(), Fallback> {
        let span = f.for_token.span;
        if expr_await(&f.expr).is_some() {
            return fallback(span, "an await in a `for` loop's iterator expression");
        }
        // The iterator expression's temporaries would live through the whole loop.
        if !(pure_place(&f.expr)
            || simple_future(&f.expr)
            || is_range(&f.expr)
            || no_temporaries(&f.expr))
        {
            return fallback(
                span,
                "a `for` loop over an expression whose temporaries would live across its awaits",
            );
        }
        // `for (a, _) in pairs`: the unbound part of each item stays in the loop's `match`
        // until the end of the iteration, across its awaits; the lowering's `match` ends at
        // the first await. Only items without drop glue may be left there.
        let guessed = self.a.copy_item_loops.contains(&key(e));
        if leaves_parts(&f.pat) && !guessed && !range_items(&f.expr) {
            return fallback(
                span,
                "a `_` or `..` in a `for` pattern keeps part of each item alive until the end \
                 of the iteration, across its awaits",
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
        let (header, exit) = self.enter_loop(e, span)?;
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
        // Items the liveness guessed `Copy` from names (`v.iter()`, `&v`) are dropped where
        // they are last used, not at the end of the iteration: rustc checks the guess, so a
        // wrong one is a compile error at the binding, never a changed drop order.
        let checks = bindings.iter().filter(|&&id| self.a.local(id).guessed_copy).map(|&id| {
            let name = &self.a.local(id).name;
            quote_spanned!(name.span()=> ::structured_async::__private::assert_copy_item(&#name);)
        });
        let checks: TokenStream = checks.collect();
        // What a `_` leaves of a guessed item is checked as a whole.
        let next = if leaves_parts(pat) && guessed {
            let n = Ident::new("__n", Span::mixed_site());
            quote_spanned!(pat.span()=> {
                let #n = ::core::iter::Iterator::next(&mut #iter);
                ::structured_async::__private::assert_copy_item(&#n);
                #n
            })
        } else {
            quote!(::core::iter::Iterator::next(&mut #iter))
        };
        self.terminate(quote!(match #next {
            ::core::option::Option::Some(#pat) => { #checks #g_body }
            ::core::option::Option::None => #g_exit,
        }));
        self.switch(body_k);
        let label = f.label.as_ref().map(|l| l.name.ident.to_string());
        self.loop_body(label, header, exit, &f.body.stmts, span)
    }

    /// Opens a loop's header block (entered now) and its exit block.
    fn enter_loop(&mut self, e: &Expr, span: Span) -> Result<(usize, usize), Fallback> {
        let start = self.point(key(e), span)?;
        let after = self.after(key(e), span)?;
        let header_in = self.carried(&start, span)?;
        let exit_in = self.carried(&after, span)?;
        let header = self.new_block(Entry::Goto, header_in, Vec::new());
        let exit = self.new_block(Entry::Goto, exit_in, Vec::new());
        let g = self.goto(header, span)?;
        self.terminate(g);
        self.switch(header);
        Ok((header, exit))
    }

    /// Lowers a loop's body, going back to `header` at its end, and continues in `exit`.
    fn loop_body(
        &mut self,
        label: Option<String>,
        header: usize,
        exit: usize,
        stmts: &[Stmt],
        span: Span,
    ) -> Result<(), Fallback> {
        self.loops.push(LoopCtx {
            label,
            header,
            exit,
        });
        self.lower_stmts(stmts, Ctx::Unit)?;
        if !self.terminated() {
            let g = self.goto(header, span)?;
            self.terminate(g);
        }
        self.loops.pop();
        self.switch(exit);
        Ok(())
    }

    pub(super) fn verbatim(&mut self, s: &Stmt, tail: bool) -> Result<(), Fallback> {
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
            self.terminate_tail(quote!(#tr::Return(#rewritten)));
            return Ok(());
        }
        let mut s2 = s.clone();
        // A block's value that is not the fn's (`{ ..; f() };`, `if c { f() } else { g() };`)
        // is followed by more code here: it needs its `;` unless it is block-like.
        if let Stmt::Expr(e, semi @ None) = &mut s2
            && !matches!(
                e,
                Expr::If(_)
                    | Expr::Match(_)
                    | Expr::Block(_)
                    | Expr::Loop(_)
                    | Expr::While(_)
                    | Expr::ForLoop(_)
                    | Expr::TryBlock(_)
                    | Expr::Const(_)
            )
        {
            *semi = Some(Default::default());
        }
        let from = self.point(key(s), s.span())?.pos;
        let mut rw = CfRewriter::new(self, jump_keys(|v| v.visit_stmt(s)), from);
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
    pub(super) fn rewrite_expr(&self, original: &Expr, e: Expr) -> Result<Expr, Fallback> {
        // Without a known start, every local counts as bound in the rewritten code.
        let from = self.a.ranges.get(&key(original)).map_or(0, |r| r.0);
        self.rewrite_expr_from(original, e, from)
    }

    /// [`Self::rewrite_expr`] for code starting at position `from`.
    pub(super) fn rewrite_expr_from(
        &self,
        original: &Expr,
        mut e: Expr,
        from: usize,
    ) -> Result<Expr, Fallback> {
        let keys = jump_keys(|v| v.visit_expr(original));
        let mut rw = CfRewriter::new(self, keys, from);
        rw.visit_expr_mut(&mut e);
        match rw.error {
            Some(f) => Err(f),
            None => Ok(e),
        }
    }
}

/// Whether a `for` loop's items are numbers (or other `Copy` steps) of a range, perhaps
/// reversed, stepped or counted: `0..n`, `(0..n).rev()`.
fn range_items(e: &Expr) -> bool {
    match e {
        Expr::Range(_) => true,
        Expr::Paren(p) => range_items(&p.expr),
        Expr::MethodCall(m) => {
            [
                "rev",
                "step_by",
                "skip",
                "take",
                "enumerate",
                "fuse",
                "peekable",
            ]
            .contains(&m.method.to_string().as_str())
                && range_items(&m.receiver)
        }
        _ => false,
    }
}
