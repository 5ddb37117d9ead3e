//! Workload 2: two coroutines exchange a token, N round trips. Each executor gets the same
//! one-slot rendezvous (so the executor's wake path is what differs), and tokio also gets
//! its own `mpsc::channel(1)`, the way a tokio program would write it.

use std::cell::Cell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use crate::common::block_on;
use crate::harness::{Contestant, Group, GroupResult, Role, Sample, measure, run_group};

/// A single-threaded one-value rendezvous: `send` stores the value and wakes the receiver.
/// Allocation-free after the receiver's waker is first cloned.
#[derive(Default)]
pub struct Slot {
    value: Cell<Option<u64>>,
    waiter: Cell<Option<Waker>>,
}

impl Slot {
    pub fn send(&self, v: u64) {
        self.value.set(Some(v));
        if let Some(w) = self.waiter.take() {
            w.wake();
        }
    }

    pub async fn recv(&self) -> u64 {
        poll_fn(|cx| match self.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                let w = match self.waiter.take() {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                self.waiter.set(Some(w));
                Poll::Pending
            }
        })
        .await
    }
}

/// The two directions of one ping-pong.
#[derive(Default)]
pub struct Pair {
    pub there: Slot,
    pub back: Slot,
}

pub async fn ping(pair: &Pair, n: u64) -> u64 {
    let mut token = 0;
    for _ in 0..n {
        pair.there.send(token);
        token = pair.back.recv().await;
    }
    token
}

pub async fn pong(pair: &Pair, n: u64) {
    for _ in 0..n {
        let v = pair.there.recv().await;
        pair.back.send(v + 1);
    }
}

fn tokio_mpsc(rt: &tokio::runtime::Runtime, n: u64) -> Sample {
    measure(n, || {
        rt.block_on(async {
            let (there_tx, mut there_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let (back_tx, mut back_rx) = tokio::sync::mpsc::channel::<u64>(1);
            let pinger = tokio::spawn(async move {
                let mut token = 0;
                for _ in 0..n {
                    there_tx.send(token).await.expect("pong alive");
                    token = back_rx.recv().await.expect("pong alive");
                }
                token
            });
            let ponger = tokio::spawn(async move {
                while let Some(v) = there_rx.recv().await {
                    back_tx.send(v + 1).await.expect("ping alive");
                }
            });
            let token = pinger.await.expect("ping");
            ponger.await.expect("pong");
            assert_eq!(token, n);
        })
    })
    .1
}

fn tokio_local(rt: &tokio::runtime::Runtime, n: u64) -> Sample {
    let local = tokio::task::LocalSet::new();
    measure(n, || {
        local.block_on(rt, async {
            let pair = Rc::new(Pair::default());
            let p = pair.clone();
            let pinger = tokio::task::spawn_local(async move { ping(&p, n).await });
            let ponger = tokio::task::spawn_local(async move { pong(&pair, n).await });
            assert_eq!(pinger.await.expect("ping"), n);
            ponger.await.expect("pong");
        })
    })
    .1
}

fn local_executor(n: u64) -> Sample {
    measure(n, || {
        let pair = Pair::default();
        let ex = async_executor::LocalExecutor::new();
        block_on(ex.run(async {
            let pinger = ex.spawn(ping(&pair, n));
            let ponger = ex.spawn(pong(&pair, n));
            assert_eq!(pinger.await, n);
            ponger.await;
        }))
    })
    .1
}

fn ours_nursery(rt: &structured_async::Runtime, n: u64) -> Sample {
    measure(n, || {
        let pair = Pair::default();
        rt.block_on(structured_async::nursery!(|s| {
            let pinger = s.spawn(ping(&pair, n));
            s.spawn(pong(&pair, n));
            assert_eq!(pinger.await, n);
        }));
    })
    .1
}

fn ours_spawn_local(rt: &structured_async::Runtime, n: u64) -> Sample {
    measure(n, || {
        rt.block_on(async {
            let pair = Rc::new(Pair::default());
            let p = pair.clone();
            let pinger = structured_async::spawn_local(async move { ping(&p, n).await });
            let ponger = structured_async::spawn_local(async move { pong(&pair, n).await });
            assert_eq!(pinger.await, n);
            ponger.await;
        })
    })
    .1
}

/// Runs this workload.
pub fn run(quick: bool, rounds: usize) -> Vec<GroupResult> {
    let n = if quick { 200_000 } else { 1_000_000 };
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let rt2 = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    let ours = structured_async::Runtime::new();
    let ours2 = structured_async::Runtime::new();
    let contestants = vec![
        Contestant::new(
            "ours, nursery!, one-slot rendezvous",
            Role::Ours,
            move || ours_nursery(&ours2, n),
        ),
        Contestant::new(
            "ours, spawn_local, one-slot rendezvous",
            Role::Ours,
            move || ours_spawn_local(&ours, n),
        ),
        Contestant::new(
            "tokio current-thread, mpsc::channel(1)",
            Role::Peer,
            move || tokio_mpsc(&rt, n),
        ),
        Contestant::new(
            "tokio LocalSet, one-slot rendezvous",
            Role::Peer,
            move || tokio_local(&rt2, n),
        ),
        Contestant::new(
            "async-executor LocalExecutor, one-slot rendezvous",
            Role::Peer,
            move || local_executor(n),
        ),
    ];
    vec![run_group(
        Group {
            workload: "wake ping-pong",
            case: format!("{n} round trips"),
            unit: "round trip",
            contestants,
        },
        rounds,
    )]
}
