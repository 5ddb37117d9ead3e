//! While only a far deadline is pending the executor's thread sleeps: its CPU time stays far
//! below the wall time (a spinning loop would burn all of it). Linux only: the thread's CPU
//! time is read from `/proc/thread-self/stat`.
#![cfg(target_os = "linux")]

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use structured_async::{ParkHint, Runtime, Subsystem, block_on, time::sleep};

/// CPU time (user + system) of the calling thread, in clock ticks (10 ms each on Linux).
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("procfs");
    // Fields after the command name (which is in parentheses and may contain spaces):
    // state is field 3, utime field 14, stime field 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Runs `f`, returning (CPU ticks, wall time) it took on this thread.
fn measure(f: impl FnOnce()) -> (u64, Duration) {
    let (cpu, wall) = (thread_cpu_ticks(), Instant::now());
    f();
    (thread_cpu_ticks() - cpu, wall.elapsed())
}

/// One waiter, one deadline, no ready_hint, no fd: the loop can only park the thread.
struct Alarm {
    at: Instant,
    waiter: Cell<Option<Waker>>,
    polls: Cell<usize>,
}

impl Subsystem for Alarm {
    fn poll(&self, now: Instant) -> usize {
        self.polls.set(self.polls.get() + 1);
        match self.waiter.take() {
            Some(w) if now >= self.at => {
                w.wake();
                1
            }
            other => {
                self.waiter.set(other);
                0
            }
        }
    }
    fn waiters(&self) -> usize {
        let w = self.waiter.take();
        let n = usize::from(w.is_some());
        self.waiter.set(w);
        n
    }
    fn park_hint(&self) -> ParkHint {
        ParkHint::Deadline(self.at)
    }
}

#[test]
fn the_thread_sleeps_while_only_a_far_deadline_is_pending() {
    const WAIT: Duration = Duration::from_millis(400);

    // A subsystem of our own with a deadline.
    let alarm = Rc::new(Alarm {
        at: Instant::now() + WAIT,
        waiter: Cell::new(None),
        polls: Cell::new(0),
    });
    let rt = Runtime::builder().subsystem(Rc::clone(&alarm), 1).build();
    let (cpu, wall) = measure(|| {
        rt.block_on(poll_fn(|cx| {
            if Instant::now() >= alarm.at {
                return Poll::Ready(());
            }
            alarm.waiter.set(Some(cx.waker().clone()));
            Poll::Pending
        }))
    });
    assert!(
        Instant::now() >= alarm.at,
        "returned at the deadline, not before"
    );
    // About 40 ticks of wall time; a spinning loop would use about all of them.
    assert!(cpu <= 10, "used {cpu} ticks of CPU in {wall:?}");
    assert!(alarm.polls.get() <= 3, "polled {} times", alarm.polls.get());

    // The default runtime's timers, through `sleep`.
    let (cpu, wall) = measure(|| block_on(sleep(WAIT)));
    assert!(wall >= WAIT);
    assert!(cpu <= 10, "sleep used {cpu} ticks of CPU in {wall:?}");
}
