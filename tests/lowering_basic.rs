//! `#[structured]` fns behave like the same body written as a native `async fn`.

use std::cell::RefCell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll};

use futures::executor::block_on;
use structured_async::{Coroutine, Step, structured, yield_};

thread_local! {
    static LOG: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(s: impl Into<String>) {
    LOG.with(|l| l.borrow_mut().push(s.into()));
}

fn take_log() -> Vec<String> {
    LOG.with(|l| std::mem::take(&mut *l.borrow_mut()))
}

/// Logs its name when dropped, so tests can compare drop orders.
struct Noisy(&'static str);

impl Drop for Noisy {
    fn drop(&mut self) {
        log(format!("drop {}", self.0));
    }
}

/// Returns `Pending` once (waking itself), then `v`.
async fn later<T>(v: T) -> T {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await;
    v
}

#[structured]
async fn add(a: u32, b: u32) -> u32 {
    let x = later(a).await;
    let y = later(b).await;
    x + y
}

#[test]
fn straight_line_adds() {
    assert_eq!(block_on(add(2, 3)), 5);
}

#[structured]
async fn lazy_body() -> u8 {
    log("body ran");
    1
}

#[test]
fn nothing_runs_before_the_first_poll() {
    take_log();
    let f = lazy_body();
    assert!(take_log().is_empty());
    assert_eq!(block_on(f), 1);
    assert_eq!(take_log(), ["body ran"]);
}

struct Counter {
    n: u32,
}

impl Counter {
    #[structured]
    async fn bump(&mut self, by: u32) -> u32 {
        self.n += later(by).await;
        self.n
    }

    #[structured]
    async fn peek(&self) -> u32 {
        later(self.n).await
    }

    #[structured]
    async fn into_n(self) -> u32 {
        later(self.n).await
    }
}

#[test]
fn methods_with_every_receiver() {
    let mut c = Counter { n: 1 };
    assert_eq!(block_on(c.bump(4)), 5);
    assert_eq!(block_on(c.peek()), 5);
    assert_eq!(block_on(c.into_n()), 5);
}

trait Source {
    async fn fetch(&self, key: &str) -> String;
}

struct Upper;

impl Source for Upper {
    #[structured]
    async fn fetch(&self, key: &str) -> String {
        later(key.to_uppercase()).await
    }
}

#[test]
fn implements_a_traits_async_fn() {
    assert_eq!(block_on(Upper.fetch("ab")), "AB");
}

#[structured]
async fn generic<'a, T: Clone + Send, U>(items: &'a [T], extra: impl Into<U>) -> (Vec<T>, U)
where
    U: Default,
{
    let v = later(items.to_vec()).await;
    (v, extra.into())
}

#[test]
fn generics_lifetimes_and_impl_trait_params() {
    let (v, s): (Vec<u8>, String) = block_on(generic(&[1, 2], "x"));
    assert_eq!(v, [1, 2]);
    assert_eq!(s, "x");
}

#[structured]
async fn params_drop_after_locals(_a: Noisy, (b, _c): (Noisy, Noisy)) {
    let _local = Noisy("local");
    later(()).await;
    let _ = &b;
}

async fn native_params_drop_after_locals(_a: Noisy, (b, _c): (Noisy, Noisy)) {
    let _local = Noisy("local");
    later(()).await;
    let _ = &b;
}

#[test]
fn arguments_drop_like_native() {
    take_log();
    block_on(params_drop_after_locals(
        Noisy("a"),
        (Noisy("b"), Noisy("c")),
    ));
    let ours = take_log();
    block_on(native_params_drop_after_locals(
        Noisy("a"),
        (Noisy("b"), Noisy("c")),
    ));
    assert_eq!(ours, take_log());
}

#[structured(yields = u32)]
async fn count(n: u32) {
    for i in 0..n {
        yield_!(later(i).await * 10);
    }
}

#[test]
fn generator_yields_each_value_then_completes() {
    let mut g = pin!(count(3));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut seen = Vec::new();
    loop {
        match g.as_mut().resume(&mut cx) {
            Step::Pending => {}
            Step::Yielded(v) => seen.push(v),
            Step::Complete(()) => break,
        }
    }
    assert_eq!(seen, [0, 10, 20]);
}

#[test]
fn generator_is_a_stream() {
    use futures::StreamExt;
    let all: Vec<u32> = block_on(count(4).collect());
    assert_eq!(all, [0, 10, 20, 30]);
}

#[structured(yields = &'static str)]
async fn words() -> usize {
    yield_!("a");
    yield_!("b");
    2
}

#[test]
fn generator_with_an_output() {
    let mut g = pin!(words());
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert_eq!(g.as_mut().resume(&mut cx), Step::Yielded("a"));
    assert_eq!(g.as_mut().resume(&mut cx), Step::Yielded("b"));
    assert_eq!(g.as_mut().resume(&mut cx), Step::Complete(2));
}

#[structured]
async fn question(s: &str) -> Result<u32, Box<dyn std::error::Error>> {
    let n: u32 = later(s).await.parse()?;
    Ok(n + 1)
}

#[test]
fn question_mark_converts_with_from() {
    assert_eq!(block_on(question("4")).unwrap(), 5);
    assert!(block_on(question("x")).is_err());
}

fn _is_future<F: Future>(_: &F) {}

struct Named {
    name: String,
}

impl Named {
    #[structured]
    async fn name_after_a_while(&self, skip: usize) -> &str {
        let n = later(skip).await;
        &self.name[n..]
    }
}

#[test]
fn borrowed_output_with_elided_lifetime() {
    let n = Named {
        name: "hello".into(),
    };
    assert_eq!(block_on(n.name_after_a_while(2)), "llo");
}

#[structured]
async fn break_and_continue_in_plain_ifs(n: u64) -> u64 {
    let mut i = 0;
    let mut hits = 0;
    'outer: loop {
        i += 1;
        let v = later(i).await;
        if v % 2 == 0 {
            continue 'outer;
        }
        hits += 1;
        if v >= n {
            break;
        }
    }
    i * 100 + hits
}

#[test]
fn break_and_continue_inside_await_free_ifs_of_a_lowered_loop() {
    // i = 1..=7, odd values counted: 1, 3, 5, 7.
    assert_eq!(block_on(break_and_continue_in_plain_ifs(7)), 704);
}

#[structured]
async fn for_over_owned(items: Vec<Noisy>, n: u32) -> u32 {
    let mut total = 0;
    for i in 0..n {
        total += later(i).await;
    }
    for item in items {
        log(format!("saw {}", item.0));
        later(()).await;
        if item.0 == "stop" {
            break;
        }
    }
    total
}

async fn native_for_over_owned(items: Vec<Noisy>, n: u32) -> u32 {
    let mut total = 0;
    for i in 0..n {
        total += later(i).await;
    }
    for item in items {
        log(format!("saw {}", item.0));
        later(()).await;
        if item.0 == "stop" {
            break;
        }
    }
    total
}

#[test]
fn for_loops_drop_the_iterator_and_items_like_native() {
    let make = || vec![Noisy("a"), Noisy("stop"), Noisy("c")];
    take_log();
    let ours = block_on(for_over_owned(make(), 4));
    let ours_log = take_log();
    let native = block_on(native_for_over_owned(make(), 4));
    assert_eq!(ours, native);
    assert_eq!(ours_log, take_log());
    assert!(ours_log.contains(&"drop c".to_string()));

    // Cancelled while suspended inside the second loop.
    let mut ours = Box::pin(for_over_owned(make(), 0));
    let mut native = Box::pin(native_for_over_owned(make(), 0));
    let mut cx = Context::from_waker(std::task::Waker::noop());
    assert!(ours.as_mut().poll(&mut cx).is_pending());
    drop(ours);
    let ours_log = take_log();
    assert!(native.as_mut().poll(&mut cx).is_pending());
    drop(native);
    assert_eq!(ours_log, take_log());
}

/// A receiver whose `recv` borrows it mutably and returns owned values.
struct Rx(Vec<u32>);

impl Rx {
    async fn recv(&mut self) -> Option<u32> {
        later(()).await;
        self.0.pop()
    }
}

#[structured]
async fn drain(mut rx: Rx) -> u32 {
    let mut total = 0;
    while let Some(x) = rx.recv().await {
        total = total * 10 + later(x).await;
    }
    total
}

#[test]
fn while_let_over_an_awaited_receiver() {
    assert_eq!(block_on(drain(Rx(vec![1, 2, 3]))), 321);
}
