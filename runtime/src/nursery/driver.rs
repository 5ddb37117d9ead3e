//! The nursery's poll loop: one turn polls only the body and children that were woken, a
//! bounded number of them, then yields back to whoever polls the nursery.

use core::future::Future;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::children::{Core, Panic};
use super::kind::TreeKind;
use super::outcome::ChildOutput;
use super::scope::Scope;
use super::slot::{self, PollFn, Polled};
use super::wake::WakeNode;
use crate::time::{Sleep, sleep};

/// Polls per turn before the nursery wakes itself and returns `Pending`. Under tokio a nursery
/// is one task whose coop budget (128) is shared by all its children: once it is spent, tokio
/// resources return `Pending` and wake at once, so polling more in the same turn only spins.
pub(super) const TURN_BUDGET: usize = 128;

/// Runs a nursery's body and children until all are done, or the first failure or panic.
pub(super) struct Driver<'a, 'scope, 'env, B, R, K: TreeKind> {
    scope: &'a Scope<'scope, 'env, R, K>,
    body: Pin<&'a mut Option<B>>,
    output: Option<R>,
    /// Set when the nursery ends early while children run their async cleanup: the output to
    /// resolve to, and the end of their grace period.
    ending: Option<(R, Pin<Box<Sleep>>)>,
    finished: bool,
}

// The driver never pins `output` (it only moves it out), and `body` is already pinned.
impl<B, R, K: TreeKind> Unpin for Driver<'_, '_, '_, B, R, K> {}

impl<'a, 'scope, 'env, B, R, K: TreeKind> Driver<'a, 'scope, 'env, B, R, K> {
    pub(super) fn new(scope: &'a Scope<'scope, 'env, R, K>, body: Pin<&'a mut Option<B>>) -> Self {
        scope.core.schedule(0);
        Driver {
            scope,
            body,
            output: None,
            ending: None,
            finished: false,
        }
    }

    /// Ends the nursery early: drops the body, then every child, before returning. Returns
    /// the first panic of their destructors, if any, once everything is dropped.
    #[cold]
    fn cancel(&mut self) -> Option<Panic> {
        let body = self.drop_body();
        let children = self.scope.core.cancel_all();
        self.finished = true;
        body.or(children)
    }

    /// Drops the body (if not done yet), catching a panic of its destructor.
    fn drop_body(&mut self) -> Option<Panic> {
        // Assigning writes `None` even when the old body's drop unwinds, so it is never
        // dropped twice.
        catch_unwind(AssertUnwindSafe(|| self.body.set(None))).err()
    }

    /// Ends the nursery early with `end`: drops the body and every child at once, except
    /// cancellable children, which first get the grace period for their async cleanup.
    ///
    /// If a destructor panics meanwhile, it is as if a child panicked: everything left is
    /// dropped (cleaning children too) and the first such panic resumes instead of `end`.
    fn fail(&mut self, end: R) -> Poll<R> {
        let body = self.drop_body();
        let core = &self.scope.core;
        let panic = match (body, core.begin_cancel()) {
            (None, Ok(0)) => {
                self.finished = true;
                return Poll::Ready(end);
            }
            (None, Ok(_)) => {
                self.ending = Some((end, Box::pin(sleep(core.grace()))));
                return Poll::Pending;
            }
            (Some(panic), _) | (None, Err(panic)) => panic,
        };
        drop(self.cancel());
        drop(end);
        resume_unwind(panic)
    }

    /// The grace period ran out: drops the children still cleaning up and resolves to the
    /// output that ended the nursery, unless one of their destructors panics (the first such
    /// panic resumes instead).
    #[cold]
    fn end_grace(&mut self) -> Poll<R> {
        let (end, _) = self.ending.take().expect("ending");
        if let Some(panic) = self.cancel() {
            drop(end);
            resume_unwind(panic);
        }
        Poll::Ready(end)
    }
}

impl<B, R, K: TreeKind> Future for Driver<'_, '_, '_, B, R, K>
where
    B: Future<Output = R>,
    R: ChildOutput<R>,
{
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        let core = &this.scope.core;
        if K::SHARED {
            core.enter();
        }
        core.hub.set_owner();
        let in_poll = core.hub.enter_poll();
        // Polled in the second lap of the parent's turn: so is this whole turn (wake rule 8).
        core.refill(in_poll.late());
        if let Some((_, grace)) = &mut this.ending {
            if grace.as_mut().poll(cx).is_ready() {
                // Cleanup took too long: drop the children still at it.
                return this.end_grace();
            }
        }
        let failure = ptr::from_ref(&this.scope.failure.0).cast::<()>();
        let mut polled = 0;
        loop {
            let body_done = this.body.as_mut().as_pin_mut().is_none();
            // SAFETY: `failure` is this scope's cell, typed by the `R` of every spawn.
            let run = catch_unwind(AssertUnwindSafe(|| unsafe {
                poll_children(core, failure, polled, body_done)
            }));
            let node = match run {
                Ok((Stop::Body(node), n)) => {
                    polled = n;
                    node
                }
                Ok((Stop::Idle | Stop::Finished, _)) => break,
                Ok((Stop::Budget, n)) => {
                    polled = n;
                    if core.has_ready() {
                        core.hub.register_parent(cx.waker());
                        // Out of the poll first, so that whoever polls the nursery sees it
                        // yield.
                        drop(in_poll);
                        cx.waker().wake_by_ref();
                        return Poll::Pending;
                    }
                    continue;
                }
                Ok((Stop::Failed, n)) => {
                    polled = n;
                    let end = this.scope.failure.0.take();
                    match this.fail(end.expect("a failed child leaves its error")) {
                        Poll::Ready(end) => return Poll::Ready(end),
                        Poll::Pending => continue,
                    }
                }
                Err(panic) => {
                    core.hub.set_polled(None);
                    core.hub.take_self_woken();
                    // The child's panic wins: destructors' panics while the rest is dropped
                    // were reported by the hook and are dropped here.
                    drop(this.cancel());
                    resume_unwind(panic);
                }
            };
            if let Some(body) = this.body.as_mut().as_pin_mut() {
                let waker = core.hub.waker(0);
                core.hub.set_polled(Some(node));
                let out = body.poll(&mut Context::from_waker(&waker));
                core.hub.set_polled(None);
                if core.hub.take_self_woken() && out.is_pending() {
                    core.requeue(node, core.hub.alone());
                }
                if let Poll::Ready(out) = out {
                    this.body.set(None);
                    match out.settle() {
                        Ok(out) => this.output = Some(out),
                        Err(end) => match this.fail(end) {
                            Poll::Ready(end) => return Poll::Ready(end),
                            Poll::Pending => continue,
                        },
                    }
                }
            }
            if core.live() == 0 && this.body.as_mut().as_pin_mut().is_none() {
                break;
            }
            polled += 1;
            if polled == TURN_BUDGET && core.has_ready() {
                core.hub.register_parent(cx.waker());
                drop(in_poll);
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if this.body.as_mut().as_pin_mut().is_none() && core.live() == 0 {
            this.finished = true;
            if let Some((end, _)) = this.ending.take() {
                return Poll::Ready(end);
            }
            return Poll::Ready(
                this.output
                    .take()
                    .expect("a nursery is polled after it finished"),
            );
        }
        if let Some((_, grace)) = &mut this.ending {
            // Registers the deadline's wake-up (a no-op if already registered this turn).
            if grace.as_mut().poll(cx).is_ready() {
                return this.end_grace();
            }
        }
        // Registered before the last look for ready nodes, so that a wake from another thread
        // reaches the caller either way (wake rule 9).
        core.hub.register_parent(cx.waker());
        let again = core.has_ready();
        drop(in_poll);
        if again {
            // Nodes that woke themselves in this turn's second lap, or were woken from another
            // thread: run them in the next one, after the caller had its turn.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

/// Why [`poll_children`] (or a run in it) returned.
pub(super) enum Stop<'a> {
    /// The body's node came up: the driver polls the body itself.
    Body(&'a WakeNode),
    /// A child's output ended the nursery; it is in the scope's `failure` cell.
    Failed,
    /// No node is ready.
    Idle,
    /// The turn polled [`TURN_BUDGET`] nodes.
    Budget,
    /// The last child finished, after the body.
    Finished,
}

/// Polls the ready children in turn until one of [`Stop`], counting each poll on top of
/// `polled` (returned). A run of children shares one `catch_unwind` in the driver.
///
/// # Safety
/// `failure` points to the scope's `Cell<Option<R>>` for the `R` children were spawned with.
#[inline(always)]
unsafe fn poll_children(
    core: &Core,
    failure: *const (),
    mut polled: usize,
    body_done: bool,
) -> (Stop<'_>, usize) {
    let stop = loop {
        let (node, index) = match core.next_ready(core.hub.alone()) {
            Some(ready) => ready,
            // Children woken by siblings during this turn run in it too, and then those that
            // woke themselves in its first lap (wake rule 8).
            None if core.refill_woken() || core.start_second_lap() => continue,
            None => break Stop::Idle,
        };
        if index == 0 {
            break Stop::Body(node);
        }
        // The node and those queued right after it with children of the same type run in a
        // loop that knows the type: polls, outputs and drops inline.
        let run = node.entry.vtable.get().run;
        // SAFETY: as the caller promised; `node` is a child's (not the body's), just taken
        // off the run queue, and `run` was read from that node's own vtable, so it is the
        // `poll_run` of the type its slot holds (slot rule 1).
        let (stop, n) = unsafe { run(core, node, failure, polled, body_done) };
        polled = n;
        if let Some(stop) = stop {
            break stop;
        }
    };
    core.hub.set_polled(None);
    (stop, polled)
}

/// [`VTable::run`](super::slot::VTable::run) for children of type `F` in a nursery whose
/// output is `R`.
///
/// # Safety
/// `first` is a node of `core` just taken off its run queue, for a child slot (not the
/// body) whose vtable is `F`'s; `failure` points to the scope's `Cell<Option<R>>`.
pub(super) unsafe fn poll_run<'a, F: Future, R>(
    core: &'a Core,
    first: &'a WakeNode,
    failure: *const (),
    polled: usize,
    body_done: bool,
) -> (Option<Stop<'a>>, usize)
where
    F::Output: ChildOutput<R>,
{
    // SAFETY: as the caller promised, `first` holds an `F`; `run_with` checks every later
    // node's vtable before it polls it as an `F`.
    unsafe {
        run_with(
            core,
            first,
            failure,
            polled,
            body_done,
            slot::poll_child::<F, R>,
        )
    }
}

/// Polls `first` with `poll`, then each node on the run queue after it that has the same
/// vtable, until one of [`Stop`] (`None` when the next node has another vtable or
/// none is left). Counts each poll on top of `polled` (returned).
///
/// # Safety
/// `first` is a node of `core` just taken off its run queue, for a child slot (not the
/// body); `poll` polls the type of child its vtable is for; `failure` points to the scope's
/// `Cell<Option<R>>` for the `R` children were spawned with.
#[inline(always)]
pub(super) unsafe fn run_with<'a>(
    core: &'a Core,
    first: &'a WakeNode,
    failure: *const (),
    mut polled: usize,
    body_done: bool,
    poll: PollFn,
) -> (Option<Stop<'a>>, usize) {
    let vtable = first.entry.vtable.get();
    let mut node = first;
    loop {
        // SAFETY: as the caller promised; every node after the first has the same vtable
        // (checked below), so `poll` is for its child's type too.
        let (out, alone) = unsafe { poll_node(core, node, failure, poll) };
        match out {
            Polled::Pending => {}
            Polled::Done | Polled::Dropped if body_done && core.live() == 0 => {
                return (Some(Stop::Finished), polled);
            }
            Polled::Done | Polled::Dropped => {}
            Polled::Failed => return (Some(Stop::Failed), polled),
        }
        polled += 1;
        if polled == TURN_BUDGET {
            return (Some(Stop::Budget), polled);
        }
        match core.next_ready_of(alone, vtable) {
            Some((next, index)) => {
                // The body's node never has a child's vtable.
                if index == 0 {
                    return (Some(Stop::Body(next)), polled);
                }
                node = next;
            }
            None => return (None, polled),
        }
    }
}

/// Polls `node`'s child once with `poll` (slot bookkeeping as [`Core::poll_child`] does it),
/// and queues it for the lap the turn is in if it woke itself (wake rule 8). Returns what the
/// poll did and [`HubRef::alone`](super::wake::HubRef::alone) read after it.
///
/// # Safety
/// As for [`Core::poll_child`], with `node` a child's node.
#[inline(always)]
pub(super) unsafe fn poll_node(
    core: &Core,
    node: &WakeNode,
    failure: *const (),
    poll: PollFn,
) -> (Polled, bool) {
    // Left set between two polls, in which no code runs that could wake anything.
    core.hub.set_polled(Some(node));
    // SAFETY: as the caller promised.
    let out = unsafe { core.poll_child(node, failure, poll) };
    // The poll may have cloned a waker (or a clone may have been dropped meanwhile).
    let alone = core.hub.alone();
    if core.hub.take_self_woken() && matches!(out, Polled::Pending) {
        core.requeue(node, alone);
    }
    (out, alone)
}

impl<B, R, K: TreeKind> Drop for Driver<'_, '_, '_, B, R, K> {
    fn drop(&mut self) {
        if K::SHARED {
            // Dropping runs children's and handles' drops on this thread.
            self.scope.core.enter();
        }
        if !self.finished {
            self.drop_unfinished();
        }
    }
}

impl<B, R, K: TreeKind> Driver<'_, '_, '_, B, R, K> {
    /// Dropped mid-way: every child is dropped before this returns, then the body (which the
    /// nursery would drop next anyway). As for a `Vec`, a destructor's panic does not stop the
    /// others; the first one resumes once all are dropped, unless this thread is unwinding
    /// already (a panic leaving a drop then would abort the process): then it is dropped.
    #[cold]
    #[inline(never)]
    fn drop_unfinished(&mut self) {
        let children = self.scope.core.cancel_all();
        let body = self.drop_body();
        self.finished = true;
        if let Some(panic) = children.or(body) {
            if !std::thread::panicking() {
                resume_unwind(panic);
            }
        }
    }
}
