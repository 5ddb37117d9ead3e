//! Which threads a nursery's tree may run on: a [`Local`] tree (the default) stays on the
//! thread that polls it and its children need not be `Send`; a [`Shared`] tree
//! (`nursery!(send |n| ...)`) is a `Send` future that a multi-threaded runtime may move
//! between polls, so every child must be `Send`.

use core::marker::PhantomData;

/// Where a nursery's tree may run: [`Local`] or [`Shared`]. Sealed.
pub trait TreeKind: sealed::Sealed {
    /// Whether the tree may move between threads (and so checks who uses its scope).
    #[doc(hidden)]
    const SHARED: bool;
    /// Makes the scope and handles `Send`/`Sync` as the kind allows.
    #[doc(hidden)]
    type Marker;
}

/// A tree that stays on the thread that polls it; children need not be `Send`.
#[derive(Debug)]
pub struct Local;

/// A tree that is itself `Send` (for `tokio::spawn` on a multi-threaded runtime): every child
/// must be `Send`, and the scope may only be used from the thread polling the nursery.
#[derive(Debug)]
pub struct Shared;

/// Neither `Send` nor `Sync`: what keeps a [`Local`] tree on its thread.
#[doc(hidden)]
pub struct LocalTree(PhantomData<*const ()>);

impl TreeKind for Local {
    const SHARED: bool = false;
    type Marker = LocalTree;
}

impl TreeKind for Shared {
    const SHARED: bool = true;
    type Marker = ();
}

/// Whether a tree of this kind accepts child `F`: any child for [`Local`], `Send` children
/// with `Send` outputs for [`Shared`].
#[diagnostic::on_unimplemented(
    message = "a child that is not `Send` cannot run in a `nursery!(send |n| ...)`",
    label = "this child (or its output) is not `Send`",
    note = "a `send` nursery may move between threads with all its children; use `nursery!(|n| ...)` to keep the tree on one thread"
)]
pub trait Admits<F>: TreeKind {}

impl<F> Admits<F> for Local {}

impl<F: Future + Send> Admits<F> for Shared where F::Output: Send {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Local {}
    impl Sealed for super::Shared {}
}

thread_local! {
    static THREAD: u8 = const { 0 };
}

/// A number naming the current thread while it lives (the address of a thread-local); 0 while
/// the thread's locals are being destroyed.
pub(super) fn this_thread() -> usize {
    THREAD
        .try_with(|t| core::ptr::from_ref(t) as usize)
        .unwrap_or(0)
}
