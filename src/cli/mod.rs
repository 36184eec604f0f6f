//! The command areas and how their errors become exit codes.

use std::path::PathBuf;

use anyhow::Context;
use berth_client::images::{default_root, ImageStore};
use clap::Subcommand;

pub mod containers;
pub mod images;
pub mod login;
pub mod network;
pub mod serve;

#[derive(Subcommand)]
pub enum Command {
    /// Run the registry server
    Serve(serve::ServeArgs),
    #[command(flatten)]
    Image(images::ImageCommand),
    #[command(flatten)]
    Container(Box<containers::ContainerCommand>),
    /// Manage networks
    Network {
        #[command(subcommand)]
        command: network::NetworkCommand,
    },
    /// Log in to a registry (credentials kept in docker's config.json)
    Login(login::LoginArgs),
    /// Log out from a registry
    Logout(login::LogoutArgs),
}

/// Options that every command takes, before or after its name (`berth --root D images`,
/// `berth images --root D`), as podman's global options.
pub struct Globals {
    /// `--root`: the store's directory. The client commands default to [`default_root`]
    /// (`$BERTH_ROOT`, else per user); `serve` defaults to its configuration's storage.
    pub root: Option<PathBuf>,
}

impl Globals {
    /// Opens the local store the client commands work on, first registering what reached it
    /// through `berth serve` (images pushed to a registry over this root). Call it before
    /// starting an async runtime: it starts its own when there is something to register.
    pub fn open_store(&self) -> anyhow::Result<ImageStore> {
        let root = self.root.clone().unwrap_or_else(default_root);
        let store = ImageStore::open(&root)?;
        let changes = store.served_changes()?;
        if !changes.is_empty() {
            let failed = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("starting the async runtime")?
                .block_on(store.adopt_served(changes))?;
            for (name, e) in failed {
                eprintln!(
                    "Warning: {name}, pushed to a registry over this store, is not an image here yet: {}",
                    one_line(&e.into())
                );
            }
        }
        Ok(store)
    }
}

/// Runs a command and returns the process exit status, having printed any error as one line.
pub fn run(globals: &Globals, command: Command) -> i32 {
    let result = match command {
        Command::Serve(args) => serve::run(globals, args),
        Command::Image(cmd) => images::run(globals, cmd),
        Command::Container(cmd) => containers::run(globals, *cmd),
        Command::Network { command } => network::run(globals, command),
        Command::Login(args) => login::login(args),
        Command::Logout(args) => login::logout(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {}", one_line(&e));
            1
        }
    }
}

/// A command line clap could not parse: help and version go out as asked; anything else is
/// one line on stderr and docker's 125.
pub fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                2
            } else {
                0
            }
        }
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            let usage = text
                .lines()
                .find_map(|l| l.strip_prefix("Usage: "))
                .and_then(|u| {
                    let words: Vec<&str> = u
                        .split_whitespace()
                        .take_while(|w| !w.starts_with('[') && !w.starts_with('<'))
                        .collect();
                    (!words.is_empty()).then(|| words.join(" "))
                })
                .unwrap_or_else(|| "berth".into());
            eprintln!("berth: {first} (see '{usage} --help')");
            125
        }
    }
}

/// Sends logs to stderr; `RUST_LOG` (or `BERTH_LOG`) picks the level, `info` by default.
pub fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("BERTH_LOG")
        .ok()
        .map(EnvFilter::new)
        .unwrap_or_else(|| {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
        });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// An error and its causes on one line: `reading config: key storage.root: invalid type`.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}
