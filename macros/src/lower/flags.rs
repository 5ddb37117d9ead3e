//! Drop flags. A native frame remembers whether a local moved on some paths only (or declared
//! `let x;` and assigned later) still holds a value, and drops it at its scope's end if so. The
//! explicit machine cannot read rustc's flags, so such a local becomes an `Option<T>` before
//! the lowering runs, and the body is rewritten to match:
//!
//! Desugar from:
//! ```text
//! let a = make();           if c { drop(a); }         a = other();        f(&a); a.m();
//! let b;                    b = v;
//! ```
//! into:
//! ```text
//! let mut a = Some(make()); if c { drop(flag_take(&mut a)); }             a = Some(other());
//! f(flag_ref(&a)); (*flag_mut(&mut a)).m();
//! let mut b = None;         b = Some(v);
//! ```
//! `None` drops nothing and `Some(v)` drops `v`, so the local still drops where the native
//! frame drops it, and the lowering carries it like any other local. Only locals whose every
//! mention can be rewritten so are flagged; the others keep a native region.

use std::collections::{HashMap, HashSet};

use syn::visit_mut::{self, VisitMut};

use super::*;
use crate::sig::Param;

/// The body's analysis once its drop flags are in place.
pub(super) struct Flagged {
    pub(super) analysis: Analysis,
    /// How many locals the receiver and parameters declare (the first ones).
    pub(super) n_params: usize,
    /// The flagged locals.
    pub(super) locals: Vec<LocalId>,
    /// For each parameter, whether it is flagged.
    pub(super) params: Vec<bool>,
}

/// Analyses `body`, rewrites the locals that need a drop flag into `Option`s, and analyses the
/// rewritten body again.
pub(super) fn apply(
    item: &ItemFn,
    parts: &FnParts,
    body: &mut syn::Block,
    this: Option<&Ident>,
    generator: bool,
) -> Result<Flagged, Fallback> {
    let mut params = vec![false; parts.params.len()];
    let (a, param_of) = analyze(item, parts, body, this, &params)?;
    let want = wanted(&a, body, &parts.params, &param_of, generator);
    let locals = if want.is_empty() {
        Vec::new()
    } else {
        rewrite(&a, body, &want)
    };
    if locals.is_empty() {
        let n_params = param_of.len();
        return Ok(Flagged {
            analysis: a,
            n_params,
            locals,
            params,
        });
    }
    for &id in &locals {
        if let Some(Some(i)) = param_of.get(id) {
            params[*i] = true;
        }
    }
    let (analysis, param_of) = analyze(item, parts, body, this, &params)?;
    Ok(Flagged {
        analysis,
        n_params: param_of.len(),
        locals,
        params,
    })
}

/// The locals of `a` that need a drop flag and can carry one. The first locals are the
/// receiver and the parameters: `param_of` names the parameter declaring each.
fn wanted(
    a: &Analysis,
    body: &syn::Block,
    params: &[Param],
    param_of: &[Option<usize>],
    generator: bool,
) -> Vec<LocalId> {
    let n_params = param_of.len();
    let simple_lets = SimpleLets::collect(a, body);
    let mut out = Vec::new();
    for (id, l) in a.locals.iter().enumerate() {
        let declared_simply = if id < n_params {
            param_of[id].is_some_and(|i| {
                let p = &params[i];
                p.simple && matches!(&p.pat, syn::Pat::Ident(i) if i.by_ref.is_none() && i.subpat.is_none())
            })
        } else {
            simple_lets.contains(&id)
        };
        let no_value = l.unusual && id >= n_params;
        if !declared_simply || l.known_copy || l.ref_param || (l.unusual && !no_value) {
            continue;
        }
        let mentions: Vec<&crate::liveness::Mention> =
            a.mentions.iter().filter(|m| m.local == id).collect();
        if mentions
            .iter()
            .any(|m| m.node.is_none() || !matches!(m.kind, Use::Move | Use::Ref | Use::Assign))
        {
            continue;
        }
        let moves: Vec<usize> = mentions
            .iter()
            .filter(|m| m.kind == Use::Move)
            .map(|m| m.pos)
            .collect();
        let conditional = mentions
            .iter()
            .any(|m| m.kind == Use::Move && m.depth > l.depth);
        let reassigned = moves
            .first()
            .is_some_and(|&m0| mentions.iter().any(|m| m.pos > m0 && m.kind == Use::Assign));
        if !(no_value || conditional || reassigned) {
            continue;
        }
        // A move may be a copy (the type is unknown): after the flag is taken, the local may
        // only be read where an assignment surely ran since, and a loop around the move must
        // assign it again before it comes back to the move: after it, at its level or an
        // enclosing one inside the loop, with no `break` or `continue` in between.
        let safe = mentions.iter().filter(|m| m.kind == Use::Move).all(|m| {
            let reads_ok = mentions
                .iter()
                .filter(|n| n.pos > m.pos && n.kind != Use::Assign && !exclusive(m, n))
                .all(|n| {
                    mentions.iter().any(|x| {
                        x.kind == Use::Assign
                            && m.pos < x.pos
                            && x.pos < n.pos
                            && n.arms.starts_with(&x.arms)
                    })
                });
            let loops_ok = a.loops.iter().zip(&a.loop_arms).all(|(&(s, e), body)| {
                if !(s > l.decl && s <= m.pos && m.pos <= e) {
                    return true;
                }
                let reassigned = mentions
                    .iter()
                    .filter(|x| {
                        x.kind == Use::Assign
                            && x.pos > m.pos
                            && x.pos <= e
                            && x.arms.starts_with(body)
                            && m.arms.starts_with(&x.arms)
                    })
                    .map(|x| x.pos)
                    .next();
                reassigned.is_some_and(|r| !a.jumps.iter().any(|&c| m.pos < c && c < r))
            });
            reads_ok && loops_ok
        });
        if !safe {
            continue;
        }
        // Each read becomes a borrow of the whole `Option` held for the read's duration: two
        // in one statement (`v.truncate(v.len() - 1)`) would overlap where native two-phase
        // borrows do not.
        let mut statements: Vec<(usize, usize)> = mentions
            .iter()
            .filter(|m| m.kind != Use::Assign)
            .filter_map(|m| innermost_statement(a, m.pos))
            .collect();
        let reads = statements.len();
        statements.sort_unstable();
        statements.dedup();
        if statements.len() < reads {
            continue;
        }
        // A reference kept in another local would hold its borrow of the `Option` while the
        // local is read again (`let first = &v[0]; v.len()`).
        if mentions.iter().any(|m| {
            a.borrowed_into
                .iter()
                .any(|&(s, e)| s < m.pos && m.pos <= e)
        }) {
            continue;
        }
        // Only worth a flag when an await (or a yield) falls in its scope.
        let crosses = generator
            || a.await_mentions
                .keys()
                .filter_map(|k| a.points.get(k))
                .any(|p| p.in_scope.contains(&id));
        if crosses {
            out.push(id);
        }
    }
    out
}

/// The positions of the innermost statement (or `let` initialiser) around `pos`.
fn innermost_statement(a: &Analysis, pos: usize) -> Option<(usize, usize)> {
    a.ranges
        .values()
        .filter(|&&(s, e)| s < pos && pos <= e)
        .min_by_key(|&&(s, e)| e - s)
        .copied()
}

/// Whether two mentions lie in different arms of one `if`/`match` (never both run).
fn exclusive(m: &crate::liveness::Mention, n: &crate::liveness::Mention) -> bool {
    m.arms
        .iter()
        .zip(&n.arms)
        .find(|(x, y)| x != y)
        .is_some_and(|(x, y)| x.0 == y.0)
}

/// The locals bound by a `let x = …;`/`let x: T;` whose pattern is one plain identifier.
struct SimpleLets<'a> {
    a: &'a Analysis,
    found: HashSet<LocalId>,
}

impl SimpleLets<'_> {
    fn collect(a: &Analysis, body: &syn::Block) -> HashSet<LocalId> {
        let mut s = SimpleLets {
            a,
            found: HashSet::new(),
        };
        s.visit_block(body);
        s.found
    }
}

impl<'ast> Visit<'ast> for SimpleLets<'_> {
    fn visit_stmt(&mut self, s: &'ast Stmt) {
        if let Stmt::Local(l) = s
            && plain_ident(&l.pat).is_some()
            && l.init.as_ref().is_none_or(|i| i.diverge.is_none())
            && let Some(ids) = self.a.stmt_locals.get(&key(s))
        {
            self.found.extend(ids.iter().copied());
        }
        syn::visit::visit_stmt(self, s);
    }
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// `x`, `mut x`, `x: T`, `mut x: T` (not `ref x`, not `x @ …`): the identifier and the type.
fn plain_ident(p: &syn::Pat) -> Option<(&syn::PatIdent, Option<&syn::Type>)> {
    match p {
        syn::Pat::Ident(i) if i.by_ref.is_none() && i.subpat.is_none() => Some((i, None)),
        syn::Pat::Type(t) => match plain_ident(&t.pat) {
            Some((i, None)) => Some((i, Some(&*t.ty))),
            _ => None,
        },
        _ => None,
    }
}

/// Rewrites `body` so each local of `wanted` is an `Option`; returns the locals rewritten.
/// A local moved where the move may not be one (a `match` scrutinee, a comparison operand…)
/// is left alone.
fn rewrite(a: &Analysis, body: &mut syn::Block, wanted: &[LocalId]) -> Vec<LocalId> {
    let mut chosen: Vec<LocalId> = wanted.to_vec();
    loop {
        let nodes = mention_nodes(a, &chosen);
        let mut check = PlaceUses {
            nodes: &nodes,
            bad: HashSet::new(),
        };
        check.visit_block(body);
        if check.bad.is_empty() {
            break;
        }
        chosen.retain(|id| !check.bad.contains(id));
    }
    if chosen.is_empty() {
        return chosen;
    }
    let nodes = mention_nodes(a, &chosen);
    let decls: HashSet<usize> = a
        .stmt_locals
        .iter()
        .filter(|(_, ids)| ids.iter().any(|id| chosen.contains(id)))
        .map(|(k, _)| *k)
        .collect();
    let mut rw = Flagger {
        nodes: &nodes,
        decls: &decls,
    };
    rw.visit_block_mut(body);
    chosen
}

/// The path expressions naming the `chosen` locals, with how each uses its local.
fn mention_nodes(a: &Analysis, chosen: &[LocalId]) -> HashMap<usize, (LocalId, Use)> {
    a.mentions
        .iter()
        .filter(|m| chosen.contains(&m.local))
        .filter_map(|m| m.node.map(|n| (n, (m.local, m.kind))))
        .collect()
}

/// Finds moves of flagged locals in place contexts, where rustc would not move them.
struct PlaceUses<'n> {
    nodes: &'n HashMap<usize, (LocalId, Use)>,
    bad: HashSet<LocalId>,
}

impl PlaceUses<'_> {
    fn place(&mut self, e: &Expr) {
        let e = match e {
            Expr::Paren(p) => &*p.expr,
            e => e,
        };
        if let Some(&(id, Use::Move)) = self.nodes.get(&key(e)) {
            self.bad.insert(id);
        }
    }
}

impl<'ast> Visit<'ast> for PlaceUses<'_> {
    fn visit_expr(&mut self, e: &'ast Expr) {
        match e {
            Expr::Match(m) => self.place(&m.expr),
            Expr::Let(l) => self.place(&l.expr),
            Expr::Unary(u) => self.place(&u.expr),
            Expr::Binary(b) if is_comparison(&b.op) => {
                self.place(&b.left);
                self.place(&b.right);
            }
            // `S { a, ..x }` moves only the fields it does not name.
            Expr::Struct(st) => {
                if let Some(rest) = &st.rest {
                    self.place(rest);
                }
            }
            // `(x, y) = …` assigns through a pattern: no rewrite reaches into it.
            Expr::Assign(a) if !matches!(&*a.left, Expr::Path(_)) => {
                struct Inside<'p, 'n>(&'p mut PlaceUses<'n>);
                impl<'ast> Visit<'ast> for Inside<'_, '_> {
                    fn visit_expr(&mut self, e: &'ast Expr) {
                        if let Some(&(id, _)) = self.0.nodes.get(&key(e)) {
                            self.0.bad.insert(id);
                        }
                        syn::visit::visit_expr(self, e);
                    }
                }
                Inside(self).visit_expr(&a.left);
            }
            _ => {}
        }
        syn::visit::visit_expr(self, e);
    }
    fn visit_local(&mut self, l: &'ast syn::Local) {
        if plain_ident(&l.pat).is_none()
            && let Some(init) = &l.init
        {
            self.place(&init.expr);
        }
        syn::visit::visit_local(self, l);
    }
    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

/// The rewrite itself (see the module docs).
struct Flagger<'n> {
    nodes: &'n HashMap<usize, (LocalId, Use)>,
    decls: &'n HashSet<usize>,
}

fn private(name: &str) -> TokenStream {
    let name = Ident::new(name, Span::call_site());
    quote!(::structured_async::__private::#name)
}

impl VisitMut for Flagger<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Assign(a) if self.nodes.contains_key(&key(&*a.left)) => {
                self.visit_expr_mut(&mut a.right);
                let right = &a.right;
                *a.right =
                    syn::parse_quote_spanned!(right.span()=> ::core::option::Option::Some(#right));
            }
            Expr::Reference(r) if self.nodes.contains_key(&key(&*r.expr)) => {
                let x = &r.expr;
                let span = x.span();
                *e = if r.mutability.is_some() {
                    let f = private("flag_mut");
                    syn::parse_quote_spanned!(span=> #f(&mut #x))
                } else {
                    let f = private("flag_ref");
                    syn::parse_quote_spanned!(span=> #f(&#x))
                };
            }
            Expr::Path(_) => {
                if let Some(&(_, kind)) = self.nodes.get(&key(&*e)) {
                    let span = e.span();
                    *e = if kind == Use::Move {
                        let f = private("flag_take");
                        syn::parse_quote_spanned!(span=> #f(&mut #e))
                    } else {
                        let f = private("flag_mut");
                        syn::parse_quote_spanned!(span=> (*#f(&mut #e)))
                    };
                }
            }
            Expr::Break(b) if b.label.is_some() => {
                visit_mut::visit_expr_break_mut(self, b);
                paren_path_break_value(b);
            }
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }

    fn visit_field_value_mut(&mut self, f: &mut syn::FieldValue) {
        let was_path = matches!(f.expr, Expr::Path(_));
        visit_mut::visit_field_value_mut(self, f);
        // `S { a }` with `a` rewritten must spell the field out.
        if was_path && !matches!(f.expr, Expr::Path(_)) {
            f.colon_token.get_or_insert_with(Default::default);
        }
    }

    fn visit_stmt_mut(&mut self, s: &mut Stmt) {
        let flagged = self.decls.contains(&key(&*s));
        match s {
            Stmt::Local(l) => self.local(l, flagged),
            s => visit_mut::visit_stmt_mut(self, s),
        }
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

impl Flagger<'_> {
    fn local(&mut self, l: &mut syn::Local, flagged: bool) {
        if let Some(init) = &mut l.init {
            self.visit_expr_mut(&mut init.expr);
            if let Some((_, els)) = &mut init.diverge {
                self.visit_expr_mut(els);
            }
        }
        if !flagged {
            return;
        }
        let span = l.pat.span();
        let Some((ident, _)) = plain_ident(&l.pat) else {
            return;
        };
        let mut ident = ident.clone();
        ident.mutability = Some(Default::default());
        l.pat = match &l.pat {
            syn::Pat::Type(t) => {
                let mut t = t.clone();
                let ty = &t.ty;
                *t.ty = syn::parse_quote_spanned!(span=> ::core::option::Option<#ty>);
                *t.pat = syn::Pat::Ident(ident);
                syn::Pat::Type(t)
            }
            _ => syn::Pat::Ident(ident),
        };
        let value: Expr = match &l.init {
            Some(init) => {
                let v = &init.expr;
                syn::parse_quote_spanned!(span=> ::core::option::Option::Some(#v))
            }
            None => syn::parse_quote_spanned!(span=> ::core::option::Option::None),
        };
        match &mut l.init {
            Some(init) => *init.expr = value,
            None => {
                l.init = Some(syn::LocalInit {
                    eq_token: Default::default(),
                    expr: Box::new(value),
                    diverge: None,
                });
            }
        }
    }
}

/// The statements binding the parameters at the start, a flagged one as `Some(argument)`.
pub(super) fn bind_params(params: &[Param], flagged: &[bool]) -> TokenStream {
    let mut out = TokenStream::new();
    for (p, &flag) in params.iter().zip(flagged) {
        match (&p.pat, flag) {
            (syn::Pat::Ident(i), true) => {
                let (ident, outer) = (&i.ident, &p.outer);
                out.extend(quote!(
                    #[allow(unused_mut)] let mut #ident = ::core::option::Option::Some(#outer);
                ));
            }
            _ => out.extend(crate::sig::bind_params(std::slice::from_ref(p))),
        }
    }
    out
}
