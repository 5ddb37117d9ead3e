//! Statement lists, and the native regions made when a statement cannot be lowered: a bounded
//! region the lowering continues after, or one to the end of the body. `RegionCf` rewrites the
//! control flow leaving a region.

use super::*;

impl Lowerer<'_> {
    pub(super) fn lower_stmts(&mut self, stmts: &[Stmt], ctx: Ctx) -> Result<(), Fallback> {
        self.lower_list(stmts, 0, ctx)
    }

    /// Lowers `stmts[from..]`. When a statement cannot be lowered, the smallest run of
    /// statements around it that can is made one native region (see [`Self::bounded_region`])
    /// and the lowering goes on explicitly after it. Failing that, the rest of a body-ending
    /// list becomes one native region: an adapter owning every live local, whose output is the
    /// fn's. Either region starts at the statement, or earlier if the cause lies earlier (a
    /// local moved on some paths, a borrow taken before the await).
    pub(super) fn lower_list(
        &mut self,
        stmts: &[Stmt],
        from: usize,
        ctx: Ctx,
    ) -> Result<(), Fallback> {
        let regions_allowed = ctx == Ctx::FnTail && !self.strict;
        let bounded_allowed = !self.strict;
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
        let diverges = match stmts.last() {
            Some(Stmt::Expr(e, _)) => diverges_expr(e),
            // `panic!(..);` ending the body is a statement macro.
            Some(Stmt::Macro(m)) => diverges_macro(&m.mac),
            _ => false,
        };
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
    pub(super) fn bounded_region(
        &mut self,
        stmts: &[Stmt],
        start: usize,
        end: usize,
        why: &Fallback,
    ) -> Result<(), Fallback> {
        let span = why.span;
        let region = &stmts[start..=end];
        refuse_yields(region, span)?;
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

    pub(super) fn snapshot(&self) -> Snapshot {
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
    pub(super) fn saved(&self) -> Saved {
        Saved {
            blocks: self.blocks.clone(),
            edges: self.edges.borrow().clone(),
            items: self.items.clone(),
            regions: self.regions.clone(),
        }
    }

    pub(super) fn restore(&mut self, s: &Snapshot, full: &Saved) {
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
    pub(super) fn native_region(
        &mut self,
        rest: &[Stmt],
        first: &Stmt,
        why: Fallback,
    ) -> Result<(), Fallback> {
        refuse_yields(rest, why.span)?;
        let p = self.point(key(first), why.span)?;
        let owned = self.carried(&p, why.span)?;
        // The parameters (or the locals from outside the branch ending the body) outside, the
        // other locals and the statements in the user's braces: the tail expression's
        // temporaries drop before or after those locals as the user's edition says, and
        // before the ones outside (see `user_braces`).
        let mut params = TokenStream::new();
        let mut locals = TokenStream::new();
        for &id in &owned {
            let n = self.name_of(id, why.span)?;
            let m = self.a.local(id).mutable.then(|| quote!(mut));
            let bind = quote!(#[allow(unused_mut, unused_variables, unused_assignments, clippy::redundant_locals)] let #m #n = #n;);
            if id < self.tail_scope {
                params.extend(bind);
            } else {
                locals.extend(bind);
            }
        }
        let body = crate::expand::user_braces(self.body_span, locals, rest);
        // Items stay where they are, inside the region.
        let f = Ident::new("__f", Span::mixed_site());
        let r = Ident::new("__r", Span::mixed_site());
        self.emit(quote!(let #f = async move { #params #body };));
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
}

/// The control flow of a bounded native region's statements: `return v` and `e?` leave the
/// adapter as `ControlFlow::Break(output)`; a `break`/`continue` that leaves the region, or
/// control flow inside a macro, is refused. Closures, `async` blocks and items keep their own.
#[derive(Default)]
pub(super) struct RegionCf {
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
        if macro_leaves(m) {
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
                *e = wrapped_return(r, &quote!(::core::ops::ControlFlow::Break));
                self.exits = true;
            }
            Expr::Try(t) => {
                self.visit_expr_mut(&mut t.expr);
                *e = wrapped_try(t, &quote!(::core::ops::ControlFlow::Break));
                self.exits = true;
            }
            Expr::Break(b) => {
                if !self.inside(b.label.as_ref()) {
                    self.refuse(b.break_token.span, "a `break` out of a native region");
                    return;
                }
                visit_mut::visit_expr_break_mut(self, b);
                paren_path_break_value(b);
            }
            Expr::Continue(c) => {
                if !self.inside(c.label.as_ref()) {
                    self.refuse(c.continue_token.span, "a `continue` out of a native region");
                }
            }
            Expr::Loop(_) | Expr::While(_) | Expr::ForLoop(_) => {
                let label = loop_label(e);
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

/// A region is an `async` adapter, which cannot yield from the generator around it.
fn refuse_yields(stmts: &[Stmt], span: Span) -> Result<(), Fallback> {
    struct Yields(bool);
    impl<'ast> Visit<'ast> for Yields {
        fn visit_expr(&mut self, e: &'ast Expr) {
            if !matches!(e, Expr::Closure(_) | Expr::Async(_)) {
                syn::visit::visit_expr(self, e);
            }
        }
        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            self.0 |= yields::is_yield(m);
        }
        fn visit_item(&mut self, _: &'ast syn::Item) {}
    }
    let mut y = Yields(false);
    for s in stmts {
        y.visit_stmt(s);
    }
    if y.0 {
        return fallback(span, "a `yield_!` inside a native region");
    }
    Ok(())
}
