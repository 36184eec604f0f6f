//! What docker's daemon does for a running container, done by a process of berth's own: a
//! started container that needs it (a restart policy, a healthcheck, `--rm`, published
//! ports; `Engine::needs_supervisor`) gets a `berth __supervise ID` process (a session of
//! its own, so it outlives the command that started it) running the engine's supervisor
//! until the container stays down or is removed.

use anyhow::{Context, Result};
use berth_client::engine::{ContainerRecord, Engine};

use super::each::ContainersArg;
use crate::cli::globals::Globals;

/// Starts the container's supervisor when it needs one (a second one leaves at once).
pub fn spawn_supervisor(e: &Engine, rec: &ContainerRecord) -> Result<()> {
    use std::os::unix::process::CommandExt;
    if !e.needs_supervisor(rec) {
        return Ok(());
    }
    let exe = std::env::current_exe().context("find the berth executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__supervise")
        .arg("--root")
        .arg(e.root())
        .arg(&rec.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().context("start the container's supervisor")?;
    Ok(())
}

pub fn run(g: &Globals, a: ContainersArg) -> Result<i32> {
    let e = g.engine()?;
    for name in &a.containers {
        if let Ok(rec) = e.resolve(name) {
            e.supervise(&rec.id)?;
        }
    }
    Ok(0)
}
