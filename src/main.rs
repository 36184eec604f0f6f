//! The `berth` command line: parses arguments, then calls into the crates.
fn main() {
    println!("berth");
}
