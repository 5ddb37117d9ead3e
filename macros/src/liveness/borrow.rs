//! Whether a value may hold a borrow of a local of the frame.

use super::*;

pub(super) struct BorrowProbe<'a> {
    pub(super) analysis: &'a Analysis,
    pub(super) found: bool,
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
            // The result holds what its receiver's items hold (or the receiver itself, moved
            // in), no new borrow of the receiver.
            Expr::MethodCall(m)
                if carrying_call(e).is_some() || {
                    let name = m.method.to_string();
                    consuming(&name) || BY_VALUE_ADAPTERS.contains(&name.as_str())
                } =>
            {
                self.visit_expr(&m.receiver);
                for a in &m.args {
                    self.visit_expr(a);
                }
            }
            Expr::MethodCall(m) if !owned_result(e) => {
                if let Some(root) = place_root(&m.receiver) {
                    self.check(root, true);
                }
                visit::visit_expr(self, e);
            }
            // `Arc::clone(&a)`, `Rc::clone(&a)`: a new owner of what `a` holds, no borrow of `a`.
            Expr::Call(c)
                if c.args.len() == 1
                    && matches!(&*c.func, Expr::Path(p)
                        if p.path.segments.len() > 1
                            && p.path.segments.last().is_some_and(|s| s.ident == "clone")) =>
            {
                match &c.args[0] {
                    Expr::Reference(r) => self.visit_expr(&r.expr),
                    a => self.visit_expr(a),
                }
            }
            // `format!` makes a `String` of what it borrows, a span macro a `Span`.
            Expr::Macro(m)
                if m.mac.path.is_ident("format")
                    || m.mac.path.segments.last().is_some_and(|s| {
                        super::known::SPAN_MACROS.contains(&s.ident.to_string().as_str())
                    }) => {}
            // `pin!(fut)` borrows a temporary that lives as long as the enclosing block.
            Expr::Macro(m) if m.mac.path.segments.last().is_some_and(|s| s.ident == "pin") => {
                self.found = true;
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

pub(super) fn place_root(e: &Expr) -> Option<&Ident> {
    match e {
        Expr::Path(p) if p.qself.is_none() => p.path.get_ident(),
        Expr::Field(f) => place_root(&f.base),
        Expr::Index(i) => place_root(&i.expr),
        Expr::Paren(p) => place_root(&p.expr),
        Expr::MethodCall(m) => place_root(&m.receiver),
        _ => None,
    }
}
