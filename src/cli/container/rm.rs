//! `berth rm`: remove containers (`-f` kills a running one first, `-v` takes its anonymous
//! volumes too).

use anyhow::Result;
use clap::Args;

use super::each::{each, ContainersArg};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    #[command(flatten)]
    pub c: ContainersArg,
}

pub fn run(g: &Globals, a: RmArgs) -> Result<i32> {
    each(g, &a.c, |e, rec| {
        e.remove(rec, a.force, a.volumes).map(|_| true)
    })
}
