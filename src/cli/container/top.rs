//! `berth top`: `ps` on the host, narrowed to the container's processes.

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::cli::format::tabulate;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct TopArgs {
    container: String,
    /// Options for ps (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

pub fn run(g: &Globals, a: TopArgs) -> Result<i32> {
    let e = g.engine()?;
    let rec = e.resolve(&a.container)?;
    let pids = e.processes(&rec)?;
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(pid_col) = header.split_whitespace().position(|h| h == "PID") else {
        bail!("ps {}: no PID column in its output", args.join(" "));
    };
    let mut rows = vec![header.split_whitespace().collect::<Vec<_>>().join("\t")];
    let ncols = header.split_whitespace().count();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pids.contains(&pid) {
            // The last column (the command) may hold spaces.
            let mut cols: Vec<String> = fields[..(ncols - 1).min(fields.len())]
                .iter()
                .map(|s| s.to_string())
                .collect();
            if fields.len() >= ncols {
                cols.push(fields[ncols - 1..].join(" "));
            }
            rows.push(cols.join("\t"));
        }
    }
    print!("{}", tabulate(&rows));
    Ok(0)
}
