//! `subsystem::current` finds the subsystems registered with the runtime running on this
//! thread: the default timers, a user's own, the first of several of one type.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;
use structured_async::subsystem::{self, ParkHint, Subsystem};
use structured_async::time::Timers;
use structured_async::{Runtime, block_on, spawn_local};

struct Named(&'static str, Cell<usize>);

impl Subsystem for Named {
    fn poll(&self, _now: Instant) -> usize {
        self.1.set(self.1.get() + 1);
        0
    }
    fn waiters(&self) -> usize {
        0
    }
    fn park_hint(&self) -> ParkHint {
        ParkHint::Idle
    }
}

#[test]
fn current_is_none_outside_a_runtime() {
    assert!(subsystem::current::<Timers>().is_none());
    assert!(subsystem::current::<Named>().is_none());
}

#[test]
fn every_runtime_has_timers_and_a_builder_may_supply_its_own() {
    let default_timers = block_on(async { subsystem::current::<Timers>() });
    assert!(default_timers.is_some());

    let mine = Rc::new(Timers::new());
    let rt = Runtime::builder().subsystem(Rc::clone(&mine), 7).build();
    let found = rt.block_on(async { subsystem::current::<Timers>().unwrap() });
    assert!(
        Rc::ptr_eq(&found, &mine),
        "the supplied timers, not a second default"
    );
}

#[test]
fn spawned_tasks_find_the_subsystems_of_their_runtime() {
    let first = Rc::new(Named("first", Cell::new(0)));
    let second = Rc::new(Named("second", Cell::new(0)));
    let rt = Runtime::builder()
        .subsystem(Rc::clone(&first), 1)
        .subsystem(Rc::clone(&second), 1)
        .build();
    let name = rt.block_on(async {
        spawn_local(async { subsystem::current::<Named>().map(|n| n.0) }).await
    });
    assert_eq!(name, Some("first"), "the first registered of a type");
    // A nested runtime has its own registry; the outer one is back afterwards.
    let (inner, outer) = rt.block_on(async {
        let inner = block_on(async { subsystem::current::<Named>().is_some() });
        (inner, subsystem::current::<Named>().is_some())
    });
    assert!(!inner && outer);
    assert_eq!(
        first.1.get() + second.1.get(),
        0,
        "idle and without waiters: never polled"
    );
}
