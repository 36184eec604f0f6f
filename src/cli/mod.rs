//! The `berth` command line: a directory per docker object, a file per verb.
//!
//! ```text
//! cli/container/<verb>.rs   run, create, start, stop (+restart), kill, rm, ps, logs, top, exec,
//!                           attach, wait, rename, pause (+unpause), port, diff, commit, cp,
//!                           export, inspect, prune
//!                           (opts.rs: the run/create flags and their conversion)
//! cli/image/<verb>.rs       build, pull, push, ls (images), rm (rmi), tag, history, save,
//!                           load, import, inspect, prune
//! cli/builder/<verb>.rs     prune (the build cache)
//! cli/network/<verb>.rs     ls, inspect, and the verbs not supported yet
//! cli/volume/<verb>.rs      create, ls, inspect, rm, prune
//! cli/system/<verb>.rs      events, info, df, version, and `berth inspect`
//! cli/registry/<verb>.rs    login (+logout), search
//! cli/serve/                berth serve: the registry server; gc.rs: berth gc, one garbage
//!                           collection of its store
//! ```
//!
//! Shared, each in one place: [`format`] (tables, `--format` templates, sizes and times,
//! inspect documents), [`flags`] (times, byte sizes, prune's prompt), [`exit`] (how errors
//! become one line and docker's exit codes), [`globals`] (`--root`, the store and the engine),
//! [`remote`] (the configured registry client), [`verb`] (one verb under both spellings),
//! [`usage`] (docker's usage line and argument count of every verb: a new verb gets its row).
//!
//! An object's verbs that docker also has at the top level are one enum (`ContainerVerb`,
//! `ImageVerb`) flattened into [`Command`] and, through [`verb::Object`], into the object's
//! command: `berth stop` and `berth container stop` are one definition.
//!
//! Each verb enum is `#[command(defer = true)]`: clap builds a verb's arguments only when the
//! command line names it (help and errors build what they show), not those of every verb on
//! every start (~0.5 ms of each command: `run` and `create`'s flags alone are built four
//! times). A verb's `Args` struct (and what it flattens) therefore has no doc comment or
//! `about` of its own: applied after the verb's, it would replace it. The top-level
//! [`Command`] is built whole: [`usage`] sets each object's verbs' usage lines on it.

pub mod builder;
pub mod container;
pub mod exit;
pub mod flags;
pub mod format;
pub mod globals;
pub mod image;
pub mod network;
pub mod registry;
pub mod remote;
pub mod serve;
pub mod system;
pub mod usage;
pub mod verb;
pub mod volume;

use clap::Subcommand;

use exit::one_line;
use globals::Globals;

#[derive(Subcommand)]
pub enum Command {
    #[command(flatten)]
    Containers(Box<container::ContainerVerb>),
    #[command(flatten)]
    Images(image::ImageVerb),
    #[command(flatten)]
    Systems(system::SystemVerb),
    /// Display detailed information on containers or images
    Inspect(system::inspect::InspectArgs),
    /// Search a registry for images
    Search(registry::search::SearchArgs),
    /// Log in to a registry (credentials kept in docker's config.json)
    Login(registry::login::LoginArgs),
    /// Log out from a registry
    Logout(registry::login::LogoutArgs),
    /// Manage containers
    Container {
        #[command(subcommand)]
        command: Box<container::ContainerCommand>,
    },
    /// Manage builds
    Builder {
        #[command(subcommand)]
        command: builder::BuilderCommand,
    },
    /// Manage images
    Image {
        #[command(subcommand)]
        command: image::ImageCommand,
    },
    /// Manage networks
    Network {
        #[command(subcommand)]
        command: network::NetworkCommand,
    },
    /// Manage volumes
    Volume {
        #[command(subcommand)]
        command: volume::VolumeCommand,
    },
    /// Manage berth
    System {
        #[command(subcommand)]
        command: system::SystemCommand,
    },
    /// Show the berth version information
    Version(system::version::VersionArgs),
    /// Run the registry server
    Serve(serve::ServeArgs),
    /// Collect the garbage of a registry's store (safe beside running servers and pushes)
    Gc(serve::gc::GcArgs),
    /// Supervises a started container: restarts, healthchecks, --rm (started by run/start)
    #[command(hide = true, name = "__supervise")]
    Supervise(container::each::ContainersArg),
}

impl Command {
    /// Whether the command works on the local store or containers: as an ordinary user, it
    /// then runs in the user's namespace (rootless berth). The registry's commands and those
    /// that only talk to a registry stay as they are.
    fn rootless(&self) -> bool {
        !matches!(
            self,
            Command::Serve(_)
                | Command::Gc(_)
                | Command::Version(_)
                | Command::Search(_)
                | Command::Login(_)
                | Command::Logout(_)
        )
    }
}

/// Runs a command and returns the process exit status, having printed any error as one line.
/// Call it before any thread starts: an ordinary user's command joins the user namespace of
/// rootless berth first, which the kernel allows only to a process with one thread.
pub fn run(g: &Globals, command: Command) -> i32 {
    if command.rootless() {
        if let Err(e) = berth_client::engine::rootless::enter() {
            return exit::engine_failure(&e.into());
        }
    }
    let result = match command {
        Command::Serve(a) => serve::run(g, a),
        Command::Gc(a) => serve::gc::run(g, a),
        Command::Images(v) => v.run(g),
        Command::Systems(v) => v.run(g),
        Command::Version(a) => system::version::run(a),
        Command::Inspect(a) => g
            .open_store()
            .and_then(|store| system::inspect::run(&store, a)),
        Command::Search(a) => registry::search::run(a),
        Command::Image { command } => command.run(g),
        Command::Builder { command } => command.run(g),
        Command::System { command } => command.run(g),
        Command::Containers(v) => v.run(g),
        Command::Container { command } => command.run(g),
        Command::Supervise(a) => container::supervise::run(g, a),
        Command::Network { command } => command.run(g),
        Command::Volume { command } => command.run(g),
        Command::Login(a) => registry::login::login(a),
        Command::Logout(a) => registry::login::logout(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<exit::StatusError>() {
            Some(s) => {
                eprintln!("{}", s.message);
                s.status
            }
            None => {
                eprintln!("Error: {}", one_line(&e));
                1
            }
        },
    }
}
