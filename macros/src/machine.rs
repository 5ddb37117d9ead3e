//! Emits the state machine of an explicitly lowered body: the state enum, the `Transition`
//! enum, the block closures and the driver that runs them.
//!
//! Output (for blocks `b0` = start, `b1` = goto target, `b2` = resume after an await that
//! `b0` creates):
//! ```text
//! pin_project! { enum State<L0, L2, F2> { Start { live: L0 }, Await2 { #[pin] fut: F2, live: L2 }, Done } }
//! enum Transition<L1, L2, F2, R> { Goto1(L1), Await2(F2, L2), Return(R) }
//! struct Machine<L0, L1, L2, O2, R, B0, B1, B2> where B0: Out<L0>, <B0 as Out<L0>>::Out: Parts {
//!     #[pin] state: State<L0, L2, <<B0 as Out<L0>>::Out as Parts>::F2>, blocks: (B0, B1, B2) }
//! impl<…, F2> Future for Machine<…> where B0: Out<L0, Out = Transition<L1, L2, F2, R>>,
//!     B1: Out<L1, Out = Transition<L1, L2, Infallible, R>>, F2: Future, F2: PollOut<O2>, … { poll:
//!     resume the state's block (polling its future first), match that block's transition,
//!     follow gotos (a `Next` enum of L's) until an await/yield is stored or a return completes }
//! new(PhantomData::<R>, (args…), b0, b1, b2)   // where B2: FnMut(L2, F2::Output) -> Transition<…>, …
//! ```
//! Each block returns the transition enum with only the futures it creates as themselves (the
//! others `Infallible`), and the machine reaches an awaited future's type only through the
//! output of the block that creates it: its type arguments name each awaited future once (in
//! that closure's signature). Naming it in several arguments made rustc spell out nested
//! opaque types once per mention, so compile time grew exponentially along a chain of
//! machines awaiting machines.
//!
//! The driver's bounds on an awaited future are trait bounds only (`F2: Future` and
//! `F2: PollOut<O2>`, a blanket impl for every future), never `F2: Future<Output = O2>`:
//! rustc proves a trait bound on a concrete type once and caches it, but re-proves an
//! `Output = …` bound on each use, and proving one on an awaited machine brings in that
//! machine's own bounds, and so on down a chain. Each machine's driver redid that whole walk,
//! so compile time grew faster than the square of a chain's depth (a 400-level chain of
//! trait-method levels: 56 s of monomorphization, now 4 s).
//!
//! Every type is a generic parameter (or a projection of one) fixed by inference: each
//! closure's input tuple is the value an earlier closure put in its `Transition`. Locals sit in
//! each tuple newest first, so dropping a state (cancellation) drops them in reverse
//! declaration order, after the in-flight future, as a native frame would.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::{Ident, Type};

/// How control enters a block.
#[derive(Clone)]
pub(crate) enum Entry {
    /// The first block: the arguments, bound as rustc's `async fn` desugaring binds them.
    Start(TokenStream),
    /// From another block, in the same poll.
    Goto,
    /// After its await completed; `binder` is the pattern for the adapter's output.
    Await(TokenStream),
    /// When resumed after a yield.
    Yield,
}

pub(crate) struct BlockOut {
    pub(crate) entry: Entry,
    /// The input tuple's bindings in declaration order: name and `mut`.
    pub(crate) input: Vec<(Ident, bool)>,
    /// How many of `input` (the oldest) come in the live tuple; the rest come back from an
    /// adapter, bound by the `Await` binder.
    pub(crate) from_live: usize,
    pub(crate) code: TokenStream,
    pub(crate) term: Option<TokenStream>,
    /// When `term` returns the body's tail expression: the span of the body's braces and how
    /// many of `input` (the oldest) are parameters. The other locals, the code and the term
    /// go in braces with that span, so the tail's temporaries drop before those locals or
    /// after them as the user's edition says, and before the parameters, as natively.
    pub(crate) user_tail: Option<(Span, usize)>,
}

pub(crate) struct Names {
    pub(crate) state: Ident,
    pub(crate) proj: Ident,
    pub(crate) repl: Ident,
    pub(crate) tr: Ident,
    pub(crate) machine: Ident,
}

impl Names {
    pub(crate) fn new() -> Self {
        let s = Span::mixed_site();
        Names {
            state: Ident::new("__StructuredState", s),
            proj: Ident::new("__StructuredStateProj", s),
            repl: Ident::new("__StructuredStateReplace", s),
            tr: Ident::new("__StructuredTransition", s),
            machine: Ident::new("__StructuredMachine", s),
        }
    }
}

/// `(xn, …, x1,)`: newest first.
pub(crate) fn pack(names: &[Ident]) -> TokenStream {
    let rev = names.iter().rev();
    quote!((#(#rev,)*))
}

pub(crate) fn emit(
    n: &Names,
    blocks: &[BlockOut],
    order: &[Option<usize>],
    init: &TokenStream,
    output: &Type,
    yields: Option<&Type>,
    items: &[TokenStream],
) -> TokenStream {
    let Names {
        state,
        proj,
        repl,
        tr,
        machine,
    } = n;
    let ms = Span::mixed_site();
    let out_trait = Ident::new("__StructuredOut", ms);
    let resume_trait = Ident::new("__StructuredResumeOut", ms);
    let parts = Ident::new("__StructuredParts", ms);
    let poll_out = Ident::new("__StructuredPollOut", ms);
    let next = Ident::new("__StructuredNext", ms);
    let l: Vec<Ident> = (0..blocks.len())
        .map(|k| format_ident!("__L{}", k))
        .collect();
    let b: Vec<Ident> = (0..blocks.len())
        .map(|k| format_ident!("__B{}", k))
        .collect();
    let f: Vec<Ident> = (0..blocks.len())
        .map(|k| format_ident!("__F{}", k))
        .collect();
    let o: Vec<Ident> = (0..blocks.len())
        .map(|k| format_ident!("__O{}", k))
        .collect();
    let part: Vec<Ident> = (0..blocks.len()).map(|k| format_ident!("F{}", k)).collect();
    let awaits: Vec<usize> = (0..blocks.len())
        .filter(|&k| matches!(blocks[k].entry, Entry::Await(_)))
        .collect();
    let yields_at: Vec<usize> = (0..blocks.len())
        .filter(|&k| matches!(blocks[k].entry, Entry::Yield))
        .collect();
    let gotos: Vec<usize> = (0..blocks.len())
        .filter(|&k| matches!(blocks[k].entry, Entry::Goto))
        .collect();
    // Which live block creates each await: the one whose code names its `Await` variant.
    let mut creator: Vec<Option<usize>> = vec![None; blocks.len()];
    let tr_name = tr.to_string();
    for (j, block) in blocks.iter().enumerate() {
        if order[j].is_none() {
            continue;
        }
        let mut found = Vec::new();
        scan_awaits(block.code.clone(), &tr_name, &mut found);
        if let Some(term) = &block.term {
            scan_awaits(term.clone(), &tr_name, &mut found);
        }
        for k in found {
            if k < blocks.len() && creator[k].is_none() && awaits.contains(&k) {
                creator[k] = Some(j);
            }
        }
    }
    let is_resume = |j: usize| matches!(blocks[j].entry, Entry::Await(_));
    let y_param = yields.map(|_| quote!(__Y,));
    let l0 = &l[0];
    let fs: Vec<&Ident> = awaits.iter().map(|&k| &f[k]).collect();
    let os: Vec<&Ident> = awaits.iter().map(|&k| &o[k]).collect();
    let created_fs: Vec<&Ident> = awaits
        .iter()
        .filter(|&&k| creator[k].is_some())
        .map(|&k| &f[k])
        .collect();
    let lt = &l[1..];
    let tr_params = quote!(#(#lt,)* #(#fs,)* #y_param __R);
    // Block j's transition: only the futures j creates are named, the others are `Infallible`.
    let tr_of = |j: usize| {
        let gs = awaits.iter().map(|&k| {
            if creator[k] == Some(j) {
                let fk = &f[k];
                quote!(#fk)
            } else {
                quote!(::core::convert::Infallible)
            }
        });
        quote!(#tr<#(#lt,)* #(#gs,)* #y_param __R>)
    };
    // The trait through which block j's output type is projected.
    let out_path = |j: usize| {
        let lj = &l[j];
        if is_resume(j) {
            let oj = &o[j];
            quote!(#resume_trait<#lj, #oj>)
        } else {
            quote!(#out_trait<#lj>)
        }
    };
    // The type of await k's future as the machine names it: a projection of its creator's
    // output, so the future's (often opaque, deeply nested) type is named only once.
    let fut_in_machine = |k: usize| match creator[k] {
        Some(j) => {
            let (bj, p, pk) = (&b[j], out_path(j), &part[k]);
            quote!(<<#bj as #p>::Out as #parts>::#pk)
        }
        None => {
            let ok = &o[k];
            quote!(::core::future::Pending<#ok>)
        }
    };
    let fut_in_impl = |k: usize| match creator[k] {
        Some(_) => {
            let fk = &f[k];
            quote!(#fk)
        }
        None => {
            let ok = &o[k];
            quote!(::core::future::Pending<#ok>)
        }
    };

    // The state: start, one variant per suspension point, done.
    let state_params: Vec<&Ident> = std::iter::once(&l[0])
        .chain(awaits.iter().chain(&yields_at).map(|&k| &l[k]))
        .collect();
    let state_variants = awaits.iter().map(|&k| {
        let v = format_ident!("Await{}", k);
        let (fk, lk) = (&f[k], &l[k]);
        quote!(#v { #[pin] fut: #fk, live: #lk },)
    });
    let yield_variants = yields_at.iter().map(|&k| {
        let v = format_ident!("Yield{}", k);
        let lk = &l[k];
        quote!(#v { live: #lk },)
    });
    let state_generics = quote!(#(#state_params,)* #(#fs,)*);
    let state_futs = awaits.iter().map(|&k| fut_in_machine(k));
    let state_ty = quote!(#state<#(#state_params,)* #(#state_futs,)*>);

    let tr_variants = gotos
        .iter()
        .map(|&k| {
            let v = format_ident!("Goto{}", k);
            let lk = &l[k];
            quote!(#v(#lk),)
        })
        .chain(awaits.iter().map(|&k| {
            let v = format_ident!("Await{}", k);
            let (fk, lk) = (&f[k], &l[k]);
            quote!(#v(#fk, #lk),)
        }))
        .chain(yields_at.iter().map(|&k| {
            let v = format_ident!("Yield{}", k);
            let lk = &l[k];
            quote!(#v(__Y, #lk),)
        }));
    let part_decls = awaits.iter().map(|&k| {
        let pk = &part[k];
        quote!(type #pk;)
    });
    let part_defs = awaits.iter().map(|&k| {
        let (pk, fk) = (&part[k], &f[k]);
        quote!(type #pk = #fk;)
    });

    // `new`: closures' signatures, as inference fixes them.
    let bounds = (0..blocks.len()).map(|k| {
        let (bk, lk, tk) = (&b[k], &l[k], tr_of(k));
        match blocks[k].entry {
            Entry::Await(_) => {
                let fk = fut_in_impl(k);
                let ok = &o[k];
                quote!(#fk: ::core::future::Future<Output = #ok>,
                    #bk: ::core::ops::FnMut(#lk, <#fk as ::core::future::Future>::Output) -> #tk,)
            }
            _ => quote!(#bk: ::core::ops::FnMut(#lk) -> #tk,),
        }
    });
    let bounds: TokenStream = bounds.collect();
    // The impl binds each block's output to its transition, which names its futures as
    // parameters of the impl (not of the machine's type).
    let impl_bounds = (0..blocks.len()).map(|k| {
        let (bk, lk, tk) = (&b[k], &l[k], tr_of(k));
        match blocks[k].entry {
            Entry::Await(_) => {
                let fk = fut_in_impl(k);
                let ok = &o[k];
                // `PollOut` alone would do for the body; `Future` first lets rustc prove a
                // chain of machines one level per step (with `PollOut` alone it takes two,
                // which halves the depth the default recursion limit allows).
                quote!(#fk: ::core::future::Future, #fk: #poll_out<#ok>,
                    #bk: #resume_trait<#lk, #ok, Out = #tk>,)
            }
            _ => quote!(#bk: #out_trait<#lk, Out = #tk>,),
        }
    });
    let impl_bounds: TokenStream = impl_bounds.collect();
    // The machine's own bounds: what its state's projections need.
    let machine_bounds = (0..blocks.len())
        .filter(|&j| creator.contains(&Some(j)))
        .map(|j| {
            let (bj, p) = (&b[j], out_path(j));
            quote!(#bj: #p, <#bj as #p>::Out: #parts,)
        });
    let machine_bounds: TokenStream = machine_bounds.collect();
    let m_params = quote!(#l0, #(#lt,)* #(#os,)* #y_param __R, #(#b,)*);
    let impl_params = quote!(#m_params #(#created_fs,)*);
    let machine_ty = quote!(#machine<#m_params>);

    // Closure k sits at its reverse-post-order position; dead blocks go last.
    let live_count = order.iter().flatten().count();
    let mut dead_pos = live_count;
    let position: Vec<usize> = order
        .iter()
        .map(|p| {
            p.unwrap_or_else(|| {
                dead_pos += 1;
                dead_pos - 1
            })
        })
        .collect();
    let mut by_position: Vec<usize> = (0..blocks.len()).collect();
    by_position.sort_by_key(|&k| position[k]);
    let idx: Vec<syn::Index> = position.iter().map(|&p| syn::Index::from(p)).collect();
    let poll_label = syn::Lifetime::new("'__structured_poll", ms);
    let (ret_ready, done_msg) = if yields.is_some() {
        (
            quote!(::structured_async::__private::Step::Complete(r)),
            "`#[structured]` generator resumed after it completed",
        )
    } else {
        (
            quote!(::core::task::Poll::Ready(r)),
            "`#[structured]` future polled after it completed",
        )
    };
    // A generator whose body never yields still names its yield type.
    let no_yield = yields.is_some() && yields_at.is_empty();
    // What the driver does with block j's transition `t`: a goto becomes the next block to
    // run, an await or yield is stored, a return completes.
    let handle = |j: usize| {
        let goto_arms = gotos.iter().map(|&k| {
            let v = format_ident!("Goto{}", k);
            quote!(#tr::#v(live) => #next::#v(live),)
        });
        let await_arms = awaits.iter().map(|&k| {
            let v = format_ident!("Await{}", k);
            if creator[k] == Some(j) {
                quote!(#tr::#v(fut, live) => {
                    this.state.set(#state::#v { fut, live });
                    continue #poll_label;
                })
            } else {
                quote!(#tr::#v(never, _) => match never {},)
            }
        });
        let yield_arms = yields_at.iter().map(|&k| {
            let v = format_ident!("Yield{}", k);
            quote!(#tr::#v(value, live) => {
                this.state.set(#state::#v { live });
                return ::structured_async::__private::Step::Yielded(value);
            })
        });
        let unused_arm = no_yield.then(|| quote!(#tr::NeverYields(never, _) => match never {},));
        quote!(match t {
            #(#goto_arms)*
            #(#await_arms)*
            #(#yield_arms)*
            #unused_arm
            #tr::Return(r) => {
                this.state.set(#state::Done);
                return #ret_ready;
            }
        })
    };
    let block_call = |j: usize| {
        let (bj, lj, i) = (&b[j], &l[j], &idx[j]);
        quote!(<#bj as #out_trait<#lj>>::call(&mut this.blocks.#i, live))
    };
    let resume_arms_await = awaits.iter().map(|&k| {
        let v = format_ident!("Await{}", k);
        let i = &idx[k];
        let (bk, lk, ok) = (&b[k], &l[k], &o[k]);
        let on_pending = if yields.is_some() {
            quote!(::structured_async::__private::Step::Pending)
        } else {
            quote!(::core::task::Poll::Pending)
        };
        let h = handle(k);
        quote!(#proj::#v { fut, .. } => match #poll_out::poll_out(fut, cx) {
            ::core::task::Poll::Pending => return #on_pending,
            ::core::task::Poll::Ready(out) => match this.state.as_mut().project_replace(#state::Done) {
                #repl::#v { live, .. } => {
                    let t = <#bk as #resume_trait<#lk, #ok>>::call(&mut this.blocks.#i, live, out);
                    #h
                }
                _ => ::core::unreachable!(),
            },
        },)
    });
    let resume_arms_yield = yields_at.iter().map(|&k| {
        let v = format_ident!("Yield{}", k);
        let call = block_call(k);
        let h = handle(k);
        quote!(#proj::#v { .. } => match this.state.as_mut().project_replace(#state::Done) {
            #repl::#v { live } => {
                let t = #call;
                #h
            }
            _ => ::core::unreachable!(),
        },)
    });
    let goto_arms = gotos.iter().map(|&k| {
        let v = format_ident!("Goto{}", k);
        let call = block_call(k);
        let h = handle(k);
        quote!(#next::#v(live) => {
            let t = #call;
            #h
        })
    });
    let start_call = block_call(0);
    let start_handle = handle(0);
    let first = quote!(match this.state.as_mut().project() {
        #proj::Start { .. } => match this.state.as_mut().project_replace(#state::Done) {
            #repl::Start { live } => {
                let t = #start_call;
                #start_handle
            }
            _ => ::core::unreachable!(),
        },
        #(#resume_arms_await)*
        #(#resume_arms_yield)*
        #proj::Done => ::core::panic!(#done_msg),
    });
    let run = if gotos.is_empty() {
        quote!(#first;)
    } else {
        quote! {
            let mut n = #first;
            loop {
                n = match n {
                    #(#goto_arms)*
                };
            }
        }
    };
    let body = quote! {
        let mut this = self.project();
        #poll_label: loop {
            #run
        }
    };
    let allow = quote!(#[allow(unreachable_code, unused_assignments, unused_labels, clippy::never_loop, clippy::diverging_sub_expression)]);
    let driver = match yields {
        None => quote! {
            impl<#impl_params> ::core::future::Future for #machine_ty where #impl_bounds {
                type Output = __R;
                #allow
                fn poll(self: ::core::pin::Pin<&mut Self>, cx: &mut ::core::task::Context<'_>) -> ::core::task::Poll<__R> {
                    #body
                }
            }
        },
        Some(_) => quote! {
            impl<#impl_params> ::structured_async::__private::Coroutine for #machine_ty where #impl_bounds {
                type Yield = __Y;
                type Output = __R;
                #allow
                fn resume(self: ::core::pin::Pin<&mut Self>, cx: &mut ::core::task::Context<'_>)
                    -> ::structured_async::__private::Step<__Y, __R> {
                    #body
                }
            }
        },
    };
    let unused_variant = no_yield.then(|| {
        quote!(NeverYields(::core::convert::Infallible, ::core::marker::PhantomData<fn() -> __Y>),)
    });
    let next_params: Vec<&Ident> = gotos.iter().map(|&k| &l[k]).collect();
    let next_variants = gotos.iter().map(|&k| {
        let v = format_ident!("Goto{}", k);
        let lk = &l[k];
        quote!(#v(#lk),)
    });

    let closures = by_position.iter().map(|&k| {
        if order[k].is_some() {
            block_closure(&blocks[k])
        } else {
            // Never entered (after an endless loop): fix its input type to `()`.
            quote!(|_: ()| ::core::unreachable!())
        }
    });
    let b_ordered: Vec<&Ident> = by_position.iter().map(|&k| &b[k]).collect();
    // An `impl Trait` output cannot be written here: the closures' returns fix it instead.
    let output = if crate::sig::has_impl_trait(output) {
        quote!(_)
    } else {
        quote!(#output)
    };
    let hint_ty = match yields {
        Some(y) => quote!((#y, #output)),
        None => output,
    };
    let new_fn = format_ident!("__structured_new", span = Span::mixed_site());
    let made = quote!(#new_fn(::core::marker::PhantomData::<#hint_ty>, #init, #(#closures),*));
    let made = if yields.is_some() {
        quote!(::structured_async::__private::Generator::new(#made))
    } else {
        made
    };
    let hint_param = if yields.is_some() {
        quote!((__Y, __R))
    } else {
        quote!(__R)
    };
    quote! {
        #(#items)*
        trait #out_trait<L> {
            type Out;
            fn call(&mut self, live: L) -> Self::Out;
        }
        impl<L, T, C: ::core::ops::FnMut(L) -> T> #out_trait<L> for C {
            type Out = T;
            #[inline(always)]
            fn call(&mut self, live: L) -> T {
                self(live)
            }
        }
        trait #poll_out<O> {
            fn poll_out(self: ::core::pin::Pin<&mut Self>, cx: &mut ::core::task::Context<'_>) -> ::core::task::Poll<O>;
        }
        impl<F: ::core::future::Future> #poll_out<F::Output> for F {
            #[inline(always)]
            fn poll_out(self: ::core::pin::Pin<&mut Self>, cx: &mut ::core::task::Context<'_>) -> ::core::task::Poll<F::Output> {
                F::poll(self, cx)
            }
        }
        trait #resume_trait<L, O> {
            type Out;
            fn call(&mut self, live: L, out: O) -> Self::Out;
        }
        impl<L, O, T, C: ::core::ops::FnMut(L, O) -> T> #resume_trait<L, O> for C {
            type Out = T;
            #[inline(always)]
            fn call(&mut self, live: L, out: O) -> T {
                self(live, out)
            }
        }
        ::structured_async::__private::pin_project! {
            #[project = #proj]
            #[project_replace = #repl]
            #[allow(dead_code, clippy::large_enum_variant)]
            enum #state<#state_generics> {
                Start { live: #l0 },
                #(#state_variants)*
                #(#yield_variants)*
                Done,
            }
        }
        #[allow(dead_code, clippy::large_enum_variant)]
        enum #tr<#tr_params> {
            #(#tr_variants)*
            #unused_variant
            Return(__R),
        }
        trait #parts {
            #(#part_decls)*
        }
        impl<#tr_params> #parts for #tr<#tr_params> {
            #(#part_defs)*
        }
        #[allow(dead_code)]
        enum #next<#(#next_params,)*> {
            #(#next_variants)*
        }
        // `!Unpin` like a native `async fn`'s future, and for the same reason the compiler
        // gets: with pin-project's conditional impl, deciding `Machine: Unpin` walked every
        // awaited machine below this one (optimised builds ask it for each `Pin<&mut _>`), and
        // a chain of ~25 levels overflowed the default recursion limit. This answer is one step.
        // Its type arguments name no awaited future: each is reached through the output of
        // the block that creates it (naming it in several arguments made compile time
        // exponential in the depth of a chain of machines).
        ::structured_async::__private::pin_project! {
            #[project(!Unpin)]
            #[allow(clippy::type_complexity)]
            struct #machine<#m_params> where #machine_bounds {
                #[pin]
                state: #state_ty,
                blocks: (#(#b_ordered,)*),
                hint: ::core::marker::PhantomData<fn() -> (#(#lt,)* #(#os,)* #y_param __R)>,
            }
        }
        #driver
        #[allow(clippy::too_many_arguments, clippy::type_complexity)]
        fn #new_fn<#impl_params>(
            _: ::core::marker::PhantomData<#hint_param>,
            init: #l0,
            #(#b_ordered: #b_ordered,)*
        ) -> #machine_ty where #bounds {
            #machine { state: #state::Start { live: init }, blocks: (#(#b_ordered,)*), hint: ::core::marker::PhantomData }
        }
        #made
    }
}

/// Collects `k` of every `Transition::AwaitK` the tokens name.
fn scan_awaits(ts: TokenStream, tr: &str, found: &mut Vec<usize>) {
    use proc_macro2::TokenTree;
    let trees: Vec<TokenTree> = ts.into_iter().collect();
    for (i, tt) in trees.iter().enumerate() {
        match tt {
            TokenTree::Group(g) => scan_awaits(g.stream(), tr, found),
            TokenTree::Ident(id) if *id == tr => {
                if let (
                    Some(TokenTree::Punct(p1)),
                    Some(TokenTree::Punct(p2)),
                    Some(TokenTree::Ident(v)),
                ) = (trees.get(i + 1), trees.get(i + 2), trees.get(i + 3))
                    && p1.as_char() == ':'
                    && p2.as_char() == ':'
                    && let Some(k) = v
                        .to_string()
                        .strip_prefix("Await")
                        .and_then(|s| s.parse().ok())
                {
                    found.push(k);
                }
            }
            _ => {}
        }
    }
}

fn block_closure(block: &BlockOut) -> TokenStream {
    let live = Ident::new("__live", Span::mixed_site());
    let out = Ident::new("__out", Span::mixed_site());
    let names: Vec<Ident> = block.input.iter().map(|(n, _)| n.clone()).collect();
    let packed = match &block.entry {
        Entry::Start(_) => quote!((#(#names,)*)),
        _ => pack(&names[..block.from_live]),
    };
    let rebind_pats = block
        .input
        .iter()
        .map(|(n, m)| if *m { quote!(mut #n) } else { quote!(#n) });
    let (params, unpack) = match &block.entry {
        Entry::Await(binder) => (quote!(#live, #out), quote!(let #binder = #out;)),
        _ => (quote!(#live), quote!()),
    };
    let start = match &block.entry {
        Entry::Start(binds) => binds.clone(),
        _ => quote!(),
    };
    let code = &block.code;
    let term = &block.term;
    let rebind_of = |pats: &[TokenStream], names: &[Ident]| {
        if pats.is_empty() {
            quote!()
        } else {
            quote!(#[allow(unused_variables, unused_mut, unused_assignments)] let (#(#pats,)*) = (#(#names,)*);)
        }
    };
    let rebind_pats: Vec<TokenStream> = rebind_pats.collect();
    let Some((span, n_params)) = block.user_tail else {
        let rebind = rebind_of(&rebind_pats, &names);
        return quote!(|#params| {
            let #packed = #live;
            #unpack
            #rebind
            #start
            #code
            #term
        });
    };
    let outer = rebind_of(&rebind_pats[..n_params], &names[..n_params]);
    let inner = rebind_of(&rebind_pats[n_params..], &names[n_params..]);
    let tail = if inner.is_empty() && code.is_empty() {
        quote!(#term)
    } else {
        crate::expand::spanned_braces(span, quote!(#inner #code #term))
    };
    quote!(|#params| {
        let #packed = #live;
        #unpack
        #outer
        #start
        #tail
    })
}
