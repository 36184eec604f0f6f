//! `berth attach`: the person's terminal to a running container's streams, until it exits or
//! the detach keys.

use anyhow::Result;
use clap::Args;

use super::term::{self, Outcome, Session};
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    container: String,
}

pub fn run(g: &Globals, a: AttachArgs) -> Result<i32> {
    let e = g.engine()?;
    let rec = e.resolve(&a.container)?;
    if term::input_not_a_tty(!a.no_stdin, rec.config.tty) {
        return Ok(1);
    }
    let stdin = !a.no_stdin && rec.config.open_stdin;
    let mut attached = e.attach(&rec, stdin)?;
    let session = Session {
        stdin,
        tty: rec.config.tty,
        sig_proxy: a.sig_proxy,
        detach_keys: term::parse_detach_keys(&a.detach_keys)?,
    };
    let signals = attached.signals();
    match term::attach(&mut attached, session, false, move |sig| {
        let _ = signals.send(sig);
    })? {
        Outcome::Exited(exit) => {
            if rec.host.auto_remove {
                e.remove(&rec, true, true)?;
            }
            Ok(exit.code)
        }
        Outcome::Detached => Ok(0),
    }
}
