//! `berth kill`: a signal to containers' main processes.

use anyhow::Result;
use berth_client::engine::parse_signal;
use clap::Args;

use super::each::{each, ContainersArg};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[command(flatten)]
    pub c: ContainersArg,
}

pub fn run(g: &Globals, a: KillArgs) -> Result<i32> {
    let signal = parse_signal(&a.signal)?;
    each(g, &a.c, |e, rec| e.kill(rec, signal).map(|_| true))
}
