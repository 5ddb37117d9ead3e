//! The poll loop behind `block_on`. Each turn:
//!
//! 1. take the wakes and tasks other threads queued;
//! 2. poll up to `budget` ready tasks (the root future is one of them), consulting the
//!    memory-only `ready_hint` of busy subsystems with waiters between two task polls;
//! 3. poll the subsystems whose turn it is, weighted by priority × waiters
//!    ([`Registry::poll_due`](crate::subsystem::registry::Registry::poll_due));
//! 4. if no task is ready: keep spinning while a busy-polled subsystem has waiters, else park
//!    (in the fd-backed subsystem if any, else the thread) until the nearest deadline or a wake.

use super::context;
use super::core::Core;
use super::task::{ROOT, TaskRef};
use crate::subsystem::registry::ParkPlan;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Clears the "running" flag and retires the root header however `block_on` ends.
struct RunGuard<'a> {
    core: &'a Core,
    root: Option<TaskRef>,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if let Some(root) = self.root.take() {
            self.core.retire_root(root);
        }
        self.core.running.set(false);
    }
}

impl Core {
    /// Runs `future` and every task on this executor until `future` completes.
    pub(crate) fn block_on<F: Future>(self: &Rc<Self>, future: F) -> F::Output {
        assert!(
            !self.running.replace(true),
            "Runtime::block_on called from inside the same runtime; spawn_local the work or \
             .await it instead"
        );
        let _enter = context::enter(self);
        let guard = RunGuard {
            core: self,
            root: Some(self.root()),
        };
        let root = guard.root.as_ref().expect("set above");
        let root_waker = root.waker_ref();
        let mut future = pin!(future);
        loop {
            self.drain_remote();
            let mut now = None;
            let mut polled = 0;
            while polled < self.budget {
                let Some(header) = self.pop_ready() else {
                    break;
                };
                if header.key != ROOT {
                    polled += 1;
                    let _ = self.run_task(header);
                } else if header.ptr_eq(root) {
                    polled += 1;
                    if root.transition_to_running() {
                        let mut cx = Context::from_waker(&root_waker);
                        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
                            return output;
                        }
                    }
                }
                if polled < self.budget && self.has_ready() {
                    self.registry.poll_hinted(&mut now);
                }
            }
            let now = Instant::now();
            self.registry.poll_due(now);
            if !self.has_ready() && !self.shared().has_pending() {
                self.park(now);
            }
        }
    }

    /// Waits for work as the registered subsystems allow (step 4 of the loop).
    ///
    /// A wake from another thread unparks the thread, and interrupts a subsystem blocked in
    /// its own [`Subsystem::park`](crate::Subsystem::park) through its
    /// [`unpark_waker`](crate::Subsystem::unpark_waker).
    fn park(&self, now: Instant) {
        match self.registry.park_plan(now) {
            ParkPlan::Spin => std::hint::spin_loop(),
            ParkPlan::Park { timeout, .. } if timeout == Some(Duration::ZERO) => {}
            ParkPlan::Park { subsystem, timeout } => {
                if let Some(s) = subsystem {
                    match self.shared().park_in_subsystem(|| s.park(timeout)) {
                        // Work from another thread arrived, or the subsystem blocked.
                        None | Some(true) => return,
                        Some(false) => {}
                    }
                }
                // A wake from another thread between the check in the loop and here left an
                // unpark token, so this returns at once (no lost wake-up).
                match timeout {
                    Some(timeout) => std::thread::park_timeout(timeout),
                    None => std::thread::park(),
                }
            }
        }
    }
}
