//! `berth network inspect`: docker's network document, with the running containers on it.

use anyhow::Result;
use clap::Args;

use super::view;
use crate::cli::format::{InspectFormat, Schema};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct InspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    #[arg(required = true, value_name = "NETWORK")]
    networks: Vec<String>,
}

/// As docker: the documents found are printed, each network not found is one line on
/// stderr, and the status is 1 if any was not found.
pub fn run(g: &Globals, a: InspectArgs) -> Result<i32> {
    let format = InspectFormat::parse(a.format.as_deref())?;
    let e = g.engine()?;
    let mut out = Vec::new();
    let mut code = 0;
    for wanted in &a.networks {
        match view::find(&e, wanted)? {
            Some(v) => out.push(v.inspect(&e)?),
            None => {
                eprintln!("Error: No such network: {wanted}");
                code = 1;
            }
        }
    }
    format.print(&out, &DOC)?;
    Ok(code)
}

/// docker's network document; a run that fails on its types runs again on its JSON.
pub const DOC: Schema = Schema {
    root: "network.Inspect",
    types: &[],
    raw_fallback: true,
};
