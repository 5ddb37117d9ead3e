//! Validation and the signature transform.
//!
//! Input:  `#[attrs] vis async fn name<G>(self?, p0: T0, (a, b): T1) -> R where W { body }`
//! Output: `#[attrs] vis fn name<G>(self?, p0: T0, __arg1: T1) -> impl Future<Output = R> where W`
//! plus the statements that open the body exactly as rustc's own desugaring of `async fn`
//! does: `let p0 = p0; let __arg1 = __arg1; let (a, b) = __arg1;` — every argument moves
//! into the coroutine, and they drop after the body's locals, in reverse order.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{FnArg, Ident, ItemFn, Pat, PatIdent, ReturnType, Signature, Type};

/// One argument as the body sees it.
pub(crate) struct Param {
    /// The name it has in the generated signature (the user's, or `__argN`).
    pub(crate) outer: Ident,
    /// The user's pattern, bound from `outer` at the start of the body.
    pub(crate) pat: Pat,
    /// Whether `pat` is a plain `x`/`mut x` binding (one statement instead of two).
    pub(crate) simple: bool,
    /// The declared type.
    pub(crate) ty: Type,
}

/// The parts of the function the lowering needs.
pub(crate) struct FnParts {
    pub(crate) sig: Signature,
    /// `Some(span of self)` when the function has a receiver.
    pub(crate) receiver: Option<Span>,
    pub(crate) params: Vec<Param>,
    /// The declared output type, `()` when omitted.
    pub(crate) output: Type,
}

pub(crate) fn validate(item: &ItemFn) -> syn::Result<()> {
    let sig = &item.sig;
    let mut errors: Option<syn::Error> = None;
    let mut push = |e: syn::Error| match &mut errors {
        Some(all) => all.combine(e),
        None => errors = Some(e),
    };
    if sig.asyncness.is_none() {
        push(syn::Error::new_spanned(
            sig.fn_token,
            "#[structured] applies to an `async fn`; write `async fn`. If it is written so, an \
             attribute macro that expanded before #[structured] made it a plain fn: write \
             #[structured] above `#[tokio::main]`, `#[tokio::test]` and the like (methods of \
             an `#[async_trait]` impl cannot be lowered)",
        ));
    }
    if let Some(c) = &sig.constness {
        push(syn::Error::new_spanned(
            c,
            "#[structured] cannot be used on a `const fn`",
        ));
    }
    if let Some(v) = &sig.variadic {
        push(syn::Error::new_spanned(
            v,
            "#[structured] does not support variadic arguments",
        ));
    }
    if let Some(abi) = &sig.abi {
        push(syn::Error::new_spanned(
            abi,
            "#[structured] does not support an `extern` ABI",
        ));
    }
    errors.map_or(Ok(()), Err)
}

pub(crate) fn split(item: &ItemFn) -> FnParts {
    let mut sig = item.sig.clone();
    sig.asyncness = None;
    let mut receiver = None;
    let mut params = Vec::new();
    for (index, arg) in sig.inputs.iter_mut().enumerate() {
        match arg {
            FnArg::Receiver(r) => receiver = Some(r.self_token.span),
            FnArg::Typed(pt) => {
                let (outer, simple) = match &*pt.pat {
                    Pat::Ident(PatIdent {
                        by_ref: None,
                        subpat: None,
                        ident,
                        ..
                    }) if ident != "self" => (ident.clone(), true),
                    _ => (
                        format_ident!("__arg{}", index, span = Span::mixed_site()),
                        false,
                    ),
                };
                params.push(Param {
                    outer: outer.clone(),
                    pat: (*pt.pat).clone(),
                    simple,
                    ty: (*pt.ty).clone(),
                });
                // The signature binds a plain name; `mut` and patterns apply inside the body.
                *pt.pat = Pat::Ident(PatIdent {
                    attrs: Vec::new(),
                    by_ref: None,
                    mutability: None,
                    ident: outer,
                    subpat: None,
                });
            }
        }
    }
    name_impl_trait_lifetimes(&mut sig);
    let output = match &sig.output {
        ReturnType::Default => syn::parse_quote!(()),
        // `impl Future<Output = !>` is not stable Rust; the same type under a name is.
        ReturnType::Type(_, ty) if matches!(**ty, Type::Never(_)) => {
            syn::parse_quote_spanned!(ty.span()=> ::structured_async::__private::Never)
        }
        ReturnType::Type(_, ty) => (**ty).clone(),
    };
    FnParts {
        sig,
        receiver,
        params,
        output,
    }
}

// Input:  `async fn f(it: impl Iterator<Item = &u32>, g: impl Fn(&str) -> &str)`
// Output: `fn f<'__l0>(it: impl Iterator<Item = &'__l0 u32>, g: impl Fn(&str) -> &str)`
// An `async fn` may elide a lifetime inside an argument's `impl Trait`; a plain fn may not.
// `Fn(..)` sugar keeps its elisions: they are higher-ranked, not the fn's.
fn name_impl_trait_lifetimes(sig: &mut Signature) {
    struct Namer {
        in_impl: usize,
        named: Vec<syn::Lifetime>,
    }
    impl Namer {
        fn fresh(&mut self, span: Span) -> syn::Lifetime {
            let lt = syn::Lifetime::new(&format!("'__structured_l{}", self.named.len()), span);
            self.named.push(lt.clone());
            lt
        }
    }
    impl syn::visit_mut::VisitMut for Namer {
        fn visit_type_impl_trait_mut(&mut self, t: &mut syn::TypeImplTrait) {
            self.in_impl += 1;
            syn::visit_mut::visit_type_impl_trait_mut(self, t);
            self.in_impl -= 1;
        }
        fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
            if self.in_impl > 0 && r.lifetime.is_none() {
                r.lifetime = Some(self.fresh(r.and_token.span));
            }
            syn::visit_mut::visit_type_reference_mut(self, r);
        }
        fn visit_lifetime_mut(&mut self, l: &mut syn::Lifetime) {
            if self.in_impl > 0 && l.ident == "_" {
                *l = self.fresh(l.span());
            }
        }
        fn visit_parenthesized_generic_arguments_mut(
            &mut self,
            _: &mut syn::ParenthesizedGenericArguments,
        ) {
        }
    }
    let mut namer = Namer {
        in_impl: 0,
        named: Vec::new(),
    };
    for arg in &mut sig.inputs {
        if let FnArg::Typed(pt) = arg {
            syn::visit_mut::VisitMut::visit_type_mut(&mut namer, &mut pt.ty);
        }
    }
    // Lifetimes come before the other generic parameters.
    let at = sig.generics.lifetimes().count();
    for (i, lt) in namer.named.into_iter().enumerate() {
        let param = syn::GenericParam::Lifetime(syn::LifetimeParam::new(lt));
        sig.generics.params.insert(at + i, param);
    }
    if sig.generics.lt_token.is_none() && !sig.generics.params.is_empty() {
        sig.generics.lt_token = Some(Default::default());
        sig.generics.gt_token = Some(Default::default());
    }
}

/// The statements that move every argument into the coroutine, as rustc's `async fn` does.
pub(crate) fn bind_params(params: &[Param]) -> TokenStream {
    let mut out = TokenStream::new();
    for p in params {
        let outer = &p.outer;
        let pat = &p.pat;
        if p.simple {
            out.extend(quote_spanned!(pat.span()=>
                #[allow(clippy::redundant_locals, unused_mut)] let #pat = #outer;
            ));
        } else {
            out.extend(quote!(
                #[allow(clippy::redundant_locals)] let #outer = #outer;
                #[allow(unused_mut)] let #pat = #outer;
            ));
        }
    }
    out
}

/// Whether a type mentions `impl Trait` (which cannot be written in a turbofish).
pub(crate) fn has_impl_trait(ty: &Type) -> bool {
    struct Finder(bool);
    impl<'ast> syn::visit::Visit<'ast> for Finder {
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {
            self.0 = true;
        }
    }
    let mut f = Finder(false);
    syn::visit::Visit::visit_type(&mut f, ty);
    f.0
}

/// The return type of the generated fn.
pub(crate) fn return_type(output: &Type, yields: Option<&Type>) -> TokenStream {
    match yields {
        None => quote!(impl ::core::future::Future<Output = #output>),
        Some(y) => {
            let is_unit = matches!(output, Type::Tuple(t) if t.elems.is_empty());
            if is_unit {
                quote!(impl ::structured_async::__private::Coroutine<Yield = #y, Output = ()>
                    + ::structured_async::__private::Stream<Item = #y>)
            } else {
                quote!(impl ::structured_async::__private::Coroutine<Yield = #y, Output = #output>)
            }
        }
    }
}
