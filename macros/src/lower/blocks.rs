//! Building blocks: opening and switching blocks, naming their inputs, and deciding which
//! locals a block boundary carries (those a native frame would still hold there).

use super::*;

impl Lowerer<'_> {
    pub(super) fn tr(&self) -> &Ident {
        &self.names.tr
    }

    pub(super) fn new_block(
        &mut self,
        entry: Entry,
        input: Vec<LocalId>,
        hidden: Vec<LocalId>,
    ) -> usize {
        self.blocks.push(Block0 {
            entry,
            from_live: input.len(),
            input,
            hidden,
            code: TokenStream::new(),
            term: None,
            tail: None,
        });
        self.blocks.len() - 1
    }

    pub(super) fn switch(&mut self, k: usize) {
        self.cur = k;
        let b = &self.blocks[k];
        self.bound = block_names(self.a, &b.input, &b.hidden);
    }

    pub(super) fn emit(&mut self, t: TokenStream) {
        self.blocks[self.cur].code.extend(t);
    }

    pub(super) fn terminated(&self) -> bool {
        self.blocks[self.cur].term.is_some()
    }

    pub(super) fn terminate(&mut self, t: TokenStream) {
        self.blocks[self.cur].term = Some(t);
    }

    /// Ends the block returning the body's tail expression (`t` is `Return(value)`).
    pub(super) fn terminate_tail(&mut self, t: TokenStream) {
        self.blocks[self.cur].term = Some(t);
        self.blocks[self.cur].tail = Some(self.tail_scope);
    }

    /// Lowers `f` with [`Self::tail_scope`] set for a branch or arm ending the body whose
    /// statements are `stmts`: the locals in scope before them (bindings of its pattern too)
    /// are outside it.
    pub(super) fn in_tail_scope<T>(
        &mut self,
        stmts: &[Stmt],
        f: impl FnOnce(&mut Self) -> Result<T, Fallback>,
    ) -> Result<T, Fallback> {
        let scope = match stmts.first() {
            Some(s) => self
                .a
                .points
                .get(&key(s))
                .map_or(usize::MAX, |p| p.in_scope.iter().max().map_or(0, |m| m + 1)),
            None => usize::MAX,
        };
        let outer = std::mem::replace(&mut self.tail_scope, scope);
        let r = f(self);
        self.tail_scope = outer;
        r
    }

    pub(super) fn name_of(&self, id: LocalId, span: Span) -> Result<Ident, Fallback> {
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

    pub(super) fn pack_ids(&self, ids: &[LocalId], span: Span) -> Result<TokenStream, Fallback> {
        let names = ids
            .iter()
            .map(|&id| self.name_of(id, span))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(machine::pack(&names))
    }

    pub(super) fn goto(&self, k: usize, span: Span) -> Result<TokenStream, Fallback> {
        let tr = self.tr();
        let v = format_ident!("Goto{}", k);
        let packed = self.pack_ids(&self.blocks[k].input, span)?;
        self.edges.borrow_mut().push((self.cur, k));
        Ok(quote!(#tr::#v(#packed)))
    }

    /// The locals a native frame still holds at `p`: in scope and not moved out.
    pub(super) fn carried(&self, p: &Point, span: Span) -> Result<Vec<LocalId>, Fallback> {
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
            let carry = if used_after && !self.gone(id, p) {
                true
            } else if l.known_copy || l.ref_param {
                // No drop glue (a reference parameter): nothing to drop at the end of its
                // scope, so nothing to carry there. Carried, it would be handed back by the
                // adapter of an await whose output borrows through it, which cannot compile.
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
            if carry && l.unsure {
                return fallback(
                    span,
                    format!(
                        "`{}` is declared under `#[cfg]` or passed to a macro that may declare \
                         another local of its name, and is alive across this await",
                        l.name
                    ),
                );
            }
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

    /// Whether `id` is surely moved out at `p` although a later mention reads it: a move
    /// before `p` in a branch around it (so on every path to `p`), no assignment since, and
    /// no read after `p` inside that move's branch, which only a `Copy` local allows. The
    /// later reads are on other paths (`if c { drop(e); return f().await; } g(e).await`).
    fn gone(&self, id: LocalId, p: &Point) -> bool {
        let a = self.a;
        let l = a.local(id);
        let mentions = || a.mentions.iter().filter(move |m| m.local == id);
        !l.known_copy
            && mentions().any(|m| {
                m.kind == Use::Move
                    && l.decl < m.pos
                    && m.pos <= p.pos
                    && p.arms.starts_with(&m.arms)
                    && !mentions().any(|x| x.kind == Use::Assign && m.pos < x.pos && x.pos <= p.pos)
                    && !mentions().any(|n| n.pos > p.pos && n.arms.starts_with(&m.arms))
            })
    }

    pub(super) fn point(&self, node: usize, span: Span) -> Result<Point, Fallback> {
        self.a.points.get(&node).cloned().ok_or_else(|| Fallback {
            span,
            reason: "internal: no liveness point".to_owned(),
        })
    }

    pub(super) fn after(&self, node: usize, span: Span) -> Result<Point, Fallback> {
        self.a.after.get(&node).cloned().ok_or_else(|| Fallback {
            span,
            reason: "internal: no liveness point".to_owned(),
        })
    }

    /// Ends the current block with a goto to a fresh one holding what is alive at `p`.
    pub(super) fn split(
        &mut self,
        p: &Point,
        hidden: Vec<LocalId>,
        span: Span,
    ) -> Result<(), Fallback> {
        let input = self.carried(p, span)?;
        let k = self.new_block(Entry::Goto, input, hidden);
        let g = self.goto(k, span)?;
        self.terminate(g);
        self.switch(k);
        Ok(())
    }
}
