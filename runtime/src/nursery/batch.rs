//! Batches: children of one type spawned one after another, kept as records in one block and
//! polled by one loop, so that a child that finishes in its first poll never gets a wake node.
//!
//! A spawn loop's second child of one type opens a batch: a block of records (a word of
//! bookkeeping, then the child's stage) carved from the arena, and a node on the run queue
//! that stands for the whole block. Later spawns of that type append a record while the
//! batch's node is still the run queue's tail, so the run queue's order is the order of spawns
//! as before. A burst's blocks double in size, so a lone pair costs a small block.
//!
//! When the turn reaches the batch's node, `poll_batch` polls its records in order with the
//! waker of one spare node, the nursery's probe. A child that finishes there is done with no
//! node of its own. A child that returns `Pending` is materialised: the probe becomes its node
//! (the waker it may have cloned points there), its entry's payload is the record's stage, and
//! a new probe is taken for the next record. A handle awaited before its child's first poll
//! materialises the record into a node of its own, which the batch polls in the record's turn.
//!
//! Invariants (cited as "batch rule N"):
//! 1. A record's word says what its stage holds: `FRESH` an unpolled future, `DONE` its
//!    output, `EMPTY`/`RELEASED` nothing, `FINISHING` a future being dropped, `MAT`/`MAT_FRESH`
//!    whatever the entry of node `word & INDEX` says (that node's vtable is `Kind::Borrowed` and
//!    its payload is this stage). The head's `handle` (outside `MAT*`, where the node's entry
//!    says it) says a handle refers to the record.
//! 2. A record is `RELEASED` exactly once, when it holds nothing and no handle or node refers
//!    to it; the block is freed only when all its records are released and its node is neither
//!    queued, being polled nor walked by a cancel (`queued`, `walking`), so a record, the
//!    stage a borrowed node points to and the header stay in place as long as anyone may
//!    reach them. `Core::open` never names a freed block.
//! 3. Only the owner touches blocks and records (as slot rule 3). `Core::open`, the batch
//!    spawns append to, is a block whose node is the run queue's tail: anything else queued
//!    there, or its node taken off, clears it.

use core::alloc::Layout;
use core::cell::Cell;
use core::future::Future;
use core::mem::ManuallyDrop;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll};

use super::arena;
use super::children::Core;
use super::driver::{Stop, TURN_BUDGET};
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
const STATE: u32 = 0b111 << SHIFT;
const FRESH: u32 = 0;
const DONE: u32 = 1 << SHIFT;
const EMPTY: u32 = 2 << SHIFT;
const FINISHING: u32 = 3 << SHIFT;
const YIELDED: u32 = 4 << SHIFT;
const MAT_FRESH: u32 = 5 << SHIFT;
const MAT: u32 = 6 << SHIFT;
const RELEASED: u32 = 7 << SHIFT;
/// The bits that are zero in `FRESH` and `YIELDED` only: the states that wait for a poll.
const NOT_WAITING: u32 = 0b011 << SHIFT;

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
    stride: u32,
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
    /// Where `ynode` is queued: [`NOT_QUEUED`], [`QUEUED_BEHIND`] or [`QUEUED_FRONT`].
    yqueued: Cell<u8>,
}

const _: () = assert!(size_of::<Block>() <= RECORDS_AT && align_of::<Block>() <= BLOCK_ALIGN);
// A record's offset fits its head's `back`.
const _: () = assert!(MAX_BLOCK <= u16::MAX as usize + 1);

/// A record's word, whether a handle refers to it, and its offset in its block, right
/// before its stage. The handle's flag has a byte of its own, so that dropping a handle at
/// once is one store.
#[repr(C)]
pub(super) struct Head {
    word: Cell<u32>,
    handle: Cell<bool>,
    back: u16,
}

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

/// A handle's child: a node, or a record of a batch.
#[derive(Clone, Copy)]
pub(super) enum Target<'a> {
    Node(&'a WakeNode),
    Record(&'a Head),
}

impl Head {
    /// The head of the record whose stage is at `stage`.
    ///
    /// # Safety
    /// `stage` is the stage of a live record (a borrowed entry's payload, batch rule 1).
    pub(super) unsafe fn of_stage<'a>(stage: *mut u8) -> &'a Head {
        // SAFETY: as the caller promised; the head is the 8 bytes before the stage.
        unsafe { &*stage.sub(size_of::<Head>()).cast::<Head>() }
    }

    /// The stage after this head.
    fn stage(&self) -> *mut u8 {
        // Records are laid out by `Record<F>`, whose stage follows the 8-byte head (records
        // of batchable types are aligned to at most 8).
        ptr::from_ref(self)
            .cast::<u8>()
            .cast_mut()
            .wrapping_add(size_of::<Head>())
    }

    /// The block this record lies in.
    fn block(&self) -> &Block {
        let at = ptr::from_ref(self)
            .cast::<u8>()
            .wrapping_sub(self.back as usize);
        // SAFETY: `back` is this record's offset in its block, whose header is alive while a
        // record is reachable (batch rule 2).
        unsafe { &*at.cast::<Block>() }
    }
}

impl Block {
    /// Record `k`'s head.
    fn head(&self, k: u32) -> &Head {
        let at = ptr::from_ref(self)
            .cast::<u8>()
            .wrapping_add(RECORDS_AT + k as usize * self.stride as usize);
        // SAFETY: record `k < len` was written by a spawn and stays in place (batch rule 2).
        unsafe { &*at.cast::<Head>() }
    }
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
            if !open.is_null() {
                // SAFETY: `open` names a live block (batch rule 2) whose node is the run
                // queue's tail (`Core::open` is cleared otherwise, batch rule 3).
                let block = unsafe { &*open };
                let len = block.len.get();
                if len < block.cap && ptr::eq(block.vtable, borrowed) {
                    debug_assert_eq!(block.vtable.record_size, size_of::<Record<F>>());
                    // SAFETY: as above; the block has room for record `len` of `F` (its
                    // vtable is `F`'s, so its stride is `Record<F>`'s).
                    return unsafe { self.append(open, len, future) };
                }
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
            ptr::addr_of_mut!((*record).head).write(Head {
                word: Cell::new(FRESH),
                handle: Cell::new(true),
                back: back as u16,
            });
        }
        // SAFETY: just written; it stays while its handle lives (batch rule 2).
        Target::Record(unsafe { &(*record).head })
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
        // block (batch rule 2).
        let records = unsafe {
            if !open.is_null() && ptr::eq((*open).vtable, borrowed) {
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
                stride: stride as u32,
                class: class as u32,
                queued: Cell::new(true),
                walking: Cell::new(false),
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
    pub(super) fn release(&self, head: &Head) {
        debug_assert!(head.word.get() & STATE != RELEASED);
        head.word.set(RELEASED);
        let block = head.block();
        block.released.set(block.released.get() + 1);
        self.free_block_if_done(block);
    }

    /// Frees `block` and its node if no record and nobody else needs it (batch rule 2).
    fn free_block_if_done(&self, block: &Block) {
        if block.released.get() != block.len.get()
            || block.queued.get()
            || block.walking.get()
            || block.yqueued.get() != NOT_QUEUED
        {
            return;
        }
        let at = ptr::from_ref(block).cast_mut();
        if ptr::eq(self.open.get(), at) {
            self.open.set(ptr::null_mut());
        }
        // SAFETY: the node lives as long as the core (wake rule 2).
        let node = unsafe { &*block.node };
        let class = block.class as usize;
        // SAFETY: nothing refers to the block any more (batch rule 2); its node's payload is
        // reset below before the slot is freed, so the memory is given back once.
        unsafe { self.arena_free(class, at.cast()) };
        let ynode = block.ynode.get();
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
        // SAFETY: a running batch node's payload is its live block (batch rule 2).
        let block = unsafe { &*node.entry.payload.get().cast::<Block>() };
        if !ptr::eq(block.node, node) {
            // The node of its yielded records: the batch's own node stands for them.
            return;
        }
        block.walking.set(true);
        let vtable = block.vtable;
        let mut k = 0;
        // A drop may append nothing (spawns are refused once cancelled), but re-read anyway.
        while k < block.len.get() {
            let head = block.head(k);
            let word = head.word.get();
            match word & STATE {
                FRESH | YIELDED => {
                    head.word.set(EMPTY);
                    self.live.set(self.live.get() - 1);
                    // SAFETY: a fresh record holds its unpolled future (batch rule 1).
                    unsafe { (vtable.drop_future)(head.stage()) };
                }
                DONE => {
                    head.word.set(EMPTY);
                    // SAFETY: a done record holds its output (batch rule 1).
                    unsafe { (vtable.drop_output)(head.stage()) };
                }
                FINISHING => {
                    // Its drop panicked half-way: what is left is leaked, never dropped twice.
                    head.word.set(EMPTY);
                    self.live.set(self.live.get() - 1);
                }
                MAT | MAT_FRESH => self.cancel_node(self.node(word & INDEX)),
                _ => {}
            }
            if head.word.get() & STATE == EMPTY && !head.handle.get() {
                head.word.set(RELEASED);
                block.released.set(block.released.get() + 1);
            }
            k += 1;
        }
        block.walking.set(false);
        self.free_block_if_done(block);
    }

    /// Gives a record whose handle is awaited before its first poll a node of its own, polled
    /// when the batch reaches the record (batch rule 1).
    fn materialise_fresh(&self, head: &Head) -> &WakeNode {
        let block = head.block();
        let entry = Entry::spawned(head.stage(), block.vtable, State::Running);
        let (node, _) = self.take_node(entry, false);
        head.word.set(MAT_FRESH | node.index());
        node
    }

    /// The node of `block`'s yielded records, taken when the first one yields.
    fn ynode(&self, block: &Block) -> &WakeNode {
        let ynode = block.ynode.get();
        if !ynode.is_null() {
            // SAFETY: nodes live as long as the core (wake rule 2).
            return unsafe { &*ynode };
        }
        // SAFETY: the block's own node carries the batch's vtable.
        let batch = unsafe { (*block.node).entry.vtable.get() };
        let at = ptr::from_ref(block).cast::<u8>().cast_mut();
        let (node, _) = self.take_node(Entry::spawned(at, batch, State::Running), false);
        block.ynode.set(node);
        node
    }

    /// Gives a record that yielded a node of its own, queued behind what is queued now.
    fn materialise_yielded(&self, head: &Head) {
        let word = head.word.get();
        if word & STATE != YIELDED {
            return;
        }
        let block = head.block();
        let entry = Entry::with_handle(
            head.stage(),
            block.vtable,
            State::Running,
            head.handle.get(),
        );
        let (node, _) = self.take_node(entry, false);
        head.word.set(MAT | node.index());
        self.requeue(node, self.hub.alone());
    }

    /// The node a handle's record is materialised in, if it is.
    #[inline]
    pub(super) fn node_of<'a>(&'a self, target: Target<'a>) -> Option<&'a WakeNode> {
        match target {
            Target::Node(node) => Some(node),
            Target::Record(head) => {
                let word = head.word.get();
                matches!(word & STATE, MAT | MAT_FRESH).then(|| self.node(word & INDEX))
            }
        }
    }

    /// Whether a handle's record holds its output.
    pub(super) fn record_done(head: &Head) -> bool {
        head.word.get() & STATE == DONE
    }

    /// Polls a handle whose record is not materialised: its output, or `None` after
    /// registering `cx`'s waker (materialising the record if it never ran).
    ///
    /// # Safety
    /// `T` is the output type of the record's child.
    pub(super) unsafe fn poll_record<T>(&self, head: &Head, cx: &mut Context<'_>) -> Option<T> {
        let word = head.word.get();
        match word & STATE {
            DONE => {
                // SAFETY: a done record holds its output, a `T` as the caller promised;
                // read once, then released.
                let output = unsafe { head.stage().cast::<T>().read() };
                head.word.set(EMPTY);
                self.release(head);
                Some(output)
            }
            FRESH | YIELDED => {
                let node = self.materialise_fresh(head);
                self.set_waiter(node, cx.waker());
                None
            }
            // Dropped by a destructor that polls this very handle: try again later.
            FINISHING => {
                cx.waker().wake_by_ref();
                None
            }
            // Cancelled: the nursery is ending.
            _ => None,
        }
    }

    /// Drops a handle to a record; false if the record is materialised, whose node the
    /// caller then drops the handle of.
    #[inline]
    pub(super) fn drop_record_handle(&self, head: &Head) -> bool {
        // Meaningless once materialised (the node's entry says it then).
        head.handle.set(false);
        let word = head.word.get();
        if word & STATE == FRESH {
            return true;
        }
        if matches!(word & STATE, MAT | MAT_FRESH) {
            return false;
        }
        self.drop_record_handle_slow(head);
        true
    }

    #[inline(never)]
    fn drop_record_handle_slow(&self, head: &Head) {
        let word = head.word.get();
        match word & STATE {
            DONE => {
                head.word.set(EMPTY);
                let vtable = head.block().vtable;
                // SAFETY: a done record holds its output (batch rule 1); nobody can take it.
                unsafe { (vtable.drop_output)(head.stage()) };
                self.release(head);
            }
            EMPTY => self.release(head),
            _ => {}
        }
    }

    /// The node standing for the batch `head` is in, for a handle's `Debug`.
    pub(super) fn batch_index(head: &Head) -> u32 {
        // SAFETY: the node lives as long as the core (wake rule 2).
        unsafe { (*head.block().node).index() }
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

/// What polling one record did, for [`poll_batch`]'s loop.
enum Step<'a> {
    /// Polled; go on.
    Polled,
    /// Nothing to poll there.
    Skipped,
    /// The nursery must stop the turn.
    Stop(Stop<'a>),
}

/// Polls record `k` of `block` (a batch of `F`s whose node is `node`) if it waits for a poll:
/// a fresh or yielded record with the probe's waker, a record materialised before its first
/// poll through its own node.
///
/// # Safety
/// As for [`poll_batch`]; `k < len`.
#[inline(always)]
unsafe fn poll_record<'a, F: Future, R>(
    core: &'a Core,
    block: &Block,
    k: usize,
    run: &mut Run<'a>,
    failure: *const (),
) -> Step<'a>
where
    F::Output: ChildOutput<R>,
{
    let base = ptr::from_ref(block).cast::<u8>().cast_mut();
    // SAFETY: record `k < len` of `F` (batch rule 1).
    let record = unsafe {
        base.add(RECORDS_AT + k * size_of::<Record<F>>())
            .cast::<Record<F>>()
    };
    // SAFETY: as above; the head is plain data read through a shared reference.
    let head = unsafe { &(*record).head };
    let word = head.word.get();
    if word & NOT_WAITING == 0 {
        // SAFETY: as above.
        let stage = unsafe { ptr::addr_of_mut!((*record).stage) }.cast::<u8>();
        let waker = run.probe.waker();
        let mut cx = Context::from_waker(&waker);
        // SAFETY: a fresh or yielded record holds its future, which never moves (batch
        // rule 2).
        let future = unsafe { Pin::new_unchecked(&mut *stage.cast::<F>()) };
        let Poll::Ready(output) = future.poll(&mut cx) else {
            let alone = core.hub.alone();
            let woken = core.hub.take_self_woken();
            if woken && alone {
                // It woke itself and no waker of the nursery exists but the ones it lends:
                // nobody else can wake it, so it needs no node, only another poll, in the
                // turn's second lap (or the next turn), like a node that yielded.
                head.word.set(YIELDED);
                // Indices fit `u32` (a block holds fewer records).
                run.yielded.0 = run.yielded.0.min(k as u32);
                run.yielded.1 = run.yielded.1.max(k as u32 + 1);
                return Step::Polled;
            }
            // The probe becomes the child's node: any waker it cloned points there.
            let handle = head.handle.get();
            run.probe.entry.replace_with(Entry::with_handle(
                stage,
                block.vtable,
                State::Running,
                handle,
            ));
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
        core.live.set(core.live.get() - 1);
        return match output.settle() {
            // Read after the drop, which may have dropped the handle.
            Ok(output) if !head.handle.get() => {
                drop(output);
                head.word.set(RELEASED);
                // Counted on the block when the run ends (nothing frees it meanwhile).
                run.released += 1;
                Step::Polled
            }
            Ok(output) => {
                // SAFETY: the stage is laid out for `Stage<F>`.
                unsafe { stage.cast::<F::Output>().write(output) };
                head.word.set(DONE);
                Step::Polled
            }
            Err(end) => {
                if !head.handle.get() {
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
    }
    if word & STATE != MAT_FRESH {
        return Step::Skipped;
    }
    // Its handle was awaited before this poll: its own node runs it now.
    let child = core.node(word & INDEX);
    head.word.set(MAT | (word & INDEX));
    core.hub.set_polled(Some(child));
    // SAFETY: a materialised record's node holds the running `F` (batch rule 1).
    let out = unsafe { core.poll_child(child, failure, poll_child::<F, R>) };
    let alone = core.hub.alone();
    let woken = core.hub.take_self_woken();
    core.hub.set_polled(Some(run.probe));
    match out {
        Polled::Pending if woken => core.requeue(child, alone),
        Polled::Failed => return Step::Stop(Stop::Failed),
        _ => {}
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
    // SAFETY: a running batch node's payload is its live block (batch rule 2), of `F`
    // records as its vtable says.
    let block = unsafe { &*first.entry.payload.get().cast::<Block>() };
    if ptr::eq(core.open.get(), block) {
        // Off the run queue: spawns no longer append here (batch rule 3).
        core.open.set(ptr::null_mut());
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
        'walk: for (i, &(from, to)) in segments.iter().enumerate() {
            let mut k = from;
            while k < to {
                // SAFETY: as the caller promised; `k < hi <= len`.
                let step =
                    unsafe { poll_record::<F, R>(core, block, k as usize, &mut run, failure) };
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
        let len = block.len.get() as usize;
        let mut k = block.next.get() as usize;
        stop = loop {
            if k == len {
                break None;
            }
            // SAFETY: as the caller promised; `k < len`.
            let step = unsafe { poll_record::<F, R>(core, block, k, &mut run, failure) };
            k += 1;
            match step {
                Step::Skipped => continue,
                Step::Polled => {}
                Step::Stop(s) => break Some(s),
            }
            polled += 1;
            if polled == TURN_BUDGET {
                break Some(Stop::Budget);
            }
        };
        block.next.set(k as u32);
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
            let ynode = core.ynode(block);
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
                core.materialise_yielded(block.head(k));
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
    core.free_block_if_done(block);
    (stop, polled)
}
