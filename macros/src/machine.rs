//! Emits the state machine of an explicitly lowered body: the state enum, the `Transition`
//! enum, the block closures and the driver that runs them.
//!
//! Output (for blocks `b0` = start, `b1` = goto target, `b2` = resume after an await):
//! ```text
//! pin_project! { enum State<L0, L2, F2> { Start { live: L0 }, Await2 { #[pin] fut: F2, live: L2 }, Done } }
//! enum Transition<L0, L1, L2, F2, R> { Goto1(L1), Await2(F2, L2), Return(R) }
//! struct Machine<…, B0, B1, B2> { #[pin] state: State<…>, blocks: (B0, B1, B2) }
//! impl Future for Machine<…> where B2: Resume<L2, F2, Transition<…>>, … { poll: loop {
//!     resume the state's block (polling its future first), then follow Goto transitions until
//!     an Await/Yield is stored or Return completes } }
//! new(PhantomData::<R>, (args…), b0, b1, b2)   // where B2: FnMut(L2, F2::Output) -> Transition<…>, …
//! ```
//! Every type is a generic parameter fixed by inference: each closure's input tuple is the
//! value an earlier closure put in its `Transition`. Locals sit in each tuple newest first, so
//! dropping a state (cancellation) drops them in reverse declaration order, after the
//! in-flight future, as a native frame would.

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
    let l: Vec<Ident> = (0..blocks.len())
        .map(|k| format_ident!("__L{}", k))
        .collect();
    let b: Vec<Ident> = (0..blocks.len())
        .map(|k| format_ident!("__B{}", k))
        .collect();
    let f: Vec<Ident> = (0..blocks.len())
        .map(|k| format_ident!("__F{}", k))
        .collect();
    let awaits: Vec<usize> = (0..blocks.len())
        .filter(|&k| matches!(blocks[k].entry, Entry::Await(_)))
        .collect();
    let yields_at: Vec<usize> = (0..blocks.len())
        .filter(|&k| matches!(blocks[k].entry, Entry::Yield))
        .collect();
    let gotos: Vec<usize> = (0..blocks.len())
        .filter(|&k| matches!(blocks[k].entry, Entry::Goto))
        .collect();
    let y_param = yields.map(|_| quote!(__Y,));
    let l0 = &l[0];
    let fs: Vec<&Ident> = awaits.iter().map(|&k| &f[k]).collect();
    let lt = &l[1..];
    let tr_params = quote!(#(#lt,)* #(#fs,)* #y_param __R);
    let tr_ty = quote!(#tr<#tr_params>);

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

    let bounds = (0..blocks.len()).map(|k| {
        let (bk, lk, fk) = (&b[k], &l[k], &f[k]);
        match blocks[k].entry {
            Entry::Await(_) => {
                quote!(#fk: ::core::future::Future, #bk: ::core::ops::FnMut(#lk, #fk::Output) -> #tr_ty,)
            }
            _ => quote!(#bk: ::core::ops::FnMut(#lk) -> #tr_ty,),
        }
    });
    let bounds: TokenStream = bounds.collect();
    // The impl names the same bounds through `Block`/`Resume`: an `F::Output` in a where-clause
    // makes rustc re-select every awaited machine below this one (see `lowering/block.rs`).
    let impl_bounds = (0..blocks.len()).map(|k| {
        let (bk, lk, fk) = (&b[k], &l[k], &f[k]);
        match blocks[k].entry {
            Entry::Await(_) => quote!(#fk: ::core::future::Future,
                #bk: ::structured_async::__private::Resume<#lk, #fk, #tr_ty>,),
            _ => quote!(#bk: ::structured_async::__private::Block<#lk, #tr_ty>,),
        }
    });
    let impl_bounds: TokenStream = impl_bounds.collect();
    let all_params = quote!(#l0, #tr_params, #(#b,)*);
    let machine_ty = quote!(#machine<#all_params>);

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
    let resume_arms_await = awaits.iter().map(|&k| {
        let v = format_ident!("Await{}", k);
        let i = &idx[k];
        let (bk, lk, fk) = (&b[k], &l[k], &f[k]);
        let on_pending = if yields.is_some() {
            quote!(::structured_async::__private::Step::Pending)
        } else {
            quote!(::core::task::Poll::Pending)
        };
        quote!(#proj::#v { fut, .. } => match ::core::future::Future::poll(fut, cx) {
            ::core::task::Poll::Pending => return #on_pending,
            ::core::task::Poll::Ready(out) => match this.state.as_mut().project_replace(#state::Done) {
                #repl::#v { live, .. } => <#bk as ::structured_async::__private::Resume<#lk, #fk, #tr_ty>>::call(&mut this.blocks.#i, live, out),
                _ => ::core::unreachable!(),
            },
        },)
    });
    let resume_arms_yield = yields_at.iter().map(|&k| {
        let v = format_ident!("Yield{}", k);
        let i = &idx[k];
        let call = block_call(&b[k], &l[k], &tr_ty, i);
        quote!(#proj::#v { .. } => match this.state.as_mut().project_replace(#state::Done) {
            #repl::#v { live } => #call,
            _ => ::core::unreachable!(),
        },)
    });
    let goto_arms = gotos.iter().map(|&k| {
        let v = format_ident!("Goto{}", k);
        let call = block_call(&b[k], &l[k], &tr_ty, &idx[k]);
        quote!(#tr::#v(live) => t = #call,)
    });
    let store_await = awaits.iter().map(|&k| {
        let v = format_ident!("Await{}", k);
        quote!(#tr::#v(fut, live) => { this.state.set(#state::#v { fut, live }); break; })
    });
    let store_yield = yields_at.iter().map(|&k| {
        let v = format_ident!("Yield{}", k);
        quote!(#tr::#v(value, live) => {
            this.state.set(#state::#v { live });
            return ::structured_async::__private::Step::Yielded(value);
        })
    });
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
    let unused_variant = no_yield.then(|| {
        quote!(NeverYields(::core::convert::Infallible, ::core::marker::PhantomData<fn() -> __Y>),)
    });
    let unused_arm = no_yield.then(|| quote!(#tr::NeverYields(never, _) => match never {},));
    let t_mut = (!gotos.is_empty()).then(|| quote!(mut));
    let start_call = block_call(&b[0], &l[0], &tr_ty, &idx[0]);
    let body = quote! {
        let mut this = self.project();
        loop {
            let #t_mut t = match this.state.as_mut().project() {
                #proj::Start { .. } => match this.state.as_mut().project_replace(#state::Done) {
                    #repl::Start { live } => #start_call,
                    _ => ::core::unreachable!(),
                },
                #(#resume_arms_await)*
                #(#resume_arms_yield)*
                #proj::Done => ::core::panic!(#done_msg),
            };
            loop {
                match t {
                    #(#goto_arms)*
                    #(#store_await)*
                    #(#store_yield)*
                    #unused_arm
                    #tr::Return(r) => {
                        this.state.set(#state::Done);
                        return #ret_ready;
                    }
                }
            }
        }
    };
    let driver = match yields {
        None => quote! {
            impl<#all_params> ::core::future::Future for #machine_ty where #impl_bounds {
                type Output = __R;
                fn poll(self: ::core::pin::Pin<&mut Self>, cx: &mut ::core::task::Context<'_>) -> ::core::task::Poll<__R> {
                    #body
                }
            }
        },
        Some(_) => quote! {
            impl<#all_params> ::structured_async::__private::Coroutine for #machine_ty where #impl_bounds {
                type Yield = __Y;
                type Output = __R;
                fn resume(self: ::core::pin::Pin<&mut Self>, cx: &mut ::core::task::Context<'_>)
                    -> ::structured_async::__private::Step<__Y, __R> {
                    #body
                }
            }
        },
    };

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
        // `!Unpin` like a native `async fn`'s future, and for the same reason the compiler
        // gets: with pin-project's conditional impl, deciding `Machine: Unpin` walked every
        // awaited machine below this one (optimised builds ask it for each `Pin<&mut _>`), and
        // a chain of ~25 levels overflowed the default recursion limit. This answer is one step.
        ::structured_async::__private::pin_project! {
            #[project(!Unpin)]
            struct #machine<#all_params> {
                #[pin]
                state: #state<#state_generics>,
                blocks: (#(#b_ordered,)*),
                hint: ::core::marker::PhantomData<fn() -> #tr_ty>,
            }
        }
        #driver
        #[allow(clippy::too_many_arguments, clippy::type_complexity)]
        fn #new_fn<#all_params>(
            _: ::core::marker::PhantomData<#hint_param>,
            init: #l0,
            #(#b_ordered: #b_ordered,)*
        ) -> #machine_ty where #bounds {
            #machine { state: #state::Start { live: init }, blocks: (#(#b_ordered,)*), hint: ::core::marker::PhantomData }
        }
        #made
    }
}

/// `<Bk as Block<Lk, Transition>>::call(&mut this.blocks.i, live)`.
fn block_call(bk: &Ident, lk: &Ident, tr_ty: &TokenStream, i: &syn::Index) -> TokenStream {
    quote!(<#bk as ::structured_async::__private::Block<#lk, #tr_ty>>::call(&mut this.blocks.#i, live))
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
    let rebind = if block.input.is_empty() {
        quote!()
    } else {
        quote!(#[allow(unused_variables, unused_mut, unused_assignments)] let (#(#rebind_pats,)*) = (#(#names,)*);)
    };
    quote!(|#params| {
        let #packed = #live;
        #unpack
        #rebind
        #start
        #code
        #term
    })
}
