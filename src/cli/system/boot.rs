//! `berth system boot`: what docker's daemon does when it starts, for a host without a
//! daemon. Run once when the host has started (a systemd unit or an `@reboot` cron entry,
//! as the README shows): every container whose restart policy asks for it is started again
//! (`always`; `unless-stopped` unless a person stopped it; `on-failure` after a failure,
//! which includes a run lost with the host) and gets its supervisor; a running container
//! without its supervisor gets one. Prints the name of each container it started.

use anyhow::Result;
use berth_client::engine::EngineError;
use clap::Args;

use crate::cli::container::supervise::spawn_supervisor;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct BootArgs {}

pub fn run(g: &Globals, _a: BootArgs) -> Result<i32> {
    let e = g.engine()?;
    let mut code = 0;
    for rec in e.list()? {
        let started = match e.start_at_boot(&rec.id) {
            Ok(s) => s,
            // Removed meanwhile.
            Err(EngineError::NotFound(_)) => continue,
            Err(err) => {
                eprintln!("Error: starting container {}: {err}", rec.name);
                code = 1;
                continue;
            }
        };
        let Ok(rec) = e.resolve(&rec.id) else {
            continue;
        };
        if e.state(&rec).running() {
            spawn_supervisor(&e, &rec)?;
        }
        if started {
            println!("{}", rec.name);
        }
    }
    Ok(code)
}
