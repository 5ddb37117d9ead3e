//! [`Sleep`]: a future that completes at a deadline, registered with the wheel of the thread
//! it is polled on.

use super::global::GlobalTimers;
use super::wheel::Key;
use super::{RemoteCancels, Timers, current_timers, deadline_after};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Waits until `duration` has elapsed.
///
/// Equivalent to `sleep_until(Instant::now() + duration)`; a `Duration::ZERO` sleep is ready
/// at once, and a duration too large for an [`Instant`] sleeps for about 30 years. The sleep
/// never completes before its deadline (resolution: one millisecond, rounded up).
///
/// ```
/// use std::time::{Duration, Instant};
/// use structured_async_runtime::block_on;
/// use structured_async_runtime::time::sleep;
///
/// let start = Instant::now();
/// block_on(async {
/// sleep(Duration::from_millis(20)).await;
/// });
/// assert!(start.elapsed() >= Duration::from_millis(20));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(deadline_after(duration))
}

/// Waits until `deadline`; an instant in the past is ready at once.
///
/// ```
/// use std::time::{Duration, Instant};
/// use structured_async_runtime::time::sleep_until;
///
/// let deadline = Instant::now() + Duration::from_millis(10);
/// let sleep = sleep_until(deadline);
/// assert_eq!(sleep.deadline(), deadline);
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        registration: Registration::None,
    }
}

/// The future returned by [`sleep`] and [`sleep_until`].
///
/// Nothing is registered until the first poll. Polled on a thread running a structured-async
/// runtime, it waits in that runtime's [`Timers`] wheel; polled anywhere else, in the global
/// timer thread's wheel. Dropping it removes its timer, so a cancelled sleep neither leaks an
/// entry nor wakes anything. It is `Send`, `Sync` and `Unpin`: it may be polled on one thread
/// and moved to another, where it re-registers.
///
/// ```
/// use std::time::{Duration, Instant};
/// use structured_async_runtime::time::sleep;
///
/// let sleep = sleep(Duration::from_secs(5));
/// assert!(!sleep.is_elapsed());
/// drop(sleep); // never polled, nothing registered
/// ```
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    deadline: Instant,
    registration: Registration,
}

/// Where a [`Sleep`]'s timer lives.
#[derive(Debug)]
enum Registration {
    /// Not registered: never polled, or reset after it fired.
    None,
    /// In the wheel of the [`Timers`] identified by its `remote` list.
    Local {
        remote: Arc<RemoteCancels>,
        key: Key,
    },
    /// In the global timer thread's wheel.
    Global { key: Key },
    /// The timer fired: the deadline has passed.
    Fired,
}

impl Sleep {
    /// The instant at which this sleep completes.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use structured_async_runtime::time::sleep;
    ///
    /// assert!(sleep(Duration::from_secs(1)).deadline() > Instant::now());
    /// ```
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the timer has fired (the sleep has completed or would complete when polled).
    ///
    /// ```
    /// use std::time::Duration;
    /// use structured_async_runtime::time::sleep;
    ///
    /// assert!(!sleep(Duration::from_secs(1)).is_elapsed());
    /// ```
    pub fn is_elapsed(&self) -> bool {
        matches!(self.registration, Registration::Fired)
    }

    /// Moves the deadline, whether or not the sleep has completed; a registered timer keeps its
    /// waker, so the task waiting on it is woken at the new deadline.
    ///
    /// ```
    /// use std::pin::pin;
    /// use std::time::{Duration, Instant};
    /// use structured_async_runtime::time::sleep;
    ///
    /// let mut sleep = pin!(sleep(Duration::from_secs(60)));
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// sleep.as_mut().reset(soon);
    /// assert_eq!(sleep.deadline(), soon);
    /// ```
    pub fn reset(self: Pin<&mut Self>, deadline: Instant) {
        let this = self.get_mut();
        this.deadline = deadline;
        let moved = match &this.registration {
            Registration::None => true,
            Registration::Fired => false,
            Registration::Local { remote, key } => with_local(remote, |timers| {
                let when = timers.clock.deadline_tick(deadline);
                timers.wheel.borrow_mut().reschedule(*key, when)
            })
            .unwrap_or(false),
            Registration::Global { key } => GlobalTimers::get().reschedule(*key, deadline),
        };
        if !moved {
            this.deregister();
        }
    }

    /// Registers with the current thread's wheel, or the global one outside a runtime.
    fn register(&mut self, cx: &mut Context<'_>) {
        self.registration = match current_timers() {
            Some(timers) => {
                let when = timers.clock.deadline_tick(self.deadline);
                let key = timers.wheel.borrow_mut().insert(when, cx.waker().clone());
                Registration::Local {
                    remote: timers.remote.clone(),
                    key,
                }
            }
            None => Registration::Global {
                key: GlobalTimers::get().insert(self.deadline, cx.waker().clone()),
            },
        };
    }

    /// Removes the timer, wherever it is, leaving the sleep unregistered.
    fn deregister(&mut self) {
        match std::mem::replace(&mut self.registration, Registration::None) {
            Registration::Local { remote, key } => {
                let removed = with_local(&remote, |timers| match timers.wheel.try_borrow_mut() {
                    Ok(mut wheel) => {
                        wheel.remove(key);
                        true
                    }
                    Err(_) => false,
                });
                if removed != Some(true) {
                    // Another thread, or the wheel is busy: its next poll removes the timer.
                    remote.cancel(key);
                }
            }
            Registration::Global { key } => GlobalTimers::get().remove(key),
            Registration::None | Registration::Fired => {}
        }
    }
}

/// Runs `f` on the current thread's [`Timers`] if it is the one `remote` belongs to.
fn with_local<R>(remote: &Arc<RemoteCancels>, f: impl FnOnce(&Timers) -> R) -> Option<R> {
    let timers: Rc<Timers> = current_timers()?;
    Arc::ptr_eq(&timers.remote, remote).then(|| f(&timers))
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let still_waiting = match &this.registration {
            Registration::Fired => return Poll::Ready(()),
            Registration::None => {
                if this.deadline <= Instant::now() {
                    this.registration = Registration::Fired;
                    return Poll::Ready(());
                }
                this.register(cx);
                return Poll::Pending;
            }
            Registration::Local { remote, key } => with_local(remote, |timers| {
                timers.wheel.borrow_mut().update_waker(*key, cx.waker())
            }),
            Registration::Global { key } => match current_timers() {
                // Now inside a runtime: move to its wheel.
                Some(_) => None,
                None => Some(GlobalTimers::get().update_waker(*key, cx.waker())),
            },
        };
        match still_waiting {
            Some(true) => Poll::Pending,
            // A timer is removed from its wheel only when it fires or by this sleep.
            Some(false) => {
                this.registration = Registration::Fired;
                Poll::Ready(())
            }
            // Polled away from the wheel it is in: move to this thread's wheel.
            None => {
                this.deregister();
                Pin::new(this).poll(cx)
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.deregister();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};
    use std::thread::{self, Thread};

    /// Unparks the blocked thread; counts wakes.
    struct Unpark(Thread, AtomicUsize);

    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.1.fetch_add(1, Ordering::SeqCst);
            self.0.unpark();
        }
    }

    /// A minimal executor with no timers: what tokio or smol look like to a `Sleep`.
    fn block_on<F: Future>(future: F) -> F::Output {
        let waker = Waker::from(Arc::new(Unpark(thread::current(), AtomicUsize::new(0))));
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(v) = future.as_mut().poll(&mut Context::from_waker(&waker)) {
                return v;
            }
            thread::park();
        }
    }

    fn global_key(sleep: &Sleep) -> Key {
        match sleep.registration {
            Registration::Global { key } => key,
            ref other => panic!("not in the global wheel: {other:?}"),
        }
    }

    #[test]
    fn outside_a_runtime_the_timer_thread_completes_sleeps_never_early() {
        let start = Instant::now();
        let deadlines: Vec<Instant> = (1..=20)
            .map(|i| start + Duration::from_millis(i * 3))
            .collect();
        for &deadline in &deadlines {
            block_on(sleep_until(deadline));
            assert!(Instant::now() >= deadline);
        }
    }

    #[test]
    fn zero_and_past_sleeps_are_ready_at_once_without_registering() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut zero = sleep(Duration::ZERO);
        assert_eq!(Pin::new(&mut zero).poll(&mut cx), Poll::Ready(()));
        assert!(zero.is_elapsed());
        let mut past = sleep_until(Instant::now() - Duration::from_millis(5));
        assert_eq!(Pin::new(&mut past).poll(&mut cx), Poll::Ready(()));
    }

    #[test]
    fn dropping_a_pending_sleep_removes_its_timer_and_wakes_nothing() {
        let counter = Arc::new(Unpark(thread::current(), AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut sleep = sleep(Duration::from_millis(5));
        assert!(
            Pin::new(&mut sleep)
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let key = global_key(&sleep);
        assert!(GlobalTimers::get().contains(key));
        drop(sleep);
        assert!(!GlobalTimers::get().contains(key));
        thread::sleep(Duration::from_millis(30));
        assert_eq!(counter.1.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn reset_keeps_the_waker_and_moves_the_deadline() {
        let counter = Arc::new(Unpark(thread::current(), AtomicUsize::new(0)));
        let waker = Waker::from(counter.clone());
        let mut sleep = sleep(Duration::from_secs(3_600));
        assert!(
            Pin::new(&mut sleep)
                .poll(&mut Context::from_waker(&waker))
                .is_pending()
        );
        let soon = Instant::now() + Duration::from_millis(10);
        Pin::new(&mut sleep).reset(soon);
        // Woken at the new deadline without being polled in between.
        while counter.1.load(Ordering::SeqCst) == 0 {
            thread::park_timeout(Duration::from_millis(100));
        }
        assert!(Instant::now() >= soon);
        let mut cx = Context::from_waker(&waker);
        assert_eq!(Pin::new(&mut sleep).poll(&mut cx), Poll::Ready(()));
        // Reset after completion re-arms it.
        Pin::new(&mut sleep).reset(Instant::now() + Duration::from_secs(3_600));
        assert!(!sleep.is_elapsed());
        assert!(Pin::new(&mut sleep).poll(&mut cx).is_pending());
    }

    #[test]
    fn sleep_is_send_sync_unpin_and_moves_between_threads() {
        fn assert_traits<T: Send + Sync + Unpin>() {}
        assert_traits::<Sleep>();
        let mut sleep = sleep(Duration::from_millis(20));
        assert!(
            Pin::new(&mut sleep)
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
        let deadline = sleep.deadline();
        thread::spawn(move || {
            block_on(sleep);
            assert!(Instant::now() >= deadline);
        })
        .join()
        .unwrap();
    }
}
