use structured_async::structured;

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

fn main() {}
