//! `berth cp`: files between a container and the host, as docker's `cp` moves them (a path
//! is the container's when it reads `CONTAINER:PATH`; `-` is a tar on stdin or stdout).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use berth_client::engine::{CopyOptions, HostSource, HostTarget};
use clap::Args;

use crate::cli::flags::validate_output_path;
use crate::cli::format::human_size;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Suppress progress output during copy. Progress output is automatically suppressed if
    /// no terminal is attached
    #[arg(short, long)]
    quiet: bool,
    #[arg(value_name = "SRC_PATH", allow_hyphen_values = true)]
    source: String,
    #[arg(value_name = "DEST_PATH", allow_hyphen_values = true)]
    destination: String,
}

/// docker's reading of a `cp` argument: `CONTAINER:PATH`, unless it is absolute, has no
/// `:`, or starts with `.` before its `:` (`./a:b` is a local file).
fn split(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.starts_with('.') => (Some(c), p),
        _ => (None, arg),
    }
}

/// A local path as docker resolves it: relative to the working directory, keeping a
/// trailing `/` or `/.`, which say what the path must be.
fn local(p: &str) -> Result<PathBuf> {
    let abs = std::path::absolute(p).with_context(|| format!("resolving {p}"))?;
    let mut s = abs.into_os_string();
    if p.ends_with("/.") && !s.to_string_lossy().ends_with("/.") {
        s.push("/.");
    } else if p.ends_with('/') && !s.to_string_lossy().ends_with('/') {
        s.push("/");
    }
    Ok(PathBuf::from(s))
}

pub fn run(g: &Globals, a: CpArgs) -> Result<i32> {
    if a.source.is_empty() {
        bail!("source can not be empty");
    }
    if a.destination.is_empty() {
        bail!("destination can not be empty");
    }
    let options = CopyOptions {
        archive: a.archive,
        follow_link: a.follow_link,
    };
    let progress = !a.quiet && std::io::stderr().is_terminal();
    match (split(&a.source), split(&a.destination)) {
        ((Some(_), _), (Some(_), _)) => bail!("copying between containers is not supported"),
        ((None, _), (None, _)) => bail!("must specify at least one container source"),
        ((Some(container), src), (None, dest)) => {
            let e = g.engine()?;
            let rec = e.resolve(container)?;
            if dest == "-" {
                let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
                e.copy_from(&rec, src, HostTarget::Stream(&mut out), &options)?;
                out.flush()?;
                return Ok(0);
            }
            let dest = local(dest)?;
            validate_output_path(&dest)?;
            let n = e.copy_from(&rec, src, HostTarget::Path(&dest), &options)?;
            if progress {
                eprintln!(
                    "Successfully copied {} to {}",
                    human_size(n),
                    dest.display()
                );
            }
        }
        ((None, src), (Some(container), dest)) => {
            let e = g.engine()?;
            let rec = e.resolve(container)?;
            let n = if src == "-" {
                let input = Box::new(std::io::stdin());
                e.copy_to(&rec, HostSource::Stream(input), dest, &options)?
            } else {
                let src = local(src)?;
                e.copy_to(&rec, HostSource::Path(Path::new(&src)), dest, &options)?
            };
            if progress {
                eprintln!(
                    "Successfully copied {} to {container}:{dest}",
                    human_size(n)
                );
            }
        }
    }
    Ok(0)
}
