//! `self` inside an explicitly lowered body.
//!
//! Block closures cannot take a parameter named `self`, so the body's `self` becomes `__self`
//! (spanned like the user's token, so errors still point at it), in expressions, closures,
//! `async` blocks and macro arguments alike; nested items keep their own `self`.

use proc_macro2::{Group, TokenStream, TokenTree};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Expr, Ident};

pub(crate) fn rename_self(body: &mut Block, this: &Ident) {
    Renamer { this }.visit_block_mut(body);
}

struct Renamer<'a> {
    this: &'a Ident,
}

impl Renamer<'_> {
    fn renamed(&self, span: proc_macro2::Span) -> Ident {
        Ident::new(&self.this.to_string(), span)
    }

    /// `format`: the tokens are a formatting macro's arguments, the format string the one at
    /// this index (see [`format_arg`]).
    fn tokens(&self, tokens: TokenStream, format: Option<usize>) -> TokenStream {
        let mut out = Vec::new();
        let all: Vec<TokenTree> = tokens.into_iter().collect();
        let mut arg = 0;
        let mut arg_start = true;
        for (i, t) in all.iter().enumerate() {
            let path_start =
                matches!(all.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':');
            // `name!(..)` nested in the tokens: a formatting macro of its own.
            let nested = match (
                i.checked_sub(2).map(|k| &all[k]),
                i.checked_sub(1).map(|k| &all[k]),
            ) {
                (Some(TokenTree::Ident(n)), Some(TokenTree::Punct(p))) if p.as_char() == '!' => {
                    format_arg(&n.to_string())
                }
                _ => None,
            };
            let starts_arg = std::mem::replace(&mut arg_start, false);
            out.push(match t {
                TokenTree::Ident(id) if id == "self" && !path_start => {
                    TokenTree::Ident(self.renamed(id.span()))
                }
                TokenTree::Group(g) => {
                    let mut ng = Group::new(g.delimiter(), self.tokens(g.stream(), nested));
                    ng.set_span(g.span());
                    TokenTree::Group(ng)
                }
                TokenTree::Punct(p) if p.as_char() == ',' => {
                    arg += 1;
                    arg_start = true;
                    t.clone()
                }
                // `format!("{self:?}")` names `self` inside the format string.
                TokenTree::Literal(l) if starts_arg && format == Some(arg) => {
                    match self.renamed_captures(l) {
                        Some(l) => TokenTree::Literal(l),
                        None => t.clone(),
                    }
                }
                other => other.clone(),
            });
        }
        out.into_iter().collect()
    }
}

/// Which argument of a formatting macro is its format string.
fn format_arg(name: &str) -> Option<usize> {
    match name {
        "format" | "print" | "println" | "eprint" | "eprintln" | "panic" | "format_args"
        | "unreachable" | "todo" => Some(0),
        "write" | "writeln" | "assert" | "debug_assert" => Some(1),
        "assert_eq" | "assert_ne" | "debug_assert_eq" | "debug_assert_ne" => Some(2),
        _ => None,
    }
}

impl Renamer<'_> {
    /// A string literal whose inline format captures of `self` (`{self}`, `{self:?}`) name
    /// the renamed receiver instead; `None` when it has none (`{{self}}` is no capture).
    fn renamed_captures(&self, l: &proc_macro2::Literal) -> Option<proc_macro2::Literal> {
        let text = l.to_string();
        if !(text.starts_with('"') || text.starts_with('r')) || !text.contains("{self") {
            return None;
        }
        let mut out = String::with_capacity(text.len() + 8);
        let mut changed = false;
        let mut rest = text.as_str();
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..=open]);
            rest = &rest[open + 1..];
            if let Some(after) = rest.strip_prefix('{') {
                out.push('{');
                rest = after;
            } else if let Some(after) = rest.strip_prefix("self")
                && after.starts_with(['}', ':'])
            {
                out.push_str(&self.this.to_string());
                rest = after;
                changed = true;
            }
        }
        out.push_str(rest);
        let mut lit: proc_macro2::Literal = out.parse().ok().filter(|_| changed)?;
        lit.set_span(l.span());
        Some(lit)
    }
}

impl VisitMut for Renamer<'_> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        if let Expr::Path(p) = e
            && p.qself.is_none()
            && p.path.is_ident("self")
        {
            let span = p.path.segments[0].ident.span();
            p.path.segments[0].ident = self.renamed(span);
            return;
        }
        visit_mut::visit_expr_mut(self, e);
    }

    fn visit_macro_mut(&mut self, m: &mut syn::Macro) {
        let format = m
            .path
            .segments
            .last()
            .and_then(|s| format_arg(&s.ident.to_string()));
        m.tokens = self.tokens(m.tokens.clone(), format);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}
