//! The `berth` command line: parses arguments, then calls into the crates.
//!
//! Each area of commands lives in its own module under `cli/` and is flattened into one
//! command enum, so that `berth pull`, `berth serve` and `berth run` sit side by side as in
//! docker. Errors reach a person as one line on stderr and a non-zero exit status.

mod cli;

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A container registry and a daemonless docker-compatible container tool",
    propagate_version = true
)]
struct Cli {
    /// Root directory of the store [default: $BERTH_ROOT, else /var/lib/berth as root, else
    /// ~/.local/share/berth]; for `serve`, the registry's storage (overrides its config)
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: cli::Command,
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => std::process::exit(cli::usage_error(e)),
    };
    let globals = cli::Globals { root: cli.root };
    let code = cli::run(&globals, cli.command);
    std::process::exit(code);
}
