//! Which locals are alive at each point of the body, and whether one may hold a borrow.
//!
//! A native `async fn` keeps every local that is in scope and not moved out until the end of
//! its scope, across awaits (guards rely on it). The lowering must carry exactly those in the
//! state, so this pass records, in one walk in evaluation order: every binding with its scope,
//! every mention of a local with how it is used (moved, borrowed, assigned...), the loops, and
//! a snapshot of the locals in scope at the points the lowering asks about. Without types some
//! answers are uncertain; the lowering then keeps a native frame rather than guess.

use std::collections::HashMap;

use proc_macro2::{Span, TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Expr, Ident, Pat, Stmt};

mod bindings;
mod borrow;
mod known;
#[cfg(test)]
mod tests;
mod walk;

pub(crate) use bindings::{Matching, leaves_parts, matching_use, pattern_bindings, token_idents};
use borrow::*;
use known::*;
pub(crate) use known::{
    BY_VALUE_ADAPTERS, OTHER_AWAIT_FREE_MACROS, borrows_only, is_compound_assign, owned_await,
    owned_result,
};

pub(crate) type LocalId = usize;

/// How a mention uses a local.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Use {
    /// A bare path in value position: moves the local, or copies it.
    Move,
    /// Borrowed: `&x`, `x.method()`, `x[i]`, `x += 1`, a format macro, a non-`move` closure.
    Ref,
    /// `x.field` read as a value: may move the field out (a partial move).
    Field,
    /// Inside a macro we do not know, or a `move` closure: may move or borrow.
    Unknown,
    /// `x = value`.
    Assign,
}

pub(crate) struct Local {
    pub(crate) name: Ident,
    pub(crate) mutable: bool,
    pub(crate) decl: usize,
    pub(crate) end: usize,
    /// Conditional depth of the declaration (see [`Mention::depth`]).
    pub(crate) depth: usize,
    /// Initialised by a literal or declared with a primitive type: `Copy`, no drop glue.
    pub(crate) known_copy: bool,
    /// A `&T` parameter: borrows through it do not borrow a local of the frame.
    pub(crate) shared_ref: bool,
    /// May hold a borrow of another local (initialiser or assignment borrows one).
    pub(crate) borrowing: bool,
    /// Declared with a primitive non-reference type, or initialised by a number, `bool` or
    /// `char` literal: whatever is assigned to it, it holds no borrow.
    pub(crate) plain: bool,
    /// Its name may not denote it everywhere: declared by a `let` under `#[cfg]` (it may not
    /// exist), or named by a statement macro that may declare a new local of that name
    /// (`tokio::pin!(fut)`). It never crosses a block boundary.
    pub(crate) unsure: bool,
    /// Declared `let x;` without a value, or bound `ref`.
    pub(crate) unusual: bool,
    /// A parameter of type `&T` or `&mut T`.
    pub(crate) ref_param: bool,
    /// A parameter whose written type iterates references (`&[T]`, `&Vec<T>`, see
    /// [`known::iterates_refs`]): `for x in param` binds `Copy` items.
    pub(crate) ref_items_param: bool,
    /// [`Local::known_copy`] is a guess from names (the items of `v.iter()`, `&v`, a `&[T]`
    /// or `&Vec<T>` parameter), not proven by syntax: the lowering has rustc check it where
    /// it binds them.
    pub(crate) guessed_copy: bool,
    /// Known from its written type or its initialiser to be an `Option`, a `Result` or an
    /// iterator: its [`known::CONSUMING_IF_STD`] methods (`unwrap`, `map`) move it.
    pub(crate) std_value: bool,
}

pub(crate) struct Mention {
    pub(crate) local: LocalId,
    pub(crate) pos: usize,
    pub(crate) kind: Use,
    /// How many conditional constructs (branches, loop bodies, closures) enclose it.
    pub(crate) depth: usize,
    /// The branches enclosing it, outermost first: (construct, arm) for each `if`/`else`,
    /// `match` arm, loop body, closure, `&&`/`||` operand and labelled block.
    pub(crate) arms: Vec<(usize, usize)>,
    /// The key of the path expression naming the local (of the assigned place for
    /// [`Use::Assign`]); `None` inside a macro's tokens.
    pub(crate) node: Option<usize>,
}

/// A point the lowering asks about: its position, the locals in scope there (oldest first)
/// and the branches around it (see [`Mention::arms`]).
#[derive(Clone)]
pub(crate) struct Point {
    pub(crate) pos: usize,
    pub(crate) in_scope: Vec<LocalId>,
    pub(crate) arms: Vec<(usize, usize)>,
}

#[derive(Default)]
pub(crate) struct Analysis {
    pub(crate) locals: Vec<Local>,
    pub(crate) mentions: Vec<Mention>,
    pub(crate) loops: Vec<(usize, usize)>,
    /// The branches around each loop's body statements (see [`Mention::arms`]), in the order
    /// of `loops`.
    pub(crate) loop_arms: Vec<Vec<(usize, usize)>>,
    /// Positions of the `break` and `continue` expressions.
    pub(crate) jumps: Vec<usize>,
    /// Keyed by the address of the syntax node: before a statement, at an await (after its
    /// operand), after an `if`/loop, at a `break`/`continue`.
    pub(crate) points: HashMap<usize, Point>,
    pub(crate) after: HashMap<usize, Point>,
    /// Locals mentioned by the operand of each await, with how.
    pub(crate) await_mentions: HashMap<usize, Vec<(LocalId, Use)>>,
    /// Positions spanned by a statement's expression (for the locals it mentions).
    pub(crate) ranges: HashMap<usize, (usize, usize)>,
    /// The locals each `let` statement declares.
    pub(crate) stmt_locals: HashMap<usize, Vec<LocalId>>,
    /// The value of each `yield_!(value)`, keyed by its macro: the lowering reads these very
    /// nodes, so the keys of the awaits inside agree.
    pub(crate) yield_values: HashMap<usize, Box<Expr>>,
    /// Positions of the values stored into a local (initialiser or assignment) that may borrow
    /// another local: a mention there may be borrowed for as long as that local lives.
    pub(crate) borrowed_into: Vec<(usize, usize)>,
    /// The `for` loops (keyed by their expression) whose items are guessed `Copy` from names
    /// (see [`Local::guessed_copy`]).
    pub(crate) copy_item_loops: Vec<usize>,
    in_yield: usize,
    scopes: Vec<Vec<LocalId>>,
    pos: usize,
    /// Stack of mention collectors (operands of awaits being walked).
    collecting: Vec<Vec<(LocalId, Use)>>,
    /// The closures and `async` blocks being walked, innermost last: whether each is `move`,
    /// the first local declared inside it (older ones are captured), and the depth and number
    /// of arms where it stands (where a `move` one takes its captures).
    in_closure: Vec<(bool, LocalId, usize, usize)>,
    /// How many `#[cfg]`-attributed statements or arms enclose the walk: a mention there may
    /// not exist, so it is recorded as [`Use::Unknown`].
    in_cfg: usize,
    /// Set just before walking a scrutinee (`match x`, `if let P = x`, `let P = x`): how its
    /// patterns use it when it is a place (see [`matching_use`]).
    scrutinee_use: Option<Use>,
    /// The mention being recorded names the base of a field access (`x` in `x.a.b`).
    via_field: bool,
    depth: usize,
    arms: Vec<(usize, usize)>,
    constructs: usize,
}

/// Whether the tokens of a statement or arm start with a `#[cfg(..)]` or `#[cfg_attr(..)]`.
pub(crate) fn starts_with_cfg(tokens: TokenStream) -> bool {
    let mut it = tokens.into_iter();
    while let (Some(TokenTree::Punct(p)), Some(TokenTree::Group(g))) = (it.next(), it.next()) {
        if p.as_char() != '#' {
            return false;
        }
        let first = g.stream().into_iter().next();
        if matches!(&first, Some(TokenTree::Ident(i)) if i == "cfg" || i == "cfg_attr") {
            return true;
        }
    }
    false
}

pub(crate) fn key<T>(node: &T) -> usize {
    std::ptr::from_ref(node) as usize
}

impl Analysis {
    pub(crate) fn local(&self, id: LocalId) -> &Local {
        &self.locals[id]
    }

    fn tick(&mut self) -> usize {
        self.pos += 1;
        self.pos
    }

    fn snapshot(&self) -> Point {
        Point {
            pos: self.pos,
            in_scope: self.scopes.iter().flatten().copied().collect(),
            arms: self.arms.clone(),
        }
    }

    fn resolve(&self, name: &Ident) -> Option<LocalId> {
        self.scopes
            .iter()
            .rev()
            .flat_map(|s| s.iter().rev())
            .copied()
            .find(|&id| self.locals[id].name == *name)
    }

    fn mention(&mut self, id: LocalId, kind: Use) {
        self.mention_at(id, kind, None);
    }

    fn mention_at(&mut self, id: LocalId, kind: Use, node: Option<usize>) {
        // A `move` closure or block takes what it captures by value however it uses it: the
        // whole local, or only the fields it names (edition 2021 precise captures). A capture
        // through a `&mut` parameter (`self.n` in a `&mut self` method) stops at the
        // reference, so that moves the reference itself. It takes them where it stands,
        // whatever runs its body and how often: the outermost one that captures the local
        // says where. The rewrites of the body (drop flags) must not reach inside it.
        let at = self
            .in_closure
            .iter()
            .find(|&&(is_move, first, _, _)| is_move && id < first)
            .map(|&(_, _, depth, arms)| (depth, arms));
        let (kind, node) = if self.in_cfg > 0 {
            (Use::Unknown, None)
        } else if self.captured_by_move(id) {
            let local = &self.locals[id];
            let through_mut_ref = local.ref_param && !local.shared_ref;
            let moved = if (kind == Use::Field || self.via_field) && !through_mut_ref {
                Use::Field
            } else {
                Use::Move
            };
            (moved, None)
        } else {
            (kind, node)
        };
        let pos = self.tick();
        let (depth, arms) = match at {
            Some((depth, arms)) if kind != Use::Unknown => (depth, self.arms[..arms].to_vec()),
            _ => (self.depth, self.arms.clone()),
        };
        self.mentions.push(Mention {
            local: id,
            pos,
            kind,
            depth,
            arms,
            // The rewrites of the body do not reach into macro tokens.
            node: node.filter(|_| self.in_yield == 0),
        });
        if let Some(c) = self.collecting.last_mut() {
            c.push((id, kind));
        }
    }

    /// Whether a `move` closure or block entered after `id` was declared encloses this point.
    fn captured_by_move(&self, id: LocalId) -> bool {
        self.in_closure
            .iter()
            .any(|&(is_move, first, _, _)| is_move && id < first)
    }

    fn mention_name(&mut self, name: &Ident, kind: Use) {
        if let Some(id) = self.resolve(name) {
            self.mention(id, kind);
        }
    }

    /// A mention by a path expression `e` (one identifier).
    fn mention_path(&mut self, e: &Expr, name: &Ident, kind: Use) {
        if let Some(id) = self.resolve(name) {
            self.mention_at(id, kind, Some(key(e)));
        }
    }

    /// Declares a parameter of the fn.
    pub(crate) fn declare_param(&mut self, pat: &Pat, ty: Option<&syn::Type>) {
        if self.scopes.is_empty() {
            self.scopes.push(Vec::new());
        }
        let shared_ref = ty.is_some_and(is_shared_ref);
        let known_copy = shared_ref || ty.is_some_and(is_primitive);
        let first = self.locals.len();
        self.bind_pattern(pat, known_copy, shared_ref, false);
        let ref_param = ty.is_some_and(is_reference);
        let ref_items_param = ty.is_some_and(iterates_refs);
        let std_value = ty.is_some_and(is_std_value_type);
        for l in &mut self.locals[first..] {
            l.ref_param = ref_param;
            l.ref_items_param = ref_items_param;
            l.std_value = std_value && matches!(pat, Pat::Ident(_));
        }
    }

    fn bind_pattern(&mut self, pat: &Pat, known_copy: bool, shared_ref: bool, borrowing: bool) {
        let mut names = Vec::new();
        pattern_bindings(pat, &mut names);
        for (name, mutable, by_ref) in names {
            let decl = self.tick();
            self.locals.push(Local {
                name,
                mutable,
                decl,
                end: usize::MAX,
                depth: self.depth,
                known_copy,
                shared_ref,
                borrowing: borrowing || by_ref,
                plain: false,
                unsure: self.in_cfg > 0,
                unusual: by_ref,
                ref_param: false,
                ref_items_param: false,
                guessed_copy: false,
                std_value: false,
            });
            let id = self.locals.len() - 1;
            if let Some(s) = self.scopes.last_mut() {
                s.push(id);
            }
        }
    }

    /// A new construct whose arms are mutually exclusive branches.
    fn construct(&mut self) -> usize {
        self.constructs += 1;
        self.constructs
    }

    fn enter_arm(&mut self, construct: usize, arm: usize) {
        self.arms.push((construct, arm));
    }

    fn arms_with(&self, arm: (usize, usize)) -> Vec<(usize, usize)> {
        let mut arms = self.arms.clone();
        arms.push(arm);
        arms
    }

    fn leave_arm(&mut self) {
        self.arms.pop();
    }

    fn push_scope(&mut self) {
        self.scopes.push(Vec::new());
    }

    fn pop_scope(&mut self) {
        let end = self.tick();
        if let Some(s) = self.scopes.pop() {
            for id in s {
                self.locals[id].end = end;
            }
        }
    }

    /// Whether `e` may evaluate to something borrowing a local of this frame.
    fn may_borrow(&self, e: &Expr) -> bool {
        if owned_result(e) && carrying_call(e).is_none() {
            return false;
        }
        let mut probe = BorrowProbe {
            analysis: self,
            found: false,
        };
        probe.visit_expr(e);
        probe.found
    }

    fn macro_mentions(&mut self, mac: &syn::Macro) {
        if crate::yields::is_yield(mac)
            && let Ok(value) = crate::yields::value(mac)
        {
            let value = Box::new(value);
            self.in_yield += 1;
            self.visit_expr(&value);
            self.in_yield -= 1;
            self.yield_values.insert(key(mac), value);
            return;
        }
        let name = macro_name(mac);
        let kind = if borrows_only(&name) {
            Use::Ref
        } else {
            Use::Unknown
        };
        let mut idents = Vec::new();
        token_idents(mac.tokens.clone(), &mut idents);
        for i in idents {
            self.mention_name(&i, kind);
        }
    }

    /// A macro in statement position may declare locals visible after it (`tokio::pin!(fut)`
    /// shadows `fut`): the locals it names are [`Local::unsure`] unless it is a known one.
    fn may_redeclare(&mut self, mac: &syn::Macro) {
        let name = macro_name(mac);
        if borrows_only(&name)
            || OTHER_AWAIT_FREE_MACROS.contains(&name.as_str())
            || crate::yields::is_yield(mac)
        {
            return;
        }
        let mut idents = Vec::new();
        token_idents(mac.tokens.clone(), &mut idents);
        for i in idents {
            if let Some(id) = self.resolve(&i) {
                self.locals[id].unsure = true;
            }
        }
    }

    /// Visits a statement's whole expression, recording its span of positions and the point
    /// after it (the lowering may run it as one adapter).
    fn visit_whole(&mut self, e: &Expr) {
        let start = self.pos;
        self.visit_expr(e);
        let point = self.snapshot();
        self.ranges.insert(key(e), (start, point.pos));
        self.after.insert(key(e), point);
    }

    /// Whether `e` names a local known to be `Copy`, and whether that local is a shared
    /// reference whose borrows are not of this frame.
    fn copy_place(&self, e: &Expr) -> (bool, bool) {
        match e {
            Expr::Path(p) if p.qself.is_none() => p
                .path
                .get_ident()
                .and_then(|i| self.resolve(i))
                .map_or((false, false), |id| {
                    (self.locals[id].known_copy, self.locals[id].shared_ref)
                }),
            Expr::Paren(p) => self.copy_place(&p.expr),
            _ => (false, false),
        }
    }

    /// Whether `e` names a parameter whose written type iterates references (`&[T]`,
    /// `&Vec<T>`); not any `&T`: `&Receiver<T>` or a generic `&C` may yield owned items.
    fn is_ref_items_param(&self, e: &Expr) -> bool {
        match e {
            Expr::Path(p) if p.qself.is_none() => p
                .path
                .get_ident()
                .and_then(|i| self.resolve(i))
                .is_some_and(|id| self.locals[id].ref_items_param),
            Expr::Paren(p) => self.is_ref_items_param(&p.expr),
            _ => false,
        }
    }

    /// Whether the receiver `e` is a local known to be an `Option`, a `Result` or an iterator.
    fn receiver_is_std_value(&self, e: &Expr) -> bool {
        self.receiver_local(e).is_some_and(|l| l.std_value)
    }

    /// The local a receiver names, when it is a plain local (`p` in `p.expect(..)`).
    fn receiver_local(&self, e: &Expr) -> Option<&Local> {
        let root = match e {
            Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
            _ => None,
        };
        root.and_then(|r| self.resolve(r))
            .map(|id| &self.locals[id])
    }

    /// Whether the root local of a receiver is a reference parameter (`&T`, `&mut T`,
    /// `&self`): a method call reborrows through it and never moves it.
    fn receiver_is_ref(&self, e: &Expr) -> bool {
        self.receiver_local(e).is_some_and(|l| l.ref_param)
    }

    fn place_mention(&mut self, e: &Expr, kind: Use) {
        self.place_mention_in(e, kind, false);
    }

    /// `through_field`: `e` is the base of a field access.
    fn place_mention_in(&mut self, e: &Expr, kind: Use, through_field: bool) {
        match e {
            Expr::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
                self.via_field = through_field;
                self.mention_path(e, &p.path.segments[0].ident, kind);
                self.via_field = false;
            }
            // Moving through a field moves only that field; nothing moves out of an index.
            Expr::Field(f) => {
                let kind = if kind == Use::Move { Use::Field } else { kind };
                self.place_mention_in(&f.base, kind, true);
            }
            Expr::Index(i) => {
                let kind = if kind == Use::Move { Use::Ref } else { kind };
                self.place_mention_in(&i.expr, kind, false);
                self.visit_expr(&i.index);
            }
            Expr::Paren(p) => self.place_mention_in(&p.expr, kind, through_field),
            // `*g += 1`, `&mut *g`: the place behind `g` is used, `g` itself is not moved.
            Expr::Unary(u) if matches!(u.op, syn::UnOp::Deref(_)) && kind != Use::Move => {
                self.place_mention_in(&u.expr, kind, through_field);
            }
            _ => self.visit_expr(e),
        }
    }
}

/// The last segment of a macro's path (`tokio::pin!` -> `pin`), empty if it has none.
fn macro_name(mac: &syn::Macro) -> String {
    mac.path
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .unwrap_or_default()
}
