//! Proc macros of structured-async. Use them through the `structured-async` facade, which
//! documents them; this crate only holds the entry points.

mod args;
mod expand;
#[cfg(test)]
mod fuzz;
mod liveness;
mod lower;
mod machine;
mod receiver;
mod report;
mod sig;
mod yields;

use proc_macro::TokenStream;

/// Compiles an `async fn` body into an explicit state machine. See the facade's docs.
#[proc_macro_attribute]
pub fn structured(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::structured(args.into(), item.into()).into()
}

/// Yields a value from a `#[structured(yields = T)]` generator. See the facade's docs.
///
/// The attribute rewrites every invocation in its body; one that reaches this entry point is
/// outside any generator, which is an error.
#[proc_macro]
pub fn yield_(input: TokenStream) -> TokenStream {
    yields::stray(input.into()).into()
}
