//! `yield_!(value)` inside a `#[structured(yields = T)]` body.
//!
//! The attribute sees the invocation before it expands, so it rewrites it: into a transition of
//! the state machine when the body is lowered explicitly, or, in a native frame, into
//! `__yield_slot.yield_(value).await`. Invocations inside closures, `async` blocks and nested
//! items belong to those and are left alone; they expand to the `yield_!` macro's own error.

use proc_macro2::{Span, TokenStream};
use quote::quote_spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Macro, Stmt};

/// Whether a macro invocation is `yield_!` (by any path ending in `yield_`).
pub(crate) fn is_yield(mac: &Macro) -> bool {
    mac.path
        .segments
        .last()
        .is_some_and(|s| s.ident == "yield_")
}

/// The yielded expression of a `yield_!(value)` invocation.
pub(crate) fn value(mac: &Macro) -> syn::Result<Expr> {
    if mac.tokens.is_empty() {
        return Err(syn::Error::new_spanned(
            mac,
            "`yield_!` needs a value: `yield_!(value)`",
        ));
    }
    mac.parse_body::<Expr>()
        .map_err(|e| syn::Error::new(e.span(), "`yield_!` takes one expression: `yield_!(value)`"))
}

/// Rewrites every `yield_!` that belongs to the body itself with `rewrite`, collecting errors.
pub(crate) struct YieldRewriter<F: FnMut(&Macro) -> syn::Result<Expr>> {
    pub(crate) rewrite: F,
    pub(crate) errors: Option<syn::Error>,
    /// The path of each distinct `yield_!` seen, so the expansion can keep the user's import
    /// of it used.
    pub(crate) paths: Vec<syn::Path>,
}

impl<F: FnMut(&Macro) -> syn::Result<Expr>> YieldRewriter<F> {
    pub(crate) fn new(rewrite: F) -> Self {
        YieldRewriter {
            rewrite,
            errors: None,
            paths: Vec::new(),
        }
    }

    fn replace(&mut self, mac: &Macro) -> Option<Expr> {
        if !is_yield(mac) {
            return None;
        }
        if !self.paths.contains(&mac.path) {
            self.paths.push(mac.path.clone());
        }
        match (self.rewrite)(mac) {
            Ok(e) => Some(e),
            Err(e) => {
                match &mut self.errors {
                    Some(all) => all.combine(e),
                    None => self.errors = Some(e),
                }
                None
            }
        }
    }
}

impl<F: FnMut(&Macro) -> syn::Result<Expr>> VisitMut for YieldRewriter<F> {
    fn visit_expr_mut(&mut self, e: &mut Expr) {
        match e {
            Expr::Closure(_) | Expr::Async(_) => {}
            Expr::Macro(m) => {
                if let Some(new) = self.replace(&m.mac) {
                    *e = new;
                }
            }
            _ => visit_mut::visit_expr_mut(self, e),
        }
    }

    fn visit_stmt_mut(&mut self, s: &mut Stmt) {
        if let Stmt::Macro(m) = s {
            if let Some(new) = self.replace(&m.mac) {
                let semi = m.semi_token;
                *s = Stmt::Expr(new, semi.or(Some(Default::default())));
            }
            return;
        }
        visit_mut::visit_stmt_mut(self, s);
    }

    fn visit_item_mut(&mut self, _: &mut syn::Item) {}
}

/// `yield_!(@used);` for each path, which expands to nothing.
pub(crate) fn keep_used(paths: &[syn::Path]) -> TokenStream {
    paths.iter().map(|p| quote::quote!(#p!(@used);)).collect()
}

/// `__yield_slot.yield_(value).await`, the native-frame form of `yield_!(value)`.
pub(crate) fn native_yield(slot: &syn::Ident, mac: &Macro) -> syn::Result<Expr> {
    let v = value(mac)?;
    Ok(syn::parse_quote!(#slot.yield_(#v).await))
}

/// The error a `yield_!` gets when the fn is not a generator.
pub(crate) fn not_a_generator(mac: &Macro) -> syn::Error {
    syn::Error::new_spanned(
        &mac.path,
        "`yield_!` needs a generator: write `#[structured(yields = T)]` on this fn",
    )
}

/// What a stray `yield_!` (outside any `#[structured(yields = T)]` body) expands to.
pub(crate) fn stray(tokens: TokenStream) -> TokenStream {
    // `yield_!(@used)`: emitted by the attribute so the user's `use` of `yield_` stays used.
    if tokens.to_string() == "@ used" {
        return TokenStream::new();
    }
    quote_spanned!(Span::call_site()=> ::core::compile_error!(
        "`yield_!` can only be used directly in the body of a `#[structured(yields = T)]` async fn, not in a closure, an `async` block or an ordinary fn"
    ))
}
