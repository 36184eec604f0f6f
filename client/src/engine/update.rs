//! `container update`: new limits and restart policy for an existing container, as docker's
//! daemon takes them (`ContainerUpdate`): the request is checked in its words, merged into
//! the record (a value left at zero keeps the old one), and, when the container runs, the
//! values asked for are written to its live cgroups by the runtime. A failure there puts the
//! record back as it was.

use berth_runtime::oci_spec::runtime::{
    LinuxBlockIoBuilder, LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResources,
};

use super::{
    container_event, ContainerRecord, Engine, EngineError, HostConfig, RestartPolicy, Result,
};

/// What `update` changes; a zero, empty or `None` field leaves the container's value.
#[derive(Debug, Clone, Default)]
pub struct UpdateOptions {
    /// `--memory`, bytes.
    pub memory: i64,
    /// `--memory-swap`: memory plus swap, bytes; -1 for unlimited swap.
    pub memory_swap: i64,
    pub memory_reservation: i64,
    /// `--cpus` in billionths of a CPU.
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    /// `--cpu-period`, `--cpu-quota`: the CFS scheduler's, microseconds.
    pub cpu_period: i64,
    pub cpu_quota: i64,
    /// `--cpu-rt-period`, `--cpu-rt-runtime`: the real-time scheduler's, microseconds.
    pub cpu_realtime_period: i64,
    pub cpu_realtime_runtime: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub blkio_weight: u16,
    /// `--pids-limit`: 0 or less is unlimited.
    pub pids_limit: Option<i64>,
    pub restart: Option<RestartPolicy>,
}

fn invalid(msg: impl Into<String>) -> EngineError {
    EngineError::Invalid(msg.into())
}

/// docker's daemon's checks of an update request (`verifyPlatformContainerResources` with
/// `update`): errors, and the warnings for what this host cannot do (then discarded).
fn check(u: &mut UpdateOptions) -> Result<Vec<String>> {
    let mut warnings = vec![];
    if u.memory != 0 && u.memory < 6 << 20 {
        return Err(invalid("Minimum memory limit allowed is 6MB"));
    }
    if u.memory > 0 && u.memory_swap > 0 && u.memory_swap < u.memory {
        return Err(invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if u.memory_reservation > 0 && u.memory_reservation < 6 << 20 {
        return Err(invalid("Minimum memory reservation allowed is 6MB"));
    }
    if u.memory > 0 && u.memory_reservation > 0 && u.memory < u.memory_reservation {
        return Err(invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage",
        ));
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
    if u.nano_cpus < 0 || u.nano_cpus > cpus * 1_000_000_000 {
        return Err(invalid(format!(
            "range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
        )));
    }
    super::resources::check_cpu_scheduler(
        u.nano_cpus,
        &super::record::Resources {
            cpu_period: u.cpu_period,
            cpu_quota: u.cpu_quota,
            cpu_realtime_period: u.cpu_realtime_period,
            cpu_realtime_runtime: u.cpu_realtime_runtime,
            ..Default::default()
        },
    )?;
    if u.blkio_weight > 0 && !berth_runtime::host_supports_blkio_weight() {
        warnings.push(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. \
             Weight discarded."
                .to_string(),
        );
        u.blkio_weight = 0;
    }
    Ok(warnings)
}

/// docker's `UpdateContainer`: the request merged into a record's settings.
fn merge(host: &mut HostConfig, restart: &mut RestartPolicy, u: &UpdateOptions) -> Result<()> {
    // --cpus sets the CFS period and quota itself: once one way is set, the other is refused.
    let r = &host.resources;
    let conflicts = [
        (
            u.nano_cpus > 0 && r.cpu_period > 0,
            "Nano CPUs",
            "CPU Period",
        ),
        (u.nano_cpus > 0 && r.cpu_quota > 0, "Nano CPUs", "CPU Quota"),
        (
            u.cpu_period > 0 && host.nano_cpus > 0,
            "CPU Period",
            "NanoCPUs",
        ),
        (
            u.cpu_quota > 0 && host.nano_cpus > 0,
            "CPU Quota",
            "NanoCPUs",
        ),
    ];
    if let Some((_, asked, set)) = conflicts.iter().find(|(conflict, _, _)| *conflict) {
        return Err(invalid(format!(
            "Conflicting options: {asked} cannot be updated as {set} has already been set"
        )));
    }
    let r = &mut host.resources;
    for (field, value) in [
        (&mut r.cpu_period, u.cpu_period),
        (&mut r.cpu_quota, u.cpu_quota),
        (&mut r.cpu_realtime_period, u.cpu_realtime_period),
        (&mut r.cpu_realtime_runtime, u.cpu_realtime_runtime),
    ] {
        if value != 0 {
            *field = value;
        }
    }
    if u.blkio_weight != 0 {
        r.blkio_weight = u.blkio_weight;
    }
    if u.cpu_shares != 0 {
        r.cpu_shares = u.cpu_shares;
    }
    if u.nano_cpus != 0 {
        host.nano_cpus = u.nano_cpus;
    }
    if !u.cpuset_cpus.is_empty() {
        r.cpuset_cpus = u.cpuset_cpus.clone();
    }
    if !u.cpuset_mems.is_empty() {
        r.cpuset_mems = u.cpuset_mems.clone();
    }
    if u.memory != 0 {
        // docker keeps twice the memory as memory+swap when only --memory was given.
        let swap = match (host.memory, host.memory_swap) {
            (m, 0) if m > 0 => 2 * m,
            (_, s) => s,
        };
        if u.memory_swap == 0 && swap >= 0 && u.memory > swap {
            return Err(invalid(
                "Memory limit should be smaller than already set memoryswap limit, update the \
                 memoryswap at the same time",
            ));
        }
        if host.memory_swap == 0 && host.memory > 0 {
            host.memory_swap = swap;
        }
        host.memory = u.memory;
    }
    if u.memory_swap != 0 {
        host.memory_swap = u.memory_swap;
    }
    if u.memory_reservation != 0 {
        r.memory_reservation = u.memory_reservation;
    }
    if let Some(limit) = u.pids_limit {
        host.pids_limit = limit.max(0);
    }
    if let Some(policy) = &u.restart {
        if host.auto_remove && *policy != RestartPolicy::No {
            return Err(invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        *restart = *policy;
    }
    Ok(())
}

/// The cgroup values the request sets (docker's `toContainerdResources` of the request,
/// not of the merged record).
fn live_resources(u: &UpdateOptions) -> Result<LinuxResources> {
    let bad = |what: &str, e: &dyn std::fmt::Display| invalid(format!("{what}: {e}"));
    let mut r = LinuxResources::default();
    if u.memory != 0 || u.memory_swap != 0 || u.memory_reservation != 0 {
        let mut m = LinuxMemoryBuilder::default();
        if u.memory != 0 {
            m = m.limit(u.memory);
        }
        if u.memory_swap != 0 {
            m = m.swap(u.memory_swap);
        }
        if u.memory_reservation != 0 {
            m = m.reservation(u.memory_reservation);
        }
        r.set_memory(Some(m.build().map_err(|e| bad("memory", &e))?));
    }
    if u.cpu_shares != 0
        || u.nano_cpus != 0
        || u.cpu_period != 0
        || u.cpu_quota != 0
        || u.cpu_realtime_period != 0
        || u.cpu_realtime_runtime != 0
        || !u.cpuset_cpus.is_empty()
        || !u.cpuset_mems.is_empty()
    {
        let mut c = LinuxCpuBuilder::default();
        if u.cpu_shares != 0 {
            c = c.shares(u.cpu_shares as u64);
        }
        if u.nano_cpus != 0 {
            let period: u64 = 100_000;
            c = c
                .period(period)
                .quota(u.nano_cpus * period as i64 / 1_000_000_000);
        }
        if u.cpu_period != 0 {
            c = c.period(u.cpu_period as u64);
        }
        if u.cpu_quota != 0 {
            c = c.quota(u.cpu_quota);
        }
        if u.cpu_realtime_period != 0 {
            c = c.realtime_period(u.cpu_realtime_period as u64);
        }
        if u.cpu_realtime_runtime != 0 {
            c = c.realtime_runtime(u.cpu_realtime_runtime);
        }
        if !u.cpuset_cpus.is_empty() {
            c = c.cpus(u.cpuset_cpus.clone());
        }
        if !u.cpuset_mems.is_empty() {
            c = c.mems(u.cpuset_mems.clone());
        }
        r.set_cpu(Some(c.build().map_err(|e| bad("cpu", &e))?));
    }
    if u.blkio_weight != 0 {
        let b = LinuxBlockIoBuilder::default()
            .weight(u.blkio_weight)
            .build()
            .map_err(|e| bad("blkio", &e))?;
        r.set_block_io(Some(b));
    }
    if let Some(limit) = u.pids_limit {
        let limit = if limit > 0 { limit } else { -1 };
        let p = LinuxPidsBuilder::default()
            .limit(limit)
            .build()
            .map_err(|e| bad("pids", &e))?;
        r.set_pids(Some(p));
    }
    Ok(r)
}

impl Engine {
    /// docker's `container update`: checks the request, records it, and applies it to the
    /// running container's cgroups. Returns docker's warnings (what the host discarded).
    pub fn update_container(
        &self,
        rec: &ContainerRecord,
        mut u: UpdateOptions,
    ) -> Result<Vec<String>> {
        let warnings = check(&mut u)?;
        let cannot = |e: EngineError| invalid(format!("Cannot update container {}: {e}", rec.id));
        let _lock = self.lock(&rec.id)?;
        let before = self.load(&rec.id)?;
        let mut after = before.clone();
        merge(&mut after.host, &mut after.restart_policy, &u).map_err(cannot)?;
        super::resources::check(&mut after.host).map_err(cannot)?;
        super::rootless::check(&after.host).map_err(cannot)?;
        self.save(&after)?;
        if let Ok(c) = self.running(&after) {
            let applied = live_resources(&u).and_then(|r| Ok(c.update(&r)?));
            if let Err(e) = applied {
                self.save(&before)?;
                return Err(cannot(e));
            }
        }
        self.journal().record(container_event(&after, "update"));
        Ok(warnings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_as_docker_does() {
        let mut host = HostConfig {
            memory: 64 << 20,
            ..Default::default()
        };
        let mut policy = RestartPolicy::No;
        // Only --memory at create: memory+swap is twice the memory, so a larger memory
        // needs a new --memory-swap too.
        let too_big = UpdateOptions {
            memory: 200 << 20,
            ..Default::default()
        };
        let err = merge(&mut host.clone(), &mut policy, &too_big)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("Memory limit should be smaller"), "{err}");
        let u = UpdateOptions {
            memory: 100 << 20,
            cpu_shares: 512,
            pids_limit: Some(-1),
            restart: Some(RestartPolicy::Always),
            ..Default::default()
        };
        merge(&mut host, &mut policy, &u).unwrap();
        assert_eq!((host.memory, host.memory_swap), (100 << 20, 128 << 20));
        assert_eq!(host.resources.cpu_shares, 512);
        assert_eq!(host.pids_limit, 0);
        assert_eq!(policy, RestartPolicy::Always);
        host.auto_remove = true;
        let err = merge(&mut host, &mut policy, &u).unwrap_err().to_string();
        assert!(err.contains("AutoRemove is enabled"), "{err}");
        let mut small = UpdateOptions {
            memory: 1 << 20,
            ..Default::default()
        };
        assert_eq!(
            check(&mut small).unwrap_err().to_string(),
            "Minimum memory limit allowed is 6MB"
        );
    }
}
