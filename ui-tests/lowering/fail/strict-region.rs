use structured_async::{structured, yield_};

async fn show(s: &str) -> usize {
    s.len()
}

#[structured(strict)]
async fn borrows_across_await(words: Vec<String>) -> usize {
    let first = &words[0];
    show("x").await;
    first.len()
}

#[structured(strict)]
async fn macro_hides_await() -> u8 {
    futures::join!(async { 1u8 }, async { 2u8 }).0
}

#[structured(strict, yields = usize)]
async fn temporary_lives_past_a_yield() {
    yield_!(show(&String::from("temporary")).await);
}

fn main() {}
