//! `berth export`: a container's merged filesystem as a tar, to a file or stdout.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::cli::flags::TarOutput;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Write to a file, instead of STDOUT
    #[arg(short, long)]
    output: Option<PathBuf>,
    container: String,
}

pub fn run(g: &Globals, a: ExportArgs) -> Result<i32> {
    let out = TarOutput::open(a.output.as_deref())?;
    let e = g.engine()?;
    let rec = e.resolve(&a.container)?;
    e.export(&rec, out.writer()?)?;
    out.finish()?;
    Ok(0)
}
