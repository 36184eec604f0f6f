//! `berth rename`: give a container another name.

use anyhow::Result;
use clap::Args;

use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

pub fn run(g: &Globals, a: RenameArgs) -> Result<i32> {
    let e = g.engine()?;
    let rec = e.resolve(&a.container)?;
    e.rename(&rec, &a.new_name)?;
    Ok(0)
}
