//! The explicit lowering: body → blocks split at each await and `yield_!`.
//!
//! Desugar from:
//! ```text
//! async fn f(n: u32) -> u32 { let a = g(n).await; if a > 1 { h(&a).await; } a }
//! ```
//! into blocks (closures) that take the locals alive at their entry and return a transition:
//! ```text
//! b0 |(n,)|          { Await1(g(n), ()) }                       // g(n) owns nothing local
//! b1 |(), r|         { let a = r; if a > 1 { Goto2((a,)) } else { Goto3((a,)) } }
//! b2 |(a,)|          { Await4(async move { let a = a; let r = h(&a).await; (r, (a,)) }, ()) }
//! b4 |(), (r, (a,))| { discard(r); Goto3((a,)) }
//! b3 |(a,)|          { Return(a) }
//! ```
//! A statement this pass cannot lower (see [`Fallback`]) makes the whole body one native frame.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::visit::Visit;
use syn::visit_mut::{self, VisitMut};
use syn::{Expr, Ident, ItemFn, Stmt};

use crate::args::Args;
use crate::liveness::{Analysis, LocalId, Point, Use, key, leaves_parts};
use crate::machine::{self, BlockOut, Entry};
use crate::report::Report;
use crate::sig::FnParts;
use crate::yields;

mod blocks;
mod control;
mod flags;
mod jumps;
mod regions;
mod stmt;
mod syntax;
#[cfg(test)]
mod tests;

use jumps::{CfRewriter, jump_keys, loop_label, macro_leaves, wrapped_return, wrapped_try};
use syntax::*;

/// Why a body keeps a native frame.
#[derive(Clone)]
pub(crate) struct Fallback {
    pub(crate) span: Span,
    pub(crate) reason: String,
}

fn fallback<T>(span: Span, reason: impl Into<String>) -> Result<T, Fallback> {
    Err(Fallback {
        span,
        // The body's `self` is `__self` inside the machine; the user wrote `self`.
        reason: reason.into().replace("`__self`", "`self`"),
    })
}

/// The explicit machine, or `None` when the body keeps one native frame (the reason goes to
/// the report; strict mode turns it into an error instead).
pub(crate) fn lower(
    item: &ItemFn,
    parts: &FnParts,
    args: &Args,
    report: &mut Report,
) -> syn::Result<Option<TokenStream>> {
    // The lowering is heuristic code over arbitrary input: should it ever panic, the body
    // keeps its native frame rather than the build failing.
    let lowered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        lower_body(item, parts, args)
    }))
    .unwrap_or_else(|_| {
        fallback(
            item.sig.ident.span(),
            "internal error in the lowering (please report it)",
        )
    });
    match lowered {
        Ok((tokens, summary)) => {
            for l in summary {
                report.line(l);
            }
            Ok(Some(tokens))
        }
        Err(f) => {
            if args.strict.is_some() {
                return Err(syn::Error::new(
                    f.span,
                    format!(
                        "#[structured(strict)]: this needs a native frame: {}",
                        f.reason
                    ),
                ));
            }
            report.line(format!(
                "states: 1 native adapter for the whole body (fallback: {})",
                f.reason
            ));
            Ok(None)
        }
    }
}

/// The lowering without the `catch_unwind` of [`lower`], for the fuzz test to see its panics.
#[cfg(test)]
pub(crate) fn lower_uncaught(
    item: &ItemFn,
    parts: &FnParts,
    args: &Args,
) -> Result<(TokenStream, Vec<String>), Fallback> {
    lower_body(item, parts, args)
}

struct LoopCtx {
    label: Option<String>,
    header: usize,
    exit: usize,
}

struct Lowerer<'a> {
    a: &'a Analysis,
    generator: bool,
    names: machine::Names,
    blocks: Vec<Block0>,
    cur: usize,
    /// Names of the locals bound in the current block (the user's, or a hidden one).
    bound: Vec<(LocalId, Ident)>,
    loops: Vec<LoopCtx>,
    items: Vec<TokenStream>,
    adapters: usize,
    /// Control-flow edges (from, to), to order the closures so each block's input type is
    /// fixed by an earlier closure (reverse post-order), and to find dead blocks.
    edges: std::cell::RefCell<Vec<(usize, usize)>>,
    strict: bool,
    /// Native regions made so far, for the report.
    regions: Vec<String>,
    /// How many more bounded regions may be tried (each try lowers the rest of its list).
    budget: usize,
    /// The locals below this are outside the innermost scope that ends with the body's tail
    /// being lowered: the parameters' at the body's level, those in scope at an `if` branch
    /// or `match` arm ending the body (a scope of its own for temporaries in every edition).
    tail_scope: usize,
    /// The span of the body's braces (see [`crate::expand::user_braces`]).
    body_span: Span,
}

/// A block being built: its entry, its input locals, and the names they have in it.
#[derive(Clone)]
struct Block0 {
    entry: Entry,
    input: Vec<LocalId>,
    hidden: Vec<LocalId>,
    from_live: usize,
    code: TokenStream,
    term: Option<TokenStream>,
    /// `term` returns the body's tail expression: the locals below this are outside the
    /// braces of [`machine::BlockOut::user_tail`].
    tail: Option<usize>,
}

/// What [`Lowerer::restore`] copies prefixes of.
struct Saved {
    blocks: Vec<Block0>,
    edges: Vec<(usize, usize)>,
    items: Vec<TokenStream>,
    regions: Vec<String>,
}

/// The lowering's state before a statement, to go back to when it must become a region.
struct Snapshot {
    cur: usize,
    blocks: usize,
    current: Block0,
    bound: Vec<(LocalId, Ident)>,
    edges: usize,
    adapters: usize,
    items: usize,
    loops: usize,
    regions: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// The statements end the fn: their value is its output.
    FnTail,
    /// The statements are a `()` block inside the body.
    Unit,
}

fn lower_body(
    item: &ItemFn,
    parts: &FnParts,
    args: &Args,
) -> Result<(TokenStream, Vec<String>), Fallback> {
    if let Some((_, y)) = &args.yields
        && crate::sig::has_impl_trait(y)
    {
        return fallback(
            y.span(),
            "an `impl Trait` yield type cannot be named for the state machine",
        );
    }
    // Closures cannot bind `self`: the body refers to the receiver as `__self` instead.
    let mut body = item.block.clone();
    let self_ident = parts.receiver.map(|span| Ident::new("__self", span));
    if let Some(this) = &self_ident {
        crate::receiver::rename_self(&mut body, this);
    }
    let flags::Flagged {
        analysis: a,
        n_params,
        locals: flagged,
        params: param_flags,
    } = flags::apply(
        item,
        parts,
        &mut body,
        self_ident.as_ref(),
        args.yields.is_some(),
    )?;
    let mut lw = Lowerer {
        a: &a,
        generator: args.yields.is_some(),
        names: machine::Names::new(),
        blocks: Vec::new(),
        cur: 0,
        bound: Vec::new(),
        loops: Vec::new(),
        items: Vec::new(),
        adapters: 0,
        edges: std::cell::RefCell::new(Vec::new()),
        strict: args.strict.is_some(),
        regions: Vec::new(),
        budget: 256,
        tail_scope: n_params,
        body_span: item.block.brace_token.span.join(),
    };
    // Block 0 takes the arguments as the signature names them and binds the patterns.
    let binds = flags::bind_params(&parts.params, &param_flags);
    lw.blocks.push(Block0 {
        entry: Entry::Start(binds),
        input: Vec::new(),
        hidden: Vec::new(),
        from_live: parts.params.len() + usize::from(parts.receiver.is_some()),
        code: TokenStream::new(),
        term: None,
        tail: None,
    });
    lw.bound = (0..n_params)
        .map(|id| (id, a.locals[id].name.clone()))
        .collect();
    lw.lower_stmts(&body.stmts, Ctx::FnTail)?;
    let mut outer: Vec<Ident> = parts.params.iter().map(|p| p.outer.clone()).collect();
    // Unpolled, a native future drops its arguments in declaration order: keep them so.
    let init = match (&self_ident, parts.receiver) {
        (Some(this), Some(span)) => {
            let receiver = Ident::new("self", span);
            let init = quote!((#receiver, #(#outer,)*));
            outer.insert(0, this.clone());
            init
        }
        _ => quote!((#(#outer,)*)),
    };
    let mut out_blocks = Vec::new();
    // `mut self` stays mutable in the body.
    let start_input: Vec<(Ident, bool)> = outer
        .iter()
        .enumerate()
        .map(|(i, o)| {
            (
                o.clone(),
                i == 0 && self_ident.is_some() && receiver_is_mut(item),
            )
        })
        .collect();
    let n_blocks = lw.blocks.len();
    let n_awaits = lw
        .blocks
        .iter()
        .filter(|b| matches!(b.entry, Entry::Await(_)))
        .count();
    let n_yields = lw
        .blocks
        .iter()
        .filter(|b| matches!(b.entry, Entry::Yield))
        .count();
    let blocks = std::mem::take(&mut lw.blocks);
    for (k, b) in blocks.into_iter().enumerate() {
        let (input, params) = if k == 0 {
            (start_input.clone(), start_input.len())
        } else {
            let names = block_names(&a, &b.input, &b.hidden);
            let outside = b.tail.unwrap_or(n_params);
            let params = names.iter().take_while(|(id, _)| *id < outside).count();
            let input = names
                .into_iter()
                .map(|(id, name)| (name, a.locals[id].mutable))
                .collect();
            (input, params)
        };
        let user_tail = b.tail.map(|_| (lw.body_span, params));
        out_blocks.push(BlockOut {
            entry: b.entry,
            input,
            from_live: b.from_live,
            code: b.code,
            term: b.term,
            user_tail,
        });
    }
    let yields = args.yields.as_ref().map(|(_, t)| t);
    let order = reverse_post_order(n_blocks, &lw.edges.borrow());
    let tokens = machine::emit(
        &lw.names,
        &out_blocks,
        &order,
        &init,
        &parts.output,
        yields,
        &lw.items,
    );
    let fallbacks = if lw.regions.is_empty() {
        "none".to_owned()
    } else {
        lw.regions.join("; ")
    };
    let mut summary = vec![format!(
        "states: {} (start, {} await, {} yield), blocks: {}, adapters: {}, fallbacks: {}",
        1 + n_awaits + n_yields,
        n_awaits,
        n_yields,
        n_blocks,
        lw.adapters,
        fallbacks
    )];
    if !flagged.is_empty() {
        let names: Vec<String> = flagged
            .iter()
            .map(|&id| format!("`{}`", a.local(id).name))
            .collect();
        summary.push(format!(
            "drop flags (held as `Option`): {}",
            names.join(", ")
        ));
    }
    Ok((tokens, summary))
}

/// The liveness of `body`, the receiver and parameters declared first; for each of those
/// locals, the parameter declaring it (`None` for the receiver). A `flagged` parameter is a
/// mutable `Option` (see [`flags`]).
fn analyze(
    item: &ItemFn,
    parts: &FnParts,
    body: &syn::Block,
    this: Option<&Ident>,
    flagged: &[bool],
) -> Result<(Analysis, Vec<Option<usize>>), Fallback> {
    let mut a = Analysis::default();
    let mut param_of = Vec::new();
    if let Some(this) = this {
        let mut pat = ident_pat(this);
        if let syn::Pat::Ident(pi) = &mut pat
            && receiver_is_mut(item)
        {
            pi.mutability = Some(Default::default());
        }
        a.declare_param(&pat, receiver_type(item).as_ref());
        param_of.push(None);
    }
    for (i, p) in parts.params.iter().enumerate() {
        match &p.pat {
            // `_: T` still moves the argument in; it drops when the body ends.
            syn::Pat::Wild(_) => a.declare_param(&ident_pat(&p.outer), None),
            pat if !p.simple && leaves_parts(pat) => {
                return fallback(
                    pat.span(),
                    "a parameter pattern with `_` or `..` (its unbound parts drop at the end)",
                );
            }
            syn::Pat::Ident(pi) if flagged[i] => {
                let mut pi = pi.clone();
                pi.mutability = Some(Default::default());
                a.declare_param(&syn::Pat::Ident(pi), None);
            }
            pat => a.declare_param(pat, Some(&p.ty)),
        }
        param_of.resize(a.locals.len(), Some(i));
    }
    a.visit_block(body);
    Ok((a, param_of))
}

/// Whether `c` takes the value out of a drop flag (written by [`flags`]).
pub(crate) fn is_flag_take(c: &syn::ExprCall) -> bool {
    matches!(&*c.func, Expr::Path(p)
        if p.path.segments.len() == 3 && p.path.segments[2].ident == "flag_take"
            && p.path.segments[1].ident == "__private")
}

/// Blocks reachable from the start, each after one of its predecessors; `None` for dead ones.
fn reverse_post_order(n: usize, edges: &[(usize, usize)]) -> Vec<Option<usize>> {
    let mut seen = vec![false; n];
    let mut post = Vec::new();
    let mut stack = vec![(0usize, 0usize)];
    seen[0] = true;
    while let Some(&mut (node, ref mut next)) = stack.last_mut() {
        let succ: Vec<usize> = edges.iter().filter(|e| e.0 == node).map(|e| e.1).collect();
        if let Some(&s) = succ.get(*next) {
            *next += 1;
            if !seen[s] {
                seen[s] = true;
                stack.push((s, 0));
            }
        } else {
            post.push(node);
            stack.pop();
        }
    }
    post.reverse();
    let mut position = vec![None; n];
    for (i, &b) in post.iter().enumerate() {
        position[b] = Some(i);
    }
    position
}

fn receiver_type(item: &ItemFn) -> Option<syn::Type> {
    match item.sig.inputs.first() {
        Some(syn::FnArg::Receiver(r)) => Some((*r.ty).clone()),
        _ => None,
    }
}

/// A `mut self` receiver (not `&mut self`).
pub(crate) fn receiver_is_mut(item: &ItemFn) -> bool {
    matches!(item.sig.inputs.first(), Some(syn::FnArg::Receiver(r)) if r.reference.is_none() && r.mutability.is_some())
}

fn ident_pat(ident: &Ident) -> syn::Pat {
    syn::Pat::Ident(syn::PatIdent {
        attrs: Vec::new(),
        by_ref: None,
        mutability: None,
        ident: ident.clone(),
        subpat: None,
    })
}

/// The names a block binds its input with: the user's, unless shadowed by a newer local of
/// the same name in the input or about to be shadowed by the block's first statement.
fn block_names(a: &Analysis, input: &[LocalId], hidden: &[LocalId]) -> Vec<(LocalId, Ident)> {
    input
        .iter()
        .map(|&id| {
            let l = a.local(id);
            let shadowed = hidden.contains(&id)
                || input
                    .iter()
                    .any(|&o| o != id && a.local(o).name == l.name && a.local(o).decl > l.decl);
            let name = if shadowed {
                format_ident!("__shadowed{}", id, span = Span::mixed_site())
            } else {
                l.name.clone()
            };
            (id, name)
        })
        .collect()
}
