//! Puts the passes together: arguments → validation → signature → body (explicit machine, or
//! one native frame when the body cannot be lowered) → report.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};
use syn::visit_mut::VisitMut;
use syn::{Ident, ItemFn};

use crate::args::{self, Args};
use crate::report::Report;
use crate::sig::{self, FnParts};
use crate::yields::{self, YieldRewriter};

pub(crate) fn structured(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = args::parse(args);
    let parsed = syn::parse2::<ItemFn>(item.clone()).map_err(|_| {
        syn::Error::new(
            Span::call_site(),
            "#[structured] applies to an `async fn` (a free fn, or a method in an impl block)",
        )
    });
    let (args, item) = match (args, parsed) {
        (Ok(a), Ok(i)) => (a, i),
        (Err(e), Ok(i)) => return with_stub(e, &i),
        (_, Err(e)) => {
            let e = match syn::parse2::<syn::TraitItemFn>(item.clone()) {
                Ok(decl) if decl.default.is_none() => syn::Error::new_spanned(
                    &decl.sig,
                    "#[structured] needs a body to compile: put it on the method in each impl",
                ),
                _ => e,
            };
            let mut out = e.to_compile_error();
            out.extend(item);
            return out;
        }
    };
    if let Err(e) = sig::validate(&item) {
        return with_stub(e, &item);
    }
    match expand(&args, item.clone()) {
        Ok(out) => out,
        Err(e) => with_stub(e, &item),
    }
}

/// The error, plus the fn with a body that cannot fail to type-check, so the user sees this
/// one error and not a cascade from a missing fn or from the untouched body.
fn with_stub(e: syn::Error, item: &ItemFn) -> TokenStream {
    let mut stub = item.clone();
    stub.block = syn::parse_quote!({ ::core::panic!() });
    let mut out = e.to_compile_error();
    stub.to_tokens(&mut out);
    out
}

fn expand(args: &Args, mut item: ItemFn) -> syn::Result<TokenStream> {
    let name = item.sig.ident.to_string();
    let slot = Ident::new("__yield_slot", Span::mixed_site());
    let yields = args.yields.as_ref().map(|(_, t)| t);
    let mut report = Report::new(&name);

    // A native frame needs `yield_!` as an await on the slot; the explicit lowering reads the
    // invocations itself, so only check them here.
    let mut check = YieldRewriter::new(|mac| {
        if yields.is_none() {
            Err(yields::not_a_generator(mac))
        } else {
            yields::value(mac).map(|_| syn::parse_quote!(()))
        }
    });
    let mut probe = item.block.clone();
    check.visit_block_mut(&mut probe);
    if let Some(e) = check.errors {
        return Err(e);
    }
    let keep_used = yields::keep_used(&check.paths);

    // An attribute macro below this one (`#[instrument]`, `#[tokio::test]`) expands after it and
    // expects the `async fn` it was written on. On the plain fn returning the machine it fails
    // to compile or, worse, does something else (`#[instrument]` would enter its span only
    // while the future is created). Nor can it get an `async fn` that awaits the machine: a
    // native frame holding a machine is not `Send` by rustc's check of higher-ranked
    // lifetimes (the machine's bounds name its block closures), so `tokio::spawn` refuses it.
    // It gets the fn as written: the body keeps its native frame.
    if yields.is_none()
        && let Some(attr) = item.attrs.iter().find(|a| !is_builtin(a))
    {
        let path = attr.path().to_token_stream().to_string().replace(' ', "");
        report.line(format!(
            "states: 1 native adapter for the whole body (fallback: `#[{path}]` expands after \
             #[structured] and gets the `async fn` as written)"
        ));
        report.print();
        let out = item.to_token_stream();
        return Ok(match args.strict {
            Some(_) => {
                let mut err = syn::Error::new_spanned(
                    attr,
                    format!(
                        "#[structured(strict)]: `#[{path}]` expands after #[structured] and needs \
                         the `async fn` as written, so the body keeps its native frame"
                    ),
                )
                .to_compile_error();
                err.extend(out);
                err
            }
            None => out,
        });
    }

    let parts = sig::split(&item);
    // Strict mode refuses a native frame; the error comes with the native expansion, so the
    // fn still exists and the user sees this one error only.
    let (explicit, strict_error) = match crate::lower::lower(&item, &parts, args, &mut report) {
        Ok(e) => (e, None),
        Err(e) => (None, Some(e)),
    };
    let explicit_mut_self = explicit.is_some() && crate::lower::receiver_is_mut(&item);
    let body = match explicit {
        Some(machine) => machine,
        None => {
            let mut rewrite = YieldRewriter::new(|mac| yields::native_yield(&slot, mac));
            rewrite.visit_block_mut(&mut item.block);
            if let Some(e) = rewrite.errors {
                return Err(e);
            }
            native_body(&item, &parts, yields, &slot)
        }
    };
    report.print();
    // The machine moves `self` into its first block, which binds it `mut`: the signature's
    // `mut` would be unused there.
    let mut parts = parts;
    if explicit_mut_self && let Some(syn::FnArg::Receiver(r)) = parts.sig.inputs.first_mut() {
        r.mutability = None;
    }
    let out = emit(&item, &parts, yields, &quote!(#keep_used #body));
    Ok(match strict_error {
        Some(e) => {
            let mut err = e.to_compile_error();
            err.extend(out);
            err
        }
        None => out,
    })
}

/// The whole body as one native `async move` frame: rustc's own desugaring of `async fn`.
fn native_body(
    item: &ItemFn,
    parts: &FnParts,
    yields: Option<&syn::Type>,
    slot: &Ident,
) -> TokenStream {
    let binds = sig::bind_params(&parts.params);
    let capture_self = parts.receiver.map(|s| {
        let this = Ident::new("self", s);
        quote!(let _ = &#this;)
    });
    // The body's statements go in as they are: the block around a lone expression would be
    // "unnecessary braces" to rustc, a lint at the user's span. Around statements, the
    // user's braces keep the user's edition's drop order (see [`user_braces`]).
    let stmts = &item.block.stmts;
    let body = user_braces(
        item.block.brace_token.span.join(),
        TokenStream::new(),
        stmts,
    );
    let frame = quote!(async move { #capture_self #binds #body });
    match yields {
        None => frame,
        Some(y) => {
            let out = &parts.output;
            let turbofish = if sig::has_impl_trait(y) || sig::has_impl_trait(out) {
                quote!()
            } else {
                quote!(::<#y, #out, _, _>)
            };
            quote!(::structured_async::__private::Generator::new(
                ::structured_async::__private::native_generator #turbofish (move |#slot| #frame)
            ))
        }
    }
}

/// `prefix` (rebinding `let`s) and the statements `stmts` in braces with the span of the
/// user's body braces, or bare when they are a lone expression. The edition of a block's span
/// decides when its tail expression's temporaries drop: before its locals (2024), or after
/// them (2021 and before), where a native `async fn` drops them in the user's crate.
pub(crate) fn user_braces(span: Span, prefix: TokenStream, stmts: &[syn::Stmt]) -> TokenStream {
    if prefix.is_empty() && matches!(stmts, [syn::Stmt::Expr(_, None)]) {
        return quote!(#(#stmts)*);
    }
    spanned_braces(span, quote!(#prefix #(#stmts)*))
}

/// `tokens` in braces carrying `span` (and so its edition: see [`user_braces`]).
pub(crate) fn spanned_braces(span: Span, tokens: TokenStream) -> TokenStream {
    let mut g = proc_macro2::Group::new(proc_macro2::Delimiter::Brace, tokens);
    g.set_span(span);
    quote!(#g)
}

/// Attributes rustc itself reads (lint levels, docs, `inline`, `cfg`, tool attributes), which
/// mean the same on the generated fn; any other outer attribute may be a macro that expects an
/// `async fn` (`cfg_attr` too: it may stand for one).
fn is_builtin(attr: &syn::Attribute) -> bool {
    const BUILTIN: &[&str] = &[
        "allow",
        "warn",
        "deny",
        "forbid",
        "expect",
        "deprecated",
        "must_use",
        "doc",
        "inline",
        "cold",
        "track_caller",
        "cfg",
        "no_mangle",
        "export_name",
        "link_section",
        "target_feature",
    ];
    const TOOLS: &[&str] = &["rustfmt", "clippy", "diagnostic"];
    if matches!(attr.style, syn::AttrStyle::Inner(_)) {
        return true;
    }
    let path = attr.path();
    match (path.segments.first(), path.segments.len()) {
        (Some(first), 1) => BUILTIN.iter().any(|b| first.ident == b),
        (Some(first), _) => TOOLS.iter().any(|t| first.ident == t),
        (None, _) => false,
    }
}

fn emit(
    item: &ItemFn,
    parts: &FnParts,
    yields: Option<&syn::Type>,
    body: &TokenStream,
) -> TokenStream {
    // `#![attr]` at the top of the body stays there: it is not an attribute of the item.
    let (inner, attrs): (Vec<_>, Vec<_>) = item
        .attrs
        .iter()
        .partition(|a| matches!(a.style, syn::AttrStyle::Inner(_)));
    let vis = &item.vis;
    // The user's signature (qualifiers, generics, where-clause) with the new return type.
    let mut sig = parts.sig.clone();
    let ret = sig::return_type(&parts.output, yields);
    sig.output = syn::ReturnType::Type(Default::default(), Box::new(syn::Type::Verbatim(ret)));
    quote! {
        #(#attrs)*
        #[allow(clippy::manual_async_fn)]
        #vis #sig {
            #(#inner)*
            #body
        }
    }
}
