use structured_async::structured;

#[structured]
fn not_async() -> u8 {
    1
}

#[structured]
struct NotAFn;

// `#[tokio::test]` above #[structured] expands first and hands it a plain fn.
#[tokio::test]
#[structured]
async fn rewritten_first() {}

trait Declares {
    // A declaration has no body to compile: put the attribute on the impl's method.
    #[structured]
    async fn declared(&self) -> u8;
}

fn main() {}
