use std::rc::Rc;
use structured_async::{block_on, nursery, yield_now};

fn main() {
    block_on(nursery!(send |n| {
        n.spawn(async {
            let shared = Rc::new(1);
            yield_now().await;
            drop(shared);
        });
    }));
}
