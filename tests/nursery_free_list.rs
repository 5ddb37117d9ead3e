//! A cancel walk must not touch the free list: a free slot's waiter bits are its link to the
//! next free slot. Each test cancels a nursery with a free slot before a child whose
//! destructor spawns (a spawn refused after the cancel still takes a slot), then keeps those
//! handles so the second spawn follows the first one's link. Before the fix the cancel wrote
//! "no waiter" over the link and the second spawn indexed a node that does not exist
//! (a debug assertion here; undefined behaviour under Miri with it off).

use std::cell::{Cell, RefCell};
use std::future::{Future, pending};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use structured_async::{ChildHandle, Scope, block_on, nursery};

/// Pends forever; when dropped, spawns three children into the (cancelled) scope and keeps
/// their handles until the end of the drop.
struct SpawnsOnDrop<'s, 'e> {
    scope: &'s Scope<'s, 'e, ()>,
    spawned: Rc<Cell<usize>>,
}

impl Future for SpawnsOnDrop<'_, '_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for SpawnsOnDrop<'_, '_> {
    fn drop(&mut self) {
        let kept: Vec<ChildHandle<'_, ()>> = (0..3).map(|_| self.scope.spawn(async {})).collect();
        self.spawned.set(kept.len());
    }
}

/// Polls `fut` once (it pends), drops it, and checks that the destructor's three spawns were
/// made and that the thread still runs nurseries correctly (their storage is pooled).
fn cancel_after_one_poll(mut fut: Pin<Box<impl Future<Output = ()>>>, spawned: &Cell<usize>) {
    let mut cx = Context::from_waker(Waker::noop());
    assert!(fut.as_mut().poll(&mut cx).is_pending());
    drop(fut);
    assert_eq!(spawned.get(), 3);
    later_nursery_works();
}

/// The thread still runs nurseries correctly after the cancel (its storage is pooled).
fn later_nursery_works() {
    let sum: u32 = block_on(nursery!(|n| {
        let hs: Vec<_> = (1..=10u32).map(|i| n.spawn(async move { i })).collect();
        let mut sum = 0;
        for h in hs {
            sum += h.await;
        }
        sum
    }));
    assert_eq!(sum, 55);
}

#[test]
fn spawns_after_cancel_with_a_free_slot_before() {
    let spawned = Rc::new(Cell::new(0));
    let s = spawned.clone();
    let fut = Box::pin(nursery!(|n| {
        drop(n.spawn(async {})); // finishes without a handle: its slot is free
        n.spawn(SpawnsOnDrop {
            scope: n,
            spawned: s,
        });
        pending::<()>().await
    }));
    cancel_after_one_poll(fut, &spawned);
}

type Me<'s> = Rc<RefCell<Option<ChildHandle<'s, ()>>>>;

/// Pends forever; its destructor drops its own handle, freeing its slot inside the cancel.
struct OwnHandle<'s> {
    me: Me<'s>,
}

impl Future for OwnHandle<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

impl Drop for OwnHandle<'_> {
    fn drop(&mut self) {
        drop(self.me.borrow_mut().take());
    }
}

#[test]
fn a_child_dropping_its_own_handle_on_cancel() {
    let spawned = Rc::new(Cell::new(0));
    let s = spawned.clone();
    let fut = Box::pin(nursery!(|n| {
        let me: Me<'_> = Rc::default();
        let h = n.spawn(OwnHandle { me: me.clone() });
        *me.borrow_mut() = Some(h);
        n.spawn(SpawnsOnDrop {
            scope: n,
            spawned: s,
        });
        pending::<()>().await
    }));
    cancel_after_one_poll(fut, &spawned);
}
