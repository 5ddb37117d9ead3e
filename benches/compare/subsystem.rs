//! Workload 5: K coroutines wait on one busy-polled source, each for a message addressed to
//! it. The source is the runtime's SPSC ring (`subsystem::ring`); messages arrive one at a
//! time in a shuffled order: each receiver, when its message arrives, pushes the next one.
//!
//! Ours: the ring registered as a subsystem, each coroutine parked in its mailbox; the loop
//! drains the ring and wakes exactly the addressee. Naive: each coroutine drains the ring
//! itself on every poll, takes its message if there, else wakes itself and returns
//! `Pending` — on tokio's current-thread runtime and on ours. Reported: ring drains ("source
//! checks") per completed wait, and ns per completion (a short run's sample is the fastest of
//! a few runs: see `runs`).

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use structured_async::Subsystem as _;
use structured_async::subsystem::ring::{self, Address, Producer, Receiver, Ring};

use crate::harness::{Contestant, Group, GroupResult, Rng, Role, Sample, measure, run_group};

/// The shared state of one run: who gets the next message.
struct Relay {
    producer: RefCell<Producer<u64>>,
    order: Vec<Address>,
    next: Cell<usize>,
}

impl Relay {
    /// Pushes the next message, if any is left.
    fn push_next(&self) {
        let i = self.next.get();
        if let Some(&to) = self.order.get(i) {
            self.next.set(i + 1);
            self.producer
                .borrow_mut()
                .push(to, i as u64)
                .map_err(|_| ())
                .expect("ring has room");
        }
    }
}

/// A fresh ring with `k` receivers, the relay that feeds them in a shuffled order, and the
/// first message already pushed.
fn setup(k: usize) -> (Rc<Ring<u64>>, Vec<Receiver<u64>>, Rc<Relay>) {
    let (producer, ring) = ring::channel::<u64>(64);
    let receivers: Vec<_> = (0..k).map(|_| ring.receiver()).collect();
    let mut order: Vec<Address> = receivers.iter().map(Receiver::address).collect();
    let mut rng = Rng::new(0xd15_7a7c4 ^ k as u64);
    for i in (1..order.len()).rev() {
        order.swap(i, rng.below_or_eq(i as u64) as usize);
    }
    let relay = Rc::new(Relay {
        producer: RefCell::new(producer),
        order,
        next: Cell::new(0),
    });
    relay.push_next();
    (ring, receivers, relay)
}

/// Waits for this receiver's message the naive way: drain the source on every poll.
async fn naive_wait(ring: &Ring<u64>, receiver: &mut Receiver<u64>, now: Instant) -> u64 {
    poll_fn(|cx| {
        ring.poll(now);
        match receiver.try_recv() {
            Some(v) => Poll::Ready(v),
            None => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
    })
    .await
}

/// One sample: `reps` independent rings of `k` waiters each, built before the clock starts
/// and handed one by one to `wait_all`; reports ring drains per completed wait.
/// `prepare` builds per-ring state (a runtime with the ring registered) before the clock too.
///
/// A sample is the fastest of up to [`ATTEMPTS`] such runs when they are shorter than
/// [`FASTEST_UNDER`] (every contestant at K = 1 and 100, ours at K = 10,000), else one run.
/// A short run is as long as a time slice (~2 ms at K = 10,000), and at K = 10,000 it misses
/// the L2 a few times per completion: on a loaded machine one such run in two was preempted or
/// shared the caches with another process's burst and took 1.3-6x as long as the quiet ones.
/// The fastest of a few is the quiet cost; longer runs average over such bursts anyway.
fn runs<P>(
    k: usize,
    reps: usize,
    prepare: impl Fn(&Rc<Ring<u64>>) -> P,
    mut wait_all: impl FnMut(&P, Rc<Ring<u64>>, Vec<Receiver<u64>>, Rc<Relay>),
) -> Sample {
    let mut fastest = run_once(k, reps, &prepare, &mut wait_all);
    for _ in 1..ATTEMPTS {
        let took = Duration::from_nanos((fastest.ns_per_op * (k * reps) as f64) as u64);
        if took >= FASTEST_UNDER {
            break;
        }
        let sample = run_once(k, reps, &prepare, &mut wait_all);
        if sample.ns_per_op < fastest.ns_per_op {
            fastest = sample;
        }
    }
    fastest
}

/// How many runs make one sample of a short run (see [`runs`]).
const ATTEMPTS: usize = 5;

/// Runs at least this long make a sample alone (see [`runs`]).
const FASTEST_UNDER: Duration = Duration::from_millis(50);

/// One run of [`runs`].
fn run_once<P>(
    k: usize,
    reps: usize,
    prepare: &impl Fn(&Rc<Ring<u64>>) -> P,
    wait_all: &mut impl FnMut(&P, Rc<Ring<u64>>, Vec<Receiver<u64>>, Rc<Relay>),
) -> Sample {
    let sets: Vec<_> = (0..reps)
        .map(|_| {
            let (ring, receivers, relay) = setup(k);
            (prepare(&ring), ring, receivers, relay)
        })
        .collect();
    let rings: Vec<_> = sets.iter().map(|(_, ring, _, _)| ring.clone()).collect();
    let before: u64 = rings.iter().map(|r| r.polls()).sum();
    // The prepared state is dropped after the clock stops.
    let (_prepared, s) = measure((k * reps) as u64, || {
        let mut kept = Vec::with_capacity(reps);
        for (prepared, ring, receivers, relay) in sets {
            wait_all(&prepared, ring, receivers, relay);
            kept.push(prepared);
        }
        kept
    });
    let after: u64 = rings.iter().map(|r| r.polls()).sum();
    s.with(
        "source checks / completion",
        (after - before) as f64 / (k * reps) as f64,
    )
}

fn naive_tokio(rt: &tokio::runtime::Runtime, k: usize, reps: usize) -> Sample {
    let local = tokio::task::LocalSet::new();
    let now = Instant::now();
    runs(
        k,
        reps,
        |_| (),
        |&(), ring, receivers, relay| {
            local.block_on(rt, async {
                let handles: Vec<_> = receivers
                    .into_iter()
                    .map(|mut r| {
                        let (ring, relay) = (ring.clone(), relay.clone());
                        tokio::task::spawn_local(async move {
                            naive_wait(&ring, &mut r, now).await;
                            relay.push_next();
                        })
                    })
                    .collect();
                for h in handles {
                    h.await.expect("waiter");
                }
            });
        },
    )
}

fn naive_ours(rt: &structured_async::Runtime, k: usize, reps: usize) -> Sample {
    let now = Instant::now();
    runs(
        k,
        reps,
        |_| (),
        |&(), ring, receivers, relay| {
            rt.block_on(async {
                let handles: Vec<_> = receivers
                    .into_iter()
                    .map(|mut r| {
                        let (ring, relay) = (ring.clone(), relay.clone());
                        structured_async::spawn_local(async move {
                            naive_wait(&ring, &mut r, now).await;
                            relay.push_next();
                        })
                    })
                    .collect();
                for h in handles {
                    h.await;
                }
            });
        },
    )
}

fn subsystem_spawn_local(k: usize, reps: usize) -> Sample {
    let registered = |ring: &Rc<Ring<u64>>| {
        structured_async::Runtime::builder()
            .subsystem(ring.clone(), 1)
            .build()
    };
    runs(k, reps, registered, |rt, _ring, receivers, relay| {
        rt.block_on(async {
            let handles: Vec<_> = receivers
                .into_iter()
                .map(|mut r| {
                    let relay = relay.clone();
                    structured_async::spawn_local(async move {
                        r.recv().await.expect("message");
                        relay.push_next();
                    })
                })
                .collect();
            for h in handles {
                h.await;
            }
        });
    })
}

fn subsystem_nursery(k: usize, reps: usize) -> Sample {
    let registered = |ring: &Rc<Ring<u64>>| {
        structured_async::Runtime::builder()
            .subsystem(ring.clone(), 1)
            .build()
    };
    runs(k, reps, registered, |rt, _ring, receivers, relay| {
        let relay = &relay;
        rt.block_on(structured_async::nursery!(|s| {
            // Each child owns its receiver, as the tasks of the other contestants do.
            for mut r in receivers {
                drop(s.spawn(async move {
                    r.recv().await.expect("message");
                    relay.push_next();
                }));
            }
        }));
    })
}

/// Runs this workload.
pub fn run(_quick: bool, rounds: usize) -> Vec<GroupResult> {
    let mut out = Vec::new();
    for k in [1usize, 100, 10_000] {
        let tokio_rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio");
        let ours_rt = structured_async::Runtime::new();
        // Small K repeats the experiment so one sample is not a single wake.
        let reps = (1_000 / k).max(1);
        let contestants = vec![
            Contestant::new("ours, ring subsystem (nursery!)", Role::Ours, move || {
                subsystem_nursery(k, reps)
            }),
            Contestant::new(
                "ours, ring subsystem (spawn_local)",
                Role::Ours,
                move || subsystem_spawn_local(k, reps),
            ),
            Contestant::new(
                "naive busy-poll on tokio (LocalSet)",
                Role::Peer,
                move || naive_tokio(&tokio_rt, k, reps),
            ),
            Contestant::new(
                "naive busy-poll on ours (spawn_local)",
                Role::Peer,
                move || naive_ours(&ours_rt, k, reps),
            ),
        ];
        // K = 10,000 naive costs ~K²/4 drains per run: fewer rounds keep the quick run short.
        let rounds = if k >= 10_000 { rounds.min(3) } else { rounds };
        out.push(run_group(
            Group {
                workload: "subsystem dedup",
                case: format!("K = {k}"),
                unit: "completion",
                contestants,
            },
            rounds,
        ));
    }
    out
}
