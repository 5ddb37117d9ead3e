//! The signatures the attribute accepts, used the way a caller would.

use structured_async::{structured, yield_, Coroutine};

/// A documented fn with a named lifetime and a where-clause.
#[structured]
pub async fn first<'a, T>(items: &'a [T]) -> Option<&'a T>
where
    T: Sync,
{
    std::future::ready(()).await;
    items.first()
}

trait Named {
    async fn name(&self) -> String;
}

struct Cat;

impl Named for Cat {
    #[structured]
    async fn name(&self) -> String {
        std::future::ready(String::from("cat")).await
    }
}

#[structured(yields = u8)]
async fn bytes() {
    yield_!(1);
}

fn assert_send<T: Send>(_: &T) {}

fn main() {
    let v = [1, 2];
    let f = first(&v);
    assert_send(&f);
    assert_eq!(futures::executor::block_on(f), Some(&1));
    assert_eq!(futures::executor::block_on(Cat.name()), "cat");
    fn is_coroutine<C: Coroutine<Yield = u8, Output = ()>>(_: C) {}
    is_coroutine(bytes());
}
