use std::rc::Rc;
use structured_async::structured;

#[structured]
async fn holds_rc_across_await() -> usize {
    let shared = Rc::new(5);
    std::future::ready(()).await;
    *shared
}

fn assert_send<T: Send>(_: T) {}

fn main() {
    assert_send(holds_rc_across_await());
}
