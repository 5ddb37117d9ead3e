//! The hierarchical timing wheel behind [`Timers`](super::Timers) and the global timer thread.
//!
//! Time is counted in ticks of one millisecond from the wheel's origin. Six levels of 64 slots
//! cover 64⁶ ms (about 795 days); level `L` holds the timers whose deadline first differs from
//! the wheel's current tick in the six bits of level `L`, so a timer far away sits in a coarse
//! slot and moves down ("cascades") as time approaches it. Timers beyond the top level wait in
//! one overflow list. Entries live in a slab and are linked into their slot's list by index:
//! once the slab has grown to the peak number of timers, inserting and cancelling allocate
//! nothing, and both are O(1).
//!
//! Invariants:
//! 1. `elapsed` only grows, and never past the `now` given to [`Wheel::advance`].
//! 2. An entry at level `L < LEVELS` has the same bits as `elapsed` above bit `6·(L+1)`, so
//!    its slot is at or after the current slot of that level.
//! 3. A slot's bit in `occupied[L]` is set exactly when its list is non-empty.
//! 4. An entry fires only when its deadline tick is at or before `now`.

use std::task::Waker;

/// Bits of a tick that index one level's slots.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels of the wheel; index `LEVELS` is the overflow list.
const LEVELS: usize = 6;
/// Ticks the levels span: a deadline this far from `elapsed` goes to the overflow list.
const SPAN_BITS: u32 = SLOT_BITS * LEVELS as u32;
/// "No entry" in the intrusive lists.
const NIL: u32 = u32::MAX;

/// Names one timer in the wheel: a slab index and the generation it was inserted with, so a
/// key kept after its timer fired never touches the slot's next occupant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    index: u32,
    generation: u32,
}

/// One slab slot: a live timer linked into a slot list, or a free slot in the free list.
#[derive(Debug)]
struct Entry {
    generation: u32,
    /// Deadline tick; the timer fires at the first `advance` whose `now` reaches it.
    when: u64,
    waker: Option<Waker>,
    /// `None` when free; otherwise the (level, slot) list the entry is linked into.
    home: Option<(u8, u8)>,
    prev: u32,
    /// Next entry in the slot list, or next free slot when free.
    next: u32,
}

/// A hierarchical timing wheel of wakers, in ticks of one millisecond.
#[derive(Debug)]
pub(crate) struct Wheel {
    /// Invariant 1: the tick up to which every due timer has fired.
    elapsed: u64,
    entries: Vec<Entry>,
    free: u32,
    len: usize,
    /// Heads of the slot lists; `heads[LEVELS][0]` is the overflow list.
    heads: [[u32; SLOTS]; LEVELS + 1],
    /// Invariant 3: bit `s` of `occupied[L]` is set when slot `s` of level `L` is non-empty.
    occupied: [u64; LEVELS + 1],
}

impl Default for Wheel {
    fn default() -> Self {
        Wheel::new()
    }
}

impl Wheel {
    /// An empty wheel whose current tick is 0.
    pub(crate) fn new() -> Self {
        Wheel {
            elapsed: 0,
            entries: Vec::new(),
            free: NIL,
            len: 0,
            heads: [[NIL; SLOTS]; LEVELS + 1],
            occupied: [0; LEVELS + 1],
        }
    }

    /// How many timers are registered.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Registers `waker` to be woken at the first [`Wheel::advance`] reaching tick `when`.
    /// A deadline at or before the current tick fires at the next advance past it.
    pub(crate) fn insert(&mut self, when: u64, waker: Waker) -> Key {
        let index = match self.free {
            NIL => {
                let index = u32::try_from(self.entries.len())
                    .ok()
                    .filter(|&i| i != NIL)
                    .expect("more than u32::MAX - 1 timers registered at once");
                self.entries.push(Entry {
                    generation: 0,
                    when,
                    waker: None,
                    home: None,
                    prev: NIL,
                    next: NIL,
                });
                index
            }
            free => {
                self.free = self.entries[free as usize].next;
                free
            }
        };
        let entry = &mut self.entries[index as usize];
        entry.when = when;
        entry.waker = Some(waker);
        let generation = entry.generation;
        self.len += 1;
        self.link(index);
        Key { index, generation }
    }

    /// Whether `key` still names a registered (not yet fired, not removed) timer.
    #[cfg(test)]
    pub(crate) fn contains(&self, key: Key) -> bool {
        self.live(key).is_some()
    }

    /// Replaces the waker of a registered timer unless it would wake the same task; returns
    /// `false` if the timer is no longer registered (it fired).
    pub(crate) fn update_waker(&mut self, key: Key, waker: &Waker) -> bool {
        match self.live(key) {
            Some(index) => {
                let slot = &mut self.entries[index as usize].waker;
                if !slot.as_ref().is_some_and(|w| w.will_wake(waker)) {
                    *slot = Some(waker.clone());
                }
                true
            }
            None => false,
        }
    }

    /// Moves a registered timer to a new deadline, keeping its waker; returns `false` if the
    /// timer is no longer registered (it fired).
    pub(crate) fn reschedule(&mut self, key: Key, when: u64) -> bool {
        match self.live(key) {
            Some(index) => {
                self.unlink(index);
                self.entries[index as usize].when = when;
                self.link(index);
                true
            }
            None => false,
        }
    }

    /// Removes a registered timer without waking it; returns whether it was still registered.
    pub(crate) fn remove(&mut self, key: Key) -> bool {
        match self.live(key) {
            Some(index) => {
                self.unlink(index);
                self.release(index);
                true
            }
            None => false,
        }
    }

    /// The tick at which [`Wheel::advance`] next has work to do (a timer to fire or a slot to
    /// cascade), or `None` when no timer is registered. Never before the current tick.
    pub(crate) fn next_expiration(&self) -> Option<u64> {
        (0..=LEVELS)
            .filter_map(|level| self.next_in_level(level))
            .map(|(_, deadline)| deadline)
            .min()
            .map(|deadline| deadline.max(self.elapsed))
    }

    /// Moves the current tick to `now`, pushing onto `fired` the waker of every timer whose
    /// deadline is at or before `now` (each removed from the wheel), and cascading the others
    /// toward finer levels. Returns how many fired. A `now` in the past changes nothing.
    pub(crate) fn advance(&mut self, now: u64, fired: &mut Vec<Waker>) -> usize {
        let mut count = 0;
        loop {
            let next = (0..=LEVELS)
                .filter_map(|level| {
                    self.next_in_level(level)
                        .map(|(slot, at)| (level, slot, at))
                })
                .min_by_key(|&(_, _, at)| at);
            let Some((level, slot, at)) = next.filter(|&(_, _, at)| at <= now) else {
                break;
            };
            // Invariant 1: `at` is the start of the slot's range, at most `now`.
            self.elapsed = self.elapsed.max(at);
            let mut index = self.heads[level][slot];
            self.heads[level][slot] = NIL;
            self.occupied[level] &= !(1 << slot);
            while index != NIL {
                let entry = &mut self.entries[index as usize];
                let next = entry.next;
                entry.home = None;
                if entry.when <= now {
                    // Invariant 4.
                    if let Some(waker) = entry.waker.take() {
                        fired.push(waker);
                    }
                    self.release(index);
                    count += 1;
                } else {
                    self.link(index);
                }
                index = next;
            }
        }
        self.elapsed = self.elapsed.max(now);
        count
    }

    /// The slab index of a live key.
    fn live(&self, key: Key) -> Option<u32> {
        let entry = self.entries.get(key.index as usize)?;
        (entry.generation == key.generation && entry.home.is_some()).then_some(key.index)
    }

    /// The first occupied slot of `level` and the tick at which it is due.
    fn next_in_level(&self, level: usize) -> Option<(usize, u64)> {
        if level == LEVELS {
            // The overflow list is due when `elapsed` enters the next span.
            return (self.occupied[LEVELS] != 0)
                .then(|| (0, (self.elapsed | ((1 << SPAN_BITS) - 1)) + 1));
        }
        let shift = SLOT_BITS * level as u32;
        let current = ((self.elapsed >> shift) as usize) & (SLOTS - 1);
        // Invariant 2: nothing sits before the current slot.
        let pending = self.occupied[level] & (u64::MAX << current);
        debug_assert_eq!(self.occupied[level] & !(u64::MAX << current), 0);
        if pending == 0 {
            return None;
        }
        let slot = pending.trailing_zeros() as usize;
        let base = self.elapsed & !((1u64 << (shift + SLOT_BITS)) - 1);
        Some((slot, base + ((slot as u64) << shift)))
    }

    /// Links a live entry into the list its deadline belongs to, relative to `elapsed`.
    fn link(&mut self, index: u32) {
        // A deadline already reached is placed one tick ahead: it fires at the next advance.
        let when = self.entries[index as usize].when.max(self.elapsed + 1);
        let differing = when ^ self.elapsed;
        let (level, slot) = if differing >> SPAN_BITS != 0 {
            (LEVELS, 0)
        } else {
            // Invariant 2: the highest differing bit picks the level.
            let level = ((63 - (differing | 1).leading_zeros()) / SLOT_BITS) as usize;
            (
                level,
                ((when >> (SLOT_BITS * level as u32)) as usize) & (SLOTS - 1),
            )
        };
        let head = self.heads[level][slot];
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        let entry = &mut self.entries[index as usize];
        entry.home = Some((level as u8, slot as u8));
        entry.prev = NIL;
        entry.next = head;
        self.heads[level][slot] = index;
        self.occupied[level] |= 1 << slot;
    }

    /// Unlinks a live entry from its slot list.
    fn unlink(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        let (level, slot) = entry.home.take().expect("unlink of an entry in no list");
        let (prev, next) = (entry.prev, entry.next);
        let (level, slot) = (level as usize, slot as usize);
        if prev == NIL {
            self.heads[level][slot] = next;
            if next == NIL {
                self.occupied[level] &= !(1 << slot);
            }
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }

    /// Returns an unlinked entry's slot to the free list, invalidating its keys.
    fn release(&mut self, index: u32) {
        let entry = &mut self.entries[index as usize];
        entry.generation = entry.generation.wrapping_add(1);
        entry.waker = None;
        entry.home = None;
        entry.next = self.free;
        self.free = index;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    /// A waker that counts its wakes and remembers its id.
    struct Probe {
        wakes: AtomicUsize,
    }

    impl Wake for Probe {
        fn wake(self: Arc<Self>) {
            self.wakes.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn probe() -> (Arc<Probe>, Waker) {
        let probe = Arc::new(Probe {
            wakes: AtomicUsize::new(0),
        });
        (probe.clone(), Waker::from(probe))
    }

    fn fire(wheel: &mut Wheel, now: u64) -> usize {
        let mut fired = Vec::new();
        let n = wheel.advance(now, &mut fired);
        assert_eq!(n, fired.len());
        fired.into_iter().for_each(Waker::wake);
        n
    }

    #[test]
    fn fires_exactly_at_deadline_at_every_level() {
        // One deadline per level (and the overflow list), checked one tick before and at it.
        for when in [
            1,
            63,
            64,
            65,
            4_095,
            4_096,
            300_000,
            20_000_000,
            1 << 31,
            1 << 37,
        ] {
            let mut wheel = Wheel::new();
            let (p, w) = probe();
            let key = wheel.insert(when, w);
            let mut now = 0;
            while let Some(next) = wheel.next_expiration() {
                assert!(next > now, "no progress at {now} for {when}");
                if next >= when {
                    break;
                }
                now = next;
                assert_eq!(fire(&mut wheel, now), 0, "fired early at {now} for {when}");
            }
            assert_eq!(
                fire(&mut wheel, when - 1),
                0,
                "fired at {} for {when}",
                when - 1
            );
            assert!(wheel.contains(key));
            assert_eq!(fire(&mut wheel, when), 1, "did not fire at {when}");
            assert_eq!(p.wakes.load(Ordering::SeqCst), 1);
            assert!(!wheel.contains(key));
            assert_eq!(wheel.len(), 0);
        }
    }

    #[test]
    fn jumping_far_ahead_fires_everything_due_and_nothing_else() {
        let mut wheel = Wheel::new();
        let deadlines: Vec<u64> = (0..2_000).map(|i| (i * 7_919) % 1_000_003 + 1).collect();
        let probes: Vec<_> = deadlines
            .iter()
            .map(|&when| {
                let (p, w) = probe();
                (p, wheel.insert(when, w))
            })
            .collect();
        let cut = 500_000;
        let due = deadlines.iter().filter(|&&d| d <= cut).count();
        assert_eq!(fire(&mut wheel, cut), due);
        for ((p, key), &when) in probes.iter().zip(&deadlines) {
            let woke = p.wakes.load(Ordering::SeqCst);
            assert_eq!(woke == 1, when <= cut, "deadline {when}");
            assert_eq!(wheel.contains(*key), when > cut);
        }
        assert_eq!(fire(&mut wheel, 2_000_000), deadlines.len() - due);
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn stepping_tick_by_tick_fires_each_timer_at_its_own_tick() {
        let mut wheel = Wheel::new();
        let mut keys = Vec::new();
        for when in (1..5_000u64).step_by(37) {
            let (_, w) = probe();
            keys.push((when, wheel.insert(when, w)));
        }
        for now in 1..5_000u64 {
            let expected = keys.iter().filter(|(when, _)| *when == now).count();
            assert_eq!(fire(&mut wheel, now), expected, "tick {now}");
        }
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn removed_timers_never_fire_and_slots_are_reused() {
        let mut wheel = Wheel::new();
        let (p, w) = probe();
        let keys: Vec<Key> = (1..=100).map(|i| wheel.insert(i * 10, w.clone())).collect();
        for key in keys.iter().step_by(2) {
            assert!(wheel.remove(*key));
            assert!(!wheel.remove(*key), "second remove must be a no-op");
        }
        assert_eq!(wheel.len(), 50);
        let capacity = wheel.entries.len();
        let again: Vec<Key> = (0..50)
            .map(|i| wheel.insert(5_000 + i, w.clone()))
            .collect();
        assert_eq!(wheel.entries.len(), capacity, "freed slots are reused");
        // A stale key never reaches the slot's new occupant.
        assert!(keys.iter().step_by(2).all(|k| !wheel.contains(*k)));
        assert!(again.iter().all(|k| wheel.contains(*k)));
        assert_eq!(fire(&mut wheel, 1_000), 50);
        assert_eq!(p.wakes.load(Ordering::SeqCst), 50);
        assert_eq!(fire(&mut wheel, 10_000), 50);
        assert_eq!(wheel.len(), 0);
    }

    #[test]
    fn past_deadline_fires_on_next_advance() {
        let mut wheel = Wheel::new();
        fire(&mut wheel, 1_000);
        let (p, w) = probe();
        wheel.insert(10, w);
        assert_eq!(wheel.next_expiration(), Some(1_001));
        assert_eq!(
            fire(&mut wheel, 1_000),
            0,
            "the current tick has already been processed"
        );
        assert_eq!(fire(&mut wheel, 1_001), 1);
        assert_eq!(p.wakes.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn update_waker_replaces_only_a_different_waker() {
        let mut wheel = Wheel::new();
        let (a, wa) = probe();
        let (b, wb) = probe();
        let key = wheel.insert(5, wa.clone());
        assert!(wheel.update_waker(key, &wa));
        assert!(wheel.update_waker(key, &wb));
        fire(&mut wheel, 5);
        assert_eq!(a.wakes.load(Ordering::SeqCst), 0);
        assert_eq!(b.wakes.load(Ordering::SeqCst), 1);
        assert!(!wheel.update_waker(key, &wa), "fired timers are gone");
    }

    #[test]
    fn next_expiration_is_never_after_the_earliest_deadline() {
        let mut wheel = Wheel::new();
        let (_, w) = probe();
        for when in [70_000, 3, 900] {
            wheel.insert(when, w.clone());
        }
        let mut now = 0;
        let mut fired_at = Vec::new();
        while let Some(next) = wheel.next_expiration() {
            assert!(next > now);
            now = next;
            if fire(&mut wheel, now) > 0 {
                fired_at.push(now);
            }
        }
        assert_eq!(fired_at, [3, 900, 70_000]);
    }

    #[test]
    fn random_operations_match_a_sorted_reference() {
        // A differential test against a plain list: random inserts, removes, reschedules and
        // advances (small steps and long jumps) must fire exactly the same timers.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut random = move |bound: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % bound
        };
        let mut wheel = Wheel::new();
        let mut reference: Vec<(Key, u64, Arc<Probe>)> = Vec::new();
        let mut now = 0u64;
        for _ in 0..20_000 {
            match random(10) {
                0..=4 => {
                    let spread = [70, 5_000, 300_000, 1 << 40][random(4) as usize];
                    let when = now + random(spread);
                    let (p, w) = probe();
                    reference.push((wheel.insert(when, w), when.max(now + 1), p));
                }
                5 if !reference.is_empty() => {
                    let (key, _, _) =
                        reference.swap_remove(random(reference.len() as u64) as usize);
                    assert!(wheel.remove(key));
                }
                6 if !reference.is_empty() => {
                    let i = random(reference.len() as u64) as usize;
                    let when = now + random(10_000);
                    assert!(wheel.reschedule(reference[i].0, when));
                    reference[i].1 = when.max(now + 1);
                }
                _ => {
                    now += [1, 3, 64, 4_000, 1 << 20][random(5) as usize];
                    let mut fired = Vec::new();
                    wheel.advance(now, &mut fired);
                    let before = reference.len();
                    reference.retain(|(key, when, p)| {
                        let due = *when <= now;
                        assert_eq!(wheel.contains(*key), !due, "deadline {when} at {now}");
                        if due {
                            assert!(fired.iter().any(|w| w.will_wake(&Waker::from(p.clone()))));
                        }
                        !due
                    });
                    assert_eq!(fired.len(), before - reference.len(), "at {now}");
                }
            }
            assert_eq!(wheel.len(), reference.len());
        }
    }
}
