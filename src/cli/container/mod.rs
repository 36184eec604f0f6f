//! `berth container …` and the container verbs at the top level (`berth run`, `berth ps`, …):
//! one file per verb (a small group shares one: `stop.rs` has restart, `pause.rs` unpause),
//! with its flags and its handler. The work is `berth_client::engine`.
//!
//! A new verb: a file here with its `Args` and `run`, a variant in [`ContainerVerb`] (both
//! spellings) or [`ContainerCommand`] (only `berth container …`), and its arm in
//! [`ContainerVerb::run`] or [`ContainerCommand::run`]. New `run`/`create` flags go in
//! [`opts::CreateFlags`] and their conversion in [`opts::create_options`].

pub mod attach;
pub mod commit;
pub mod cp;
pub mod create;
pub mod diff;
pub mod each;
pub mod exec;
pub mod export;
pub mod inspect;
pub mod kill;
pub mod logs;
pub mod mount;
pub mod opts;
pub mod pause;
pub mod port;
pub mod prune;
pub mod ps;
pub mod refused;
pub mod rename;
pub mod resources;
pub mod rm;
pub mod run;
pub mod start;
pub mod stats;
pub mod stop;
pub mod supervise;
pub mod term;
pub mod top;
pub mod update;
pub mod wait;

use anyhow::Result;
use clap::{FromArgMatches, Subcommand};

use super::globals::Globals;
use super::verb::{Object, Respell, Respelling};

/// The container verbs docker has under both spellings.
#[derive(Subcommand)]
#[command(defer = true)]
pub enum ContainerVerb {
    /// Create and run a new container from an image
    Run(run::RunArgs),
    /// Create a new container
    Create(create::CreateArgs),
    /// Start one or more stopped containers
    Start(start::StartArgs),
    /// Stop one or more running containers
    Stop(stop::StopArgs),
    /// Restart one or more containers
    Restart(stop::StopArgs),
    /// Kill one or more running containers
    Kill(kill::KillArgs),
    /// Remove one or more containers
    Rm(rm::RmArgs),
    /// List containers
    Ps(ps::PsArgs),
    /// Fetch the logs of a container
    Logs(logs::LogsArgs),
    /// Display the running processes of a container
    Top(top::TopArgs),
    /// Execute a command in a running container
    Exec(exec::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(attach::AttachArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(each::ContainersArg),
    /// Rename a container
    Rename(rename::RenameArgs),
    /// Pause all processes within one or more containers
    Pause(each::ContainersArg),
    /// Unpause all processes within one or more containers
    Unpause(each::ContainersArg),
    /// List port mappings or a specific mapping for the container
    Port(port::PortArgs),
    /// Inspect changes to files or directories on a container's filesystem
    Diff(diff::DiffArgs),
    /// Create a new image from a container's changes
    Commit(commit::CommitArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(cp::CpArgs),
    /// Export a container's filesystem as a tar archive
    Export(export::ExportArgs),
    /// Display a live stream of container(s) resource usage statistics
    Stats(stats::StatsArgs),
    /// Update configuration of one or more containers
    Update(update::UpdateArgs),
}

impl Respell for ContainerVerb {
    fn respellings() -> Vec<Respelling<Self>> {
        vec![
            Respelling {
                top: "ps",
                object: "ls",
                aliases: &["ps", "list"],
                parse: |m| Ok(ContainerVerb::Ps(ps::PsArgs::from_arg_matches_mut(m)?)),
            },
            Respelling {
                top: "rm",
                object: "rm",
                aliases: &["remove"],
                parse: |m| Ok(ContainerVerb::Rm(rm::RmArgs::from_arg_matches_mut(m)?)),
            },
        ]
    }
}

impl ContainerVerb {
    /// Runs the verb; returns the exit status.
    pub fn run(self, g: &Globals) -> Result<i32> {
        match self {
            ContainerVerb::Run(a) => run::run(g, a),
            ContainerVerb::Create(a) => create::run(g, a),
            ContainerVerb::Start(a) => start::run(g, a),
            ContainerVerb::Stop(a) => stop::run(g, a, false),
            ContainerVerb::Restart(a) => stop::run(g, a, true),
            ContainerVerb::Kill(a) => kill::run(g, a),
            ContainerVerb::Rm(a) => rm::run(g, a),
            ContainerVerb::Ps(a) => ps::run(g, a),
            ContainerVerb::Logs(a) => logs::run(g, a),
            ContainerVerb::Top(a) => top::run(g, a),
            ContainerVerb::Exec(a) => exec::run(g, a),
            ContainerVerb::Attach(a) => attach::run(g, a),
            ContainerVerb::Wait(a) => wait::run(g, a),
            ContainerVerb::Rename(a) => rename::run(g, a),
            ContainerVerb::Pause(a) => pause::pause(g, a),
            ContainerVerb::Unpause(a) => pause::unpause(g, a),
            ContainerVerb::Port(a) => port::run(g, a),
            ContainerVerb::Diff(a) => diff::run(g, a),
            ContainerVerb::Commit(a) => commit::run(g, a),
            ContainerVerb::Cp(a) => cp::run(g, a),
            ContainerVerb::Export(a) => export::run(g, a),
            ContainerVerb::Stats(a) => stats::run(g, a),
            ContainerVerb::Update(a) => update::run(g, a),
        }
    }
}

/// `berth container …`: the shared verbs, and those docker has only under the object.
#[derive(Subcommand)]
#[command(defer = true)]
pub enum ContainerCommand {
    #[command(flatten)]
    Verb(Box<Object<ContainerVerb>>),
    /// Display detailed information on one or more containers
    Inspect(inspect::InspectArgs),
    /// Remove all stopped containers
    Prune(prune::PruneArgs),
}

impl ContainerCommand {
    pub fn run(self, g: &Globals) -> Result<i32> {
        match self {
            ContainerCommand::Verb(v) => v.0.run(g),
            ContainerCommand::Inspect(a) => inspect::run(g, a),
            ContainerCommand::Prune(a) => prune::run(g, a),
        }
    }
}
