//! cgroups for one container, on pure v1, pure v2 and hybrid hosts.
//!
//! The layout is read from /proc/self/mountinfo each time a container is created: every v1
//! hierarchy that carries a controller we use (memory, cpu, cpuacct, pids, freezer, devices,
//! blkio (its counters are `stats`' block I/O); cpuset only for a container whose resources
//! name cpus or memory nodes, or that `update` gives them) gets a directory for the container; the v2 hierarchy is used when it carries one of those
//! controllers (pure v2), or for the freezer when no v1 freezer exists. A hybrid host whose
//! cgroup2 mount holds nothing we use (this project's machines: only hugetlb there) is thus
//! handled as v1. The resolved directories are stored in the container's record, so pause,
//! exec, kill and delete never guess again.

use crate::error::{Error, Result};
use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const WANTED_V1: &[&str] = &[
    "memory", "cpu", "cpuacct", "pids", "freezer", "devices", "blkio",
];
const WANTED_V2: &[&str] = &["cpuset", "cpu", "io", "memory", "pids"];

/// The v1 controllers a container joins: cpuset only when its resources use it (a cpuset
/// directory must be filled before a process may join it).
fn wanted_v1_for(resources: Option<&LinuxResources>) -> Vec<&'static str> {
    let mut wanted = WANTED_V1.to_vec();
    let cpu = resources.and_then(|r| r.cpu().as_ref());
    if cpu.is_some_and(|c| c.cpus().is_some() || c.mems().is_some()) {
        wanted.push("cpuset");
    }
    wanted
}

/// Whether this host can keep the OOM killer away from a cgroup (docker's
/// `--oom-kill-disable`): only cgroup v1's memory controller can (`memory.oom_control`).
pub fn host_supports_oom_kill_disable() -> bool {
    v1_controller_has("memory", "memory.oom_control")
}

/// Whether this host can set a cgroup's swappiness (docker's `--memory-swappiness`): only
/// cgroup v1's memory controller has it (`memory.swappiness`).
pub fn host_supports_memory_swappiness() -> bool {
    v1_controller_has("memory", "memory.swappiness")
}

/// Whether a cgroup v1 hierarchy with `controller` has `file` at its root.
fn v1_controller_has(controller: &str, file: &str) -> bool {
    Layout::detect().is_ok_and(|layout| {
        layout
            .v1
            .iter()
            .filter(|m| m.controllers.iter().any(|c| c == controller))
            .any(|m| m.mountpoint.join(file).exists())
    })
}

/// Whether this host can weigh a cgroup's block I/O (docker's `--blkio-weight`): the v1
/// blkio hierarchy or the v2 io controller has a weight file (BFQ's or CFQ's).
pub fn host_supports_blkio_weight() -> bool {
    let Ok(layout) = Layout::detect() else {
        return false;
    };
    let v1 = layout
        .v1
        .iter()
        .filter(|m| m.controllers.iter().any(|c| c == "blkio"))
        .any(|m| {
            ["blkio.weight", "blkio.bfq.weight"]
                .iter()
                .any(|f| m.mountpoint.join(f).exists())
        });
    let v2 = layout.v2.as_ref().is_some_and(|(mp, _)| {
        std::fs::read_to_string(mp.join("cgroup.controllers"))
            .is_ok_and(|c| c.split_whitespace().any(|c| c == "io"))
            && !layout.v1_has("blkio")
    });
    v1 || v2
}

/// Whether containers can get a real-time CPU period and runtime (docker's
/// `--cpu-rt-period`/`--cpu-rt-runtime`): only cgroup v1's cpu controller of a kernel built with
/// `CONFIG_RT_GROUP_SCHED` has them (`cpu.rt_runtime_us`); cgroup v2 has none.
pub fn host_supports_cpu_realtime() -> bool {
    v1_controller_has("cpu", "cpu.rt_runtime_us")
}

/// One cgroup v1 hierarchy as mounted on the host.
#[derive(Clone, Debug)]
pub(crate) struct V1Mount {
    pub mountpoint: PathBuf,
    pub root: PathBuf,
    /// Controllers and `name=` options, as in the mount's super options.
    pub controllers: Vec<String>,
}

/// The host's cgroup mounts.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layout {
    pub v1: Vec<V1Mount>,
    pub v2: Option<(PathBuf, PathBuf)>,
}

impl Layout {
    pub fn detect() -> Result<Layout> {
        let text = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| Error::io("read /proc/self/mountinfo", e))?;
        let mut layout = Layout::default();
        for line in text.lines() {
            let Some((pre, post)) = line.split_once(" - ") else {
                continue;
            };
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            if pre.len() < 5 || post.len() < 3 {
                continue;
            }
            let root = PathBuf::from(unescape(pre[3]));
            let mountpoint = PathBuf::from(unescape(pre[4]));
            match post[0] {
                "cgroup" => {
                    let controllers = post[2]
                        .split(',')
                        .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent"))
                        .filter(|o| *o != "clone_children" && *o != "noprefix")
                        .map(str::to_string)
                        .collect();
                    layout.v1.push(V1Mount {
                        mountpoint,
                        root,
                        controllers,
                    });
                }
                "cgroup2" if layout.v2.is_none() => layout.v2 = Some((mountpoint, root)),
                _ => {}
            }
        }
        Ok(layout)
    }

    fn v1_has(&self, controller: &str) -> bool {
        self.v1
            .iter()
            .any(|m| m.controllers.iter().any(|c| c == controller))
    }

    /// The directories a container with `cgroups_path` and `resources` gets on this host.
    pub fn paths_for(
        &self,
        cgroups_path: &Path,
        resources: Option<&LinuxResources>,
    ) -> Result<CgroupPaths> {
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let wanted_v1 = wanted_v1_for(resources);
        let mut paths = CgroupPaths::default();
        for m in &self.v1 {
            if !m
                .controllers
                .iter()
                .any(|c| wanted_v1.contains(&c.as_str()))
            {
                continue;
            }
            let current = own.lines().find_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                let set: Vec<&str> = ctrls.split(',').collect();
                m.controllers
                    .iter()
                    .all(|c| set.contains(&c.as_str()))
                    .then(|| path.to_string())
            });
            paths.v1.push(V1Dir {
                dir: join_cgroup(&m.mountpoint, &m.root, current.as_deref(), cgroups_path),
                controllers: m.controllers.clone(),
            });
        }
        if let Some((mountpoint, root)) = &self.v2 {
            let available =
                std::fs::read_to_string(mountpoint.join("cgroup.controllers")).unwrap_or_default();
            let useful = available
                .split_whitespace()
                .any(|c| WANTED_V2.contains(&c) && !self.v1_has(c))
                || !self.v1_has("freezer") && mountpoint == Path::new("/sys/fs/cgroup");
            if useful {
                let current = own
                    .lines()
                    .find_map(|l| l.strip_prefix("0::").map(str::to_string));
                paths.v2 = Some(join_cgroup(
                    mountpoint,
                    root,
                    current.as_deref(),
                    cgroups_path,
                ));
            }
        }
        if let Some(m) = self
            .v1
            .iter()
            .find(|m| m.controllers.iter().any(|c| c == "cpuset"))
        {
            if !wanted_v1.contains(&"cpuset") {
                let current = own.lines().find_map(|l| {
                    let mut f = l.splitn(3, ':');
                    let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
                    ctrls
                        .split(',')
                        .any(|c| c == "cpuset")
                        .then(|| path.to_string())
                });
                paths.cpuset_later = Some(join_cgroup(
                    &m.mountpoint,
                    &m.root,
                    current.as_deref(),
                    cgroups_path,
                ));
            }
        }
        if paths.v1.is_empty() && paths.v2.is_none() {
            return Err(Error::Cgroup(
                "no usable cgroup hierarchy is mounted".into(),
            ));
        }
        Ok(paths)
    }
}

fn unescape(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// An absolute cgroups path is relative to the hierarchy's root (as runc reads it); a relative
/// one is relative to the caller's own cgroup.
fn join_cgroup(mountpoint: &Path, root: &Path, current: Option<&str>, path: &Path) -> PathBuf {
    let base = if path.is_absolute() {
        PathBuf::from("/")
    } else {
        PathBuf::from(current.unwrap_or("/"))
    };
    let full = base.join(path);
    let rel = full
        .strip_prefix(root)
        .unwrap_or_else(|_| full.strip_prefix("/").unwrap());
    mountpoint.join(rel)
}

/// One v1 directory of the container and the controllers its hierarchy carries.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct V1Dir {
    pub dir: PathBuf,
    pub controllers: Vec<String>,
}

/// The cgroup directories of one container.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct CgroupPaths {
    pub v1: Vec<V1Dir>,
    pub v2: Option<PathBuf>,
    /// Rootless: the user's delegated subtree, the only ancestors whose controllers berth
    /// may turn on (those above are the system's, already delegating them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v2_base: Option<PathBuf>,
    /// The v1 cpuset directory of a container that did not join it at create (no cpus or
    /// memory nodes asked): `update` makes it and moves the processes in when it first sets
    /// them; then it is one of `dirs()` (exec joins it, removal removes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset_later: Option<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<()> {
    std::fs::write(path, value)
        .map_err(|e| Error::Cgroup(format!("write {value:?} to {}: {e}", path.display())))
}

impl CgroupPaths {
    pub(crate) fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.v1
            .iter()
            .find(|d| d.controllers.iter().any(|c| c == controller))
            .map(|d| d.dir.as_path())
    }

    /// Every directory of the container, v1 and v2.
    pub fn dirs(&self) -> impl Iterator<Item = &Path> {
        self.v1
            .iter()
            .map(|d| d.dir.as_path())
            .chain(self.v2.as_deref())
            .chain(self.cpuset_later())
    }

    /// The cpuset directory `update` made, once it exists.
    fn cpuset_later(&self) -> Option<&Path> {
        self.cpuset_later.as_deref().filter(|d| d.exists())
    }

    /// New limits on a container's live cgroups (`runc update`): only what `r` sets is
    /// written. A v1 cpuset the container has not joined is made first and, once it holds
    /// the new cpus and nodes, its processes are moved in.
    pub fn update(&self, r: &LinuxResources) -> Result<()> {
        let cpu = r.cpu().as_ref();
        let cpuset = cpu.is_some_and(|c| c.cpus().is_some() || c.mems().is_some());
        let newly = match &self.cpuset_later {
            Some(dir) if cpuset && !dir.exists() => {
                create_cpuset_v1(dir)?;
                Some(dir)
            }
            _ => None,
        };
        self.apply(r)?;
        if let Some(dir) = newly {
            // Twice: a process forked while the first pass ran may have been missed.
            for _ in 0..2 {
                for pid in self.procs() {
                    match std::fs::write(dir.join("cgroup.procs"), pid.to_string()) {
                        Err(e) if e.raw_os_error() != Some(libc::ESRCH) => {
                            return Err(Error::Cgroup(format!(
                                "move {pid} into {}: {e}",
                                dir.display()
                            )))
                        }
                        _ => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates the directories and applies the limits.
    pub fn create(&self, resources: Option<&LinuxResources>) -> Result<()> {
        for d in &self.v1 {
            if d.controllers.iter().any(|c| c == "cpuset") {
                create_cpuset_v1(&d.dir)?;
                continue;
            }
            std::fs::create_dir_all(&d.dir)
                .map_err(|e| Error::Cgroup(format!("mkdir {}: {e}", d.dir.display())))?;
        }
        if let Some(dir) = &self.v2 {
            enable_v2_controllers(dir, self.v2_base.as_deref())?;
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::Cgroup(format!("mkdir {}: {e}", dir.display())))?;
        }
        if let Some(r) = resources {
            self.apply(r)?;
        }
        Ok(())
    }

    fn missing(what: &str) -> Error {
        Error::Cgroup(format!(
            "the {what} controller is not available on this host"
        ))
    }

    fn apply(&self, r: &LinuxResources) -> Result<()> {
        if let Some(mem) = r.memory() {
            if let Some(dir) = self.v1_dir("memory") {
                let memsw = dir.join("memory.memsw.limit_in_bytes");
                let swap = mem.swap().filter(|_| memsw.exists());
                // The kernel keeps memory <= memory+swap at every step: a limit above the
                // current memsw limit needs the new memsw limit written first.
                let current_memsw: i64 = std::fs::read_to_string(&memsw)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(i64::MAX);
                let swap_first =
                    swap.is_some_and(|s| s < 0 || mem.limit().is_some_and(|l| l > current_memsw));
                if let Some(swap) = swap.filter(|_| swap_first) {
                    write(&memsw, &swap.to_string())?;
                }
                if let Some(limit) = mem.limit() {
                    write(&dir.join("memory.limit_in_bytes"), &limit.to_string())?;
                }
                if let Some(swap) = swap.filter(|_| !swap_first) {
                    write(&memsw, &swap.to_string())?;
                }
                if let Some(res) = mem.reservation() {
                    write(&dir.join("memory.soft_limit_in_bytes"), &res.to_string())?;
                }
                if let Some(sw) = mem.swappiness() {
                    write(&dir.join("memory.swappiness"), &sw.to_string())?;
                }
                if mem.disable_oom_killer() == Some(true) {
                    write(&dir.join("memory.oom_control"), "1")?;
                }
            } else if let Some(dir) = self.v2_with("memory") {
                if let Some(limit) = mem.limit() {
                    write(&dir.join("memory.max"), &v2_max(limit))?;
                    if let Some(swap) = mem.swap() {
                        let v = if swap < 0 {
                            "max".to_string()
                        } else {
                            (swap - limit).max(0).to_string()
                        };
                        let f = dir.join("memory.swap.max");
                        if f.exists() {
                            write(&f, &v)?;
                        }
                    }
                }
                if let Some(res) = mem.reservation() {
                    write(&dir.join("memory.low"), &res.to_string())?;
                }
            } else if mem.limit().is_some() {
                return Err(Self::missing("memory"));
            }
        }
        if let Some(cpu) = r.cpu() {
            if let Some(dir) = self.v1_dir("cpu") {
                if let Some(shares) = cpu.shares() {
                    write(&dir.join("cpu.shares"), &shares.to_string())?;
                }
                if let Some(period) = cpu.period() {
                    write(&dir.join("cpu.cfs_period_us"), &period.to_string())?;
                }
                if let Some(quota) = cpu.quota() {
                    write(&dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
                write_realtime(dir, cpu.realtime_period(), cpu.realtime_runtime())?;
            } else if cpu.realtime_period().is_some() || cpu.realtime_runtime().is_some() {
                return Err(Self::missing("cpu real-time"));
            } else if let Some(dir) = self.v2_with("cpu") {
                if let Some(shares) = cpu.shares() {
                    let weight = 1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142;
                    write(&dir.join("cpu.weight"), &weight.to_string())?;
                }
                if cpu.quota().is_some() || cpu.period().is_some() {
                    let quota = cpu.quota().filter(|q| *q > 0).map(|q| q.to_string());
                    let period = cpu.period().unwrap_or(100_000);
                    let v = format!("{} {period}", quota.as_deref().unwrap_or("max"));
                    write(&dir.join("cpu.max"), &v)?;
                }
            } else if cpu.quota().is_some() || cpu.shares().is_some() {
                return Err(Self::missing("cpu"));
            }
            let cpuset = self
                .v1_dir("cpuset")
                .or(self.cpuset_later())
                .or(self.v2_with("cpuset"));
            for (file, value) in [("cpuset.cpus", cpu.cpus()), ("cpuset.mems", cpu.mems())] {
                let Some(value) = value else { continue };
                let Some(dir) = cpuset else {
                    return Err(Self::missing("cpuset"));
                };
                write(&dir.join(file), value)?;
            }
        }
        if let Some(weight) = r.block_io().as_ref().and_then(|b| b.weight()) {
            self.write_blkio_weight(weight)?;
        }
        if let Some(pids) = r.pids() {
            let v = if pids.limit() > 0 {
                pids.limit().to_string()
            } else {
                "max".to_string()
            };
            if let Some(dir) = self.v1_dir("pids").or(self.v2_with("pids")) {
                write(&dir.join("pids.max"), &v)?;
            } else if pids.limit() > 0 {
                return Err(Self::missing("pids"));
            }
        }
        if let Some(rules) = r.devices() {
            if let Some(dir) = self.v1_dir("devices") {
                for rule in rules {
                    let file = if rule.allow() {
                        "devices.allow"
                    } else {
                        "devices.deny"
                    };
                    write(&dir.join(file), &rule.to_string())?;
                }
            } else if let (Some(dir), None) = (&self.v2, &self.v2_base) {
                // cgroup v2 has no devices files: the rules become an eBPF program. Not in a
                // rootless container's delegated cgroup: the kernel loads no such program for
                // a user namespace, and its device nodes are the host's, bound in, which the
                // user may open or not as on the host.
                crate::devices::attach(dir, rules)?;
            }
        }
        if let (Some(unified), Some(dir)) = (r.unified(), &self.v2) {
            for (k, v) in unified {
                if k.contains('/') {
                    return Err(Error::InvalidSpec(format!("unified key {k:?}")));
                }
                write(&dir.join(k), v)?;
            }
        }
        Ok(())
    }

    /// docker's `--blkio-weight` (10 to 1000): BFQ's weight file where the I/O scheduler is
    /// BFQ, else CFQ's (v1) or the io controller's (v2, on its own 1 to 10000 scale).
    fn write_blkio_weight(&self, weight: u16) -> Result<()> {
        if let Some(dir) = self.v1_dir("blkio") {
            for file in ["blkio.bfq.weight", "blkio.weight"] {
                if dir.join(file).exists() {
                    return write(&dir.join(file), &weight.to_string());
                }
            }
        } else if let Some(dir) = self.v2_with("io") {
            if dir.join("io.bfq.weight").exists() {
                return write(&dir.join("io.bfq.weight"), &weight.to_string());
            }
            let v2 = 1 + (u64::from(weight).clamp(10, 1000) - 10) * 9999 / 990;
            return write(&dir.join("io.weight"), &format!("default {v2}"));
        }
        Err(Error::Cgroup(
            "this host cannot weigh block I/O (no blkio.weight or io.weight file)".into(),
        ))
    }

    fn v2_with(&self, controller: &str) -> Option<&Path> {
        let dir = self.v2.as_deref()?;
        let ctrls = std::fs::read_to_string(dir.join("cgroup.controllers")).ok()?;
        ctrls
            .split_whitespace()
            .any(|c| c == controller)
            .then_some(dir)
    }

    /// Moves the calling process, which must have one thread (a child just forked), into
    /// every directory of the container: [`join_self_v1`](Self::join_self_v1), then the v2
    /// directory's `cgroup.procs` (`0` means "me").
    pub fn join_self(&self) -> io::Result<()> {
        self.join_self_v1()?;
        self.join_v2("0")
    }

    /// Moves the calling thread into the container's v1 directories by writing `0` to their
    /// `tasks`: for one thread moving itself the kernel takes no threadgroup lock, where a
    /// `cgroup.procs` write takes it for writing and first waits for an RCU grace period
    /// (several milliseconds, more while network namespaces are being torn down). Of a
    /// process with one thread (a child just forked), that moves the process.
    pub fn join_self_v1(&self) -> io::Result<()> {
        for dir in self
            .v1
            .iter()
            .map(|d| d.dir.as_path())
            .chain(self.cpuset_later())
        {
            std::fs::write(dir.join("tasks"), "0")?;
        }
        Ok(())
    }

    /// Moves process `pid` (as the caller's pid namespace numbers it, or `0` for the
    /// caller) into the container's v2 directory, if it has one. cgroup v2 moves whole
    /// processes only.
    pub fn join_v2(&self, pid: &str) -> io::Result<()> {
        match &self.v2 {
            Some(dir) => std::fs::write(dir.join("cgroup.procs"), pid),
            None => Ok(()),
        }
    }

    /// Freezes or thaws the container's processes. A thaw of a cgroup that is gone already
    /// (its last process died, SIGKILLed while frozen, and the monitor removed it) has
    /// nothing left to do.
    pub fn freeze(&self, frozen: bool) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        if let Some(dir) = self.v1_dir("freezer") {
            let want = if frozen { "FROZEN" } else { "THAWED" };
            let file = dir.join("freezer.state");
            loop {
                if let Err(e) = write(&file, want) {
                    return if !frozen && !dir.exists() {
                        Ok(())
                    } else {
                        Err(e)
                    };
                }
                let now = std::fs::read_to_string(&file).unwrap_or_default();
                if now.trim() == want {
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(Error::Timeout("waiting for the freezer"));
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let Some(dir) = &self.v2 else {
            return Err(Self::missing("freezer"));
        };
        if let Err(e) = write(&dir.join("cgroup.freeze"), if frozen { "1" } else { "0" }) {
            return if !frozen && !dir.exists() {
                Ok(())
            } else {
                Err(e)
            };
        }
        let want = if frozen { "frozen 1" } else { "frozen 0" };
        loop {
            let events = std::fs::read_to_string(dir.join("cgroup.events")).unwrap_or_default();
            if events.lines().any(|l| l == want) || (!frozen && !dir.exists()) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Timeout("waiting for the freezer"));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    pub fn is_frozen(&self) -> bool {
        if let Some(dir) = self.v1_dir("freezer") {
            let s = std::fs::read_to_string(dir.join("freezer.state")).unwrap_or_default();
            return s.trim() == "FROZEN";
        }
        self.v2.as_ref().is_some_and(|dir| {
            std::fs::read_to_string(dir.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
        })
    }

    /// Whether the OOM killer killed a process of the container.
    pub fn oom_killed(&self) -> bool {
        let count = |file: PathBuf| {
            std::fs::read_to_string(file).ok().and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
        };
        if let Some(dir) = self.v1_dir("memory") {
            return count(dir.join("memory.oom_control")).unwrap_or(0) > 0;
        }
        self.v2
            .as_ref()
            .and_then(|d| count(d.join("memory.events")))
            .unwrap_or(0)
            > 0
    }

    /// Host pids of every process in the container.
    pub fn procs(&self) -> Vec<i32> {
        let dir = self
            .v1_dir("pids")
            .or(self.v1_dir("memory"))
            .or(self.v2.as_deref())
            .or(self.v1.first().map(|d| d.dir.as_path()));
        dir.and_then(|d| std::fs::read_to_string(d.join("cgroup.procs")).ok())
            .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// SIGKILLs every process in the container (used when no monitor is left to do it).
    pub fn kill_all(&self) {
        if self.is_frozen() {
            let _ = self.freeze(false);
        }
        for pid in self.procs() {
            // SAFETY: kill(2) on a pid read from the container's own cgroup.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }

    /// Removes every directory; waits (bounded) for exiting processes to leave them.
    pub fn remove(&self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(5);
        for dir in self.dirs() {
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        if Instant::now() > deadline {
                            return Err(Error::Cgroup(format!(
                                "{} still has processes",
                                dir.display()
                            )));
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => return Err(Error::Cgroup(format!("rmdir {}: {e}", dir.display()))),
                }
            }
        }
        Ok(())
    }
}

/// Creates a v1 cpuset directory and each missing ancestor below the hierarchy's root, each
/// given its parent's cpus and memory nodes first: a new cpuset directory starts empty, and
/// no process may join an empty one.
fn create_cpuset_v1(dir: &Path) -> Result<()> {
    if dir.exists() {
        return Ok(());
    }
    let parent = dir
        .parent()
        .ok_or_else(|| Error::Cgroup(format!("no parent for {}", dir.display())))?;
    if !parent.exists() {
        create_cpuset_v1(parent)?;
    }
    if !parent.join("cpuset.cpus").exists() {
        return Err(Error::Cgroup(format!(
            "{} is not in a cpuset hierarchy",
            dir.display()
        )));
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::Cgroup(format!("mkdir {}: {e}", dir.display()))),
    }
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let current = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
        if current.trim().is_empty() {
            let from = std::fs::read_to_string(parent.join(file))
                .map_err(|e| Error::Cgroup(format!("read {}: {e}", parent.join(file).display())))?;
            write(&dir.join(file), from.trim())?;
        }
    }
    Ok(())
}

fn v2_max(v: i64) -> String {
    if v < 0 {
        "max".into()
    } else {
        v.to_string()
    }
}

/// Turns on the controllers we use in every ancestor of `dir` (v2 needs them delegated
/// level by level). The mount point of the hierarchy is the first ancestor written.
fn enable_v2_controllers(dir: &Path, base: Option<&Path>) -> Result<()> {
    let mut ancestors: Vec<&Path> = dir
        .ancestors()
        .skip(1)
        .filter(|a| base.is_none_or(|b| a.starts_with(b)))
        .collect();
    ancestors.reverse();
    for a in ancestors {
        let parent_is_cgroup = a.parent().is_some_and(|p| p.join("cgroup.procs").exists());
        if !a.exists() && parent_is_cgroup {
            std::fs::create_dir(a)
                .map_err(|e| Error::Cgroup(format!("mkdir {}: {e}", a.display())))?;
        }
        let Ok(available) = std::fs::read_to_string(a.join("cgroup.controllers")) else {
            continue;
        };
        let enabled = std::fs::read_to_string(a.join("cgroup.subtree_control")).unwrap_or_default();
        let add: Vec<String> = available
            .split_whitespace()
            .filter(|c| WANTED_V2.contains(c) && !enabled.split_whitespace().any(|e| e == *c))
            .map(|c| format!("+{c}"))
            .collect();
        if !add.is_empty() {
            write(&a.join("cgroup.subtree_control"), &add.join(" "))?;
        }
    }
    Ok(())
}

/// The cgroup v2 controllers the limits of `resources` need (a rootless container's must be
/// delegated to the user): memory for memory limits, cpu for a quota or weight, cpuset for
/// cpus or memory nodes, pids for a pids limit, io for a block I/O weight.
pub(crate) fn controllers_for(resources: Option<&LinuxResources>) -> Vec<&'static str> {
    let Some(r) = resources else {
        return vec![];
    };
    let positive = |v: Option<i64>| v.is_some_and(|v| v > 0);
    let mut needed = vec![];
    if r.memory().as_ref().is_some_and(|m| {
        positive(m.limit())
            || positive(m.swap())
            || positive(m.reservation())
            || m.swappiness().is_some()
            || m.disable_oom_killer() == Some(true)
    }) {
        needed.push("memory");
    }
    let cpu = r.cpu().as_ref();
    if cpu.is_some_and(|c| positive(c.quota()) || c.shares().is_some_and(|s| s > 0)) {
        needed.push("cpu");
    }
    if cpu.is_some_and(|c| c.cpus().is_some() || c.mems().is_some()) {
        needed.push("cpuset");
    }
    if r.pids().as_ref().is_some_and(|p| p.limit() > 0) {
        needed.push("pids");
    }
    if r.block_io().as_ref().is_some_and(|b| b.weight().is_some()) {
        needed.push("io");
    }
    needed
}

/// Where a rootless berth gives its containers cgroups of their own: a cgroup v2 subtree
/// delegated to the user (systemd's `Delegate=yes`, as `user@UID.service` and podman's
/// scopes have), with the `needed` controllers delegated too; or why there is none.
///
/// The subtree is the highest ancestor of this process's own cgroup that the user owns (its
/// `cgroup.procs` and `cgroup.subtree_control` theirs); containers go in `berth/<id>` below
/// it, so moving a container's init there stays inside what the user owns, as the kernel
/// requires.
pub fn delegated_subtree(needed: &[&str]) -> std::result::Result<PathBuf, String> {
    let layout = Layout::detect().map_err(|e| e.to_string())?;
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    delegated_in(&layout, &own, uid, needed, systemd_booted())
}

/// Whether systemd is the host's init (`sd_booted()`: /run/systemd/system exists).
fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn delegated_in(
    layout: &Layout,
    own: &str,
    uid: u32,
    needed: &[&str],
    systemd: bool,
) -> std::result::Result<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let on_v1: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|c| layout.v1_has(c))
        .collect();
    if !on_v1.is_empty() {
        return Err(format!(
            "cgroup v1 holds {} here (a v1 or hybrid host); limits need cgroup v2 delegated \
             to the user",
            on_v1.join(", ")
        ));
    }
    let Some((mountpoint, root)) = &layout.v2 else {
        return Err("no cgroup v2 hierarchy is mounted".into());
    };
    let current = own
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .ok_or("this process is in no cgroup v2")?;
    let mine = join_cgroup(mountpoint, root, Some(current), Path::new(""));
    let owned = |d: &Path| {
        ["cgroup.procs", "cgroup.subtree_control"]
            .iter()
            .all(|f| std::fs::metadata(d.join(f)).is_ok_and(|m| m.uid() == uid))
    };
    let top = mine
        .ancestors()
        .take_while(|d| d.starts_with(mountpoint) && owned(d))
        .last()
        .ok_or_else(|| {
            // podman asks systemd for a scope of the user's (a transient unit with
            // Delegate=yes); berth does not talk to systemd, so it says what to do.
            let how = if systemd {
                "start berth in a scope systemd delegates to the user (systemd-run --user \
                 --scope -p Delegate=yes berth ...)"
            } else {
                "this host has no systemd, which would delegate one (user@UID.service has \
                 Delegate=yes); without it, root can make a cgroup, chown it and its \
                 cgroup.procs, cgroup.subtree_control and cgroup.threads to the user, and start \
                 the user's session in it"
            };
            format!(
                "no cgroup v2 subtree is delegated to the user ({} is not theirs): {how}",
                mine.display()
            )
        })?;
    let controllers = std::fs::read_to_string(top.join("cgroup.controllers")).unwrap_or_default();
    if let Some(c) = needed
        .iter()
        .find(|c| !controllers.split_whitespace().any(|x| x == **c))
    {
        return Err(format!(
            "the {c} controller is not delegated to {} (systemd: Delegate=yes, or \
             Delegate=memory cpu pids)",
            top.display()
        ));
    }
    Ok(top.to_path_buf())
}

/// The real-time period and runtime of a v1 cpu cgroup. The kernel keeps runtime/period within
/// the parent's share at each write, so as runc: period first, and if the kernel refuses,
/// runtime first.
fn write_realtime(dir: &Path, period: Option<u64>, runtime: Option<i64>) -> Result<()> {
    let period = period.map(|p| (dir.join("cpu.rt_period_us"), p.to_string()));
    let runtime = runtime.map(|r| (dir.join("cpu.rt_runtime_us"), r.to_string()));
    let both = [period.as_ref(), runtime.as_ref()];
    let in_order = |order: [Option<&(PathBuf, String)>; 2]| -> Result<()> {
        for (file, value) in order.into_iter().flatten() {
            write(file, value)?;
        }
        Ok(())
    };
    in_order(both).or_else(|e| match both {
        [Some(_), Some(_)] => in_order([runtime.as_ref(), period.as_ref()]),
        _ => Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::runtime::{
        LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder,
    };

    fn v1(mountpoint: &Path, controllers: &[&str]) -> V1Mount {
        V1Mount {
            mountpoint: mountpoint.to_path_buf(),
            root: PathBuf::from("/"),
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn hybrid_host_uses_v1_when_v2_holds_nothing_we_use() {
        let tmp = tempfile::tempdir().unwrap();
        let unified = tmp.path().join("unified");
        std::fs::create_dir(&unified).unwrap();
        std::fs::write(unified.join("cgroup.controllers"), "hugetlb\n").unwrap();
        let layout = Layout {
            v1: vec![
                v1(&tmp.path().join("memory"), &["memory"]),
                v1(&tmp.path().join("cpu"), &["cpu"]),
                v1(&tmp.path().join("pids"), &["pids"]),
                v1(&tmp.path().join("freezer"), &["freezer"]),
                v1(&tmp.path().join("cpuset"), &["cpuset"]),
                v1(&tmp.path().join("systemd"), &["name=systemd"]),
            ],
            v2: Some((unified, PathBuf::from("/"))),
        };
        let paths = layout.paths_for(Path::new("/berth/x"), None).unwrap();
        assert_eq!(paths.v2, None);
        let dirs: Vec<&Path> = paths.dirs().collect();
        assert_eq!(
            dirs,
            ["memory", "cpu", "pids", "freezer"].map(|c| tmp.path().join(c).join("berth/x"))
        );
    }

    #[test]
    fn pure_v2_host_delegates_controllers_and_writes_v2_files() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        // A fake cgroup2 tree: what the kernel would show in each directory.
        let leaf = root.join("berth/x");
        std::fs::create_dir_all(&leaf).unwrap();
        for d in [root, &root.join("berth"), &leaf] {
            std::fs::write(d.join("cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
            std::fs::write(d.join("cgroup.procs"), "").unwrap();
            std::fs::write(d.join("cgroup.subtree_control"), "").unwrap();
        }
        let layout = Layout {
            v1: vec![],
            v2: Some((root.to_path_buf(), PathBuf::from("/"))),
        };
        let paths = layout.paths_for(Path::new("/berth/x"), None).unwrap();
        assert_eq!(paths.v2.as_deref(), Some(leaf.as_path()));
        let resources = LinuxResourcesBuilder::default()
            .memory(
                LinuxMemoryBuilder::default()
                    .limit(32i64 << 20)
                    .swap(32i64 << 20)
                    .build()
                    .unwrap(),
            )
            .cpu(
                LinuxCpuBuilder::default()
                    .quota(50_000i64)
                    .period(100_000u64)
                    .build()
                    .unwrap(),
            )
            .pids(LinuxPidsBuilder::default().limit(10i64).build().unwrap())
            .build()
            .unwrap();
        std::fs::write(leaf.join("memory.swap.max"), "").unwrap();
        paths.create(Some(&resources)).unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        assert_eq!(
            read(root.join("cgroup.subtree_control")),
            "+cpuset +cpu +io +memory +pids"
        );
        assert_eq!(
            read(root.join("berth/cgroup.subtree_control")),
            "+cpuset +cpu +io +memory +pids"
        );
        assert_eq!(read(leaf.join("memory.max")), "33554432");
        assert_eq!(read(leaf.join("memory.swap.max")), "0");
        assert_eq!(read(leaf.join("cpu.max")), "50000 100000");
        assert_eq!(read(leaf.join("pids.max")), "10");
    }

    /// The decision only (a tree of plain files shaped as cgroupfs): the kernel's side of
    /// delegation needs a pure cgroup v2 host with systemd, which the tests' hosts are not.
    #[test]
    fn delegated_subtree_is_the_highest_owned_ancestor_with_the_controllers() {
        let dir = tempfile::tempdir().unwrap();
        let mp = dir.path().join("cg");
        let user = mp.join("user.slice/user-1000.slice/user@1000.service");
        let shell = user.join("app.slice/term.scope");
        std::fs::create_dir_all(&shell).unwrap();
        for d in [
            mp.clone(),
            mp.join("user.slice"),
            user.parent().unwrap().to_path_buf(),
            user.clone(),
            user.join("app.slice"),
            shell.clone(),
        ] {
            for f in ["cgroup.procs", "cgroup.subtree_control"] {
                std::fs::write(d.join(f), "").unwrap();
            }
            std::fs::write(d.join("cgroup.controllers"), "cpu memory pids io").unwrap();
        }
        let layout = Layout {
            v1: vec![],
            v2: Some((mp.clone(), PathBuf::from("/"))),
        };
        let own = "0::/user.slice/user-1000.slice/user@1000.service/app.slice/term.scope\n";
        // Everything is root's in the temp dir: the whole tree is "owned" by uid 0 ...
        let all = ["memory", "cpu", "pids"];
        assert_eq!(delegated_in(&layout, own, 0, &all, false).unwrap(), mp);
        // ... and nothing by uid 4242; what to do depends on whether systemd runs.
        let err = delegated_in(&layout, own, 4242, &all, false).unwrap_err();
        assert!(err.contains("no cgroup v2 subtree is delegated"), "{err}");
        assert!(err.contains("this host has no systemd"), "{err}");
        let err = delegated_in(&layout, own, 4242, &[], true).unwrap_err();
        assert!(
            err.contains("systemd-run --user --scope -p Delegate=yes"),
            "{err}"
        );
        // A hybrid host (memory on v1) is refused for that reason.
        let hybrid = Layout {
            v1: vec![v1(Path::new("/sys/fs/cgroup/memory"), &["memory"])],
            v2: layout.v2.clone(),
        };
        let err = delegated_in(&hybrid, own, 0, &all, false).unwrap_err();
        assert!(err.contains("cgroup v1 holds memory here"), "{err}");
        // ... but a container without limits needs none of v1's controllers.
        assert_eq!(delegated_in(&hybrid, own, 0, &[], false).unwrap(), mp);
        // A controller missing from the subtree is named.
        std::fs::write(mp.join("cgroup.controllers"), "cpu memory").unwrap();
        let err = delegated_in(&layout, own, 0, &all, false).unwrap_err();
        assert!(
            err.contains("the pids controller is not delegated"),
            "{err}"
        );
        assert_eq!(delegated_in(&layout, own, 0, &["cpu"], false).unwrap(), mp);
    }

    #[test]
    fn absolute_and_relative_paths() {
        let mp = Path::new("/sys/fs/cgroup/memory");
        assert_eq!(
            join_cgroup(mp, Path::new("/"), Some("/user/1"), Path::new("/berth/x")),
            Path::new("/sys/fs/cgroup/memory/berth/x")
        );
        assert_eq!(
            join_cgroup(mp, Path::new("/"), Some("/user/1"), Path::new("berth/x")),
            Path::new("/sys/fs/cgroup/memory/user/1/berth/x")
        );
        assert_eq!(
            join_cgroup(
                mp,
                Path::new("/user"),
                Some("/user/1"),
                Path::new("berth/x")
            ),
            Path::new("/sys/fs/cgroup/memory/1/berth/x")
        );
    }
}
