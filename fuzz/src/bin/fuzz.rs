//! The AFL++ harness: `fuzz TARGET` runs one target of `berth_fuzz::TARGETS` on the inputs
//! afl-fuzz hands it. bench/README.md has the commands.

fn main() {
    let name = std::env::args().nth(1).unwrap_or_default();
    let Some((_, target)) = berth_fuzz::TARGETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = berth_fuzz::TARGETS.iter().map(|(n, _)| *n).collect();
        eprintln!("usage: fuzz TARGET (one of: {})", names.join(", "));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| target(data));
}
