//! `berth volume inspect`: docker's volume documents.

use anyhow::Result;
use berth_client::engine::EngineError;
use clap::Args;

use super::view;
use crate::cli::format::{InspectFormat, Schema};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format the output using the given Go template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true, value_name = "VOLUME")]
    volumes: Vec<String>,
}

/// As docker: the documents found are printed, each volume not found is one line on stderr,
/// and the status is 1 if any was not found.
pub fn run(g: &Globals, a: InspectArgs) -> Result<i32> {
    let format = InspectFormat::parse(a.format.as_deref())?;
    let e = g.engine()?;
    let mut out = Vec::new();
    let mut code = 0;
    for name in &a.volumes {
        match e.volume(name) {
            Ok(v) => out.push(view::inspect(&e, &v)),
            Err(err @ EngineError::NoSuchVolume(_)) => {
                eprintln!("Error: {err}");
                code = 1;
            }
            Err(err) => return Err(err.into()),
        }
    }
    format.print(&out, &DOC)?;
    Ok(code)
}

/// docker's volume document (docker's inspect runs no second pass on its JSON for volumes).
pub const DOC: Schema = Schema {
    root: "volume.Volume",
    types: &[],
    raw_fallback: false,
};
