//! What putting `#[structured]` on every `async fn` of two real crates found (mini-redis and
//! bb8, session 8), and what came up while fixing it: bodies that did not compile or lost
//! their lowering, and attribute macros that did not compose. The bodies are differential
//! tests (see `support/macros.rs`); the attributes are compared with the same fn without
//! `#[structured]`.

mod support;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use structured_async::{block_on, structured};
use support::macros::differential;
#[allow(unused_imports)]
use support::{Noisy, ev, pass, show, tick, tick_named};
use tracing::field::{Field, Visit};
use tracing::{Event, Metadata, Subscriber, span};

// A `move` block that names only a field of `&mut self` moves the reference itself (a capture
// stops at the reference): `self` must not be carried into the next state. This is the body
// `#[tracing::instrument]` writes around a `&mut self` method.
differential! {
    move_block_naming_a_field_of_mut_self,
    entry: async {
        let mut c = Counter { n: 1 };
        let out = c.bump(2).await;
        (out, c.n)
    },
    pub struct Counter { pub n: u32 }
    impl Counter {
        #[lowered]
        async fn bump(&mut self, by: u32) -> u32 {
            let fut = async move {
                self.n += tick(by).await;
                self.n
            };
            fut.await
        }
    }
}

// The same through a `move` closure and a `&mut` parameter.
differential! {
    move_closure_naming_a_field_of_a_mut_param,
    entry: async {
        let mut c = Counter { n: 1 };
        let out = bump(&mut c).await;
        (out, c.n)
    },
    pub struct Counter { pub n: u32 }
    #[lowered]
    async fn bump(c: &mut Counter) -> u32 {
        let mut inc = move || {
            c.n += 1;
            c.n
        };
        tick(()).await;
        inc() + inc()
    }
}

// An attribute macro written below `#[structured]` expands after it and gets the `async fn` as
// written (the body keeps its native frame).
#[structured]
#[tokio::test]
async fn tokio_test_below_structured_runs_the_body() {
    let mut sum = 0;
    for x in [1, 2, 3] {
        sum += tick(x).await;
    }
    assert_eq!(sum, 6);
}

/// Logs each event's message with the name of the span it happened in.
#[derive(Default)]
struct Spans {
    names: Mutex<Vec<&'static str>>,
    entered: Mutex<Vec<u64>>,
    log: Mutex<Vec<String>>,
    next: AtomicU64,
}

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
}

impl Subscriber for Spans {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        self.names.lock().unwrap().push(span.metadata().name());
        span::Id::from_u64(self.next.fetch_add(1, Ordering::Relaxed) + 1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut message = Message(String::new());
        event.record(&mut message);
        let names = self.names.lock().unwrap();
        let span = match self.entered.lock().unwrap().last() {
            Some(&id) => names[id as usize - 1],
            None => "no span",
        };
        self.log
            .lock()
            .unwrap()
            .push(format!("{} in {span}", message.0));
    }
    fn enter(&self, span: &span::Id) {
        self.entered.lock().unwrap().push(span.into_u64());
    }
    fn exit(&self, _: &span::Id) {
        self.entered.lock().unwrap().pop();
    }
}

/// The events `f` logs, each with the span it happened in.
fn events<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let spans = std::sync::Arc::new(Spans::default());
    let out = tracing::subscriber::with_default(spans.clone(), f);
    let log = std::mem::take(&mut *spans.log.lock().unwrap());
    (out, log)
}

#[tracing::instrument]
async fn native_step(x: u32) -> u32 {
    tracing::info!("before");
    let y = tick(x).await;
    tracing::info!("after");
    y + 1
}

#[structured]
#[tracing::instrument]
async fn structured_step(x: u32) -> u32 {
    tracing::info!("before");
    let y = tick(x).await;
    tracing::info!("after");
    y + 1
}

struct Conn {
    n: usize,
}

impl Conn {
    async fn read(&mut self) -> usize {
        tick(self.n).await
    }
}

// mini-redis's `Client::get` shape, awaited where `tokio::spawn` needs `Send`: an `async fn`
// that awaited the machine inline did not compile here (rustc's `Send` check of a native frame
// holding a machine: "implementation of `FnOnce` is not general enough").
#[structured]
#[tracing::instrument(skip(conn))]
async fn get(conn: &mut Conn, key: &str) -> usize {
    tracing::info!("get");
    conn.read().await + key.len()
}

fn spawnable<F: Future + Send>(f: F) -> F {
    f
}

#[test]
fn instrument_below_structured_stays_send_for_spawn() {
    let task = spawnable(async {
        let mut conn = Conn { n: 1 };
        get(&mut conn, "key").await
    });
    let (n, log) = events(|| block_on(task));
    assert_eq!(n, 4);
    assert_eq!(log, ["get in get"]);
}

#[test]
fn instrument_below_structured_enters_its_span_while_the_body_runs() {
    let (native, native_log) = events(|| block_on(native_step(2)));
    let (ours, log) = events(|| block_on(structured_step(2)));
    assert_eq!((native, ours), (3, 3));
    assert_eq!(
        native_log,
        ["before in native_step", "after in native_step"]
    );
    assert_eq!(
        log,
        ["before in structured_step", "after in structured_step"]
    );
}

struct Subscription {
    channels: Vec<u32>,
}

impl Subscription {
    // `#[instrument]` above `#[structured]` expands first: the body reaches the lowering
    // inside its `async move` block, which names `self.channels` (mini-redis's `subscribe`).
    #[tracing::instrument(skip(self))]
    #[structured]
    async fn subscribe(&mut self, channel: u32) -> usize {
        tracing::info!("subscribing");
        self.channels.push(tick(channel).await);
        self.channels.len()
    }
}

#[test]
fn instrument_above_structured_on_a_mut_self_method() {
    let mut s = Subscription { channels: vec![1] };
    let (n, log) = events(|| block_on(s.subscribe(7)));
    assert_eq!((n, &s.channels[..]), (2, &[1, 7][..]));
    assert_eq!(log, ["subscribing in subscribe"]);
}

// A body that ends in a `panic!` statement: the machine added an unreachable `Return(())`
// after it, which rustc warned about at the user's `#[structured]` (a native body does not).
#[deny(unreachable_code)]
mod diverging {
    use super::*;

    #[structured]
    pub async fn fail(code: u32) {
        tick(()).await;
        panic!("boom {code}");
    }
}

#[test]
fn a_body_ending_in_panic_compiles_without_warnings_and_panics() {
    let panic = std::panic::catch_unwind(|| block_on(diverging::fail(7))).unwrap_err();
    assert_eq!(
        panic.downcast_ref::<String>().map(String::as_str),
        Some("boom 7")
    );
}

// `dbg!(x)` moves `x` (it returns it): the native frame drops it right there.
differential! {
    dbg_moves_its_argument,
    entry: f(Noisy::new("arg")),
    #[lowered]
    async fn f(a: Noisy) -> u32 {
        dbg!(a);
        ev("after dbg");
        tick(1).await
    }
}

// tracing's and log's macros borrow what they name.
differential! {
    a_local_named_in_a_log_macro_stays_explicit,
    entry: f(Noisy::new("frame")),
    #[lowered]
    async fn f(frame: Noisy) -> usize {
        tracing::debug!(?frame, request = %frame);
        tracing::info!("{}", frame);
        tick(frame.touch()).await
    }
}

// Awaiting a method through `&mut self` or a `&mut` parameter whose output borrows through the
// reference: the reference must not be carried past the await (it has nothing to drop), or
// the adapter that hands it back cannot compile (E0505 for `peek_param` before).
differential! {
    awaiting_a_method_of_a_field_of_mut_self,
    entry: async {
        let mut c = Client { conn: Conn { buf: vec![3, 4] } };
        let a = c.next().await;
        let b = c.peek_first().await;
        let d = Client::peek_param(&mut c.conn).await;
        (a, b, d, c.conn.buf.len())
    },
    pub struct Conn { pub buf: Vec<u8> }
    impl Conn {
        async fn pop(&mut self) -> Option<u8> {
            tick(()).await;
            self.buf.pop()
        }
        async fn peek(&mut self) -> &u8 {
            tick(()).await;
            &self.buf[0]
        }
    }
    pub struct Client { pub conn: Conn }
    impl Client {
        #[lowered]
        async fn next(&mut self) -> Option<u8> {
            let v = self.conn.pop().await?;
            tick(()).await;
            Some(v + self.conn.buf.len() as u8)
        }
        #[lowered]
        async fn peek_first(&mut self) -> u8 {
            let first = self.conn.peek().await;
            *first
        }
        #[lowered]
        async fn peek_param(c: &mut Conn) -> u8 {
            let first = c.peek().await;
            *first
        }
    }
}
