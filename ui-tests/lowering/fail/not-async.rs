use structured_async::structured;

#[structured]
fn not_async() -> u8 {
    1
}

#[structured]
struct NotAFn;

fn main() {}
