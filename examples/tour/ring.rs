//! A busy-polled subsystem: an SPSC ring filled by another thread, polled once per loop turn
//! however many receivers wait on it.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};
use structured_async::subsystem::ring::{self, Address};
use structured_async::{ParkHint, Runtime, Subsystem, spawn_local};

/// Counts the loop's turns: a busy subsystem as heavy as the ring, so polled every turn.
struct Turns(Cell<u64>, Cell<bool>);

impl Subsystem for Turns {
    fn poll(&self, _now: Instant) -> usize {
        self.0.set(self.0.get() + 1);
        0
    }
    fn waiters(&self) -> usize {
        usize::from(self.1.get())
    }
    fn park_hint(&self) -> ParkHint {
        ParkHint::Busy
    }
}

pub fn run() {
    println!("\n== ring: a busy-polled subsystem ==");
    for receivers in [1usize, 100, 1000] {
        let (mut producer, ring) = ring::channel::<u64>(256);
        let turns = Rc::new(Turns(Cell::new(0), Cell::new(true)));
        let rt = Runtime::builder()
            .subsystem(ring.clone(), 1)
            .subsystem(turns.clone(), receivers as u32)
            .build();
        let mut waiting: Vec<_> = (0..receivers).map(|_| ring.receiver()).collect();
        let addresses: Vec<Address> = waiting.iter().map(|r| r.address()).collect();
        let thread = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            for (i, &to) in addresses.iter().enumerate() {
                while producer.push(to, i as u64).is_err() {
                    std::hint::spin_loop();
                }
            }
        });
        let delivered: usize = rt.block_on(async {
            let handles: Vec<_> = waiting
                .drain(..)
                .enumerate()
                .map(|(i, mut r)| spawn_local(async move { r.recv().await == Some(i as u64) }))
                .collect();
            let mut delivered = 0;
            for handle in handles {
                delivered += usize::from(handle.await);
            }
            turns.1.set(false);
            delivered
        });
        thread.join().expect("producer thread");
        println!(
            "{receivers} {}: {} ring polls in {} loop turns (one drain serves every waiting receiver, \
             not one poll per receiver); {delivered} of {receivers} got their own message",
            if receivers == 1 {
                "receiver"
            } else {
                "receivers"
            },
            ring.polls(),
            turns.0.get()
        );
    }
}
