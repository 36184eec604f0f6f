//! `stats`: what a container uses, in the numbers docker's daemon reports and its CLI turns
//! into columns. One reading per call, from the runtime's counters (the container's cgroups
//! and network namespace); a rate needs two readings, or the container's start as the
//! first (`ContainerStats::cpu_percent`).

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_runtime::Container;

use super::{ContainerRecord, Engine, Result};

/// One reading of a container's use. A container that does not run reads as zeros, as
/// docker's daemon answers for one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerStats {
    pub id: String,
    pub name: String,
    pub running: bool,
    /// CPU time of all its processes, nanoseconds.
    pub cpu_ns: u64,
    /// When this was read and when the container started, nanoseconds since the epoch.
    pub read_at_ns: u64,
    pub started_at_ns: u64,
    /// Memory in use without the inactive file cache (docker's "usage without cache").
    pub memory: u64,
    /// The container's memory limit, or the host's memory when it has none (docker's).
    pub memory_limit: u64,
    pub net_rx: u64,
    pub net_tx: u64,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
}

impl ContainerStats {
    /// docker's CPU %: CPU time over wall time between `previous` and this reading, 100%
    /// a core. Without a previous reading of the same run, since the container started.
    pub fn cpu_percent(&self, previous: Option<&ContainerStats>) -> f64 {
        let (cpu0, t0) = match previous {
            Some(p) if p.running && p.started_at_ns == self.started_at_ns => {
                (p.cpu_ns, p.read_at_ns)
            }
            _ => (0, self.started_at_ns),
        };
        let wall = self.read_at_ns.saturating_sub(t0);
        let cpu = self.cpu_ns.saturating_sub(cpu0);
        if !self.running || wall == 0 || cpu == 0 {
            return 0.0;
        }
        cpu as f64 / wall as f64 * 100.0
    }

    /// docker's MEM %: usage over the limit.
    pub fn memory_percent(&self) -> f64 {
        if self.memory_limit == 0 {
            return 0.0;
        }
        self.memory as f64 / self.memory_limit as f64 * 100.0
    }
}

/// The host's memory (`MemTotal`), read once.
fn host_memory() -> u64 {
    static TOTAL: OnceLock<u64> = OnceLock::new();
    *TOTAL.get_or_init(|| {
        std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| {
                m.lines().find_map(|l| {
                    let kb = l.strip_prefix("MemTotal:")?.trim().strip_suffix("kB")?;
                    kb.trim().parse::<u64>().ok()
                })
            })
            .map_or(0, |kb| kb * 1024)
    })
}

fn unix_ns(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl Engine {
    /// What the container uses now (zeros when it does not run).
    pub fn stats(&self, rec: &ContainerRecord) -> Result<ContainerStats> {
        let mut s = ContainerStats {
            id: rec.id.clone(),
            name: rec.name.clone(),
            ..Default::default()
        };
        // One read of the runtime's record for both the state and the counters.
        let (runtime, usage) = match Container::sample(self.runtime_dir(&rec.id)) {
            Ok((state, usage)) => (Some(state), usage),
            Err(_) => (None, None),
        };
        let state = self.state_from(rec, runtime);
        if !matches!(state.status, super::Status::Running | super::Status::Paused) {
            return Ok(s);
        }
        // A record that does not show it running has no counters.
        let Some(usage) = usage else {
            return Ok(s);
        };
        let started = state.started_at;
        s.read_at_ns = unix_ns(SystemTime::now());
        s.running = true;
        s.started_at_ns = started
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
            .and_then(|t| t.timestamp_nanos_opt())
            .map_or(s.read_at_ns, |n| n.max(0) as u64);
        s.cpu_ns = usage.cpu_ns;
        s.memory = if usage.inactive_file < usage.memory {
            usage.memory - usage.inactive_file
        } else {
            usage.memory
        };
        let host = host_memory();
        s.memory_limit = match usage.memory_limit {
            Some(l) if host == 0 || l < host => l,
            _ => host,
        };
        (s.net_rx, s.net_tx) = (usage.net_rx, usage.net_tx);
        (s.block_read, s.block_write) = (usage.block_read, usage.block_write);
        s.pids = usage.pids;
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_percent_over_the_interval_or_since_the_start() {
        let first = ContainerStats {
            running: true,
            started_at_ns: 1_000_000_000,
            read_at_ns: 3_000_000_000,
            cpu_ns: 500_000_000,
            ..Default::default()
        };
        // 0.5 s of CPU in 2 s since the start.
        assert_eq!(first.cpu_percent(None), 25.0);
        let second = ContainerStats {
            read_at_ns: 4_000_000_000,
            cpu_ns: 2_000_000_000,
            ..first.clone()
        };
        // 1.5 s of CPU in the last second: one and a half cores.
        assert_eq!(second.cpu_percent(Some(&first)), 150.0);
        // A reading of an earlier run is no base.
        let restarted = ContainerStats {
            started_at_ns: 3_500_000_000,
            read_at_ns: 4_000_000_000,
            cpu_ns: 100_000_000,
            ..first.clone()
        };
        assert_eq!(restarted.cpu_percent(Some(&first)), 20.0);
        assert_eq!(ContainerStats::default().cpu_percent(None), 0.0);
        let mem = ContainerStats {
            memory: 1 << 20,
            memory_limit: 4 << 20,
            ..Default::default()
        };
        assert_eq!(mem.memory_percent(), 25.0);
        assert_eq!(ContainerStats::default().memory_percent(), 0.0);
    }
}
