//! `berth run`: create a container and start it, attached (until it exits or the person
//! detaches) or detached (`-d`).

use anyhow::Result;
use berth_client::engine::{ContainerRecord, Engine, EngineError, RestartPolicy};
use clap::Args;

use super::create::create_record;
use super::opts::CreateFlags;
use super::supervise::spawn_supervisor;
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
    // Checked before anything is opened or created, as docker does.
    let attach_stdin = a.flags.interactive
        && (a.flags.attach.is_empty()
            || a.flags
                .attach
                .iter()
                .any(|s| s.eq_ignore_ascii_case("stdin")));
    if !a.detach && term::input_not_a_tty(attach_stdin, a.flags.tty) {
        return Ok(1);
    }
    let e = match g.engine() {
        Ok(e) => e,
        Err(err) => return Ok(engine_failure(&err)),
    };
    let detach_keys = match term::parse_detach_keys(&a.detach_keys) {
        Ok(k) => k,
        Err(err) => return Ok(engine_failure(&err)),
    };
    if a.detach && !a.flags.attach.is_empty() {
        eprintln!("Conflicting options: -a and -d");
        return Ok(1);
    }
    let mut rec = match create_record(&e, &a.flags) {
        Ok(r) => r,
        Err(err) => return Ok(engine_failure(&err)),
    };
    if a.detach {
        if let Err(err) = e.start(&mut rec) {
            after_attached_run(&e, &rec);
            return Ok(engine_failure(&err.into()));
        }
        spawn_supervisor(&e, &rec)?;
        println!("{}", rec.id);
        return Ok(0);
    }
    // `-a` without stdin: the person's input stays here.
    let stdin = attach_stdin;
    let code = match attached_run(&e, &mut rec, stdin, a.sig_proxy, detach_keys) {
        Ok(Outcome::Exited(exit)) => exit.code,
        Ok(Outcome::Detached) => {
            spawn_supervisor(&e, &rec)?;
            return Ok(0);
        }
        Err(err) => engine_failure(&err),
    };
    after_attached_run(&e, &rec);
    Ok(code)
}

/// What follows a run a person stayed attached to until its exit: `--rm` removes the
/// container; otherwise it gives back its address and ports, unless its supervisor is to
/// decide (a restart policy: the next run may already be starting).
pub fn after_attached_run(e: &Engine, rec: &ContainerRecord) {
    if rec.host.auto_remove {
        match e.remove(rec, true, true) {
            // Its supervisor (a healthcheck's) removed it first.
            Ok(()) | Err(EngineError::NotFound(_)) => {}
            Err(err) => eprintln!("berth: removing container {}: {err}", rec.short_id()),
        }
    } else if rec.restart_policy == RestartPolicy::No {
        e.disconnect(rec);
    }
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
    if e.needs_watching(rec) {
        // Restarts and healthchecks go on while the person is attached, and after.
        spawn_supervisor(e, rec)?;
    }
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
