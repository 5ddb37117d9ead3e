//! The names a pattern binds and the identifiers inside macro tokens.

use super::*;

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

/// How matching a place against patterns uses it (`match x {..}`, `if let P = x`,
/// `let P = x`). Binding nothing by value (`_`, literals, `ref x`) only reads it. Patterns that
/// each bind all of the matched variant by value, or match a variant without data (`Some(x)`
/// and `None`, `(a, b)`), move it. Anything else may move part of it, or move it on some paths
/// only (`if let Ok(x) = res` leaves an `Err` in `res`; `let (a, _) = pair` leaves `pair.1`):
/// [`Use::Field`], a partial move.
pub(crate) enum Matching<'a> {
    /// `match`: every arm's pattern, and whether any arm has a guard.
    Arms(Vec<&'a Pat>, bool),
    /// `if let`, `while let`, `let … else`: one pattern, and an implicit other path that keeps
    /// the value if it does not match.
    Refutable(&'a Pat),
    /// A plain `let`.
    Irrefutable(&'a Pat),
}

pub(crate) fn matching_use(m: &Matching<'_>) -> Use {
    let pats: Vec<&Pat> = match m {
        Matching::Arms(p, _) => p.clone(),
        Matching::Refutable(p) | Matching::Irrefutable(p) => vec![*p],
    };
    let binds = |p: &Pat| {
        let mut names = Vec::new();
        pattern_bindings(p, &mut names);
        names
    };
    if pats
        .iter()
        .all(|p| binds(p).iter().all(|(_, _, by_ref)| *by_ref))
    {
        return Use::Ref;
    }
    // A binding arm leaving nothing of its variant, or a dataless one (a unit variant or a
    // constant, `None`, `Quit`, `0`).
    let whole = |p: &Pat| {
        let names = binds(p);
        if names.is_empty() {
            dataless(p)
        } else {
            names.iter().all(|(_, _, by_ref)| !by_ref) && !leaves_parts(p)
        }
    };
    let total = match m {
        // A last `_` after `Some(..)` arms without guards can only meet `None`.
        Matching::Arms(_, false) if arms_of_option(&pats) => true,
        Matching::Arms(..) | Matching::Irrefutable(_) => pats.iter().all(|p| whole(p)),
        // The other path keeps what did not match: nothing only when that is `None`.
        Matching::Refutable(p) => is_some_pattern(p) && whole(p),
    };
    if total { Use::Move } else { Use::Field }
}

/// A pattern matching no data: a path (unit variant, constant), a literal, a range.
fn dataless(p: &Pat) -> bool {
    match p {
        Pat::Path(_) | Pat::Lit(_) | Pat::Range(_) => true,
        Pat::Ident(i) => {
            i.subpat.is_none()
                && i.ident
                    .to_string()
                    .starts_with(|c: char| c.is_ascii_uppercase())
        }
        Pat::Or(o) => o.cases.iter().all(dataless),
        Pat::Paren(p) => dataless(&p.pat),
        _ => false,
    }
}

/// `Some(..)` arms binding all they match, then `_` or `None`.
fn arms_of_option(pats: &[&Pat]) -> bool {
    let Some((last, first)) = pats.split_last() else {
        return false;
    };
    matches!(last, Pat::Wild(_))
        && first.iter().all(|p| {
            is_some_pattern(p) && {
                let mut names = Vec::new();
                pattern_bindings(p, &mut names);
                names.iter().all(|(_, _, by_ref)| !by_ref) && !leaves_parts(p)
            } || dataless(p)
        })
}

/// `Some(..)`: its other case, `None`, holds nothing.
fn is_some_pattern(p: &Pat) -> bool {
    match p {
        Pat::TupleStruct(t) => t.path.is_ident("Some"),
        Pat::Paren(p) => is_some_pattern(&p.pat),
        Pat::Type(t) => is_some_pattern(&t.pat),
        _ => false,
    }
}

/// Whether a pattern leaves parts of the value unbound: `_`, `..`, or a struct pattern's `..`.
pub(crate) fn leaves_parts(pat: &Pat) -> bool {
    struct Leaves(bool);
    impl<'ast> Visit<'ast> for Leaves {
        fn visit_pat_wild(&mut self, _: &'ast syn::PatWild) {
            self.0 = true;
        }
        fn visit_pat_rest(&mut self, _: &'ast syn::PatRest) {
            self.0 = true;
        }
        fn visit_pat_struct(&mut self, p: &'ast syn::PatStruct) {
            self.0 |= p.rest.is_some();
            visit::visit_pat_struct(self, p);
        }
    }
    let mut l = Leaves(false);
    l.visit_pat(pat);
    l.0
}

/// Every identifier in a token stream, including `{name}` captures inside string literals.
pub(crate) fn token_idents(tokens: TokenStream, out: &mut Vec<Ident>) {
    for t in tokens {
        match t {
            TokenTree::Ident(i) => out.push(i),
            TokenTree::Group(g) => token_idents(g.stream(), out),
            TokenTree::Literal(l) => {
                let s = l.to_string();
                // `"…"`, `r"…"`, `r#"…"#`: the literals a format string can be.
                if s.starts_with('"') || s.starts_with("r\"") || s.starts_with("r#") {
                    inline_captures(&s, l.span(), out);
                }
            }
            TokenTree::Punct(_) => {}
        }
    }
}

pub(super) fn inline_captures(s: &str, span: Span, out: &mut Vec<Ident>) {
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
