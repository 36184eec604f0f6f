//! docker's resource settings of a container, from its record to the Spec: devices and their
//! cgroup rules, `--group-add`, sysctls, ulimits, /dev/shm's size, tmpfs mounts, the OOM
//! killer and score, CPU shares and sets, the memory reservation and the block I/O weight.
//!
//! The readers of one flag value (`Ulimit::parse`, `DeviceMapping::parse`,
//! `check_cgroup_rule`, `check_sysctl`) answer in docker's CLI's words; `check` runs once
//! at `create` and answers in its daemon's (what the host can give: devices, CPUs, memory
//! nodes, ranges); `apply` runs at every start, after `confine::apply`.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_runtime::oci_spec::runtime::{
    LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, LinuxMemoryBuilder, Mount, PosixRlimitBuilder,
    PosixRlimitType, Spec,
};

use super::record::{ContainerRecord, DeviceMapping, HostConfig, Ulimit};
use super::{EngineError, Result};

/// /dev/shm's size when `--shm-size` is not given (docker's).
pub const DEFAULT_SHM_SIZE: i64 = 64 << 20;

fn invalid(msg: String) -> EngineError {
    EngineError::Invalid(msg)
}

/// The rlimit names docker knows, as go-units maps them.
const ULIMITS: &[(&str, PosixRlimitType)] = &[
    ("as", PosixRlimitType::RlimitAs),
    ("core", PosixRlimitType::RlimitCore),
    ("cpu", PosixRlimitType::RlimitCpu),
    ("data", PosixRlimitType::RlimitData),
    ("fsize", PosixRlimitType::RlimitFsize),
    ("locks", PosixRlimitType::RlimitLocks),
    ("memlock", PosixRlimitType::RlimitMemlock),
    ("msgqueue", PosixRlimitType::RlimitMsgqueue),
    ("nice", PosixRlimitType::RlimitNice),
    ("nofile", PosixRlimitType::RlimitNofile),
    ("nproc", PosixRlimitType::RlimitNproc),
    ("rss", PosixRlimitType::RlimitRss),
    ("rtprio", PosixRlimitType::RlimitRtprio),
    ("rttime", PosixRlimitType::RlimitRttime),
    ("sigpending", PosixRlimitType::RlimitSigpending),
    ("stack", PosixRlimitType::RlimitStack),
];

fn parse_int(s: &str) -> std::result::Result<i64, String> {
    s.parse()
        .map_err(|_| format!("strconv.ParseInt: parsing \"{s}\": invalid syntax"))
}

impl Ulimit {
    /// `NAME=SOFT[:HARD]` (go-units' reading and messages; HARD defaults to SOFT).
    pub fn parse(s: &str) -> std::result::Result<Ulimit, String> {
        let Some((name, limits)) = s.split_once('=') else {
            return Err(format!("invalid ulimit argument: {s}"));
        };
        if !ULIMITS.iter().any(|(n, _)| *n == name) {
            return Err(format!("invalid ulimit type: {name}"));
        }
        let (soft, hard) = match limits.split_once(':') {
            Some((soft, hard)) => (parse_int(soft)?, parse_int(hard)?),
            None => {
                let v = parse_int(limits)?;
                (v, v)
            }
        };
        if hard != -1 && soft > hard {
            return Err(format!(
                "ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
            ));
        }
        Ok(Ulimit {
            name: name.to_string(),
            soft,
            hard,
        })
    }
}

impl DeviceMapping {
    /// `HOST[:CONTAINER][:PERMISSIONS]` (docker's CLI's reading and messages).
    pub fn parse(s: &str) -> std::result::Result<DeviceMapping, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, mut container, mut permissions) = (parts[0], "", "rwm");
        match parts[..] {
            [_] => {}
            [_, second] if valid_permissions(second) => permissions = second,
            [_, second] => container = second,
            [_, second, third] => {
                if !valid_permissions(third) {
                    return Err(format!("bad mode specified: {third}"));
                }
                (container, permissions) = (second, third);
            }
            _ => return Err(format!("bad format for path: {s}")),
        }
        if host.is_empty() {
            return Err(format!("bad format for path: {s}"));
        }
        let container = if container.is_empty() {
            host
        } else {
            container
        };
        if !container.starts_with('/') {
            return Err(format!("{container} is not an absolute path"));
        }
        Ok(DeviceMapping {
            path_on_host: host.to_string(),
            path_in_container: container.to_string(),
            cgroup_permissions: permissions.to_string(),
        })
    }
}

/// Some of `r`, `w`, `m`, each at most once.
fn valid_permissions(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 3
        && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
        && p.chars().collect::<std::collections::BTreeSet<_>>().len() == p.len()
}

/// A `--device-cgroup-rule` as the Spec's rule: `a|b|c MAJOR|*:MINOR|* rwm…`.
fn cgroup_rule(rule: &str) -> Option<LinuxDeviceCgroup> {
    let bad = || None;
    let mut words = rule.split(' ');
    let (Some(typ), Some(numbers), Some(access), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return bad();
    };
    let typ = match typ {
        "a" => LinuxDeviceType::A,
        "b" => LinuxDeviceType::B,
        "c" => LinuxDeviceType::C,
        _ => return bad(),
    };
    let number = |n: &str| -> Option<Option<i64>> {
        match n {
            "*" => Some(None),
            n if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => n.parse().ok().map(Some),
            _ => None,
        }
    };
    let (major, minor) = numbers.split_once(':')?;
    let (major, minor) = (number(major)?, number(minor)?);
    if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) || access.is_empty() {
        return bad();
    }
    Some(berth_runtime::device_rule(typ, major, minor, access))
}

/// Checks a `--device-cgroup-rule` (docker's message).
pub fn check_cgroup_rule(rule: &str) -> std::result::Result<(), String> {
    cgroup_rule(rule)
        .map(|_| ())
        .ok_or_else(|| format!("invalid device cgroup format '{rule}'"))
}

/// Checks a `--sysctl NAME=VALUE` against the namespaced parameters docker lets through
/// (IPC ones, `fs.mqueue.*`, `net.*`; its message for the rest).
pub fn check_sysctl(kv: &str) -> std::result::Result<(String, String), String> {
    let refused = || format!("sysctl '{kv}' is not allowed");
    let (k, v) = kv.split_once('=').ok_or_else(refused)?;
    if berth_runtime::IPC_SYSCTLS.contains(&k)
        || k.starts_with("fs.mqueue.")
        || k.starts_with("net.")
    {
        Ok((k.to_string(), v.to_string()))
    } else {
        Err(refused())
    }
}

/// A CPU or memory node list (`0-2,4`) as the numbers it names, or `None` when malformed.
fn parse_list(list: &str) -> Option<Vec<u32>> {
    let mut out = vec![];
    for part in list.split(',') {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
        if b < a || b - a > 1 << 16 {
            return None;
        }
        out.extend(a..=b);
    }
    Some(out)
}

/// What the host offers from sysfs (`/sys/devices/system/{cpu,node}/online`); a host without
/// NUMA nodes has node 0.
fn online(kind: &str) -> String {
    std::fs::read_to_string(format!("/sys/devices/system/{kind}/online"))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "0".into())
}

fn check_cpuset(value: &str, what: &str, kind: &str, unavailable: &str) -> Result<()> {
    if value.is_empty() {
        return Ok(());
    }
    let wanted = parse_list(value).ok_or_else(|| {
        invalid(format!(
            "Invalid value {value} for cpuset {what}: invalid format: {value}"
        ))
    })?;
    let available = online(kind);
    let have = parse_list(&available).unwrap_or_default();
    if wanted.iter().any(|n| !have.contains(n)) {
        return Err(invalid(format!(
            "Requested {unavailable} are not available - requested {value}, available: {available}"
        )));
    }
    Ok(())
}

/// docker's daemon's checks of the CFS and real-time scheduler settings (the same at `create`
/// and for an `update` request).
pub(crate) fn check_cpu_scheduler(nano_cpus: i64, r: &super::record::Resources) -> Result<()> {
    if nano_cpus > 0 && r.cpu_period > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set".into(),
        ));
    }
    if nano_cpus > 0 && r.cpu_quota > 0 {
        return Err(invalid(
            "Conflicting options: Nano CPUs and CPU Quota cannot both be set".into(),
        ));
    }
    if r.cpu_period != 0 && !(1000..=1_000_000).contains(&r.cpu_period) {
        return Err(invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)"
                .into(),
        ));
    }
    if r.cpu_quota > 0 && r.cpu_quota < 1000 {
        return Err(invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)".into(),
        ));
    }
    let (period, runtime) = (r.cpu_realtime_period, r.cpu_realtime_runtime);
    if (period != 0 || runtime != 0) && !berth_runtime::host_supports_cpu_realtime() {
        return Err(invalid(
            "Your kernel does not support CPU real-time scheduler".into(),
        ));
    }
    if period != 0 && runtime != 0 && runtime > period {
        return Err(invalid(
            "cpu real-time runtime cannot be higher than cpu real-time period".into(),
        ));
    }
    Ok(())
}

/// tmpfs options docker's daemon takes: mount flags, and data it knows.
fn check_tmpfs_options(options: &str) -> Result<()> {
    const FLAGS: &[&str] = &[
        "ro",
        "rw",
        "suid",
        "nosuid",
        "dev",
        "nodev",
        "exec",
        "noexec",
        "sync",
        "async",
        "dirsync",
        "remount",
        "mand",
        "nomand",
        "atime",
        "noatime",
        "diratime",
        "nodiratime",
        "bind",
        "rbind",
        "relatime",
        "norelatime",
        "strictatime",
        "nostrictatime",
        "private",
        "rprivate",
        "shared",
        "rshared",
        "slave",
        "rslave",
        "unbindable",
        "runbindable",
        "defaults",
    ];
    const DATA: &[&str] = &[
        "size",
        "mode",
        "uid",
        "gid",
        "nr_inodes",
        "nr_blocks",
        "mpol",
    ];
    for o in options.split(',').filter(|o| !o.is_empty()) {
        let ok = match o.split_once('=') {
            Some((k, _)) => DATA.contains(&k),
            None => FLAGS.contains(&o),
        };
        if !ok {
            let words: Vec<String> = o.splitn(2, '=').map(|w| format!("{w:?}")).collect();
            return Err(invalid(format!(
                "invalid tmpfs option [{}]",
                words.join(" ")
            )));
        }
    }
    Ok(())
}

/// The warnings docker's daemon gives at create for these settings on this host (what it
/// then discards, and what may be dangerous).
pub fn resource_warnings(host: &HostConfig) -> Vec<String> {
    let r = &host.resources;
    let mut out = vec![];
    if r.blkio_weight > 0 && !berth_runtime::host_supports_blkio_weight() {
        out.push(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. \
             Weight discarded."
                .into(),
        );
    }
    if r.memory_swappiness.is_some_and(|s| s >= 0)
        && !berth_runtime::host_supports_memory_swappiness()
    {
        out.push(
            "Your kernel does not support memory swappiness capabilities or the cgroup is not \
             mounted. Memory swappiness discarded."
                .into(),
        );
    }
    if r.oom_kill_disable && !berth_runtime::host_supports_oom_kill_disable() {
        out.push("Your kernel does not support OomKillDisable. OomKillDisable discarded.".into());
    } else if r.oom_kill_disable && host.memory == 0 {
        out.push(
            "OOM killer is disabled for the container, but no memory limit is set, this can \
             result in the system running out of resources."
                .into(),
        );
    }
    out
}

/// The device nodes `m` names on the host: the node itself, or every node under a directory
/// (docker's `--device /dev/snd`), each with its path in the container.
fn host_nodes(m: &DeviceMapping) -> Result<Vec<(PathBuf, std::fs::Metadata)>> {
    let gathering = |e: String| {
        invalid(format!(
            "error gathering device information while adding custom device \"{}\": {e}",
            m.path_on_host
        ))
    };
    let host = Path::new(&m.path_on_host);
    let meta = std::fs::metadata(host).map_err(|e| {
        gathering(match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".into(),
            _ => e.to_string(),
        })
    })?;
    let is_node =
        |m: &std::fs::Metadata| m.file_type().is_char_device() || m.file_type().is_block_device();
    if is_node(&meta) {
        return Ok(vec![(PathBuf::from(&m.path_in_container), meta)]);
    }
    if !meta.is_dir() {
        return Err(gathering("not a device node".into()));
    }
    let mut out = vec![];
    let mut dirs = vec![host.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| gathering(e.to_string()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if meta.is_dir() && !entry.file_type().is_ok_and(|t| t.is_symlink()) {
                dirs.push(path);
            } else if is_node(&meta) {
                let rel = path.strip_prefix(host).unwrap_or(&path);
                out.push((Path::new(&m.path_in_container).join(rel), meta));
            }
        }
    }
    Ok(out)
}

/// Checks and normalises the resource part of a new container's host config, in docker's
/// daemon's words; discards what the host cannot do, as docker does (`resource_warnings`
/// says so).
pub(crate) fn check(host: &mut HostConfig) -> Result<()> {
    let memory = host.memory;
    let r = &mut host.resources;
    for d in &r.devices {
        DeviceMapping::parse(&format!(
            "{}:{}:{}",
            d.path_on_host, d.path_in_container, d.cgroup_permissions
        ))
        .map_err(invalid)?;
        host_nodes(d)?;
    }
    for rule in &r.device_cgroup_rules {
        check_cgroup_rule(rule).map_err(invalid)?;
    }
    for (k, v) in &r.sysctls {
        check_sysctl(&format!("{k}={v}")).map_err(invalid)?;
    }
    for u in &r.ulimits {
        let spec = format!("{}={}:{}", u.name, u.soft, u.hard);
        Ulimit::parse(&spec).map_err(invalid)?;
    }
    if r.shm_size < 0 {
        return Err(invalid("SHM size can not be less than 0".into()));
    }
    for (path, options) in &r.tmpfs {
        if !path.starts_with('/') {
            return Err(invalid(format!(
                "invalid mount path: '{path}' mount path must be absolute"
            )));
        }
        check_tmpfs_options(options)?;
    }
    if !(-1000..=1000).contains(&r.oom_score_adj) {
        return Err(invalid(format!(
            "Invalid value {}, range for oom score adj is [-1000, 1000]",
            r.oom_score_adj
        )));
    }
    // runc's bounds (the kernel's): 0 is the default.
    if r.cpu_shares != 0 && r.cpu_shares < 2 {
        return Err(invalid("the minimum allowed cpu-shares is 2".into()));
    }
    if r.cpu_shares > 262_144 {
        return Err(invalid("the maximum allowed cpu-shares is 262144".into()));
    }
    check_cpu_scheduler(host.nano_cpus, r)?;
    check_cpuset(&r.cpuset_cpus, "cpus", "cpu", "CPUs")?;
    check_cpuset(&r.cpuset_mems, "mems", "node", "memory nodes")?;
    if r.memory_reservation != 0 && r.memory_reservation < 6 << 20 {
        return Err(invalid("Minimum memory reservation allowed is 6MB".into()));
    }
    if memory > 0 && r.memory_reservation > 0 && memory < r.memory_reservation {
        return Err(invalid(
            "Minimum memory limit can not be less than memory reservation limit, see usage".into(),
        ));
    }
    if r.blkio_weight > 0 && !berth_runtime::host_supports_blkio_weight() {
        r.blkio_weight = 0;
    }
    if r.blkio_weight > 0 && !(10..=1000).contains(&r.blkio_weight) {
        return Err(invalid("Range of blkio weight is from 10 to 1000".into()));
    }
    if r.oom_kill_disable && !berth_runtime::host_supports_oom_kill_disable() {
        r.oom_kill_disable = false;
    }
    if let Some(s) = r.memory_swappiness {
        if !(-1..=100).contains(&s) {
            return Err(invalid(format!(
                "invalid value: {s}. Valid memory swappiness range is 0-100"
            )));
        }
        if s >= 0 && !berth_runtime::host_supports_memory_swappiness() {
            r.memory_swappiness = None;
        }
    }
    Ok(())
}

/// `-1` (docker's unlimited) as the kernel's RLIM_INFINITY.
fn rlimit_value(v: i64) -> u64 {
    if v < 0 {
        u64::MAX
    } else {
        v as u64
    }
}

/// Makes `spec` carry the record's resources. `layers` are the root filesystem's directories
/// topmost first (for `--group-add` names).
pub(crate) fn apply(rec: &ContainerRecord, spec: &mut Spec, layers: &[PathBuf]) -> Result<()> {
    let r = &rec.host.resources;
    let mut process = spec.process().clone().unwrap_or_default();
    if !r.group_add.is_empty() {
        let mut user = process.user().clone();
        let mut gids = user.additional_gids().clone().unwrap_or_default();
        for gid in berth_runtime::resolve_groups(layers, &r.group_add)? {
            if !gids.contains(&gid) {
                gids.push(gid);
            }
        }
        user.set_additional_gids(Some(gids));
        process.set_user(user);
    }
    if !r.ulimits.is_empty() {
        let mut rlimits = process.rlimits().clone().unwrap_or_default();
        for u in &r.ulimits {
            let typ = ULIMITS
                .iter()
                .find(|(n, _)| *n == u.name)
                .map(|(_, t)| *t)
                .ok_or_else(|| invalid(format!("invalid ulimit type: {}", u.name)))?;
            rlimits.retain(|l| l.typ() != typ);
            let l = PosixRlimitBuilder::default()
                .typ(typ)
                .soft(rlimit_value(u.soft))
                .hard(rlimit_value(u.hard))
                .build()
                .map_err(|e| invalid(format!("ulimit {}: {e}", u.name)))?;
            rlimits.push(l);
        }
        process.set_rlimits(Some(rlimits));
    }
    if r.oom_score_adj != 0 {
        process.set_oom_score_adj(Some(r.oom_score_adj));
    }
    spec.set_process(Some(process));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    if r.shm_size > 0 {
        if let Some(shm) = mounts
            .iter_mut()
            .find(|m| m.destination() == Path::new("/dev/shm"))
        {
            let options: Vec<String> = shm
                .options()
                .iter()
                .flatten()
                .filter(|o| !o.starts_with("size="))
                .cloned()
                .chain([format!("size={}", r.shm_size)])
                .collect();
            shm.set_options(Some(options));
        }
    }
    for (path, options) in &r.tmpfs {
        mounts.retain(|m| m.destination() != Path::new(path));
        let mut m = Mount::default();
        m.set_destination(PathBuf::from(path));
        m.set_typ(Some("tmpfs".into()));
        m.set_source(Some(PathBuf::from("tmpfs")));
        // docker's defaults first, so the given options win.
        let opts = ["noexec", "nosuid", "nodev"]
            .into_iter()
            .map(str::to_string)
            .chain(
                options
                    .split(',')
                    .filter(|o| !o.is_empty())
                    .map(str::to_string),
            )
            .collect();
        m.set_options(Some(opts));
        mounts.push(m);
    }
    spec.set_mounts(Some(mounts));

    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut devices = linux.devices().clone().unwrap_or_default();
    let mut resources = linux.resources().clone().unwrap_or_default();
    let mut rules = resources.devices().clone().unwrap_or_default();
    for m in &r.devices {
        for (path, meta) in host_nodes(m)? {
            let typ = if meta.file_type().is_block_device() {
                LinuxDeviceType::B
            } else {
                LinuxDeviceType::C
            };
            let (major, minor) = (
                libc::major(meta.rdev()) as i64,
                libc::minor(meta.rdev()) as i64,
            );
            devices.retain(|d| d.path() != &path);
            let mut d = LinuxDevice::default();
            d.set_path(path);
            d.set_typ(typ);
            d.set_major(major);
            d.set_minor(minor);
            d.set_file_mode(Some(meta.mode() & 0o7777));
            d.set_uid(Some(meta.uid()));
            d.set_gid(Some(meta.gid()));
            devices.push(d);
            rules.push(berth_runtime::device_rule(
                typ,
                Some(major),
                Some(minor),
                &m.cgroup_permissions,
            ));
        }
    }
    for rule in &r.device_cgroup_rules {
        let rule = cgroup_rule(rule)
            .ok_or_else(|| invalid(format!("invalid device cgroup format '{rule}'")))?;
        rules.push(rule);
    }
    linux.set_devices((!devices.is_empty()).then_some(devices));
    resources.set_devices(Some(rules));
    if !r.sysctls.is_empty() {
        let mut sysctl = linux.sysctl().clone().unwrap_or_default();
        sysctl.extend(r.sysctls.iter().map(|(k, v)| (k.clone(), v.clone())));
        linux.set_sysctl(Some(sysctl));
    }
    let swappiness = r.memory_swappiness.filter(|s| *s >= 0);
    if r.oom_kill_disable || r.memory_reservation > 0 || swappiness.is_some() {
        // LinuxMemory has no setters: the limits set before are carried into a new one.
        let old = resources.memory().unwrap_or_default();
        let mut memory = LinuxMemoryBuilder::default();
        if let Some(limit) = old.limit() {
            memory = memory.limit(limit);
        }
        if let Some(swap) = old.swap() {
            memory = memory.swap(swap);
        }
        if let Some(swappiness) = swappiness.map(|s| s as u64).or(old.swappiness()) {
            memory = memory.swappiness(swappiness);
        }
        if r.oom_kill_disable {
            memory = memory.disable_oom_killer(true);
        }
        if r.memory_reservation > 0 {
            memory = memory.reservation(r.memory_reservation);
        }
        let memory = memory
            .build()
            .map_err(|e| invalid(format!("memory settings: {e}")))?;
        resources.set_memory(Some(memory));
    }
    if r.cpu_shares > 0
        || !r.cpuset_cpus.is_empty()
        || !r.cpuset_mems.is_empty()
        || r.cpu_period != 0
        || r.cpu_quota != 0
        || r.cpu_realtime_period != 0
        || r.cpu_realtime_runtime != 0
    {
        let mut cpu = resources.cpu().clone().unwrap_or_default();
        if r.cpu_shares > 0 {
            cpu.set_shares(Some(r.cpu_shares as u64));
        }
        // docker's order: --cpus gave a period and quota already; these override them.
        if r.cpu_period != 0 {
            cpu.set_period(Some(r.cpu_period as u64));
        }
        if r.cpu_quota != 0 {
            cpu.set_quota(Some(r.cpu_quota));
        }
        if r.cpu_realtime_period != 0 {
            cpu.set_realtime_period(Some(r.cpu_realtime_period as u64));
        }
        if r.cpu_realtime_runtime != 0 {
            cpu.set_realtime_runtime(Some(r.cpu_realtime_runtime));
        }
        if !r.cpuset_cpus.is_empty() {
            cpu.set_cpus(Some(r.cpuset_cpus.clone()));
        }
        if !r.cpuset_mems.is_empty() {
            cpu.set_mems(Some(r.cpuset_mems.clone()));
        }
        resources.set_cpu(Some(cpu));
    }
    if r.blkio_weight > 0 {
        let mut blkio = resources.block_io().clone().unwrap_or_default();
        blkio.set_weight(Some(r.blkio_weight));
        resources.set_block_io(Some(blkio));
    }
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulimits_in_docker_words() {
        let u = Ulimit::parse("nofile=100:200").unwrap();
        assert_eq!((u.name.as_str(), u.soft, u.hard), ("nofile", 100, 200));
        let u = Ulimit::parse("nproc=50").unwrap();
        assert_eq!((u.soft, u.hard), (50, 50));
        assert_eq!(Ulimit::parse("core=-1").unwrap().hard, -1);
        for (bad, msg) in [
            ("nofile", "invalid ulimit argument: nofile"),
            ("foo=1", "invalid ulimit type: foo"),
            (
                "nofile=x",
                "strconv.ParseInt: parsing \"x\": invalid syntax",
            ),
            (
                "nofile=1:y",
                "strconv.ParseInt: parsing \"y\": invalid syntax",
            ),
            (
                "nofile=10:5",
                "ulimit soft limit must be less than or equal to hard limit: 10 > 5",
            ),
        ] {
            assert_eq!(Ulimit::parse(bad).unwrap_err(), msg, "{bad}");
        }
    }

    #[test]
    fn devices_in_docker_words() {
        let d = DeviceMapping::parse("/dev/null").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/null", "rwm")
        );
        let d = DeviceMapping::parse("/dev/null:r").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/null", "r")
        );
        let d = DeviceMapping::parse("/dev/null:/dev/x:rw").unwrap();
        assert_eq!(
            (d.path_in_container.as_str(), d.cgroup_permissions.as_str()),
            ("/dev/x", "rw")
        );
        for (bad, msg) in [
            ("", "bad format for path: "),
            ("/dev/null:/dev/x:rwx", "bad mode specified: rwx"),
            ("/dev/null:rel", "rel is not an absolute path"),
            ("a:b:c:d", "bad format for path: a:b:c:d"),
        ] {
            assert_eq!(DeviceMapping::parse(bad).unwrap_err(), msg, "{bad:?}");
        }
    }

    #[test]
    fn cgroup_rules_sysctls_lists_and_tmpfs_options() {
        for good in ["c 1:3 rwm", "b *:* m", "a *:* rwm", "c 10:200 r"] {
            assert!(check_cgroup_rule(good).is_ok(), "{good}");
        }
        for bad in [
            "x 1:3 rwm",
            "c 1:3",
            "c 1:3 rwz",
            "c 1 rwm",
            "c a:3 r",
            "c 1:3 rwm x",
        ] {
            assert_eq!(
                check_cgroup_rule(bad).unwrap_err(),
                format!("invalid device cgroup format '{bad}'")
            );
        }
        assert!(check_sysctl("net.ipv4.ip_forward=1").is_ok());
        assert!(check_sysctl("kernel.shmmax=1000").is_ok());
        assert!(check_sysctl("fs.mqueue.msg_max=20").is_ok());
        for bad in ["kernel.hostname=x", "vm.swappiness=1", "foo"] {
            assert_eq!(
                check_sysctl(bad).unwrap_err(),
                format!("sysctl '{bad}' is not allowed")
            );
        }
        assert_eq!(parse_list("0-2,5"), Some(vec![0, 1, 2, 5]));
        for bad in ["x", "1-0", "", "1,", "-1"] {
            assert_eq!(parse_list(bad), None, "{bad:?}");
        }
        assert!(check_tmpfs_options("size=1m,mode=700,exec").is_ok());
        assert_eq!(
            check_tmpfs_options("foo=bar").unwrap_err().to_string(),
            "invalid tmpfs option [\"foo\" \"bar\"]"
        );
    }
}
