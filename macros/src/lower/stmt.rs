//! One statement: verbatim when it has no await, else split at its await (`suspend_await`), run
//! as one adapter when it has several (`suspend_expr`), or suspended at a `yield_!`.

use super::*;

impl Lowerer<'_> {
    pub(super) fn lower_stmt(&mut self, s: &Stmt, last: bool, ctx: Ctx) -> Result<(), Fallback> {
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
                // The older local is bound under a hidden name from the `let` on, so the `let`
                // itself cannot read it by its name.
                if let Some(&id) = shadowed
                    .iter()
                    .find(|&&id| mentions_ident(s, &self.a.local(id).name))
                {
                    return fallback(
                        s.span(),
                        format!(
                            "`{}` is read by the `let` that shadows it while it is still alive",
                            self.a.local(id).name
                        ),
                    );
                }
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
        if let Some(span) = cfg_attribute(s) {
            return fallback(
                span,
                "a `#[cfg]` inside a statement with an await (only the compiler evaluates it)",
            );
        }
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
                // An output that may borrow a lent local is finished with inside the adapter
                // (`cfg.host().await.len()`), unless the `let` keeps it.
                let spine = spine(&init.expr).filter(|(aw, fut)| {
                    self.output_may_borrow(aw, fut).is_none()
                        || (is_identity(&init.expr)
                            && !declared.iter().all(|&id| self.a.local(id).plain))
                });
                let Some((aw, fut)) = spine else {
                    // `let x = a.await + b.await;`: the whole initialiser runs in one adapter.
                    if matches!(&*init.expr, Expr::Reference(_)) {
                        return fallback(
                            await_span,
                            "a reference to an awaited temporary (its lifetime is extended)",
                        );
                    }
                    let e = &init.expr;
                    // The type of `let x: T = …` is where the value coerces (`Box<dyn Fn>`):
                    // the adapter computing the value keeps it.
                    let tokens = match &l.pat {
                        syn::Pat::Type(t) => {
                            let (v, ty) = (Ident::new("__v", Span::mixed_site()), &t.ty);
                            quote!({ let #v: #ty = #e; #v })
                        }
                        _ => quote!(#e),
                    };
                    let value = self.suspend_expr(key(&**e), e, tokens, await_span)?;
                    return self.bind_let(s, l, value, declared, await_span);
                };
                // `let f = first(&v).await`: `f` may borrow `v`, which the adapter hands back
                // too; it could not hand back both. The statements from here to the end of
                // `f`'s scope become a native region (the caller searches the smallest).
                // (A guard, `m.lock().await`, gets its own reason from `suspend_await`.)
                if guard_receiver(fut).is_none()
                    && let Some(lender) = self.output_may_borrow(aw, fut)
                    && let Some(&id) = declared.iter().find(|&&id| {
                        let l = self.a.local(id);
                        l.borrowing && !l.plain
                    })
                {
                    return fallback(
                        await_span,
                        format!(
                            "`{}` may hold a borrow of `{}`, lent to this await",
                            self.a.local(id).name,
                            self.a.local(lender).name
                        ),
                    );
                }
                let r = Ident::new("__r", Span::mixed_site());
                self.suspend_await(aw, fut, &init.expr, await_span)?;
                // Rewritten in the resume block: its jumps name the locals as bound there.
                let value = self.rewrite_expr(
                    &init.expr,
                    replace_spine(&init.expr, &syn::parse_quote!(#r)),
                )?;
                let wrapped = if is_identity(&init.expr) {
                    quote!(#value)
                } else {
                    quote!({ let #r = #r; #value })
                };
                self.bind_let(s, l, wrapped, declared, await_span)
            }
            Stmt::Expr(e, semi) => {
                self.lower_expr_stmt(e, semi.is_none() && tail, last, await_span)
            }
            Stmt::Macro(m) if self.generator && yields::is_yield(&m.mac) => {
                self.suspend_yield(&m.mac, key(s))
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

    pub(super) fn lower_expr_stmt(
        &mut self,
        e: &Expr,
        tail: bool,
        last: bool,
        await_span: Span,
    ) -> Result<(), Fallback> {
        match e {
            // Only the condition or scrutinee awaits: one resume block runs it all.
            Expr::If(_) | Expr::Match(_) if spine(e).is_some() => {}
            Expr::If(i) => return self.lower_if(e, i, tail),
            Expr::Match(m) => return self.lower_match(e, m, tail),
            Expr::Return(r) if r.expr.is_some() => {
                return self.lower_return(e, r, await_span);
            }
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
                return self.suspend_yield(&m.mac, key(e));
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
            && (is_identity(rhs) || self.output_may_borrow(aw, fut).is_none())
        {
            let r = Ident::new("__r", Span::mixed_site());
            self.suspend_await(aw, fut, rhs, await_span)?;
            let value = self.rewrite_expr(rhs, replace_spine(rhs, &syn::parse_quote!(#r)))?;
            self.emit(quote!(#place #op { let #r = #r; #value };));
            return Ok(());
        }
        // An output that may borrow a lent local is dropped inside the adapter.
        let borrowing_output =
            spine(e).is_some_and(|(aw, fut)| self.output_may_borrow(aw, fut).is_some());
        if borrowing_output && !tail {
            let value = self.suspend_expr(key(e), e, quote!({ #e; }), await_span)?;
            self.emit(quote!(::structured_async::__private::discard(#value);));
            return Ok(());
        }
        // A value made of it (`cfg.host().await.len()`) is computed inside the adapter too.
        let spine = spine(e).filter(|_| !borrowing_output || is_identity(e));
        let Some((aw, fut)) = spine else {
            let what = match e {
                Expr::ForLoop(_) => "a `for` loop with awaits in its body",
                Expr::Block(_) => "a labelled block with awaits",
                Expr::Loop(_) | Expr::While(_) => "a loop producing a value",
                // The body's tail (`Some(f().await?.len())`) with locals of its scope alive:
                // as a native region its temporaries drop where the user's edition drops them
                // (after those locals before 2024), which an adapter computing it would not
                // do. (With only parameters, outer locals or `Copy` ones, no order differs.)
                _ if tail
                    && !self.strict
                    && self
                        .bound
                        .iter()
                        .any(|&(id, _)| id >= self.tail_scope && !self.a.local(id).known_copy) =>
                {
                    return fallback(await_span, "a tail expression awaiting inside an operand");
                }
                _ => {
                    // `f(g().await).await;`, `x = a.await * b.await;`: one adapter.
                    let value = self.suspend_expr(key(e), e, quote!(#e), await_span)?;
                    if tail {
                        let tr = self.tr();
                        self.terminate_tail(quote!(#tr::Return(#value)));
                    } else {
                        self.emit(quote!(::structured_async::__private::discard(#value);));
                    }
                    return Ok(());
                }
            };
            return fallback(await_span, what);
        };
        let r = Ident::new("__r", Span::mixed_site());
        self.suspend_await(aw, fut, e, await_span)?;
        if tail {
            // The output is a temporary of the tail expression natively: it drops with the
            // expression's other temporaries (before the locals in edition 2024, after them
            // before), not as a local of the block; `identity` makes it one again.
            let tr = self.tr();
            let value = if is_identity(e) {
                quote!(#r)
            } else {
                let temp: Expr = syn::parse_quote!(::core::convert::identity(#r));
                let value = self.rewrite_expr(e, replace_spine(e, &temp))?;
                quote!(#value)
            };
            self.terminate_tail(quote!(#tr::Return(#value)));
            return Ok(());
        }
        let value = self.rewrite_expr(e, replace_spine(e, &syn::parse_quote!(#r)))?;
        if is_identity(e) {
            self.emit(quote!(::structured_async::__private::discard(#r);));
        } else {
            self.emit(quote!({ let #r = #r; #value; }));
        }
        Ok(())
    }

    /// Ends the block with `AwaitK(future, live)` and continues in the resume block `K`.
    /// `whole` is the expression whose spine `aw` is: what the resume block computes from the
    /// output.
    pub(super) fn suspend_await(
        &mut self,
        aw: &Expr,
        fut: &Expr,
        whole: &Expr,
        span: Span,
    ) -> Result<(), Fallback> {
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
        // A guard (`m.lock().await`) keeps borrowing the local it came from: the adapter could
        // not hand both back. (Any output may, `cfg.host().await`: callers run a continuation
        // that ends such a borrow inside the adapter; an output bound as it is comes back.)
        // (Through a `&T` parameter the guard borrows what it points to, not the parameter.)
        if let Some(root) = guard_receiver(fut)
            && let Some(&id) = lent.iter().find(|&&id| {
                let l = self.a.local(id);
                l.name == *root && !(l.ref_param && l.shared_ref)
            })
        {
            return fallback(
                span,
                format!(
                    "the awaited guard keeps borrowing `{}`",
                    self.a.local(id).name
                ),
            );
        }
        if !is_identity(whole)
            && let Some(id) = self.output_may_borrow(aw, fut)
        {
            return fallback(
                span,
                format!(
                    "the awaited value may borrow `{}`, lent to the await, and the rest of the \
                     expression uses it",
                    self.a.local(id).name
                ),
            );
        }
        let f = Ident::new("__f", Span::mixed_site());
        let r = Ident::new("__r", Span::mixed_site());
        let fut = self.rewrite_expr(fut, fut.clone())?;
        let tr = self.tr().clone();
        if lent.is_empty() && simple_future(&fut) {
            let packed = self.pack_ids(&carried, span)?;
            let hidden = self.still_hidden(&carried);
            let k = self.new_block(Entry::Await(quote!(#r)), carried, hidden);
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
        self.emit(quote!(let #f = async move { #binds let #r = #fut.await; (#r, #owned_packed) };));
        self.await_adapter(rest, &owned, &r, &rest_packed);
        Ok(())
    }

    /// A local lent to the await at `aw` whose borrow the output may keep: the root of the
    /// awaited method's receiver (`cfg.host()`), or a `&x` argument (`first(&v)`), owned by
    /// this frame. `None` for outputs known to own their data (`rx.recv()`).
    pub(super) fn output_may_borrow(&self, aw: &Expr, fut: &Expr) -> Option<LocalId> {
        let lent: Vec<LocalId> = self
            .a
            .await_mentions
            .get(&key(aw))?
            .iter()
            .filter(|(id, k)| {
                let l = self.a.local(*id);
                *k != Use::Move && !l.ref_param && !l.shared_ref
            })
            .map(|(id, _)| *id)
            .collect();
        let mut roots = Vec::new();
        let args = match fut {
            Expr::MethodCall(m) => {
                if crate::liveness::owned_await(m) {
                    return None;
                }
                let mut r = &*m.receiver;
                while let Expr::Field(_) | Expr::Paren(_) | Expr::MethodCall(_) | Expr::Index(_) = r
                {
                    r = match r {
                        Expr::Field(f) => &f.base,
                        Expr::Paren(p) => &p.expr,
                        Expr::MethodCall(m) => &m.receiver,
                        Expr::Index(i) => &i.expr,
                        _ => break,
                    };
                }
                roots.push(r);
                &m.args
            }
            Expr::Call(c) => &c.args,
            _ => return None,
        };
        roots.extend(args.iter().filter_map(|a| match a {
            Expr::Reference(r) => Some(&*r.expr),
            _ => None,
        }));
        roots.iter().find_map(|r| {
            let Expr::Path(p) = r else { return None };
            let name = p.path.get_ident()?;
            lent.iter()
                .copied()
                .find(|&id| self.a.local(id).name == *name)
        })
    }

    /// `return value` with awaits in the value: the value is computed like a `let`'s (after
    /// its awaits, in a resume block), then the block returns it.
    fn lower_return(
        &mut self,
        e: &Expr,
        r: &syn::ExprReturn,
        await_span: Span,
    ) -> Result<(), Fallback> {
        let Some(v) = r.expr.as_deref() else {
            return fallback(await_span, "internal: a `return` without a value");
        };
        let value = if let Some((aw, fut)) = spine(v) {
            let res = Ident::new("__r", Span::mixed_site());
            self.suspend_await(aw, fut, v, await_span)?;
            let value = self.rewrite_expr(v, replace_spine(v, &syn::parse_quote!(#res)))?;
            if is_identity(v) {
                quote!(#res)
            } else {
                quote!({ let #res = #res; #value })
            }
        } else {
            self.suspend_expr(key(e), v, quote!(#v), await_span)?
        };
        let tr = self.tr();
        self.terminate(quote!(#tr::Return(#value)));
        Ok(())
    }

    /// `let PAT = value else { … };` in the resume block of the initialiser's await, its
    /// `else` rewritten there (so its jumps name the locals as that block binds them).
    fn bind_let(
        &mut self,
        s: &Stmt,
        l: &syn::Local,
        value: TokenStream,
        declared: Vec<LocalId>,
        span: Span,
    ) -> Result<(), Fallback> {
        let els = match l.init.as_ref().and_then(|i| i.diverge.as_ref()) {
            Some((_, e)) => {
                let from = self.point(key(s), span)?.pos;
                let e = self.rewrite_expr_from(e, (**e).clone(), from)?;
                quote!(else #e)
            }
            None => quote!(),
        };
        // `let (a, _) = x.await;`: natively what `_` (or `..`) leaves unbound is part of a
        // temporary, dropped at the end of the `let`. The resume block's `__r` is a local
        // there, which a pattern does not move out of: it kept that part until the block
        // ended, at the next await. Passed through a call, the value is a temporary again.
        let value = if leaves_parts(&l.pat) {
            quote!(::core::convert::identity(#value))
        } else {
            value
        };
        // `let P = { .. } else { .. }` is not Rust: a value ending in a block (the `match`
        // of a `?`, the block binding `__r`) needs parentheses before an `else`.
        let ends_in_brace = matches!(value.clone().into_iter().last(),
            Some(proc_macro2::TokenTree::Group(g)) if g.delimiter() == proc_macro2::Delimiter::Brace);
        let value = if ends_in_brace && !els.is_empty() {
            quote!((#value))
        } else {
            value
        };
        let pat = &l.pat;
        // The user's lint attributes (`#[allow(..)]`) go on with the binding.
        let attrs = &l.attrs;
        self.emit(quote!(#(#attrs)* #[allow(unused_mut)] let #pat = #value #els;));
        for id in declared {
            self.bound.push((id, self.a.local(id).name.clone()));
        }
        Ok(())
    }

    /// The locals of `input` the current block hides, which a resume block must hide too: the
    /// block began at a `let` that shadows them, and when that `let` awaits, the resume block
    /// is where it binds (so the older local, bound under its own name there, would be packed
    /// by that name after the `let` and the newer local carried in its place).
    fn still_hidden(&self, input: &[LocalId]) -> Vec<LocalId> {
        self.blocks[self.cur]
            .hidden
            .iter()
            .copied()
            .filter(|id| input.contains(id))
            .collect()
    }

    /// Ends the block with `AwaitK(__f, rest)`, the adapter `__f` handing `owned` back with
    /// its result `r`, and continues in the resume block `K`.
    fn await_adapter(
        &mut self,
        rest: Vec<LocalId>,
        owned: &[LocalId],
        r: &Ident,
        rest_packed: &TokenStream,
    ) {
        let f = Ident::new("__f", Span::mixed_site());
        let tr = self.tr().clone();
        let from_live = rest.len();
        let mut input = rest;
        input.extend(owned.iter().copied());
        // The resume block binds what the adapter hands back under the names its own input
        // has there.
        let hidden = self.still_hidden(&input);
        let names = block_names(self.a, &input, &hidden);
        let owned_names: Vec<Ident> = owned
            .iter()
            .filter_map(|id| names.iter().find(|(i, _)| i == id).map(|(_, n)| n.clone()))
            .collect();
        let binder = machine::pack(&owned_names);
        let k = self.new_block(Entry::Await(quote!((#r, #binder))), input, hidden);
        self.blocks[k].from_live = from_live;
        let v = format_ident!("Await{}", k);
        self.terminate(quote!(#tr::#v(#f, #rest_packed)));
        self.edges.borrow_mut().push((self.cur, k));
        self.adapters += 1;
        self.switch(k);
    }

    /// Runs a whole expression with awaits inside (`a.await + b.await`, `f(g().await).await`,
    /// `vec![x.await, y.await]`) as one adapter state: natively, so in Rust's evaluation order
    /// and with its temporaries, owning the locals it mentions and handing them back. A `?`
    /// inside leaves the adapter with `ControlFlow::Break(output)`. Returns the tokens of the
    /// expression's value in the resume block.
    pub(super) fn suspend_expr(
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
        self.await_adapter(rest, &owned, &r, &rest_packed);
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
    pub(super) fn no_borrowing_in_flight(
        &self,
        mentioned: &[LocalId],
        span: Span,
    ) -> Result<(), Fallback> {
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

    /// `yield_!(value)`: the value is computed (after its awaits, as in a `let`), then the
    /// block ends with `YieldK(value, live)`.
    pub(super) fn suspend_yield(&mut self, mac: &syn::Macro, node: usize) -> Result<(), Fallback> {
        let span = mac.path.span();
        let a = self.a;
        let Some(v) = a.yield_values.get(&key(mac)) else {
            let reason = match yields::value(mac) {
                Err(e) => e.to_string(),
                Ok(_) => "internal: a `yield_!` the analysis did not see".to_owned(),
            };
            return fallback(span, reason);
        };
        let v: &Expr = v;
        // Natively the value's temporaries live to the end of the statement, past the yield;
        // a block closure would drop them before it.
        if !no_temporaries(v) {
            return fallback(
                span,
                "a `yield_!` value with temporaries (they live until the generator resumes)",
            );
        }
        let value = if expr_await(v).is_none() {
            let v = self.rewrite_expr(v, v.clone())?;
            quote!(#v)
        } else if let Some((aw, fut)) = spine(v) {
            let r = Ident::new("__r", Span::mixed_site());
            self.suspend_await(aw, fut, v, span)?;
            let value = self.rewrite_expr(v, replace_spine(v, &syn::parse_quote!(#r)))?;
            if is_identity(v) {
                quote!(#r)
            } else {
                quote!({ let #r = #r; #value })
            }
        } else {
            self.suspend_expr(node, v, quote!(#v), span)?
        };
        let p = self.after(node, span)?;
        let carried = self.carried(&p, span)?;
        let packed = self.pack_ids(&carried, span)?;
        let val = Ident::new("__yielded", Span::mixed_site());
        let k = self.new_block(Entry::Yield, carried, Vec::new());
        let var = format_ident!("Yield{}", k);
        let tr = self.tr().clone();
        self.emit(quote!(let #val = #value;));
        self.terminate(quote!(#tr::#var(#val, #packed)));
        self.edges.borrow_mut().push((self.cur, k));
        self.switch(k);
        Ok(())
    }
}

/// What an expression run as one adapter may not contain: control flow leaving it (other than
/// `?`, which becomes a `ControlFlow::Break`), or a `yield_!`.
#[derive(Default)]
pub(super) struct AdapterCheck {
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

/// `e?` → `match branch(e) { Continue(v) => v, Break(r) => break 'label Break(from_residual(r)) }`.
pub(super) struct TryToBreak<'a> {
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
