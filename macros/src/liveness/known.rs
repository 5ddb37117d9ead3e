//! What the analysis knows without types: which methods and macros borrow, consume or return
//! owned data, and which types are plain values.

use super::*;

/// Methods whose result is a plain value (a number, `bool`, `String`, `Ordering`, a parsed
/// value) holding no borrow at all, so `let y = x.m()` borrows nothing.
pub(super) const PLAIN_RESULT: &[&str] = &[
    "len",
    "is_empty",
    "to_string",
    "count",
    "sum",
    "product",
    "parse",
    "contains",
    "contains_key",
    "starts_with",
    "ends_with",
    "eq",
    "ne",
    "cmp",
    "partial_cmp",
    "abs",
    "pow",
    "is_some",
    "is_none",
    "is_ok",
    "is_err",
    "to_uppercase",
    "to_lowercase",
    "capacity",
];

/// Methods whose result takes no new borrow of its receiver, but carries whatever borrows the
/// receiver's items hold: `v.iter().collect()` and `v.iter().max()` still borrow `v`,
/// `s.clone()` borrows nothing when `s` holds no borrow.
pub(super) const CARRYING_RESULT: &[&str] = &[
    "clone",
    "cloned",
    "copied",
    "to_owned",
    "to_vec",
    "collect",
    "max",
    "min",
    "into",
    "unwrap_or_default",
    // Take an item out of a collection (or an `Option`, a `Cell`): the item, not a borrow.
    "pop",
    "pop_front",
    "pop_back",
    "pop_first",
    "pop_last",
    "remove",
    "swap_remove",
    "take",
];

/// Methods that take `self` by value on every common type that has them.
pub(super) const CONSUMING: &[&str] = &[
    "into_iter",
    "into_inner",
    "into_bytes",
    "into_boxed_slice",
    "into_keys",
    "into_values",
    "into",
];

/// Methods that take `self` by value on `Option`, `Result` and iterators, which a user type
/// may well define taking `&self` or `&mut self` (a parser's `expect`, a grid's `map`, a
/// status's `ok`): they move a local only when it is known to be one of those
/// ([`Local::std_value`]); called on another local they may borrow it, and a local taken for
/// moved would drop early.
pub(super) const CONSUMING_IF_STD: &[&str] = &[
    "unwrap",
    "expect",
    "unwrap_or",
    "unwrap_or_else",
    "unwrap_or_default",
    "unwrap_err",
    "ok",
    "err",
    "map",
    "and_then",
];

/// The traits whose `impl Trait` values take `self` in their [`CONSUMING_IF_STD`] methods.
const STD_VALUE_TRAITS: &[&str] = &[
    "Iterator",
    "DoubleEndedIterator",
    "ExactSizeIterator",
    "FusedIterator",
    "Future",
    "Stream",
];

/// Whether a written type is an `Option`, a `Result` (std's or an alias of that name, such as
/// `io::Result`) or an `impl` iterator, future or stream: its [`CONSUMING_IF_STD`] methods
/// take `self`. A user type named otherwise (`SearchResult`) may define them on `&self`.
pub(super) fn is_std_value_type(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Group(g) => is_std_value_type(&g.elem),
        syn::Type::Paren(p) => is_std_value_type(&p.elem),
        syn::Type::Path(p) => {
            p.qself.is_none()
                && p.path.segments.last().is_some_and(|s| {
                    let name = s.ident.to_string();
                    name == "Option" || name == "Result"
                })
        }
        syn::Type::ImplTrait(t) => t.bounds.iter().any(|b| {
            matches!(b, syn::TypeParamBound::Trait(t)
            if t.path.segments.last().is_some_and(|s| {
                let name = s.ident.to_string();
                STD_VALUE_TRAITS.contains(&name.as_str())
            }))
        }),
        _ => false,
    }
}

/// Whether a `let` initialiser is surely an `Option` or a `Result` (see
/// [`Local::std_value`]): `Some(..)`, `None`, `Ok(..)`, `Err(..)`. No method call counts,
/// whatever its name (`get`, `first`, `parse`, `iter`, `split`, `map`): a user type's method
/// of that name may return a type of its own whose `expect`, `ok` or `map` borrows it, and a
/// local taken for moved would drop early (a silent drop-order difference); such a local is
/// an unknown use instead, a native region where it matters.
pub(super) fn is_std_value_expr(e: &Expr) -> bool {
    let last_is = |p: &syn::Path, names: &[&str]| {
        p.segments
            .last()
            .is_some_and(|s| names.contains(&s.ident.to_string().as_str()))
    };
    match e {
        Expr::Paren(p) => is_std_value_expr(&p.expr),
        Expr::Path(p) => p.qself.is_none() && last_is(&p.path, &["None"]),
        Expr::Call(c) => {
            matches!(&*c.func, Expr::Path(p) if p.qself.is_none() && last_is(&p.path, &["Some", "Ok", "Err"]))
        }
        _ => false,
    }
}

/// Whether a method of this name takes `self` by value on the types that have it: one of
/// [`CONSUMING`] or [`CONSUMING_IF_STD`].
pub(super) fn consuming(name: &str) -> bool {
    CONSUMING.contains(&name) || CONSUMING_IF_STD.contains(&name)
}

/// Methods that take `&self`/`&mut self` on every common type that has them (or `self` on
/// `Copy` integers); any other method may consume its receiver (`take`, `last`, `max` do on
/// iterators, `send` does on a oneshot sender).
pub(super) const BORROWING: &[&str] = &[
    "len",
    "is_empty",
    "iter",
    "iter_mut",
    "get",
    "get_mut",
    "push",
    "push_str",
    "pop",
    "insert",
    "remove",
    "contains",
    "contains_key",
    "clear",
    "extend",
    "as_ref",
    "as_mut",
    "as_str",
    "as_slice",
    "as_deref",
    "borrow",
    "borrow_mut",
    "lock",
    "read",
    "write",
    "recv",
    "try_recv",
    "clone",
    "to_string",
    "to_owned",
    "to_vec",
    "first",
    "keys",
    "values",
    "set",
    "replace",
    "fetch_add",
    "fetch_sub",
    "load",
    "store",
    "starts_with",
    "ends_with",
    "split",
    "split_once",
    "rsplit_once",
    "split_whitespace",
    "char_indices",
    "strip_prefix",
    "strip_suffix",
    "trim",
    "trim_start",
    "trim_end",
    "as_bytes",
    "parse",
    "to_uppercase",
    "to_lowercase",
    "chars",
    "bytes",
    "lines",
    "sort",
    "sort_by",
    "sort_unstable",
    "dedup",
    "retain",
    "truncate",
    "drain",
    "entry",
    "is_some",
    "is_none",
    "is_ok",
    "is_err",
    "wrapping_add",
    "wrapping_sub",
    "wrapping_mul",
    "checked_add",
    "checked_sub",
    "checked_mul",
    "checked_div",
    "saturating_add",
    "saturating_sub",
    "pow",
    "abs",
    "count_ones",
    "cmp",
    "partial_cmp",
    "eq",
    "ne",
    "fmt",
    "hash",
    "capacity",
    "reserve",
    "split_at",
    "windows",
    "chunks",
    "find",
    "position",
    "any",
    "all",
];

/// Iterator adapters, which take `self` by value (as do `Option`'s methods of these names).
pub(crate) const BY_VALUE_ADAPTERS: &[&str] = &[
    "into_iter",
    "enumerate",
    "rev",
    "zip",
    "skip",
    "step_by",
    "chain",
    "peekable",
    "map",
    "filter",
    "filter_map",
    "flat_map",
    "flatten",
    "take_while",
    "skip_while",
    "map_while",
    "fuse",
    "inspect",
    "cloned",
    "copied",
    "cycle",
];

/// Methods whose iterator yields `Copy` items on every common type that has them: shared
/// references (`iter`, `keys`, `lines`, `chunks`), `char`s and bytes.
const COPY_ITEMS: &[&str] = &[
    "iter",
    "keys",
    "values",
    "lines",
    "chars",
    "bytes",
    "char_indices",
    "split",
    "split_whitespace",
    "split_terminator",
    "windows",
    "chunks",
];

/// Adapters that keep their items (or pair them with an index).
const ITEM_PRESERVING: &[&str] = &[
    "rev",
    "skip",
    "step_by",
    "filter",
    "skip_while",
    "take_while",
    "fuse",
    "peekable",
    "enumerate",
];

/// Whether the items of a `for` loop's iterator are `Copy`: `&v`, `v.iter()`, `s.lines()`,
/// and those under item-keeping adapters (`v.iter().enumerate().rev()`).
pub(super) fn copy_items(e: &Expr) -> bool {
    match e {
        Expr::Reference(r) => r.mutability.is_none(),
        Expr::Paren(p) => copy_items(&p.expr),
        Expr::MethodCall(m) => {
            let name = m.method.to_string();
            COPY_ITEMS.contains(&name.as_str())
                || (ITEM_PRESERVING.contains(&name.as_str()) && copy_items(&m.receiver))
        }
        _ => false,
    }
}

/// Macros that only borrow their arguments, with [`SPAN_MACROS`] (see [`borrows_only`]).
const FORMAT_MACROS: &[&str] = &[
    "format",
    "print",
    "println",
    "eprint",
    "eprintln",
    "write",
    "writeln",
    "assert",
    "assert_eq",
    "assert_ne",
    "debug_assert",
    "debug_assert_eq",
    "debug_assert_ne",
    "panic",
    "format_args",
    "unreachable",
    "todo",
    // log's and tracing's: a message's arguments are format arguments, and tracing records a
    // field's value by reference (`x`, `name = x`, `?x`, `%x`); a span holds no borrow.
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "event",
];

/// tracing's span macros: the `Span` they make has no lifetime, and records its fields' values
/// as it is created.
pub(crate) const SPAN_MACROS: &[&str] = &[
    "span",
    "trace_span",
    "debug_span",
    "info_span",
    "warn_span",
    "error_span",
];

/// Whether a macro of this name only borrows its arguments (the formatting macros, log's and
/// tracing's).
pub(crate) fn borrows_only(name: &str) -> bool {
    FORMAT_MACROS.contains(&name) || SPAN_MACROS.contains(&name)
}

/// Macros known not to expand to `.await`, besides the borrowing ones the liveness already
/// knows ([`borrows_only`]); any other macro may (`join!`, `select!`, a user's
/// `macro_rules!`), and an await cannot stand in a block closure, so it keeps a native frame.
pub(crate) const OTHER_AWAIT_FREE_MACROS: &[&str] = &[
    "vec",
    "unimplemented",
    "matches",
    "concat",
    "stringify",
    "line",
    "column",
    "file",
    "module_path",
    "cfg",
    "env",
    "option_env",
    "include_str",
    "include_bytes",
    "compile_error",
    // Moves its arguments (and returns them): not a borrowing macro.
    "dbg",
    "thread_local",
    "addr_of",
    "addr_of_mut",
];

/// Async methods whose output owns its data (`rx.recv().await`, `lines.next().await`), though
/// their future borrows the receiver.
pub(crate) const OWNED_AWAIT: &[&str] = &[
    "recv",
    "try_recv",
    "next",
    "next_line",
    "read",
    "read_exact",
    "read_to_end",
    "read_to_string",
    "read_line",
    "accept",
    "send",
    "write",
    "write_all",
    "flush",
    "tick",
    "join",
    "wait",
    "changed",
    "recv_from",
    "send_to",
    "connect",
    "readable",
    "writable",
];

/// Whether the awaited call `m` is one of [`OWNED_AWAIT`]: not `read()`/`write()` without an
/// argument, an async `RwLock`'s, whose guard borrows the lock (the io ones take a buffer).
pub(crate) fn owned_await(m: &syn::ExprMethodCall) -> bool {
    let name = m.method.to_string();
    OWNED_AWAIT.contains(&name.as_str())
        && !(matches!(name.as_str(), "read" | "write") && m.args.is_empty())
}

pub(crate) fn owned_result(e: &Expr) -> bool {
    match e {
        Expr::Await(a) => matches!(&*a.base, Expr::MethodCall(m) if owned_await(m)),
        Expr::Lit(_) | Expr::Cast(_) => true,
        Expr::Binary(b) => !is_compound_assign(&b.op),
        Expr::Unary(u) => !matches!(u.op, syn::UnOp::Deref(_)) || owned_result(&u.expr),
        Expr::MethodCall(m) => {
            let name = m.method.to_string();
            PLAIN_RESULT.contains(&name.as_str())
                || (CARRYING_RESULT.contains(&name.as_str()) && owns_its_items(&m.receiver))
        }
        Expr::Paren(p) => owned_result(&p.expr),
        Expr::Macro(m) => m.mac.path.is_ident("format"),
        _ => false,
    }
}

/// Whether a value's items hold no borrow taken by the value itself: a place, or an owned
/// result. (A place's own borrows, if any, are the local's: see `BorrowProbe`.)
fn owns_its_items(e: &Expr) -> bool {
    match e {
        Expr::Path(_) | Expr::Field(_) | Expr::Index(_) => true,
        Expr::Paren(p) => owns_its_items(&p.expr),
        _ => owned_result(e),
    }
}

/// `x.m(..)` with `m` in [`CARRYING_RESULT`].
pub(super) fn carrying_call(e: &Expr) -> Option<&syn::ExprMethodCall> {
    match e {
        Expr::MethodCall(m) if CARRYING_RESULT.contains(&m.method.to_string().as_str()) => Some(m),
        Expr::Paren(p) => carrying_call(&p.expr),
        _ => None,
    }
}

pub(crate) fn is_compound_assign(op: &syn::BinOp) -> bool {
    use syn::BinOp::{
        AddAssign, BitAndAssign, BitOrAssign, BitXorAssign, DivAssign, MulAssign, RemAssign,
        ShlAssign, ShrAssign, SubAssign,
    };
    matches!(
        op,
        AddAssign(_)
            | SubAssign(_)
            | MulAssign(_)
            | DivAssign(_)
            | RemAssign(_)
            | BitXorAssign(_)
            | BitAndAssign(_)
            | BitOrAssign(_)
            | ShlAssign(_)
            | ShrAssign(_)
    )
}

pub(super) fn is_reference(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Group(g) => is_reference(&g.elem),
        syn::Type::Paren(p) => is_reference(&p.elem),
        syn::Type::Reference(_) => true,
        _ => false,
    }
}

pub(super) fn is_shared_ref(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Group(g) => is_shared_ref(&g.elem),
        syn::Type::Paren(p) => is_shared_ref(&p.elem),
        syn::Type::Reference(r) => r.mutability.is_none(),
        _ => false,
    }
}

/// Std collections whose `IntoIterator for &C` yields references (`&T`, or `(&K, &V)`).
const REF_ITEM_COLLECTIONS: &[&str] = &[
    "Vec",
    "VecDeque",
    "LinkedList",
    "HashMap",
    "BTreeMap",
    "HashSet",
    "BTreeSet",
    "BinaryHeap",
    "Option",
];

/// Whether iterating a value of the written type `ty` (`for x in param`) yields references:
/// `&[T]`, `&[T; N]`, or `&C` for a std collection `C` (matched by its last path segment).
/// Any other `&T` may yield owned items (`&Receiver<T>`, a generic `&C`): no guess.
pub(super) fn iterates_refs(ty: &syn::Type) -> bool {
    fn collection(ty: &syn::Type) -> bool {
        match ty {
            syn::Type::Group(g) => collection(&g.elem),
            syn::Type::Paren(p) => collection(&p.elem),
            syn::Type::Slice(_) | syn::Type::Array(_) => true,
            syn::Type::Path(p) => {
                p.qself.is_none()
                    && p.path.segments.last().is_some_and(|s| {
                        REF_ITEM_COLLECTIONS.contains(&s.ident.to_string().as_str())
                    })
            }
            _ => false,
        }
    }
    match ty {
        syn::Type::Group(g) => iterates_refs(&g.elem),
        syn::Type::Paren(p) => iterates_refs(&p.elem),
        syn::Type::Reference(r) => r.mutability.is_none() && collection(&r.elem),
        _ => false,
    }
}

pub(super) fn is_primitive(ty: &syn::Type) -> bool {
    const PRIMS: &[&str] = &[
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128", "isize",
        "f32", "f64", "bool", "char",
    ];
    match ty {
        syn::Type::Group(g) => is_primitive(&g.elem),
        syn::Type::Paren(p) => is_primitive(&p.elem),
        syn::Type::Path(p) => p
            .path
            .get_ident()
            .is_some_and(|i| PRIMS.contains(&i.to_string().as_str())),
        syn::Type::Reference(r) => r.mutability.is_none(),
        // Raw and fn pointers, tuples and arrays of `Copy` types are `Copy` too.
        syn::Type::Ptr(_) | syn::Type::BareFn(_) => true,
        syn::Type::Tuple(t) => t.elems.iter().all(is_primitive),
        syn::Type::Array(a) => is_primitive(&a.elem),
        _ => false,
    }
}

/// A primitive type that is not a reference: a value of it holds no borrow.
pub(super) fn primitive_cast(e: &Expr) -> bool {
    match e {
        Expr::Cast(c) => is_plain_value(&c.ty),
        Expr::Paren(p) => primitive_cast(&p.expr),
        _ => false,
    }
}

pub(super) fn is_plain_value(ty: &syn::Type) -> bool {
    match ty {
        syn::Type::Group(g) => is_plain_value(&g.elem),
        syn::Type::Paren(p) => is_plain_value(&p.elem),
        syn::Type::Path(_) => is_primitive(ty),
        _ => false,
    }
}
