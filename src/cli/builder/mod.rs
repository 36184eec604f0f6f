//! `berth builder …`: the build cache (`berth_client::build`'s records in the store).

pub mod prune;

use anyhow::Result;
use clap::Subcommand;

use super::globals::Globals;

/// `berth builder …`.
#[derive(Subcommand)]
#[command(defer = true)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune(prune::PruneArgs),
}

impl BuilderCommand {
    pub fn run(self, g: &Globals) -> Result<i32> {
        match self {
            BuilderCommand::Prune(a) => prune::run(&g.open_store()?, a),
        }
    }
}
