//! A walk through what structured-async does, printing what each part shows.
//! Run it with `cargo run --example tour`.

mod ring;
mod timers;

fn main() {
    println!("structured-async tour");
    timers::run();
    ring::run();
}
