use structured_async::{structured, yield_};

#[structured]
async fn not_a_generator() {
    yield_!(1);
}

#[structured(yields = u8)]
async fn empty_yield() {
    yield_!();
}

#[structured(yields = u8)]
async fn in_a_closure() {
    let f = || yield_!(1);
    f();
}

fn plain() {
    yield_!(1);
}

fn main() {}
