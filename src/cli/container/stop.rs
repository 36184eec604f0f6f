//! `berth stop` and `berth restart`: the stop signal, SIGKILL after the timeout, and for
//! restart a start again.

use std::time::Duration;

use anyhow::Result;
use berth_client::engine::parse_signal;
use clap::Args;

use super::each::{each, ContainersArg};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
    time: u64,
    /// Signal to send to the container (default: the image's StopSignal, else SIGTERM)
    #[arg(short, long)]
    signal: Option<String>,
    #[command(flatten)]
    pub c: ContainersArg,
}

pub fn run(g: &Globals, a: StopArgs, restart: bool) -> Result<i32> {
    let timeout = Duration::from_secs(a.time);
    let signal = a.signal.as_deref().map(parse_signal).transpose()?;
    each(g, &a.c, |e, rec| {
        let mut rec = rec.clone();
        if let Some(sig) = signal {
            rec.config.stop_signal = Some(sig.to_string());
        }
        e.stop(&rec, timeout)?;
        if restart {
            let mut rec = e.resolve(&rec.id)?;
            e.start(&mut rec)?;
        }
        Ok(true)
    })
}
