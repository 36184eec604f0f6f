//! `berth system …`, and `berth inspect` (docker keeps it with the system commands).
//!
//! A new verb: a file here with its `Args` and `run`, a variant in [`SystemCommand`], and its
//! arm in [`SystemCommand::run`]; a verb docker also has at the top level (`info`, `events`)
//! goes in a shared verb enum flattened at the top, as `container::ContainerVerb` is.

pub mod boot;
pub mod df;
pub mod inspect;

use anyhow::Result;
use clap::Subcommand;

use super::exit::quiet_pipe;
use super::globals::Globals;

/// `berth system …`.
#[derive(Subcommand)]
pub enum SystemCommand {
    /// Start the containers whose restart policy asks for it, once the host has started
    Boot(boot::BootArgs),
    /// Show disk usage
    Df(df::DfArgs),
}

impl SystemCommand {
    pub fn run(self, g: &Globals) -> Result<i32> {
        match self {
            SystemCommand::Boot(a) => boot::run(g, a),
            SystemCommand::Df(a) => quiet_pipe(df::run(&g.open_store()?, a)),
        }
    }
}
