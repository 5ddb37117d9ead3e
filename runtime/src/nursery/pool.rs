//! Finished nurseries' memory, kept for the next nurseries on the same thread, so a warm
//! thread runs nurseries (a whole tree of them, alive at once) without allocating or touching
//! fresh pages.
//!
//! Hubs (wake nodes) serve any nursery and are kept on one stack. Arenas are kept by the size
//! class they first served: an arena is taken when a nursery places its first child, whose
//! class picks an arena that already has chunks of that class. So in a tree, the nurseries
//! of each level find arenas laid out for their own children.

use core::cell::RefCell;

use super::arena::Arena;
use super::wake::HubRef;

/// How much memory a thread keeps: enough for a nursery of a million small children, or a
/// tree of thousands of small nurseries. Memory past it goes back to the allocator.
const POOL_BYTES: usize = 64 << 20;

struct Pool {
    /// Hubs with no waker left, the most recently used last.
    hubs: Vec<HubRef>,
    /// Arenas by the class of their first chunk, the most recently used last, each with
    /// the bytes it holds (counted once, while its memory is still in the cache).
    arenas: Vec<(usize, Vec<(Arena, usize)>)>,
    /// What the pool holds, in bytes, at most [`POOL_BYTES`].
    bytes: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            hubs: Vec::new(),
            arenas: Vec::new(),
            bytes: 0,
        })
    };
}

/// A hub a finished nursery on this thread left, or a new one.
pub(super) fn take_hub() -> HubRef {
    POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        let hub = pool.hubs.pop()?;
        pool.bytes -= hub.bytes();
        Some(hub)
    })
    .ok()
    .flatten()
    .unwrap_or_else(HubRef::new)
}

/// An arena a finished nursery on this thread left whose first class is `class`.
pub(super) fn take_arena(class: usize) -> Option<Arena> {
    POOL.try_with(|pool| {
        let mut pool = pool.borrow_mut();
        let pool = &mut *pool;
        let (_, arenas) = pool.arenas.iter_mut().find(|(c, _)| *c == class)?;
        let (arena, bytes) = arenas.pop()?;
        pool.bytes -= bytes;
        Some(arena)
    })
    .ok()
    .flatten()
}

/// Keeps a finished nursery's hub (if no waker holds it) and arena for later nurseries on
/// this thread while the pool has room; frees them otherwise.
///
/// The arena must hold no value any more (arena rule 2): its slots are reused as they are.
pub(super) fn recycle(hub: HubRef, mut arena: Arena) {
    let hub = hub.reset_if_unshared().then_some(hub);
    arena.reset();
    let arena = arena.first_class().map(|class| (class, arena));
    // Whatever is not kept is dropped here, outside the pool's borrow.
    let _dropped = POOL.try_with(move |pool| {
        let mut pool = pool.borrow_mut();
        let pool = &mut *pool;
        let hub = hub.and_then(|hub| {
            if pool.bytes + hub.bytes() > POOL_BYTES {
                return Some(hub);
            }
            pool.bytes += hub.bytes();
            pool.hubs.push(hub);
            None
        });
        let arena = arena.and_then(|(class, arena)| {
            let bytes = arena.bytes();
            if pool.bytes + bytes > POOL_BYTES {
                return Some(arena);
            }
            pool.bytes += bytes;
            match pool.arenas.iter_mut().find(|(c, _)| *c == class) {
                Some((_, arenas)) => arenas.push((arena, bytes)),
                None => pool.arenas.push((class, vec![(arena, bytes)])),
            }
            None
        });
        (hub, arena)
    });
}

#[cfg(test)]
mod tests {
    use core::alloc::Layout;

    use super::*;
    use crate::nursery::arena::class_of;

    #[test]
    fn arenas_come_back_by_class_and_only_within_the_budget() {
        std::thread::spawn(|| {
            let small = class_of(Layout::new::<[u64; 2]>());
            let other = class_of(Layout::new::<[u64; 40]>());
            let mut arena = Arena::new();
            let slots: Vec<*mut u8> = (0..3).map(|_| arena.alloc(small)).collect();
            for &slot in &slots {
                // SAFETY: each slot came from this arena's class and holds nothing.
                unsafe { arena.free(small, slot) };
            }
            recycle(take_hub(), arena);
            assert!(take_arena(other).is_none());
            let mut again = take_arena(small).expect("kept under its first class");
            // Its slots are handed out again from the first, in address order, not in the
            // reverse order they were freed in.
            let reused: Vec<*mut u8> = (0..3).map(|_| again.alloc(small)).collect();
            assert_eq!(reused, slots);
            assert!(take_arena(small).is_none());

            // An arena larger than the whole pool goes back to the allocator.
            let huge = class_of(Layout::from_size_align(POOL_BYTES / 4, 8).unwrap());
            let mut arena = Arena::new();
            arena.alloc(huge);
            assert!(arena.bytes() > POOL_BYTES);
            recycle(take_hub(), arena);
            assert!(take_arena(huge).is_none());
        })
        .join()
        .unwrap();
    }
}
