//! Unpacks one layer blob into a directory and prints the summary: the piece of `pull` that
//! bench/ measures against `tar -x` and the other clients' unpackers.
//!
//! Usage: `cargo run --release -p berth-client --example unpack_layer -- LAYER TARGET_DIR`

use std::fs::File;
use std::process::ExitCode;

use berth_client::unpack::{unpack_layer, UnpackOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [layer, target] = args.as_slice() else {
        eprintln!("usage: unpack_layer LAYER TARGET_DIR");
        return ExitCode::from(2);
    };
    let result = File::open(layer)
        .map_err(|e| format!("{layer}: {e}"))
        .and_then(|f| {
            unpack_layer(f, target.as_ref(), &UnpackOptions::default()).map_err(|e| e.to_string())
        });
    match result {
        Ok(s) => {
            println!(
                "{:?} entries={} bytes={} uncompressed={} diff_id={}",
                s.compression, s.entries, s.bytes, s.uncompressed_size, s.diff_id
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("unpack_layer: {e}");
            ExitCode::FAILURE
        }
    }
}
