//! `berth run`: create a container and start it, attached (until it exits or the person
//! detaches) or detached (`-d`).

use anyhow::Result;
use berth_client::engine::{ContainerRecord, Engine};
use clap::Args;

use super::create::create_record;
use super::opts::CreateFlags;
use super::reap::{needs_reaper, spawn_reaper};
use super::term::{self, Outcome, Session};
use crate::cli::exit::engine_failure;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    /// Proxy received signals to the process
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    #[command(flatten)]
    flags: CreateFlags,
}

pub fn run(g: &Globals, a: RunArgs) -> Result<i32> {
    let e = match g.engine() {
        Ok(e) => e,
        Err(err) => return Ok(engine_failure(&err)),
    };
    let detach_keys = match term::parse_detach_keys(&a.detach_keys) {
        Ok(k) => k,
        Err(err) => return Ok(engine_failure(&err)),
    };
    let mut rec = match create_record(&e, &a.flags) {
        Ok(r) => r,
        Err(err) => return Ok(engine_failure(&err)),
    };
    // After the run: --rm removes the container; otherwise it gives back its ports.
    let remove = |e: &Engine, rec: &ContainerRecord| {
        if rec.host.auto_remove {
            if let Err(err) = e.remove(rec, true, true) {
                eprintln!("berth: removing container {}: {err}", rec.short_id());
            }
        } else {
            e.disconnect(rec);
        }
    };
    if a.detach {
        if let Err(err) = e.start(&mut rec) {
            remove(&e, &rec);
            return Ok(engine_failure(&err.into()));
        }
        if needs_reaper(&rec) {
            spawn_reaper(&e, &rec)?;
        }
        println!("{}", rec.id);
        return Ok(0);
    }
    let code = match attached_run(&e, &mut rec, a.flags.interactive, a.sig_proxy, detach_keys) {
        Ok(Outcome::Exited(exit)) => exit.code,
        Ok(Outcome::Detached) => {
            if needs_reaper(&rec) {
                spawn_reaper(&e, &rec)?;
            }
            return Ok(0);
        }
        Err(err) => engine_failure(&err),
    };
    remove(&e, &rec);
    Ok(code)
}

/// Prepares, attaches and starts a container, then stays with it until it exits or the
/// user detaches.
pub fn attached_run(
    e: &Engine,
    rec: &mut ContainerRecord,
    stdin: bool,
    sig_proxy: bool,
    detach_keys: Vec<u8>,
) -> Result<Outcome> {
    let mut attached = e.attach_new(rec, stdin)?;
    let signals = attached.signals();
    let session = Session {
        stdin,
        tty: rec.config.tty,
        sig_proxy,
        detach_keys,
    };
    let res = term::attach(&mut attached, session, true, move |sig| {
        let _ = signals.send(sig);
    });
    if res.is_err() {
        // A command that could not run: the monitor records the exit (126/127) next, so
        // that `inspect` right after says so.
        attached.settle();
    }
    res
}
