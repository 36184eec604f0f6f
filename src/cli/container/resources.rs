//! The `run`/`create` flags for devices, limits and kernel settings ([`ResourceFlags`],
//! flattened into [`super::opts::CreateFlags`]) and their reading into the engine's
//! [`Resources`], with docker's CLI's messages (`invalid argument "X" for "--flag" flag: …`).
//! What docker's daemon checks (devices on the host, CPUs, ranges) the engine checks.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Result};
use berth_client::engine::{check_cgroup_rule, check_sysctl, DeviceMapping, Resources, Ulimit};
use clap::Args;

use crate::cli::flags::parse_bytes;

// Devices, limits and kernel settings of a container (docker's names and help). A plain
// comment, as CreateFlags'.
#[derive(Args, Debug, Clone, Default)]
pub struct ResourceFlags {
    /// Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)
    #[arg(long, value_name = "UINT16", allow_hyphen_values = true)]
    pub blkio_weight: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) period
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub cpu_period: Option<String>,
    /// Limit CPU CFS (Completely Fair Scheduler) quota
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// Limit CPU real-time period in microseconds
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub cpu_rt_period: Option<String>,
    /// Limit CPU real-time runtime in microseconds
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<String>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long, value_name = "INT", allow_hyphen_values = true)]
    pub cpu_shares: Option<String>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "STRING")]
    pub cpuset_cpus: Option<String>,
    /// MEMs in which to allow execution (0-3, 0,1)
    #[arg(long, value_name = "STRING")]
    pub cpuset_mems: Option<String>,
    /// Add a host device to the container (HOST[:CONTAINER][:PERMISSIONS], permissions some
    /// of rwm)
    #[arg(long, value_name = "LIST")]
    pub device: Vec<String>,
    /// Add a rule to the cgroup allowed devices list ('c 1:3 rwm', 'b *:* m')
    #[arg(long, value_name = "LIST")]
    pub device_cgroup_rule: Vec<String>,
    /// Add additional groups to join (names in the container's /etc/group, or ids)
    #[arg(long, value_name = "LIST")]
    pub group_add: Vec<String>,
    /// Memory soft limit
    #[arg(long, value_name = "BYTES")]
    pub memory_reservation: Option<String>,
    /// Tune container memory swappiness (0 to 100) (default -1: the host's)
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub memory_swappiness: Option<String>,
    /// Disable OOM Killer
    #[arg(long)]
    pub oom_kill_disable: bool,
    /// Tune host's OOM preferences (-1000 to 1000)
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub oom_score_adj: Option<String>,
    /// Size of /dev/shm (default 64m)
    #[arg(long, value_name = "BYTES", allow_hyphen_values = true)]
    pub shm_size: Option<String>,
    /// Sysctl options: namespaced ones only (net.*, fs.mqueue.*, kernel.msg*, kernel.sem,
    /// kernel.shm*)
    #[arg(long, value_name = "MAP")]
    pub sysctl: Vec<String>,
    /// Mount a tmpfs directory (PATH[:OPTIONS], options as mount(8)'s: size=64m,mode=1777,…)
    #[arg(long, value_name = "LIST")]
    pub tmpfs: Vec<String>,
    /// Ulimit options (NAME=SOFT[:HARD], e.g. nofile=1024:2048)
    #[arg(long, value_name = "ULIMIT")]
    pub ulimit: Vec<String>,
}

/// docker's CLI's wrapping of a value its flag refused.
pub(super) fn bad(flag: &str, value: &str, why: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("invalid argument \"{value}\" for \"{flag}\" flag: {why}")
}

pub(super) fn integer(flag: &str, value: &Option<String>) -> Result<i64> {
    match value {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            bad(
                flag,
                v,
                format!("strconv.ParseInt: parsing \"{v}\": invalid syntax"),
            )
        }),
    }
}

pub(super) fn bytes(flag: &str, value: &Option<String>) -> Result<i64> {
    match value {
        None => Ok(0),
        Some(v) => parse_bytes(v).map_err(|_| bad(flag, v, format!("invalid size: '{v}'"))),
    }
}

/// `--blkio-weight` as docker's CLI reads it (a uint16).
pub(super) fn blkio_weight(value: &Option<String>) -> Result<u16> {
    match value {
        None => Ok(0),
        Some(v) => v.parse::<u16>().map_err(|_| {
            let why = if v.parse::<i64>().is_ok() {
                "value out of range"
            } else {
                "invalid syntax"
            };
            bad(
                "--blkio-weight",
                v,
                format!("strconv.ParseUint: parsing \"{v}\": {why}"),
            )
        }),
    }
}

impl ResourceFlags {
    /// The engine's resources for these flags, each value read as docker's CLI reads it.
    pub fn resources(&self) -> Result<Resources> {
        let blkio_weight = blkio_weight(&self.blkio_weight)?;
        let devices = self
            .device
            .iter()
            .map(|d| DeviceMapping::parse(d).map_err(|e| anyhow!(e)))
            .collect::<Result<Vec<_>>>()?;
        for rule in &self.device_cgroup_rule {
            check_cgroup_rule(rule).map_err(|e| bad("--device-cgroup-rule", rule, e))?;
        }
        let mut sysctls = BTreeMap::new();
        for kv in &self.sysctl {
            let (k, v) = check_sysctl(kv).map_err(|e| bad("--sysctl", kv, e))?;
            sysctls.insert(k, v);
        }
        let ulimits = self
            .ulimit
            .iter()
            .map(|u| Ulimit::parse(u).map_err(|e| bad("--ulimit", u, e)))
            .collect::<Result<Vec<_>>>()?;
        let mut tmpfs = BTreeMap::new();
        for t in &self.tmpfs {
            let (path, options) = t.split_once(':').unwrap_or((t, ""));
            if path.is_empty() {
                bail!("invalid argument \"{t}\" for \"--tmpfs\" flag: a mount path is needed");
            }
            tmpfs.insert(path.to_string(), options.to_string());
        }
        let oom_score_adj = integer("--oom-score-adj", &self.oom_score_adj)?;
        let memory_swappiness = match &self.memory_swappiness {
            None => None,
            Some(_) => match integer("--memory-swappiness", &self.memory_swappiness)? {
                s @ -1..=100 => Some(s),
                s => bail!("invalid value: {s}. Valid memory swappiness range is 0-100"),
            },
        };
        Ok(Resources {
            devices,
            device_cgroup_rules: self.device_cgroup_rule.clone(),
            group_add: self.group_add.clone(),
            sysctls,
            ulimits,
            shm_size: bytes("--shm-size", &self.shm_size)?,
            tmpfs,
            oom_kill_disable: self.oom_kill_disable,
            oom_score_adj: i32::try_from(oom_score_adj).map_err(|_| {
                anyhow!("Invalid value {oom_score_adj}, range for oom score adj is [-1000, 1000]")
            })?,
            cpu_shares: integer("-c, --cpu-shares", &self.cpu_shares)?,
            cpu_period: integer("--cpu-period", &self.cpu_period)?,
            cpu_quota: integer("--cpu-quota", &self.cpu_quota)?,
            cpu_realtime_period: integer("--cpu-rt-period", &self.cpu_rt_period)?,
            cpu_realtime_runtime: integer("--cpu-rt-runtime", &self.cpu_rt_runtime)?,
            cpuset_cpus: self.cpuset_cpus.clone().unwrap_or_default(),
            cpuset_mems: self.cpuset_mems.clone().unwrap_or_default(),
            memory_reservation: bytes("--memory-reservation", &self.memory_reservation)?,
            memory_swappiness,
            blkio_weight,
        })
    }
}
