//! The handle the engine holds: create a container from a Spec and a root filesystem, then
//! start, attach, wait, kill, stop, pause, resume, exec, and delete it. A `Container` is only a
//! state directory and an id; any process can `open` the same directory and act on it.

use crate::attach::{settled_exit, Attach, AttachOptions};
use crate::cgroup::{CgroupPaths, Layout};
use crate::error::{Context, Error, Result};
use crate::init::InitPlan;
use crate::logfile::LogConfig;
use crate::monitor::{self, MonitorPlan};
use crate::rootfs::{Device, Rootfs};
use crate::seccomp;
use crate::spec::{ns_flag, MountPlan, ProcessPlan};
use crate::state::{
    Exit, ExitHook, Record, StartHook, State, Status, ROOTFS_DIR, SPEC_FILE, STATE_FILE,
};
use crate::sys;
use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, LinuxResources, Spec};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long `stop` waits for the exit after its SIGKILL.
const KILLED_EXIT: Duration = Duration::from_secs(60);

/// Everything `create` needs.
#[derive(Clone, Debug)]
pub struct ContainerConfig {
    /// The container's id: letters, digits, `_`, `-`, `.`; it names the cgroup by default.
    pub id: String,
    /// The OCI runtime Spec. `root.path` is ignored (see `rootfs`); `root.readonly` is used.
    /// `process.terminal` chooses a pty over pipes.
    pub spec: Spec,
    /// The root filesystem.
    pub rootfs: Rootfs,
    /// The directory the runtime keeps the container's state in (created if missing; must
    /// not hold a container already). `delete` removes it.
    pub state_dir: PathBuf,
    /// Keep the container's stdin open for attached clients (docker's `-i`); otherwise the
    /// command reads /dev/null. A terminal's input is always open.
    pub open_stdin: bool,
    /// Where and how to write the log (format, rotation); `None` for no log.
    pub log: Option<LogConfig>,
    /// Called by the monitor once it has recorded the exit (the engine writes its `die` event
    /// with it). It runs in the monitor process, after the fork: keep it to a few system
    /// calls.
    pub on_exit: Option<ExitHook>,
    /// Called by the monitor once the command has started, before it answers the starter
    /// and before it can see the exit (the engine writes its `start` event with it, so that
    /// a `die` never comes first). It runs in the monitor process, as `on_exit`.
    pub on_start: Option<StartHook>,
    /// Run a small init as the container's first process, with the command as its child: it
    /// reaps zombies and forwards signals (docker's `--init`).
    pub init: bool,
}

/// A container, known by its state directory.
#[derive(Clone, Debug)]
pub struct Container {
    id: String,
    state_dir: PathBuf,
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !id.starts_with('.')
}

/// The kernel's IPC parameters a container with its own IPC namespace may set (besides
/// `fs.mqueue.*`), as runc and docker list them.
pub const IPC_SYSCTLS: &[&str] = &[
    "kernel.msgmax",
    "kernel.msgmnb",
    "kernel.msgmni",
    "kernel.sem",
    "kernel.shmall",
    "kernel.shmmax",
    "kernel.shmmni",
    "kernel.shm_rmid_forced",
];

/// The sysctls a container may set are those of a namespace of its own (runc's rule and
/// words): IPC ones with its own IPC namespace, `net.*` with its own network namespace,
/// the host and domain names with its own UTS namespace; nothing else.
fn check_sysctl(key: &str, own_ns: impl Fn(libc::c_int) -> bool) -> Result<()> {
    let refuse = |why: &str| Err(Error::InvalidSpec(format!("sysctl {key:?} {why}")));
    if IPC_SYSCTLS.contains(&key) || key.starts_with("fs.mqueue.") {
        if !own_ns(libc::CLONE_NEWIPC) {
            return refuse("is not allowed in the hosts ipc namespace");
        }
    } else if key.starts_with("net.") {
        if !own_ns(libc::CLONE_NEWNET) {
            return refuse("not allowed in host network namespace");
        }
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        if !own_ns(libc::CLONE_NEWUTS) {
            return refuse("not allowed in host UTS namespace");
        }
    } else {
        return refuse("is not in a separate kernel namespace");
    }
    Ok(())
}

fn plan(cfg: &ContainerConfig) -> Result<MonitorPlan> {
    let spec = &cfg.spec;
    let linux = spec.linux().clone().unwrap_or_default();
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::InvalidSpec("the spec has no process".into()))?;
    let mut process = ProcessPlan::from_process(process)?;
    process.seccomp = linux.seccomp().as_ref().map(seccomp::compile).transpose()?;

    let mut unshare = 0;
    let mut join = vec![];
    let mut new_pid_ns = false;
    let mut join_pid_ns = None;
    for ns in linux.namespaces().iter().flatten() {
        let flag = ns_flag(ns.typ());
        match (ns.typ(), ns.path()) {
            (LinuxNamespaceType::User | LinuxNamespaceType::Time, _) => {
                return Err(Error::InvalidSpec(format!(
                    "{} namespaces are not supported",
                    ns.typ()
                )))
            }
            (LinuxNamespaceType::Pid, Some(p)) => join_pid_ns = Some(p.clone()),
            (LinuxNamespaceType::Pid, None) => new_pid_ns = true,
            (_, Some(p)) => join.push((flag, p.clone())),
            (_, None) => unshare |= flag,
        }
    }
    if unshare & libc::CLONE_NEWNS == 0 {
        return Err(Error::InvalidSpec("a mount namespace is required".into()));
    }
    let own_uts =
        unshare & libc::CLONE_NEWUTS != 0 || join.iter().any(|(f, _)| *f == libc::CLONE_NEWUTS);
    if (spec.hostname().is_some() || spec.domainname().is_some()) && !own_uts {
        return Err(Error::InvalidSpec(
            "a hostname needs the container's own uts namespace".into(),
        ));
    }
    let root_propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") | Some("private") | Some("rprivate") => libc::MS_PRIVATE,
        Some("slave") | Some("rslave") => libc::MS_SLAVE,
        Some("shared") | Some("rshared") => libc::MS_SHARED,
        Some("unbindable") | Some("runbindable") => libc::MS_UNBINDABLE,
        Some(other) => return Err(Error::InvalidSpec(format!("rootfsPropagation {other:?}"))),
    };
    let mounts = spec
        .mounts()
        .iter()
        .flatten()
        .map(MountPlan::from_mount)
        .collect::<Result<Vec<_>>>()?;
    let devices = linux
        .devices()
        .iter()
        .flatten()
        .map(|d| {
            let kind = match d.typ() {
                LinuxDeviceType::B => libc::S_IFBLK,
                LinuxDeviceType::P => libc::S_IFIFO,
                _ => libc::S_IFCHR,
            };
            Device {
                path: d.path().clone(),
                kind,
                major: d.major() as u32,
                minor: d.minor() as u32,
                mode: d.file_mode().unwrap_or(0o666) & 0o7777,
                uid: d.uid(),
                gid: d.gid(),
            }
        })
        .collect();
    let paths = |v: &Option<Vec<String>>| v.iter().flatten().map(PathBuf::from).collect();
    let mut sysctl: Vec<(String, String)> = linux
        .sysctl()
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    sysctl.sort();
    if sysctl
        .iter()
        .any(|(k, _)| k.contains('/') || k.contains(".."))
    {
        return Err(Error::InvalidSpec("a sysctl name holds a path".into()));
    }
    let own_ns = |flag| unshare & flag != 0 || join.iter().any(|(f, _)| *f == flag);
    for (k, _) in &sysctl {
        check_sysctl(k, own_ns)?;
    }

    let layout = Layout::detect()?;
    let cgroups_path = linux
        .cgroups_path()
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/berth/{}", cfg.id)));
    // An ordinary user cannot write to cgroup v1 hierarchies (nor to a cgroup v2 tree that
    // is not delegated to them): a rootless container gets a cgroup of its own in the user's
    // delegated subtree when there is one (as podman's do), and none elsewhere, where the
    // engine refuses limits.
    let cgroups = match crate::userns::rootless() {
        Some(_) => {
            let needed = crate::cgroup::controllers_for(linux.resources().as_ref());
            match crate::cgroup::delegated_subtree(&needed) {
                Ok(base) => CgroupPaths {
                    v1: vec![],
                    v2: Some(base.join("berth").join(&cfg.id)),
                    v2_base: Some(base),
                    ..CgroupPaths::default()
                },
                Err(why) if !needed.is_empty() => return Err(Error::Cgroup(why)),
                Err(_) => CgroupPaths::default(),
            }
        }
        None => layout.paths_for(&cgroups_path, linux.resources().as_ref())?,
    };
    let state_dir = std::path::absolute(&cfg.state_dir)
        .ctx(|| format!("resolve {}", cfg.state_dir.display()))?;
    Ok(MonitorPlan {
        on_exit: cfg.on_exit.clone(),
        on_start: cfg.on_start.clone(),
        id: cfg.id.clone(),
        init: InitPlan {
            unshare,
            join,
            rootfs: cfg.rootfs.clone(),
            mountpoint: state_dir.join(ROOTFS_DIR),
            root_propagation,
            readonly_root: spec
                .root()
                .as_ref()
                .and_then(|r| r.readonly())
                .unwrap_or(false),
            mounts,
            devices,
            masked: paths(linux.masked_paths()),
            readonly: paths(linux.readonly_paths()),
            hostname: spec.hostname().clone(),
            domainname: spec.domainname().clone(),
            sysctl,
            cgroups,
            layout,
            process,
            reaper: cfg.init,
            announce_netns: false,
        },
        state_dir,
        new_pid_ns,
        join_pid_ns,
        open_stdin: cfg.open_stdin,
        log: cfg.log.clone(),
        resources: linux.resources().clone(),
    })
}

/// Creates a container: sets up its cgroups, namespaces, root filesystem and stdio under a
/// new monitor process, and returns once the command is ready to run (`start` runs it).
/// A failure leaves no process, cgroup or mount behind (the state directory stays, empty of
/// state, for the caller to remove).
pub fn create(cfg: ContainerConfig) -> Result<Container> {
    create_inner(cfg, None)
}

/// [`create`], and `netns_ready` is called with the init's pid as soon as the container's new
/// network namespace exists (`/proc/PID/ns/net`), while the init still sets up its root
/// filesystem: the caller plugs the container's network in meanwhile instead of after
/// (the command runs only at `start`). Not called for a container that has no network
/// namespace of its own, nor when the creation fails before it exists; `create` still
/// returns after it, with the outcome of the whole creation.
pub fn create_with_netns(
    cfg: ContainerConfig,
    netns_ready: &mut dyn FnMut(i32),
) -> Result<Container> {
    create_inner(cfg, Some(netns_ready))
}

fn create_inner(
    cfg: ContainerConfig,
    netns_ready: Option<&mut dyn FnMut(i32)>,
) -> Result<Container> {
    if !valid_id(&cfg.id) {
        return Err(Error::InvalidSpec(format!(
            "invalid container id {:?}",
            cfg.id
        )));
    }
    std::fs::create_dir_all(&cfg.state_dir)
        .ctx(|| format!("create {}", cfg.state_dir.display()))?;
    if cfg.state_dir.join(STATE_FILE).exists() {
        return Err(Error::AlreadyExists(cfg.state_dir.clone()));
    }
    let mut plan = plan(&cfg)?;
    plan.init.announce_netns = netns_ready.is_some();
    let spec_file = cfg.state_dir.join(SPEC_FILE);
    let spec = serde_json::to_vec_pretty(&cfg.spec)
        .map_err(|e| Error::InvalidSpec(format!("the spec does not serialise: {e}")))?;
    std::fs::write(&spec_file, spec).ctx(|| format!("write {}", spec_file.display()))?;
    // `exec` installs the same filter in every process it starts.
    let filter_file = cfg.state_dir.join(seccomp::STATE_FILE);
    match &plan.init.process.seccomp {
        Some(f) => seccomp::save(f, &filter_file)?,
        None => {
            let _ = std::fs::remove_file(&filter_file);
        }
    }
    let mut nothing = |_| {};
    if let Err(e) = monitor::spawn(plan, netns_ready.unwrap_or(&mut nothing)) {
        let _ = std::fs::remove_file(&filter_file);
        return Err(e);
    }
    Ok(Container {
        id: cfg.id,
        state_dir: cfg.state_dir,
    })
}

/// The state `rec` records, as it is now: a monitor that died before recording an exit shows
/// as `Status::MonitorDied` (unless the record, read again, now shows the exit), a frozen
/// cgroup as `Status::Paused`.
fn live_state(dir: &Path, rec: &Record, monitor_alive: bool) -> Result<State> {
    let mut state = rec.state.clone();
    match state.status {
        Status::Created | Status::Running if !monitor_alive => {
            let again = Record::load(dir)?;
            if again.state.status == Status::Stopped {
                return Ok(again.state);
            }
            state.status = Status::MonitorDied;
        }
        Status::Running if rec.cgroups.is_frozen() => state.status = Status::Paused,
        _ => {}
    }
    Ok(state)
}

impl Container {
    /// The container in `state_dir`, created earlier by any process.
    pub fn open(state_dir: impl AsRef<Path>) -> Result<Container> {
        let state_dir = state_dir.as_ref().to_path_buf();
        let rec = Record::load(&state_dir)?;
        Ok(Container {
            id: rec.state.id,
            state_dir,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// The container's state. Never blocks on the monitor: a monitor that died before
    /// recording an exit shows as `Status::MonitorDied`.
    pub fn state(&self) -> Result<State> {
        let rec = self.record()?;
        let monitor_alive = rec.monitor_alive();
        live_state(&self.state_dir, &rec, monitor_alive)
    }

    /// The state of the container in `state_dir` and, when it runs (or is paused), what it
    /// uses now (its cgroups' and its network namespace's counters): from one read of the
    /// record and one look at the monitor, as `stats` asks this of every container at every
    /// sample.
    pub fn sample(state_dir: impl AsRef<Path>) -> Result<(State, Option<crate::Usage>)> {
        let dir = state_dir.as_ref();
        let rec = Record::load(dir)?;
        let monitor_alive = rec.monitor_alive();
        let state = live_state(dir, &rec, monitor_alive)?;
        let usage = (rec.state.status == Status::Running && monitor_alive)
            .then(|| rec.cgroups.usage(rec.state.pid));
        Ok((state, usage))
    }

    fn record(&self) -> Result<Record> {
        Record::load(&self.state_dir)
    }

    fn invalid(&self, status: Status, what: &'static str) -> Error {
        Error::InvalidState {
            id: self.id.clone(),
            status: status.to_string(),
            what,
        }
    }

    /// The start time (in clock ticks since boot, /proc/PID/stat's field 22) of the init the
    /// runtime created: with its pid, what tells it from a process that took the pid later.
    pub fn init_start_time(&self) -> Result<u64> {
        Ok(self.record()?.pid_start)
    }

    /// Connects to the monitor to receive output (and send input). Attach before `start`
    /// to see everything the command prints.
    pub fn attach(&self, opts: AttachOptions) -> Result<Attach> {
        Attach::connect(&self.state_dir, opts).map_err(|e| self.connect_error(e))
    }

    fn connect_error(&self, e: io::Error) -> Error {
        match self.state() {
            Ok(s) if s.status == Status::Stopped => {
                self.invalid(Status::Stopped, "the container has exited")
            }
            Ok(s) if s.status == Status::MonitorDied => Error::MonitorDied(self.id.clone()),
            Err(err) => err,
            _ => Error::io("connect to the monitor", e),
        }
    }

    /// Runs the command of a created container. Returns the init's host pid.
    /// `Error::CommandNotFound` / `Error::NotExecutable` when the command cannot run (the
    /// container then stops with 127 / 126, as docker reports).
    pub fn start(&self) -> Result<i32> {
        self.attach(AttachOptions::default())?.start()
    }

    /// Waits for the container to exit.
    pub fn wait(&self) -> Result<Exit> {
        self.wait_timeout(None)?
            .ok_or(Error::Timeout("waiting for the container"))
    }

    /// Waits at most `timeout` (`None`: for ever); `Ok(None)` when it is still running.
    pub fn wait_timeout(&self, timeout: Option<Duration>) -> Result<Option<Exit>> {
        match Attach::connect(&self.state_dir, AttachOptions::default()) {
            Ok(mut a) => a.wait_exit(timeout),
            Err(_) => settled_exit(&self.state_dir).map(Some),
        }
    }

    /// Sends `signal` to the container's init (see `parse_signal` for names). A stopped
    /// container is an error; SIGKILL to a paused container also thaws it so it can die.
    pub fn kill(&self, signal: i32) -> Result<()> {
        let rec = self.record()?;
        let status = self.state()?.status;
        if status == Status::Stopped {
            return Err(self.invalid(status, "cannot signal a stopped container"));
        }
        let pid = rec.state.pid.unwrap_or(0);
        let Some(fd) = sys::pidfd_for(pid, rec.pid_start) else {
            // Exited between our look and the signal.
            return Ok(());
        };
        sys::pidfd_send_signal(&fd, signal).ctx(|| format!("signal {signal} to {pid}"))?;
        if signal == libc::SIGKILL && status == Status::Paused {
            rec.cgroups.freeze(false)?;
        }
        Ok(())
    }

    /// docker's stop: `signal` (SIGTERM usually), then SIGKILL after `timeout`.
    pub fn stop(&self, signal: i32, timeout: Duration) -> Result<Exit> {
        let status = self.state()?.status;
        if status == Status::Stopped {
            return self.wait();
        }
        if status == Status::Paused {
            self.resume()?;
        }
        self.kill(signal)?;
        if let Some(exit) = self.wait_timeout(Some(timeout))? {
            return Ok(exit);
        }
        self.kill(libc::SIGKILL)?;
        // SIGKILL ends it at once unless the kernel holds a process (uninterruptible I/O):
        // then this is an error, not a `stop` that never returns.
        self.wait_timeout(Some(KILLED_EXIT))?.ok_or(Error::Timeout(
            "waiting for the container to exit after SIGKILL",
        ))
    }

    /// Freezes every process of the container (cgroup freezer).
    pub fn pause(&self) -> Result<()> {
        let status = self.state()?.status;
        if status != Status::Running {
            return Err(self.invalid(status, "only a running container can be paused"));
        }
        let rec = self.record()?;
        if rec.cgroups.dirs().next().is_none() && crate::userns::rootless().is_some() {
            // A rootless container without a cgroup (none delegated to the user) has no
            // freezer.
            let why = crate::cgroup::delegated_subtree(&[])
                .err()
                .unwrap_or_default();
            return Err(Error::Cgroup(format!(
                "a rootless container can be paused only in a cgroup v2 subtree delegated to \
                 the user, and it has no cgroup: {why}"
            )));
        }
        rec.cgroups.freeze(true)
    }

    /// Thaws a paused container.
    pub fn resume(&self) -> Result<()> {
        let status = self.state()?.status;
        if status != Status::Paused {
            return Err(self.invalid(status, "the container is not paused"));
        }
        self.record()?.cgroups.freeze(false)
    }

    /// Host pids of the container's processes (for `top`).
    /// A rootless container without a cgroup: the processes of its pid namespace, or with
    /// the host's (`--pid host`) its init and the init's descendants.
    pub fn processes(&self) -> Result<Vec<i32>> {
        let rec = self.record()?;
        if rec.cgroups.dirs().next().is_some() {
            return Ok(rec.cgroups.procs());
        }
        Ok(rec
            .state
            .pid
            .map(sys::namespace_processes)
            .unwrap_or_default())
    }

    /// New limits for the running (or paused) container, written to its live cgroups (only
    /// what `resources` sets; see `runc update`).
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        let rec = self.record()?;
        let status = self.state()?.status;
        if !matches!(status, Status::Running | Status::Paused) {
            return Err(self.invalid(status, "only a running container can be updated"));
        }
        rec.cgroups.update(resources)
    }

    /// Removes the container: with `force`, kills a running one first (even one whose
    /// monitor died). Waits for the monitor to exit, removes the cgroups and the state
    /// directory. Mounts need no unmounting: they only ever existed in the container's own
    /// mount namespace, which is gone with its last process.
    pub fn delete(self, force: bool) -> Result<()> {
        let state_dir = self.state_dir.clone();
        if !self.release(force)? {
            let _ = std::fs::remove_dir(state_dir.join(ROOTFS_DIR));
            let _ = std::fs::remove_dir(&state_dir);
            return Ok(());
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match std::fs::remove_dir_all(&state_dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(Error::io(format!("remove {}", state_dir.display()), e)),
            }
        }
    }

    /// [`delete`](Self::delete) but for the state directory's files, which the caller
    /// disposes of (a `run --rm` container's directory is renamed away and deleted in the
    /// background: each freed block costs a discard on a disk mounted with `discard`).
    /// Whether there was a container; nothing runs or is mounted for it afterwards.
    pub fn release(self, force: bool) -> Result<bool> {
        let rec = match self.record() {
            Ok(r) => r,
            Err(Error::NotFound(_)) => return Ok(false),
            Err(e) => return Err(e),
        };
        let status = self.state()?.status;
        match status {
            Status::Stopped => {}
            Status::MonitorDied if force => {
                if let Some(fd) = sys::pidfd_for(rec.state.pid.unwrap_or(0), rec.pid_start) {
                    let _ = sys::pidfd_send_signal(&fd, libc::SIGKILL);
                    rec.cgroups.kill_all();
                    let _ = sys::wait_readable(
                        std::os::fd::AsRawFd::as_raw_fd(&fd),
                        Some(Duration::from_secs(10)),
                    );
                }
                rec.cgroups.kill_all();
            }
            _ if force => {
                self.kill(libc::SIGKILL)?;
                self.wait_timeout(Some(Duration::from_secs(10)))?;
            }
            _ => return Err(self.invalid(status, "stop it first or force the removal")),
        }
        if let Some(fd) = sys::pidfd_for(rec.state.monitor_pid, rec.monitor_start) {
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            if !sys::wait_readable(raw, Some(Duration::from_secs(10))).unwrap_or(false) {
                return Err(Error::Timeout("waiting for the monitor to exit"));
            }
        }
        rec.cgroups.remove()?;
        Ok(true)
    }
}
