//! `berth stop` and `berth restart`: the stop signal, SIGKILL after the timeout, and for
//! restart a start again.

use anyhow::Result;
use berth_client::engine::{parse_signal, stop_timeout, EngineError};
use clap::Args;

use super::each::{each, ContainersArg};
use super::supervise::spawn_supervisor;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container (default: its --stop-timeout, else 10;
    /// -1 waits forever)
    #[arg(
        short = 't',
        long = "time",
        alias = "timeout",
        allow_hyphen_values = true
    )]
    time: Option<i64>,
    /// Signal to send to the container (default: the image's StopSignal, else SIGTERM)
    #[arg(short, long)]
    signal: Option<String>,
    #[command(flatten)]
    pub c: ContainersArg,
}

pub fn run(g: &Globals, a: StopArgs, restart: bool) -> Result<i32> {
    let signal = a.signal.as_deref().map(parse_signal).transpose()?;
    each(g, &a.c, |e, rec| {
        let mut rec = rec.clone();
        if let Some(sig) = signal {
            rec.config.stop_signal = Some(sig.to_string());
        }
        let timeout = match a.time {
            Some(t) => stop_timeout(t),
            None => e.stop_timeout(&rec),
        };
        e.stop(&rec, timeout)?;
        if restart {
            let mut rec = e.resolve(&rec.id)?;
            e.start(&mut rec)?;
            spawn_supervisor(e, &rec).map_err(|err| EngineError::Invalid(err.to_string()))?;
        }
        Ok(true)
    })
}
