//! `berth exec`: another process in a running container, attached, with a terminal (`-t`),
//! or detached (`-d`).

use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::Result;
use berth_client::engine::{ExecOptions, ExecStdio};
use clap::Args;

use super::opts::environment;
use super::term;
use crate::cli::exit::ENGINE_FAILURE;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// The container, then the command and its arguments: one positional, so that parsing
    /// stops at the container as docker's does (`exec CONTAINER -x` runs `-x`).
    #[arg(
        value_name = "ARG",
        required = true,
        num_args = 2..,
        trailing_var_arg = true
    )]
    argv: Vec<String>,
}

pub fn run(g: &Globals, a: ExecArgs) -> Result<i32> {
    if !a.detach && term::input_not_a_tty(a.interactive, a.tty) {
        return Ok(1);
    }
    let e = g.engine()?;
    let rec = match e.resolve(&a.argv[0]) {
        Ok(r) => r,
        Err(err) => {
            eprintln!("Error: {err}");
            return Ok(1);
        }
    };
    let opts = ExecOptions {
        cmd: a.argv[1..].to_vec(),
        env: environment(&a.env_file, &a.env)?,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        tty: a.tty && !a.detach,
    };
    let stdio = if a.detach {
        ExecStdio::Null
    } else if a.tty || a.interactive {
        ExecStdio::Inherit
    } else {
        let null = std::fs::File::open("/dev/null")?;
        ExecStdio::Fds {
            stdin: null.into(),
            stdout: std::io::stdout().as_fd().try_clone_to_owned()?,
            stderr: std::io::stderr().as_fd().try_clone_to_owned()?,
        }
    };
    let mut p = match e.exec(&rec, &opts, stdio) {
        Ok(p) => p,
        Err(err) => {
            let code = err.exit_code();
            eprintln!("berth: {err}");
            return Ok(if code == ENGINE_FAILURE { 1 } else { code });
        }
    };
    if a.detach {
        return Ok(0);
    }
    if let Some(pty) = p.take_pty() {
        let (exited, rx) = std::sync::mpsc::channel::<()>();
        let pump = std::thread::spawn(move || term::pump_pty(pty, a.interactive, rx));
        let exit = p.wait();
        // The output pump ends when the process's pty closes, or shortly after the exit when
        // a process left in the background holds it (its stdin reader is detached).
        drop(exited);
        let _ = pump.join();
        return Ok(exit?.code);
    }
    Ok(p.wait()?.code)
}
