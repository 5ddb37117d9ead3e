//! [`timeout`]: a future raced against a [`Sleep`].

use super::sleep::{Sleep, sleep, sleep_until};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Runs `future` for at most `duration`: `Ok` with its output if it finishes first,
/// `Err(Elapsed)` otherwise, dropping (cancelling) it.
///
/// The future is polled before the timer, so one that is ready at once wins even with a zero
/// duration.
///
/// ```
/// use std::time::Duration;
/// use structured_async_runtime::block_on;
/// use structured_async_runtime::time::{sleep, timeout};
///
/// block_on(async {
/// assert_eq!(timeout(Duration::from_secs(5), async { 7 }).await, Ok(7));
/// let slow = sleep(Duration::from_secs(5));
/// assert!(timeout(Duration::from_millis(10), slow).await.is_err());
/// });
/// ```
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

/// Like [`timeout`], with an instant as the deadline.
///
/// ```
/// use std::time::{Duration, Instant};
/// use structured_async_runtime::time::timeout_at;
///
/// let deadline = Instant::now() + Duration::from_secs(1);
/// let guarded = timeout_at(deadline, async { "done" });
/// assert_eq!(guarded.deadline(), deadline);
/// ```
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep_until(deadline),
    }
}

pin_project_lite::pin_project! {
    /// The future returned by [`timeout`] and [`timeout_at`].
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use structured_async_runtime::time::timeout;
    ///
    /// let guarded = timeout(Duration::from_secs(1), async { 1 });
    /// assert!(guarded.deadline() > Instant::now());
    /// ```
    #[derive(Debug)]
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<F> {
        #[pin]
        future: F,
        sleep: Sleep,
    }
}

impl<F> Timeout<F> {
    /// The instant after which the future is abandoned.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// use structured_async_runtime::time::timeout;
    ///
    /// assert!(timeout(Duration::from_secs(1), async {}).deadline() > Instant::now());
    /// ```
    pub fn deadline(&self) -> Instant {
        self.sleep.deadline()
    }

    /// The guarded future.
    ///
    /// ```
    /// use std::time::Duration;
    /// use structured_async_runtime::time::timeout;
    ///
    /// let guarded = timeout(Duration::from_secs(1), std::future::ready(3));
    /// assert!(format!("{:?}", guarded.get_ref()).contains('3'));
    /// ```
    pub fn get_ref(&self) -> &F {
        &self.future
    }

    /// The guarded future, mutably.
    ///
    /// ```
    /// use std::time::Duration;
    /// use structured_async_runtime::time::timeout;
    ///
    /// let mut guarded = timeout(Duration::from_secs(1), std::future::ready(3));
    /// let _inner: &mut std::future::Ready<i32> = guarded.get_mut();
    /// ```
    pub fn get_mut(&mut self) -> &mut F {
        &mut self.future
    }

    /// Gives the guarded future back, cancelling the timer.
    ///
    /// ```
    /// use std::time::Duration;
    /// use structured_async_runtime::time::timeout;
    ///
    /// let inner: std::future::Ready<i32> =
    ///     timeout(Duration::from_secs(1), std::future::ready(3)).into_inner();
    /// # let _ = inner;
    /// ```
    pub fn into_inner(self) -> F {
        self.future
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Ok(output));
        }
        Pin::new(this.sleep).poll(cx).map(|()| Err(Elapsed(())))
    }
}

/// The error of a [`timeout`] whose deadline passed before its future finished.
///
/// ```
/// use std::time::Duration;
/// use structured_async_runtime::time::{Elapsed, sleep, timeout};
///
/// fn describe(result: Result<(), Elapsed>) -> String {
///     match result {
///         Ok(()) => "in time".into(),
///         Err(elapsed) => elapsed.to_string(),
///     }
/// }
/// # let _ = (describe, timeout(Duration::ZERO, sleep(Duration::ZERO)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Elapsed(());

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}
