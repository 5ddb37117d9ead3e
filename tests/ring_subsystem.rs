//! The busy-polled ring subsystem on the runtime: messages from another thread reach exactly
//! their receivers, and however many receivers wait, the ring is polled once per loop turn.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use structured_async::subsystem::ring::{self, Address};
use structured_async::{ParkHint, Runtime, Subsystem, spawn_local};

/// Counts loop turns: busy with one waiter and the same weight as the ring with all its
/// receivers waiting, so the loop polls it on every turn (and never parks).
struct TurnCounter {
    turns: Cell<u64>,
    active: Cell<bool>,
}

impl Subsystem for TurnCounter {
    fn poll(&self, _now: Instant) -> usize {
        self.turns.set(self.turns.get() + 1);
        0
    }
    fn waiters(&self) -> usize {
        usize::from(self.active.get())
    }
    fn park_hint(&self) -> ParkHint {
        ParkHint::Busy
    }
    fn ready_hint(&self) -> bool {
        false
    }
}

/// K receivers wait; after a pause the producer sends one message to each. Returns (ring
/// polls, loop turns) while they waited.
fn polls_and_turns(k: usize) -> (u64, u64) {
    let (mut producer, ring) = ring::channel::<usize>(64);
    let counter = Rc::new(TurnCounter {
        turns: Cell::new(0),
        active: Cell::new(true),
    });
    let rt = Runtime::builder()
        .subsystem(ring.clone(), 1)
        .subsystem(counter.clone(), u32::try_from(k).unwrap())
        .build();
    let mut receivers: Vec<_> = (0..k).map(|_| ring.receiver()).collect();
    let addresses: Vec<Address> = receivers.iter().map(|r| r.address()).collect();
    let producer_thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        for (value, &to) in addresses.iter().enumerate() {
            while producer.push(to, value).is_err() {
                std::hint::spin_loop();
            }
        }
    });
    let got = rt.block_on(async {
        let handles: Vec<_> = receivers
            .drain(..)
            .map(|mut receiver| spawn_local(async move { receiver.recv().await }))
            .collect();
        let mut got = Vec::new();
        for handle in handles {
            got.push(handle.await);
        }
        counter.active.set(false);
        got
    });
    producer_thread.join().unwrap();
    // Exactly the addressed receiver got each message.
    assert_eq!(got, (0..k).map(Some).collect::<Vec<_>>());
    (ring.polls(), counter.turns.get())
}

#[test]
fn k_waiting_receivers_cost_one_ring_poll_per_turn() {
    for k in [1, 100, 1000] {
        let (polls, turns) = polls_and_turns(k);
        eprintln!("{k} receivers: {polls} ring polls in {turns} loop turns");
        assert!(turns > 10, "the loop spun while the receivers waited");
        // A poll per turn, plus at most one extra between task polls per message arrival
        // (the `ready_hint` fast path). Receivers polling the ring themselves would cost K
        // polls per turn.
        assert!(
            polls <= turns + k as u64,
            "{k} receivers: {polls} ring polls in {turns} turns"
        );
    }
}

#[test]
fn stream_from_another_thread_arrives_complete_and_in_order() {
    const RECEIVERS: usize = 8;
    const MESSAGES: u64 = 20_000;
    let (mut producer, ring) = ring::channel::<u64>(16);
    let rt = Runtime::builder().subsystem(ring.clone(), 1).build();
    let receivers: Vec<_> = (0..RECEIVERS).map(|_| ring.receiver()).collect();
    let addresses: Vec<Address> = receivers.iter().map(|r| r.address()).collect();
    let producer_thread = std::thread::spawn(move || {
        for i in 0..MESSAGES {
            let to = addresses[i as usize % RECEIVERS];
            while producer.push(to, i).is_err() {
                std::thread::yield_now();
            }
        }
        // Dropping the producer ends every receiver's stream.
    });
    let sums = rt.block_on(async {
        let handles: Vec<_> = receivers
            .into_iter()
            .enumerate()
            .map(|(r, mut receiver)| {
                spawn_local(async move {
                    let (mut sum, mut expected) = (0u64, r as u64);
                    while let Some(i) = receiver.recv().await {
                        assert_eq!(i, expected, "receiver {r} out of order");
                        expected += RECEIVERS as u64;
                        sum += i;
                    }
                    sum
                })
            })
            .collect();
        let mut sums = Vec::new();
        for handle in handles {
            sums.push(handle.await);
        }
        sums
    });
    producer_thread.join().unwrap();
    assert_eq!(sums.iter().sum::<u64>(), MESSAGES * (MESSAGES - 1) / 2);
    assert_eq!(ring.waiters(), 0);
    assert_eq!(
        ring.park_hint(),
        ParkHint::Idle,
        "no busy polling once nobody waits"
    );
}

#[test]
fn only_receivers_whose_message_arrived_are_woken() {
    // 100 receiver tasks count their polls; the producer writes to every third one. A woken
    // receiver is polled twice (park, then receive); the others only once, to park.
    const K: usize = 100;
    let (mut producer, ring) = ring::channel::<usize>(128);
    let rt = Runtime::builder().subsystem(ring.clone(), 1).build();
    let receivers: Vec<_> = (0..K).map(|_| ring.receiver()).collect();
    let addresses: Vec<Address> = receivers.iter().map(|r| r.address()).collect();
    let polls: Rc<Vec<Cell<u32>>> = Rc::new((0..K).map(|_| Cell::new(0)).collect());
    let got: Rc<Vec<Cell<Option<usize>>>> = Rc::new((0..K).map(|_| Cell::new(None)).collect());
    rt.block_on(async {
        for (i, mut receiver) in receivers.into_iter().enumerate() {
            let (polls, got) = (polls.clone(), got.clone());
            let _detached = spawn_local(async move {
                let mut recv = std::pin::pin!(receiver.recv());
                let message = std::future::poll_fn(|cx| {
                    polls[i].set(polls[i].get() + 1);
                    recv.as_mut().poll(cx)
                })
                .await;
                got[i].set(message);
            });
        }
        structured_async::yield_now().await;
        assert_eq!(ring.waiters(), K);
        let sender = std::thread::spawn(move || {
            for (i, &to) in addresses.iter().enumerate().step_by(3) {
                producer.push(to, i).expect("room for every message");
            }
            producer // kept alive: the other receivers must stay parked
        });
        let producer = sender.join().unwrap();
        let woken = K.div_ceil(3);
        while ring.waiters() > K - woken {
            structured_async::yield_now().await;
        }
        // Let the woken tasks run.
        while got.iter().filter(|g| g.get().is_some()).count() < woken {
            structured_async::yield_now().await;
        }
        drop(producer);
    });
    for i in 0..K {
        let addressed = i % 3 == 0;
        assert_eq!(got[i].get(), addressed.then_some(i), "receiver {i}");
        assert_eq!(
            polls[i].get(),
            if addressed { 2 } else { 1 },
            "receiver {i}"
        );
    }
}
