//! The nursery's poll loop: one turn polls only the body and children that were woken, a
//! bounded number of them, then yields back to whoever polls the nursery.

use core::future::Future;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll};
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};

use super::outcome::ChildOutput;
use super::scope::{Polled, Scope};

/// Polls per turn before the nursery wakes itself and returns `Pending`. Under tokio a nursery
/// is one task whose coop budget (128) is shared by all its children: once it is spent, tokio
/// resources return `Pending` and wake at once, so polling more in the same turn only spins.
pub(super) const TURN_BUDGET: usize = 128;

/// Runs a nursery's body and children until all are done, or the first failure or panic.
pub(super) struct Driver<'a, 'scope, 'env, B, R> {
    scope: &'a Scope<'scope, 'env, R>,
    body: Pin<&'a mut Option<B>>,
    output: Option<R>,
    finished: bool,
}

// The driver never pins `output` (it only moves it out), and `body` is already pinned.
impl<B, R> Unpin for Driver<'_, '_, '_, B, R> {}

impl<'a, 'scope, 'env, B, R> Driver<'a, 'scope, 'env, B, R> {
    pub(super) fn new(scope: &'a Scope<'scope, 'env, R>, body: Pin<&'a mut Option<B>>) -> Self {
        scope.core.schedule(0);
        Driver {
            scope,
            body,
            output: None,
            finished: false,
        }
    }

    /// Ends the nursery early: drops the body, then every child, before returning `end`.
    fn cancel(&mut self) {
        self.body.set(None);
        self.scope.core.cancel_all();
        self.finished = true;
    }
}

impl<B, R> Future for Driver<'_, '_, '_, B, R>
where
    B: Future<Output = R>,
    R: ChildOutput<R>,
{
    type Output = R;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        let this = self.get_mut();
        let core = &this.scope.core;
        core.hub.register_parent(cx.waker());
        core.refill();
        let mut polled = 0;
        while let Some(node) = core.next_ready() {
            let index = node.index();
            if index == 0 {
                if let Some(body) = this.body.as_mut().as_pin_mut() {
                    let waker = core.hub.waker(0);
                    if let Poll::Ready(out) = body.poll(&mut Context::from_waker(&waker)) {
                        this.body.set(None);
                        match out.settle() {
                            Ok(out) => this.output = Some(out),
                            Err(end) => {
                                this.cancel();
                                return Poll::Ready(end);
                            }
                        }
                    }
                }
            } else {
                let failure = ptr::from_ref(&this.scope.failure).cast::<()>();
                // SAFETY: `failure` is this scope's cell, typed by the `R` of every spawn.
                let polled = catch_unwind(AssertUnwindSafe(|| unsafe {
                    core.poll_child(index, failure)
                }));
                match polled {
                    Ok(Polled::Pending | Polled::Done) => {}
                    Ok(Polled::Failed) => {
                        this.cancel();
                        let end = this.scope.failure.take();
                        return Poll::Ready(end.expect("a failed child leaves its error"));
                    }
                    Err(panic) => {
                        this.cancel();
                        resume_unwind(panic);
                    }
                }
            }
            if this.body.is_none() && core.live() == 0 {
                break;
            }
            polled += 1;
            if polled == TURN_BUDGET && core.has_ready() {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
        }
        if this.body.is_none() && core.live() == 0 {
            this.finished = true;
            return Poll::Ready(
                this.output
                    .take()
                    .expect("a nursery is polled after it finished"),
            );
        }
        if core.has_ready() {
            // Woken during this turn: run them in the next one, after the caller had its turn.
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }
}

impl<B, R> Drop for Driver<'_, '_, '_, B, R> {
    fn drop(&mut self) {
        if !self.finished {
            // Dropped mid-way: every child is dropped before this returns.
            self.scope.core.cancel_all();
        }
    }
}
