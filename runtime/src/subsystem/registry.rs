//! The subsystems registered with one executor, each with its priority, and the weighting that
//! decides which of them the poll loop polls on each turn.

use super::{ParkHint, Subsystem};
use std::any::Any;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// One registered subsystem.
struct Entry {
    subsystem: Rc<dyn Subsystem>,
    /// The same object, for [`current`](super::current) to find it by type.
    any: Rc<dyn Any>,
    priority: u64,
    /// Accumulated priority × waiters not yet spent on a poll (see [`Registry::poll_due`]).
    credit: Cell<u64>,
    /// Its weight in the current turn (`u64::MAX`: a due deadline).
    weight: Cell<u64>,
}

/// What the loop should do when no task is ready (see [`Registry::park_plan`]).
pub(crate) enum ParkPlan {
    /// A busy-polled subsystem has waiters: keep polling, do not park.
    Spin,
    /// Block: in `subsystem` (an fd-backed one) if there is one, else the thread itself; for at
    /// most `timeout` (`None`: until woken).
    Park {
        subsystem: Option<Rc<dyn Subsystem>>,
        timeout: Option<Duration>,
    },
}

/// The subsystems of one executor, in registration order.
#[derive(Default)]
pub(crate) struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// Registers `subsystem`. A priority of 0 counts as 1.
    pub(crate) fn register<S: Subsystem>(&mut self, subsystem: Rc<S>, priority: u32) {
        let any: Rc<dyn Any> = subsystem.clone();
        self.entries.push(Entry {
            subsystem,
            any,
            priority: u64::from(priority.max(1)),
            credit: Cell::new(0),
            weight: Cell::new(0),
        });
    }

    /// The wakers that interrupt a blocking `park` of the subsystems that offer one.
    pub(crate) fn unpark_wakers(&self) -> Vec<std::task::Waker> {
        self.entries
            .iter()
            .filter_map(|e| e.subsystem.unpark_waker())
            .collect()
    }

    /// Whether a subsystem of type `S` is registered.
    pub(crate) fn contains<S: Subsystem>(&self) -> bool {
        self.entries.iter().any(|e| e.any.is::<S>())
    }

    /// The first registered subsystem of type `S`.
    pub(crate) fn find<S: Subsystem>(&self) -> Option<Rc<S>> {
        let entry = self.entries.iter().find(|e| e.any.is::<S>())?;
        Rc::clone(&entry.any).downcast::<S>().ok()
    }

    /// Between two task polls: consults the memory-only `ready_hint` of each busy-polled
    /// subsystem with waiters, and polls those that say an event may be there. The hint is
    /// asked before the (possibly costlier) `park_hint`, and the clock is read only when a
    /// subsystem is polled: this runs after every task poll.
    #[inline]
    pub(crate) fn poll_hinted(&self, now: &mut Option<Instant>) {
        for e in &self.entries {
            let s = &e.subsystem;
            if s.waiters() > 0 && s.ready_hint() && s.park_hint() == ParkHint::Busy {
                s.poll(*now.get_or_insert_with(Instant::now));
            }
        }
    }

    /// After the tasks of a turn: polls the subsystems whose turn it is.
    ///
    /// A subsystem with no waiters is never polled, nor one that expects nothing (`Idle`) or
    /// whose deadline is still ahead. A due deadline is polled at once. Busy and fd-backed
    /// subsystems earn `priority × waiters` credit per turn; the heaviest is polled every turn
    /// and the others whenever their credit reaches its weight, so each is polled in
    /// proportion to its weight.
    pub(crate) fn poll_due(&self, now: Instant) {
        let mut heaviest = 0;
        for e in &self.entries {
            let waiters = e.subsystem.waiters() as u64;
            // No waiters: no weight, and no `park_hint` either (the timers' looks for the
            // next expiration in the wheel, on every turn of a loop busy with other work).
            let hint = if waiters == 0 {
                ParkHint::Idle
            } else {
                e.subsystem.park_hint()
            };
            let weight = match hint {
                ParkHint::Idle => 0,
                ParkHint::Deadline(due) if due > now => 0,
                ParkHint::Deadline(_) => u64::MAX,
                _ => e.priority.saturating_mul(waiters),
            };
            if weight != u64::MAX {
                heaviest = heaviest.max(weight);
            }
            e.weight.set(weight);
        }
        for e in &self.entries {
            match e.weight.get() {
                0 => e.credit.set(0),
                u64::MAX => {
                    e.subsystem.poll(now);
                }
                weight => {
                    let credit = e.credit.get().saturating_add(weight);
                    if credit >= heaviest {
                        e.credit.set(credit - heaviest);
                        e.subsystem.poll(now);
                    } else {
                        e.credit.set(credit);
                    }
                }
            }
        }
    }

    /// How to wait when no task is ready: not at all while a busy-polled subsystem has
    /// waiters; otherwise until the nearest deadline, blocking in the highest-priority
    /// fd-backed subsystem with waiters if there is one.
    pub(crate) fn park_plan(&self, now: Instant) -> ParkPlan {
        let mut deadline: Option<Instant> = None;
        let mut blocking: Option<&Entry> = None;
        for e in &self.entries {
            if e.subsystem.waiters() == 0 {
                continue;
            }
            match e.subsystem.park_hint() {
                ParkHint::Busy => return ParkPlan::Spin,
                ParkHint::Deadline(due) => {
                    deadline = Some(deadline.map_or(due, |d| d.min(due)));
                }
                #[cfg(unix)]
                ParkHint::Fd(_) => {
                    if blocking.is_none_or(|b| e.priority > b.priority) {
                        blocking = Some(e);
                    }
                }
                ParkHint::Idle => {}
            }
        }
        ParkPlan::Park {
            subsystem: blocking.map(|e| Rc::clone(&e.subsystem)),
            timeout: deadline.map(|d| d.saturating_duration_since(now)),
        }
    }
}
