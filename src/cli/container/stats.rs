//! `berth stats` (`container stats`): what containers use, in docker's columns and units
//! (`CONTAINER ID  NAME  CPU %  MEM USAGE / LIMIT  MEM %  NET I/O  BLOCK I/O  PIDS`).
//!
//! There is no daemon sampling in the background, so each reading is the engine's counters
//! at that moment: `--no-stream` reads once and its CPU % is the average since the
//! container started; the live view reads every second and shows each second's CPU %,
//! redrawn in place as docker's (cursor home, each line cleared, the rest erased).

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Result;
use berth_client::engine::{ContainerRecord, ContainerStats, Engine, EngineError};
use clap::Args;
use serde_json::{json, Value};

use crate::cli::format::{bytes_size, human_size, list_format, render_list, Schema};
use crate::cli::globals::Globals;

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Disable streaming stats and only pull the first result
    #[arg(long)]
    no_stream: bool,
    /// Do not truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go
    /// template; fields .Container .Name .ID .CPUPerc .MemUsage .MemPerc .NetIO .BlockIO
    /// .PIDs)
    #[arg(long)]
    format: Option<String>,
    /// Containers (name, id or id prefix); default: every running container
    #[arg(value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// One row: docker's `statsContext` fields, formatted as its CLI formats them.
fn row(
    container: &str,
    s: &ContainerStats,
    previous: Option<&ContainerStats>,
    trunc: bool,
) -> Value {
    let id = if trunc {
        &s.id[..12.min(s.id.len())]
    } else {
        &s.id
    };
    let percent = |v: f64| format!("{v:.2}%");
    json!({
        "Container": container,
        "Name": if s.name.is_empty() { "--" } else { &s.name },
        "ID": id,
        "CPUPerc": percent(s.cpu_percent(previous)),
        "MemUsage": format!("{} / {}", bytes_size(s.memory), bytes_size(s.memory_limit)),
        "MemPerc": percent(s.memory_percent()),
        "NetIO": format!("{} / {}", human_size(s.net_rx), human_size(s.net_tx)),
        "BlockIO": format!("{} / {}", human_size(s.block_read), human_size(s.block_write)),
        "PIDs": s.pids.to_string(),
    })
}

fn headers() -> Value {
    json!({
        "Container": "CONTAINER",
        "Name": "NAME",
        "ID": "CONTAINER ID",
        "CPUPerc": "CPU %",
        "MemUsage": "MEM USAGE / LIMIT",
        "MemPerc": "MEM %",
        "NetIO": "NET I/O",
        "BlockIO": "BLOCK I/O",
        "PIDs": "PIDS",
    })
}

/// The containers to read, each with the word its row's `.Container` shows (the name as
/// given, or the full id when listing: then those that do not run are left out after
/// their reading, unless `--all`). Named containers must exist (docker's error).
fn targets(e: &Engine, a: &StatsArgs) -> Result<Vec<(String, ContainerRecord)>> {
    if a.containers.is_empty() {
        return Ok(e
            .list()?
            .into_iter()
            .map(|rec| (rec.id.clone(), rec))
            .collect());
    }
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for name in &a.containers {
        match e.resolve(name) {
            Ok(rec) => out.push((name.clone(), rec)),
            Err(err @ EngineError::NotFound(_)) => missing.push(err.to_string()),
            Err(err) => return Err(err.into()),
        }
    }
    if !missing.is_empty() {
        anyhow::bail!("{}", missing.join("\n"));
    }
    Ok(out)
}

/// Named containers are shown whatever their state; listed ones when they run, or `--all`.
fn shown(a: &StatsArgs, s: &ContainerStats) -> bool {
    !a.containers.is_empty() || a.all || s.running
}

pub fn run(g: &Globals, a: StatsArgs) -> Result<i32> {
    let e = g.engine()?;
    let format = a.format.as_deref();
    // A bad template is refused before anything is read, even with no container to show.
    list_format(format, DEFAULT_FORMAT, &ROW)?;
    let trunc = !a.no_trunc;
    if a.no_stream {
        let mut rows = Vec::new();
        for (word, rec) in targets(&e, &a)? {
            let s = e.stats(&rec)?;
            if shown(&a, &s) {
                rows.push(row(&word, &s, None, trunc));
            }
        }
        // docker prints nothing at all, not even the header, for no container.
        if rows.is_empty() {
            return Ok(0);
        }
        let text = render_list(format, DEFAULT_FORMAT, &headers(), &rows, &ROW)?;
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        return Ok(0);
    }
    let mut previous: HashMap<String, ContainerStats> = HashMap::new();
    loop {
        let began = Instant::now();
        let list = targets(&e, &a)?;
        if list.is_empty() && !a.containers.is_empty() {
            print!("\x1b[H\x1b[J");
            return Ok(0);
        }
        let mut rows = Vec::new();
        let mut now = HashMap::new();
        for (word, rec) in list {
            let s = e.stats(&rec)?;
            if shown(&a, &s) {
                rows.push(row(&word, &s, previous.get(&rec.id), trunc));
            }
            now.insert(rec.id.clone(), s);
        }
        previous = now;
        let text = render_list(format, DEFAULT_FORMAT, &headers(), &rows, &ROW)?;
        let mut frame = String::from("\x1b[H");
        for line in text.split('\n') {
            frame.push_str(line);
            frame.push_str("\x1b[K\n");
        }
        frame.push_str("\x1b[J");
        let mut out = std::io::stdout().lock();
        out.write_all(frame.as_bytes())?;
        out.flush()?;
        drop(out);
        std::thread::sleep(Duration::from_secs(1).saturating_sub(began.elapsed()));
    }
}

/// docker's row of `stats`.
pub const ROW: Schema = Schema {
    root: "*container.statsContext",
    types: &[],
    raw_fallback: false,
};
