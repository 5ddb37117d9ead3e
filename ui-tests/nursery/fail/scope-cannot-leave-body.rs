use structured_async::{block_on, nursery};

fn returned() {
    let _n = block_on(nursery!(|n| n));
}

fn stored_outside() {
    let mut outer = None;
    block_on(nursery!(|n| {
        outer = Some(n);
    }));
    drop(outer);
}

fn moved_to_a_thread() {
    block_on(nursery!(|n| {
        std::thread::spawn(move || {
            n.spawn(async {});
        });
    }));
}

fn main() {}
