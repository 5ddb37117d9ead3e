//! A walk through what structured-async does, printing what each part shows.
//! Run it with `cargo run --example tour`.

fn main() {
    println!("structured-async tour");
}
