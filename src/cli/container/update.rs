//! `berth update` (`container update`): new limits and restart policy for containers, as
//! docker's: each container's name echoed once updated, one error line per failure (status
//! 1), then the host's warnings. A running container gets the new limits at once.

use anyhow::{bail, Result};
use berth_client::engine::{RestartPolicy, UpdateOptions};
use clap::Args;

use super::resources::{bad, blkio_weight, bytes, integer};
use super::supervise::spawn_supervisor;
use crate::cli::globals::Globals;

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long, value_name = "UINT16", allow_hyphen_values = true)]
    blkio_weight: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    cpu_period: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    cpu_quota: Option<String>,
    /// Limit the CPU real-time period in microseconds
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    cpu_rt_period: Option<String>,
    /// Limit the CPU real-time runtime in microseconds
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    cpu_rt_runtime: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "INT", allow_hyphen_values = true)]
    cpu_shares: Option<String>,
    /// Number of CPUs
    #[arg(long, value_name = "DECIMAL")]
    cpus: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "STRING")]
    cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "STRING")]
    cpuset_mems: Option<String>,
    /// Memory limit
    #[arg(short, long, value_name = "BYTES")]
    memory: Option<String>,
    /// Memory soft limit
    #[arg(long, value_name = "BYTES")]
    memory_reservation: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pids_limit: Option<String>,
    /// Restart policy to apply when a container exits (no, always, unless-stopped,
    /// on-failure[:N])
    #[arg(long, value_name = "STRING")]
    restart: Option<String>,
    /// Containers (name, id or id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

/// docker's `--cpus` (`opts.NanoCPUs`): a decimal number of CPUs, in billionths.
fn nano_cpus(value: &Option<String>) -> Result<i64> {
    let Some(v) = value else { return Ok(0) };
    let cpus: f64 = v
        .parse()
        .ok()
        .filter(|c: &f64| c.is_finite())
        .ok_or_else(|| {
            bad(
                "--cpus",
                v,
                format!("failed to parse {v} as a rational number"),
            )
        })?;
    let nano = cpus * 1e9;
    if (nano - nano.round()).abs() > 1e-6 {
        return Err(bad("--cpus", v, "value is too precise"));
    }
    Ok(nano.round() as i64)
}

impl UpdateArgs {
    fn options(&self) -> Result<UpdateOptions> {
        let given = [
            &self.blkio_weight,
            &self.cpu_period,
            &self.cpu_quota,
            &self.cpu_rt_period,
            &self.cpu_rt_runtime,
            &self.cpu_shares,
            &self.cpus,
            &self.cpuset_cpus,
            &self.cpuset_mems,
            &self.memory,
            &self.memory_reservation,
            &self.memory_swap,
            &self.pids_limit,
            &self.restart,
        ];
        if given.iter().all(|v| v.is_none()) {
            bail!("you must provide one or more flags when using this command");
        }
        let memory_swap = match self.memory_swap.as_deref() {
            Some("-1") => -1,
            _ => bytes("--memory-swap", &self.memory_swap)?,
        };
        let restart = match &self.restart {
            Some(r) => Some(RestartPolicy::parse(r).map_err(anyhow::Error::msg)?),
            None => None,
        };
        Ok(UpdateOptions {
            memory: bytes("-m, --memory", &self.memory)?,
            memory_swap,
            memory_reservation: bytes("--memory-reservation", &self.memory_reservation)?,
            nano_cpus: nano_cpus(&self.cpus)?,
            cpu_shares: integer("-c, --cpu-shares", &self.cpu_shares)?,
            cpu_period: integer("--cpu-period", &self.cpu_period)?,
            cpu_quota: integer("--cpu-quota", &self.cpu_quota)?,
            cpu_realtime_period: integer("--cpu-rt-period", &self.cpu_rt_period)?,
            cpu_realtime_runtime: integer("--cpu-rt-runtime", &self.cpu_rt_runtime)?,
            cpuset_cpus: self.cpuset_cpus.clone().unwrap_or_default(),
            cpuset_mems: self.cpuset_mems.clone().unwrap_or_default(),
            blkio_weight: blkio_weight(&self.blkio_weight)?,
            // docker sends 0 as "leave it": only a non-zero value changes the limit.
            pids_limit: self
                .pids_limit
                .as_ref()
                .map(|_| integer("--pids-limit", &self.pids_limit))
                .transpose()?
                .filter(|n| *n != 0),
            restart,
        })
    }
}

pub fn run(g: &Globals, a: UpdateArgs) -> Result<i32> {
    let options = a.options()?;
    let e = g.engine()?;
    let mut code = 0;
    let mut warnings = Vec::new();
    for name in &a.containers {
        let updated = e
            .resolve(name)
            .and_then(|rec| e.update_container(&rec, options.clone()));
        match updated {
            Ok(w) => {
                println!("{name}");
                warnings.extend(w);
                // A new restart policy on a running container needs its supervisor.
                if let Ok(rec) = e.resolve(name) {
                    if e.state(&rec).running() {
                        spawn_supervisor(&e, &rec)?;
                    }
                }
            }
            Err(err) => {
                eprintln!("Error: {err}");
                code = 1;
            }
        }
    }
    if !warnings.is_empty() {
        println!("{}", warnings.join("\n"));
    }
    Ok(code)
}
