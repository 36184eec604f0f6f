//! The `berth` binary: parses the command line and hands it to `cli`, which holds every
//! command (a directory per docker object, a file per verb) and decides the exit status.

mod cli;

use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "A container registry and a daemonless docker-compatible container tool",
    propagate_version = true
)]
struct Cli {
    /// Root directory of the store [default: $BERTH_ROOT, else /var/lib/berth as root, else
    /// ~/.local/share/berth]; for `serve` and `gc`, the registry's storage (overrides its config)
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: cli::Command,
}

fn main() {
    let command = cli::usage::docker_usage(Cli::command());
    let parsed = command
        .try_get_matches()
        .and_then(|mut m| Cli::from_arg_matches_mut(&mut m));
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => std::process::exit(cli::exit::usage_error(e)),
    };
    let globals = cli::globals::Globals { root: cli.root };
    let code = cli::run(&globals, cli.command);
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A start builds only the verb it runs (`#[command(defer = true)]`), so clap's checks of
    /// a definition (conflicting names, bad defaults) would reach the other verbs only when
    /// someone runs them: here the whole tree is built and checked.
    #[test]
    fn every_verb_is_well_defined() {
        cli::usage::docker_usage(Cli::command()).debug_assert();
    }
}
