//! The explicit lowering: body → blocks split at each await and yield.

use proc_macro2::TokenStream;
use syn::ItemFn;

use crate::args::Args;
use crate::report::Report;
use crate::sig::FnParts;

/// The explicit machine, or `None` when the body keeps one native frame (the reason goes to
/// the report; strict mode turns it into an error instead).
pub(crate) fn lower(
    _item: &ItemFn,
    _parts: &FnParts,
    args: &Args,
    report: &mut Report,
) -> syn::Result<Option<TokenStream>> {
    let _ = args;
    report.line("states: 1 (native adapter for the whole body)".to_owned());
    Ok(None)
}
