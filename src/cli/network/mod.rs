//! `berth network …`: the networks a container can be on (bridge, host, none), listed and
//! inspected as docker shows them. User-defined networks are not there yet, and the verbs
//! that would make them say so.
//!
//! A new verb: a file here with its `Args` and `run`, a variant in [`NetworkCommand`], and its
//! arm in [`NetworkCommand::run`].

pub mod inspect;
pub mod ls;
pub mod predefined;
pub mod unsupported;

use anyhow::Result;
use clap::Subcommand;

use super::globals::Globals;

#[derive(Subcommand)]
pub enum NetworkCommand {
    /// List networks
    #[command(visible_aliases = ["list"])]
    Ls(ls::LsArgs),
    /// Display detailed information on one or more networks
    Inspect(inspect::InspectArgs),
    /// Create a network (not supported yet: berth has bridge, host and none)
    Create(unsupported::NamedArgs),
    /// Remove one or more networks (not supported: bridge, host and none always exist)
    #[command(visible_alias = "remove")]
    Rm(unsupported::NamedArgs),
    /// Connect a container to a network (not supported yet)
    Connect(unsupported::NamedArgs),
    /// Disconnect a container from a network (not supported yet)
    Disconnect(unsupported::NamedArgs),
}

impl NetworkCommand {
    pub fn run(self, g: &Globals) -> Result<i32> {
        match self {
            NetworkCommand::Ls(a) => ls::run(a),
            NetworkCommand::Inspect(a) => inspect::run(g, a),
            NetworkCommand::Create(_)
            | NetworkCommand::Connect(_)
            | NetworkCommand::Disconnect(_) => unsupported::user_defined(),
            NetworkCommand::Rm(a) => unsupported::rm(a),
        }
    }
}
