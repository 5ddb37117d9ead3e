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

    fn tokens(&self, tokens: TokenStream) -> TokenStream {
        let mut out = Vec::new();
        let all: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, t) in all.iter().enumerate() {
            let path_start =
                matches!(all.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == ':');
            out.push(match t {
                TokenTree::Ident(id) if id == "self" && !path_start => {
                    TokenTree::Ident(self.renamed(id.span()))
                }
                TokenTree::Group(g) => {
                    let mut ng = Group::new(g.delimiter(), self.tokens(g.stream()));
                    ng.set_span(g.span());
                    TokenTree::Group(ng)
                }
                other => other.clone(),
            });
        }
        out.into_iter().collect()
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
        m.tokens = self.tokens(m.tokens.clone());
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}
