//! Per-child wakers that cost no allocation: each child owns a [`WakeNode`] in chunks that never
//! move, and waking pushes that node onto the nursery's ready stack (or, for a wake by the
//! owner alone with the hub, appends it to the owner's own list).
//!
//! Invariants (cited as "wake rule N"):
//! 1. The [`Hub`] is freed only when its reference count drops to zero. The nursery holds one
//!    reference and every cloned [`Waker`] holds one, so a waker that outlives (or outleaks) its
//!    nursery still points at live memory. Borrowed wakers ([`HubRef::waker`]) hold none and are
//!    only lent to a `poll` while the nursery's own reference is alive.
//! 2. Node chunks are allocated by the owner only, never move and are freed only with the hub,
//!    so a node pointer stays valid as long as rule 1 keeps the hub alive.
//! 3. A node is on at most one list (the shared ready stack, the owner's list of nodes it woke, or
//!    the owner's run queue) and only while its `queued` flag (the top bit of its [`WakeTag`], the
//!    rest being its index) is set: whoever flips `queued` from false to true links the node, and
//!    only the owner flips it back, after unlinking it and before polling its child. So the `next`
//!    field of a queued node is written by one party at a time.
//! 4. Wakers touch only the atomic fields (`refs`, `head`, `woken_*`, `parent`, a node's
//!    `next` and tag); everything else in the hub belongs to the thread that owns the nursery.
//! 5. While the nursery holds its reference and `refs` is 1, no waker exists outside the owner's
//!    borrowed ones, which live only as long as a poll the nursery makes. A child may still lend
//!    its borrowed waker to other threads for the length of its poll (`std::thread::scope`), so
//!    `refs == 1` alone does not make a waker the owner: a wake takes the owner's path only when
//!    `refs` is 1 *and* it runs on the thread that polls the nursery (`owner`, recorded at every
//!    poll of the nursery, as a `send` nursery may move). Only that one thread appends to the
//!    owner's own list of woken nodes (`woken_*`, one more list for rule 3), with plain `Relaxed`
//!    loads and stores, in wake order, instead of the shared stack; every other wake goes through
//!    the shared stack. Both paths flip `queued` with an atomic read-modify-write (`fetch_or`), so
//!    a node woken on both at once is still linked exactly once. Once the nursery's reference is
//!    gone, the last waker left also reads 1; only the thread that last polled the nursery takes
//!    the owner's path then, over a list nobody reads any more, whose nodes stay allocated until
//!    that waker is dropped (rules 1, 2).
//! 6. A node's waker reaches another thread only as a clone (counted in `refs`) or as the
//!    borrowed waker its own child's poll lends (`std::thread::scope`), which ends with that
//!    poll. So while the owner is alone with the hub, no other thread can touch the node of a
//!    child that is not being polled right now, and the owner flips its `queued` flag with a
//!    plain load and store ([`WakeNode::mark_queued_by_owner`]): when it spawns a child,
//!    queues the body or a sibling that awaits a finished child's handle, queues a child for
//!    its async cleanup, or requeues a node that woke itself once its poll is over; and it
//!    clears the flag with a plain store right before polling the child
//!    ([`WakeNode::clear_queued`]), before the poll can lend the waker out.
//! 7. A [`Local`](super::Local) tree is polled by one thread only (its future is not `Send`),
//!    so while that thread is inside a poll of the nursery (`in_poll`), its wakes may also
//!    take the owner's path when wakers were cloned: no other thread appends to the owner's
//!    list, and the poll checks the list before it returns. Other threads, and wakes outside
//!    a poll while a clone exists, go through the shared stack and wake the parent.
//! 8. While a thread polls a node's child (or the body), that node's own wakes on that
//!    thread only set a flag in a thread-local record (`POLLING`, saved, cleared and given
//!    back around each poll of a nursery, as nurseries nest); after the poll the owner queues the
//!    node itself. A turn polls the nodes queued and those woken by siblings meanwhile (its
//!    first lap), then, once none is left, the nodes that woke themselves in the first lap
//!    (its second lap, from which on every node that wakes itself waits for the next turn).
//!    So a child that pends once finishes in one turn, and one that keeps yielding is polled
//!    at most twice before the nursery's caller has its turn. The record also says whether
//!    the turn that polls the node is in its second lap: a nursery polled then (nested in the
//!    node's child) runs its own turn as a second lap from the start, so a yield nested `d`
//!    nurseries deep runs `d + 1` times before the outermost caller's turn, not `2^d`. Wakes
//!    of other nodes during a turn run in the same turn. Every turn stops at its budget.
//! 9. A poll of the nursery registers its caller's waker as the parent only when it is about
//!    to return `Pending`, before it last checks for ready nodes (the shared stack included).
//!    A wake from another thread that pushes onto the empty stack then either locks `parent`
//!    after that registration and wakes the new parent, or locked it before, and the lock
//!    orders its push before the check, which finds the node and has the poll wake its caller
//!    itself (when the registration skips the lock, the parent kept is that very waker). So
//!    no wake is lost, and a nursery that finishes in its first poll never clones its
//!    caller's waker (which, for a nursery nested in another, would take the outer one off
//!    its owner-alone paths, rule 5).

use core::alloc::Layout;
use core::cell::{Cell, UnsafeCell};
use core::mem::ManuallyDrop;
use core::ptr;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Ordering, fence};
use core::task::{RawWaker, RawWakerVTable, Waker};
use std::alloc::{alloc, dealloc, handle_alloc_error};
use std::sync::Mutex;

use super::slot::Entry;

/// Nodes in the first chunk; chunk `k` holds `FIRST_CHUNK << k` nodes.
pub(super) const FIRST_CHUNK: usize = 32;
/// Enough chunks for every `u32` index.
pub(super) const MAX_CHUNKS: usize = 32;

/// The chunk holding `index` and the index's offset inside it.
#[inline]
pub(super) fn chunk_of(index: u32) -> (usize, usize) {
    let q = index as usize / FIRST_CHUNK + 1;
    let k = (usize::BITS - 1 - q.leading_zeros()) as usize;
    (k, index as usize - FIRST_CHUNK * ((1 << k) - 1))
}

/// The number of nodes in chunk `k`.
#[inline]
pub(super) fn chunk_len(k: usize) -> usize {
    FIRST_CHUNK << k
}

/// One child's wake target: a link in the ready stack, and (in its entry's [`WakeTag`]) its
/// index and "already queued" flag.
#[repr(C)]
pub(super) struct WakeNode {
    next: AtomicPtr<WakeNode>,
    /// The owner's bookkeeping for this slot, next to the node so one cache line serves both
    /// (wake rule 4: no waker touches it but its `wake` tag). Plain data: nothing to drop when
    /// chunks are freed.
    pub(super) entry: Entry,
}

/// The largest slot index: indices stay below the waiter sentinels of an entry
/// ([`FOREIGN`](super::slot::FOREIGN)), and end a chunk.
pub(super) const MAX_INDEX: u32 = 268_435_423;

/// A node's index, with its `queued` flag in the top bit (wake rule 3).
pub(super) struct WakeTag(AtomicU32);

/// The `queued` bit of a [`WakeTag`].
const QUEUED: u32 = 1 << 31;

impl WakeTag {
    /// A tag to be set by [`HubRef::ensure`].
    pub(super) const fn unset() -> WakeTag {
        WakeTag(AtomicU32::new(0))
    }
}

/// Starts every node chunk so a node can find its hub without storing a pointer of its own.
#[repr(C, align(16))]
struct ChunkHeader {
    hub: *const Hub,
}

/// The part of a nursery that wakers may reach, possibly from other threads.
pub(super) struct Hub {
    refs: AtomicUsize,
    /// Treiber stack of woken nodes; the owner takes it whole with one swap.
    head: AtomicPtr<WakeNode>,
    /// The waker of whoever polls the nursery; woken when the stack goes from empty to not.
    parent: Mutex<Option<Waker>>,
    /// Owner only: the data and vtable of the waker in `parent` (null when none), so that a
    /// poll by the same parent as last time skips the lock.
    parent_seen: Cell<(*const (), *const RawWakerVTable)>,
    /// Owner only (wake rule 4), and the last reference at deallocation.
    chunks: UnsafeCell<[*mut u8; MAX_CHUNKS]>,
    /// Owner only: how many nodes the allocated chunks hold.
    capacity: Cell<usize>,
    /// Owner only: where [`HubRef::ensure`] writes the next node, the end of its chunk, and
    /// the chunk after it; null, null, 0 before the first node.
    fresh: Cell<*mut WakeNode>,
    fresh_end: Cell<*mut WakeNode>,
    fresh_chunk: Cell<usize>,
    /// Nodes woken by the owner alone with the hub (wake rule 5) since the last
    /// [`HubRef::take_ready`], oldest first, linked through `next`; null when empty. Atomic
    /// only for the waker left over after the owner is gone (rule 5); always `Relaxed`.
    woken_head: AtomicPtr<WakeNode>,
    woken_tail: AtomicPtr<WakeNode>,
    /// The [`this_thread`] token of the thread polling the nursery (wake rule 5).
    owner: AtomicUsize,
    /// The nursery's tree is [`Local`](super::Local): only the `owner` thread ever polls it
    /// (wake rule 7). Written before any waker exists.
    local: AtomicBool,
    /// The owner is inside a poll of the nursery (wake rule 7). Owner only.
    in_poll: AtomicBool,
}

thread_local! {
    /// Its address tells threads apart: unique among the threads alive at any one time.
    static THREAD_TOKEN: u8 = const { 0 };
    /// The node whose child (or body) this thread is polling right now (wake rule 8).
    static POLLING: Polling = const {
        Polling {
            node: Cell::new(ptr::null()),
            woken: Cell::new(false),
            late: Cell::new(false),
        }
    };
}

/// What this thread polls right now: a node, whether that node woke itself meanwhile, and
/// whether the turn polling it is in its second lap (wake rule 8).
struct Polling {
    node: Cell<*const WakeNode>,
    woken: Cell<bool>,
    late: Cell<bool>,
}

/// A token for the calling thread (wake rule 5). Never fails: the thread-local has a constant
/// initialiser and nothing to drop, so it stays reachable while the thread exits.
#[inline]
fn this_thread() -> usize {
    THREAD_TOKEN.with(|t| ptr::from_ref(t).addr())
}

/// Where a chunk's nodes start: right after its header, which keeps them aligned.
const NODES_AT: usize = size_of::<ChunkHeader>();
const _: () = assert!(NODES_AT % align_of::<WakeNode>() == 0);

fn chunk_layout(k: usize) -> Layout {
    let size = NODES_AT + chunk_len(k) * size_of::<WakeNode>();
    Layout::from_size_align(size, align_of::<ChunkHeader>()).expect("chunk size overflows")
}

impl WakeNode {
    /// The hub this node belongs to, found through the header of its chunk.
    #[inline]
    fn hub(&self) -> *const Hub {
        let (_, offset) = chunk_of(self.index());
        // The header lies outside `self`, which a pointer derived from `&self` may not reach
        // (Stacked Borrows), so the address gets the chunk's provenance, exposed in `grow`.
        let header = ptr::from_ref(self).addr() - (NODES_AT + offset * size_of::<WakeNode>());
        // SAFETY: `self` lies `offset` nodes into the node array of its chunk, which starts
        // `NODES_AT` bytes after the chunk's header, so walking back stays inside the one
        // allocation, whose provenance was exposed, and lands on the header, written at
        // allocation.
        unsafe { (*ptr::with_exposed_provenance::<ChunkHeader>(header)).hub }
    }

    /// A waker for this node that borrows the nursery's reference instead of counting one;
    /// lent only to polls the owner makes while its reference is alive.
    #[inline]
    pub(super) fn waker(&self) -> ManuallyDrop<Waker> {
        let node = ptr::from_ref(self).cast::<()>();
        // SAFETY: the vtable's contract holds for a node pointer (wake rule 1, 2); wrapped in
        // ManuallyDrop so the reference count it did not take is never given back.
        ManuallyDrop::new(unsafe { Waker::from_raw(RawWaker::new(node, &VTABLE)) })
    }

    /// The child slot this node wakes (0 is the nursery's body).
    #[inline]
    pub(super) fn index(&self) -> u32 {
        self.tag().load(Ordering::Relaxed) & !QUEUED
    }

    #[inline]
    fn tag(&self) -> &AtomicU32 {
        &self.entry.wake.0
    }
}

/// The nursery's one counted reference to its hub.
pub(super) struct HubRef(ptr::NonNull<Hub>);

impl HubRef {
    pub(super) fn new() -> Self {
        let hub = Box::new(Hub {
            refs: AtomicUsize::new(1),
            head: AtomicPtr::new(ptr::null_mut()),
            parent: Mutex::new(None),
            parent_seen: Cell::new((ptr::null(), ptr::null())),
            chunks: UnsafeCell::new([ptr::null_mut(); MAX_CHUNKS]),
            capacity: Cell::new(0),
            fresh: Cell::new(ptr::null_mut()),
            fresh_end: Cell::new(ptr::null_mut()),
            fresh_chunk: Cell::new(0),
            woken_head: AtomicPtr::new(ptr::null_mut()),
            woken_tail: AtomicPtr::new(ptr::null_mut()),
            owner: AtomicUsize::new(this_thread()),
            local: AtomicBool::new(false),
            in_poll: AtomicBool::new(false),
        });
        HubRef(ptr::NonNull::from(Box::leak(hub)))
    }

    #[inline]
    fn hub(&self) -> &Hub {
        // SAFETY: this reference keeps the hub alive (wake rule 1).
        unsafe { self.0.as_ref() }
    }

    /// Writes node `index` with `entry` and its `queued` flag, and returns it, allocating its
    /// chunk if needed (a node written queued is the caller's to link, wake rule 3). The
    /// owner ensures indices once each, from 0 up (after [`HubRef::new`] or a reset), so the
    /// next node's place is a pointer bump, and a chunk's memory is touched only as far as it
    /// is used.
    #[inline]
    pub(super) fn ensure(&self, index: u32, mut entry: Entry, queued: bool) -> &WakeNode {
        let hub = self.hub();
        let queued = if queued { QUEUED } else { 0 };
        entry.wake = WakeTag(AtomicU32::new(index | queued));
        if hub.fresh.get() == hub.fresh_end.get() {
            self.next_chunk();
        }
        let node = hub.fresh.get();
        debug_assert_eq!(node.addr(), self.node_addr(index));
        // SAFETY: `fresh` lies inside the node array of an allocated chunk, before its end
        // (checked above), at the place of `index` (nodes are ensured in order); the node is
        // written before anyone can reach it (no waker for it exists yet), and never moves
        // afterwards (wake rule 2).
        unsafe {
            hub.fresh.set(node.add(1));
            node.write(WakeNode {
                next: AtomicPtr::new(ptr::null_mut()),
                entry,
            });
            &*node
        }
    }

    /// Points `fresh` at the start of the next chunk, allocating it unless a previous
    /// nursery left it.
    #[cold]
    fn next_chunk(&self) {
        let hub = self.hub();
        let k = hub.fresh_chunk.get();
        // Every index of chunk `k` must stay below the waiter sentinels (`slot::FOREIGN`),
        // which an entry's waiter tells apart from indices.
        let end = FIRST_CHUNK as u64 * ((1u64 << (k + 1)) - 1);
        assert!(
            end <= u64::from(MAX_INDEX) + 1,
            "a nursery holds at most 268,435,423 children at once"
        );
        // Owner only (wake rule 4).
        // SAFETY: chunk entries are written only by the owner, which is here.
        let mut chunk = unsafe { (*hub.chunks.get())[k] };
        if chunk.is_null() {
            chunk = self.grow(k);
        }
        // SAFETY: chunk `k` holds `chunk_len(k)` nodes right after its header.
        unsafe {
            let nodes = chunk.add(NODES_AT).cast::<WakeNode>();
            hub.fresh.set(nodes);
            hub.fresh_end.set(nodes.add(chunk_len(k)));
        }
        hub.fresh_chunk.set(k + 1);
    }

    /// Where node `index` lies, from the chunk table (to check `ensure`'s bump pointer).
    fn node_addr(&self, index: u32) -> usize {
        let (k, offset) = chunk_of(index);
        // SAFETY: owner only (wake rule 4); chunk `k` was allocated before its first node.
        let chunk = unsafe { (*self.hub().chunks.get())[k] };
        chunk.addr() + NODES_AT + offset * size_of::<WakeNode>()
    }

    /// Allocates chunk `k`, the next one.
    fn grow(&self, k: usize) -> *mut u8 {
        let hub = self.hub();
        let first = hub.capacity.get();
        debug_assert_eq!(chunk_of(first as u32), (k, 0));
        let layout = chunk_layout(k);
        // SAFETY: the layout has a non-zero size (a header plus at least one node).
        let chunk = unsafe { alloc(layout) };
        if chunk.is_null() {
            handle_alloc_error(layout);
        }
        // Lets `WakeNode::hub` reach the header from a node's address.
        let _ = chunk.expose_provenance();
        // SAFETY: `chunk` is a fresh allocation of `layout`, whose header fits at its start;
        // nodes are written one by one by `ensure`.
        unsafe {
            let header = ChunkHeader {
                hub: self.0.as_ptr(),
            };
            chunk.cast::<ChunkHeader>().write(header);
            // Owner only (wake rule 4).
            (*hub.chunks.get())[k] = chunk;
        }
        hub.capacity.set(first + chunk_len(k));
        chunk
    }

    /// The node of slot `index`, which [`HubRef::ensure`] created.
    #[inline]
    pub(super) fn node(&self, index: u32) -> &WakeNode {
        let (k, offset) = chunk_of(index);
        debug_assert!((index as usize) < self.hub().capacity.get());
        // SAFETY: `ensure(index)` allocated chunk `k` and wrote the node, which never moves
        // (wake rule 2); the owner is the only one reading the chunk table (wake rule 4).
        unsafe {
            let chunk = (*self.hub().chunks.get())[k];
            &*chunk.add(NODES_AT).cast::<WakeNode>().add(offset)
        }
    }

    /// A waker for node `index` that borrows the nursery's reference instead of counting one.
    #[inline]
    pub(super) fn waker(&self, index: u32) -> ManuallyDrop<Waker> {
        self.node(index).waker()
    }

    /// Whether the owner is alone with the hub: no waker exists but its borrowed ones (wake
    /// rule 5). Only meaningful until the owner next lends a waker to a poll.
    #[inline]
    pub(super) fn alone(&self) -> bool {
        // Acquire pairs with the Release decrement of a waker dropped on another thread.
        self.hub().refs.load(Ordering::Acquire) == 1
    }

    /// The memory the hub and its chunks hold, in bytes.
    pub(super) fn bytes(&self) -> usize {
        let capacity = self.hub().capacity.get();
        let chunks = chunk_of(capacity as u32).0;
        size_of::<Hub>() + chunks * NODES_AT + capacity * size_of::<WakeNode>()
    }

    /// Readies the hub for another nursery, if no waker refers to it: empties the ready stack
    /// and forgets the parent waker. Nodes are rewritten by `ensure` as indices are handed out.
    pub(super) fn reset_if_unshared(&self) -> bool {
        let hub = self.hub();
        // Acquire pairs with the Release decrement of the last waker dropped elsewhere.
        if hub.refs.load(Ordering::Acquire) != 1 {
            return false;
        }
        hub.head.store(ptr::null_mut(), Ordering::Relaxed);
        hub.woken_head.store(ptr::null_mut(), Ordering::Relaxed);
        hub.woken_tail.store(ptr::null_mut(), Ordering::Relaxed);
        hub.fresh.set(ptr::null_mut());
        hub.fresh_end.set(ptr::null_mut());
        hub.fresh_chunk.set(0);
        // A null vtable: no parent was registered since the last reset (wake rule 9), which a
        // nursery that finished in its first poll never does.
        if !hub.parent_seen.get().1.is_null() {
            // Dropped after the lock, as in `register_parent`.
            let old = hub.parent.lock().unwrap_or_else(|e| e.into_inner()).take();
            drop(old);
            hub.parent_seen.set((ptr::null(), ptr::null()));
        }
        true
    }

    /// The slot `waker` wakes, if it is a waker of this very nursery.
    #[inline]
    pub(super) fn local_index(&self, waker: &Waker) -> Option<u32> {
        if !ptr::eq(waker.vtable(), &VTABLE) {
            return None;
        }
        // SAFETY: a waker with our vtable has a live node as its data (wake rule 1, 2).
        let node = unsafe { &*waker.data().cast::<WakeNode>() };
        ptr::eq(node.hub(), self.0.as_ptr()).then(|| node.index())
    }

    /// Says whether the nursery's tree is [`Local`](super::Local) (wake rule 7); called
    /// before any waker of the nursery exists.
    pub(super) fn set_local(&self, local: bool) {
        self.hub().local.store(local, Ordering::Relaxed);
    }

    /// Marks the owner as inside a poll of the nursery (wake rule 7) until the guard drops;
    /// the guard also gives back what this thread was polling before (nurseries nest).
    #[inline]
    pub(super) fn enter_poll(&self) -> InPoll<'_> {
        self.hub().in_poll.store(true, Ordering::Relaxed);
        // The flag starts clear: a wake recorded for the node polled outside (whose poll
        // polls this nursery) is not one of this nursery's children's.
        let (node, woken, late) =
            POLLING.with(|p| (p.node.get(), p.woken.replace(false), p.late.get()));
        InPoll {
            hub: self.hub(),
            node,
            woken,
            late,
        }
    }

    /// Records that this thread is about to poll `node`'s child (wake rule 8); `None` after.
    #[inline]
    pub(super) fn set_polled(&self, node: Option<&WakeNode>) {
        let node = node.map_or(ptr::null(), ptr::from_ref);
        POLLING.with(|p| p.node.set(node));
    }

    /// Records whether a wake of itself by a node polled from now on in this turn waits for
    /// the next turn (wake rule 8); [`InPoll`] gives the old value back.
    #[inline]
    pub(super) fn set_late(&self, late: bool) {
        POLLING.with(|p| p.late.set(late));
    }

    /// Whether the node just polled woke itself on this thread during its poll (wake rule
    /// 8); clears the record.
    #[inline]
    pub(super) fn take_self_woken(&self) -> bool {
        POLLING.with(|p| p.woken.replace(false))
    }

    /// Records that the calling thread polls the nursery now (wake rule 5).
    #[inline]
    pub(super) fn set_owner(&self) {
        self.hub().owner.store(this_thread(), Ordering::Relaxed);
    }

    /// Remembers who to wake when a child becomes ready; called as a poll of the nursery is
    /// about to return `Pending`, before it checks for ready nodes one last time (wake rule 9).
    pub(super) fn register_parent(&self, waker: &Waker) {
        let hub = self.hub();
        // The same test as `Waker::will_wake`, against the waker kept in `parent` (its data
        // and vtable, not those of the waker it was cloned from: a clone may move its data
        // elsewhere), which stays alive there, so its data pointer cannot name another waker
        // meanwhile.
        if hub.parent_seen.get() == (waker.data(), ptr::from_ref(waker.vtable())) {
            return;
        }
        // Cloned before and the old waker dropped after the lock: both run the parent's
        // code, which may wake (and so lock `parent`) itself.
        let waker = waker.clone();
        let seen = (waker.data(), ptr::from_ref(waker.vtable()));
        let old = hub
            .parent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(waker);
        drop(old);
        hub.parent_seen.set(seen);
    }

    /// Takes every woken node as a list linked through `next`: those the owner woke alone
    /// with the hub, in wake order, then the others, oldest first.
    #[inline]
    pub(super) fn take_ready(&self) -> Option<(&WakeNode, &WakeNode)> {
        let hub = self.hub();
        // Plain loads and stores, not swaps: only the owner links nodes here (wake rule 5).
        let first = hub.woken_head.load(Ordering::Relaxed);
        let last = hub.woken_tail.load(Ordering::Relaxed);
        if !first.is_null() {
            hub.woken_head.store(ptr::null_mut(), Ordering::Relaxed);
            hub.woken_tail.store(ptr::null_mut(), Ordering::Relaxed);
        }
        let Some((shared_first, shared_last)) = self.take_shared() else {
            // SAFETY: a non-null list holds live nodes of this hub (wake rule 2).
            return (!first.is_null()).then(|| unsafe { (&*first, &*last) });
        };
        if first.is_null() {
            return Some((shared_first, shared_last));
        }
        // SAFETY: `last` is a live node ending the owner's list (wake rule 2), so its link is
        // the owner's to write (wake rule 3).
        let last = unsafe { &*last };
        last.set_next(Some(shared_first));
        // SAFETY: as above, for the list's first node.
        Some((unsafe { &*first }, shared_last))
    }

    /// Takes the nodes the owner woke on its own list (wake rules 5, 7), in wake order.
    #[inline]
    pub(super) fn take_woken(&self) -> Option<(&WakeNode, &WakeNode)> {
        let hub = self.hub();
        let first = hub.woken_head.load(Ordering::Relaxed);
        if first.is_null() {
            return None;
        }
        let last = hub.woken_tail.load(Ordering::Relaxed);
        hub.woken_head.store(ptr::null_mut(), Ordering::Relaxed);
        hub.woken_tail.store(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: a non-null list holds live nodes of this hub (wake rule 2).
        Some(unsafe { (&*first, &*last) })
    }

    /// Takes the shared stack of woken nodes, oldest first.
    #[inline]
    fn take_shared(&self) -> Option<(&WakeNode, &WakeNode)> {
        let hub = self.hub();
        if hub.head.load(Ordering::Relaxed).is_null() {
            return None;
        }
        // Acquire pairs with the Release of each push, so the nodes' `next` links are visible.
        let mut top = hub.head.swap(ptr::null_mut(), Ordering::Acquire);
        // Reverse the stack so children run in the order they were woken.
        let mut reversed: *mut WakeNode = ptr::null_mut();
        let last = top;
        while !top.is_null() {
            // SAFETY: nodes on the stack are live (wake rule 2) and queued, so their `next` is
            // ours to rewrite now that they are unlinked from the shared stack (wake rule 3).
            let node = unsafe { &*top };
            top = node.next.load(Ordering::Relaxed);
            node.next.store(reversed, Ordering::Relaxed);
            reversed = ptr::from_ref(node).cast_mut();
        }
        // SAFETY: both ends are live nodes of the list just taken (wake rule 2).
        Some(unsafe { (&*reversed, &*last) })
    }

    /// Whether some node was woken since the last [`HubRef::take_ready`].
    #[inline]
    pub(super) fn has_ready(&self) -> bool {
        let hub = self.hub();
        !hub.woken_head.load(Ordering::Relaxed).is_null()
            || !hub.head.load(Ordering::Relaxed).is_null()
    }
}

impl Drop for HubRef {
    fn drop(&mut self) {
        // SAFETY: this is the nursery's own counted reference.
        unsafe { release(self.0.as_ptr()) }
    }
}

impl WakeNode {
    /// Marks, on the owner's thread, a node whose child is not being polled queued; true if
    /// it was not already (so the caller must link it). `alone` says the owner is alone with
    /// the hub (wake rule 5): then no other thread can reach this node (wake rule 6), and a
    /// plain load and store do, without a locked instruction.
    #[inline]
    pub(super) fn mark_queued_by_owner(&self, alone: bool) -> bool {
        if !alone {
            return self.mark_queued(false);
        }
        let tag = self.tag().load(Ordering::Relaxed);
        if tag & QUEUED != 0 {
            return false;
        }
        self.tag().store(tag | QUEUED, Ordering::Relaxed);
        true
    }

    /// Marks the node queued; true if it was not already (so the caller must link it).
    /// `alone` says the caller is the owner alone with the hub (wake rule 5). Always a swap:
    /// a thread the child lent its borrowed waker to may flip the same flag at the same time.
    #[inline]
    pub(super) fn mark_queued(&self, alone: bool) -> bool {
        let order = if alone {
            Ordering::Relaxed
        } else {
            Ordering::AcqRel
        };
        self.tag().fetch_or(QUEUED, order) & QUEUED == 0
    }

    /// Clears the queued flag just before the owner polls the node's child (wake rule 3);
    /// returns the node's index, read on the way.
    #[inline]
    pub(super) fn clear_queued(&self, alone: bool) -> u32 {
        if alone {
            let index = self.tag().load(Ordering::Relaxed) & !QUEUED;
            self.tag().store(index, Ordering::Relaxed);
            return index;
        }
        // AcqRel: a wake that found the flag set happened before this, so the child's poll
        // that follows sees whatever that wake announced.
        self.tag().fetch_and(!QUEUED, Ordering::AcqRel) & !QUEUED
    }

    /// The next node on an owner-held list.
    #[inline]
    pub(super) fn next(&self) -> Option<&WakeNode> {
        let next = self.next.load(Ordering::Relaxed);
        // SAFETY: a non-null link names a live node of the same hub (wake rule 2).
        (!next.is_null()).then(|| unsafe { &*next })
    }

    /// Links `next` after this node on an owner-held list (wake rule 3).
    #[inline]
    pub(super) fn set_next(&self, next: Option<&WakeNode>) {
        let next = next.map_or(ptr::null_mut(), |n| ptr::from_ref(n).cast_mut());
        self.next.store(next, Ordering::Relaxed);
    }
}

/// While alive, the owner is inside a poll of the nursery (wake rule 7); on drop, this
/// thread's record of what it polls is back to what it was before.
pub(super) struct InPoll<'a> {
    hub: &'a Hub,
    node: *const WakeNode,
    woken: bool,
    late: bool,
}

impl InPoll<'_> {
    /// Whether this poll of the nursery happens in the second lap of an enclosing nursery's
    /// turn: then this nursery's turn is a second lap from the start (wake rule 8).
    #[inline]
    pub(super) fn late(&self) -> bool {
        !self.node.is_null() && self.late
    }
}

impl Drop for InPoll<'_> {
    #[inline]
    fn drop(&mut self) {
        self.hub.in_poll.store(false, Ordering::Relaxed);
        let (node, woken, late) = (self.node, self.woken, self.late);
        // Fails only while the thread's locals are destroyed, when nothing is polled.
        let _ = POLLING.try_with(|p| {
            p.node.set(node);
            p.woken.set(woken);
            p.late.set(late);
        });
    }
}

/// Gives back one counted reference, freeing the hub with the last one.
///
/// # Safety
/// `hub` must be live and the caller must own one of its counted references.
unsafe fn release(hub: *const Hub) {
    // SAFETY: the caller owns a reference, so the hub is alive (wake rule 1).
    let refs = unsafe { &(*hub).refs };
    if refs.fetch_sub(1, Ordering::Release) != 1 {
        return;
    }
    // Pairs with the Release decrements of every other reference holder.
    fence(Ordering::Acquire);
    // SAFETY: this was the last reference, so nobody else can reach the hub or its chunks.
    unsafe {
        let hub = Box::from_raw(hub.cast_mut());
        for (k, chunk) in hub.chunks.get().read().into_iter().enumerate() {
            if !chunk.is_null() {
                dealloc(chunk, chunk_layout(k));
            }
        }
    }
}

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

fn clone(node: *const ()) -> RawWaker {
    // SAFETY: a waker's data pointer is a live node (wake rule 1, 2).
    let hub = unsafe { &*(*node.cast::<WakeNode>()).hub() };
    if hub.refs.fetch_add(1, Ordering::Relaxed) > isize::MAX as usize {
        std::process::abort();
    }
    RawWaker::new(node, &VTABLE)
}

fn wake(node: *const ()) {
    wake_by_ref(node);
    drop_waker(node);
}

fn wake_by_ref(node: *const ()) {
    let node = node.cast::<WakeNode>();
    // The child being polled on this thread woke itself: the owner queues it after the poll
    // (wake rule 8). Read before the node, so a yield touches nothing but this thread's record.
    let self_wake = POLLING.try_with(|p| {
        let polled = p.node.get() == node;
        if polled {
            p.woken.set(true);
        }
        polled
    });
    if self_wake != Ok(true) {
        wake_other(node);
    }
}

/// A wake of a node that is not being polled on this thread: queues it for the owner.
/// Out of line, so that a yield (above) needs no stack frame.
#[inline(never)]
fn wake_other(node: *const WakeNode) {
    // SAFETY: a waker's data pointer is a live node (wake rule 1, 2).
    let node = unsafe { &*node };
    // SAFETY: the node's hub is alive while this waker is (wake rule 1).
    let hub = unsafe { &*node.hub() };
    if hub.owner.load(Ordering::Relaxed) == this_thread()
        && (hub.refs.load(Ordering::Acquire) == 1
            || (hub.local.load(Ordering::Relaxed) && hub.in_poll.load(Ordering::Relaxed)))
    {
        // A wake on the owner's thread while no other thread may use the owner's list (wake
        // rules 5, 7): during a poll of the nursery, which checks the list before it returns,
        // so waking the parent is not needed. (Or the last waker of a nursery that is gone:
        // rule 5 again.)
        if node.mark_queued(true) {
            node.set_next(None);
            let this = ptr::from_ref(node).cast_mut();
            let tail = hub.woken_tail.load(Ordering::Relaxed);
            hub.woken_tail.store(this, Ordering::Relaxed);
            if tail.is_null() {
                hub.woken_head.store(this, Ordering::Relaxed);
            } else {
                // SAFETY: the tail is a live queued node on the owner's list (wake rule 2, 3).
                unsafe { (*tail).set_next(Some(node)) };
            }
        }
        return;
    }
    wake_shared(node, hub);
}

/// A wake while wakers may be shared with other threads: pushes the node with atomics and
/// wakes whoever polls the nursery. Kept out of line so the owner's own wakes stay short.
#[cold]
#[inline(never)]
fn wake_shared(node: &WakeNode, hub: &Hub) {
    if !node.mark_queued(false) {
        return;
    }
    let mut head = hub.head.load(Ordering::Relaxed);
    loop {
        node.next.store(head, Ordering::Relaxed);
        match hub.head.compare_exchange_weak(
            head,
            ptr::from_ref(node).cast_mut(),
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => break,
            Err(now) => head = now,
        }
    }
    if head.is_null() {
        // The stack was empty, so the owner may be asleep: wake whoever polls the nursery.
        // Woken after the lock is released: the parent's wake may poll the nursery at once
        // (an executor that runs a task inline), or hand it to a thread this one waits for,
        // and that poll locks `parent` again to register its waker (std's mutex is not
        // re-entrant: a deadlock).
        let parent = hub.parent.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some(parent) = parent {
            parent.wake();
        }
    }
}

fn drop_waker(node: *const ()) {
    // SAFETY: a waker's data pointer is a live node whose hub this waker holds a reference to.
    unsafe { release((*node.cast::<WakeNode>()).hub()) }
}

#[cfg(test)]
impl HubRef {
    /// Makes the next new index start chunk `k`, as if every chunk before it were full (no
    /// chunk is allocated: only for indices `ensure` refuses).
    pub(super) fn skip_to_chunk(&self, k: usize) {
        let hub = self.hub();
        hub.fresh.set(hub.fresh_end.get());
        hub.fresh_chunk.set(k);
    }
}

/// Sizes the tests and the docs rely on.
#[cfg(test)]
mod tests {
    use super::super::slot::FOREIGN;
    use super::*;

    #[test]
    fn chunk_geometry_covers_every_index_once() {
        let mut expected = 0usize;
        for k in 0..6 {
            for offset in 0..chunk_len(k) {
                assert_eq!(chunk_of(expected as u32), (k, offset));
                expected += 1;
            }
        }
        assert!(chunk_of(u32::MAX).0 < MAX_CHUNKS);
        // 8 bytes of link and 24 of the owner's entry, whose last word is the wake tag.
        assert_eq!(size_of::<WakeNode>(), 32);
    }

    /// `ensure` writes nodes at a bump pointer: after a reset the same hub hands out the same
    /// places again, every node where `node(index)` (the chunk table) finds it.
    #[test]
    fn ensured_nodes_sit_where_the_chunk_table_says_also_after_a_reset() {
        let hub = HubRef::new();
        let mut first = Vec::new();
        for i in 0..=200 {
            let node = hub.ensure(i, Entry::vacant(), false);
            assert_eq!(node.index(), i);
            assert!(ptr::eq(node, hub.node(i)));
            first.push(ptr::from_ref(node));
        }
        assert!(hub.reset_if_unshared());
        for i in 0..=100 {
            let node = hub.ensure(i, Entry::vacant(), false);
            assert!(ptr::eq(node, first[i as usize]));
            assert_eq!(hub.node(i).index(), i);
        }
    }

    /// Indices stop before the waiter sentinels: the chunk that would hold them is refused
    /// before anything is allocated for it.
    #[test]
    #[should_panic(expected = "a nursery holds at most 268,435,423 children at once")]
    fn indices_never_reach_the_waiter_sentinels() {
        // The last usable index ends its chunk; the next chunk reaches the sentinels.
        let (last_usable, _) = chunk_of(MAX_INDEX);
        assert_eq!(chunk_of(MAX_INDEX + 1), (last_usable + 1, 0));
        assert!(MAX_INDEX < FOREIGN && chunk_of(FOREIGN).0 == last_usable + 1);
        let hub = HubRef::new();
        hub.hub().fresh_chunk.set(last_usable + 1);
        hub.ensure(MAX_INDEX + 1, Entry::vacant(), false);
    }

    #[test]
    fn cloned_waker_outlives_the_nursery_reference() {
        let hub = HubRef::new();
        for i in 0..=100 {
            hub.ensure(i, Entry::vacant(), false);
        }
        let waker = (*hub.waker(100)).clone();
        drop(hub);
        // The hub is still alive through the clone: waking pushes onto its stack.
        waker.wake_by_ref();
        let also = waker.clone();
        drop(waker);
        also.wake();
    }

    #[test]
    fn wakes_by_the_owner_alone_come_first_in_order_then_shared_ones() {
        let hub = HubRef::new();
        for i in 0..=5 {
            hub.ensure(i, Entry::vacant(), false);
        }
        // Alone with the hub: the owner's list, in wake order.
        hub.waker(4).wake_by_ref();
        hub.waker(2).wake_by_ref();
        assert!(hub.hub().head.load(Ordering::Relaxed).is_null());
        // A clone exists: wakes take the shared stack.
        let clone = (*hub.waker(5)).clone();
        clone.wake_by_ref();
        hub.waker(1).wake_by_ref();
        assert!(!hub.hub().head.load(Ordering::Relaxed).is_null());
        let (first, last) = hub.take_ready().expect("woken");
        let mut order = vec![first.index()];
        let mut at = first;
        while let Some(next) = at.next() {
            order.push(next.index());
            at = next;
        }
        assert_eq!(order, [4, 2, 5, 1]);
        assert_eq!(last.index(), 1);
        assert!(!hub.has_ready());
        drop(clone);
    }

    /// Once the nursery's reference is gone, its last waker reads `refs == 1` like an owner
    /// alone with the hub, yet may be woken from several threads at once: the wakes stay
    /// harmless (under Miri, `-Zmiri-tree-borrows`, this also checks that the path touches
    /// only atomics, when the two first wakes happen to interleave).
    #[test]
    fn the_last_waker_may_wake_from_threads_at_once_after_the_nursery() {
        let hub = HubRef::new();
        for i in 0..=3 {
            hub.ensure(i, Entry::vacant(), false);
        }
        let waker = (*hub.waker(3)).clone();
        let raw = hub.0;
        drop(hub);
        // SAFETY: the waker's reference keeps the hub alive (wake rule 1).
        assert_eq!(unsafe { raw.as_ref() }.refs.load(Ordering::Relaxed), 1);
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..20 {
                        waker.wake_by_ref();
                    }
                });
            }
        });
        waker.wake();
    }

    thread_local! {
        /// Which task each wake of a [`stack_waker`] clone named.
        static WOKEN: core::cell::RefCell<Vec<usize>> = const { core::cell::RefCell::new(Vec::new()) };
    }

    /// A waker whose data is a task number somewhere in the executor's memory (here a
    /// `Cell`), and whose clone copies the number to a box of its own: so a clone's data
    /// pointer differs from the waker it was cloned from.
    fn stack_waker(task: &Cell<usize>) -> Waker {
        fn clone_stack(data: *const ()) -> RawWaker {
            // SAFETY: a stack waker's data is a live `Cell<usize>` while the waker is used.
            let task = unsafe { &*data.cast::<Cell<usize>>() }.get();
            RawWaker::new(Box::into_raw(Box::new(task)).cast(), &BOXED)
        }
        fn clone_boxed(data: *const ()) -> RawWaker {
            // SAFETY: a boxed waker's data is its own live `Box<usize>`.
            let task = unsafe { *data.cast::<usize>() };
            RawWaker::new(Box::into_raw(Box::new(task)).cast(), &BOXED)
        }
        fn wake_boxed(data: *const ()) {
            wake_by_ref_boxed(data);
            drop_boxed(data);
        }
        fn wake_by_ref_boxed(data: *const ()) {
            // SAFETY: as in `clone_boxed`.
            let task = unsafe { *data.cast::<usize>() };
            WOKEN.with(|w| w.borrow_mut().push(task));
        }
        fn drop_boxed(data: *const ()) {
            // SAFETY: the box was made by `Box::into_raw` in a clone, and is dropped once.
            drop(unsafe { Box::from_raw(data.cast::<usize>().cast_mut()) });
        }
        static STACK: RawWakerVTable = RawWakerVTable::new(clone_stack, |_| {}, |_| {}, |_| {});
        static BOXED: RawWakerVTable =
            RawWakerVTable::new(clone_boxed, wake_boxed, wake_by_ref_boxed, drop_boxed);
        // SAFETY: the vtable's functions keep its contract for a `Cell<usize>` that outlives
        // every use of this waker (the tests' locals); wakes of the stack waker itself do
        // nothing, which the contract allows.
        unsafe { Waker::from_raw(RawWaker::new(ptr::from_ref(task).cast(), &STACK)) }
    }

    /// The parent's lock is skipped only for a poll by the very waker kept: an executor that
    /// polls with wakers at the same address (its stack) for different tasks, whose clones
    /// live elsewhere, has the latest one woken.
    #[test]
    fn a_new_parent_at_the_address_of_the_last_one_is_the_one_woken() {
        let hub = HubRef::new();
        for i in 0..=1 {
            hub.ensure(i, Entry::vacant(), false);
        }
        let task = Cell::new(1);
        hub.register_parent(&stack_waker(&task));
        // Another task's poll, with a waker at the same place.
        task.set(2);
        hub.register_parent(&stack_waker(&task));
        // A clone makes the wake take the shared path, which wakes the parent.
        let clone = (*hub.waker(1)).clone();
        clone.wake();
        assert_eq!(WOKEN.with(|w| w.take()), [2]);
        drop(hub);
    }

    /// Two executors' wakers may share a data pointer (each its own vtable, as tokio's and
    /// ours might point at one address): a poll by the second is not taken for one by the
    /// first, whose lock skip would keep the first one as the parent.
    #[test]
    fn a_parent_with_the_same_data_but_another_vtable_is_the_one_woken() {
        fn clone_one(data: *const ()) -> RawWaker {
            RawWaker::new(data, &ONE)
        }
        fn clone_two(data: *const ()) -> RawWaker {
            RawWaker::new(data, &TWO)
        }
        static ONE: RawWakerVTable =
            RawWakerVTable::new(clone_one, |_| woke(1), |_| woke(1), |_| {});
        static TWO: RawWakerVTable =
            RawWakerVTable::new(clone_two, |_| woke(2), |_| woke(2), |_| {});
        fn woke(which: usize) {
            WOKEN.with(|w| w.borrow_mut().push(which));
        }
        let hub = HubRef::new();
        for i in 0..=1 {
            hub.ensure(i, Entry::vacant(), false);
        }
        let data = ptr::from_ref(&hub).cast::<()>();
        // SAFETY: neither vtable reads its data pointer; clones and drops own nothing.
        let (one, two) = unsafe {
            (
                Waker::from_raw(RawWaker::new(data, &ONE)),
                Waker::from_raw(RawWaker::new(data, &TWO)),
            )
        };
        hub.register_parent(&one);
        hub.register_parent(&two);
        let clone = (*hub.waker(1)).clone();
        clone.wake();
        assert_eq!(WOKEN.with(|w| w.take()), [2]);
    }

    #[test]
    fn a_node_is_pushed_once_until_the_owner_clears_it() {
        let hub = HubRef::new();
        for i in 0..=40 {
            hub.ensure(i, Entry::vacant(), false);
        }
        let w = hub.waker(40);
        w.wake_by_ref();
        w.wake_by_ref();
        let (first, last) = hub.take_ready().expect("woken");
        assert_eq!((first.index(), last.index()), (40, 40));
        assert!(first.next().is_none());
        assert!(hub.take_ready().is_none());
        assert_eq!(first.clear_queued(false), 40);
        w.wake_by_ref();
        hub.waker(3).wake_by_ref();
        let (first, last) = hub.take_ready().expect("woken");
        assert_eq!((first.index(), last.index()), (40, 3));
    }
}
