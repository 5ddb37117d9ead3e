use structured_async::{block_on, nursery, yield_now};

fn main() {
    let mut data = vec![1u32; 12];
    let factor = 3;
    let total: usize = block_on(nursery!(|n| {
        for chunk in data.chunks_mut(4) {
            n.spawn(async move {
                yield_now().await;
                chunk.iter_mut().for_each(|x| *x *= factor);
            });
        }
        n.spawn(async { factor as usize }).await
    }));
    assert_eq!(total, 3);
    assert_eq!(data, vec![3; 12]);
}
