//! A walk through what structured-async does, printing what each part shows.
//! Run it with `cargo run --example tour`.

mod executor;
mod nursery;
mod ring;
mod structured;
mod timers;

fn main() {
    println!("structured-async tour");
    executor::run();
    nursery::run();
    timers::run();
    ring::run();
    structured::run();
}
