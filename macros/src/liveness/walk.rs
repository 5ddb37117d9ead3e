//! The walk itself: one pass over the body in evaluation order, recording bindings, mentions,
//! branches, loops and the points the lowering asks about.

use super::*;

impl<'ast> Visit<'ast> for Analysis {
    fn visit_stmt(&mut self, s: &'ast Stmt) {
        let cfg = starts_with_cfg(quote::ToTokens::to_token_stream(s));
        self.in_cfg += usize::from(cfg);
        self.visit_stmt_inner(s);
        self.in_cfg -= usize::from(cfg);
    }

    fn visit_block(&mut self, b: &'ast syn::Block) {
        self.push_scope();
        for s in &b.stmts {
            self.visit_stmt(s);
        }
        self.pop_scope();
    }

    fn visit_expr(&mut self, e: &'ast Expr) {
        self.tick();
        // A scrutinee's own place is used as its patterns say; what it contains, as usual.
        let scrutinee = self.scrutinee_use.take();
        match e {
            Expr::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
                // A closure may capture by reference or by value (and consume what it
                // captured): without types, only "unknown".
                let kind = if !self.in_closure.is_empty() {
                    Use::Unknown
                } else {
                    scrutinee.unwrap_or(Use::Move)
                };
                self.mention_path(e, &p.path.segments[0].ident, kind);
            }
            Expr::Field(_) if scrutinee.is_some() => {
                let kind = scrutinee.unwrap_or(Use::Field);
                self.place_mention(e, if kind == Use::Move { Use::Field } else { kind });
            }
            Expr::Paren(p) if scrutinee.is_some() => {
                self.scrutinee_use = scrutinee;
                self.visit_expr(&p.expr);
            }
            Expr::Reference(r) => self.place_mention(&r.expr, Use::Ref),
            // Calling a local borrows it (`Fn`, `FnMut`, and the future of an `AsyncFn`
            // may go on borrowing it) or consumes it (`FnOnce`).
            Expr::Call(c)
                if matches!(&*c.func, Expr::Path(_) | Expr::Field(_) | Expr::Paren(_)) =>
            {
                self.place_mention(&c.func, Use::Unknown);
                for a in &c.args {
                    self.visit_expr(a);
                }
            }
            Expr::Field(_) => self.place_mention(e, Use::Field),
            Expr::Index(_) => self.place_mention(e, Use::Ref),
            Expr::MethodCall(m) => {
                let name = m.method.to_string();
                // A local not known to be an `Option`, a `Result` or an iterator may have a
                // method of one's name that borrows (a parser's `expect`): a move of a place
                // through a field stays a possible move (`Use::Field`), a local's is unknown.
                let ambiguous = CONSUMING_IF_STD.contains(&name.as_str())
                    && matches!(&*m.receiver, Expr::Path(_))
                    && !self.receiver_is_std_value(&m.receiver);
                let kind = if consuming(&name) && !ambiguous {
                    Use::Move
                } else if BORROWING.contains(&name.as_str()) || self.receiver_is_ref(&m.receiver) {
                    Use::Ref
                } else {
                    Use::Unknown
                };
                match &*m.receiver {
                    Expr::Path(_) | Expr::Field(_) | Expr::Index(_) => {
                        self.place_mention(&m.receiver, kind);
                    }
                    r => self.visit_expr(r),
                }
                for a in &m.args {
                    self.visit_expr(a);
                }
            }
            Expr::Assign(a) => {
                let start = self.pos;
                self.visit_expr(&a.right);
                let end = self.pos;
                if let Expr::Path(p) = &*a.left
                    && let Some(ident) = p.path.get_ident()
                    && let Some(id) = self.resolve(ident)
                {
                    self.mention_at(id, Use::Assign, Some(key(&*a.left)));
                    if !self.locals[id].plain && self.may_borrow(&a.right) {
                        self.locals[id].borrowing = true;
                        self.borrowed_into.push((start, end));
                    }
                } else {
                    self.place_mention(&a.left, Use::Ref);
                }
            }
            Expr::Binary(b) if is_compound_assign(&b.op) => {
                self.place_mention(&b.left, Use::Ref);
                self.visit_expr(&b.right);
            }
            Expr::Macro(m) => {
                let start = self.pos;
                self.macro_mentions(&m.mac);
                let point = self.snapshot();
                self.ranges.insert(key(e), (start, point.pos));
                self.after.insert(key(e), point);
            }
            Expr::Binary(b) if matches!(b.op, syn::BinOp::And(_) | syn::BinOp::Or(_)) => {
                self.visit_expr(&b.left);
                self.depth += 1;
                let c = self.construct();
                self.enter_arm(c, 0);
                self.visit_expr(&b.right);
                self.leave_arm();
                self.depth -= 1;
            }
            Expr::Closure(c) => {
                let at = (self.depth, self.arms.len());
                self.depth += 1;
                let k = self.construct();
                self.enter_arm(k, 0);
                self.in_closure
                    .push((c.capture.is_some(), self.locals.len(), at.0, at.1));
                self.push_scope();
                for p in &c.inputs {
                    self.bind_pattern(p, false, false, false);
                }
                self.visit_expr(&c.body);
                self.pop_scope();
                self.in_closure.pop();
                self.leave_arm();
                self.depth -= 1;
            }
            Expr::Async(a) => {
                self.in_closure.push((
                    a.capture.is_some(),
                    self.locals.len(),
                    self.depth,
                    self.arms.len(),
                ));
                let c = self.construct();
                self.enter_arm(c, 0);
                self.visit_block(&a.block);
                self.leave_arm();
                self.in_closure.pop();
            }
            Expr::Await(a) => {
                self.collecting.push(Vec::new());
                self.visit_expr(&a.base);
                let m = self.collecting.pop().unwrap_or_default();
                if let Some(outer) = self.collecting.last_mut() {
                    outer.extend(m.iter().copied());
                }
                self.await_mentions.insert(key(e), m);
                let point = self.snapshot();
                self.points.insert(key(e), point);
                self.tick();
            }
            Expr::If(i) => {
                // `if let` bindings are scoped to the then-branch.
                self.push_scope();
                self.visit_expr(&i.cond);
                let point = self.snapshot();
                self.points.insert(key(&i.then_branch), point);
                self.depth += 1;
                let c = self.construct();
                self.enter_arm(c, 0);
                self.visit_block(&i.then_branch);
                self.leave_arm();
                self.pop_scope();
                if let Some((_, els)) = &i.else_branch {
                    self.enter_arm(c, 1);
                    self.visit_expr(els);
                    self.leave_arm();
                }
                self.depth -= 1;
                let point = self.snapshot();
                self.after.insert(key(e), point);
            }
            Expr::Let(l) => {
                self.scrutinee_use = Some(matching_use(&Matching::Refutable(&l.pat)));
                self.visit_expr(&l.expr);
                let borrowing = self.may_borrow(&l.expr);
                let first = self.locals.len();
                let (copy, shared) = self.copy_place(&l.expr);
                self.bind_pattern(&l.pat, copy, copy && shared, borrowing);
                self.stmt_locals
                    .insert(key(e), (first..self.locals.len()).collect());
            }
            Expr::ForLoop(f) => {
                // `for PAT in ITER { body }` is `let mut iter = into_iter(ITER); loop { match
                // next(&mut iter) { Some(PAT) => body, None => break } }`: the iterator is a
                // hidden local, evaluated once before the loop and dropped after it.
                self.visit_expr(&f.expr);
                let borrowing = self.may_borrow(&f.expr);
                self.push_scope();
                let iter_name =
                    Ident::new(&format!("__iter{}", self.locals.len()), Span::mixed_site());
                let iter_pat: Pat = syn::parse_quote!(mut #iter_name);
                let iter_id = self.locals.len();
                self.bind_pattern(&iter_pat, false, false, borrowing);
                self.stmt_locals.insert(key(e), vec![iter_id]);
                let start = self.tick();
                let point = self.snapshot();
                self.points.insert(key(e), point);
                self.push_scope();
                self.depth += 1;
                let c = self.construct();
                self.enter_arm(c, 0);
                self.mention(iter_id, Use::Ref);
                let first = self.locals.len();
                // Items that are references (or `char`s, bytes, indices): whatever the pattern
                // binds is `Copy`; when the iterator borrows no local, neither do they.
                let copy_items = copy_items(&f.expr) || self.is_ref_items_param(&f.expr);
                self.bind_pattern(&f.pat, copy_items, copy_items && !borrowing, borrowing);
                for l in &mut self.locals[first..] {
                    l.guessed_copy = copy_items;
                }
                if copy_items {
                    self.copy_item_loops.push(key(e));
                }
                self.stmt_locals
                    .insert(key(&*f.pat), (first..self.locals.len()).collect());
                let point = self.snapshot();
                self.points.insert(key(&f.body), point);
                self.visit_block(&f.body);
                self.mention(iter_id, Use::Ref);
                self.leave_arm();
                self.depth -= 1;
                self.pop_scope();
                let end = self.tick();
                self.loops.push((start, end));
                self.loop_arms.push(self.arms_with((c, 0)));
                self.pop_scope();
                let point = self.snapshot();
                self.after.insert(key(e), point);
            }
            Expr::Loop(_) | Expr::While(_) => {
                let start = self.tick();
                let point = self.snapshot();
                self.points.insert(key(e), point);
                self.push_scope();
                self.depth += 1;
                let c = self.construct();
                self.enter_arm(c, 0);
                match e {
                    Expr::Loop(l) => self.visit_block(&l.body),
                    Expr::While(w) => {
                        self.visit_expr(&w.cond);
                        let point = self.snapshot();
                        self.points.insert(key(&w.body), point);
                        self.visit_block(&w.body);
                    }
                    _ => {}
                }
                self.leave_arm();
                self.depth -= 1;
                self.pop_scope();
                let end = self.tick();
                self.loops.push((start, end));
                self.loop_arms.push(self.arms_with((c, 0)));
                let point = self.snapshot();
                self.after.insert(key(e), point);
            }
            Expr::Match(m) => {
                // What a pattern binds from a `Copy` place (a reference too) is `Copy`.
                let (copy, shared) = self.copy_place(&m.expr);
                let pats = m.arms.iter().map(|a| &a.pat).collect();
                let guards = m.arms.iter().any(|a| a.guard.is_some());
                self.scrutinee_use = Some(matching_use(&Matching::Arms(pats, guards)));
                self.visit_expr(&m.expr);
                let borrowing = self.may_borrow(&m.expr);
                self.depth += 1;
                let c = self.construct();
                for (i, arm) in m.arms.iter().enumerate() {
                    let cfg = arm
                        .attrs
                        .iter()
                        .any(|a| starts_with_cfg(quote::ToTokens::to_token_stream(a)));
                    self.in_cfg += usize::from(cfg);
                    self.enter_arm(c, i);
                    self.push_scope();
                    let first = self.locals.len();
                    self.bind_pattern(&arm.pat, copy, copy && shared, borrowing);
                    self.stmt_locals
                        .insert(key(arm), (first..self.locals.len()).collect());
                    if let Some((_, g)) = &arm.guard {
                        self.visit_expr(g);
                    }
                    let point = self.snapshot();
                    self.points.insert(key(arm), point);
                    // An arm body that is not a block may run as one adapter: it needs its range.
                    self.visit_whole(&arm.body);
                    self.pop_scope();
                    self.leave_arm();
                    self.in_cfg -= usize::from(cfg);
                }
                self.depth -= 1;
                let point = self.snapshot();
                self.after.insert(key(e), point);
            }
            Expr::Block(b) => {
                // A `break` may leave a labelled block early: what follows in it may not run.
                let labelled = b.label.is_some();
                if labelled {
                    let c = self.construct();
                    self.enter_arm(c, 0);
                }
                self.visit_block(&b.block);
                if labelled {
                    self.leave_arm();
                }
                let point = self.snapshot();
                self.after.insert(key(e), point);
            }
            Expr::Break(_) | Expr::Continue(_) => {
                self.jumps.push(self.pos);
                visit::visit_expr(self, e);
                let point = self.snapshot();
                self.points.insert(key(e), point);
            }
            _ => visit::visit_expr(self, e),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

impl Analysis {
    /// [`Visit::visit_stmt`] once the statement's `#[cfg]` is accounted for.
    fn visit_stmt_inner(&mut self, s: &Stmt) {
        let point = self.snapshot();
        self.points.insert(key(s), point);
        self.tick();
        match s {
            Stmt::Local(l) => {
                let (init, borrowing) = match &l.init {
                    Some(init) => {
                        self.scrutinee_use = Some(matching_use(&match init.diverge {
                            Some(_) => Matching::Refutable(&l.pat),
                            None => Matching::Irrefutable(&l.pat),
                        }));
                        self.visit_whole(&init.expr);
                        if let Some((_, els)) = &init.diverge {
                            self.visit_expr(els);
                        }
                        (true, self.may_borrow(&init.expr))
                    }
                    None => (false, false),
                };
                let (pat, ty) = match &l.pat {
                    Pat::Type(t) => (&*t.pat, Some(&*t.ty)),
                    p => (p, None),
                };
                // `e as u64` is a primitive whatever `e` is.
                let cast = l.init.as_ref().is_some_and(|i| primitive_cast(&i.expr));
                let known_copy = ty.is_some_and(is_primitive)
                    || cast
                    || l.init
                        .as_ref()
                        .is_some_and(|i| matches!(*i.expr, Expr::Lit(_)));
                let plain = ty.is_some_and(is_plain_value)
                    || cast
                    || l.init.as_ref().is_some_and(|i| {
                        matches!(
                            &*i.expr,
                            Expr::Lit(syn::ExprLit {
                                lit: syn::Lit::Int(_)
                                    | syn::Lit::Float(_)
                                    | syn::Lit::Bool(_)
                                    | syn::Lit::Char(_)
                                    | syn::Lit::Byte(_),
                                ..
                            })
                        )
                    });
                if borrowing
                    && !plain
                    && let Some(init) = &l.init
                    && let Some(&range) = self.ranges.get(&key(&*init.expr))
                {
                    self.borrowed_into.push(range);
                }
                let std_value = matches!(pat, Pat::Ident(_))
                    && (ty.is_some_and(is_std_value_type)
                        || l.init.as_ref().is_some_and(|i| is_std_value_expr(&i.expr)));
                let first = self.locals.len();
                self.bind_pattern(pat, known_copy, false, borrowing && !plain);
                for local in &mut self.locals[first..] {
                    local.plain = plain;
                    local.std_value = std_value;
                }
                self.stmt_locals
                    .insert(key(s), (first..self.locals.len()).collect());
                if !init {
                    for local in &mut self.locals[first..] {
                        local.unusual = true;
                    }
                }
            }
            Stmt::Item(_) => {}
            Stmt::Expr(e, _) => self.visit_whole(e),
            Stmt::Macro(m) => {
                let start = self.pos;
                self.macro_mentions(&m.mac);
                self.may_redeclare(&m.mac);
                let point = self.snapshot();
                self.ranges.insert(key(s), (start, point.pos));
                self.after.insert(key(s), point);
            }
        }
    }
}
