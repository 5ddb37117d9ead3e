use structured_async::nursery;

fn main() {
    let _ = nursery!(42);
}
