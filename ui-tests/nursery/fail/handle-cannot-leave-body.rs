use structured_async::{block_on, nursery};

fn main() {
    let mut kept = Vec::new();
    block_on(nursery!(|n| {
        kept.push(n.spawn(async { 1 }));
    }));
    drop(kept);
}
