use structured_async::{block_on, nursery};

fn stored_outside() {
    let mut kept = Vec::new();
    block_on(nursery!(|n| {
        kept.push(n.spawn(async { 1 }));
    }));
    drop(kept);
}

fn returned() {
    let _handle = block_on(nursery!(|n| Some(n.spawn(async { 1 }))));
}

fn main() {}
