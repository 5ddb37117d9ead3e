//! The executor's state on its own thread: the slab of spawned tasks, the local ready queue and
//! the registered subsystems. The poll loop that drives it is in `run_loop.rs`.

use super::context;
use super::join::JoinHandle;
use super::queue::{RemoteBatch, Shared};
use super::task::{Header, JoinCell, TaskFuture};
use crate::subsystem::registry::Registry;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// A spawned future as the slab stores it.
pub(crate) type LocalTask = Pin<Box<dyn Future<Output = ()> + 'static>>;

enum Slot {
    Vacant,
    /// Waiting to be polled.
    Idle {
        header: Arc<Header>,
        future: LocalTask,
    },
    /// Being polled: its future is on the poller's stack (invariant 2).
    Running {
        header: Arc<Header>,
        cancelled: bool,
    },
}

#[derive(Default)]
struct Slab {
    slots: Vec<Slot>,
    vacant: Vec<usize>,
}

impl Slab {
    fn holds(&self, header: &Arc<Header>) -> bool {
        match self.slots.get(header.key) {
            Some(Slot::Idle { header: h, .. } | Slot::Running { header: h, .. }) => {
                Arc::ptr_eq(h, header)
            }
            _ => false,
        }
    }

    fn vacate(&mut self, key: usize) -> Slot {
        self.vacant.push(key);
        std::mem::replace(&mut self.slots[key], Slot::Vacant)
    }
}

pub(crate) struct Core {
    shared: Arc<Shared>,
    ready: RefCell<VecDeque<Arc<Header>>>,
    /// Buffers swapped with the remote queue's, so draining it reuses capacity.
    spare: RefCell<RemoteBatch>,
    tasks: RefCell<Slab>,
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
            registry,
            budget: budget.max(1),
            running: Cell::new(false),
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Queues a header that was just marked scheduled (invariant 3).
    pub(crate) fn push_ready(&self, header: Arc<Header>) {
        self.ready.borrow_mut().push_back(header);
    }

    pub(crate) fn pop_ready(&self) -> Option<Arc<Header>> {
        self.ready.borrow_mut().pop_front()
    }

    pub(crate) fn has_ready(&self) -> bool {
        !self.ready.borrow().is_empty()
    }

    /// A new header, marked scheduled and queued.
    pub(crate) fn schedule_new(&self, key: usize) -> Arc<Header> {
        let header = Arc::new(Header::new(key, Arc::clone(&self.shared)));
        if header.transition_to_scheduled() {
            self.push_ready(Arc::clone(&header));
        }
        header
    }

    /// Stores `future` in the slab and queues it; returns its header.
    pub(crate) fn insert(&self, future: LocalTask) -> Arc<Header> {
        let mut tasks = self.tasks.borrow_mut();
        let key = match tasks.vacant.pop() {
            Some(key) => key,
            None => {
                tasks.slots.push(Slot::Vacant);
                tasks.slots.len() - 1
            }
        };
        let header = self.schedule_new(key);
        tasks.slots[key] = Slot::Idle {
            header: Arc::clone(&header),
            future,
        };
        header
    }

    /// Spawns a root task and returns its handle.
    pub(crate) fn spawn<F>(self: &Rc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let cell = Rc::new(JoinCell::new());
        let header = self.insert(Box::pin(TaskFuture::new(future, Rc::clone(&cell))));
        JoinHandle::new(cell, header, Rc::downgrade(self))
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
            self.insert(task);
        }
    }

    /// Polls the task behind `header` once. `Ready` when it finished (or was already gone).
    pub(crate) fn run_task(&self, header: Arc<Header>) -> Poll<()> {
        if !header.transition_to_running() {
            return Poll::Ready(());
        }
        let mut future = {
            let mut tasks = self.tasks.borrow_mut();
            if !tasks.holds(&header) {
                return Poll::Ready(());
            }
            let running = Slot::Running {
                header: Arc::clone(&header),
                cancelled: false,
            };
            match std::mem::replace(&mut tasks.slots[header.key], running) {
                Slot::Idle { future, .. } => future,
                // A task cannot be polled while it is being polled: `holds` saw it and
                // `Running` only exists during this function, which does not nest for one
                // task (a task is only queued once, invariant 3).
                other => {
                    tasks.slots[header.key] = other;
                    return Poll::Pending;
                }
            }
        };
        let waker = Waker::from(Arc::clone(&header));
        let mut cx = Context::from_waker(&waker);
        // Tasks from `spawn_local` deliver their own panic to their JoinHandle; a raw task
        // (from `Spawner::spawn` or another thread) that panics is finished, like a detached
        // tokio task, instead of unwinding through the executor. The panic hook has already
        // reported it.
        let poll = catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx)))
            .unwrap_or(Poll::Ready(()));
        let mut tasks = self.tasks.borrow_mut();
        let cancelled = matches!(
            tasks.slots[header.key],
            Slot::Running {
                cancelled: true,
                ..
            }
        );
        if poll.is_ready() || cancelled {
            header.transition_to_done();
            tasks.vacate(header.key);
            drop(tasks);
            // Dropped outside the borrow: its destructor may spawn or cancel (invariant 1).
            drop(future);
            Poll::Ready(())
        } else {
            let key = header.key;
            tasks.slots[key] = Slot::Idle { header, future };
            Poll::Pending
        }
    }

    /// Cancels the task behind `header`: drops its future now, or right after its current
    /// poll when it cancels itself.
    pub(crate) fn cancel(&self, header: &Arc<Header>) {
        let mut tasks = self.tasks.borrow_mut();
        if !tasks.holds(header) {
            return;
        }
        match &mut tasks.slots[header.key] {
            Slot::Running { cancelled, .. } => *cancelled = true,
            _ => {
                header.transition_to_done();
                let slot = tasks.vacate(header.key);
                drop(tasks);
                drop(slot);
            }
        }
    }

    /// Drops every task (inside this executor's context, so destructors can still spawn or
    /// look up subsystems) and refuses further wakes from other threads.
    pub(crate) fn shutdown(self: &Rc<Self>) {
        let _enter = context::enter(self);
        loop {
            let idle: Vec<Slot> = {
                let mut tasks = self.tasks.borrow_mut();
                let Slab { slots, vacant } = &mut *tasks;
                slots
                    .iter_mut()
                    .enumerate()
                    .filter_map(|(key, slot)| match slot {
                        Slot::Idle { header, .. } => {
                            header.transition_to_done();
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
            drop(idle);
        }
        let queued = self.shared.close();
        let ready = std::mem::take(&mut *self.ready.borrow_mut());
        drop(ready);
        drop(queued);
    }
}
