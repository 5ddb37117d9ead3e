//! The type-erased core of a nursery: slot bookkeeping, the run queue, spawning, polling and
//! cancelling children, and the recycling of a finished nursery's memory (slot rules in
//! `slot`).

use core::cell::{Cell, RefCell, UnsafeCell};
use core::future::Future;
use core::mem::ManuallyDrop;
use core::ptr;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::task::{Context, Waker};
use core::time::Duration;
use std::any::Any;
use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::arena::Arena;
use super::batch::{self, Block};
use super::kind::this_thread;
use super::pool;
use super::slot::{Entry, FOREIGN, Kind, NO_WAITER, PollFn, Polled, State, VTable};
use super::wake::{HubRef, WakeNode};

/// A caught panic's payload.
pub(super) type Panic = Box<dyn Any + Send>;

/// How long cancellable children may clean up unless the body says otherwise: a second, in
/// nanoseconds.
const DEFAULT_GRACE_NANOS: u64 = 1_000_000_000;

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
    pub(super) live: Cell<usize>,
    /// The record a batch's walk is polling (or last polled, in the walk now going on), null
    /// outside walks: its handle, polled or dropped by code inside that poll, leaves it be
    /// (batch rule 1).
    pub(super) batch_cur: Cell<*mut batch::Head>,
    /// In a walk of a batch's fresh records, the records walked that did not finish there
    /// (or that their own node counted off `live`); `batch::NOT_WALKING` outside one. That
    /// walk counts its finished children off `live` as it ends, not one by one (see
    /// [`Core::live`]): a decrement of `live` per child would chain each child's poll to the
    /// one before through memory.
    pub(super) batch_kept: Cell<u32>,
    /// Set once the nursery cancels: children spawned afterwards are dropped unpolled.
    pub(super) cancelled: Cell<bool>,
    /// The batch spawns of its type may append to, or `batch::NO_BLOCK` (batch rule 2).
    pub(super) open: Cell<*mut Block>,
    /// The node whose waker a batch record's first poll gets, or null until needed.
    pub(super) probe: Cell<*const WakeNode>,
    /// A record being polled registered the probe's index as a handle's waiter: it gets the
    /// probe as its node even if it only yielded (batch rule 4).
    pub(super) probe_claimed: Cell<bool>,
    /// Wakers of handles awaited from outside this nursery (rare), by slot.
    /// Boxed on first use: the map itself is 48 bytes, kept out of the nursery future.
    #[expect(
        clippy::box_collection,
        reason = "the box keeps the rarely used map out of every nursery future"
    )]
    foreign: RefCell<Option<Box<HashMap<u32, Waker>>>>,
    /// In a `Shared` tree, the thread polling (or dropping) the nursery: the only one allowed
    /// to use its scope and handles.
    owner: AtomicUsize,
    /// How long cancellable children may spend on their async cleanup, in nanoseconds (half
    /// a `Duration`'s size, in every nursery future; 584 years at most).
    grace: Cell<u64>,
    /// The owner's run queue: nodes to poll this turn, oldest first (wake rule 3).
    run_head: Cell<*const WakeNode>,
    pub(super) run_tail: Cell<*const WakeNode>,
    /// Nodes that woke themselves in this turn's first lap: polled again in its second lap
    /// (wake rules 3, 8).
    again_head: Cell<*const WakeNode>,
    again_tail: Cell<*const WakeNode>,
    /// Nodes that woke themselves in this turn's second lap, for the next turn (wake rules 3,
    /// 8).
    next_head: Cell<*const WakeNode>,
    next_tail: Cell<*const WakeNode>,
    /// This turn is in its second lap (wake rule 8).
    late: Cell<bool>,
}

impl Core {
    /// The core of a nursery; `local` says its tree is [`Local`](super::Local).
    pub(super) fn new(local: bool) -> Self {
        let core = Core {
            hub: ManuallyDrop::new(pool::take_hub()),
            arena: ManuallyDrop::new(UnsafeCell::new(Arena::new())),
            len: Cell::new(1),
            free: Cell::new(0),
            live: Cell::new(0),
            batch_cur: Cell::new(ptr::null_mut()),
            batch_kept: Cell::new(batch::NOT_WALKING),
            cancelled: Cell::new(false),
            open: Cell::new(batch::no_block()),
            probe: Cell::new(ptr::null()),
            probe_claimed: Cell::new(false),
            grace: Cell::new(DEFAULT_GRACE_NANOS),
            owner: AtomicUsize::new(0),
            foreign: RefCell::new(None),
            run_head: Cell::new(ptr::null()),
            run_tail: Cell::new(ptr::null()),
            again_head: Cell::new(ptr::null()),
            again_tail: Cell::new(ptr::null()),
            next_head: Cell::new(ptr::null()),
            next_tail: Cell::new(ptr::null()),
            late: Cell::new(false),
        };
        core.hub.set_local(local);
        core.hub.ensure(0, Entry::vacant(), false);
        core
    }

    #[inline]
    pub(super) fn entry(&self, index: u32) -> &Entry {
        &self.node(index).entry
    }

    /// The wake node of child slot `index`, which carries its [`Entry`] (slot rule 3: the
    /// entry is the owner's part of the node). Callers look a slot up once and pass the node
    /// on, since finding it takes a little arithmetic.
    #[inline]
    pub(super) fn node(&self, index: u32) -> &WakeNode {
        debug_assert!(index != 0 && index < self.len.get());
        self.hub.node(index)
    }

    /// A slot for a child with `vtable`, its entry set to `state` with a live handle, and its
    /// payload: a free slot, and `false`; or a new one when none is free, its node written
    /// with its `queued` flag set to `queued`, and `true`. The child is not written yet.
    #[inline(always)]
    fn alloc_node(
        &self,
        vtable: &'static VTable,
        state: State,
        queued: bool,
    ) -> (&WakeNode, *mut u8, bool) {
        let free = self.free.get();
        if free != 0 {
            let node = self.node(free);
            let entry = &node.entry;
            self.free.set(entry.waiter());
            let old = entry.vtable.get().class;
            let mut payload = entry.payload.get();
            if old != vtable.class {
                // SAFETY: owner only (slot rule 3); a free slot keeps the payload it last held,
                // from the arena for its old class, holding nothing (slot rule 4), or none.
                unsafe {
                    let arena = &mut *self.arena.get();
                    if !payload.is_null() {
                        arena.free(old, payload);
                    }
                    payload = arena.alloc(vtable.class);
                }
            }
            entry.replace_with(Entry::spawned(payload, vtable, state));
            return (node, payload, false);
        }
        // SAFETY: owner only (slot rule 3); no other arena borrow is live here.
        let payload = unsafe { (*self.arena.get()).alloc(vtable.class) };
        let entry = Entry::spawned(payload, vtable, state);
        let index = self.len.get();
        // Written whole, once: a fresh node's memory is touched by this one write. `ensure`
        // refuses indices that would reach the waiter sentinels (a panic), so `len` counts
        // the index only once its node exists: cancelling walks every index below `len`.
        let node = self.hub.ensure(index, entry, queued);
        self.len.set(index + 1);
        (node, payload, true)
    }

    /// A node for `entry` with no payload of the arena's class scheme: a free slot (whose kept
    /// payload goes back to the arena), and `false`; or a new one written with its `queued`
    /// flag set to `queued`, and `true`.
    pub(super) fn take_node(&self, entry: Entry, queued: bool) -> (&WakeNode, bool) {
        let free = self.free.get();
        if free != 0 {
            let node = self.node(free);
            let old = &node.entry;
            self.free.set(old.waiter());
            let payload = old.payload.get();
            if !payload.is_null() {
                // SAFETY: owner only (slot rule 3); a free slot's payload is from the arena
                // for its vtable's class and holds nothing (slot rule 4).
                unsafe { (*self.arena.get()).free(old.vtable.get().class, payload) };
            }
            old.replace_with(entry);
            return (node, false);
        }
        let index = self.len.get();
        let node = self.hub.ensure(index, entry, queued);
        self.len.set(index + 1);
        (node, true)
    }

    /// A slot of `class` from the arena.
    pub(super) fn arena_alloc(&self, class: usize) -> *mut u8 {
        // SAFETY: owner only (slot rule 3); no other arena borrow is live here.
        unsafe { (*self.arena.get()).alloc(class) }
    }

    /// Gives a slot of `class` back to the arena.
    ///
    /// # Safety
    /// As for [`Arena::free`].
    pub(super) unsafe fn arena_free(&self, class: usize, slot: *mut u8) {
        // SAFETY: owner only (slot rule 3); as the caller promised.
        unsafe { (*self.arena.get()).free(class, slot) }
    }

    /// Queues a node just taken for a child to poll: `fresh` says it was written queued.
    pub(super) fn schedule_new(&self, node: &WakeNode, fresh: bool) {
        if fresh {
            self.push_run(node, node);
        } else {
            self.schedule_node(node);
        }
    }

    /// Puts `node`, just taken off the run queue, back at its front, unless it is queued
    /// already (a stale wake's).
    pub(super) fn push_front(&self, node: &WakeNode) {
        if node.mark_queued_by_owner(self.hub.alone()) {
            let head = self.run_head.get();
            // SAFETY: a non-null head is a live queued node of this hub (wake rule 2).
            node.set_next(unsafe { head.as_ref() });
            self.run_head.set(node);
            if head.is_null() {
                self.run_tail.set(node);
            }
        }
    }

    /// Slot indices handed out so far (the body's included), for tests that count nodes.
    #[cfg(test)]
    pub(super) fn slots(&self) -> u32 {
        self.len.get()
    }

    /// Makes the current thread the one allowed to use the scope (a `Shared` tree's driver
    /// calls this as it starts to poll or drop the nursery).
    pub(super) fn enter(&self) {
        self.owner.store(this_thread(), Ordering::Relaxed);
    }

    /// Panics unless the current thread is the one polling the nursery.
    #[inline]
    pub(super) fn check_owner(&self) {
        if self.owner.load(Ordering::Relaxed) != this_thread() {
            panic!("a `send` nursery's scope and handles are used only by the thread polling it");
        }
    }

    /// Records who awaits slot `index`'s handle: a slot of this nursery by index (no clone,
    /// no refcount), anyone else by a cloned waker.
    #[inline]
    pub(super) fn set_waiter(&self, node: &WakeNode, waker: &Waker) {
        let (index, entry) = (node.index(), &node.entry);
        match self.hub.local_index(waker) {
            Some(local) => {
                if entry.waiter() == FOREIGN {
                    self.take_foreign(index);
                }
                entry.set_waiter(local);
                let probe = self.probe.get();
                // SAFETY: a non-null probe is a live node of this hub (wake rule 2).
                if !probe.is_null() && unsafe { (*probe).index() } == local {
                    // A batch record awaits by the probe's index: it must keep that node.
                    self.probe_claimed.set(true);
                }
            }
            None => {
                let mut foreign = self.foreign.borrow_mut();
                let foreign = foreign.get_or_insert_with(Box::default);
                match foreign.get(&index) {
                    Some(w) if w.will_wake(waker) => {}
                    _ => drop(foreign.insert(index, waker.clone())),
                }
                entry.set_waiter(FOREIGN);
            }
        }
    }

    /// The waker kept for slot `index`'s handle awaited from outside, if any; dropped by the
    /// caller, outside the borrow.
    fn take_foreign(&self, index: u32) -> Option<Waker> {
        self.foreign.borrow_mut().as_mut()?.remove(&index)
    }

    /// Wakes whoever awaits slot `index`'s handle, once.
    #[inline]
    pub(super) fn wake_waiter(&self, node: &WakeNode) {
        match node.entry.replace_waiter(NO_WAITER) {
            NO_WAITER => {}
            FOREIGN => {
                let waker = self.take_foreign(node.index());
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
    pub(super) fn forget_waiter(&self, node: &WakeNode) {
        if node.entry.replace_waiter(NO_WAITER) == FOREIGN {
            let waker = self.take_foreign(node.index());
            drop(waker);
        }
    }

    /// Returns a slot that holds nothing and has no handle (slot rule 2).
    #[inline]
    pub(super) fn free_slot(&self, node: &WakeNode) {
        let entry = &node.entry;
        debug_assert!(!entry.has_handle());
        debug_assert!(matches!(entry.state(), State::Empty | State::Done));
        // Nobody awaits a slot that holds nothing and has no handle: whoever cleared
        // `has_handle` forgot the waiter, or found none, and only a handle sets one.
        debug_assert_eq!(entry.waiter(), NO_WAITER);
        if entry.vtable.get().kind == Kind::Borrowed {
            // The payload is a batch record's stage: the record goes, not to the next child.
            let rec = batch::of_stage(entry.payload.get());
            entry.clear_payload();
            // SAFETY: a borrowed entry's payload is the stage of a live record (batch rule 1),
            // which nothing uses after this.
            unsafe { self.release(rec) };
        }
        // The payload stays with the slot for its next child (slot rule 4).
        entry.set_free(self.free.get());
        self.free.set(node.index());
    }

    /// Places a child and queues its first poll; `vtable` is `F`'s.
    #[inline(always)]
    pub(super) fn spawn<F: Future>(&self, future: F, vtable: &'static VTable) -> &WakeNode {
        if self.cancelled.get() {
            return self.spawn_refused(future, vtable);
        }
        let (node, payload, fresh) = self.alloc_node(vtable, State::Running, true);
        // SAFETY: the payload is a slot of `vtable.class`, sized and aligned for `Stage<F>`
        // (arena rule 1), and holds nothing.
        unsafe { payload.cast::<F>().write(future) };
        self.live.set(self.live.get() + 1);
        // A fresh node is written already queued and unlinked: no waker of it exists.
        self.schedule_new(node, fresh);
        node
    }

    /// A spawn after the nursery cancelled: the child gets a slot, which its handle finds
    /// empty, and is dropped unpolled.
    #[cold]
    #[inline(never)]
    fn spawn_refused<F: Future>(&self, future: F, vtable: &'static VTable) -> &WakeNode {
        let (node, payload, _) = self.alloc_node(vtable, State::Empty, false);
        // SAFETY: the payload is a slot of `vtable.class`, sized and aligned for `Stage<F>`
        // (arena rule 1), and holds nothing; the future written there is dropped once.
        unsafe {
            payload.cast::<F>().write(future);
            (vtable.drop_future)(payload);
        }
        node
    }

    /// Queues node `index` on the run queue unless it is queued already (wake rule 3).
    #[inline]
    pub(super) fn schedule(&self, index: u32) {
        self.schedule_node(self.hub.node(index));
    }

    /// Queues `node`, whose child is not being polled, on the run queue unless it is queued
    /// already (wake rules 3, 6).
    #[inline]
    fn schedule_node(&self, node: &WakeNode) {
        if node.mark_queued_by_owner(self.hub.alone()) {
            node.set_next(None);
            self.push_run(node, node);
        }
    }

    /// Appends an owner-held list of queued nodes to the run queue.
    #[inline]
    fn push_run(&self, first: &WakeNode, last: &WakeNode) {
        // The open batch's node is no longer the tail (batch rule 3).
        self.open.set(batch::no_block());
        append(&self.run_head, &self.run_tail, first, last);
    }

    /// Queues `node`, which woke itself while polled (wake rule 8): in the turn's first lap,
    /// for its second lap; in the second lap, for the next turn. `alone` is
    /// [`HubRef::alone`] read after that poll.
    #[inline]
    pub(super) fn requeue(&self, node: &WakeNode, alone: bool) {
        if node.mark_queued_by_owner(alone) {
            node.set_next(None);
            if self.late.get() {
                append(&self.next_head, &self.next_tail, node, node);
            } else {
                append(&self.again_head, &self.again_tail, node, node);
            }
        }
    }

    /// Starts a turn, in its first lap unless `late` (wake rule 8): after what the last turn's
    /// budget left on the run queue, moves the nodes that woke themselves in the last turn,
    /// then every node woken since, onto the run queue.
    #[inline]
    pub(super) fn refill(&self, late: bool) {
        self.late.set(late);
        self.hub.set_late(late);
        for (head, tail) in [
            (&self.again_head, &self.again_tail),
            (&self.next_head, &self.next_tail),
        ] {
            let first = head.replace(ptr::null());
            if !first.is_null() {
                let last = tail.replace(ptr::null());
                // SAFETY: a non-null list holds live queued nodes of this hub (wake rules 2, 3).
                unsafe { self.push_run(&*first, &*last) };
            }
        }
        if let Some((first, last)) = self.hub.take_ready() {
            self.push_run(first, last);
        }
    }

    /// Within a turn: moves the nodes the owner woke for siblings onto the run queue; false
    /// if there were none.
    #[inline]
    pub(super) fn refill_woken(&self) -> bool {
        match self.hub.take_woken() {
            Some((first, last)) => {
                self.push_run(first, last);
                true
            }
            None => false,
        }
    }

    /// Starts the turn's second lap (wake rule 8), if it is not in it yet and some node woke
    /// itself in the first: moves those nodes onto the run queue; false otherwise.
    #[cold]
    pub(super) fn start_second_lap(&self) -> bool {
        let first = self.again_head.get();
        if self.late.get() || first.is_null() {
            return false;
        }
        self.again_head.set(ptr::null());
        let last = self.again_tail.replace(ptr::null());
        self.late.set(true);
        self.hub.set_late(true);
        // SAFETY: a non-null list holds live queued nodes of this hub (wake rules 2, 3).
        unsafe { self.push_run(&*first, &*last) };
        true
    }

    /// The next node on the run queue, with its index. Nodes woken meanwhile wait for
    /// [`Core::refill_woken`] or [`Core::start_second_lap`] (the caller's), or for the next
    /// [`Core::refill`]. `alone` is [`HubRef::alone`] read since the owner last lent a waker
    /// to a poll (a stale `false` is always safe: wakers dropped elsewhere only ever make it
    /// true).
    #[inline]
    pub(super) fn next_ready(&self, alone: bool) -> Option<(&WakeNode, u32)> {
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
        let index = node.clear_queued(alone);
        Some((node, index))
    }

    /// Like [`Core::next_ready`], only if the next node on the run queue has `vtable`: the
    /// next child of a run of one type.
    #[inline(always)]
    pub(super) fn next_ready_of(
        &self,
        alone: bool,
        vtable: &'static VTable,
    ) -> Option<(&WakeNode, u32)> {
        let head = self.run_head.get();
        if head.is_null() {
            return None;
        }
        // SAFETY: a non-null head is a live node of this hub (wake rule 2).
        if !ptr::eq(unsafe { &*head }.entry.vtable.get(), vtable) {
            return None;
        }
        self.next_ready(alone)
    }

    /// Whether a node waits to be polled.
    #[inline]
    pub(super) fn has_ready(&self) -> bool {
        !self.run_head.get().is_null()
            || !self.again_head.get().is_null()
            || !self.next_head.get().is_null()
            || self.hub.has_ready()
    }

    /// How long cancellable children may spend on their async cleanup.
    pub(super) fn grace(&self) -> Duration {
        Duration::from_nanos(self.grace.get())
    }

    /// Sets [`Core::grace`] (saturated at 584 years).
    pub(super) fn set_grace(&self, grace: Duration) {
        self.grace
            .set(u64::try_from(grace.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Children not finished yet.
    #[inline]
    pub(super) fn live(&self) -> usize {
        let kept = self.batch_kept.get();
        if kept == batch::NOT_WALKING {
            return self.live.get();
        }
        // Called from a child's poll in a walk of fresh records: the records before the one
        // polled now finished, but for the kept ones.
        // SAFETY: in such a walk, `batch_cur` is the live record being polled (batch rule 5).
        let walked = unsafe { batch::walked(self.batch_cur.get()) };
        self.live.get() - (walked - kept as usize)
    }

    /// Polls child `index` with `poll` if it is still running.
    ///
    /// # Safety
    /// `failure` points to the scope's `Cell<Option<R>>` for the `R` children were spawned
    /// with, and `poll` polls the type of child the slot's vtable is for.
    #[inline(always)]
    pub(super) unsafe fn poll_child(
        &self,
        node: &WakeNode,
        failure: *const (),
        poll: PollFn,
    ) -> Polled {
        // Chunks never move, so this entry stays put while the child spawns or drops handles.
        let entry = &node.entry;
        if !entry.is(State::Running) {
            return self.poll_not_running(node);
        }
        let waker = node.waker();
        let mut cx = Context::from_waker(&waker);
        // SAFETY: the slot is `Running`, so its payload is the pinned future of the type its
        // vtable, and so `poll`, is for (slot rule 1); `failure` is as the caller promised.
        let polled = unsafe { poll(entry, &mut cx, failure) };
        match polled {
            Polled::Pending => {}
            // Without a handle the output was dropped at once: the slot holds nothing.
            Polled::Dropped => {
                self.live.set(self.live.get() - 1);
                self.free_slot(node);
            }
            // The output waits for the handle, which may be awaited.
            Polled::Done => {
                self.live.set(self.live.get() - 1);
                self.wake_waiter(node);
            }
            Polled::Failed => {
                self.live.set(self.live.get() - 1);
                // The child's drop may have dropped its handle.
                if !entry.has_handle() {
                    self.free_slot(node);
                } else {
                    self.wake_waiter(node);
                }
            }
        }
        polled
    }

    /// A node polled while its child is not running: a cancelling child's cleanup, or a stale
    /// wake for a finished or recycled slot.
    #[cold]
    #[inline(never)]
    fn poll_not_running(&self, node: &WakeNode) -> Polled {
        if !node.entry.is(State::Cancelling) {
            return Polled::Pending;
        }
        let waker = node.waker();
        self.poll_cleanup(node, &mut Context::from_waker(&waker))
    }

    /// Polls the async cleanup of a cancelling child; drops it once the cleanup is done.
    /// Returns `Pending`, or `Done` once the cleanup ended, with or without a handle left
    /// (this frees the slot when none is; the driver treats `Done` and `Dropped` alike).
    fn poll_cleanup(&self, node: &WakeNode, cx: &mut Context<'_>) -> Polled {
        let entry = &node.entry;
        let vtable = entry.vtable.get();
        let poll_cancel = vtable
            .poll_cancel
            .expect("only cancellable children clean up");
        // SAFETY: a `Cancelling` slot holds its unfinished pinned future (slot rule 1), whose
        // vtable came from `spawn_cancellable`.
        if unsafe { poll_cancel(entry.payload.get(), cx) }.is_pending() {
            return Polled::Pending;
        }
        entry.set_state(State::Empty);
        self.live.set(self.live.get() - 1);
        // SAFETY: the cleanup finished; the future is dropped in place exactly once.
        unsafe { (vtable.drop_future)(entry.payload.get()) };
        if !entry.has_handle() {
            self.free_slot(node);
        }
        Polled::Done
    }

    /// Starts ending the nursery: drops every child and unclaimed output, except that children
    /// spawned with `spawn_cancellable` are queued to run their async cleanup. Returns how many
    /// do; later spawns are refused.
    ///
    /// A destructor that panics stops the walk there and its panic is returned: the caller
    /// then drops everything with [`Core::cancel_all`], cleaning children too, in slot order.
    pub(super) fn begin_cancel(&self) -> Result<usize, Panic> {
        self.cancelled.set(true);
        self.open.set(batch::no_block());
        let mut cleaning = 0;
        // One `catch_unwind` for the whole walk, not one per child.
        catch_unwind(AssertUnwindSafe(|| {
            let mut index = 1;
            while index < self.len.get() {
                let entry = self.entry(index);
                if entry.state() == State::Running && entry.vtable.get().poll_cancel.is_some() {
                    entry.set_state(State::Cancelling);
                    self.schedule(index);
                    cleaning += 1;
                } else {
                    self.cancel_slot(index);
                }
                index += 1;
            }
        }))?;
        Ok(cleaning)
    }

    /// Drops every child and every unclaimed output, in slot order, and refuses later spawns.
    /// Handles that are still alive find their slot empty.
    ///
    /// Like dropping a `Vec`, a destructor that panics does not stop it: every slot is still
    /// dropped, and the first panic is returned once all are (later ones are dropped; the panic
    /// hook has reported each already).
    pub(super) fn cancel_all(&self) -> Option<Panic> {
        self.cancelled.set(true);
        self.open.set(batch::no_block());
        let mut first = None;
        let mut index = 1;
        loop {
            // One `catch_unwind` around the walk, entered again after a panic.
            let walk = catch_unwind(AssertUnwindSafe(|| {
                // Dropping a child may drop handles or (refused) spawn; re-read the length
                // each step.
                while index < self.len.get() {
                    self.cancel_slot(index);
                    index += 1;
                }
            }));
            match walk {
                Ok(()) => return first,
                // Slot `index` panicked. The walk starts again there: `cancel_slot` marks
                // what a slot held as gone before it runs the code that may panic (a drop, a
                // waker's drop), so it finishes that slot's bookkeeping and goes on, never
                // dropping anything twice.
                Err(panic) => {
                    if first.is_none() {
                        first = Some(panic);
                    }
                }
            }
        }
    }

    /// Drops what slot `index` holds. Each step that runs user code (a drop, a waker's drop)
    /// first records that the slot no longer holds it, so that calling this again after a
    /// panic finishes the slot without dropping anything twice.
    pub(super) fn cancel_slot(&self, index: u32) {
        let node = self.node(index);
        match node.entry.vtable.get().kind {
            // Its records, in spawn order, where the batch stands (its own node's slot),
            // those with nodes of their own too.
            Kind::Batch => self.cancel_batch(node),
            // Dropped by its batch's walk, in the order of the batch's records.
            Kind::Borrowed => {}
            Kind::Child => self.cancel_node(node),
        }
    }

    /// Drops what `node`'s slot holds (see [`Core::cancel_slot`]).
    pub(super) fn cancel_node(&self, node: &WakeNode) {
        {
            let entry = &node.entry;
            let vtable = entry.vtable.get();
            match entry.state() {
                State::Running | State::Cancelling => {
                    entry.set_state(State::Empty);
                    self.live.set(self.live.get() - 1);
                    // SAFETY: a `Running` slot holds its live future (slot rule 1), dropped once.
                    unsafe { (vtable.drop_future)(entry.payload.get()) };
                }
                State::Done => {
                    entry.set_state(State::Empty);
                    // SAFETY: a `Done` slot holds its output (slot rule 1), dropped once.
                    unsafe { (vtable.drop_output)(entry.payload.get()) };
                }
                State::Finishing => {
                    // Its drop panicked half-way: what is left is leaked, never dropped twice.
                    entry.set_state(State::Empty);
                    self.live.set(self.live.get() - 1);
                }
                State::Free | State::Empty => {}
            }
            // A free slot's waiter bits are its free-list link: the walk reached a slot that
            // was already free, or the drop above dropped this slot's own handle and freed it.
            // Nobody awaits a free slot, and overwriting the link would send a later spawn
            // (a refused one still takes a slot) to a node that does not exist.
            if entry.is(State::Free) {
                return;
            }
            self.forget_waiter(node);
            if entry.state() == State::Empty && !entry.has_handle() {
                self.free_slot(node);
            }
        }
    }
}

/// Appends the owner-held list `first..=last` of queued nodes to the list `head..tail`.
#[inline]
fn append(
    head: &Cell<*const WakeNode>,
    tail: &Cell<*const WakeNode>,
    first: &WakeNode,
    last: &WakeNode,
) {
    let end = tail.get();
    if end.is_null() {
        head.set(first);
    } else {
        // SAFETY: the tail is a live queued node on an owner's list (wake rules 2, 3).
        unsafe { (*end).set_next(Some(first)) };
    }
    tail.set(last);
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
        if self.live() != 0 {
            // Some children were never dropped (the driver drops every child even when
            // destructors panic, so only a bug gets here). They are pinned: their memory must
            // stay as it is (leaked), never be freed or reused without their destructor.
            core::mem::forget(arena);
            return;
        }
        // Children were dropped by the driver; only memory is left (arena rule 2).
        pool::recycle(hub, arena.into_inner());
    }
}

#[cfg(test)]
mod tests {
    use super::super::slot::VTableOf;
    use super::super::wake::{MAX_INDEX, chunk_of};
    use super::*;

    /// A spawn refused at the child limit leaves the slot count as it was: the nursery's
    /// cancel, which walks every index below it, never reaches a node whose chunk does not
    /// exist.
    #[test]
    fn a_spawn_refused_at_the_limit_counts_no_slot() {
        let core = Core::new(true);
        // As if every index up to the largest were handed out.
        core.len.set(MAX_INDEX + 1);
        core.hub.skip_to_chunk(chunk_of(MAX_INDEX + 1).0);
        let vtable = VTableOf::<core::future::Ready<()>, ()>::TABLE;
        let refused = catch_unwind(AssertUnwindSafe(|| {
            core.spawn(core::future::ready(()), vtable);
        }));
        let payload = refused.expect_err("the limit is a panic");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"a nursery holds at most 268,435,423 children at once")
        );
        assert_eq!(core.len.get(), MAX_INDEX + 1);
        assert_eq!(core.live(), 0);
        // Back to a state this test may drop the core in (it walks no index).
        core.len.set(1);
    }
}
