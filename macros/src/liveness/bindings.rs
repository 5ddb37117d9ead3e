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
