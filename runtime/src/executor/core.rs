//! The executor's state on its own thread: the slab of spawned tasks, the local ready queue and
//! the registered subsystems. The poll loop that drives it is in `run_loop.rs`.

use super::cell::{self, OwnedTask};
use super::context;
use super::join::JoinHandle;
use super::queue::{RemoteBatch, Shared};
use super::task::{Header, TaskRef};
use crate::subsystem::registry::Registry;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::ptr::NonNull;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A boxed future, as [`Spawner::spawn`](super::Spawner::spawn) of the default runtime takes it.
pub(crate) type LocalTask = Pin<Box<dyn Future<Output = ()> + 'static>>;

enum Slot {
    Vacant,
    /// Waiting to be polled.
    Idle(OwnedTask),
    /// Being polled: its `OwnedTask` is on the poller's stack (invariant 2), which keeps the
    /// header at `task` alive; the address only identifies the task.
    Running {
        task: NonNull<Header>,
        cancelled: bool,
    },
}

#[derive(Default)]
struct Slab {
    slots: Vec<Slot>,
    vacant: Vec<usize>,
}

impl Slab {
    fn holds(&self, task: &TaskRef) -> bool {
        match self.slots.get(task.key) {
            Some(Slot::Idle(owned)) => owned.task().ptr_eq(task),
            Some(Slot::Running { task: t, .. }) => *t == task.as_ptr(),
            _ => false,
        }
    }

    /// A free key; the caller fills its slot.
    fn reserve(&mut self) -> usize {
        match self.vacant.pop() {
            Some(key) => key,
            None => {
                self.slots.push(Slot::Vacant);
                self.slots.len() - 1
            }
        }
    }

    fn vacate(&mut self, key: usize) -> Slot {
        self.vacant.push(key);
        std::mem::replace(&mut self.slots[key], Slot::Vacant)
    }
}

pub(crate) struct Core {
    shared: Arc<Shared>,
    ready: RefCell<VecDeque<TaskRef>>,
    /// Buffers swapped with the remote queue's, so draining it reuses capacity.
    spare: RefCell<RemoteBatch>,
    tasks: RefCell<Slab>,
    /// The root header of the last `block_on`, reused by the next one when nothing else
    /// holds it (see `Header::try_reset_root`).
    spare_root: RefCell<Option<TaskRef>>,
    pub(crate) registry: Registry,
    pub(crate) budget: usize,
    /// A `block_on` of this executor is running (it cannot nest in itself).
    pub(crate) running: Cell<bool>,
}

impl Core {
    pub(crate) fn new(registry: Registry, budget: usize) -> Rc<Self> {
        Rc::new(Core {
            shared: Arc::new(Shared::new(
                std::thread::current(),
                registry.unpark_wakers(),
            )),
            ready: RefCell::new(VecDeque::with_capacity(64)),
            spare: RefCell::default(),
            tasks: RefCell::default(),
            spare_root: RefCell::new(None),
            registry,
            budget: budget.max(1),
            running: Cell::new(false),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Queues a task that was just marked scheduled (invariant 3).
    #[inline]
    pub(crate) fn push_ready(&self, task: TaskRef) {
        self.ready.borrow_mut().push_back(task);
    }

    #[inline]
    pub(crate) fn pop_ready(&self) -> Option<TaskRef> {
        self.ready.borrow_mut().pop_front()
    }

    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.borrow().is_empty()
    }

    /// A root header for a `block_on`, scheduled: the previous one when nothing else holds
    /// it any more, else a new one.
    pub(crate) fn root(&self) -> TaskRef {
        let spare = self.spare_root.borrow_mut().take();
        let root = match spare {
            Some(root) if root.try_reset_root() => root,
            _ => {
                let root = cell::root(Arc::clone(&self.shared));
                let scheduled = root.transition_to_scheduled();
                debug_assert!(scheduled, "a new root is neither queued nor done");
                root
            }
        };
        self.push_ready(root.clone());
        root
    }

    /// Keeps a finished `block_on`'s root header for the next one.
    pub(crate) fn retire_root(&self, root: TaskRef) {
        root.transition_to_done();
        *self.spare_root.borrow_mut() = Some(root);
    }

    /// Stores `future` in the slab and queues it; returns its header. With `detached`, no
    /// `JoinHandle` will read its output.
    fn insert<F: Future + 'static>(&self, future: F, detached: bool) -> TaskRef {
        let mut tasks = self.tasks.borrow_mut();
        let key = tasks.reserve();
        let owned = cell::allocate(future, key, Arc::clone(&self.shared), detached);
        let task = owned.task().clone();
        tasks.slots[key] = Slot::Idle(owned);
        drop(tasks);
        if task.transition_to_scheduled() {
            self.push_ready(task.clone());
        }
        task
    }

    /// Stores a boxed future with no `JoinHandle` in the slab and queues it.
    pub(crate) fn insert_boxed(&self, future: LocalTask) {
        drop(self.insert(future, true));
    }

    /// Spawns a root task and returns its handle.
    pub(crate) fn spawn<F>(self: &Rc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let task = self.insert(future, false);
        // SAFETY: `task` was allocated just above for `F`, whose output is the handle's `T`,
        // and this handle is the only one made for it.
        unsafe { JoinHandle::new(task, Rc::downgrade(self)) }
    }

    /// Moves what other threads queued onto the local ready queue and into the slab.
    pub(crate) fn drain_remote(&self) {
        if !self.shared.has_pending() {
            return;
        }
        let mut spare = self.spare.borrow_mut();
        self.shared.take(&mut spare);
        self.ready.borrow_mut().extend(spare.wakes.drain(..));
        for task in spare.spawned.drain(..) {
            self.insert_boxed(task);
        }
    }

    /// Polls the task behind `task` once. `Ready` when it finished (or was already gone).
    pub(crate) fn run_task(&self, task: TaskRef) -> Poll<()> {
        if !task.transition_to_running() {
            return Poll::Ready(());
        }
        let mut owned = {
            let mut tasks = self.tasks.borrow_mut();
            if !tasks.holds(&task) {
                return Poll::Ready(());
            }
            let running = Slot::Running {
                task: task.as_ptr(),
                cancelled: false,
            };
            match std::mem::replace(&mut tasks.slots[task.key], running) {
                Slot::Idle(owned) => owned,
                // A task cannot be polled while it is being polled: `holds` saw it and
                // `Running` only exists during this function, which does not nest for one
                // task (a task is only queued once, invariant 3).
                other => {
                    tasks.slots[task.key] = other;
                    return Poll::Pending;
                }
            }
        };
        let waker = task.waker_ref();
        let mut cx = Context::from_waker(&waker);
        // A panic is caught inside (`cell.rs`) and delivered to the JoinHandle; a raw task
        // (from `Spawner::spawn` or another thread) that panics is finished, like a detached
        // tokio task, instead of unwinding through the executor. The panic hook has already
        // reported it.
        //
        // What still unwinds out of the poll (an awaiting handle's waker that panics when the
        // result wakes it) ends the task all the same: the guard frees its slot and drops the
        // future, if any is left, as the panic leaves this function.
        let unwinding = Unwinding {
            core: self,
            task: &task,
        };
        let poll = owned.poll(&mut cx);
        std::mem::forget(unwinding);
        let mut tasks = self.tasks.borrow_mut();
        let cancelled = matches!(
            tasks.slots[task.key],
            Slot::Running {
                cancelled: true,
                ..
            }
        );
        if poll.is_ready() || cancelled {
            task.transition_to_done();
            tasks.vacate(task.key);
            drop(tasks);
            // Dropped outside the borrow: its destructor may spawn or cancel (invariant 1).
            drop(owned);
            Poll::Ready(())
        } else {
            tasks.slots[task.key] = Slot::Idle(owned);
            Poll::Pending
        }
    }

    /// Cancels the task behind `task`: drops its future now, or right after its current
    /// poll when it cancels itself. A panic of the future's destructor goes to the task's
    /// handle (`cell.rs`), not to the caller.
    pub(crate) fn cancel(&self, task: &TaskRef) {
        let mut tasks = self.tasks.borrow_mut();
        if !tasks.holds(task) {
            return;
        }
        match &mut tasks.slots[task.key] {
            Slot::Running { cancelled, .. } => *cancelled = true,
            _ => {
                task.transition_to_done();
                let slot = tasks.vacate(task.key);
                drop(tasks);
                drop(slot);
            }
        }
    }

    /// Drops every task (inside this executor's context, so destructors can still spawn or
    /// look up subsystems) and refuses further wakes from other threads. A task whose
    /// destructor panics hands the panic to its handle, or, detached, swallows it; either way
    /// the other tasks are still dropped. Only a panic of an awaiting handle's waker leaves
    /// this, once every task is dropped.
    pub(crate) fn shutdown(self: &Rc<Self>) {
        let _enter = context::enter(self);
        // Closed however this ends, and before a panic below resumes: the runtime is gone
        // all the same (an open queue would take spawns nothing runs or drops).
        let close = Close(self);
        // A task's destructor does not unwind here (its panic is the task's, `cell.rs`), but
        // the waker of a handle awaiting it, woken once the future is gone, may. Each task is
        // dropped on its own so that such a panic skips no other task (nor aborts when a
        // second one unwinds through the first); the first resumes once all are dropped.
        let mut waker_panic = None;
        loop {
            let idle: Vec<Slot> = {
                let mut tasks = self.tasks.borrow_mut();
                let Slab { slots, vacant } = &mut *tasks;
                slots
                    .iter_mut()
                    .enumerate()
                    .filter_map(|(key, slot)| match slot {
                        Slot::Idle(owned) => {
                            owned.task().transition_to_done();
                            vacant.push(key);
                            Some(std::mem::replace(slot, Slot::Vacant))
                        }
                        _ => None,
                    })
                    .collect()
            };
            if idle.is_empty() {
                break;
            }
            for slot in idle {
                if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(slot))) {
                    match waker_panic {
                        None => waker_panic = Some(payload),
                        Some(_) => cell::drop_quietly(payload),
                    }
                }
            }
        }
        drop(close);
        if let Some(payload) = waker_panic {
            std::panic::resume_unwind(payload);
        }
    }
}

/// Ends a task whose poll unwinds out of [`Core::run_task`]: marks it done and frees its slab
/// slot (left `Running` by the poll), so that the runtime keeps no slot nothing will vacate.
/// The task's `OwnedTask`, declared before the guard, drops its future (if still there) after.
struct Unwinding<'a> {
    core: &'a Core,
    task: &'a TaskRef,
}

impl Drop for Unwinding<'_> {
    fn drop(&mut self) {
        self.task.transition_to_done();
        // A panic while the slab is borrowed (a spawn failing half-way inside a poll) leaves
        // the slot as it is, rather than panic again while unwinding (an abort).
        let Ok(mut tasks) = self.core.tasks.try_borrow_mut() else {
            return;
        };
        if tasks.holds(self.task) {
            let slot = tasks.vacate(self.task.key);
            drop(tasks);
            drop(slot);
        }
    }
}

/// Closes the executor's remote queue when dropped, at the end of [`Core::shutdown`]: refuses
/// further wakes and spawns from other threads and drops what was queued (inside the
/// executor's context, which the shutdown entered before).
struct Close<'a>(&'a Core);

impl Drop for Close<'_> {
    fn drop(&mut self) {
        let queued = self.0.shared.close();
        let ready = std::mem::take(&mut *self.0.ready.borrow_mut());
        drop(ready);
        drop(queued.wakes);
        // Tasks queued by other threads never reached the slab and have no handle: each is
        // dropped on its own, a panic in its destructor swallowed (the hook reported it) as
        // for a detached task in the slab, so the others are still dropped.
        for task in queued.spawned {
            cell::drop_quietly(task);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::task::{Wake, Waker};

    struct PanicsOnWake;

    impl Wake for PanicsOnWake {
        fn wake(self: Arc<Self>) {
            panic!("the awaiter's waker");
        }
    }

    /// Every slab slot is back on the vacant list.
    fn all_vacant(core: &Core) -> bool {
        let tasks = core.tasks.borrow();
        tasks.vacant.len() == tasks.slots.len()
            && tasks.slots.iter().all(|s| matches!(s, Slot::Vacant))
    }

    /// A panic that unwinds out of a task's poll (the awaiting handle's waker, woken by the
    /// task's result) frees the task's slot instead of leaving it `Running` for ever, and the
    /// task's header is done: a stale wake does not queue it again.
    #[test]
    fn a_poll_that_unwinds_frees_the_task_slot() {
        let core = Core::new(Registry::default(), 16);
        let h = core.spawn(async { 5 });
        let task = match &core.tasks.borrow().slots[0] {
            Slot::Idle(owned) => owned.task().clone(),
            _ => unreachable!("spawned, not polled yet"),
        };
        let mut h = Box::pin(h);
        let waker = Waker::from(Arc::new(PanicsOnWake));
        assert!(
            h.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let ended = catch_unwind(AssertUnwindSafe(|| core.block_on(async {})));
        assert!(ended.is_err(), "the waker's panic reached block_on");
        assert!(all_vacant(&core), "the task's slot is free");
        assert!(!task.transition_to_scheduled(), "the task is done");
        // The output is still the handle's, and the runtime runs more tasks.
        assert_eq!(core.block_on(h), 5);
        let again = core.spawn(async { 6 });
        assert_eq!(core.block_on(again), 6);
        assert!(all_vacant(&core));
    }

    /// A finished future whose destructor panics: its slot is freed and the handle gets the
    /// panic.
    #[test]
    fn a_destructor_panic_on_completion_frees_the_task_slot() {
        /// Ready at once; its destructor (run after `poll`, by the executor) panics.
        struct Bomb;
        impl Future for Bomb {
            type Output = u32;
            fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<u32> {
                Poll::Ready(1)
            }
        }
        impl Drop for Bomb {
            fn drop(&mut self) {
                panic!("boom");
            }
        }
        let core = Core::new(Registry::default(), 16);
        let h = core.spawn(Bomb);
        let joined = core.block_on(async {
            let mut h = core::pin::pin!(h);
            std::future::poll_fn(|cx| {
                Poll::Ready(catch_unwind(AssertUnwindSafe(|| h.as_mut().poll(cx))))
            })
            .await
        });
        let payload = joined.expect_err("the destructor's panic reached the handle");
        assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        assert!(all_vacant(&core));
    }

    /// Never finishes; counts its drops, then panics if `panics`.
    struct Pending {
        drops: Rc<Cell<u32>>,
        panics: bool,
    }

    impl Future for Pending {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }

    impl Drop for Pending {
        fn drop(&mut self) {
            self.drops.set(self.drops.get() + 1);
            assert!(!self.panics, "the cancelled future's destructor");
        }
    }

    fn pending(drops: &Rc<Cell<u32>>, panics: bool) -> Pending {
        Pending {
            drops: Rc::clone(drops),
            panics,
        }
    }

    /// The panic a handle's await resumes.
    fn join_panic<T>(h: JoinHandle<T>) -> String {
        let mut h = core::pin::pin!(h);
        let mut cx = Context::from_waker(Waker::noop());
        let payload = catch_unwind(AssertUnwindSafe(|| h.as_mut().poll(&mut cx)))
            .err()
            .expect("awaiting the handle panics");
        match payload.downcast_ref::<&str>() {
            Some(message) => (*message).to_owned(),
            None => payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default(),
        }
    }

    /// Cancelled futures whose destructors panic, by `abort`, by the task aborting itself and
    /// by the runtime's shutdown: no panic leaves those, every slot is freed (and the next
    /// spawn reuses it), and the handles resume the destructors' panics.
    #[test]
    fn a_destructor_panic_on_cancel_frees_the_task_slot() {
        let drops = Rc::new(Cell::new(0));
        let core = Core::new(Registry::default(), 16);
        let h = core.spawn(pending(&drops, true));
        core.block_on(async {});
        assert!(catch_unwind(AssertUnwindSafe(|| h.abort())).is_ok());
        assert_eq!(drops.get(), 1);
        assert!(all_vacant(&core));

        let own: Rc<RefCell<Option<JoinHandle<()>>>> = Rc::default();
        let me = Rc::clone(&own);
        let guard = pending(&drops, true);
        let h2 = core.spawn(async move {
            let _guard = guard;
            me.borrow().as_ref().expect("stored before it runs").abort();
            std::future::pending::<()>().await
        });
        *own.borrow_mut() = Some(h2);
        assert_eq!(
            core.tasks.borrow().slots.len(),
            1,
            "the freed slot was reused"
        );
        assert!(catch_unwind(AssertUnwindSafe(|| core.block_on(async {}))).is_ok());
        assert_eq!(drops.get(), 2);
        assert!(all_vacant(&core));
        let h2 = own.borrow_mut().take().expect("stored above");

        let h3 = core.spawn(pending(&drops, true));
        drop(core.spawn(pending(&drops, true)));
        assert!(catch_unwind(AssertUnwindSafe(|| core.shutdown())).is_ok());
        assert_eq!(drops.get(), 4);
        assert!(all_vacant(&core));
        for h in [h, h2, h3] {
            assert!(join_panic(h).contains("the cancelled future's destructor"));
        }
    }

    /// When the waker of a handle awaiting an aborted task panics (a broken executor's), the
    /// panic reaches the caller of `abort`, but only after the future was dropped and the
    /// slot freed: nothing is left for the allocation's last reference to drop (on whatever
    /// thread), and the handle says the task was cancelled.
    #[test]
    fn an_awaiter_waker_that_panics_on_abort_finds_the_future_dropped() {
        let drops = Rc::new(Cell::new(0));
        let core = Core::new(Registry::default(), 16);
        let h = core.spawn(pending(&drops, false));
        let mut h = Box::pin(h);
        let waker = Waker::from(Arc::new(PanicsOnWake));
        assert!(
            h.as_mut()
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let aborted = catch_unwind(AssertUnwindSafe(|| h.abort()));
        assert!(aborted.is_err(), "the waker's panic");
        assert_eq!(drops.get(), 1, "the future was dropped before the wake");
        assert!(all_vacant(&core));
        assert!(h.is_finished());
        assert!(join_panic(*Pin::into_inner(h)).contains("cancelled"));
    }
}
