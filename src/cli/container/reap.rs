//! What a daemon would do when a container exits, done by a process of berth's own: `run -d
//! --rm` (and a detached `run --rm`) leave a `berth __reap ID` process (setsid) that removes
//! the container at its exit; a container with published ports gives them back.

use anyhow::{Context, Result};
use berth_client::engine::{ContainerRecord, Engine, NetworkMode, Status};

use super::each::ContainersArg;
use crate::cli::globals::Globals;

/// Whether a started container needs someone to act when it exits: a `--rm` one is
/// removed, one with published ports gives them back (docker's daemon does both).
pub fn needs_reaper(rec: &ContainerRecord) -> bool {
    rec.host.auto_remove
        || (rec.host.network == NetworkMode::Bridge && !rec.host.port_bindings.is_empty())
}

/// `run -d --rm`, and containers with published ports: a process of our own waits for the
/// exit and removes the container, or unplugs it from the bridge, as docker's daemon would.
pub fn spawn_reaper(e: &Engine, rec: &ContainerRecord) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("find the berth executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__reap")
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
    cmd.spawn().context("start the --rm reaper")?;
    Ok(())
}

pub fn run(g: &Globals, a: ContainersArg) -> Result<i32> {
    let e = g.engine()?;
    for name in &a.containers {
        if let Ok(rec) = e.resolve(name) {
            let _ = e.wait(&rec);
            // Removed meanwhile by someone else, or restarted: leave it.
            if let Ok(rec) = e.resolve(&rec.id) {
                match e.state(&rec).status {
                    Status::Exited if rec.host.auto_remove => e.remove(&rec, false, true)?,
                    Status::Exited => e.disconnect(&rec),
                    _ => {}
                }
            }
        }
    }
    Ok(0)
}
