//! `berth start`: start stopped containers, detached, or attached with `-a`/`-i`.

use anyhow::{bail, Result};
use berth_client::engine::{EngineError, Status};
use clap::Args;

use super::each::{each, ContainersArg};
use super::run::{after_attached_run, attached_run};
use super::supervise::spawn_supervisor;
use super::term::{self, Outcome};
use crate::cli::exit::engine_failure;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    #[command(flatten)]
    pub c: ContainersArg,
}

pub fn run(g: &Globals, a: StartArgs) -> Result<i32> {
    let e = g.engine()?;
    if a.attach || a.interactive {
        if a.c.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let keys = term::parse_detach_keys(&a.detach_keys)?;
        let mut rec = e.resolve(&a.c.containers[0])?;
        let stdin = a.interactive && rec.config.open_stdin;
        return match attached_run(&e, &mut rec, stdin, true, keys) {
            Ok(Outcome::Exited(exit)) => {
                after_attached_run(&e, &rec);
                Ok(exit.code)
            }
            Ok(Outcome::Detached) => {
                spawn_supervisor(&e, &rec)?;
                Ok(0)
            }
            Err(err) => Ok(engine_failure(&err)),
        };
    }
    each(g, &a.c, |e, rec| {
        let mut rec = rec.clone();
        match e.state(&rec).status {
            // docker: starting a running container is not an error.
            Status::Running | Status::Paused => Ok(true),
            _ => {
                e.start(&mut rec)?;
                spawn_supervisor(e, &rec).map_err(|err| EngineError::Invalid(err.to_string()))?;
                Ok(true)
            }
        }
    })
}
