//! Batches: children of one type spawned one after another, kept as records in one block and
//! polled by one loop, so that a child that finishes in its first poll never gets a wake node.
//!
//! A spawn loop's second child of one type opens a batch: a block of records (an 8-byte head,
//! its state word, handle flag and offset in the block, then the child's stage) carved from
//! the arena, and a node on the run queue that stands for the whole block. Later spawns of
//! that type append a record while the batch's node is still the run queue's tail, so the run
//! queue's order is the order of spawns as before. A burst's blocks double in size, so a lone
//! pair costs a small block.
//!
//! When the turn reaches the batch's node, `poll_batch` polls its records in order with the
//! waker of one spare node, the nursery's probe. A child that finishes there is done with no
//! node of its own. A child that returns `Pending` is materialised: the probe becomes its node
//! (the waker it may have cloned points there), its entry's payload is the record's stage, and
//! a new probe is taken for the next record; one that only woke itself needs no node (batch
//! rule 4). A handle awaited before its child's first poll materialises the record into a node
//! of its own, which the batch polls in the record's turn. `Shared` trees and children spawned
//! with `spawn_cancellable` keep a node each.
//!
//! Invariants (cited as "batch rule N"):
//! 1. A record's word says what its stage holds: `FRESH` an unpolled future, `YIELDED` a
//!    future that woke itself and waits for its next poll (either being polled, if it is
//!    `Core::batch_cur`), `DONE` its output, `EMPTY`/`RELEASED` nothing, `FINISHING` a
//!    future (or output) being dropped, `MAT`/`MAT_FRESH` whatever the entry of node
//!    `word & INDEX` says (that node's vtable is `Kind::Borrowed` and its payload is this
//!    stage). The head's `handle_gone` (outside `MAT*`, where the node's entry says it) says
//!    whether the record's handle was dropped.
//! 2. A record is `RELEASED` exactly once, when it holds nothing and no handle or node refers
//!    to it; the block is freed only when all its records are released and its node is neither
//!    queued (`queued`, `yqueued`), being run (`running`) nor walked by a cancel (`walking`),
//!    so a record, the stage a borrowed node points to and the header stay in place as long
//!    as anyone may reach them. `Core::open` never names a freed block. Records are reached
//!    through pointers derived from the block's own (the arena's), never from a reference to
//!    its header or to another record.
//! 3. Only the owner touches blocks and records (as slot rule 3). `Core::open`, the batch
//!    spawns append to, is a block whose node is the run queue's tail: anything else queued
//!    there, or its node taken off, clears it.
//! 4. A record that woke itself while no waker of the nursery existed but the ones lent to
//!    polls (`HubRef::alone`), and registered no handle's waiter by the probe's index
//!    (`Core::probe_claimed`), is `YIELDED` with no node: nothing but its next poll can
//!    observe it. The block's second node, `ynode`, stands for those records on the lap lists
//!    (wake rule 8), so they are polled where a yielded node would be; each run of it polls
//!    each of them once, going round from where the last run stopped. When that node must
//!    stand at the run queue's front for records a run did not reach, records that yielded
//!    in that run get nodes of their own instead.
//! 5. While a walk of a block's records polls one, `Core::batch_cur` is that record; a walk
//!    of fresh records starts at the block's `next` (moved only as the walk ends) and counts
//!    in `Core::batch_kept` the records it went past that did not finish or were counted off
//!    `live` by their own node: the others finished, and come off `live` as the walk ends
//!    (`WalkEnd`, also when a poll panics), so `Core::live` subtracts them until then.

use core::alloc::Layout;
use core::cell::Cell;
use core::future::Future;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll};

use super::arena;
use super::children::Core;
use super::driver::{Stop, TURN_BUDGET, poll_node};
use super::outcome::ChildOutput;
use super::slot::{Entry, Polled, Stage, State, VTable, VTableOf, poll_child};
use super::wake::WakeNode;

/// Where a block's records start: after its header.
const RECORDS_AT: usize = 64;
/// The records of a burst's first block; each later block of the burst holds twice as many,
/// up to [`MAX_BLOCK`] bytes.
const FIRST_RECORDS: usize = 8;
/// The largest block, in bytes.
const MAX_BLOCK: usize = 16 * 1024;
/// A block's alignment (its header's, and enough for every record it takes).
const BLOCK_ALIGN: usize = 64;

/// Where a record's state sits in its word; the node index takes the bits below.
const SHIFT: u32 = 28;
const INDEX: u32 = (1 << SHIFT) - 1;
const STATE: u32 = 0b1111 << SHIFT;
const FRESH: u32 = 0;
const DONE: u32 = 1 << SHIFT;
const EMPTY: u32 = 2 << SHIFT;
const FINISHING: u32 = 3 << SHIFT;
const YIELDED: u32 = 4 << SHIFT;
const MAT_FRESH: u32 = 5 << SHIFT;
const MAT: u32 = 6 << SHIFT;
const RELEASED: u32 = 7 << SHIFT;
/// The bits that are zero in `FRESH` and `YIELDED` only: the states that wait for a poll.
const NOT_WAITING: u32 = 0b0011 << SHIFT;

/// `Block::ynode` is on no list.
const NOT_QUEUED: u8 = 0;
/// `Block::ynode` waits on a lap list or behind the run queue's front.
const QUEUED_BEHIND: u8 = 1;
/// `Block::ynode` was put back at the run queue's front (its records come first).
const QUEUED_FRONT: u8 = 2;

/// A batch's header, at the start of its block.
#[repr(C)]
pub(super) struct Block {
    /// The batch's node on the run queue.
    node: *const WakeNode,
    /// The table a materialised record's node gets: the records' type, `Kind::Borrowed`.
    vtable: &'static VTable,
    /// The node that stands for the records that yielded (woke themselves with no waker
    /// cloned) where the run queue would hold them, or null until one yields (batch rule 4).
    ynode: Cell<*const WakeNode>,
    len: Cell<u32>,
    cap: u32,
    /// The next record to poll.
    next: Cell<u32>,
    released: Cell<u32>,
    /// The arena class of the block.
    class: u32,
    /// The records that yielded lie in `ylo..yhi`.
    ylo: Cell<u32>,
    yhi: Cell<u32>,
    /// Where the next run starts polling yielded records, going round: those a run did not
    /// reach come first, as on the run queue.
    ycur: Cell<u32>,
    /// The batch's node is on the run queue or being polled (batch rule 2).
    queued: Cell<bool>,
    /// A cancel walks the records (batch rule 2).
    walking: Cell<bool>,
    /// One of its nodes is being run (batch rule 2).
    running: Cell<bool>,
    /// Where `ynode` is queued: [`NOT_QUEUED`], [`QUEUED_BEHIND`] or [`QUEUED_FRONT`].
    yqueued: Cell<u8>,
}

const _: () = assert!(size_of::<Block>() <= RECORDS_AT && align_of::<Block>() <= BLOCK_ALIGN);
// A record's offset fits its head's `back`.
const _: () = assert!(MAX_BLOCK <= u16::MAX as usize + 1);

/// What [`Core::open`] names while no batch is open: a block with no room, so that a spawn
/// finds out whether it may append with one test. Nothing writes to it: nothing appends to
/// a block without room, no node's payload is this block and no record lies in it.
struct NoBlock(Block);

// SAFETY: `NO_BLOCK` is never written (see `NoBlock`), so threads share only reads of
// fields that never change.
unsafe impl Sync for NoBlock {}

static NO_BLOCK: NoBlock = NoBlock(Block {
    node: ptr::null(),
    vtable: VTableOf::<core::future::Ready<()>, ()>::BORROWED,
    ynode: Cell::new(ptr::null()),
    len: Cell::new(0),
    cap: 0,
    next: Cell::new(0),
    released: Cell::new(0),
    class: 0,
    ylo: Cell::new(0),
    yhi: Cell::new(0),
    ycur: Cell::new(0),
    queued: Cell::new(false),
    walking: Cell::new(false),
    running: Cell::new(false),
    yqueued: Cell::new(NOT_QUEUED),
});

/// [`NO_BLOCK`], as [`Core::open`] holds it (only ever read through it).
pub(super) fn no_block() -> *mut Block {
    ptr::from_ref(&NO_BLOCK.0).cast_mut()
}

/// A record's word, whether its handle was dropped, and its offset in its block, right
/// before its stage. The handle's flag has a byte of its own, so that dropping a handle at
/// once is one store, and is zero while the handle lives, so that a new record's head is
/// its offset alone (a spawn writes no flag).
#[repr(C)]
pub(super) struct Head {
    word: Cell<u32>,
    handle_gone: Cell<bool>,
    back: u16,
}

impl Head {
    /// Whether a handle refers to the record (meaningless once materialised: the node's
    /// entry says it then).
    #[inline(always)]
    fn has_handle(&self) -> bool {
        !self.handle_gone.get()
    }
}

/// Where `Head::back` sits in the head read as one little-endian `u64`.
const BACK_AT: u32 = 8 * core::mem::offset_of!(Head, back) as u32;
const _: () = assert!(cfg!(target_endian = "little") && size_of::<Head>() == 8);

/// One child in a block.
#[repr(C)]
struct Record<F: Future> {
    head: Head,
    stage: Stage<F>,
}

/// Whether children of type `F` go in batches: records aligned to at most 8 (so the stage
/// follows the head right away), and at least [`FIRST_RECORDS`] of them in the largest block.
pub(super) const fn batchable<F: Future>() -> bool {
    align_of::<Stage<F>>() <= 8
        && size_of::<Record<F>>() * FIRST_RECORDS <= MAX_BLOCK - RECORDS_AT
        && size_of::<Head>() == 8
}

/// The size of a record of `F`.
pub(super) const fn record_size<F: Future>() -> usize {
    size_of::<Record<F>>()
}

/// A record, by a pointer derived from its block's (batch rule 2).
pub(super) type Rec = *mut Head;

/// A handle's child: a node, or a record of a batch.
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    Node(&'a WakeNode),
    Record(Rec),
}

/// The head of a live record, for its word and handle flag.
///
/// # Safety
/// `rec` is a live record (batch rule 2).
unsafe fn head<'a>(rec: Rec) -> &'a Head {
    // SAFETY: as the caller promised.
    unsafe { &*rec }
}

/// The record whose stage is at `stage` (a borrowed entry's payload).
pub(super) fn of_stage(stage: *mut u8) -> Rec {
    // Records of batchable types put their stage 8 bytes after the head.
    stage.wrapping_sub(size_of::<Head>()).cast()
}

/// The stage of `rec`.
fn stage(rec: Rec) -> *mut u8 {
    rec.cast::<u8>().wrapping_add(size_of::<Head>())
}

/// The block `rec` lies in.
///
/// # Safety
/// `rec` is a live record (batch rule 2).
unsafe fn block_of(rec: Rec) -> *mut Block {
    // SAFETY: as the caller promised.
    let back = unsafe { (*rec).back };
    rec.cast::<u8>().wrapping_sub(back as usize).cast()
}

/// The index of `rec`, a record of `F` in `block`.
fn index_of<F: Future>(block: *mut Block, rec: Rec) -> usize {
    (rec.addr() - block.addr() - RECORDS_AT) / size_of::<Record<F>>()
}

/// Record `k` of `block`.
fn record(block: *mut Block, k: usize, stride: usize) -> Rec {
    block
        .cast::<u8>()
        .wrapping_add(RECORDS_AT + k * stride)
        .cast()
}

impl Core {
    /// Places a child of a `Local` tree: appended to the open batch if the last spawn opened
    /// or extended one for this type and it still waits at the run queue's tail; otherwise as
    /// `spawn_slow` decides.
    #[inline(always)]
    pub(super) fn spawn_batched<F: Future, R>(&self, future: F) -> Target<'_>
    where
        F::Output: ChildOutput<R>,
    {
        // A constant's address may differ between functions: the tables are read here once
        // and passed on, so a spawn loop compares the address it stored. Equal tables of
        // different types may share an address, but a table holds its record size, so those
        // types' records are the same size and their code the same.
        let borrowed = VTableOf::<F, R>::BORROWED;
        if batchable::<F>() {
            let open = self.open.get();
            // SAFETY: `open` names a live block (batch rule 2) whose node is the run queue's
            // tail (`Core::open` is cleared otherwise, batch rule 3), or `NO_BLOCK`.
            let block = unsafe { &*open };
            let len = block.len.get();
            // `NO_BLOCK` has no room: one test for both.
            if len < block.cap && ptr::eq(block.vtable, borrowed) {
                debug_assert_eq!(block.vtable.record_size, size_of::<Record<F>>());
                // SAFETY: as above; the block has room for record `len` of `F` (its vtable is
                // `F`'s, so its stride is `Record<F>`'s), so it is not `NO_BLOCK`.
                return unsafe { self.append(open, len, future) };
            }
        }
        self.spawn_slow::<F, R>(future, VTableOf::<F, R>::TABLE, borrowed)
    }

    /// Writes record `len` of `block` with `future` and counts it.
    ///
    /// # Safety
    /// `block` is a live block of `F` records with `len` its length and `len < cap`.
    #[inline(always)]
    unsafe fn append<F: Future>(&self, block: *mut Block, len: u32, future: F) -> Target<'_> {
        let back = RECORDS_AT + len as usize * size_of::<Record<F>>();
        // SAFETY: as the caller promised, record `len` lies inside the block, aligned for
        // `Record<F>` (the block is aligned to 64 and the stride is `Record<F>`'s size), and
        // holds nothing yet.
        let record = unsafe { block.cast::<u8>().add(back).cast::<Record<F>>() };
        // SAFETY: as above; `block` is live.
        unsafe { (*block).len.set(len + 1) };
        self.live.set(self.live.get() + 1);
        // The head last, next to the handle's first look at it (a handle dropped at once
        // then costs one store).
        // SAFETY: as above.
        unsafe {
            ptr::addr_of_mut!((*record).stage).write(Stage {
                future: ManuallyDrop::new(future),
            });
            // One store: `word` FRESH (0), `handle_gone` false (0), `back` (the layout is
            // `Head`'s, checked above); three narrow stores were slower (2.85 vs 3.3 ns per
            // ready child). Unaligned: a head is only 4-aligned, and records of a future
            // aligned to at most 4 whose size is not a multiple of 8 start at every other
            // multiple of 4 (Miri caught the aligned 8-byte store there).
            ptr::addr_of_mut!((*record).head)
                .cast::<u64>()
                .write_unaligned(u64::from(FRESH) | (back as u64) << BACK_AT);
        }
        Target::Record(record.cast())
    }

    /// A spawn the open batch cannot take: opens a batch when the run queue's tail is the
    /// previous spawn of this type (a node, or a full batch, whose successor gets twice the
    /// room); otherwise places the child in a node of its own.
    #[inline(never)]
    fn spawn_slow<F: Future, R>(
        &self,
        future: F,
        table: &'static VTable,
        borrowed: &'static VTable,
    ) -> Target<'_>
    where
        F::Output: ChildOutput<R>,
    {
        let tail = self.run_tail.get();
        if self.cancelled.get() || !batchable::<F>() || tail.is_null() {
            return Target::Node(self.spawn(future, table));
        }
        let stride = size_of::<Record<F>>();
        let open = self.open.get();
        // SAFETY: a non-null tail is a live queued node (wake rule 2); `open` names a live
        // block (batch rule 2) or `NO_BLOCK`.
        let records = unsafe {
            // A full batch of this type gets a successor twice its size. `NO_BLOCK` is no
            // batch: it borrows one type's table, and its cap of 0 would double to 0.
            if open != no_block() && ptr::eq((*open).vtable, borrowed) {
                ((*open).cap as usize * 2).min((MAX_BLOCK - RECORDS_AT) / stride)
            } else if ptr::eq((*tail).entry.vtable.get(), table) && (*tail).index() != 0 {
                FIRST_RECORDS
            } else {
                return Target::Node(self.spawn(future, table));
            }
        };
        let block = self.open_block(records, stride, borrowed, VTableOf::<F, R>::BATCH);
        // SAFETY: a new block of `F` records with room for at least one.
        unsafe { self.append(block, 0, future) }
    }

    /// Opens a batch for `records` records of `stride` bytes: a block and a queued node.
    #[cold]
    fn open_block(
        &self,
        records: usize,
        stride: usize,
        vtable: &'static VTable,
        batch: &'static VTable,
    ) -> *mut Block {
        let size = RECORDS_AT + records * stride;
        let layout = Layout::from_size_align(size, BLOCK_ALIGN).expect("a block fits in memory");
        let class = arena::class_of(layout);
        // The class may be larger than asked: the block fills it.
        let cap = (arena::stride(class) - RECORDS_AT) / stride;
        let block = self.arena_alloc(class).cast::<Block>();
        let (node, fresh) =
            self.take_node(Entry::spawned(block.cast(), batch, State::Running), true);
        // SAFETY: the slot is `stride(class)` bytes aligned to at least 64 (arena rule 1),
        // room for the header.
        unsafe {
            block.write(Block {
                node,
                vtable,
                len: Cell::new(0),
                cap: cap as u32,
                next: Cell::new(0),
                released: Cell::new(0),
                class: class as u32,
                queued: Cell::new(true),
                walking: Cell::new(false),
                running: Cell::new(false),
                ynode: Cell::new(ptr::null()),
                yqueued: Cell::new(NOT_QUEUED),
                ylo: Cell::new(u32::MAX),
                yhi: Cell::new(0),
                ycur: Cell::new(0),
            });
        }
        self.schedule_new(node, fresh);
        // Spawns append here only while its node is the run queue's tail (batch rule 3), which
        // a node queued already (by a wake left over from its slot's last child) is not.
        if ptr::eq(self.run_tail.get(), node) {
            self.open.set(block);
        }
        block
    }

    /// The node whose waker a record's first poll gets.
    #[inline]
    fn probe(&self) -> &WakeNode {
        let probe = self.probe.get();
        if !probe.is_null() {
            // SAFETY: the probe is a live node of this hub (wake rule 2).
            return unsafe { &*probe };
        }
        self.new_probe()
    }

    #[cold]
    fn new_probe(&self) -> &WakeNode {
        // A handle-held, empty entry: a cancel leaves it alone, a wake polls nothing.
        let (node, _) = self.take_node(Entry::probe(), false);
        self.probe.set(node);
        node
    }

    /// Releases a record that holds nothing and that nobody refers to any more (batch rule 2),
    /// and frees its block if it was the last.
    ///
    /// # Safety
    /// `rec` is a live record.
    pub(super) unsafe fn release(&self, rec: Rec) {
        // SAFETY: as the caller promised.
        let (head, block) = unsafe { (head(rec), block_of(rec)) };
        debug_assert!(head.word.get() & STATE != RELEASED);
        head.word.set(RELEASED);
        // SAFETY: a live record's block is live (batch rule 2).
        let header = unsafe { &*block };
        header.released.set(header.released.get() + 1);
        // SAFETY: as above.
        unsafe { self.free_block_if_done(block) };
    }

    /// Frees `at` and its nodes if no record and nobody else needs it (batch rule 2).
    ///
    /// # Safety
    /// `at` is a live block.
    unsafe fn free_block_if_done(&self, at: *mut Block) {
        // SAFETY: as the caller promised.
        let block = unsafe { &*at };
        if block.released.get() != block.len.get()
            || block.queued.get()
            || block.walking.get()
            || block.running.get()
            || block.yqueued.get() != NOT_QUEUED
        {
            return;
        }
        if ptr::eq(self.open.get(), at) {
            self.open.set(no_block());
        }
        // SAFETY: the node lives as long as the core (wake rule 2).
        let node = unsafe { &*block.node };
        let class = block.class as usize;
        let ynode = block.ynode.get();
        // SAFETY: nothing refers to the block any more (batch rule 2); its nodes' payloads are
        // reset below before their slots are freed, so the memory is given back once; the
        // block is not read after this.
        unsafe { self.arena_free(class, at.cast()) };
        for node in [ptr::from_ref(node), ynode] {
            if node.is_null() {
                continue;
            }
            // SAFETY: as above.
            let node = unsafe { &*node };
            node.entry.clear_payload();
            node.entry.set_state(State::Empty);
            node.entry.set_has_handle(false);
            self.free_slot(node);
        }
    }

    /// Drops what batch `node`'s records hold, in order (a cancel's walk reached its slot):
    /// materialised records through their own nodes. Each step marks the record before it runs
    /// a destructor, so that walking again after a panic drops nothing twice.
    pub(super) fn cancel_batch(&self, node: &WakeNode) {
        if !node.entry.is(State::Running) {
            return;
        }
        let at = node.entry.payload.get().cast::<Block>();
        // SAFETY: a running batch node's payload is its live block (batch rule 2).
        let block = unsafe { &*at };
        if !ptr::eq(block.node, node) {
            // The node of its yielded records: the batch's own node stands for them.
            return;
        }
        block.walking.set(true);
        let vtable = block.vtable;
        let mut k = 0;
        // A drop may append nothing (spawns are refused once cancelled), but re-read anyway.
        while k < block.len.get() {
            let rec = record(at, k as usize, vtable.record_size);
            // SAFETY: record `k < len` stays in place while the block lives (batch rule 2).
            let head = unsafe { head(rec) };
            let word = head.word.get();
            match word & STATE {
                // Its poll may have panicked: dropped as a panicked node's child is.
                FRESH | YIELDED => {
                    head.word.set(EMPTY);
                    self.live.set(self.live.get() - 1);
                    // SAFETY: such a record holds its future (batch rule 1).
                    unsafe { (vtable.drop_future)(stage(rec)) };
                }
                DONE => {
                    head.word.set(EMPTY);
                    // SAFETY: a done record holds its output (batch rule 1).
                    unsafe { (vtable.drop_output)(stage(rec)) };
                }
                FINISHING => {
                    // Its drop panicked half-way: what is left is leaked, never dropped twice.
                    head.word.set(EMPTY);
                    self.live.set(self.live.get() - 1);
                }
                MAT | MAT_FRESH => self.cancel_node(self.node(word & INDEX)),
                _ => {}
            }
            if head.word.get() & STATE == EMPTY && !head.has_handle() {
                head.word.set(RELEASED);
                block.released.set(block.released.get() + 1);
            }
            k += 1;
        }
        block.walking.set(false);
        // SAFETY: as above.
        unsafe { self.free_block_if_done(at) };
    }

    /// Gives a record whose handle is awaited before its first poll a node of its own, polled
    /// when the batch reaches the record (batch rule 1).
    ///
    /// # Safety
    /// `rec` is a live record.
    unsafe fn materialise_fresh(&self, rec: Rec) -> &WakeNode {
        // SAFETY: as the caller promised; its block is live too (batch rule 2).
        let vtable = unsafe { (*block_of(rec)).vtable };
        let entry = Entry::spawned(stage(rec), vtable, State::Running);
        let (node, _) = self.take_node(entry, false);
        // SAFETY: as above.
        unsafe { head(rec) }.word.set(MAT_FRESH | node.index());
        node
    }

    /// The node of `block`'s yielded records, taken when the first one yields.
    fn ynode(&self, at: *mut Block) -> &WakeNode {
        // SAFETY: the caller's block is live.
        let block = unsafe { &*at };
        let ynode = block.ynode.get();
        if !ynode.is_null() {
            // SAFETY: nodes live as long as the core (wake rule 2).
            return unsafe { &*ynode };
        }
        // SAFETY: the block's own node carries the batch's vtable.
        let batch = unsafe { (*block.node).entry.vtable.get() };
        let (node, _) = self.take_node(Entry::spawned(at.cast(), batch, State::Running), false);
        block.ynode.set(node);
        node
    }

    /// Gives a record that yielded a node of its own, queued behind what is queued now.
    fn materialise_yielded(&self, rec: Rec, vtable: &'static VTable) {
        // SAFETY: the caller's record is live.
        let head = unsafe { head(rec) };
        if head.word.get() & STATE != YIELDED {
            return;
        }
        let entry = Entry::with_handle(stage(rec), vtable, State::Running, head.has_handle());
        let (node, _) = self.take_node(entry, false);
        head.word.set(MAT | node.index());
        self.requeue(node, self.hub.alone());
    }

    /// The node a handle's record is materialised in, if it is.
    #[inline]
    pub(super) fn node_of<'a>(&'a self, target: Target<'a>) -> Option<&'a WakeNode> {
        match target {
            Target::Node(node) => Some(node),
            Target::Record(rec) => {
                // SAFETY: a handle's record is live while the handle is (batch rule 2).
                let word = unsafe { head(rec) }.word.get();
                matches!(word & STATE, MAT | MAT_FRESH).then(|| self.node(word & INDEX))
            }
        }
    }

    /// Whether a handle's record holds its output.
    ///
    /// # Safety
    /// `rec` is a live record.
    pub(super) unsafe fn record_done(rec: Rec) -> bool {
        // SAFETY: as the caller promised.
        unsafe { head(rec) }.word.get() & STATE == DONE
    }

    /// Polls a handle whose record is not materialised: its output, or `None` after
    /// registering `cx`'s waker (materialising the record if it never ran).
    ///
    /// # Safety
    /// `T` is the output type of the record's child.
    /// `T` is the output type of the record's child, and `rec` a live record (its handle's).
    pub(super) unsafe fn poll_handle<T>(&self, rec: Rec, cx: &mut Context<'_>) -> Option<T> {
        // SAFETY: as the caller promised.
        let head = unsafe { head(rec) };
        match head.word.get() & STATE {
            DONE => {
                // SAFETY: a done record holds its output, a `T` as the caller promised;
                // read once, then released.
                let output = unsafe { stage(rec).cast::<T>().read() };
                head.word.set(EMPTY);
                // SAFETY: as above; not used afterwards.
                unsafe { self.release(rec) };
                Some(output)
            }
            FRESH | YIELDED if rec != self.batch_cur.get() => {
                // SAFETY: as above.
                let node = unsafe { self.materialise_fresh(rec) };
                self.set_waiter(node, cx.waker());
                None
            }
            // Polled by code inside the child's own poll or drop (`Core::batch_cur`,
            // `FINISHING`):
            // whoever waits there is the child itself, which this record's end cannot wake
            // any more than a child awaiting itself on a node of its own would be; or
            // cancelled (`EMPTY`): the nursery is ending.
            _ => None,
        }
    }

    /// Drops a handle to a record; false if the record is materialised, whose node the
    /// caller then drops the handle of.
    #[inline]
    ///
    /// # Safety
    /// `rec` is a live record, its handle's.
    pub(super) unsafe fn drop_record_handle(&self, rec: Rec) -> bool {
        // SAFETY: as the caller promised.
        let head = unsafe { head(rec) };
        // Meaningless once materialised (the node's entry says it then).
        head.handle_gone.set(true);
        let word = head.word.get();
        if word & STATE == FRESH {
            return true;
        }
        if matches!(word & STATE, MAT | MAT_FRESH) {
            return false;
        }
        // SAFETY: as above.
        unsafe { self.drop_record_handle_slow(rec) };
        true
    }

    /// # Safety
    /// As for [`Core::drop_record_handle`].
    #[inline(never)]
    unsafe fn drop_record_handle_slow(&self, rec: Rec) {
        // SAFETY: as the caller promised.
        let head = unsafe { head(rec) };
        match head.word.get() & STATE {
            DONE => {
                head.word.set(EMPTY);
                // SAFETY: as above; a live record's block is live (batch rule 2).
                let vtable = unsafe { (*block_of(rec)).vtable };
                // SAFETY: a done record holds its output (batch rule 1); nobody can take it.
                unsafe { (vtable.drop_output)(stage(rec)) };
                // SAFETY: as above; not used afterwards.
                unsafe { self.release(rec) };
            }
            // SAFETY: as above; not used afterwards.
            EMPTY => unsafe { self.release(rec) },
            _ => {}
        }
    }

    /// The slot of the node standing for the batch `rec` is in, for a handle's `Debug`.
    ///
    /// # Safety
    /// `rec` is a live record.
    pub(super) unsafe fn batch_index(rec: Rec) -> u32 {
        // SAFETY: as the caller promised; nodes live as long as the core (wake rule 2).
        unsafe { (*(*block_of(rec)).node).index() }
    }
}

/// What a batch run keeps while it polls records.
struct Run<'a> {
    /// The node whose waker a record's poll gets.
    probe: &'a WakeNode,
    /// The range of the records that yielded in this run.
    yielded: (u32, u32),
    /// Records released in this run, counted on the block as it ends.
    released: u32,
}

/// Marks the path it is called on as unlikely (`core::hint::cold_path` needs a newer rustc
/// than the crate's MSRV), so that the likely one is laid out straight.
#[cold]
#[inline(always)]
fn cold_path() {}

/// `Core::batch_kept` outside a walk of fresh records.
pub(super) const NOT_WALKING: u32 = u32::MAX;

/// The records a walk of fresh records went past before `cur`, the one it polls.
///
/// # Safety
/// `cur` is the record being polled in a walk of its block's fresh records (batch rule 5).
pub(super) unsafe fn walked(cur: Rec) -> usize {
    // SAFETY: as the caller promised, `cur` and its block are live; the walk started at the
    // block's `next`, which it only moves as it ends.
    unsafe {
        let block = &*block_of(cur);
        let from = record(
            block_of(cur),
            block.next.get() as usize,
            block.vtable.record_size,
        );
        (cur.addr() - from.addr()) / block.vtable.record_size
    }
}

/// Ends a walk of a batch's records however it ends (a child's poll may panic): the
/// children a walk of fresh records finished come off `live` (batch rule 5), and no record
/// is being polled any more.
struct WalkEnd<'a> {
    core: &'a Core,
    /// The first record of a walk of fresh records and their size; null for the yielded
    /// records' walk.
    from: Rec,
    stride: usize,
}

impl Drop for WalkEnd<'_> {
    fn drop(&mut self) {
        let core = self.core;
        if !self.from.is_null() {
            // `batch_cur` is the record whose poll panicked, or the end of the walk.
            let walked = (core.batch_cur.get().addr() - self.from.addr()) / self.stride;
            let done = walked - core.batch_kept.get() as usize;
            core.live.set(core.live.get() - done);
        }
        core.batch_cur.set(ptr::null_mut());
        core.batch_kept.set(NOT_WALKING);
    }
}

/// Counts a record of a walk of fresh records that its poll did not finish, or whose own
/// node counts it (batch rule 5).
#[inline(always)]
fn kept<const FRESH_WALK: bool>(core: &Core) {
    if FRESH_WALK {
        core.batch_kept.set(core.batch_kept.get() + 1);
    }
}

/// What polling one record did, for [`poll_batch`]'s loop.
enum Step<'a> {
    /// Polled; go on.
    Polled,
    /// Nothing to poll there.
    Skipped,
    /// The nursery must stop the turn.
    Stop(Stop<'a>),
}

/// Polls record `rec` of `block` if it waits for a poll: a fresh or yielded record with the
/// probe's waker, a record materialised before its first poll through its own node. In the
/// walk of fresh records (`FRESH_WALK`), children that finish are counted off `live` as the
/// walk ends; in the yielded records' walk, one by one.
///
/// # Safety
/// As for [`poll_batch`]; `rec` is below `len`; with `FRESH_WALK`, the walk started at the
/// block's `next` and `Core::batch_kept` counts the records from there to `rec` that did not
/// finish in it (batch rule 5).
#[inline(always)]
unsafe fn poll_record<'a, F: Future, R, const FRESH_WALK: bool>(
    core: &'a Core,
    at: *mut Block,
    rec: Rec,
    run: &mut Run<'a>,
    failure: *const (),
) -> Step<'a>
where
    F::Output: ChildOutput<R>,
{
    // SAFETY: a record of `F` below `len` (batch rule 1), reached from the block's pointer.
    let head = unsafe { head(rec) };
    // Its handle, polled from inside its poll, must not give it a node (batch rule 1).
    core.batch_cur.set(rec);
    let word = head.word.get();
    if word & NOT_WAITING == 0 {
        let stage = stage(rec);
        let waker = run.probe.waker();
        let mut cx = Context::from_waker(&waker);
        // SAFETY: a fresh or yielded record holds its future, which never moves (batch
        // rule 2).
        let future = unsafe { Pin::new_unchecked(&mut *stage.cast::<F>()) };
        let Poll::Ready(output) = future.poll(&mut cx) else {
            let alone = core.hub.alone();
            let woken = core.hub.take_self_woken();
            // Whether it awaits a handle by the probe's index: then it keeps the probe.
            let claimed = core.probe_claimed.replace(false);
            kept::<FRESH_WALK>(core);
            if woken && alone && !claimed {
                // It woke itself and no waker of the nursery exists but the ones it lends:
                // nobody else can wake it, so it needs no node, only another poll, in the
                // turn's second lap (or the next turn), like a node that yielded.
                head.word.set(YIELDED);
                // Indices fit `u32` (a block holds fewer records).
                let k = index_of::<F>(at, rec) as u32;
                run.yielded.0 = run.yielded.0.min(k);
                run.yielded.1 = run.yielded.1.max(k + 1);
                return Step::Polled;
            }
            // The probe becomes the child's node: any waker it cloned points there.
            let handle = head.has_handle();
            // SAFETY: the caller's block is live.
            let vtable = unsafe { (*at).vtable };
            run.probe
                .entry
                .replace_with(Entry::with_handle(stage, vtable, State::Running, handle));
            head.word.set(MAT | run.probe.index());
            core.probe.set(ptr::null());
            if woken {
                core.requeue(run.probe, alone);
            }
            run.probe = core.probe();
            core.hub.set_polled(Some(run.probe));
            return Step::Polled;
        };
        // A wake of itself while it finished means nothing.
        core.hub.take_self_woken();
        if core::mem::needs_drop::<F>() || core::mem::needs_drop::<F::Output>() {
            // A destructor that panics must not be run again by a cancel.
            head.word.set(FINISHING);
        }
        // SAFETY: the future finished; dropped in place once.
        unsafe { ptr::drop_in_place(stage.cast::<F>()) };
        let step = match output.settle() {
            // Read after the drop, which may have dropped the handle.
            Ok(output) if !head.has_handle() => {
                drop(output);
                head.word.set(RELEASED);
                // Counted on the block when the run ends (nothing frees it meanwhile).
                run.released += 1;
                Step::Polled
            }
            Ok(output) => {
                // Kept for a handle: out of the way of spawn loops that drop their handles.
                cold_path();
                // SAFETY: the stage is laid out for `Stage<F>`.
                unsafe { stage.cast::<F::Output>().write(output) };
                head.word.set(DONE);
                Step::Polled
            }
            Err(end) => {
                if !head.has_handle() {
                    head.word.set(RELEASED);
                    run.released += 1;
                } else {
                    head.word.set(EMPTY);
                }
                // SAFETY: the caller passes the scope's failure cell, typed by `R`.
                let failure = unsafe { &*failure.cast::<Cell<Option<R>>>() };
                let first_end = failure.take();
                failure.set(Some(first_end.unwrap_or(end)));
                Step::Stop(Stop::Failed)
            }
        };
        // After the output's drop, as for a child in a node of its own (a destructor that
        // panics leaves the record `FINISHING`, which the cancel counts off `live`).
        if !FRESH_WALK {
            core.live.set(core.live.get() - 1);
        }
        return step;
    }
    // Records that wait for no poll are rare in a batch's walk (their children were
    // materialised or finished through their nodes): the fresh ones' poll comes first.
    cold_path();
    if word & STATE != MAT_FRESH {
        kept::<FRESH_WALK>(core);
        return Step::Skipped;
    }
    // Its handle was awaited before this poll: its own node runs it now, and counts it off
    // `live` if it ends (kept once polled: until then, it is not among the records walked).
    let child = core.node(word & INDEX);
    head.word.set(MAT | (word & INDEX));
    // SAFETY: a materialised record's node holds the running `F` (batch rule 1).
    let (out, _) = unsafe { poll_node(core, child, failure, poll_child::<F, R>) };
    kept::<FRESH_WALK>(core);
    core.hub.set_polled(Some(run.probe));
    if matches!(out, Polled::Failed) {
        return Step::Stop(Stop::Failed);
    }
    Step::Polled
}

/// [`VTable::run`](super::slot::VTable::run) of a batch of `F`s in a nursery whose output is
/// `R`: polls the records that yielded since the batch's last run, then those not polled yet,
/// in order (see the module's documentation).
///
/// # Safety
/// As for [`super::driver::poll_run`], with `first` a batch node of `F`.
pub(super) unsafe fn poll_batch<'a, F: Future, R>(
    core: &'a Core,
    first: &'a WakeNode,
    failure: *const (),
    mut polled: usize,
    _body_done: bool,
) -> (Option<Stop<'a>>, usize)
where
    F::Output: ChildOutput<R>,
{
    // A wake left over from the slot's last child, after this batch was freed.
    if !first.entry.is(State::Running) {
        return (None, polled);
    }
    let at = first.entry.payload.get().cast::<Block>();
    // SAFETY: a running batch node's payload is its live block (batch rule 2), of `F`
    // records as its vtable says.
    let block = unsafe { &*at };
    // Not freed while it runs, whatever its records' nodes do (batch rule 2).
    block.running.set(true);
    if ptr::eq(core.open.get(), at) {
        // Off the run queue: spawns no longer append here (batch rule 3).
        core.open.set(no_block());
    }
    let probe = core.probe();
    core.hub.set_polled(Some(probe));
    let mut run = Run {
        probe,
        yielded: (u32::MAX, 0),
        released: 0,
    };
    let is_y = ptr::eq(first, block.ynode.get());
    let mut stop = None;
    let fresh_from = block.next.get();
    // The yielded records' node: walks them from where its last run stopped, going round,
    // once each (batch rule 4).
    let (lo, hi, cur) = (block.ylo.get(), block.yhi.get(), block.ycur.get());
    let segments = [(cur.max(lo), hi), (lo, cur.min(hi))];
    let mut stopped = None;
    if is_y {
        block.yqueued.set(NOT_QUEUED);
        let _end = WalkEnd {
            core,
            from: ptr::null_mut(),
            stride: 0,
        };
        'walk: for (i, &(from, to)) in segments.iter().enumerate() {
            let mut k = from;
            while k < to {
                // SAFETY: as the caller promised; `k < hi <= len`.
                let step = unsafe {
                    poll_record::<F, R, false>(
                        core,
                        at,
                        record(at, k as usize, size_of::<Record<F>>()),
                        &mut run,
                        failure,
                    )
                };
                k += 1;
                match step {
                    Step::Skipped => continue,
                    Step::Polled => {}
                    Step::Stop(s) => stop = Some(s),
                }
                if stop.is_none() {
                    polled += 1;
                    if polled == TURN_BUDGET {
                        stop = Some(Stop::Budget);
                    }
                }
                if stop.is_some() {
                    stopped = Some((i, k));
                    break 'walk;
                }
            }
        }
    } else {
        // The batch's own node: the records not polled yet. Nothing appends to the batch
        // while its node is off the run queue, so its length holds for the run.
        let stride = size_of::<Record<F>>();
        let end = record(at, block.len.get() as usize, stride);
        let from = record(at, block.next.get() as usize, stride);
        // The turn's budget ends the walk at `limit`, which moves on by one record for each
        // record that was not a poll: the loop compares one pointer per record.
        let room = TURN_BUDGET.saturating_sub(polled);
        let mut limit = if (end.addr() - from.addr()) / stride > room {
            from.wrapping_byte_add(room * stride)
        } else {
            end
        };
        let mut uncounted = 0;
        let mut rec = from;
        core.batch_kept.set(0);
        let end_walk = WalkEnd { core, from, stride };
        stop = loop {
            if rec == limit {
                break None;
            }
            // SAFETY: as the caller promised; `rec` is below `limit <= len`.
            let step = unsafe { poll_record::<F, R, true>(core, at, rec, &mut run, failure) };
            rec = rec.wrapping_byte_add(stride);
            match step {
                Step::Polled => {}
                Step::Skipped => {
                    uncounted += 1;
                    if limit != end {
                        limit = limit.wrapping_byte_add(stride);
                    }
                }
                // The poll that stops the turn is not counted (as in the typed runs).
                Step::Stop(s) => {
                    uncounted += 1;
                    break Some(s);
                }
            }
        };
        // Every record up to `rec` was walked.
        core.batch_cur.set(rec);
        drop(end_walk);
        polled += (rec.addr() - from.addr()) / stride - uncounted;
        if stop.is_none() && polled == TURN_BUDGET {
            stop = Some(Stop::Budget);
        }
        block.next.set(index_of::<F>(at, rec) as u32);
    }
    block.released.set(block.released.get() + run.released);
    // Records left that come first in the next lap or turn: the node goes back to the run
    // queue's front for them.
    let left = if is_y {
        stopped.is_some_and(|(i, k)| {
            (i == 0 && (k < segments[0].1 || segments[1].0 < segments[1].1))
                || (i == 1 && k < segments[1].1)
        })
    } else {
        block.next.get() != block.len.get()
    };
    // The records that yielded in this run wait behind what is queued now, with the node of
    // the yielded records; that node cannot be in two places, so if it must stay at the
    // front, they get nodes of their own there instead.
    let mut own_nodes = false;
    if run.yielded.0 < run.yielded.1 {
        if (is_y && left) || block.yqueued.get() == QUEUED_FRONT {
            own_nodes = true;
        } else {
            if is_y {
                // The walk reached every record: its range is just the new one.
                block.ylo.set(run.yielded.0);
                block.yhi.set(run.yielded.1);
            } else {
                block.ylo.set(block.ylo.get().min(run.yielded.0));
                block.yhi.set(block.yhi.get().max(run.yielded.1));
            }
            let ynode = core.ynode(at);
            core.requeue(ynode, core.hub.alone());
            block.yqueued.set(QUEUED_BEHIND);
        }
    } else if is_y && !left {
        block.ylo.set(u32::MAX);
        block.yhi.set(0);
    }
    if own_nodes {
        let visited = if is_y {
            match stopped {
                Some((0, k)) => [(segments[0].0, k), (0, 0)],
                _ => [
                    segments[0],
                    (segments[1].0, stopped.map_or(segments[1].1, |s| s.1)),
                ],
            }
        } else {
            [(fresh_from, block.next.get()), (0, 0)]
        };
        for (from, to) in visited {
            for k in from..to {
                let rec = record(at, k as usize, size_of::<Record<F>>());
                core.materialise_yielded(rec, block.vtable);
            }
        }
    }
    if left {
        if let Some((_, k)) = stopped {
            block.ycur.set(k);
        }
        core.push_front(first);
        if is_y {
            block.yqueued.set(QUEUED_FRONT);
        }
    } else if !is_y {
        block.queued.set(false);
    }
    block.running.set(false);
    // SAFETY: as above.
    unsafe { core.free_block_if_done(at) };
    (stop, polled)
}

#[cfg(test)]
mod tests {
    use core::cell::Cell;
    use core::future::{Future, poll_fn};
    use core::pin::pin;
    use core::task::{Context, Poll, Waker};

    use crate::nursery::nursery;

    /// Polls `fut` to completion with a waker that does nothing.
    fn run<F: Future>(fut: F) -> F::Output {
        let mut fut = pin!(fut);
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
                return out;
            }
        }
    }

    /// A spawn loop's ready children take no wake nodes: 1,000 of them hand out a slot for
    /// the first child, one per block (blocks double) and the probe, not 1,000.
    #[test]
    fn ready_children_of_a_spawn_loop_take_no_nodes() {
        let sum = Cell::new(0u64);
        let sum = &sum;
        let slots = run(nursery(async |n| {
            for i in 0..1_000u64 {
                drop(n.spawn(async move { sum.set(sum.get() + i) }));
            }
            crate::yield_now().await;
            n.core.slots()
        }));
        assert_eq!(sum.get(), 999 * 1_000 / 2);
        // The body, the first child, 8 blocks (8, 16, ... records, up to 16 KiB), the probe.
        assert!(slots < 16, "{slots} slots for 1,000 ready children");
    }

    /// Children that wake themselves once (with no waker cloned) take no nodes either: they
    /// are polled again as records. Children that hand their waker out get nodes.
    #[test]
    fn yielding_children_take_no_nodes_waker_holders_do() {
        let slots = run(nursery(async |n| {
            for _ in 0..1_000 {
                drop(n.spawn(crate::yield_now()));
            }
            crate::yield_now().await;
            crate::yield_now().await;
            n.core.slots()
        }));
        // As above, plus one node per block for its yielded records.
        assert!(slots < 32, "{slots} slots for 1,000 yielding children");
        let parked = core::cell::RefCell::new(Vec::new());
        let parked = &parked;
        let slots = run(nursery(async |n| {
            for _ in 0..100 {
                let mut first = true;
                drop(n.spawn(poll_fn(move |cx: &mut Context<'_>| {
                    if core::mem::take(&mut first) {
                        parked.borrow_mut().push(cx.waker().clone());
                        return Poll::Pending;
                    }
                    Poll::Ready(())
                })));
            }
            crate::yield_now().await;
            let slots = n.core.slots();
            parked.take().into_iter().for_each(Waker::wake);
            slots
        }));
        assert!(
            slots > 100,
            "{slots} slots for 100 children holding their wakers"
        );
    }
}
