//! A short tour of `multiprocess`: run it with `cargo run --release --example tour`.
fn main() {
    multiprocess::init();
    println!("tour: to be written");
}
