//! A hand-written enum state machine implements `Coroutine`: it can be resumed step by step,
//! run as a future once it never yields, and await a sub-future (here a task's join handle)
//! held inline in one of its states. Every future is a coroutine as well.

use std::convert::Infallible;
use std::pin::{Pin, pin};
use std::task::{Context, Poll, Waker};
use structured_async::{
    Coroutine, CoroutineExt, JoinHandle, Step, block_on, spawn_local, yield_now,
};

/// Yields the running sum of `items`, then completes with the count.
enum RunningSum<'a> {
    Start(&'a [u32]),
    Summing {
        rest: &'a [u32],
        sum: u32,
        count: usize,
    },
    Done,
}

impl Coroutine for RunningSum<'_> {
    type Yield = u32;
    type Output = usize;

    fn resume(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Step<u32, usize> {
        let state = std::mem::replace(&mut *self, RunningSum::Done);
        let (rest, sum, count) = match state {
            RunningSum::Start(items) => (items, 0, 0),
            RunningSum::Summing { rest, sum, count } => (rest, sum, count),
            RunningSum::Done => panic!("resumed after completion"),
        };
        match rest.split_first() {
            Some((x, rest)) => {
                let sum = sum + x;
                *self = RunningSum::Summing {
                    rest,
                    sum,
                    count: count + 1,
                };
                Step::Yielded(sum)
            }
            None => Step::Complete(count),
        }
    }
}

#[test]
fn a_hand_written_enum_is_resumed_step_by_step() {
    let data = [3, 4, 5];
    let mut c = pin!(RunningSum::Start(&data));
    let mut cx = Context::from_waker(Waker::noop());
    let mut steps = Vec::new();
    loop {
        match c.as_mut().resume(&mut cx) {
            Step::Yielded(sum) => steps.push(sum),
            Step::Complete(count) => {
                assert_eq!(count, 3);
                break;
            }
            Step::Pending => panic!("never pending"),
        }
    }
    assert_eq!(steps, [3, 7, 12]);
}

/// Doubles the output of a spawned task: spawns it on the first resume, then waits on its
/// handle, which lives inline in the `Waiting` state.
enum DoubleOf<F: Future<Output = u32> + 'static> {
    Spawn(Option<F>),
    Waiting(JoinHandle<u32>),
    Done,
}

impl<F: Future<Output = u32> + 'static> Unpin for DoubleOf<F> {}

impl<F: Future<Output = u32> + 'static> Coroutine for DoubleOf<F> {
    type Yield = Infallible;
    type Output = u32;

    fn resume(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Step<Infallible, u32> {
        loop {
            match &mut *self {
                DoubleOf::Spawn(f) => {
                    let handle = spawn_local(f.take().expect("spawned once"));
                    *self = DoubleOf::Waiting(handle);
                }
                DoubleOf::Waiting(handle) => {
                    return match Pin::new(handle).poll(cx) {
                        Poll::Pending => Step::Pending,
                        Poll::Ready(v) => {
                            *self = DoubleOf::Done;
                            Step::Complete(v * 2)
                        }
                    };
                }
                DoubleOf::Done => panic!("resumed after completion"),
            }
        }
    }
}

#[test]
fn a_coroutine_that_never_yields_runs_as_a_future_on_the_runtime() {
    let out = block_on(
        DoubleOf::Spawn(Some(async {
            yield_now().await;
            21
        }))
        .into_awaitable(),
    );
    assert_eq!(out, 42);
}

#[test]
fn any_future_is_a_coroutine_that_completes_without_yielding() {
    let mut f = pin!(async {
        yield_now().await;
        "done"
    });
    let mut cx = Context::from_waker(Waker::noop());
    // Outside a runtime yield_now still works: it wakes (a no-op waker here) and pends once.
    assert!(f.as_mut().resume(&mut cx).is_pending());
    assert_eq!(f.as_mut().resume(&mut cx), Step::Complete("done"));
}
