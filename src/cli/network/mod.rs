//! `berth network …`: the predefined networks (bridge, host, none) and the user-defined ones
//! the engine keeps (`create`, `rm`, `prune`, `connect`, `disconnect`), listed and inspected
//! as docker shows them. `view` gives both kinds one shape for `ls` and `inspect`.
//!
//! A new verb: a file here with its `Args` and `run`, a variant in [`NetworkCommand`], and its
//! arm in [`NetworkCommand::run`].

pub mod connect;
pub mod create;
pub mod inspect;
pub mod ls;
pub mod prune;
pub mod rm;
pub mod view;

use anyhow::Result;
use clap::Subcommand;

use super::globals::Globals;

#[derive(Subcommand)]
#[command(defer = true)]
pub enum NetworkCommand {
    /// Connect a container to a network
    Connect(connect::ConnectArgs),
    /// Create a network
    Create(create::CreateArgs),
    /// Disconnect a container from a network
    Disconnect(connect::DisconnectArgs),
    /// Display detailed information on one or more networks
    Inspect(inspect::InspectArgs),
    /// List networks
    #[command(visible_aliases = ["list"])]
    Ls(ls::LsArgs),
    /// Remove all unused networks
    Prune(prune::PruneArgs),
    /// Remove one or more networks
    #[command(visible_alias = "remove")]
    Rm(rm::RmArgs),
}

impl NetworkCommand {
    pub fn run(self, g: &Globals) -> Result<i32> {
        match self {
            NetworkCommand::Connect(a) => connect::connect(g, a),
            NetworkCommand::Create(a) => create::run(g, a),
            NetworkCommand::Disconnect(a) => connect::disconnect(g, a),
            NetworkCommand::Inspect(a) => inspect::run(g, a),
            NetworkCommand::Ls(a) => ls::run(g, a),
            NetworkCommand::Prune(a) => prune::run(g, a),
            NetworkCommand::Rm(a) => rm::run(g, a),
        }
    }
}
