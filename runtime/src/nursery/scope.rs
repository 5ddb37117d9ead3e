//! The scope a nursery's body receives as `n`: it places children in the nursery's storage and
//! hands out [`ChildHandle`]s, both bounded by the invariant `'scope` lifetime.

use core::cell::Cell;
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll};
use core::time::Duration;

use super::batch::Target;
use super::children::Core;
use super::kind::{Admits, Local, TreeKind};
use super::outcome::ChildOutput;
use super::slot::{State, VTableOf};
use super::wake::WakeNode;
use crate::executor::AsyncCancel;

/// The handle a nursery's body receives: spawns children that may borrow anything outliving
/// the nursery, and can itself be copied into children (it is a shared reference).
///
/// `'scope` is invariant and chosen by the nursery for each run, so `n`, and every
/// [`ChildHandle`], stays inside the body, as with [`std::thread::scope`].
///
/// ```
/// use structured_async::{block_on, nursery};
///
/// let words = ["structured", "async"];
/// let lens = block_on(nursery!(|n| {
///     let a = n.spawn(async { words[0].len() });
///     let b = n.spawn(async { words[1].len() });
///     (a.await, b.await)
/// }));
/// assert_eq!(lens, (10, 5));
/// ```
pub struct Scope<'scope, 'env: 'scope, R: 'env, K: TreeKind = Local> {
    pub(super) core: Core,
    pub(super) failure: Failure<R>,
    _local: PhantomData<K::Marker>,
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// The first output that ended the nursery early.
pub(super) struct Failure<R>(pub(super) Cell<Option<R>>);

// SAFETY: `Core` and `Failure` are reachable only through a `Scope` or a `ChildHandle`.
// - In a `Local` tree both carry `LocalTree`, so neither is ever sent to or shared with
//   another thread; these impls only make a compile error name that one marker instead of
//   every internal field.
// - In a `Shared` tree the nursery future moves between threads only between polls, with
//   everything in it: children and their outputs are `Send` (`Admits`), and so is `R`. A
//   `&Scope` or handle can reach another thread only while the owner is inside a poll (all
//   are bounded by `'scope`), and every use through them first checks that it runs on the
//   thread polling the nursery (`Core::check_owner`), which panics otherwise, so the owner
//   is the only thread that ever touches the core.
unsafe impl Send for Core {}
// SAFETY: as above.
unsafe impl Sync for Core {}
// SAFETY: as above; `R: Send` so a failure may move with the nursery.
unsafe impl<R: Send> Send for Failure<R> {}
// SAFETY: as above: only the thread polling the nursery reads or writes it.
unsafe impl<R: Send> Sync for Failure<R> {}

impl<'scope, 'env, R, K: TreeKind> Scope<'scope, 'env, R, K> {
    pub(super) fn new() -> Self {
        Scope {
            core: Core::new(!K::SHARED),
            failure: Failure(Cell::new(None)),
            _local: PhantomData,
            _scope: PhantomData,
            _env: PhantomData,
        }
    }

    /// Starts `child` inside the nursery; it is first polled after the spawning code yields
    /// to the nursery (in the same turn if the turn's budget allows), never inside `spawn`.
    ///
    /// The child is stored in the nursery (no task, no box) and polled only when woken. In a
    /// nursery whose body returns `Result<_, E>` a child returns `()` or `Result<_, E>`, and
    /// its `Err` cancels the nursery (see [`ChildOutput`]).
    ///
    /// # Panics
    /// If 268,435,423 children of this nursery are already alive, counting finished ones whose
    /// handle still holds the output (other slots are reused); or, in a `send` nursery, unless
    /// called by the thread polling it.
    ///
    /// ```
    /// use structured_async::{block_on, nursery};
    ///
    /// let mut cells = [0u8; 4];
    /// block_on(nursery!(|n| {
    ///     for (i, cell) in cells.iter_mut().enumerate() {
    ///         n.spawn(async move { *cell = i as u8 * 2 });
    ///     }
    /// }));
    /// assert_eq!(cells, [0, 2, 4, 6]);
    /// ```
    // Always inlined: the spawn loop is the hot path, and a call costs a tenth of a spawn.
    #[inline(always)]
    pub fn spawn<F>(&'scope self, child: F) -> ChildHandle<'scope, F::Output, K>
    where
        F: Future + 'scope,
        F::Output: ChildOutput<R>,
        K: Admits<F>,
    {
        self.check();
        // A `Shared` tree keeps every child in a node of its own.
        let target = if K::SHARED {
            Target::Node(self.core.spawn(child, VTableOf::<F, R>::TABLE))
        } else {
            self.core.spawn_batched::<F, R>(child)
        };
        ChildHandle {
            core: &self.core,
            node: NodeRef(target),
            taken: false,
            _local: PhantomData,
            _out: PhantomData,
        }
    }

    /// Like [`Scope::spawn`], for a child that needs async cleanup when the nursery ends
    /// early: on the first error, instead of being dropped at once, the child is polled through
    /// [`AsyncCancel::poll_cancel`] until its cleanup finishes or the grace period
    /// ([`Scope::set_grace`]) runs out, and only then dropped. (Dropping the nursery itself,
    /// as a timeout does, drops the child at once: nobody polls a dropped future.)
    ///
    /// ```
    /// use core::{pin::Pin, task::{Context, Poll}};
    /// use std::cell::Cell;
    /// use structured_async::{block_on, nursery, yield_now};
    /// use structured_async::executor::AsyncCancel;
    ///
    /// /// Never finishes by itself; says goodbye when cancelled.
    /// struct Session<'a>(&'a Cell<bool>);
    /// impl Future for Session<'_> {
    ///     type Output = Result<(), String>;
    ///     fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
    ///         Poll::Pending
    ///     }
    /// }
    /// impl AsyncCancel for Session<'_> {
    ///     fn poll_cancel(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
    ///         self.0.set(true);
    ///         Poll::Ready(())
    ///     }
    /// }
    ///
    /// let said_goodbye = Cell::new(false);
    /// let out: Result<(), String> = block_on(nursery!(|n| {
    ///     n.spawn_cancellable(Session(&said_goodbye));
    ///     yield_now().await;
    ///     Err("stop".to_string())
    /// }));
    /// assert_eq!(out, Err("stop".to_string()));
    /// assert!(said_goodbye.get());
    /// ```
    #[inline]
    pub fn spawn_cancellable<F>(&'scope self, child: F) -> ChildHandle<'scope, F::Output, K>
    where
        F: Future + AsyncCancel + 'scope,
        F::Output: ChildOutput<R>,
        K: Admits<F>,
    {
        self.check();
        let node = self.core.spawn(child, VTableOf::<F, R>::CANCELLABLE);
        ChildHandle {
            core: &self.core,
            node: NodeRef(Target::Node(node)),
            taken: false,
            _local: PhantomData,
            _out: PhantomData,
        }
    }

    /// Sets how long children spawned with [`Scope::spawn_cancellable`] may spend on their
    /// async cleanup once the nursery ends early (one second unless set). When it runs out,
    /// the ones still cleaning up are dropped.
    ///
    /// ```
    /// use std::time::Duration;
    /// use structured_async::{block_on, nursery};
    ///
    /// block_on(nursery!(|n| n.set_grace(Duration::from_millis(50))));
    /// ```
    pub fn set_grace(&self, grace: Duration) {
        self.check();
        self.core.set_grace(grace);
    }

    /// In a `Shared` tree, panics unless called by the thread polling the nursery.
    #[inline]
    fn check(&self) {
        if K::SHARED {
            self.core.check_owner();
        }
    }

    /// How many children have not finished yet.
    ///
    /// ```
    /// use structured_async::{block_on, nursery};
    ///
    /// block_on(nursery!(|n| {
    ///     let h = n.spawn(async { 1 });
    ///     assert_eq!(n.running(), 1);
    ///     h.await;
    ///     assert_eq!(n.running(), 0);
    /// }));
    /// ```
    pub fn running(&self) -> usize {
        self.check();
        self.core.live()
    }
}

impl<R, K: TreeKind> core::fmt::Debug for Scope<'_, '_, R, K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Like every use of a `Shared` scope: only the polling thread may read the core.
        self.check();
        f.debug_struct("Scope")
            .field("running", &self.core.live())
            .finish_non_exhaustive()
    }
}

/// A child's handle: awaiting it gives the child's output. Dropping it lets the child run on
/// (the nursery still waits for it) and drops the output when it comes.
///
/// ```
/// use structured_async::{block_on, nursery};
///
/// let out = block_on(nursery!(|n| {
///     let first = n.spawn(async { 20 });
///     let second = n.spawn(async move { first.await + 22 });
///     second.await
/// }));
/// assert_eq!(out, 42);
/// ```
pub struct ChildHandle<'scope, T, K: TreeKind = Local> {
    core: &'scope Core,
    node: NodeRef<'scope>,
    taken: bool,
    _local: PhantomData<K::Marker>,
    _out: PhantomData<(T, &'scope mut &'scope ())>,
}

impl<T, K: TreeKind> ChildHandle<'_, T, K> {
    /// Whether the child finished (its output is ready to take).
    ///
    /// ```
    /// use structured_async::{block_on, nursery, yield_now};
    ///
    /// block_on(nursery!(|n| {
    ///     let h = n.spawn(async { 7 });
    ///     assert!(!h.is_finished());
    ///     yield_now().await;
    ///     assert!(h.is_finished());
    /// }));
    /// ```
    pub fn is_finished(&self) -> bool {
        if K::SHARED {
            self.core.check_owner();
        }
        !self.taken
            && match self.core.node_of(self.node.0) {
                Some(node) => node.entry.state() == State::Done,
                None => match self.node.0 {
                    // SAFETY: a handle's record is live while the handle is (batch rule 2).
                    Target::Record(rec) => unsafe { Core::record_done(rec) },
                    Target::Node(_) => false,
                },
            }
    }
}

/// The wake node (and entry) of a handle's child, or its record in a batch, kept so the
/// handle finds its child without a lookup; it lives as long as the core (a record, as long
/// as the handle: batch rule 2).
struct NodeRef<'scope>(Target<'scope>);

// SAFETY: as for `Core` above: the node is reached only through its handle, which in a
// `Local` tree carries `LocalTree` (never sent or shared), and in a `Shared` tree checks that
// it runs on the thread polling the nursery (`Core::check_owner`) before every use.
unsafe impl Send for NodeRef<'_> {}
// SAFETY: as above.
unsafe impl Sync for NodeRef<'_> {}

// A handle never holds its `T`; the output lives in the nursery's slot.
impl<T, K: TreeKind> Unpin for ChildHandle<'_, T, K> {}

impl<T, K: TreeKind> Future for ChildHandle<'_, T, K> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        if K::SHARED {
            self.core.check_owner();
        }
        assert!(
            !self.taken,
            "a child handle was polled after it returned the output"
        );
        let core = self.core;
        let Some(node) = core.node_of(self.node.0) else {
            let Target::Record(rec) = self.node.0 else {
                unreachable!("a node target is its own node")
            };
            // SAFETY: the record's child was spawned by `spawn` with output `T`; a handle's
            // record is live while the handle is (batch rule 2).
            return match unsafe { core.poll_handle::<T>(rec, cx) } {
                Some(output) => {
                    self.taken = true;
                    Poll::Ready(output)
                }
                None => Poll::Pending,
            };
        };
        let entry = &node.entry;
        match entry.state() {
            State::Done => {
                entry.set_state(State::Empty);
                entry.set_has_handle(false);
                // SAFETY: a `Done` slot holds the child's output (slot rule 1), of type `T`
                // since this handle was made by `spawn` for that child; read once.
                let output = unsafe { entry.payload.get().cast::<T>().read() };
                self.taken = true;
                core.free_slot(node);
                Poll::Ready(output)
            }
            State::Running | State::Cancelling | State::Finishing => {
                core.set_waiter(node, cx.waker());
                Poll::Pending
            }
            // Cancelled: the nursery is ending, so whoever awaits this is about to be dropped.
            State::Empty | State::Free => Poll::Pending,
        }
    }
}

impl<T, K: TreeKind> Drop for ChildHandle<'_, T, K> {
    #[inline]
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        if K::SHARED {
            self.core.check_owner();
        }
        let node = match self.node.0 {
            Target::Node(node) => node,
            Target::Record(rec) => {
                // SAFETY: the handle's own record, live while the handle is (batch rule 2).
                if unsafe { self.core.drop_record_handle(rec) } {
                    return;
                }
                match self.core.node_of(self.node.0) {
                    Some(node) => node,
                    None => return,
                }
            }
        };
        let entry = &node.entry;
        entry.set_has_handle(false);
        // Most handles are dropped while their child runs, with nobody awaiting them.
        if entry.is_running_unawaited() {
            return;
        }
        release(self.core, node);
    }
}

/// The rest of dropping a handle: forgets its waiter, and drops the output and frees the slot
/// if the child is done.
#[inline(never)]
fn release(core: &Core, node: &WakeNode) {
    let entry = &node.entry;
    core.forget_waiter(node);
    match entry.state() {
        State::Done => {
            entry.set_state(State::Empty);
            // SAFETY: a `Done` slot holds the output (slot rule 1); nobody can take it now.
            unsafe { (entry.vtable.get().drop_output)(entry.payload.get()) };
            core.free_slot(node);
        }
        State::Empty => core.free_slot(node),
        State::Running | State::Cancelling | State::Finishing | State::Free => {}
    }
}

impl<T, K: TreeKind> core::fmt::Debug for ChildHandle<'_, T, K> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChildHandle")
            .field(
                "index",
                // A handle that took its output refers to nothing any more.
                &(!self.taken).then(|| match self.node.0 {
                    Target::Node(node) => node.index(),
                    // SAFETY: a handle's record is live while the handle is (batch rule 2).
                    Target::Record(rec) => unsafe { Core::batch_index(rec) },
                }),
            )
            .field("finished", &self.is_finished())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;
    use core::future::{Future, poll_fn};
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};

    use crate::nursery::nursery;

    /// A freed slot keeps its payload for the next child of its size class only: a larger
    /// child spawned into it gets a slot of its own, and both sizes keep their contents.
    #[test]
    fn a_recycled_slot_gets_a_payload_of_the_new_childs_size() {
        let sums = core::cell::RefCell::new(Vec::new());
        let sums = &sums;
        let mut fut = pin!(nursery(async |n| {
            for round in 0..4u64 {
                // Small children finish at once; their slots go back to the free list.
                for i in 0..8u64 {
                    n.spawn(async move { sums.borrow_mut().push(round * 100 + i) });
                }
                crate::yield_now().await;
                // Larger children (a 64-word array each) reuse those slots' nodes.
                for i in 0..8u64 {
                    let big = [round * 100 + i; 64];
                    n.spawn(async move {
                        crate::yield_now().await;
                        sums.borrow_mut().push(big.iter().sum::<u64>() / 64);
                    });
                }
                crate::yield_now().await;
            }
        }));
        let mut cx = Context::from_waker(Waker::noop());
        while fut.as_mut().poll(&mut cx).is_pending() {}
        let mut got = sums.take();
        got.sort_unstable();
        let mut want: Vec<u64> = (0..4u64)
            .flat_map(|r| (0..8u64).flat_map(move |i| [r * 100 + i, r * 100 + i]))
            .collect();
        want.sort_unstable();
        assert_eq!(got, want);
    }

    /// A slot recycled from the free list must not keep the free list's link as its waiter:
    /// the child's end would then wake whatever slot the link named (the body, for the last).
    #[test]
    fn a_recycled_slot_wakes_nobody_it_was_not_asked_to() {
        let body_polls = Cell::new(0);
        let body_polls = &body_polls;
        let child_polls = Cell::new(0);
        let child_polls = &child_polls;
        let mut fut = pin!(nursery(async |n| {
            let mut held = None;
            poll_fn(|cx| {
                body_polls.set(body_polls.get() + 1);
                if body_polls.get() == 1 {
                    // This child's slot is freed once it ends (no handle): recycled next.
                    drop(n.spawn(async { child_polls.set(child_polls.get() + 1) }));
                    cx.waker().wake_by_ref();
                } else {
                    // This handle is kept but never awaited: the child's end wakes nobody.
                    held.get_or_insert_with(|| {
                        n.spawn(async { child_polls.set(child_polls.get() + 1) })
                    });
                }
                Poll::<()>::Pending
            })
            .await;
        }));
        let mut cx = Context::from_waker(Waker::noop());
        for _ in 0..3 {
            assert!(fut.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(child_polls.get(), 2);
        // Woken once by itself, then by nobody.
        assert_eq!(body_polls.get(), 2);
    }
}
