//! The poll loop's rules for subsystems, each proven by counting polls:
//! the task budget, weighting by priority × waiters, no polling (nor `park_hint`) of a
//! subsystem without waiters, parking in the blocking subsystem until the nearest deadline,
//! no parking while a busy subsystem has waiters, and `ready_hint` consulted between task
//! polls.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};
use structured_async::executor::Runtime;
use structured_async::{ParkHint, Subsystem, spawn_local, yield_now};

/// A subsystem whose behaviour each test sets, and which counts what the loop asks of it.
struct Probe {
    hint: Cell<ParkHint>,
    /// Waiters: each woken waker's flag is set when the event is delivered.
    waiters: RefCell<Vec<(Waker, Rc<Cell<bool>>)>>,
    /// Deliver to every waiter on this poll (1-based); 0: never.
    fire_on_poll: Cell<usize>,
    /// Deliver to every waiter once this deadline has passed.
    fire_at: Cell<Option<Instant>>,
    /// What `ready_hint` answers; `None`: it reports "maybe" like the default.
    ready: Cell<Option<bool>>,
    /// Deliver on the next poll (set by producers; the memory-only readiness flag).
    flagged: Cell<bool>,
    /// What `park` answers.
    park_blocks: bool,
    polls: Cell<usize>,
    hint_checks: Cell<usize>,
    /// How many times the loop asked for `park_hint`.
    park_hints: Cell<usize>,
    parks: RefCell<Vec<Option<Duration>>>,
    log: Option<Rc<RefCell<String>>>,
}

impl Probe {
    fn new(hint: ParkHint) -> Self {
        Probe {
            hint: Cell::new(hint),
            waiters: RefCell::default(),
            fire_on_poll: Cell::new(0),
            fire_at: Cell::new(None),
            ready: Cell::new(Some(false)),
            flagged: Cell::new(false),
            park_blocks: false,
            polls: Cell::new(0),
            hint_checks: Cell::new(0),
            park_hints: Cell::new(0),
            parks: RefCell::default(),
            log: None,
        }
    }

    /// A future that waits on this subsystem until its event is delivered.
    fn wait(self: &Rc<Self>) -> impl Future<Output = ()> + 'static {
        let this = Rc::clone(self);
        let mut flag: Option<Rc<Cell<bool>>> = None;
        poll_fn(move |cx| match &flag {
            Some(f) if f.get() => Poll::Ready(()),
            Some(_) => Poll::Pending,
            None => {
                let f = Rc::new(Cell::new(false));
                this.waiters
                    .borrow_mut()
                    .push((cx.waker().clone(), Rc::clone(&f)));
                flag = Some(f);
                Poll::Pending
            }
        })
    }
}

impl Subsystem for Probe {
    fn poll(&self, now: Instant) -> usize {
        let n = self.polls.get() + 1;
        self.polls.set(n);
        let due = n == self.fire_on_poll.get()
            || self.fire_at.get().is_some_and(|t| now >= t)
            || self.flagged.replace(false);
        if let Some(log) = &self.log {
            log.borrow_mut().push(if due { 'R' } else { 'r' });
        }
        if !due {
            return 0;
        }
        let woken: Vec<_> = self.waiters.borrow_mut().drain(..).collect();
        for (waker, flag) in &woken {
            flag.set(true);
            waker.wake_by_ref();
        }
        woken.len()
    }
    fn waiters(&self) -> usize {
        self.waiters.borrow().len()
    }
    fn park_hint(&self) -> ParkHint {
        self.park_hints.set(self.park_hints.get() + 1);
        self.hint.get()
    }
    fn ready_hint(&self) -> bool {
        self.hint_checks.set(self.hint_checks.get() + 1);
        self.ready.get().unwrap_or(true) || self.flagged.get()
    }
    fn park(&self, timeout: Option<Duration>) -> bool {
        self.parks.borrow_mut().push(timeout);
        if self.park_blocks {
            // Stand in for epoll_wait: block for a little while (the event arrives later).
            std::thread::sleep(Duration::from_millis(1));
        }
        self.park_blocks
    }
}

/// A task that wakes itself forever, counting its polls.
async fn spinner(polls: Rc<Cell<usize>>) {
    loop {
        polls.set(polls.get() + 1);
        yield_now().await;
    }
}

#[test]
fn a_self_waking_task_does_not_starve_subsystems_and_runs_at_most_budget_per_turn() {
    let ring = Rc::new(Probe::new(ParkHint::Busy));
    ring.fire_on_poll.set(50);
    let rt = Runtime::builder()
        .budget(4)
        .subsystem(Rc::clone(&ring), 1)
        .build();
    let spins = Rc::new(Cell::new(0));
    let spins_at_poll = Rc::new(RefCell::new(Vec::new()));
    rt.block_on(async {
        let _spin = spawn_local(spinner(Rc::clone(&spins)));
        let probe = Rc::clone(&ring);
        let (s, at) = (Rc::clone(&spins), Rc::clone(&spins_at_poll));
        let recorder = spawn_local(async move {
            // Records the spinner's count each time the ring has been polled once more.
            let mut seen = 0;
            while probe.polls.get() < 50 {
                if probe.polls.get() != seen {
                    seen = probe.polls.get();
                    at.borrow_mut().push(s.get());
                }
                yield_now().await;
            }
        });
        ring.wait().await;
        recorder.abort();
    });
    assert_eq!(
        ring.polls.get(),
        50,
        "the ring kept being polled despite the spinner"
    );
    let at = spins_at_poll.borrow();
    assert!(at.len() > 10, "{at:?}");
    for pair in at.windows(2) {
        let between = pair[1] - pair[0];
        assert!(
            (1..=4).contains(&between),
            "spinner polls between two subsystem polls must be 1..=budget: {at:?}"
        );
    }
}

/// Runs two busy subsystems until `b` has been polled `b_polls` times and returns how often
/// `a` was polled meanwhile.
fn polls_of_a(a_priority: u32, a_waiters: usize, b_priority: u32, b_waiters: usize) -> usize {
    let a = Rc::new(Probe::new(ParkHint::Busy));
    let b = Rc::new(Probe::new(ParkHint::Busy));
    b.fire_on_poll.set(600);
    let rt = Runtime::builder()
        .subsystem(Rc::clone(&a), a_priority)
        .subsystem(Rc::clone(&b), b_priority)
        .build();
    rt.block_on(async {
        for _ in 0..a_waiters {
            drop(spawn_local(a.wait()));
        }
        for _ in 1..b_waiters {
            drop(spawn_local(b.wait()));
        }
        b.wait().await;
    });
    assert_eq!(b.polls.get(), 600);
    a.polls.get()
}

#[test]
fn subsystems_are_polled_in_proportion_to_priority_times_waiters() {
    // Same priority, 1 waiter against 3: a third of the polls.
    let by_waiters = polls_of_a(1, 1, 1, 3);
    assert!((190..=210).contains(&by_waiters), "{by_waiters}");
    // One waiter each, priority 1 against 2: half the polls.
    let by_priority = polls_of_a(1, 1, 2, 1);
    assert!((290..=310).contains(&by_priority), "{by_priority}");
    // The heavier one (3 × 2 against 1 × 1) is polled every turn, six times as often.
    let heavier = polls_of_a(3, 2, 1, 1);
    assert!((3590..=3610).contains(&heavier), "{heavier}");
}

#[test]
fn a_subsystem_without_waiters_is_never_polled() {
    let idle_ring = Rc::new(Probe::new(ParkHint::Busy));
    let idle_timer = Rc::new(Probe::new(ParkHint::Deadline(Instant::now())));
    let busy = Rc::new(Probe::new(ParkHint::Busy));
    busy.fire_on_poll.set(200);
    let rt = Runtime::builder()
        .subsystem(Rc::clone(&idle_ring), 100)
        .subsystem(Rc::clone(&idle_timer), 100)
        .subsystem(Rc::clone(&busy), 1)
        .build();
    rt.block_on(async {
        let _spin = spawn_local(spinner(Rc::default()));
        busy.wait().await;
    });
    assert_eq!(busy.polls.get(), 200);
    assert_eq!(idle_ring.polls.get(), 0, "no waiters: never polled");
    assert_eq!(
        idle_ring.hint_checks.get(),
        0,
        "no waiters: not even its ready_hint"
    );
    assert_eq!(idle_timer.polls.get(), 0);
    // Nor its park_hint, which may cost something (the timers' searches the wheel): the
    // loop turned ~200 times with both idle.
    assert_eq!(idle_ring.park_hints.get(), 0);
    assert_eq!(idle_timer.park_hints.get(), 0);
    assert!(busy.park_hints.get() >= 200, "{}", busy.park_hints.get());
}

#[test]
fn the_loop_parks_in_the_blocking_subsystem_until_the_nearest_deadline() {
    let far = Instant::now() + Duration::from_secs(30);
    let near = Instant::now() + Duration::from_secs(10);
    let timer_far = Rc::new(Probe::new(ParkHint::Deadline(far)));
    let timer_near = Rc::new(Probe::new(ParkHint::Deadline(near)));
    let fd = Rc::new(Probe {
        park_blocks: true,
        ..Probe::new(ParkHint::Fd(0))
    });
    fd.fire_on_poll.set(3);
    let rt = Runtime::builder()
        .subsystem(Rc::clone(&timer_far), 1)
        .subsystem(Rc::clone(&fd), 1)
        .subsystem(Rc::clone(&timer_near), 1)
        .build();
    rt.block_on(async {
        drop(spawn_local(timer_far.wait()));
        drop(spawn_local(timer_near.wait()));
        fd.wait().await;
    });
    let parks = fd.parks.borrow();
    assert_eq!(parks.len(), 2, "parked between its polls: {parks:?}");
    for timeout in parks.iter() {
        let t = timeout.expect("bounded by the nearest deadline");
        // The near deadline (10 s), not the far one (30 s) nor none; the lower bound leaves
        // a wide margin for a slow machine.
        assert!(
            t <= Duration::from_secs(10) && t > Duration::from_secs(5),
            "{t:?}"
        );
    }
    assert_eq!(timer_near.polls.get(), 0, "a deadline ahead is not polled");
    assert_eq!(timer_far.polls.get(), 0);
}

#[test]
fn with_only_a_deadline_the_thread_parks_until_it_is_due() {
    let timer = Rc::new(Probe::new(ParkHint::Deadline(Instant::now())));
    let due = Instant::now() + Duration::from_millis(50);
    timer.hint.set(ParkHint::Deadline(due));
    timer.fire_at.set(Some(due));
    let rt = Runtime::builder().subsystem(Rc::clone(&timer), 1).build();
    rt.block_on(timer.wait());
    assert!(Instant::now() >= due);
    // Parked until the deadline, then polled once; a spurious unpark may add a poll or two,
    // a loop that spun would poll thousands of times.
    assert!(timer.polls.get() <= 3, "{}", timer.polls.get());
}

#[test]
fn no_parking_while_a_busy_subsystem_has_waiters() {
    let ring = Rc::new(Probe::new(ParkHint::Busy));
    ring.fire_on_poll.set(1000);
    let fd = Rc::new(Probe {
        park_blocks: true,
        ..Probe::new(ParkHint::Fd(0))
    });
    let rt = Runtime::builder()
        .subsystem(Rc::clone(&ring), 1)
        .subsystem(Rc::clone(&fd), 1)
        .build();
    rt.block_on(async {
        drop(spawn_local(fd.wait()));
        ring.wait().await;
    });
    assert_eq!(ring.polls.get(), 1000);
    assert!(
        fd.parks.borrow().is_empty(),
        "never parked while the ring had waiters"
    );
    assert!(
        fd.polls.get() >= 999,
        "the fd subsystem was polled each turn instead"
    );
}

#[test]
fn ready_hint_is_consulted_between_task_polls() {
    let log = Rc::new(RefCell::new(String::new()));
    let ring = Rc::new(Probe {
        log: Some(Rc::clone(&log)),
        ..Probe::new(ParkHint::Busy)
    });
    let rt = Runtime::builder().subsystem(Rc::clone(&ring), 1).build();
    rt.block_on(async {
        let mut spinners = Vec::new();
        for _ in 0..3 {
            let (producer, log) = (Rc::clone(&ring), Rc::clone(&log));
            spinners.push(spawn_local(async move {
                for i in 0.. {
                    log.borrow_mut().push('S');
                    if i == 10 {
                        // The producer writes into the ring: a memory-only flag flips.
                        producer.flagged.set(true);
                    }
                    yield_now().await;
                }
            }));
        }
        ring.wait().await;
        for s in &spinners {
            s.abort();
        }
    });
    let log = log.borrow();
    let delivered = log.find('R').expect("delivered");
    let spins_before = log[..delivered].matches('S').count();
    // The flag flipped in the 31st spinner poll (third spinner, i == 10); the ring is polled
    // right after that poll, without waiting for the end of the turn (budget 64).
    assert_eq!(spins_before, 31, "{log}");
    assert!(
        ring.hint_checks.get() >= 30,
        "checked between polls: {}",
        ring.hint_checks.get()
    );
}

/// Blocks in `park` on a channel, as an epoll subsystem blocks in `epoll_wait`; its unpark
/// waker sends on that channel, as an eventfd write would.
struct Blocking {
    rx: std::sync::Mutex<std::sync::mpsc::Receiver<()>>,
    tx: std::sync::mpsc::Sender<()>,
    waiters: Cell<usize>,
    parks: RefCell<Vec<&'static str>>,
}

struct Unblock(std::sync::mpsc::Sender<()>);

impl std::task::Wake for Unblock {
    fn wake(self: std::sync::Arc<Self>) {
        let _ = self.0.send(());
    }
}

impl Subsystem for Blocking {
    fn poll(&self, _now: Instant) -> usize {
        0
    }
    fn waiters(&self) -> usize {
        self.waiters.get()
    }
    fn park_hint(&self) -> ParkHint {
        ParkHint::Fd(0)
    }
    fn park(&self, timeout: Option<Duration>) -> bool {
        let limit = timeout.unwrap_or(Duration::from_secs(5));
        let outcome = match self.rx.lock().unwrap().recv_timeout(limit) {
            Ok(()) => "interrupted",
            Err(_) => "timed out",
        };
        self.parks.borrow_mut().push(outcome);
        true
    }
    fn unpark_waker(&self) -> Option<Waker> {
        Some(Waker::from(std::sync::Arc::new(Unblock(self.tx.clone()))))
    }
}

#[test]
fn a_wake_from_another_thread_interrupts_a_blocking_subsystem() {
    let (tx, rx) = std::sync::mpsc::channel();
    let blocking = Rc::new(Blocking {
        rx: std::sync::Mutex::new(rx),
        tx,
        waiters: Cell::new(1),
        parks: RefCell::default(),
    });
    let rt = Runtime::builder()
        .subsystem(Rc::clone(&blocking), 1)
        .build();
    let (waker_tx, waker_rx) = std::sync::mpsc::channel::<Waker>();
    let thread = std::thread::spawn(move || {
        let waker = waker_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        waker.wake();
    });
    let mut sent = Some(waker_tx);
    rt.block_on(poll_fn(|cx| match sent.take() {
        Some(tx) => {
            tx.send(cx.waker().clone()).unwrap();
            Poll::Pending
        }
        None => Poll::Ready(()),
    }));
    thread.join().unwrap();
    let parks = blocking.parks.borrow();
    assert!(
        parks.iter().all(|p| *p == "interrupted"),
        "the remote wake interrupted the blocking park: {parks:?}"
    );
}
