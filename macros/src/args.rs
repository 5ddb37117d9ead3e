//! The attribute's arguments: `#[structured]`, `#[structured(strict)]`,
//! `#[structured(yields = T)]`, or both separated by a comma.

use proc_macro2::{Span, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::{Ident, Token, Type};

/// What the attribute was asked to do.
pub(crate) struct Args {
    /// Refuse regions that need a native frame instead of falling back to one.
    pub(crate) strict: Option<Span>,
    /// The generator's yield type, with the span of the `yields` keyword.
    pub(crate) yields: Option<(Span, Type)>,
}

pub(crate) fn parse(tokens: TokenStream) -> syn::Result<Args> {
    let parser = |input: ParseStream| {
        let mut args = Args {
            strict: None,
            yields: None,
        };
        while !input.is_empty() {
            let key: Ident = input
                .parse()
                .map_err(|e| syn::Error::new(e.span(), "expected `strict` or `yields = Type`"))?;
            if key == "strict" {
                if args.strict.is_some() {
                    return Err(syn::Error::new_spanned(&key, "`strict` is given twice"));
                }
                args.strict = Some(key.span());
            } else if key == "yields" {
                if args.yields.is_some() {
                    return Err(syn::Error::new_spanned(&key, "`yields` is given twice"));
                }
                if !input.peek(Token![=]) {
                    return Err(syn::Error::new_spanned(
                        &key,
                        "`yields` needs a type: `yields = T`",
                    ));
                }
                input.parse::<Token![=]>()?;
                let ty: Type = input.parse().map_err(|e| {
                    syn::Error::new(e.span(), "expected the yielded type after `yields =`")
                })?;
                args.yields = Some((key.span(), ty));
            } else {
                return Err(syn::Error::new_spanned(
                    &key,
                    format!("unknown argument `{key}`; expected `strict` or `yields = Type`"),
                ));
            }
            if input.is_empty() {
                break;
            }
            input
                .parse::<Token![,]>()
                .map_err(|e| syn::Error::new(e.span(), "expected `,` between arguments"))?;
        }
        Ok(args)
    };
    parser.parse2(tokens)
}
