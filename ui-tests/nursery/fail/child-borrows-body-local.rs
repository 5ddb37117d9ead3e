use structured_async::{block_on, nursery};

fn main() {
    block_on(nursery!(|n| {
        let local = vec![1, 2, 3];
        n.spawn(async { local.len() });
    }));
}
