//! `berth system …`, and `berth inspect` (docker keeps it with the system commands).
//!
//! A new verb: a file here with its `Args` and `run`, a variant in [`SystemCommand`], and its
//! arm in [`SystemCommand::run`]; a verb docker also has at the top level (`info`, `events`)
//! goes in a shared verb enum flattened at the top, as `container::ContainerVerb` is.

pub mod boot;
pub mod df;
pub mod events;
pub mod info;
pub mod inspect;
pub mod prune;
pub mod version;

use anyhow::Result;
use clap::Subcommand;

use super::exit::quiet_pipe;
use super::globals::Globals;
use super::verb::{Object, Respell, Respelling};

/// The system verbs docker has under both spellings (`berth events`, `berth system events`).
#[derive(Subcommand)]
#[command(defer = true)]
pub enum SystemVerb {
    /// Get real time events from the server
    Events(events::EventsArgs),
    /// Display system-wide information
    Info(info::InfoArgs),
}

impl Respell for SystemVerb {
    fn respellings() -> Vec<Respelling<Self>> {
        vec![]
    }
}

impl SystemVerb {
    pub fn run(self, g: &Globals) -> Result<i32> {
        match self {
            SystemVerb::Events(a) => events::run(g, a),
            SystemVerb::Info(a) => info::run(g, a),
        }
    }
}

/// `berth system …`.
#[derive(Subcommand)]
#[command(defer = true)]
pub enum SystemCommand {
    #[command(flatten)]
    Verb(Object<SystemVerb>),
    /// Start the containers whose restart policy asks for it, once the host has started
    Boot(boot::BootArgs),
    /// Show disk usage
    Df(df::DfArgs),
    /// Remove unused data
    Prune(prune::PruneArgs),
}

impl SystemCommand {
    pub fn run(self, g: &Globals) -> Result<i32> {
        match self {
            SystemCommand::Verb(v) => v.0.run(g),
            SystemCommand::Boot(a) => boot::run(g, a),
            SystemCommand::Df(a) => quiet_pipe(df::run(&g.open_store()?, a)),
            SystemCommand::Prune(a) => prune::run(g, a),
        }
    }
}
