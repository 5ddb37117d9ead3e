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

#[structured(strict)]
async fn scrutinee_temporary_lives_through_the_arms(words: Vec<String>) -> usize {
    match words.clone().len() {
        0 => 0,
        n => show("x").await + n,
    }
}

#[structured(strict)]
async fn cfg_on_a_statement_with_an_await() -> usize {
    #[cfg(any())]
    let n = show("off").await;
    #[cfg(all())]
    let n = show("on").await;
    n
}

#[structured(strict)]
async fn guard_borrows_its_local_lock() -> u32 {
    let m = futures::lock::Mutex::new(1);
    let g = m.lock().await;
    let v = *g;
    drop(g);
    v
}

// An attribute macro below expands after #[structured] and gets the `async fn` as written.
#[structured(strict)]
#[tracing::instrument]
async fn instrumented(n: u32) -> u32 {
    show("x").await as u32 + n
}

fn main() {}
