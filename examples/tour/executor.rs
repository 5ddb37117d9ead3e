//! The executor: a hand-written coroutine resumed by hand, tasks spawned and joined on the
//! local runtime, and the poll loop giving subsystems turns by priority × waiters.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::pin::{Pin, pin};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use structured_async::{
    Coroutine, ParkHint, Runtime, Step, Subsystem, block_on, spawn_local, yield_now,
};

/// A traffic light as an explicit state machine: each resume moves to the next colour and
/// yields it; after `cycles` reds it completes.
enum TrafficLight {
    Red { cycles_left: u32 },
    Green { cycles_left: u32 },
    Amber { cycles_left: u32 },
}

impl Coroutine for TrafficLight {
    type Yield = &'static str;
    type Output = &'static str;
    fn resume(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Step<&'static str, &'static str> {
        match *self {
            TrafficLight::Red { cycles_left: 0 } => Step::Complete("switched off"),
            TrafficLight::Red { cycles_left } => {
                *self = TrafficLight::Green { cycles_left };
                Step::Yielded("green")
            }
            TrafficLight::Green { cycles_left } => {
                *self = TrafficLight::Amber { cycles_left };
                Step::Yielded("amber")
            }
            TrafficLight::Amber { cycles_left } => {
                *self = TrafficLight::Red {
                    cycles_left: cycles_left - 1,
                };
                Step::Yielded("red")
            }
        }
    }
}

/// A busy-polled subsystem that counts its polls and wakes its waiters on the `fire_on`th.
struct Counter {
    waiters: RefCell<Vec<Waker>>,
    polls: Cell<usize>,
    fire_on: usize,
}

impl Counter {
    fn new(fire_on: usize) -> Rc<Self> {
        Rc::new(Counter {
            waiters: RefCell::default(),
            polls: Cell::new(0),
            fire_on,
        })
    }

    /// Waits until the counter fires.
    fn wait(self: &Rc<Self>) -> impl Future<Output = ()> + 'static {
        let this = Rc::clone(self);
        let mut registered = false;
        poll_fn(move |cx| {
            if this.polls.get() >= this.fire_on {
                return Poll::Ready(());
            }
            if !registered {
                registered = true;
                this.waiters.borrow_mut().push(cx.waker().clone());
            }
            Poll::Pending
        })
    }
}

impl Subsystem for Counter {
    fn poll(&self, _now: Instant) -> usize {
        self.polls.set(self.polls.get() + 1);
        if self.polls.get() < self.fire_on {
            return 0;
        }
        let woken = std::mem::take(&mut *self.waiters.borrow_mut());
        woken.iter().for_each(Waker::wake_by_ref);
        woken.len()
    }
    fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }
    fn park_hint(&self) -> ParkHint {
        ParkHint::Busy
    }
    fn ready_hint(&self) -> bool {
        false
    }
}

pub fn run() {
    println!("\n== executor: coroutines, tasks, subsystems ==");

    // 1. A hand-written coroutine, resumed step by step.
    let mut light = pin!(TrafficLight::Red { cycles_left: 2 });
    let mut cx = Context::from_waker(Waker::noop());
    let mut steps = Vec::new();
    let done = loop {
        match light.as_mut().resume(&mut cx) {
            Step::Yielded(colour) => steps.push(colour),
            Step::Complete(end) => break end,
            Step::Pending => unreachable!("a traffic light never waits"),
        }
    };
    println!(
        "hand-written enum coroutine ({} bytes): {} -> {done}",
        size_of::<TrafficLight>(),
        steps.join(" -> ")
    );

    // 2. spawn_local + join: tasks need not be Send; a panic stays in its JoinHandle.
    let shared = Rc::new(Cell::new(0));
    let total = block_on(async {
        let handles: Vec<_> = (1..=4)
            .map(|i| {
                let shared = Rc::clone(&shared);
                spawn_local(async move {
                    for _ in 0..i {
                        yield_now().await;
                    }
                    shared.set(shared.get() + i);
                    i * i
                })
            })
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.await;
        }
        total
    });
    println!(
        "spawn_local x4 + join: sum of squares = {total}, shared Rc<Cell> = {}",
        shared.get()
    );

    // 3. Subsystems: polled by priority x waiters; one with no waiters is never polled.
    let light_load = Counter::new(usize::MAX);
    let heavy_load = Counter::new(300);
    let no_waiters = Counter::new(usize::MAX);
    let rt = Runtime::builder()
        .subsystem(Rc::clone(&light_load), 1)
        .subsystem(Rc::clone(&heavy_load), 1)
        .subsystem(Rc::clone(&no_waiters), 100)
        .build();
    rt.block_on(async {
        drop(spawn_local(light_load.wait()));
        for _ in 0..2 {
            drop(spawn_local(heavy_load.wait()));
        }
        heavy_load.wait().await;
    });
    println!(
        "subsystem polls: 3 waiters -> {}, 1 waiter -> {}, 0 waiters (priority 100) -> {}",
        heavy_load.polls.get(),
        light_load.polls.get(),
        no_waiters.polls.get()
    );
}
