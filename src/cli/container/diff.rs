//! `berth diff`: what a container changed in its filesystem, one `A`/`C`/`D` line per path.

use std::io::Write;

use anyhow::Result;
use clap::Args;

use crate::cli::exit::quiet_pipe;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct DiffArgs {
    container: String,
}

pub fn run(g: &Globals, a: DiffArgs) -> Result<i32> {
    let e = g.engine()?;
    let rec = e.resolve(&a.container)?;
    let changes = e.changes(&rec)?;
    quiet_pipe((|| {
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for c in changes {
            writeln!(out, "{} {}", c.kind.letter(), c.path)?;
        }
        out.flush()?;
        Ok(0)
    })())
}
