//! Storage for children: slots of a few size classes, carved from chunks that double in size and
//! never move, recycled through free lists threaded through the free slots themselves.
//!
//! So spawning allocates only when a class runs out of room (O(log n) times for n children), a
//! child never moves once placed (it may be pinned), and children of any type share the storage.
//!
//! Invariants (cited as "arena rule N"):
//! 1. A slot handed out by [`Arena::alloc`] for class `c` is `stride(c)` bytes, aligned to
//!    `align(c)`, and stays valid and in place until it is given back with [`Arena::free`] or the
//!    arena is dropped.
//! 2. The arena never reads or drops what a slot holds: its user drops a child before freeing
//!    its slot, and the arena's drop only returns memory.

use core::alloc::Layout;
use core::ptr;
use std::alloc::{alloc, dealloc, handle_alloc_error};

use super::pool;

/// Classes per doubling of size: strides are `(4 + m) << (k - 2)` bytes for `m` in `0..4`.
const STEPS: usize = 4;
/// The smallest stride, big enough to hold a free-list link.
const MIN_STRIDE: usize = 8;
/// Slots in a class's first chunk; each later chunk doubles the class's capacity.
const FIRST_SLOTS: usize = 8;

/// The size class holding values of `layout`: the smallest stride at least as large as the
/// value whose largest power-of-two factor satisfies its alignment.
pub(super) const fn class_of(layout: Layout) -> usize {
    let need = if layout.size() > MIN_STRIDE {
        layout.size()
    } else {
        MIN_STRIDE
    };
    let mut class = 0;
    loop {
        let stride = stride(class);
        if stride >= need && align(class) >= layout.align() {
            return class;
        }
        class += 1;
    }
}

/// The slot size of `class`.
pub(super) const fn stride(class: usize) -> usize {
    let k = class / STEPS + 3;
    (STEPS + class % STEPS) << (k - 2)
}

/// The alignment every slot of `class` has: the largest power of two dividing its stride.
pub(super) const fn align(class: usize) -> usize {
    1 << stride(class).trailing_zeros()
}

/// One size class: a bump region in one of its chunks and a free list of recycled slots.
///
/// While the free list holds a slot, `end` is pulled back to `bump` (the region's real end
/// waits in `held_end`), so that the common case, an empty free list, takes one comparison.
struct Class {
    free: *mut u8,
    bump: *mut u8,
    end: *mut u8,
    held_end: *mut u8,
    chunks: Vec<(*mut u8, Layout)>,
    /// The chunk the bump region moves to next; chunks past `chunks.len()` are allocated.
    next_chunk: usize,
}

/// The children's storage of one nursery.
pub(super) struct Arena {
    classes: Vec<Class>,
    /// The class of the first chunk allocated, [`NONE`] before: what the arena is kept under
    /// once its nursery ends (see `pool`).
    first_class: usize,
    /// The memory the chunks hold, in bytes (counted as they are allocated, so that
    /// recycling a finished nursery's arena does not walk its chunks).
    bytes: usize,
}

/// No class yet.
const NONE: usize = usize::MAX;

impl Arena {
    pub(super) const fn new() -> Self {
        Arena {
            classes: Vec::new(),
            first_class: NONE,
            bytes: 0,
        }
    }

    /// The class of the first chunk this arena allocated.
    pub(super) fn first_class(&self) -> Option<usize> {
        (self.first_class != NONE).then_some(self.first_class)
    }

    /// The memory the chunks hold, in bytes.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// A slot of `class` (arena rule 1).
    #[inline]
    pub(super) fn alloc(&mut self, class: usize) -> *mut u8 {
        if let Some(c) = self.classes.get_mut(class) {
            // Only while the free list is empty (see `Class`): recycled slots go first.
            if c.bump != c.end {
                let slot = c.bump;
                // SAFETY: `bump` and `end` lie in the same chunk and `end - bump` is a multiple
                // of the stride, so one more stride stays inside or reaches `end`.
                c.bump = unsafe { slot.add(stride(class)) };
                return slot;
            }
            if !c.free.is_null() {
                let slot = c.free;
                // SAFETY: a free slot's first word holds the next free slot (see `free`).
                c.free = unsafe { slot.cast::<*mut u8>().read() };
                if c.free.is_null() {
                    // The list is empty again: the bump region's end comes back.
                    c.end = c.held_end;
                }
                return slot;
            }
        }
        self.grow(class)
    }

    /// Makes every slot free again, handed out in address order as in a new arena, for a new
    /// nursery. Recycled slots would come off the free list in the order the last nursery
    /// freed them, each one's address read from the one before: a chain of cache misses.
    ///
    /// Whatever the slots hold is forgotten (arena rule 2: the last nursery dropped it).
    pub(super) fn reset(&mut self) {
        for c in &mut self.classes {
            c.free = ptr::null_mut();
            c.bump = ptr::null_mut();
            c.end = ptr::null_mut();
            c.held_end = ptr::null_mut();
            c.next_chunk = 0;
        }
    }

    #[cold]
    fn grow(&mut self, class: usize) -> *mut u8 {
        if self.first_class == NONE {
            // A nursery's first child: an arena a finished nursery left, laid out for this
            // class, serves it without allocating.
            if let Some(spare) = pool::take_arena(class) {
                *self = spare;
                return self.alloc(class);
            }
            self.first_class = class;
        }
        while self.classes.len() <= class {
            self.classes.push(Class {
                free: ptr::null_mut(),
                bump: ptr::null_mut(),
                end: ptr::null_mut(),
                held_end: ptr::null_mut(),
                chunks: Vec::new(),
                next_chunk: 0,
            });
        }
        let c = &mut self.classes[class];
        let slots = FIRST_SLOTS << c.next_chunk;
        let chunk = match c.chunks.get(c.next_chunk) {
            // A chunk a previous nursery used (see `reset`).
            Some(&(chunk, _)) => chunk,
            None => {
                let layout = Layout::from_size_align(stride(class) * slots, align(class))
                    .expect("a nursery's children exceed the address space");
                // SAFETY: the layout's size is non-zero (strides and slot counts are).
                let chunk = unsafe { alloc(layout) };
                if chunk.is_null() {
                    handle_alloc_error(layout);
                }
                c.chunks.push((chunk, layout));
                self.bytes += layout.size();
                chunk
            }
        };
        c.next_chunk += 1;
        // SAFETY: the chunk is `slots` strides long; the first one is handed out now.
        unsafe {
            c.bump = chunk.add(stride(class));
            c.end = chunk.add(stride(class) * slots);
        }
        chunk
    }

    /// Gives a slot back to its class.
    ///
    /// # Safety
    /// `slot` came from `alloc(class)` on this arena, is not used afterwards, and whatever it
    /// held was already dropped (arena rule 2).
    #[inline]
    pub(super) unsafe fn free(&mut self, class: usize, slot: *mut u8) {
        let c = &mut self.classes[class];
        if c.free.is_null() {
            // Holds the bump region back while the list has slots (see `Class`).
            c.held_end = c.end;
            c.end = c.bump;
        }
        // SAFETY: the slot is ours again, at least `MIN_STRIDE` bytes and pointer-aligned.
        unsafe { slot.cast::<*mut u8>().write(c.free) };
        c.free = slot;
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for class in &self.classes {
            for &(chunk, layout) in &class.chunks {
                // SAFETY: allocated in `grow` with this layout; no slot is used any more.
                unsafe { dealloc(chunk, layout) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_fit_size_and_alignment() {
        for size in [0usize, 1, 7, 8, 9, 24, 33, 100, 1000, 4096, 100_000] {
            for want in [1usize, 2, 8, 16, 64, 4096] {
                let Ok(layout) = Layout::from_size_align(size, want) else {
                    continue;
                };
                let layout = layout.pad_to_align();
                let c = class_of(layout);
                assert!(stride(c) >= layout.size(), "{layout:?}");
                assert!(align(c) >= layout.align(), "{layout:?}");
                assert_eq!(stride(c) % align(c), 0);
                // The next smaller class would not do, unless it is misaligned.
                if c > 0 && align(c - 1) >= layout.align() {
                    assert!(stride(c - 1) < layout.size().max(MIN_STRIDE), "{layout:?}");
                }
            }
        }
        // Rounding wastes at most a quarter of a slot past the first classes.
        let c = class_of(Layout::from_size_align(1025, 1).unwrap());
        assert_eq!(stride(c), 1280);
    }

    /// Freed slots are handed out before the bump region goes on, and the region then goes on
    /// exactly where it stopped: no slot is skipped or handed out twice.
    #[test]
    fn freed_slots_go_first_then_the_bump_region_resumes() {
        let mut arena = Arena::new();
        let class = class_of(Layout::new::<[u64; 2]>());
        let first: Vec<*mut u8> = (0..3).map(|_| arena.alloc(class)).collect();
        // SAFETY: both slots came from this class and are not used again until handed out.
        unsafe {
            arena.free(class, first[0]);
            arena.free(class, first[2]);
        }
        assert_eq!(arena.alloc(class), first[2]);
        assert_eq!(arena.alloc(class), first[0]);
        // The bump region resumes right after the third slot.
        // SAFETY: `first[2]` starts a slot of `stride(class)` bytes inside its chunk.
        let next = unsafe { first[2].add(stride(class)) };
        assert_eq!(arena.alloc(class), next);
        // Freed again after the region moved on: the slot still comes back first.
        // SAFETY: as above.
        unsafe { arena.free(class, first[1]) };
        assert_eq!(arena.alloc(class), first[1]);
        // SAFETY: `next` starts a slot of `stride(class)` bytes inside its chunk.
        assert_eq!(arena.alloc(class), unsafe { next.add(stride(class)) });
    }

    #[test]
    fn slots_are_distinct_aligned_and_recycled() {
        let mut arena = Arena::new();
        let class = class_of(Layout::new::<[u64; 5]>());
        let slots: Vec<*mut u8> = (0..100).map(|_| arena.alloc(class)).collect();
        for (i, &s) in slots.iter().enumerate() {
            assert_eq!(s as usize % align(class), 0);
            for &t in &slots[..i] {
                assert!((s as usize).abs_diff(t as usize) >= stride(class));
            }
            // SAFETY: the slot is ours and `stride(class)` bytes long.
            unsafe { s.write_bytes(i as u8, stride(class)) };
        }
        // SAFETY: each slot came from this class and is not used again.
        unsafe { arena.free(class, slots[7]) };
        assert_eq!(arena.alloc(class), slots[7]);
        // Four chunks (8, 16, 32 and 64 slots) hold 100 children.
        assert_eq!(arena.classes[class].chunks.len(), 4);
        // The byte count kept as chunks are added is what they hold: 8 + 16 + 32 + 64 slots.
        assert_eq!(arena.bytes(), 120 * stride(class));
        let other = class_of(Layout::new::<[u64; 40]>());
        arena.alloc(other);
        assert_eq!(arena.bytes(), 120 * stride(class) + 8 * stride(other));
        // After a reset, the same slots come back in address order, from the same chunks.
        arena.reset();
        let again: Vec<*mut u8> = (0..100).map(|_| arena.alloc(class)).collect();
        assert_eq!(again, slots);
        assert_eq!(arena.alloc(other), arena.classes[other].chunks[0].0);
        assert_eq!(arena.classes[class].chunks.len(), 4);
        assert_eq!(arena.bytes(), 120 * stride(class) + 8 * stride(other));
    }
}
