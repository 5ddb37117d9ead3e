use structured_async::{block_on, nursery};

fn main() {
    let data = vec![1, 2, 3];
    let fut = nursery!(|n| {
        n.spawn(async { data.len() });
    });
    drop(data);
    block_on(fut);
}
