//! One child slot: what it holds ([`State`]), the bookkeeping the owner keeps for it
//! ([`Entry`]), and the type-erased operations on the child it holds ([`VTable`]).
//!
//! Invariants (cited as "slot rule N"):
//! 1. Slot `i`'s [`Entry`] says what its payload holds: `Running` (or `Cancelling`) a pinned
//!    child future, `Done` its output, anything else nothing. The payload never moves while
//!    it holds a value.
//! 2. A slot is freed (its index back to the free list, rule 4) only when it
//!    holds nothing and no handle refers to it, so a handle's index always names its own child.
//! 3. Only the thread that owns the nursery touches entries, the arena and the run queue (the
//!    scope is neither `Send` nor `Sync`), and no `&mut` into them is held across a call that
//!    may run user code (a poll or a drop), which may spawn or drop handles re-entrantly.
//! 4. A free slot keeps its payload (from the arena, for the class of its last vtable), which
//!    holds nothing: the next child of that class is written there without touching the
//!    arena; a child of another class gives it back to the arena and takes one of its own.

use core::alloc::Layout;
use core::cell::Cell;
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll};

use super::arena;
use super::children::Core;
use super::driver::{Stop, poll_run, run_with};
use super::outcome::ChildOutput;
use super::wake::{WakeNode, WakeTag};
use crate::executor::AsyncCancel;

/// What a slot holds (slot rule 1). `Running` is 0, so that the check before every poll
/// tests its bits against zero.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(u8)]
pub(super) enum State {
    /// A child future that has not finished.
    Running = 0,
    /// The nursery is ending and the child runs its async cleanup ([`AsyncCancel`]).
    Cancelling,
    /// The child finished and its future is being dropped.
    Finishing,
    /// The child's output, waiting for its handle.
    Done,
    /// Nothing: the child was cancelled or its output taken, and a handle still refers here.
    Empty,
    /// On the free list.
    Free,
}

/// What one poll of a child did.
pub(super) enum Polled {
    Pending,
    /// The child finished; its output waits for its handle.
    Done,
    /// The child finished with no handle left: its output was dropped, the slot holds nothing.
    Dropped,
    /// The child's output ended the nursery; it is in the scope's `failure` cell.
    Failed,
}

/// Type-erased operations on one child type, one static table per type.
pub(super) struct VTable {
    pub(super) drop_future: unsafe fn(*mut u8),
    pub(super) drop_output: unsafe fn(*mut u8),
    /// Drives the future's async cleanup, for children spawned with `spawn_cancellable`.
    pub(super) poll_cancel: Option<unsafe fn(*mut u8, &mut Context<'_>) -> Poll<()>>,
    /// Polls a node holding this type and the nodes queued right after it that hold the
    /// same type, in one loop that knows the type (see `driver::poll_run`).
    pub(super) run: RunFn,
    pub(super) class: usize,
    /// What a node with this table is: a child in a payload of its own, a batch, or a child
    /// whose payload is a record of a batch (see `batch`).
    pub(super) kind: Kind,
    /// The size of a batch record of this type: tables equal in every field (which the
    /// compiler may merge into one) are for records of one size.
    pub(super) record_size: usize,
}

/// What a node holds, as its vtable says.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Kind {
    /// A child whose payload is a slot of the arena of its vtable's class (slot rule 4).
    Child,
    /// A batch: the payload is a block of records (`batch::Block`) of one child type.
    Batch,
    /// A child whose payload is the stage of a record in a batch: freeing the slot releases
    /// the record instead of keeping the payload (slot rule 4 does not apply).
    Borrowed,
}

/// The type of [`VTable::run`]: `(core, first node, failure, polled, body_done)`.
pub(super) type RunFn =
    for<'a> unsafe fn(&'a Core, &'a WakeNode, *const (), usize, bool) -> (Option<Stop<'a>>, usize);

static NO_CHILD: VTable = VTable {
    drop_future: |_| {},
    drop_output: |_| {},
    poll_cancel: None,
    run: no_run,
    class: 0,
    kind: Kind::Child,
    record_size: 0,
};

/// The table of a node whose payload is null (a probe, or a slot freed from a batch record):
/// its class matches no child's, so the next child placed there allocates a payload.
pub(super) static NO_PAYLOAD: VTable = VTable {
    class: usize::MAX,
    ..NO_CHILD
};

/// The run of nodes that hold no child: polling one does nothing.
///
/// # Safety
/// As for [`poll_run`].
unsafe fn no_run<'a>(
    core: &'a Core,
    first: &'a WakeNode,
    failure: *const (),
    polled: usize,
    body_done: bool,
) -> (Option<Stop<'a>>, usize) {
    // SAFETY: as the caller promised; this poll reads no payload.
    unsafe {
        run_with(core, first, failure, polled, body_done, |_, _, _| {
            Polled::Pending
        })
    }
}

/// Polls a child whose slot is `Running`: on completion drops the future and stores the
/// output for the handle (or drops it at once when no handle is left), or the failure.
pub(super) type PollFn = unsafe fn(&Entry, &mut Context<'_>, *const ()) -> Polled;

/// A child's payload: its future, then, in the same place, its output.
#[repr(C)]
pub(super) union Stage<F: Future> {
    pub(super) future: core::mem::ManuallyDrop<F>,
    output: core::mem::ManuallyDrop<F::Output>,
}

pub(super) struct VTableOf<F, R>(PhantomData<(F, R)>);

impl<F: Future, R> VTableOf<F, R>
where
    F::Output: ChildOutput<R>,
{
    pub(super) const TABLE: &'static VTable = &VTable {
        drop_future: drop_as::<F>,
        drop_output: drop_as::<F::Output>,
        poll_cancel: None,
        run: poll_run::<F, R>,
        class: arena::class_of(Layout::new::<Stage<F>>()),
        kind: Kind::Child,
        record_size: super::batch::record_size::<F>(),
    };

    /// The table of an `F` whose payload is a batch record's stage.
    pub(super) const BORROWED: &'static VTable = &VTable {
        kind: Kind::Borrowed,
        class: usize::MAX,
        ..*Self::TABLE
    };

    /// The table of a batch of `F`s (the node's payload is the block).
    pub(super) const BATCH: &'static VTable = &VTable {
        run: super::batch::poll_batch::<F, R>,
        kind: Kind::Batch,
        class: usize::MAX,
        ..*Self::TABLE
    };
}

impl<F: Future + AsyncCancel, R> VTableOf<F, R>
where
    F::Output: ChildOutput<R>,
{
    pub(super) const CANCELLABLE: &'static VTable = &VTable {
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
/// `entry` is `Running` with a pinned `F` as its payload (slot rule 1) and `failure` points to
/// the scope's `Cell<Option<R>>`.
#[inline]
pub(super) unsafe fn poll_child<F: Future, R>(
    entry: &Entry,
    cx: &mut Context<'_>,
    failure: *const (),
) -> Polled
where
    F::Output: ChildOutput<R>,
{
    let payload = entry.payload.get();
    // SAFETY: the payload holds a live `F` that never moves (slot rule 1).
    let future = unsafe { Pin::new_unchecked(&mut *payload.cast::<F>()) };
    let Poll::Ready(output) = future.poll(cx) else {
        return Polled::Pending;
    };
    // If dropping the future panics, the slot must not be dropped again.
    entry.finish_running();
    // SAFETY: the future finished; it is dropped in place exactly once.
    unsafe { ptr::drop_in_place(payload.cast::<F>()) };
    match output.settle() {
        // Read after the drop, which may have dropped the handle.
        Ok(output) if !entry.has_handle() => {
            // Nobody can take the output: drop it here, where its type is known. The slot
            // stays `Finishing` meanwhile, so a panicking drop is not counted twice.
            drop(output);
            entry.empty_unhandled();
            Polled::Dropped
        }
        Ok(output) => {
            // SAFETY: the slot is laid out for `Stage<F>`, whose fields start at its start.
            unsafe { payload.cast::<F::Output>().write(output) };
            entry.set_state(State::Done);
            Polled::Done
        }
        Err(end) => {
            entry.set_state(State::Empty);
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

/// One child slot's bookkeeping, kept by the nursery's owner (slot rule 3), inside the slot's
/// wake node.
#[repr(C)]
pub(super) struct Entry {
    pub(super) payload: Cell<*mut u8>,
    pub(super) vtable: Cell<&'static VTable>,
    /// The slot's [`State`], whether its handle is alive, and who awaits the handle: packed in
    /// one word, so that a wake node with its entry is 32 bytes (see [`Entry::waiter`]).
    word: Cell<u32>,
    /// Not the owner's: the wake node's index and queued flag, the only field here a waker
    /// touches (wake rule 4). It fills this struct's last word, which the node's own fields
    /// would otherwise leave as padding.
    pub(super) wake: WakeTag,
}

/// Where the state sits in an entry's word; the waiter takes the bits below it.
const STATE_SHIFT: u32 = 28;
/// The bits of the waiter (slot indices are smaller, see `wake::MAX_INDEX`).
const WAITER_MASK: u32 = (1 << STATE_SHIFT) - 1;
/// The handle-alive bit.
const HANDLE: u32 = 1 << 31;

impl State {
    #[inline]
    const fn from_bits(bits: u32) -> State {
        match bits {
            0 => State::Running,
            1 => State::Cancelling,
            2 => State::Finishing,
            3 => State::Done,
            4 => State::Empty,
            // Only `Entry::new`, `set_state` and `set_free` write these bits, from a `State`.
            _ => State::Free,
        }
    }
}

impl Entry {
    /// An entry of a slot never used.
    pub(super) const fn vacant() -> Entry {
        Entry::new(ptr::null_mut(), &NO_CHILD, State::Free, false)
    }

    /// The entry of a child just placed in `payload`, with its handle alive and nobody
    /// awaiting it: `Running`, or `Empty` if it is dropped unpolled.
    #[inline]
    pub(super) const fn spawned(payload: *mut u8, vtable: &'static VTable, state: State) -> Entry {
        Entry::new(payload, vtable, state, true)
    }

    /// The entry of a probe: no payload, and a handle bit that keeps a cancel from freeing it.
    pub(super) const fn probe() -> Entry {
        Entry::new(ptr::null_mut(), &NO_PAYLOAD, State::Empty, true)
    }

    /// The entry of a child in `payload` in `state`, with or without a live handle.
    #[inline]
    pub(super) const fn with_handle(
        payload: *mut u8,
        vtable: &'static VTable,
        state: State,
        handle: bool,
    ) -> Entry {
        Entry::new(payload, vtable, state, handle)
    }

    /// Forgets the payload (a batch's block or record, given back elsewhere).
    #[inline]
    pub(super) fn clear_payload(&self) {
        self.payload.set(ptr::null_mut());
        self.vtable.set(&NO_PAYLOAD);
    }

    #[inline]
    const fn new(payload: *mut u8, vtable: &'static VTable, state: State, handle: bool) -> Entry {
        let handle = if handle { HANDLE } else { 0 };
        Entry {
            payload: Cell::new(payload),
            vtable: Cell::new(vtable),
            word: Cell::new(handle | (state as u32) << STATE_SHIFT | NO_WAITER),
            wake: WakeTag::unset(),
        }
    }

    /// Overwrites this entry with `other` (a recycled slot taking a new child), except the
    /// wake tag, which stays the node's.
    #[inline]
    pub(super) fn replace_with(&self, other: Entry) {
        self.payload.set(other.payload.get());
        self.vtable.set(other.vtable.get());
        self.word.set(other.word.get());
    }

    /// What the slot holds (slot rule 1).
    #[inline]
    pub(super) fn state(&self) -> State {
        State::from_bits((self.word.get() & !HANDLE) >> STATE_SHIFT)
    }

    #[inline]
    pub(super) fn set_state(&self, state: State) {
        let word = self.word.get() & !(0b111 << STATE_SHIFT);
        self.word.set(word | (state as u32) << STATE_SHIFT);
    }

    /// Whether the slot holds `state`: one mask and compare, no decoding.
    #[inline]
    pub(super) fn is(&self, state: State) -> bool {
        self.word.get() & (0b111 << STATE_SHIFT) == (state as u32) << STATE_SHIFT
    }

    /// Puts a slot with no handle on the free list, before slot `next_free` (its waiter
    /// field is the list's link).
    #[inline]
    pub(super) fn set_free(&self, next_free: u32) {
        debug_assert!(!self.has_handle() && next_free <= WAITER_MASK);
        self.word
            .set((State::Free as u32) << STATE_SHIFT | next_free);
    }

    /// `Running` to `Finishing`.
    #[inline]
    pub(super) fn finish_running(&self) {
        debug_assert!(self.is(State::Running));
        self.word
            .set(self.word.get() | (State::Finishing as u32) << STATE_SHIFT);
    }

    /// Makes a slot with no handle `Empty`; nobody awaits it (only a handle sets a waiter,
    /// and dropping one forgets it).
    #[inline]
    pub(super) fn empty_unhandled(&self) {
        debug_assert!(!self.has_handle() && self.waiter() == NO_WAITER);
        self.word
            .set((State::Empty as u32) << STATE_SHIFT | NO_WAITER);
    }

    /// Whether a handle still refers to the slot.
    #[inline]
    pub(super) fn has_handle(&self) -> bool {
        self.word.get() & HANDLE != 0
    }

    #[inline]
    pub(super) fn set_has_handle(&self, alive: bool) {
        let word = self.word.get() & !HANDLE;
        self.word.set(if alive { word | HANDLE } else { word });
    }

    /// Who awaits the handle: [`NO_WAITER`], a slot of this nursery (the body is 0) woken
    /// without touching a refcount, or [`FOREIGN`] for a waker kept in `Core::foreign`.
    /// On the free list: the next free slot.
    #[inline]
    pub(super) fn waiter(&self) -> u32 {
        self.word.get() & WAITER_MASK
    }

    #[inline]
    pub(super) fn set_waiter(&self, waiter: u32) {
        debug_assert!(waiter <= WAITER_MASK);
        self.word.set(self.word.get() & !WAITER_MASK | waiter);
    }

    /// Sets the waiter, returning the one before.
    #[inline]
    pub(super) fn replace_waiter(&self, waiter: u32) -> u32 {
        let old = self.waiter();
        self.set_waiter(waiter);
        old
    }

    /// Whether the child runs with its handle alive and nobody awaiting the handle: one
    /// comparison of the word.
    #[inline]
    pub(super) fn is_running_unawaited(&self) -> bool {
        self.word.get() & !HANDLE == (State::Running as u32) << STATE_SHIFT | NO_WAITER
    }
}

/// Nobody awaits the handle.
pub(super) const NO_WAITER: u32 = WAITER_MASK;
/// The handle is awaited from outside this nursery; the waker is in `Core::foreign`.
pub(super) const FOREIGN: u32 = WAITER_MASK - 1;

// Slot indices never reach the sentinels.
const _: () = assert!(super::wake::MAX_INDEX < FOREIGN);

#[cfg(test)]
mod tests {
    use super::super::wake::MAX_INDEX;
    use super::*;

    const STATES: [State; 6] = [
        State::Running,
        State::Cancelling,
        State::Finishing,
        State::Done,
        State::Empty,
        State::Free,
    ];

    /// State, handle bit and waiter share one word: each reads back what was written last,
    /// whatever the other two hold, up to the largest index and the sentinels.
    #[test]
    fn entry_fields_share_a_word_without_disturbing_each_other() {
        let entry = Entry::spawned(ptr::null_mut(), &NO_CHILD, State::Running);
        assert!(entry.has_handle() && entry.is_running_unawaited());
        assert_eq!((entry.state(), entry.waiter()), (State::Running, NO_WAITER));
        for state in STATES {
            for waiter in [0, 1, MAX_INDEX, FOREIGN, NO_WAITER] {
                for handle in [false, true] {
                    entry.set_state(state);
                    entry.set_has_handle(handle);
                    let before = entry.waiter();
                    assert_eq!(entry.replace_waiter(waiter), before);
                    entry.set_state(state);
                    assert_eq!(
                        (entry.state(), entry.waiter(), entry.has_handle()),
                        (state, waiter, handle)
                    );
                    for other in STATES {
                        assert_eq!(entry.is(other), other == state);
                    }
                    let unawaited = state == State::Running && waiter == NO_WAITER;
                    assert_eq!(entry.is_running_unawaited(), unawaited);
                }
            }
        }
        entry.set_state(State::Running);
        entry.set_waiter(7);
        entry.finish_running();
        assert_eq!((entry.state(), entry.waiter()), (State::Finishing, 7));
        entry.set_has_handle(false);
        entry.set_waiter(NO_WAITER);
        entry.empty_unhandled();
        assert_eq!(entry.state(), State::Empty);
        entry.set_free(MAX_INDEX);
        assert_eq!(
            (entry.state(), entry.waiter(), entry.has_handle()),
            (State::Free, MAX_INDEX, false)
        );
        entry.replace_with(Entry::spawned(ptr::null_mut(), &NO_CHILD, State::Running));
        assert!(entry.is_running_unawaited() && entry.has_handle());
    }
}
