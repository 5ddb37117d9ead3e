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
    /// Declared `let x;` without a value, or bound `ref`.
    pub(crate) unusual: bool,
    /// A parameter of type `&T` or `&mut T`.
    pub(crate) ref_param: bool,
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

/// A point the lowering asks about: its position and the locals in scope there (oldest first).
#[derive(Clone)]
pub(crate) struct Point {
    pub(crate) pos: usize,
    pub(crate) in_scope: Vec<LocalId>,
}

#[derive(Default)]
pub(crate) struct Analysis {
    pub(crate) locals: Vec<Local>,
    pub(crate) mentions: Vec<Mention>,
    pub(crate) loops: Vec<(usize, usize)>,
    /// The branches around each loop's body statements (see [`Mention::arms`]), in the order
    /// of `loops`.
    pub(crate) loop_arms: Vec<Vec<(usize, usize)>>,
    /// Positions of the `continue` expressions.
    pub(crate) continues: Vec<usize>,
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
    in_yield: usize,
    scopes: Vec<Vec<LocalId>>,
    pos: usize,
    /// Stack of mention collectors (operands of awaits being walked).
    collecting: Vec<Vec<(LocalId, Use)>>,
    in_closure: Vec<bool>,
    depth: usize,
    arms: Vec<(usize, usize)>,
    constructs: usize,
}

pub(crate) fn key<T>(node: &T) -> usize {
    std::ptr::from_ref(node) as usize
}

/// Methods whose result owns its data, so `let y = x.m()` does not borrow `x`.
const OWNED_RESULT: &[&str] = &[
    "len",
    "is_empty",
    "clone",
    "cloned",
    "copied",
    "to_string",
    "to_owned",
    "to_vec",
    "collect",
    "count",
    "sum",
    "product",
    "parse",
    "contains",
    "contains_key",
    "starts_with",
    "ends_with",
    "eq",
    "ne",
    "cmp",
    "partial_cmp",
    "max",
    "min",
    "abs",
    "pow",
    "into",
    "is_some",
    "is_none",
    "is_ok",
    "is_err",
    "to_uppercase",
    "to_lowercase",
    "unwrap_or_default",
    "capacity",
];

/// Methods that take `self` by value on every common type that has them.
const CONSUMING: &[&str] = &[
    "into_iter",
    "into_inner",
    "into_bytes",
    "into_boxed_slice",
    "into_keys",
    "into_values",
    "unwrap",
    "expect",
    "unwrap_or",
    "unwrap_or_else",
    "unwrap_or_default",
    "ok",
    "err",
    "map",
    "and_then",
    "into",
    "unwrap_err",
];

/// Methods that take `&self`/`&mut self` on every common type that has them (or `self` on
/// `Copy` integers); any other method may consume its receiver (`take`, `last`, `max` do on
/// iterators, `send` does on a oneshot sender).
const BORROWING: &[&str] = &[
    "len",
    "is_empty",
    "iter",
    "iter_mut",
    "get",
    "get_mut",
    "push",
    "push_str",
    "pop",
    "insert",
    "remove",
    "contains",
    "contains_key",
    "clear",
    "extend",
    "as_ref",
    "as_mut",
    "as_str",
    "as_slice",
    "as_deref",
    "borrow",
    "borrow_mut",
    "lock",
    "read",
    "write",
    "recv",
    "try_recv",
    "clone",
    "to_string",
    "to_owned",
    "to_vec",
    "first",
    "keys",
    "values",
    "set",
    "replace",
    "fetch_add",
    "fetch_sub",
    "load",
    "store",
    "starts_with",
    "ends_with",
    "split",
    "trim",
    "chars",
    "bytes",
    "lines",
    "sort",
    "sort_by",
    "sort_unstable",
    "dedup",
    "retain",
    "truncate",
    "drain",
    "entry",
    "is_some",
    "is_none",
    "is_ok",
    "is_err",
    "wrapping_add",
    "wrapping_sub",
    "wrapping_mul",
    "checked_add",
    "checked_sub",
    "checked_mul",
    "checked_div",
    "saturating_add",
    "saturating_sub",
    "pow",
    "abs",
    "count_ones",
    "cmp",
    "partial_cmp",
    "eq",
    "ne",
    "fmt",
    "hash",
    "capacity",
    "reserve",
    "split_at",
    "windows",
    "chunks",
    "find",
    "position",
    "any",
    "all",
];

/// Macros that only borrow their arguments.
const FORMAT_MACROS: &[&str] = &[
    "format",
    "print",
    "println",
    "eprint",
    "eprintln",
    "write",
    "writeln",
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "panic",
    "format_args",
    "unreachable",
    "todo",
    "dbg",
];

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
        let pos = self.tick();
        self.mentions.push(Mention {
            local: id,
            pos,
            kind,
            depth: self.depth,
            arms: self.arms.clone(),
            // The rewrites of the body do not reach into macro tokens.
            node: node.filter(|_| self.in_yield == 0),
        });
        if let Some(c) = self.collecting.last_mut() {
            c.push((id, kind));
        }
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
        for l in &mut self.locals[first..] {
            l.ref_param = ref_param;
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
                unusual: by_ref,
                ref_param: false,
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
        if owned_result(e) {
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
        let name = mac
            .path
            .segments
            .last()
            .map(|s| s.ident.to_string())
            .unwrap_or_default();
        let kind = if FORMAT_MACROS.contains(&name.as_str()) {
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

    /// Visits a statement's whole expression, recording its span of positions and the point
    /// after it (the lowering may run it as one adapter).
    fn visit_whole(&mut self, e: &Expr) {
        let start = self.pos;
        self.visit_expr(e);
        let point = self.snapshot();
        self.ranges.insert(key(e), (start, point.pos));
        self.after.insert(key(e), point);
    }

    /// Whether the root local of a receiver is a reference parameter (`&T`, `&mut T`,
    /// `&self`): a method call reborrows through it and never moves it.
    fn receiver_is_ref(&self, e: &Expr) -> bool {
        let root = match e {
            Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
            _ => None,
        };
        root.and_then(|r| self.resolve(r))
            .is_some_and(|id| self.locals[id].ref_param)
    }

    fn place_mention(&mut self, e: &Expr, kind: Use) {
        match e {
            Expr::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
                self.mention_path(e, &p.path.segments[0].ident, kind);
            }
            // Moving through a field moves only that field; nothing moves out of an index.
            Expr::Field(f) => {
                let kind = if kind == Use::Move { Use::Field } else { kind };
                self.place_mention(&f.base, kind);
            }
            Expr::Index(i) => {
                let kind = if kind == Use::Move { Use::Ref } else { kind };
                self.place_mention(&i.expr, kind);
                self.visit_expr(&i.index);
            }
            Expr::Paren(p) => self.place_mention(&p.expr, kind),
            _ => self.visit_expr(e),
        }
    }
}

impl<'ast> Visit<'ast> for Analysis {
    fn visit_stmt(&mut self, s: &'ast Stmt) {
        let point = self.snapshot();
        self.points.insert(key(s), point);
        self.tick();
        match s {
            Stmt::Local(l) => {
                let (init, borrowing) = match &l.init {
                    Some(init) => {
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
                let first = self.locals.len();
                self.bind_pattern(pat, known_copy, false, borrowing && !plain);
                for local in &mut self.locals[first..] {
                    local.plain = plain;
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
                let point = self.snapshot();
                self.ranges.insert(key(s), (start, point.pos));
                self.after.insert(key(s), point);
            }
        }
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
        match e {
            Expr::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
                // A closure may capture by reference or by value (and consume what it
                // captured): without types, only "unknown".
                let kind = if self.in_closure.is_empty() {
                    Use::Move
                } else {
                    Use::Unknown
                };
                self.mention_path(e, &p.path.segments[0].ident, kind);
            }
            Expr::Reference(r) => self.place_mention(&r.expr, Use::Ref),
            Expr::Field(_) => self.place_mention(e, Use::Field),
            Expr::Index(_) => self.place_mention(e, Use::Ref),
            Expr::MethodCall(m) => {
                let name = m.method.to_string();
                let kind = if CONSUMING.contains(&name.as_str()) {
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
                self.depth += 1;
                let k = self.construct();
                self.enter_arm(k, 0);
                self.in_closure.push(c.capture.is_some());
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
                self.in_closure.push(a.capture.is_some());
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
                self.visit_expr(&l.expr);
                let borrowing = self.may_borrow(&l.expr);
                let first = self.locals.len();
                self.bind_pattern(&l.pat, false, false, borrowing);
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
                self.bind_pattern(&f.pat, false, false, borrowing);
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
                self.visit_expr(&m.expr);
                let borrowing = self.may_borrow(&m.expr);
                self.depth += 1;
                let c = self.construct();
                for (i, arm) in m.arms.iter().enumerate() {
                    self.enter_arm(c, i);
                    self.push_scope();
                    let first = self.locals.len();
                    self.bind_pattern(&arm.pat, false, false, borrowing);
                    self.stmt_locals
                        .insert(key(arm), (first..self.locals.len()).collect());
                    if let Some((_, g)) = &arm.guard {
                        self.visit_expr(g);
                    }
                    let point = self.snapshot();
                    self.points.insert(key(arm), point);
                    self.visit_expr(&arm.body);
                    self.pop_scope();
                    self.leave_arm();
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
                if matches!(e, Expr::Continue(_)) {
                    self.continues.push(self.pos);
                }
                visit::visit_expr(self, e);
                let point = self.snapshot();
                self.points.insert(key(e), point);
            }
            _ => visit::visit_expr(self, e),
        }
    }

    fn visit_item(&mut self, _: &'ast syn::Item) {}
}

struct BorrowProbe<'a> {
    analysis: &'a Analysis,
    found: bool,
}

impl BorrowProbe<'_> {
    fn check(&mut self, name: &Ident, through_place: bool) {
        if let Some(id) = self.analysis.resolve(name) {
            let l = &self.analysis.locals[id];
            if l.borrowing || (through_place && !l.shared_ref) {
                self.found = true;
            }
        }
    }
}

impl<'ast> Visit<'ast> for BorrowProbe<'_> {
    fn visit_expr(&mut self, e: &'ast Expr) {
        match e {
            // A drop flag's value taken out owns it.
            Expr::Call(c) if crate::lower::is_flag_take(c) => {}
            Expr::Path(p) if p.qself.is_none() && p.path.segments.len() == 1 => {
                self.check(&p.path.segments[0].ident, false);
            }
            Expr::Reference(r) => match place_root(&r.expr) {
                Some(root) => self.check(root, true),
                None => visit::visit_expr(self, e),
            },
            Expr::MethodCall(m) if !owned_result(e) => {
                if let Some(root) = place_root(&m.receiver) {
                    self.check(root, true);
                }
                visit::visit_expr(self, e);
            }
            Expr::Closure(_) | Expr::Async(_) | Expr::Macro(_) => {
                // A `move` closure or block owns what it captures: it borrows a local only
                // through a captured local that holds a borrow itself.
                let moves = match e {
                    Expr::Closure(c) => c.capture.is_some(),
                    Expr::Async(a) => a.capture.is_some(),
                    _ => false,
                };
                let mut idents = Vec::new();
                token_idents(quote::ToTokens::to_token_stream(e), &mut idents);
                for i in idents {
                    self.check(&i, !moves);
                }
            }
            _ => visit::visit_expr(self, e),
        }
    }
}

fn place_root(e: &Expr) -> Option<&Ident> {
    match e {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        Expr::Field(f) => place_root(&f.base),
        Expr::Index(i) => place_root(&i.expr),
        Expr::Paren(p) => place_root(&p.expr),
        Expr::MethodCall(m) => place_root(&m.receiver),
        _ => None,
    }
}

/// Async methods whose output owns its data (`rx.recv().await`, `lines.next().await`), though
/// their future borrows the receiver.
const OWNED_AWAIT: &[&str] = &[
    "recv",
    "try_recv",
    "next",
    "next_line",
    "read",
    "read_exact",
    "read_to_end",
    "read_to_string",
    "read_line",
    "accept",
    "send",
    "write",
    "write_all",
    "flush",
    "tick",
    "join",
    "wait",
    "changed",
    "recv_from",
    "send_to",
    "connect",
    "readable",
    "writable",
];

pub(crate) fn owned_result(e: &Expr) -> bool {
    match e {
        Expr::Await(a) => {
            matches!(&*a.base, Expr::MethodCall(m) if OWNED_AWAIT.contains(&m.method.to_string().as_str()))
        }
        Expr::Lit(_) | Expr::Cast(_) => true,
        Expr::Binary(b) => !is_compound_assign(&b.op),
        Expr::Unary(u) => !matches!(u.op, syn::UnOp::Deref(_)) || owned_result(&u.expr),
        Expr::MethodCall(m) => OWNED_RESULT.contains(&m.method.to_string().as_str()),
        Expr::Paren(p) => owned_result(&p.expr),
        Expr::Macro(m) => m.mac.path.is_ident("format"),
        _ => false,
    }
}

pub(crate) fn is_compound_assign(op: &syn::BinOp) -> bool {
    use syn::BinOp::{
        AddAssign, BitAndAssign, BitOrAssign, BitXorAssign, DivAssign, MulAssign, RemAssign,
        ShlAssign, ShrAssign, SubAssign,
    };
    matches!(
        op,
        AddAssign(_)
            | SubAssign(_)
            | MulAssign(_)
            | DivAssign(_)
            | RemAssign(_)
            | BitXorAssign(_)
            | BitAndAssign(_)
            | BitOrAssign(_)
            | ShlAssign(_)
            | ShrAssign(_)
    )
}

fn is_reference(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Group(g) => is_reference(&g.elem),
        syn::Type::Paren(p) => is_reference(&p.elem),
        syn::Type::Reference(_) => true,
        _ => false,
    }
}

fn is_shared_ref(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Group(g) => is_shared_ref(&g.elem),
        syn::Type::Paren(p) => is_shared_ref(&p.elem),
        syn::Type::Reference(r) => r.mutability.is_none(),
        _ => false,
    }
}

fn is_primitive(ty: &syn::Type) -> bool {
    const PRIMS: &[&str] = &[
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        "f32", "f64", "bool", "char",
    ];
    match ty {
        syn::Type::Group(g) => is_primitive(&g.elem),
        syn::Type::Paren(p) => is_primitive(&p.elem),
        syn::Type::Path(p) => p
            .path
            .get_ident()
            .is_some_and(|i| PRIMS.contains(&i.to_string().as_str())),
        syn::Type::Reference(r) => r.mutability.is_none(),
        _ => false,
    }
}

/// A primitive type that is not a reference: a value of it holds no borrow.
fn primitive_cast(e: &Expr) -> bool {
    match e {
        Expr::Cast(c) => is_plain_value(&c.ty),
        Expr::Paren(p) => primitive_cast(&p.expr),
        _ => false,
    }
}

fn is_plain_value(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Group(g) => is_plain_value(&g.elem),
        syn::Type::Paren(p) => is_plain_value(&p.elem),
        syn::Type::Path(_) => is_primitive(ty),
        _ => false,
    }
}

/// The bindings a pattern introduces: name, `mut`, bound by `ref`.
pub(crate) fn pattern_bindings(pat: &Pat, out: &mut Vec<(Ident, bool, bool)>) {
    match pat {
        Pat::Ident(i) => {
            let s = i.ident.to_string();
            // `None`, `MAX`: a constant or unit variant, not a binding.
            if !s.starts_with(|c: char| c.is_ascii_uppercase()) {
                out.push((i.ident.clone(), i.mutability.is_some(), i.by_ref.is_some()));
            }
            if let Some((_, sub)) = &i.subpat {
                pattern_bindings(sub, out);
            }
        }
        Pat::Or(o) => {
            if let Some(first) = o.cases.first() {
                pattern_bindings(first, out);
            }
        }
        Pat::Paren(p) => pattern_bindings(&p.pat, out),
        Pat::Reference(r) => pattern_bindings(&r.pat, out),
        Pat::Slice(s) => s.elems.iter().for_each(|p| pattern_bindings(p, out)),
        Pat::Struct(s) => s.fields.iter().for_each(|f| pattern_bindings(&f.pat, out)),
        Pat::Tuple(t) => t.elems.iter().for_each(|p| pattern_bindings(p, out)),
        Pat::TupleStruct(t) => t.elems.iter().for_each(|p| pattern_bindings(p, out)),
        Pat::Type(t) => pattern_bindings(&t.pat, out),
        _ => {}
    }
}

/// Every identifier in a token stream, including `{name}` captures inside string literals.
pub(crate) fn token_idents(tokens: TokenStream, out: &mut Vec<Ident>) {
    for t in tokens {
        match t {
            TokenTree::Ident(i) => out.push(i),
            TokenTree::Group(g) => token_idents(g.stream(), out),
            TokenTree::Literal(l) => {
                let s = l.to_string();
                if s.starts_with('"') {
                    inline_captures(&s, l.span(), out);
                }
            }
            TokenTree::Punct(_) => {}
        }
    }
}

fn inline_captures(s: &str, span: Span, out: &mut Vec<Ident>) {
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if rest.starts_with('{') {
            rest = &rest[1..];
            continue;
        }
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let name = &rest[..end];
        if !name.is_empty() && !name.starts_with(|c: char| c.is_ascii_digit()) {
            if let Ok(i) = syn::parse_str::<Ident>(name) {
                out.push(Ident::new(&i.to_string(), span));
            }
        }
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn analyse(body: &str) -> (Analysis, syn::Block) {
        let block: syn::Block = syn::parse_str(body).unwrap();
        let mut a = Analysis::default();
        a.visit_block(&block);
        (a, block)
    }

    fn id(a: &Analysis, name: &str, nth: usize) -> LocalId {
        (0..a.locals.len())
            .filter(|&i| a.locals[i].name == name)
            .nth(nth)
            .unwrap()
    }

    fn kinds(a: &Analysis, local: LocalId) -> Vec<Use> {
        a.mentions
            .iter()
            .filter(|m| m.local == local)
            .map(|m| m.kind)
            .collect()
    }

    #[test]
    fn shadowing_makes_a_new_local_and_the_old_one_stays_in_scope() {
        let (a, block) = analyse("{ let x = f(); let x = x.len(); g().await; x }");
        let (old, new) = (id(&a, "x", 0), id(&a, "x", 1));
        assert_ne!(old, new);
        assert_eq!(kinds(&a, old), [Use::Ref]);
        assert_eq!(kinds(&a, new), [Use::Move]);
        let Stmt::Expr(await_expr @ Expr::Await(_), _) = &block.stmts[2] else {
            panic!("the third statement is the await")
        };
        let p = &a.points[&key(await_expr)];
        assert_eq!(p.in_scope, [old, new]);
    }

    #[test]
    fn scopes_end_where_their_block_ends() {
        let (a, block) = analyse("{ let outer = 1; { let inner = 2; } h().await; }");
        let inner = id(&a, "inner", 0);
        let outer = id(&a, "outer", 0);
        assert!(a.locals[inner].end < a.locals[outer].end);
        let Stmt::Expr(await_expr, _) = &block.stmts[2] else {
            panic!("the third statement is the await")
        };
        assert_eq!(a.points[&key(await_expr)].in_scope, [outer]);
    }

    #[test]
    fn how_a_local_is_used() {
        let (a, _) = analyse(
            "{ let mut v = Vec::new(); v.push(1); consume(v.into_iter()); \
               let w = s; let r = &t; let n = p.field; q = 3; z += 1; \
               println!(\"{k}\"); mystery!(m); let c = || c2; }",
        );
        let declared: Vec<_> = a.locals.iter().map(|l| l.name.to_string()).collect();
        assert_eq!(declared, ["v", "w", "r", "n", "c"]);
        let v = id(&a, "v", 0);
        assert_eq!(kinds(&a, v), [Use::Ref, Use::Move]);
        // `t` is not a local of this body, so `&t` borrows nothing the frame owns.
        assert!(!a.locals[id(&a, "r", 0)].borrowing);
    }

    #[test]
    fn borrows_of_locals_are_found_transitively() {
        let (a, _) = analyse(
            "{ let v = vec![1]; let first = &v[0]; let alias = first; \
               let len = v.len(); let it = v.iter(); let copy = v.clone(); }",
        );
        let borrowing = |n: &str| a.locals[id(&a, n, 0)].borrowing;
        assert!(borrowing("first"));
        assert!(borrowing("alias"));
        assert!(borrowing("it"));
        assert!(!borrowing("len"));
        assert!(!borrowing("copy"));
    }

    #[test]
    fn a_local_of_a_primitive_type_holds_no_borrow_whatever_is_assigned() {
        let (a, _) = analyse(
            "{ let v = vec![1]; let f = |x: u64| x; let r = &v[0]; \
               let mut n: u64 = f(v[0]); n = *r; let mut m = 0; m = *r; \
               let mut s: &u64 = &0; s = &v[0]; let mut k = f(v[0]); k = *r; }",
        );
        let borrowing = |n: &str| a.locals[id(&a, n, 0)].borrowing;
        assert!(borrowing("r"));
        assert!(!borrowing("n"));
        assert!(!borrowing("m"));
        assert!(borrowing("s"));
        // Without a type, a value read through a borrowing local may be a borrow itself.
        assert!(borrowing("k"));
    }

    #[test]
    fn moves_inside_branches_are_conditional() {
        let (a, _) = analyse("{ let s = f(); if c() { drop(s); } g().await; }");
        let s = id(&a, "s", 0);
        let m = a.mentions.iter().find(|m| m.local == s).unwrap();
        assert_eq!(m.kind, Use::Move);
        assert!(m.depth > a.locals[s].depth);
    }

    #[test]
    fn format_strings_capture_locals_by_name() {
        let mut out = Vec::new();
        token_idents(quote::quote!(format!("{a} {{b}} {c:?} {0}", d)), &mut out);
        let names: Vec<String> = out.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["format", "a", "c", "d"]);
    }

    #[test]
    fn pattern_bindings_skip_constants_and_take_the_first_or_case() {
        let pat = syn::parse::Parser::parse_str(
            Pat::parse_single,
            "(Some(ref a), mut b, None, [c, .., MAX], (d | d))",
        )
        .unwrap();
        let mut out = Vec::new();
        pattern_bindings(&pat, &mut out);
        let got: Vec<(String, bool, bool)> = out
            .into_iter()
            .map(|(i, m, r)| (i.to_string(), m, r))
            .collect();
        assert_eq!(
            got,
            [
                ("a".into(), false, true),
                ("b".into(), true, false),
                ("c".into(), false, false),
                ("d".into(), false, false),
            ]
        );
    }
}
