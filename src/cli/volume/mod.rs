//! `berth volume …`: docker's `local` volumes, kept by the engine (`volumes/<name>/` under
//! the root). The volumes `run -v NAME:/dir` makes and uses are the same objects.
//!
//! A new verb: a file here with its `Args` and `run`, a variant in [`VolumeCommand`], and its
//! arm in [`VolumeCommand::run`]. `view.rs` gives `ls` and `inspect` a volume's one shape.

pub mod create;
pub mod inspect;
pub mod ls;
pub mod prune;
pub mod rm;
pub mod view;

use anyhow::Result;
use clap::Subcommand;

use super::exit::quiet_pipe;
use super::globals::Globals;

#[derive(Subcommand)]
#[command(defer = true)]
pub enum VolumeCommand {
    /// Create a volume
    Create(create::CreateArgs),
    /// Display detailed information on one or more volumes
    Inspect(inspect::InspectArgs),
    /// List volumes
    #[command(visible_alias = "list")]
    Ls(ls::LsArgs),
    /// Remove all unused local volumes
    Prune(prune::PruneArgs),
    /// Remove one or more volumes. You cannot remove a volume that is in use by a container.
    #[command(visible_alias = "remove")]
    Rm(rm::RmArgs),
}

impl VolumeCommand {
    pub fn run(self, g: &Globals) -> Result<i32> {
        match self {
            VolumeCommand::Create(a) => create::run(g, a),
            VolumeCommand::Inspect(a) => inspect::run(g, a),
            VolumeCommand::Ls(a) => quiet_pipe(ls::run(g, a)),
            VolumeCommand::Prune(a) => prune::run(g, a),
            VolumeCommand::Rm(a) => rm::run(g, a),
        }
    }
}
