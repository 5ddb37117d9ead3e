//! The scope a nursery's body receives as `n`: it places children in the nursery's storage and
//! hands out [`ChildHandle`]s, both bounded by the invariant `'scope` lifetime.
//!
//! Invariants (cited as "slot rule N"):
//! 1. Slot `i`'s [`Entry`] says what its payload holds: `Running` a pinned child future,
//!    `Done` its output, anything else nothing. The payload never moves while it holds a value.
//! 2. A slot is freed (payload back to the arena, index back to the free list) only when it
//!    holds nothing and no handle refers to it, so a handle's index always names its own child.
//! 3. Only the thread that owns the nursery touches entries, the arena and the run queue (the
//!    scope is neither `Send` nor `Sync`), and no reference into them is held across a call
//!    that may run user code (a poll or a drop), which may spawn or drop handles re-entrantly.

use core::cell::{Cell, RefCell, UnsafeCell};
use core::future::Future;
use core::marker::PhantomData;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, Waker};
use std::collections::HashMap;

use super::arena::{self, Arena};
use super::outcome::ChildOutput;
use super::wake::{HubRef, WakeNode};
use core::alloc::Layout;
use core::time::Duration;

use crate::executor::AsyncCancel;

/// How long cancellable children may clean up unless the body says otherwise.
const DEFAULT_GRACE: Duration = Duration::from_secs(1);

/// What a slot holds (slot rule 1).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum State {
    /// On the free list.
    Free,
    /// A child future that has not finished.
    Running,
    /// The nursery is ending and the child runs its async cleanup ([`AsyncCancel`]).
    Cancelling,
    /// The child finished and its future is being dropped.
    Finishing,
    /// The child's output, waiting for its handle.
    Done,
    /// Nothing: the child was cancelled or its output taken, and a handle still refers here.
    Empty,
}

/// What one poll of a child did.
pub(super) enum Polled {
    Pending,
    Done,
    /// The child's output ended the nursery; it is in the scope's `failure` cell.
    Failed,
}

/// Type-erased operations on one child type, one static table per type.
pub(super) struct VTable {
    /// Polls the future; on completion drops it and stores the output (or the failure).
    poll: unsafe fn(*mut u8, &mut Context<'_>, &Cell<State>, *const ()) -> Polled,
    drop_future: unsafe fn(*mut u8),
    drop_output: unsafe fn(*mut u8),
    /// Drives the future's async cleanup, for children spawned with `spawn_cancellable`.
    poll_cancel: Option<unsafe fn(*mut u8, &mut Context<'_>) -> Poll<()>>,
    class: usize,
}

static NO_CHILD: VTable = VTable {
    poll: |_, _, _, _| Polled::Pending,
    drop_future: |_| {},
    drop_output: |_| {},
    poll_cancel: None,
    class: 0,
};

/// A child's payload: its future, then, in the same place, its output.
#[repr(C)]
union Stage<F: Future> {
    future: core::mem::ManuallyDrop<F>,
    output: core::mem::ManuallyDrop<F::Output>,
}

struct VTableOf<F, R>(PhantomData<(F, R)>);

impl<F: Future, R> VTableOf<F, R>
where
    F::Output: ChildOutput<R>,
{
    const TABLE: &'static VTable = &VTable {
        poll: poll_child::<F, R>,
        drop_future: drop_as::<F>,
        drop_output: drop_as::<F::Output>,
        poll_cancel: None,
        class: arena::class_of(Layout::new::<Stage<F>>()),
    };
}

impl<F: Future + AsyncCancel, R> VTableOf<F, R>
where
    F::Output: ChildOutput<R>,
{
    const CANCELLABLE: &'static VTable = &VTable {
        poll_cancel: Some(poll_cancel_as::<F>),
        ..*Self::TABLE
    };
}

/// # Safety
/// `payload` holds a pinned, unfinished `F` (slot rule 1).
unsafe fn poll_cancel_as<F: AsyncCancel>(payload: *mut u8, cx: &mut Context<'_>) -> Poll<()> {
    // SAFETY: the payload holds a live `F` that never moves (slot rule 1).
    unsafe { Pin::new_unchecked(&mut *payload.cast::<F>()) }.poll_cancel(cx)
}

/// # Safety
/// `payload` holds a pinned `F` (slot rule 1), `state` is its slot's state and `failure` points
/// to the scope's `Cell<Option<R>>`.
unsafe fn poll_child<F: Future, R>(
    payload: *mut u8,
    cx: &mut Context<'_>,
    state: &Cell<State>,
    failure: *const (),
) -> Polled
where
    F::Output: ChildOutput<R>,
{
    // SAFETY: the payload holds a live `F` that never moves (slot rule 1).
    let future = unsafe { Pin::new_unchecked(&mut *payload.cast::<F>()) };
    let Poll::Ready(output) = future.poll(cx) else {
        return Polled::Pending;
    };
    // If dropping the future panics, the slot must not be dropped again.
    state.set(State::Finishing);
    // SAFETY: the future finished; it is dropped in place exactly once.
    unsafe { ptr::drop_in_place(payload.cast::<F>()) };
    match output.settle() {
        Ok(output) => {
            // SAFETY: the slot is laid out for `Stage<F>`, whose fields start at its start.
            unsafe { payload.cast::<F::Output>().write(output) };
            state.set(State::Done);
            Polled::Done
        }
        Err(end) => {
            state.set(State::Empty);
            // SAFETY: the caller passes the scope's failure cell, typed by the same `R`.
            let failure = unsafe { &*failure.cast::<Cell<Option<R>>>() };
            // The first failure wins (the driver stops at it anyway).
            let first = failure.take();
            failure.set(Some(first.unwrap_or(end)));
            Polled::Failed
        }
    }
}

/// # Safety
/// `payload` holds a live `T` that is not used afterwards.
unsafe fn drop_as<T>(payload: *mut u8) {
    // SAFETY: per the contract.
    unsafe { ptr::drop_in_place(payload.cast::<T>()) }
}

/// One child slot's bookkeeping, kept by the nursery's owner (slot rule 3).
pub(super) struct Entry {
    payload: Cell<*mut u8>,
    vtable: Cell<&'static VTable>,
    /// Who awaits the handle: [`NO_WAITER`], a slot of this nursery (the body is 0) woken
    /// without touching a refcount, or [`FOREIGN`] for a waker kept in `Core::foreign`.
    /// On the free list: the next free slot.
    waiter: Cell<u32>,
    state: Cell<State>,
    has_handle: Cell<bool>,
}

impl Entry {
    /// An entry of a slot never used.
    pub(super) const fn vacant() -> Entry {
        Entry {
            payload: Cell::new(ptr::null_mut()),
            vtable: Cell::new(&NO_CHILD),
            waiter: Cell::new(NO_WAITER),
            state: Cell::new(State::Free),
            has_handle: Cell::new(false),
        }
    }
}

/// Nobody awaits the handle.
const NO_WAITER: u32 = u32::MAX;
/// The handle is awaited from outside this nursery; the waker is in `Core::foreign`.
const FOREIGN: u32 = u32::MAX - 1;

/// The type-erased core of a nursery: children, their wake nodes and the run queue.
pub(super) struct Core {
    /// Taken apart in `Drop` (to be recycled or freed), hence `ManuallyDrop`.
    pub(super) hub: ManuallyDrop<HubRef>,
    arena: ManuallyDrop<UnsafeCell<Arena>>,
    /// Slot indices handed out so far (slot 0 is the body).
    len: Cell<u32>,
    /// Head of the free slot list; 0 when empty.
    free: Cell<u32>,
    /// Children not finished yet.
    live: Cell<usize>,
    /// Set once the nursery cancels: children spawned afterwards are dropped unpolled.
    cancelled: Cell<bool>,
    /// Wakers of handles awaited from outside this nursery (rare), by slot.
    foreign: RefCell<HashMap<u32, Waker>>,
    /// How long cancellable children may spend on their async cleanup.
    pub(super) grace: Cell<Duration>,
    /// The owner's run queue: nodes to poll this turn, oldest first (wake rule 3).
    run_head: Cell<*const WakeNode>,
    run_tail: Cell<*const WakeNode>,
}

impl Core {
    pub(super) fn new() -> Self {
        let Storage { hub, arena } = Storage::take_spare();
        let core = Core {
            hub: ManuallyDrop::new(hub),
            arena: ManuallyDrop::new(arena),
            len: Cell::new(1),
            free: Cell::new(0),
            live: Cell::new(0),
            cancelled: Cell::new(false),
            grace: Cell::new(DEFAULT_GRACE),
            foreign: RefCell::new(HashMap::new()),
            run_head: Cell::new(ptr::null()),
            run_tail: Cell::new(ptr::null()),
        };
        core.hub.ensure(0);
        core
    }

    #[inline]
    fn entry(&self, index: u32) -> &Entry {
        debug_assert!(index != 0 && index < self.len.get());
        // Slot rule 3: the entry is the owner's part of the node.
        &self.hub.node(index).entry
    }

    /// A free slot index, creating one (and its chunk) when none is free.
    #[inline]
    fn alloc_index(&self) -> u32 {
        let free = self.free.get();
        if free != 0 {
            self.free.set(self.entry(free).waiter.get());
            return free;
        }
        let index = self.len.get();
        assert!(
            index < u32::MAX,
            "a nursery holds at most u32::MAX - 1 children at once"
        );
        self.hub.ensure(index);
        self.len.set(index + 1);
        index
    }

    /// Records who awaits slot `index`'s handle: a slot of this nursery by index (no clone,
    /// no refcount), anyone else by a cloned waker.
    #[inline]
    fn set_waiter(&self, index: u32, waker: &Waker) {
        let entry = self.entry(index);
        match self.hub.local_index(waker) {
            Some(local) => {
                if entry.waiter.get() == FOREIGN {
                    self.foreign.borrow_mut().remove(&index);
                }
                entry.waiter.set(local);
            }
            None => {
                let mut foreign = self.foreign.borrow_mut();
                match foreign.get(&index) {
                    Some(w) if w.will_wake(waker) => {}
                    _ => drop(foreign.insert(index, waker.clone())),
                }
                entry.waiter.set(FOREIGN);
            }
        }
    }

    /// Wakes whoever awaits slot `index`'s handle, once.
    #[inline]
    fn wake_waiter(&self, index: u32) {
        let entry = self.entry(index);
        match entry.waiter.replace(NO_WAITER) {
            NO_WAITER => {}
            FOREIGN => {
                let waker = self.foreign.borrow_mut().remove(&index);
                if let Some(waker) = waker {
                    waker.wake();
                }
            }
            // A slot of this nursery: straight onto the run queue, no atomics but its flag.
            local => self.schedule(local),
        }
    }

    /// Drops the record of who awaits slot `index`'s handle.
    #[inline]
    fn forget_waiter(&self, index: u32) {
        let entry = self.entry(index);
        if entry.waiter.replace(NO_WAITER) == FOREIGN {
            let waker = self.foreign.borrow_mut().remove(&index);
            drop(waker);
        }
    }

    /// Returns a slot that holds nothing and has no handle (slot rule 2).
    #[inline]
    fn free_slot(&self, index: u32) {
        let entry = self.entry(index);
        debug_assert!(!entry.has_handle.get());
        debug_assert!(matches!(entry.state.get(), State::Empty | State::Done));
        entry.state.set(State::Free);
        self.forget_waiter(index);
        // SAFETY: the payload came from the arena for this vtable's class and holds nothing.
        unsafe { (*self.arena.get()).free(entry.vtable.get().class, entry.payload.get()) };
        entry.waiter.set(self.free.get());
        self.free.set(index);
    }

    /// Places a child and queues its first poll; `vtable` is `F`'s.
    #[inline]
    fn spawn<F: Future>(&self, future: F, vtable: &'static VTable) -> u32 {
        let index = self.alloc_index();
        let entry = self.entry(index);
        // SAFETY: owner only (slot rule 3); no other arena borrow is live here.
        let payload = unsafe { (*self.arena.get()).alloc(vtable.class) };
        // SAFETY: the slot is sized and aligned for `Stage<F>` (arena rule 1) and empty.
        unsafe { payload.cast::<F>().write(future) };
        entry.payload.set(payload);
        entry.vtable.set(vtable);
        entry.has_handle.set(true);
        if self.cancelled.get() {
            entry.state.set(State::Empty);
            // SAFETY: the future was just written and is dropped once, unpolled.
            unsafe { (vtable.drop_future)(payload) };
            return index;
        }
        entry.state.set(State::Running);
        self.live.set(self.live.get() + 1);
        self.schedule(index);
        index
    }

    /// Queues node `index` on the run queue unless it is queued already (wake rule 3).
    #[inline]
    pub(super) fn schedule(&self, index: u32) {
        let node = self.hub.node(index);
        if node.mark_queued(self.hub.alone()) {
            node.set_next(None);
            self.push_run(node, node);
        }
    }

    /// Appends an owner-held list of queued nodes to the run queue.
    #[inline]
    fn push_run(&self, first: &WakeNode, last: &WakeNode) {
        let tail = self.run_tail.get();
        if tail.is_null() {
            self.run_head.set(first);
        } else {
            // SAFETY: the tail is a live queued node on the owner's list (wake rule 2, 3).
            unsafe { (*tail).set_next(Some(first)) };
        }
        self.run_tail.set(last);
    }

    /// Moves the nodes woken since the last turn onto the run queue.
    #[inline]
    pub(super) fn refill(&self) {
        if let Some((first, last)) = self.hub.take_ready() {
            self.push_run(first, last);
        }
    }

    /// The next node on the run queue. Nodes woken meanwhile wait for the next [`Core::refill`],
    /// so a child that wakes itself is polled once per turn, not until the budget runs out.
    #[inline]
    pub(super) fn next_ready(&self) -> Option<&WakeNode> {
        if self.run_head.get().is_null() {
            return None;
        }
        // SAFETY: a non-null head is a live node of this hub (wake rule 2).
        let node = unsafe { &*self.run_head.get() };
        match node.next() {
            Some(next) => self.run_head.set(next),
            None => {
                self.run_head.set(ptr::null());
                self.run_tail.set(ptr::null());
            }
        }
        node.clear_queued(self.hub.alone());
        Some(node)
    }

    /// Whether a node waits to be polled.
    #[inline]
    pub(super) fn has_ready(&self) -> bool {
        !self.run_head.get().is_null() || self.hub.has_ready()
    }

    /// Children not finished yet.
    #[inline]
    pub(super) fn live(&self) -> usize {
        self.live.get()
    }

    /// Polls child `index` if it is still running.
    ///
    /// # Safety
    /// `failure` points to the scope's `Cell<Option<R>>` for the `R` children were spawned with.
    #[inline]
    pub(super) unsafe fn poll_child(&self, node: &WakeNode, failure: *const ()) -> Polled {
        let index = node.index();
        // Chunks never move, so this entry stays put while the child spawns or drops handles.
        let entry = &node.entry;
        let vtable = entry.vtable.get();
        let waker = node.waker();
        let mut cx = Context::from_waker(&waker);
        match entry.state.get() {
            State::Running => {}
            State::Cancelling => return self.poll_cleanup(index, &mut cx),
            // A stale wake for a finished or recycled slot.
            _ => return Polled::Pending,
        }
        // SAFETY: the slot is `Running`, so its payload is this vtable's pinned future (slot
        // rule 1); `failure` is as the caller promised.
        let polled = unsafe { (vtable.poll)(entry.payload.get(), &mut cx, &entry.state, failure) };
        if !matches!(polled, Polled::Pending) {
            self.live.set(self.live.get() - 1);
            if !entry.has_handle.get() {
                if entry.state.get() == State::Done {
                    entry.state.set(State::Empty);
                    // SAFETY: the output was just written and nobody can take it any more.
                    unsafe { (vtable.drop_output)(entry.payload.get()) };
                }
                self.free_slot(index);
            } else {
                self.wake_waiter(index);
            }
        }
        polled
    }

    /// Polls the async cleanup of a cancelling child; drops it once the cleanup is done.
    fn poll_cleanup(&self, index: u32, cx: &mut Context<'_>) -> Polled {
        let entry = self.entry(index);
        let vtable = entry.vtable.get();
        let poll_cancel = vtable
            .poll_cancel
            .expect("only cancellable children clean up");
        // SAFETY: a `Cancelling` slot holds its unfinished pinned future (slot rule 1), whose
        // vtable came from `spawn_cancellable`.
        if unsafe { poll_cancel(entry.payload.get(), cx) }.is_pending() {
            return Polled::Pending;
        }
        let entry = self.entry(index);
        entry.state.set(State::Empty);
        self.live.set(self.live.get() - 1);
        // SAFETY: the cleanup finished; the future is dropped in place exactly once.
        unsafe { (vtable.drop_future)(entry.payload.get()) };
        let entry = self.entry(index);
        if !entry.has_handle.get() {
            self.free_slot(index);
        }
        Polled::Done
    }

    /// Starts ending the nursery: drops every child and unclaimed output, except that children
    /// spawned with `spawn_cancellable` are queued to run their async cleanup. Returns how many
    /// do; later spawns are refused.
    pub(super) fn begin_cancel(&self) -> usize {
        self.cancelled.set(true);
        let mut cleaning = 0;
        let mut index = 1;
        while index < self.len.get() {
            let entry = self.entry(index);
            if entry.state.get() == State::Running && entry.vtable.get().poll_cancel.is_some() {
                entry.state.set(State::Cancelling);
                self.schedule(index);
                cleaning += 1;
            } else {
                self.cancel_slot(index);
            }
            index += 1;
        }
        cleaning
    }

    /// Drops every child and every unclaimed output, and refuses later spawns. Handles that
    /// are still alive find their slot empty.
    pub(super) fn cancel_all(&self) {
        self.cancelled.set(true);
        let mut index = 1;
        // Dropping a child may drop handles or (refused) spawn; re-read the length each step.
        while index < self.len.get() {
            self.cancel_slot(index);
            index += 1;
        }
    }

    /// Drops what slot `index` holds.
    fn cancel_slot(&self, index: u32) {
        {
            let entry = self.entry(index);
            let vtable = entry.vtable.get();
            match entry.state.get() {
                State::Running | State::Cancelling => {
                    entry.state.set(State::Empty);
                    self.live.set(self.live.get() - 1);
                    // SAFETY: a `Running` slot holds its live future (slot rule 1), dropped once.
                    unsafe { (vtable.drop_future)(entry.payload.get()) };
                }
                State::Done => {
                    entry.state.set(State::Empty);
                    // SAFETY: a `Done` slot holds its output (slot rule 1), dropped once.
                    unsafe { (vtable.drop_output)(entry.payload.get()) };
                }
                State::Finishing => {
                    // Its drop panicked half-way: what is left is leaked, never dropped twice.
                    entry.state.set(State::Empty);
                    self.live.set(self.live.get() - 1);
                }
                State::Free | State::Empty => {}
            }
            let entry = self.entry(index);
            self.forget_waiter(index);
            if entry.state.get() == State::Empty && !entry.has_handle.get() {
                self.free_slot(index);
            }
        }
    }
}

// Entries are plain data: freeing or reusing their chunks needs no drop.
const _: () = assert!(!core::mem::needs_drop::<Entry>());

impl Drop for Core {
    fn drop(&mut self) {
        // SAFETY: both fields are taken once, here, and not used afterwards.
        let (hub, arena) = unsafe {
            (
                ManuallyDrop::take(&mut self.hub),
                ManuallyDrop::take(&mut self.arena),
            )
        };
        if self.live.get() != 0 {
            // A child's drop panicked while the nursery was cancelling, so some children were
            // never dropped. They are pinned: their memory must stay as it is (leaked), never
            // be freed or reused without their destructor.
            core::mem::forget(arena);
            return;
        }
        // Children were dropped by the driver; only memory is left (arena rule 2).
        Storage { hub, arena }.recycle(self.len.get());
    }
}

/// A nursery's memory: its hub (wake nodes with their entries) and its arena.
/// When a nursery finishes with no waker left outstanding, the next nursery on the same
/// thread reuses it, so a warm thread spawns without allocating or touching fresh pages.
struct Storage {
    hub: HubRef,
    arena: UnsafeCell<Arena>,
}

/// Nurseries that used more slots than this give their memory back instead of keeping it.
const RECYCLE_LIMIT: u32 = 1 << 20;

thread_local! {
    static SPARE: Cell<Option<Storage>> = const { Cell::new(None) };
}

impl Storage {
    /// The storage the last nursery on this thread left, or new storage.
    fn take_spare() -> Storage {
        SPARE
            .try_with(Cell::take)
            .ok()
            .flatten()
            .unwrap_or_else(|| Storage {
                hub: HubRef::new(),
                arena: UnsafeCell::new(Arena::new()),
            })
    }

    /// Keeps this storage for the next nursery on this thread if nobody else can reach it
    /// (no waker holds the hub) and it is not too large; frees it otherwise.
    fn recycle(self, len: u32) {
        if len <= RECYCLE_LIMIT && self.hub.reset_if_unshared() {
            let _ = SPARE.try_with(|spare| {
                if let Some(old) = spare.replace(None) {
                    // Keep the larger of the two.
                    let keep_old = old.hub.capacity() > self.hub.capacity();
                    spare.set(Some(if keep_old { old } else { self }));
                } else {
                    spare.set(Some(self));
                }
            });
        }
    }
}

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
pub struct Scope<'scope, 'env: 'scope, R: 'env> {
    pub(super) core: Core,
    pub(super) failure: Failure<R>,
    _local: PhantomData<LocalTree>,
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// Makes [`Scope`] and [`ChildHandle`] neither `Send` nor `Sync`: a nursery and its children
/// (which need not be `Send`) form one local tree, polled by the thread that polls it.
struct LocalTree(PhantomData<*const ()>);

/// The first output that ended the nursery early.
pub(super) struct Failure<R>(pub(super) Cell<Option<R>>);

// SAFETY: `Core` and `Failure` are reachable only through a `Scope` or a `ChildHandle`, and
// both carry `LocalTree`, so neither is ever sent to or shared with another thread. These
// impls only make a compile error name that one marker instead of every internal field.
unsafe impl Send for Core {}
// SAFETY: as above.
unsafe impl Sync for Core {}
// SAFETY: as above.
unsafe impl<R> Send for Failure<R> {}
// SAFETY: as above.
unsafe impl<R> Sync for Failure<R> {}

impl<'scope, 'env, R> Scope<'scope, 'env, R> {
    pub(super) fn new() -> Self {
        Scope {
            core: Core::new(),
            failure: Failure(Cell::new(None)),
            _local: PhantomData,
            _scope: PhantomData,
            _env: PhantomData,
        }
    }

    /// Starts `child` inside the nursery; it is first polled in the nursery's next turn.
    ///
    /// The child is stored in the nursery (no task, no box) and polled only when woken. In a
    /// nursery whose body returns `Result<_, E>` a child returns `()` or `Result<_, E>`, and
    /// its `Err` cancels the nursery (see [`ChildOutput`]).
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
    #[inline]
    pub fn spawn<F>(&'scope self, child: F) -> ChildHandle<'scope, F::Output>
    where
        F: Future + 'scope,
        F::Output: ChildOutput<R>,
    {
        let index = self.core.spawn(child, VTableOf::<F, R>::TABLE);
        ChildHandle {
            core: &self.core,
            index,
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
    pub fn spawn_cancellable<F>(&'scope self, child: F) -> ChildHandle<'scope, F::Output>
    where
        F: Future + AsyncCancel + 'scope,
        F::Output: ChildOutput<R>,
    {
        let index = self.core.spawn(child, VTableOf::<F, R>::CANCELLABLE);
        ChildHandle {
            core: &self.core,
            index,
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
        self.core.grace.set(grace);
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
        self.core.live()
    }
}

impl<R> core::fmt::Debug for Scope<'_, '_, R> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
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
pub struct ChildHandle<'scope, T> {
    core: &'scope Core,
    index: u32,
    taken: bool,
    _local: PhantomData<LocalTree>,
    _out: PhantomData<(T, &'scope mut &'scope ())>,
}

impl<T> ChildHandle<'_, T> {
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
        !self.taken && self.core.entry(self.index).state.get() == State::Done
    }
}

// A handle never holds its `T`; the output lives in the nursery's slot.
impl<T> Unpin for ChildHandle<'_, T> {}

impl<T> Future for ChildHandle<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        assert!(
            !self.taken,
            "a child handle was polled after it returned the output"
        );
        let core = self.core;
        let entry = core.entry(self.index);
        match entry.state.get() {
            State::Done => {
                entry.state.set(State::Empty);
                entry.has_handle.set(false);
                // SAFETY: a `Done` slot holds the child's output (slot rule 1), of type `T`
                // since this handle was made by `spawn` for that child; read once.
                let output = unsafe { entry.payload.get().cast::<T>().read() };
                self.taken = true;
                core.free_slot(self.index);
                Poll::Ready(output)
            }
            State::Running | State::Cancelling | State::Finishing => {
                core.set_waiter(self.index, cx.waker());
                Poll::Pending
            }
            // Cancelled: the nursery is ending, so whoever awaits this is about to be dropped.
            State::Empty | State::Free => Poll::Pending,
        }
    }
}

impl<T> Drop for ChildHandle<'_, T> {
    fn drop(&mut self) {
        if self.taken {
            return;
        }
        let entry = self.core.entry(self.index);
        entry.has_handle.set(false);
        self.core.forget_waiter(self.index);
        match entry.state.get() {
            State::Done => {
                entry.state.set(State::Empty);
                // SAFETY: a `Done` slot holds the output (slot rule 1); nobody can take it now.
                unsafe { (entry.vtable.get().drop_output)(entry.payload.get()) };
                self.core.free_slot(self.index);
            }
            State::Empty => self.core.free_slot(self.index),
            State::Running | State::Cancelling | State::Finishing | State::Free => {}
        }
    }
}

impl<T> core::fmt::Debug for ChildHandle<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ChildHandle")
            .field("index", &self.index)
            .field("finished", &self.is_finished())
            .finish()
    }
}
