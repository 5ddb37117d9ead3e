use std::rc::Rc;
use structured_async::nursery;

fn main() {
    let fut = nursery!(move |n| {
        n.spawn(async {
            let shared = Rc::new(1);
            structured_async::yield_now().await;
            drop(shared);
        });
    });
    // A nursery and its (possibly non-Send) children form one local tree: it runs on the
    // thread that polls it and cannot be handed to another thread's executor.
    std::thread::spawn(move || structured_async::block_on(fut));
}
