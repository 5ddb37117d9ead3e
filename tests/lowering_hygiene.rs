//! Generated code compiles cleanly in a crate that denies warnings, missing docs and
//! unreachable `pub`, with clippy's pedantic lints on (`cargo clippy --all-targets` runs them),
//! and does not care what the user's scope calls `core`, `std`, `Option`, `FnMut` or `Poll`.

#![deny(warnings, missing_docs, unreachable_pub)]
#![warn(clippy::pedantic)]

use structured_async::{structured, yield_};

/// Shadows the names generated code could reach for if it were not fully qualified.
#[allow(dead_code, non_camel_case_types)]
mod shadows {
    pub(crate) mod core {}
    pub(crate) mod std {}
    pub(crate) struct Option;
    pub(crate) struct PhantomData;
    pub(crate) struct ControlFlow;
    pub(crate) trait FnMut {}
    pub(crate) trait Future {}
    pub(crate) struct Poll;
    pub(crate) struct Pin;
    pub(crate) fn drop() {}
}

#[allow(unused_imports)]
use shadows::*;

async fn step(n: u32) -> u32 {
    ::std::future::ready(n + 1).await
}

/// Awaits in a loop, a branch and a match, with `?` and early return: the explicit machine.
///
/// # Errors
/// When `limit` is zero.
#[structured]
pub async fn explicit(limit: u32) -> Result<u32, String> {
    if limit == 0 {
        return Err("zero".to_owned());
    }
    let mut total = 0;
    let mut i = 0;
    while i < limit {
        total += step(i).await;
        i += 1;
    }
    let label = match total % 2 {
        0 => "even",
        _ => "odd",
    };
    let checked: u32 = step(total).await.checked_sub(1).ok_or("underflow")?;
    Ok(checked + u32::try_from(label.len()).map_err(|e| e.to_string())?)
}

/// A borrow across an await: one native frame.
#[structured]
pub async fn native(words: Vec<String>) -> usize {
    let mut n = 0;
    for w in &words {
        n += step(u32::try_from(w.len()).unwrap_or(0)).await as usize;
    }
    n
}

/// A `for` loop, an expression with two awaits, then a native region (`join!`).
#[structured]
pub async fn mixed(items: Vec<u32>, keep: String) -> (u32, usize) {
    let mut sum = 0;
    for x in items {
        sum += step(x).await;
    }
    let both = step(1).await + step(2).await;
    let (a, b) = futures::join!(step(0), step(0));
    (sum + both + a + b, keep.len())
}

/// A generator.
#[structured(yields = u32)]
pub async fn numbers(n: u32) {
    let mut i = 0;
    while i < n {
        yield_!(i);
        yield_!(step(i).await * 10);
        i += 1;
    }
}

/// Drop flags: a parameter moved on one path only, a local declared without a value.
#[structured]
pub async fn flagged(c: bool, s: String) -> usize {
    if c {
        ::std::mem::drop(s);
    }
    let late: String;
    late = step(1).await.to_string();
    step(2).await;
    late.len() + usize::from(c)
}

/// A method.
pub struct Acc(u32);

impl Acc {
    /// Adds the next step.
    #[structured]
    pub async fn add(&mut self) -> u32 {
        self.0 = step(self.0).await;
        self.0
    }
}

#[test]
fn lint_clean_code_runs() {
    use futures::StreamExt;
    assert_eq!(futures::executor::block_on(explicit(3)), Ok(10));
    assert_eq!(
        futures::executor::block_on(explicit(0)),
        Err("zero".to_owned())
    );
    assert_eq!(
        futures::executor::block_on(native(vec!["ab".into(), "c".into()])),
        5
    );
    let all: Vec<u32> = futures::executor::block_on(numbers(3).collect());
    assert_eq!(all, [0, 10, 1, 20, 2, 30]);
    assert_eq!(futures::executor::block_on(flagged(true, "s".into())), 2);
    assert_eq!(
        futures::executor::block_on(mixed(vec![1, 2], "abc".into())),
        (12, 3)
    );
    let mut a = Acc(1);
    assert_eq!(futures::executor::block_on(a.add()), 2);
}
