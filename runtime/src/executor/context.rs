//! Which executor runs on this thread right now: `spawn_local`, `subsystem::current` and the
//! wakers' local fast path look it up here.

use super::core::Core;
use super::task::TaskRef;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Core>>> = const { RefCell::new(None) };
}

/// Makes `core` the current executor until the guard drops, then restores the previous one
/// (executors may nest: a task of one may `block_on` another).
pub(crate) struct Enter {
    previous: Option<Rc<Core>>,
}

pub(crate) fn enter(core: &Rc<Core>) -> Enter {
    let previous = CURRENT.with(|c| c.replace(Some(Rc::clone(core))));
    Enter { previous }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let ours = CURRENT.try_with(|c| c.replace(previous)).ok().flatten();
        // Dropped outside the borrow: it may be the last reference to the executor.
        drop(ours);
    }
}

/// The executor running on this thread, if any.
pub(crate) fn current() -> Option<Rc<Core>> {
    CURRENT.try_with(|c| c.borrow().clone()).ok().flatten()
}

/// Pushes a woken task onto the local ready queue when its executor is the one running on
/// this thread; gives it back otherwise.
#[inline]
pub(crate) fn push_local(task: TaskRef) -> Result<(), TaskRef> {
    let mut task = Some(task);
    // No `Rc` clone of the core: this runs on every local wake.
    let _ = CURRENT.try_with(|c| {
        if let (Some(core), Some(t)) = (&*c.borrow(), &task)
            && Arc::ptr_eq(core.shared(), &t.shared)
        {
            core.push_ready(task.take().expect("checked above"));
        }
    });
    match task {
        None => Ok(()),
        Some(task) => Err(task),
    }
}
