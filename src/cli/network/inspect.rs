//! `berth network inspect`: docker's network document, with the running containers on it.

use anyhow::Result;
use clap::Args;

use super::view;
use crate::cli::format::print_inspect;
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
    print_inspect(&out, a.format.as_deref())?;
    Ok(code)
}
