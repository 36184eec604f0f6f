//! `berth logs`: a container's log (json-file or local, its rotated files first), filtered by
//! time and tail, followed with `-f` across rotations.

use std::io::Write;

use anyhow::{anyhow, Result};
use berth_client::engine::LogOptions;
use clap::Args;

use crate::cli::flags::parse_time;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Number of lines to show from the end of the logs ("all" for all)
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Show logs since a timestamp (2013-01-02T13:23:37Z) or relative (42m for 42 minutes)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long)]
    until: Option<String>,
    container: String,
}

pub fn run(g: &Globals, a: LogsArgs) -> Result<i32> {
    let e = g.engine()?;
    let rec = e.resolve(&a.container)?;
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow!("invalid --tail {n:?}: a number of lines or \"all\""))?,
        ),
    };
    let opts = LogOptions {
        tail,
        since: a.since.as_deref().map(parse_time).transpose()?,
        until: a.until.as_deref().map(parse_time).transpose()?,
    };
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let running = || e.resolve(&rec.id).is_ok_and(|r| e.log_may_grow(&r));
    let follow: Option<&dyn Fn() -> bool> = if a.follow { Some(&running) } else { None };
    e.logs(&rec, &opts, follow, &mut |l| {
        let mut line = Vec::new();
        if a.timestamps {
            line.extend_from_slice(l.time.as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&l.data);
        if l.stream == 2 {
            stderr.write_all(&line).is_ok()
        } else {
            stdout.write_all(&line).and_then(|_| stdout.flush()).is_ok()
        }
    })?;
    Ok(0)
}
