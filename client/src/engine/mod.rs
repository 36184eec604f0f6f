//! The container engine: container records, names, volumes and logs over berth-runtime.
//!
//! Layout under the client root (beside the image store's):
//!
//! ```text
//! containers/<id>/config.json       the engine's record (see [`ContainerRecord`])
//! containers/<id>/upper, work/      the overlay's upper and work directories
//! containers/<id>/init/             docker's init layer (mount targets, /.dockerenv), under upper
//! containers/<id>/run/              the runtime's state directory (state.json, attach.sock)
//! containers/<id>/<id>-json.log     the json-file log (kept across restarts)
//! containers/<id>/hostname, hosts, resolv.conf   bind-mounted over the image's
//! containers/names/<name>           holds the id: a name is taken by creating this file
//! trash/<id>                        a `run --rm` container's files, being deleted
//! volumes/<name>/_data              a named or anonymous volume
//! ```
//!
//! There is no daemon: every command reads these files. A container is *created* when its
//! record exists and the runtime has no state for it; `start` asks the runtime to create and
//! start it; the runtime's monitor records the exit; `rm` deletes the runtime's state, then
//! the directory. A name is reserved by an exclusive file create, so two `create --name x`
//! racing cannot both win.

mod bridge;
mod commit;
mod confine;
mod cp;
mod logs;
mod mounts;
mod names;
mod network;
mod record;
mod resources;
pub mod rootless;
pub mod seccomp;
mod session;
mod share;
mod spec;
mod stats;
mod step;
mod supervise;
mod update;
mod volume;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_runtime::{Container, ContainerConfig, ExitHook, Rootfs, StartHook};
use berth_storage::Digest;
use serde_json::Value;

use crate::events::{Event, Journal, Kind};
use crate::images::{ImageError, ImageRecord, ImageStore};
use volume::volume_event;

pub use bridge::BridgeSection;
pub use commit::CommitOptions;
pub use confine::capabilities;
pub use cp::{CopyOptions, HostSource, HostTarget};
pub use logs::{log_settings, read_log, read_logs, LogLine, LogOptions};
pub use network::{endpoint_id, predefined_id, NetworkOptions, NetworkRecord, PREDEFINED};
pub use record::{
    ContainerRecord, DeviceMapping, EndpointConfig, EndpointState, Healthcheck, HostConfig,
    LastRun, Lifecycle, LogConfig, MountPoint, MountSpec, NetworkMode, NetworkState, PortBinding,
    ProcessConfig, Resources, RestartPolicy, Ulimit,
};
pub use resources::{check_cgroup_rule, check_sysctl, resource_warnings, DEFAULT_SHM_SIZE};
pub use session::{
    parse_signal, AttachInput, Attached, ExecProcess, ExecStdio, Exit, Output, Signals,
};
pub use stats::ContainerStats;
pub use step::{lookup, StepMount, StepProcess, Stream};
pub use supervise::{Health, HealthResult};
pub use update::UpdateOptions;
pub use volume::{VolumeOptions, VolumeRecord};

/// Why an engine command failed; one line each, in docker's words where it has them.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    #[error("No such container: {0}")]
    NotFound(String),
    #[error("No such volume: {0}")]
    NoSuchVolume(String),
    #[error("multiple containers found with provided prefix: {0}")]
    Ambiguous(String),
    #[error("Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name.")]
    NameInUse { name: String, id: String },
    #[error("Invalid container name ({0}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")]
    InvalidName(String),
    #[error("You cannot remove a {status} container {id}. Stop the container before attempting removal or force remove")]
    Running { id: String, status: &'static str },
    #[error("container {0} is not running")]
    NotRunning(String),
    #[error("container {0} is paused, unpause the container before stopping or killing")]
    Paused(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// `cp` failed: docker answers these with exit code 1.
    #[error("{0}")]
    Copy(String),
    /// A container's attached streams failed.
    #[error(transparent)]
    Stream(#[from] std::io::Error),
}

impl EngineError {
    /// The exit code docker gives: 127 / 126 when the command cannot run, else 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            EngineError::Runtime(e) => e.exit_code(),
            EngineError::Copy(_) => 1,
            _ => 125,
        }
    }
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EngineError + '_ {
    move |source| EngineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a container is, as `ps` and `inspect` say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Created,
    Running,
    Paused,
    Exited,
    /// The monitor died without recording an exit.
    Dead,
}

impl Status {
    /// docker's State.Status word.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }
}

/// The live state of a container.
#[derive(Debug, Clone)]
pub struct ContainerState {
    pub status: Status,
    pub pid: Option<i32>,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    /// Exited, and its supervisor waits to restart it (docker's `Restarting`; `status`
    /// stays `Exited`).
    pub restarting: bool,
}

impl ContainerState {
    /// docker's `State.Status`: `restarting` while the supervisor waits to restart it.
    pub fn status_word(&self) -> &'static str {
        if self.restarting {
            "restarting"
        } else {
            self.status.as_str()
        }
    }

    /// docker's `State.Running`: true while it runs, is paused, or waits to restart.
    pub fn running(&self) -> bool {
        self.restarting || matches!(self.status, Status::Running | Status::Paused)
    }
}

/// What `create` (and `run`) take besides the image.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub name: Option<String>,
    /// Arguments after the image name; replace the image's Cmd when not empty.
    pub cmd: Vec<String>,
    /// `--entrypoint`: `Some("")` clears the image's entrypoint.
    pub entrypoint: Option<String>,
    /// `KEY=VALUE` pairs, after `-e`/`--env-file` were read (later wins).
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    /// `-v` arguments.
    pub volumes: Vec<String>,
    pub tty: bool,
    pub open_stdin: bool,
    pub labels: Vec<(String, String)>,
    pub host: HostConfig,
    /// `--domainname`.
    pub domainname: Option<String>,
    /// `--expose`: ports as `80/tcp`, beside the image's.
    pub expose: Vec<String>,
    /// `--mac-address`: checked, lower case.
    pub mac_address: Option<String>,
    /// `-a`: `stdin`, `stdout`, `stderr` (lower case).
    pub attach: Vec<String>,
}

/// The engine over a client root.
#[derive(Clone)]
pub struct Engine {
    root: PathBuf,
    images: ImageStore,
    bridge: berth_runtime::net::Bridge,
}

/// The `-p` bindings, and with `-P` one on a free host port for each port exposed (the
/// image's `ExposedPorts` and `--expose`'s, as `80/tcp`) that `-p` did not bind.
fn exposed_bindings(exposed: &[String], host: &HostConfig) -> Vec<PortBinding> {
    let mut out = host.port_bindings.clone();
    if !host.publish_all {
        return out;
    }
    for key in exposed {
        let (port, proto) = key.split_once('/').unwrap_or((key, "tcp"));
        let (Ok(port), "tcp" | "udp") = (port.parse::<u16>(), proto) else {
            continue;
        };
        if port != 0
            && !out
                .iter()
                .any(|b| b.container_port == port && b.protocol == proto)
        {
            out.push(PortBinding {
                protocol: proto.to_string(),
                container_port: port,
                host_ip: String::new(),
                host_port: 0,
            });
        }
    }
    out
}

/// A MAC address written `02:42:ac:11:00:02`; `None` when empty or not one.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(out)
}

fn json_strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(a) => a
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect(),
        Value::String(s) => vec![s.clone()],
        _ => vec![],
    }
}

fn new_id() -> String {
    loop {
        let id = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        // docker avoids ids whose short form is all digits (it reads as a number).
        if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
            return id;
        }
    }
}

fn is_id(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// Writes a file by rename: readers see the old or the new content, never half of one.
/// No fsync: a container record is rebuilt by nothing and lost with a crash of the host,
/// which also ends the container.
fn write_file(path: &Path, data: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&tmp, data)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io_err(path)(e)
        })
}

/// Whether process `pid` has exited within `limit`, watched through its pidfd (nothing is
/// reaped: a child is left for its `wait`). A pid that is gone already counts as exited.
pub(crate) fn exits_within(pid: i32, limit: Duration) -> std::io::Result<bool> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags; its fd is owned from here on.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ESRCH) => Ok(true),
            _ => Err(e),
        };
    }
    // SAFETY: the fd pidfd_open returned.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as std::os::fd::RawFd) };
    let mut p = libc::pollfd {
        fd: pidfd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // SAFETY: poll on one pollfd we own.
        let n = unsafe { libc::poll(&mut p, 1, left.as_millis().min(i32::MAX as u128) as i32) };
        match n {
            0 => return Ok(false),
            n if n > 0 => return Ok(true),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
}

/// Removes a directory tree that may hold read-only directories (overlay's work dir).
pub(crate) fn remove_tree(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            make_writable(path);
            std::fs::remove_dir_all(path)
        }
        other => other,
    }
}

/// Deletes what is in `trash_dir` (trees renamed there, out of every command's way) with an
/// `rm -rf` that nobody waits for. On a file system mounted with `discard` every freed block
/// is discarded before the unlink returns: a container's two dozen files and directories
/// cost ~35 ms to delete, most of a `run --rm`. Whatever an earlier `rm` left (it was
/// killed, the host went down) goes with the next. Deleting inline is the fallback.
fn remove_in_background(trash_dir: &Path) {
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};
    let entries: Vec<PathBuf> = match std::fs::read_dir(trash_dir) {
        Ok(rd) => rd.flatten().map(|e| e.path()).collect(),
        Err(_) => return,
    };
    if entries.is_empty() {
        return;
    }
    // Nothing of this root in its environment: it is no process of the root's.
    let spawned = Command::new("rm")
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .args(["-rf", "--one-file-system", "--"])
        .args(&entries)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    if spawned.is_err() {
        for e in &entries {
            let _ = remove_tree(e);
        }
    }
}

fn make_writable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if meta.is_dir() {
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
            if let Ok(rd) = std::fs::read_dir(path) {
                for e in rd.flatten() {
                    make_writable(&e.path());
                }
            }
        }
    }
}

/// A `-v` argument, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
enum VolumeSpec {
    Bind {
        source: PathBuf,
        dest: String,
        read_only: bool,
    },
    Named {
        name: String,
        dest: String,
        read_only: bool,
        no_copy: bool,
    },
    Anonymous {
        dest: String,
    },
}

fn clean_dest(dest: &str, arg: &str) -> Result<String> {
    if !dest.starts_with('/') {
        return Err(EngineError::Invalid(format!(
            "invalid volume specification: '{arg}': the container path must be absolute"
        )));
    }
    let parts: Vec<&str> = dest
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(EngineError::Invalid(format!(
            "invalid volume specification: '{arg}': the container path may not contain '..'"
        )));
    }
    if parts.is_empty() {
        return Err(EngineError::Invalid(format!(
            "invalid volume specification: '{arg}': destination can't be '/'"
        )));
    }
    Ok(format!("/{}", parts.join("/")))
}

fn parse_volume(arg: &str) -> Result<VolumeSpec> {
    let fields: Vec<&str> = arg.split(':').collect();
    let (source, dest, mode) = match fields.as_slice() {
        [d] => {
            return Ok(VolumeSpec::Anonymous {
                dest: clean_dest(d, arg)?,
            })
        }
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => {
            return Err(EngineError::Invalid(format!(
                "invalid volume specification: '{arg}'"
            )))
        }
    };
    let (mut read_only, mut no_copy) = (false, false);
    for opt in mode.split(',').filter(|o| !o.is_empty()) {
        match opt {
            "ro" => read_only = true,
            "rw" => read_only = false,
            "nocopy" => no_copy = true,
            other => {
                return Err(EngineError::Invalid(format!(
                    "invalid mode: {other} (in volume '{arg}'; berth knows ro, rw and nocopy)"
                )))
            }
        }
    }
    let dest = clean_dest(dest, arg)?;
    if source.is_empty() {
        return Err(EngineError::Invalid(format!(
            "invalid volume specification: '{arg}': empty source"
        )));
    }
    if source.starts_with('/') || source.starts_with('.') {
        let path = std::path::absolute(source).map_err(io_err(Path::new(source)))?;
        let source = std::fs::canonicalize(&path).map_err(|_| {
            EngineError::Invalid(format!(
                "invalid mount config for type \"bind\": bind source path does not exist: {}",
                path.display()
            ))
        })?;
        if no_copy {
            return Err(EngineError::Invalid(format!(
                "invalid mode: nocopy (in volume '{arg}'): it is for volumes, a bind mount \
                 shows the host directory as it is"
            )));
        }
        return Ok(VolumeSpec::Bind {
            source,
            dest,
            read_only,
        });
    }
    if !names::valid(source) {
        return Err(EngineError::Invalid(format!(
            "\"{source}\" includes invalid characters for a local volume name, only \
             \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host \
             directory, use absolute path"
        )));
    }
    Ok(VolumeSpec::Named {
        name: source.to_string(),
        dest,
        read_only,
        no_copy,
    })
}

/// A container event with docker's attributes: the labels, the image and the name.
fn container_event(rec: &ContainerRecord, action: &str) -> Event {
    let mut e = Event::new(Kind::Container, action, &rec.id);
    for (k, v) in &rec.config.labels {
        e = e.attr(k, v);
    }
    e.from(&rec.image).attr("name", &rec.name)
}

/// A network's event about a container (`connect`, `disconnect`): the network's id, its
/// name and driver, and the container.
fn network_event(
    rec: &ContainerRecord,
    network: &str,
    id: &str,
    driver: &str,
    action: &str,
) -> Event {
    let id = if id.is_empty() {
        predefined_id(network)
    } else {
        id.to_string()
    };
    Event::new(Kind::Network, action, id)
        .attr("container", &rec.id)
        .attr("name", network)
        .attr("type", driver)
}

impl Engine {
    pub fn open(root: &Path) -> Result<Engine> {
        let images = ImageStore::open(root)?;
        Engine::with_images(images)
    }

    pub fn with_images(images: ImageStore) -> Result<Engine> {
        let root = images.root().to_path_buf();
        let names = root.join("containers/names");
        std::fs::create_dir_all(&names).map_err(io_err(&names))?;
        // Each container's directory (its upper) apart from the others' (see there).
        crate::images::spread_subdirs(&root.join("containers"));
        Ok(Engine {
            root,
            images,
            bridge: berth_runtime::net::Bridge::default(),
        })
    }

    pub fn images(&self) -> &ImageStore {
        &self.images
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The root's engine id (docker's `engine-id`): made once, the first time it is needed;
    /// what the default IPv6 pool is derived from.
    pub fn engine_id(&self) -> Result<String> {
        let path = self.root.join("engine-id");
        match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_string()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
        let id = uuid::Uuid::new_v4().to_string();
        // Two first uses at once: the one whose link lands is the id.
        let tmp = self.root.join(format!(".engine-id.{}", std::process::id()));
        std::fs::write(&tmp, &id).map_err(io_err(&tmp))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(id),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let s = std::fs::read_to_string(&path).map_err(io_err(&path))?;
                Ok(s.trim().to_string())
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    /// The events journal under the root, which every engine operation writes to.
    pub fn journal(&self) -> Journal {
        Journal::open(&self.root)
    }

    /// A container's directory.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }

    fn names_dir(&self) -> PathBuf {
        self.root.join("containers/names")
    }

    fn runtime_dir(&self, id: &str) -> PathBuf {
        self.dir(id).join("run")
    }

    /// The json-file log of a container.
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join(format!("{id}-json.log"))
    }

    pub fn volumes_dir(&self) -> PathBuf {
        self.root.join("volumes")
    }

    fn network_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("network.json")
    }

    /// Where a container on the bridge sits (address, published ports), given its status
    /// (from [`Engine::state`]); `None` unless it runs.
    pub fn network_state(&self, rec: &ContainerRecord, status: Status) -> Option<NetworkState> {
        if !matches!(status, Status::Running | Status::Paused) {
            return None;
        }
        let data = std::fs::read(self.network_path(&rec.id)).ok()?;
        serde_json::from_slice(&data).ok()
    }

    /// The networks of a container with a namespace of its own, in the order of its
    /// interfaces: what it asked for, the host side, and the definition of a user-defined one.
    fn endpoints_of(
        &self,
        rec: &ContainerRecord,
    ) -> Result<
        Vec<(
            EndpointConfig,
            berth_runtime::net::Network,
            Option<NetworkRecord>,
        )>,
    > {
        let asked = if rec.host.networks.is_empty() {
            vec![EndpointConfig {
                network: "bridge".into(),
                ..EndpointConfig::default()
            }]
        } else {
            rec.host.networks.clone()
        };
        asked
            .into_iter()
            .map(|e| {
                if e.network == "bridge" {
                    return Ok((e, self.bridge.clone(), None));
                }
                let key = if e.network_id.is_empty() {
                    &e.network
                } else {
                    &e.network_id
                };
                let r = self
                    .find_network(key)?
                    .filter(|r| e.network_id.is_empty() || r.id == e.network_id)
                    .ok_or_else(|| {
                        EngineError::Invalid(format!("network {} not found", e.network))
                    })?;
                Ok((e, self.host_side(&r), Some(r)))
            })
            .collect()
    }

    /// What a network's resolver answers for the container: its name, its short id and the
    /// endpoint's aliases.
    fn dns_names(rec: &ContainerRecord, e: &EndpointConfig) -> Vec<String> {
        let mut v = vec![rec.name.clone(), rec.short_id().to_string()];
        for a in &e.aliases {
            if !v.contains(a) {
                v.push(a.clone());
            }
        }
        v
    }

    /// On a user-defined network, names are answered by its resolver (the first such
    /// network's): a bridge's on its gateway, a macvlan network's at 127.0.0.11 in the
    /// container (docker's address on every user-defined network; the only one an IPv6-only
    /// macvlan network's containers can reach). Writes `resolv` (in place: it is
    /// bind-mounted) to name it, when the container is on such a network; returns whether.
    fn point_resolv_at_resolver(
        &self,
        rec: &ContainerRecord,
        eps: &[(
            EndpointConfig,
            berth_runtime::net::Network,
            Option<NetworkRecord>,
        )],
        resolv: &Path,
    ) -> Result<bool> {
        let Some(resolver) = eps
            .iter()
            .find(|(_, h, _)| h.dns)
            .map(|(_, h, _)| h.resolver_address())
        else {
            return Ok(false);
        };
        let text = spec::resolv_with_nameserver(rec, &resolver.to_string());
        std::fs::write(resolv, text).map_err(io_err(resolv))?;
        Ok(true)
    }

    /// Plugs one network into a created or running container as `interface`; returns where
    /// it sits and the published ports (host ports chosen).
    fn plug_endpoint(
        &self,
        rec: &ContainerRecord,
        pid: i32,
        (e, host, user): &(
            EndpointConfig,
            berth_runtime::net::Network,
            Option<NetworkRecord>,
        ),
        interface: String,
        default_route: bool,
        ports: Vec<berth_runtime::net::PortMapping>,
    ) -> Result<(EndpointState, Vec<berth_runtime::net::PortMapping>)> {
        let address = match e.ipv4_address.as_str() {
            "" => None,
            a => Some(
                a.parse()
                    .map_err(|_| EngineError::Invalid(format!("invalid IPv4 address: {a}")))?,
            ),
        };
        let address6 = match e.ipv6_address.as_str() {
            "" => None,
            a => Some(
                a.parse()
                    .map_err(|_| EngineError::Invalid(format!("invalid IPv6 address: {a}")))?,
            ),
        };
        let a = berth_runtime::net::connect_endpoint(
            host,
            &berth_runtime::net::Endpoint {
                tag: rec.id.clone(),
                pid,
                interface: interface.clone(),
                address,
                address6,
                default_route,
                ports,
                // `--mac-address` names the first interface's.
                mac: (interface == "eth0")
                    .then(|| parse_mac(&rec.config.mac_address))
                    .flatten(),
                names: if user.is_some() {
                    Self::dns_names(rec, e)
                } else {
                    vec![]
                },
                // The network's resolver asks them for the container's other names.
                dns: if user.is_some() {
                    rec.host.dns.iter().filter_map(|d| d.parse().ok()).collect()
                } else {
                    vec![]
                },
            },
        )?;
        let (v6_gateway, v6_prefix) = host
            .ipv6
            .map_or((String::new(), 0), |(g, p)| (g.to_string(), p));
        let state = EndpointState {
            global_ipv6_address: a.address6.map(|x| x.to_string()).unwrap_or_default(),
            global_ipv6_prefix: v6_prefix,
            ipv6_gateway: v6_gateway,
            network: e.network.clone(),
            network_id: user.as_ref().map(|u| u.id.clone()).unwrap_or_default(),
            interface,
            ip_address: a.address.map(|x| x.to_string()).unwrap_or_default(),
            gateway: a.gateway.map(|x| x.to_string()).unwrap_or_default(),
            prefix: if a.address.is_some() { a.prefix } else { 0 },
            mac_address: a.mac,
            aliases: e.aliases.clone(),
        };
        Ok((state, a.ports))
    }

    /// Plugs a container being created (its init is `pid`) into its networks (one interface
    /// each, the default route through the first that has a way out, the published ports on
    /// the first) and writes its address into its /etc/hosts.
    fn connect(&self, rec: &ContainerRecord, pid: i32) -> Result<()> {
        use berth_runtime::net::{PortMapping, Protocol};
        let ports: Vec<PortMapping> = rec
            .host
            .port_bindings
            .iter()
            .map(|p| PortMapping {
                host_ip: p.host_ip.parse().ok(),
                host_port: p.host_port,
                container_port: p.container_port,
                protocol: if p.protocol == "udp" {
                    Protocol::Udp
                } else {
                    Protocol::Tcp
                },
            })
            .collect();
        let endpoints = self.endpoints_of(rec)?;
        let mut states: Vec<EndpointState> = vec![];
        let mut published = vec![];
        let mut routed = false;
        for (i, ep) in endpoints.iter().enumerate() {
            let default_route = !routed && !ep.1.internal;
            routed |= default_route;
            let ports = if i == 0 { ports.clone() } else { vec![] };
            match self.plug_endpoint(rec, pid, ep, format!("eth{i}"), default_route, ports) {
                Ok((s, ports)) => {
                    if i == 0 {
                        published = ports;
                    }
                    states.push(s)
                }
                Err(e) => {
                    for (done, s) in endpoints.iter().zip(&states) {
                        let _ = berth_runtime::net::detach(&done.1, &rec.id, &s.interface);
                    }
                    return Err(e);
                }
            }
        }
        let first = states.first().cloned().unwrap_or_default();
        // A port published on all addresses is bound, as docker 28 shows it, once per family
        // the container has an address in: `0.0.0.0` (written empty, as before networks had
        // IPv6) and `::`, one host port for both.
        let mut all = vec![];
        if !first.ip_address.is_empty() {
            all.push("");
        }
        if !first.global_ipv6_address.is_empty() {
            all.push("::");
        }
        let state = NetworkState {
            ip_address: first.ip_address.clone(),
            gateway: first.gateway.clone(),
            prefix: first.prefix,
            mac_address: first.mac_address.clone(),
            ports: published
                .iter()
                .flat_map(|m| {
                    let ips = match m.host_ip {
                        Some(ip) => vec![ip.to_string()],
                        None => all.iter().map(|a| a.to_string()).collect(),
                    };
                    ips.into_iter().map(|host_ip| PortBinding {
                        protocol: m.protocol.as_str().to_string(),
                        container_port: m.container_port,
                        host_ip,
                        host_port: m.host_port,
                    })
                })
                .collect(),
            endpoints: states,
        };
        let written = self.write_network_state(rec, &state);
        if let Err(e) = written {
            self.disconnect(rec);
            return Err(e);
        }
        for s in &state.endpoints {
            self.journal()
                .record(self.endpoint_event(rec, s, "connect"));
        }
        Ok(())
    }

    /// The journal's event for one of a container's endpoints.
    fn endpoint_event(&self, rec: &ContainerRecord, s: &EndpointState, action: &str) -> Event {
        let driver = match s.network_id.as_str() {
            "" => "bridge".to_string(),
            id => self
                .find_network(id)
                .ok()
                .flatten()
                .map(|r| r.driver)
                .unwrap_or_else(|| "bridge".into()),
        };
        network_event(rec, &s.network, &s.network_id, &driver, action)
    }

    /// Records a created container's (rootless) user-mode network: waits for its pasta,
    /// started before the container (see [`rootless::Pasta`]), and writes its published ports.
    fn connect_pasta(&self, rec: &ContainerRecord, pasta: rootless::Pasta) -> Result<()> {
        let ports = pasta.finish()?;
        let state = NetworkState {
            ip_address: String::new(),
            gateway: String::new(),
            prefix: 0,
            mac_address: String::new(),
            ports,
            endpoints: vec![],
        };
        let written = self.write_network_state(rec, &state);
        if written.is_err() {
            self.disconnect(rec);
        }
        written
    }

    /// `network.json` and the container's address in its bind-mounted /etc/hosts.
    fn write_network_state(&self, rec: &ContainerRecord, state: &NetworkState) -> Result<()> {
        let dir = self.dir(&rec.id);
        write_file(
            &self.network_path(&rec.id),
            &serde_json::to_vec(state).expect("a network state serialises"),
        )?;
        // The file is bind-mounted already: rewrite it in place, not by a rename.
        let hosts = dir.join("hosts");
        // On an IPv6-only network, its IPv6 address (as docker writes it).
        let v6 = state
            .endpoints
            .first()
            .map(|e| e.global_ipv6_address.as_str())
            .filter(|a| !a.is_empty());
        let address = match (state.ip_address.as_str(), v6) {
            ("", Some(a6)) => a6,
            ("", None) => "127.0.0.1",
            (a, _) => a,
        };
        let text = spec::own_hosts(rec, &spec::effective_hostname(rec), address);
        std::fs::write(&hosts, text).map_err(io_err(&hosts))
    }

    /// `--network container:X`: the Spec joins X's network namespace (X must run), and the
    /// container sees X's /etc/hosts and resolv.conf, as docker shares them.
    fn join_network_of(
        &self,
        rec: &ContainerRecord,
        spec: &mut berth_runtime::oci_spec::runtime::Spec,
        etc: &spec::EtcFiles,
    ) -> Result<()> {
        use berth_runtime::oci_spec::runtime::LinuxNamespaceType;
        let target = self.load(&rec.host.network_container).map_err(|_| {
            EngineError::Invalid(format!(
                "joining the network of container {}: it no longer exists",
                rec.host.network_container
            ))
        })?;
        let st = self.state(&target);
        let pid = match (st.status, st.pid) {
            (Status::Running | Status::Paused, Some(pid)) => pid,
            _ => {
                return Err(EngineError::Invalid(format!(
                    "cannot join network of a non running container: {}",
                    target.name
                )))
            }
        };
        spec::set_namespace_path(
            spec,
            LinuxNamespaceType::Network,
            PathBuf::from(format!("/proc/{pid}/ns/net")),
        );
        // docker gives it the other's hostname too (the uts namespace stays its own).
        let hostname = spec::effective_hostname(&target);
        std::fs::write(&etc.hostname, format!("{hostname}\n")).map_err(io_err(&etc.hostname))?;
        spec.set_hostname(Some(hostname));
        let theirs = self.dir(&target.id);
        for (file, ours) in [("hosts", &etc.hosts), ("resolv.conf", &etc.resolv)] {
            let from = theirs.join(file);
            let data = std::fs::read(&from).map_err(io_err(&from))?;
            std::fs::write(ours, data).map_err(io_err(ours))?;
        }
        Ok(())
    }

    /// Removes what a stopped container left on the host's networks (published ports, its
    /// addresses; its interfaces went with its namespace) and its shareable /dev/shm. A
    /// running container keeps them.
    pub fn disconnect(&self, rec: &ContainerRecord) {
        self.release_shm(&rec.id);
        if rec.host.network == NetworkMode::Pasta {
            rootless::stop_pasta(&self.dir(&rec.id), !rec.host.port_bindings.is_empty());
            let _ = std::fs::remove_file(self.network_path(&rec.id));
            return;
        }
        if rec.host.network != NetworkMode::Bridge {
            return;
        }
        // What it was plugged into, for the journal, before the record of it goes.
        let plugged: Option<NetworkState> = std::fs::read(self.network_path(&rec.id))
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok());
        if std::fs::remove_file(self.network_path(&rec.id)).is_ok() {
            for s in plugged.iter().flat_map(|p| &p.endpoints) {
                self.journal()
                    .record(self.endpoint_event(rec, s, "disconnect"));
            }
        }
        let hosts: Vec<berth_runtime::net::Network> = match self.endpoints_of(rec) {
            Ok(eps) => eps.into_iter().map(|(_, h, _)| h).collect(),
            // A network removed meanwhile: unplug from those that are left.
            Err(_) => rec
                .host
                .networks
                .iter()
                .filter_map(|e| match e.network.as_str() {
                    "bridge" => Some(self.bridge.clone()),
                    n => self
                        .find_network(n)
                        .ok()
                        .flatten()
                        .map(|r| self.host_side(&r)),
                })
                .chain(rec.host.networks.is_empty().then(|| self.bridge.clone()))
                .collect(),
        };
        for h in hosts {
            if let Err(e) = berth_runtime::net::disconnect(&h, &rec.id) {
                tracing::warn!(
                    "unplugging container {} from network {}: {e}",
                    rec.id,
                    h.name
                );
            }
        }
    }

    fn save(&self, rec: &ContainerRecord) -> Result<()> {
        let data = serde_json::to_vec(rec).expect("a record serialises");
        write_file(&self.dir(&rec.id).join("config.json"), &data)
    }

    fn load(&self, id: &str) -> Result<ContainerRecord> {
        let path = self.dir(id).join("config.json");
        let data = std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                EngineError::NotFound(id.to_string())
            } else {
                io_err(&path)(e)
            }
        })?;
        serde_json::from_slice(&data)
            .map_err(|e| EngineError::Invalid(format!("{} is corrupt: {e}", path.display())))
    }

    /// Every container's id.
    fn ids(&self) -> Result<Vec<String>> {
        let dir = self.root.join("containers");
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let e = e.map_err(io_err(&dir))?;
            if let Some(n) = e.file_name().to_str().filter(|n| is_id(n)) {
                ids.push(n.to_string());
            }
        }
        Ok(ids)
    }

    /// Every container, newest first.
    pub fn list(&self) -> Result<Vec<ContainerRecord>> {
        let mut v = Vec::new();
        for id in self.ids()? {
            match self.load(&id) {
                Ok(r) => v.push(r),
                // Removed between the listing and the read.
                Err(EngineError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        v.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    /// Finds a container by full id, name (with or without docker's `/`) or id prefix.
    pub fn resolve(&self, s: &str) -> Result<ContainerRecord> {
        let not_found = || EngineError::NotFound(s.to_string());
        if s.is_empty() {
            return Err(not_found());
        }
        if is_id(s) {
            if let Ok(r) = self.load(s) {
                return Ok(r);
            }
        }
        let name = s.strip_prefix('/').unwrap_or(s);
        if names::valid(name) {
            if let Ok(id) = std::fs::read_to_string(self.names_dir().join(name)) {
                if let Ok(r) = self.load(id.trim()) {
                    return Ok(r);
                }
            }
        }
        if s.bytes().all(|b| b.is_ascii_hexdigit()) {
            let s = s.to_ascii_lowercase();
            let found: Vec<String> = self
                .ids()?
                .into_iter()
                .filter(|id| id.starts_with(&s))
                .collect();
            return match found.as_slice() {
                [one] => self.load(one),
                [] => Err(not_found()),
                _ => Err(EngineError::Ambiguous(s)),
            };
        }
        Err(not_found())
    }

    /// Takes `name` for `id`; fails when another container has it.
    fn reserve_name(&self, name: &str, id: &str) -> Result<()> {
        if !names::valid(name) {
            return Err(EngineError::InvalidName(name.to_string()));
        }
        let path = self.names_dir().join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => f.write_all(id.as_bytes()).map_err(io_err(&path)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                let owner = owner.trim();
                // A name whose container is gone (a crash between steps) is free again.
                if !owner.is_empty() && !self.dir(owner).join("config.json").exists() {
                    let _ = std::fs::remove_file(&path);
                    return self.reserve_name(name, id);
                }
                Err(EngineError::NameInUse {
                    name: name.to_string(),
                    id: owner.to_string(),
                })
            }
            Err(e) => Err(io_err(&path)(e)),
        }
    }

    fn release_name(&self, name: &str, id: &str) {
        let path = self.names_dir().join(name);
        if std::fs::read_to_string(&path).is_ok_and(|o| o.trim() == id) {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Creates a container from an image (docker's `create`): the record, the name, the
    /// upper and work directories and the volumes. Nothing runs yet.
    pub fn create(
        &self,
        image: &ImageRecord,
        image_name: &str,
        image_config: &Value,
        opts: CreateOptions,
    ) -> Result<ContainerRecord> {
        self.create_with(image, image_name, image_config, opts, Lifecycle::default())
    }

    /// [`Engine::create`] with what the container's life is to be: restart policy,
    /// healthcheck, log driver, stop signal and timeout (checked here, docker's messages).
    pub fn create_with(
        &self,
        image: &ImageRecord,
        image_name: &str,
        image_config: &Value,
        opts: CreateOptions,
        life: Lifecycle,
    ) -> Result<ContainerRecord> {
        let cfg = image_config.get("config").cloned().unwrap_or(Value::Null);
        if life.restart_policy != RestartPolicy::No && opts.host.auto_remove {
            return Err(EngineError::Invalid(
                "conflicting options: cannot specify both --restart and --rm".into(),
            ));
        }
        log_settings(&life.log_config, Path::new("/"), "x").map_err(EngineError::Invalid)?;
        if let Some(s) = &life.stop_signal {
            berth_runtime::parse_signal(s)
                .map_err(|_| EngineError::Invalid(format!("Invalid signal: {s}")))?;
        }
        let healthcheck = image_healthcheck(&cfg, life.healthcheck.clone())?;
        let image_entrypoint = json_strings(cfg.get("Entrypoint").unwrap_or(&Value::Null));
        let image_cmd = json_strings(cfg.get("Cmd").unwrap_or(&Value::Null));
        let (entrypoint, cmd) = match &opts.entrypoint {
            // docker: a new entrypoint drops the image's Cmd.
            Some(e) if e.is_empty() => (vec![], opts.cmd.clone()),
            Some(e) => (vec![e.clone()], opts.cmd.clone()),
            None if opts.cmd.is_empty() => (image_entrypoint, image_cmd),
            None => (image_entrypoint, opts.cmd.clone()),
        };
        if entrypoint.is_empty() && cmd.is_empty() {
            return Err(EngineError::Invalid(
                "No command specified: the image has no Cmd or Entrypoint; give one after the image name"
                    .into(),
            ));
        }
        let mut env = json_strings(cfg.get("Env").unwrap_or(&Value::Null));
        for kv in &opts.env {
            let key = kv.split('=').next().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(key));
            env.push(kv.clone());
        }
        let str_of = |k: &str| cfg.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let mut labels: std::collections::BTreeMap<String, String> = cfg
            .get("Labels")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        labels.extend(opts.labels.iter().cloned());
        let image_volumes: Vec<String> = cfg
            .get("Volumes")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        let mut exposed: Vec<String> = cfg
            .get("ExposedPorts")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for p in &opts.expose {
            if !exposed.contains(p) {
                exposed.push(p.clone());
            }
        }
        let volumes = opts
            .volumes
            .iter()
            .map(|v| parse_volume(v))
            .collect::<Result<Vec<_>>>()?;
        if let Some(w) = &opts.workdir {
            if !w.starts_with('/') {
                return Err(EngineError::Invalid(format!(
                    "the working directory '{w}' is invalid, it needs to be an absolute path"
                )));
            }
        }

        let mut host = opts.host.clone();
        confine::check(&mut host)?;
        rootless::check(&host)?;
        resources::check(&mut host)?;
        let long_mounts = host
            .mounts
            .iter()
            .map(mounts::check)
            .collect::<Result<Vec<_>>>()?;
        // `--volumes-from`: the other containers' mounts, under the other's id from now on.
        let mut taken = vec![];
        for arg in std::mem::take(&mut host.volumes_from) {
            let (container, read_only) = mounts::parse_volumes_from(&arg)?;
            let from = self.resolve(container)?;
            taken.extend(mounts::taken_from(&from, read_only));
            host.volumes_from.push(match arg.split_once(':') {
                Some((_, mode)) => format!("{}:{mode}", from.id),
                None => from.id.clone(),
            });
        }
        self.check_namespace_modes(
            &mut host,
            opts.hostname.as_deref(),
            opts.domainname.as_deref(),
        )?;
        if host.network == NetworkMode::Bridge {
            let mut seen = BTreeSet::new();
            let mut checked = vec![];
            for e in std::mem::take(&mut host.networks) {
                let e = self.check_endpoint(e)?;
                if !seen.insert(e.network.clone()) {
                    return Err(EngineError::Invalid(format!(
                        "network {} is given twice",
                        e.network
                    )));
                }
                checked.push(e);
            }
            if let Some(first) = checked.first() {
                self.check_publish(first, &host.port_bindings)?;
            }
            // The default bridge alone is written as no list, as before networks had names.
            if !(checked.len() == 1
                && checked[0]
                    == EndpointConfig {
                        network: "bridge".into(),
                        ..EndpointConfig::default()
                    })
            {
                host.networks = checked;
            }
        }
        if opts.mac_address.is_some() && host.network != NetworkMode::Bridge {
            return Err(EngineError::Invalid(
                "conflicting options: mac-address and the network mode".into(),
            ));
        }
        if host.network == NetworkMode::Container {
            let target = self.resolve(&host.network_container)?;
            host.network_container = target.id.clone();
        }
        let id = new_id();
        let name = match &opts.name {
            Some(n) => n.strip_prefix('/').unwrap_or(n).to_string(),
            None => names::random(|n| self.names_dir().join(n).exists()),
        };
        self.reserve_name(&name, &id)?;
        // No `volume rm` between making the volumes and the record that names them.
        let volumes_lock = self.volumes_lock()?;
        let made = std::cell::RefCell::new(Vec::new());
        let dir = self.dir(&id);
        let result = (|| {
            for d in ["upper", "work"] {
                let p = dir.join(d);
                std::fs::create_dir_all(&p).map_err(io_err(&p))?;
            }
            if !image.layers.is_empty() {
                commit::write_init_layer(&dir.join("init"))?;
            }
            let mut mounts = Vec::new();
            let volume = |name: String, dest: String, read_only, anonymous, no_copy| {
                if self.make_volume(&Engine::volume_for_container(&name))? {
                    made.borrow_mut().push(name.clone());
                }
                let data = self.volume_mountpoint(&name);
                Ok::<MountPoint, EngineError>(MountPoint {
                    kind: "volume".into(),
                    name: Some(name),
                    source: data,
                    destination: dest,
                    read_only,
                    anonymous,
                    no_copy,
                    ..MountPoint::default()
                })
            };
            let mut dests = BTreeSet::new();
            let given = volumes
                .iter()
                .map(|v| match v {
                    VolumeSpec::Bind { dest, .. }
                    | VolumeSpec::Named { dest, .. }
                    | VolumeSpec::Anonymous { dest } => dest.as_str(),
                })
                .chain(long_mounts.iter().map(mounts::LongMount::dest));
            for dest in given {
                if !dests.insert(dest.to_string()) {
                    return Err(EngineError::Invalid(format!(
                        "Duplicate mount point: {dest}"
                    )));
                }
            }
            for v in volumes.iter().cloned() {
                match v {
                    VolumeSpec::Bind {
                        source,
                        dest,
                        read_only,
                    } => mounts.push(MountPoint {
                        kind: "bind".into(),
                        name: None,
                        source,
                        destination: dest,
                        read_only,
                        ..MountPoint::default()
                    }),
                    VolumeSpec::Named {
                        name,
                        dest,
                        read_only,
                        no_copy,
                    } => mounts.push(volume(name, dest, read_only, false, no_copy)?),
                    VolumeSpec::Anonymous { dest } => {
                        mounts.push(volume(new_id(), dest, false, true, false)?)
                    }
                }
            }
            for m in long_mounts.iter().cloned() {
                mounts.push(match m {
                    mounts::LongMount::Ready(m) => m,
                    mounts::LongMount::Volume {
                        name: Some(name),
                        dest,
                        read_only,
                        no_copy,
                    } => volume(name, dest, read_only, false, no_copy)?,
                    mounts::LongMount::Volume {
                        name: None,
                        dest,
                        read_only,
                        no_copy,
                    } => volume(new_id(), dest, read_only, true, no_copy)?,
                });
            }
            // docker: the container's own mounts win over those it takes from others.
            for m in &taken {
                if dests.insert(m.destination.clone()) {
                    mounts.push(m.clone());
                }
            }
            for dest in &image_volumes {
                let Ok(dest) = clean_dest(dest, dest) else {
                    continue;
                };
                if dests.insert(dest.clone()) {
                    mounts.push(volume(new_id(), dest, false, true, false)?);
                }
            }
            let rec = ContainerRecord {
                id: id.clone(),
                name: name.clone(),
                created: berth_runtime::now_rfc3339(),
                image: image_name.to_string(),
                image_id: image.id.clone(),
                layers: image.layers.iter().map(|l| l.chain_id.clone()).collect(),
                config: ProcessConfig {
                    hostname: opts.hostname.clone().unwrap_or_default(),
                    user: opts.user.clone().unwrap_or_else(|| str_of("User")),
                    env,
                    cmd,
                    entrypoint,
                    working_dir: opts.workdir.clone().unwrap_or_else(|| str_of("WorkingDir")),
                    tty: opts.tty,
                    open_stdin: opts.open_stdin,
                    labels,
                    volumes: image_volumes.clone(),
                    stop_signal: life.stop_signal.clone().or_else(|| {
                        cfg.get("StopSignal")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    }),
                    stop_timeout: life.stop_timeout,
                    healthcheck: healthcheck.clone(),
                    domainname: opts.domainname.clone().unwrap_or_default(),
                    exposed_ports: exposed.clone(),
                    mac_address: opts.mac_address.clone().unwrap_or_default(),
                    attach: opts.attach.clone(),
                },
                host: HostConfig {
                    binds: opts.volumes.clone(),
                    port_bindings: exposed_bindings(&exposed, &host),
                    ..host.clone()
                },
                mounts,
                restart_count: 0,
                last_run: None,
                restart_policy: life.restart_policy,
                log_config: life.log_config.clone(),
                manually_stopped: false,
                restart_cancelled: false,
                restarting: false,
            };
            self.save(&rec)?;
            let journal = self.journal();
            for n in made.borrow().iter() {
                journal.record(volume_event(n, "create"));
            }
            journal.record(container_event(&rec, "create"));
            Ok(rec)
        })();
        if result.is_err() {
            // Nothing half made: the volumes it made, the directory, the name.
            for n in made.borrow().iter() {
                let _ = remove_tree(&self.volumes_dir().join(n));
            }
            let _ = remove_tree(&dir);
            self.release_name(&name, &id);
        }
        drop(volumes_lock);
        result
    }

    /// The runtime's handle, when the container has been started at least once.
    pub(crate) fn runtime(&self, rec: &ContainerRecord) -> Option<Container> {
        Container::open(self.runtime_dir(&rec.id)).ok()
    }

    /// The container's live state.
    pub fn state(&self, rec: &ContainerRecord) -> ContainerState {
        let runtime = self.runtime(rec).and_then(|c| c.state().ok());
        self.state_from(rec, runtime)
    }

    /// The container's live state from what its runtime says (`None`: it has not run, or
    /// its runtime state cannot be read), read once by the caller.
    pub(crate) fn state_from(
        &self,
        rec: &ContainerRecord,
        runtime: Option<berth_runtime::State>,
    ) -> ContainerState {
        let last = rec.last_run.as_ref();
        let mut st = ContainerState {
            status: Status::Created,
            pid: None,
            exit_code: last.map_or(0, |l| l.exit_code),
            oom_killed: last.is_some_and(|l| l.oom_killed),
            started_at: last.and_then(|l| l.started_at.clone()),
            finished_at: last.and_then(|l| l.finished_at.clone()),
            error: last.and_then(|l| l.error.clone()),
            restarting: false,
        };
        if last.is_some() {
            st.status = Status::Exited;
        }
        let Some(s) = runtime else {
            return st;
        };
        use berth_runtime::Status as R;
        st.status = match s.status {
            // The runtime's "created" is the moment between its create and start.
            R::Created => Status::Created,
            R::Running => Status::Running,
            R::Paused => Status::Paused,
            R::Stopped => Status::Exited,
            R::MonitorDied => Status::Dead,
        };
        st.pid = s
            .pid
            .filter(|_| matches!(st.status, Status::Running | Status::Paused));
        if s.started_at.is_some() {
            st.started_at = s.started_at;
        }
        if let Some(exit) = s.exit {
            st.exit_code = exit.code;
            st.oom_killed = exit.oom_killed;
            st.finished_at = s.finished_at;
        }
        st.error = s.error.or(st.error);
        // docker's daemon marks a container Restarting in the same step that sees it exit:
        // from the exit on, not only once the supervisor has counted the restart.
        st.restarting = st.status == Status::Exited
            && !rec.restart_cancelled
            && (rec.restarting || supervise::should_restart(rec, st.exit_code))
            && self.supervisor_alive(rec);
        st
    }

    /// The container's root filesystem directories, topmost first (upper, then the image's
    /// layers from the top down).
    fn layer_dirs(&self, rec: &ContainerRecord) -> Vec<PathBuf> {
        let mut v = vec![self.dir(&rec.id).join("upper")];
        v.extend(self.lower_dirs(rec));
        v
    }

    /// Prepares a run of the container started by a person: replaces the state of a
    /// finished run (keeping the container's files) and has the runtime set it up, stopped
    /// before its command. Attach to the result, then start it. As docker's, a start by a
    /// person sets `RestartCount` back to 0 and forgets an earlier `stop`.
    pub(crate) fn prepare(&self, rec: &mut ContainerRecord) -> Result<Container> {
        let _lock = self.lock(&rec.id)?;
        self.prepare_run(rec, true)
    }

    /// Starts a run: `manual` when a person asked (not the restart policy).
    pub(crate) fn start_run(&self, rec: &mut ContainerRecord, manual: bool) -> Result<()> {
        let c = self.prepare_run(rec, manual)?;
        if let Err(e) = c.start() {
            // The monitor records the failed start as an exit (126/127): wait for it.
            let _ = c.wait_timeout(Some(Duration::from_secs(5)));
            return Err(e.into());
        }
        Ok(())
    }

    fn prepare_run(&self, rec: &mut ContainerRecord, manual: bool) -> Result<Container> {
        // Not while `cp` has the stopped container's files mounted.
        let _files = self.lock_files(rec)?;
        let state = self.state(rec);
        match state.status {
            Status::Running | Status::Paused => {
                return Err(EngineError::Invalid(format!(
                    "container {} is already running",
                    rec.name
                )))
            }
            Status::Dead => {
                return Err(EngineError::Invalid(format!(
                    "container {} is dead (its monitor died); remove it with `berth rm -f {}`",
                    rec.name, rec.name
                )))
            }
            Status::Exited | Status::Created => {}
        }
        let before = rec.clone();
        if manual {
            rec.restart_count = 0;
            rec.manually_stopped = false;
            rec.restart_cancelled = false;
            rec.restarting = false;
        }
        let old = self.runtime(rec);
        if old.is_some() && state.status == Status::Exited {
            rec.last_run = Some(LastRun {
                started_at: state.started_at.clone(),
                finished_at: state.finished_at.clone(),
                exit_code: state.exit_code,
                oom_killed: state.oom_killed,
                error: state.error.clone(),
            });
        }
        if *rec != before {
            self.save(rec)?;
        }
        if let Some(old) = old {
            old.delete(true)?;
        }
        self.disconnect(rec);
        let dir = self.dir(&rec.id);
        // Rootless: the network namespace and pasta first, so that pasta's start runs beside
        // the rest of the setup (the container joins the namespace by path).
        let pasta = match rec.host.network {
            NetworkMode::Pasta => Some(rootless::Pasta::start(&dir, &rec.host.port_bindings)?),
            _ => None,
        };
        for m in rec.mounts.iter().filter(|m| m.kind != "tmpfs") {
            if !m.source.exists() {
                return Err(EngineError::Invalid(format!(
                    "invalid mount config for type \"{}\": bind source path does not exist: {}",
                    m.kind,
                    m.source.display()
                )));
            }
            if let (true, Some(name)) = (m.kind == "volume", &m.name) {
                self.mount_volume(name)?;
            }
        }
        self.check_snapshots(rec)?;
        let etc = spec::write_etc_files(rec, &dir).map_err(io_err(&dir))?;
        if !rec.layers.is_empty() {
            self.init_layer(rec)?;
        }
        if rec.host.network == NetworkMode::Bridge {
            let eps = self.endpoints_of(rec)?;
            self.point_resolv_at_resolver(rec, &eps, &etc.resolv)?;
        }
        let layers = self.layer_dirs(rec);
        let mut spec = spec::build(rec, &layers, &etc)?;
        if rec.host.network == NetworkMode::Container {
            self.join_network_of(rec, &mut spec, &etc)?;
        }
        if let Some(p) = &pasta {
            spec::set_namespace_path(
                &mut spec,
                berth_runtime::oci_spec::runtime::LinuxNamespaceType::Network,
                p.netns_path(),
            );
        }
        self.apply_namespace_modes(rec, &mut spec)?;
        let rootfs = Rootfs::Overlay {
            lower: layers[1..].to_vec(),
            upper: layers[0].clone(),
            work: dir.join("work"),
            // A --rm container's files go with it: skip the host-wide sync at unmount.
            volatile: rec.host.auto_remove,
        };
        let rootfs = if rec.layers.is_empty() {
            Rootfs::Directory(layers[0].clone())
        } else {
            rootfs
        };
        let log = log_settings(&rec.log_config, &dir, &rec.id).map_err(EngineError::Invalid)?;
        if let Some(parent) = log.as_ref().and_then(|l| l.path.parent()) {
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let cfg = ContainerConfig {
            id: rec.id.clone(),
            spec,
            rootfs,
            state_dir: self.runtime_dir(&rec.id),
            open_stdin: rec.config.open_stdin,
            log,
            on_exit: Some(die_event(self.journal(), rec.clone(), dir.clone())),
            on_start: Some(start_event(self.journal(), rec.clone(), manual)),
            init: rec.host.init,
        };
        // A bridge container is plugged in as soon as its network namespace exists, while
        // its init mounts its root: the veth pair, addresses and routes cost no time of
        // their own in a start.
        let mut early: Option<Result<()>> = None;
        let c = match rec.host.network {
            NetworkMode::Bridge => berth_runtime::create_with_netns(cfg, &mut |pid| {
                early = Some(self.connect(rec, pid))
            }),
            _ => berth_runtime::create(cfg),
        };
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                if matches!(early, Some(Ok(()))) {
                    self.disconnect(rec);
                }
                let _ = remove_tree(&self.runtime_dir(&rec.id));
                return Err(e.into());
            }
        };
        let plugged = match (rec.host.network, pasta, early) {
            (NetworkMode::Bridge, _, Some(plugged)) => plugged,
            (NetworkMode::Bridge, _, None) => match c.state() {
                Ok(s) => match s.pid {
                    Some(pid) => self.connect(rec, pid),
                    None => Err(EngineError::Invalid(format!(
                        "container {} has no process to plug in",
                        rec.id
                    ))),
                },
                Err(e) => Err(e.into()),
            },
            (NetworkMode::Pasta, Some(pasta), _) => self.connect_pasta(rec, pasta),
            _ => Ok(()),
        };
        if let Err(e) = plugged {
            let _ = c.delete(true);
            let _ = remove_tree(&self.runtime_dir(&rec.id));
            return Err(e);
        }
        let journal = self.journal();
        for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
            if let Some(n) = &m.name {
                journal.record(
                    volume_event(n, "mount")
                        .attr("container", &rec.id)
                        .attr("destination", &m.destination)
                        .attr("propagation", "")
                        .attr("read/write", (!m.read_only).to_string()),
                );
            }
        }
        Ok(c)
    }

    /// Starts a container with nobody attached (`start`, `run -d`), as a person does (see
    /// [`Engine::prepare`]).
    pub fn start(&self, rec: &mut ContainerRecord) -> Result<()> {
        let _lock = self.lock(&rec.id)?;
        self.start_run(rec, true)
    }

    /// Where the container's log is and in which format; `None` with the `none` driver.
    pub fn log_source(&self, rec: &ContainerRecord) -> Option<(PathBuf, berth_runtime::LogFormat)> {
        log_settings(&rec.log_config, &self.dir(&rec.id), &rec.id)
            .ok()
            .flatten()
            .map(|l| (l.path, l.format))
    }

    /// How long `stop` waits before SIGKILL when not told: `--stop-timeout`, else 10 s.
    pub fn stop_timeout(&self, rec: &ContainerRecord) -> Duration {
        stop_timeout(rec.config.stop_timeout.unwrap_or(10))
    }

    fn running(&self, rec: &ContainerRecord) -> Result<Container> {
        let st = self.state(rec);
        match (st.status, self.runtime(rec)) {
            (Status::Running | Status::Paused, Some(c)) => Ok(c),
            _ => Err(EngineError::NotRunning(rec.id.clone())),
        }
    }

    /// Down, and its supervisor waits to restart it or is about to decide whether to (the
    /// moment after an exit: docker's daemon holds the container then, so a `stop` or `kill`
    /// counts as one of a restarting container).
    fn restart_pending(&self, rec: &ContainerRecord) -> bool {
        let st = self.state(rec);
        st.restarting
            || (st.status == Status::Exited
                && rec.restart_policy != RestartPolicy::No
                && !rec.restart_cancelled
                && self.supervisor_alive(rec))
    }

    /// A person's `stop` or `kill` decided under the container's lock: a restart the
    /// supervisor is making meanwhile (it holds the lock from the old run's removal to the
    /// new run's start) finishes first and its new run is the one stopped, and no restart
    /// starts after the decision. (Decided on a record read before, a stop that came in
    /// that window saw neither a running nor a restarting container and did nothing.) When
    /// the container runs or waits to restart, it is marked stopped by a person and, when
    /// `cancel` says so, its restarts are cancelled. Returns the running container, or
    /// whether it was waiting to restart.
    fn settle_under_lock(
        &self,
        rec: &ContainerRecord,
        cancel: bool,
    ) -> Result<std::result::Result<Container, bool>> {
        let _lock = self.lock(&rec.id)?;
        let mut now = self.load(&rec.id)?;
        let running = self.running(&now);
        let restarting = running.is_err() && self.restart_pending(&now);
        if running.is_ok() || restarting {
            now.manually_stopped = true;
            now.restart_cancelled |= cancel;
            now.restarting &= !cancel;
            self.save(&now)?;
        }
        Ok(running.map_err(|_| restarting))
    }

    /// docker's `stop`: the stop signal, then SIGKILL after `timeout`. A container that is
    /// not running is left as it is.
    pub fn stop(&self, rec: &ContainerRecord, timeout: Duration) -> Result<()> {
        let running = self.settle_under_lock(rec, true)?;
        let Ok(c) = running else {
            return Ok(());
        };
        let signal = match &rec.config.stop_signal {
            Some(s) => berth_runtime::parse_signal(s)?,
            None => libc::SIGTERM,
        };
        let journal = self.journal();
        journal.record(container_event(rec, "kill").attr("signal", signal.to_string()));
        c.stop(signal, timeout)?;
        self.disconnect(rec);
        journal.record(container_event(rec, "stop"));
        Ok(())
    }

    /// Sends a signal to the container's main process. As docker's, a kill is a person
    /// stopping the container: `unless-stopped` no longer restarts it, and its next exit is
    /// not restarted unless the signal differs from a stop signal the container has.
    pub fn kill(&self, rec: &ContainerRecord, signal: i32) -> Result<()> {
        let stop_signal = rec
            .config
            .stop_signal
            .as_deref()
            .and_then(|s| berth_runtime::parse_signal(s).ok());
        let cancel = stop_signal.is_none_or(|s| s == signal) || signal == libc::SIGKILL;
        let running = self.settle_under_lock(rec, cancel)?;
        let c = match running {
            Ok(c) => c,
            // A restarting container: the kill is the decision above, no process gets it.
            Err(true) => return Ok(()),
            Err(false) => return Err(EngineError::NotRunning(rec.id.clone())),
        };
        // Before the signal, as `stop` does: the `die` it may cause comes after it.
        self.journal()
            .record(container_event(rec, "kill").attr("signal", signal.to_string()));
        c.kill(signal)?;
        Ok(())
    }

    pub fn pause(&self, rec: &ContainerRecord) -> Result<()> {
        let c = self.running(rec)?;
        if self.state(rec).status == Status::Paused {
            return Err(EngineError::Invalid(format!(
                "container {} is already paused",
                rec.id
            )));
        }
        c.pause()?;
        self.journal().record(container_event(rec, "pause"));
        Ok(())
    }

    pub fn unpause(&self, rec: &ContainerRecord) -> Result<()> {
        let c = self.running(rec)?;
        if self.state(rec).status != Status::Paused {
            return Err(EngineError::Invalid(format!(
                "container {} is not paused",
                rec.id
            )));
        }
        c.resume()?;
        self.journal().record(container_event(rec, "unpause"));
        Ok(())
    }

    /// Waits for the container to stop; returns its exit code.
    pub fn wait(&self, rec: &ContainerRecord) -> Result<i32> {
        if let Ok(c) = self.running(rec) {
            let exit = c.wait()?;
            return Ok(exit.code);
        }
        let st = self.state(rec);
        if st.status == Status::Created {
            // docker waits for a created container to run and stop; without a daemon
            // nothing will start it while we wait, so say so.
            return Err(EngineError::Invalid(format!(
                "container {} has not been started",
                rec.name
            )));
        }
        Ok(st.exit_code)
    }

    /// Host pids of the container's processes.
    pub fn processes(&self, rec: &ContainerRecord) -> Result<Vec<i32>> {
        Ok(self.running(rec)?.processes()?)
    }

    /// Runs another process in a running container (`exec`): the container's environment
    /// and user unless overridden. The process is the caller's child.
    pub fn exec(
        &self,
        rec: &ContainerRecord,
        opts: &ExecOptions,
        stdio: ExecStdio,
    ) -> Result<ExecProcess> {
        let c = self.running(rec)?;
        if self.state(rec).status == Status::Paused {
            return Err(EngineError::Paused(rec.id.clone()));
        }
        let mut rec = rec.clone();
        if let Some(u) = &opts.user {
            rec.config.user = u.clone();
        }
        if let Some(w) = &opts.workdir {
            rec.config.working_dir = w.clone();
        }
        for kv in &opts.env {
            let key = kv.split('=').next().unwrap_or_default();
            rec.config.env.retain(|e| e.split('=').next() != Some(key));
            rec.config.env.push(kv.clone());
        }
        rec.config.entrypoint = vec![];
        rec.config.cmd = opts.cmd.clone();
        rec.config.tty = opts.tty;
        let dir = self.dir(&rec.id);
        let etc = spec::EtcFiles {
            hostname: dir.join("hostname"),
            hosts: dir.join("hosts"),
            resolv: dir.join("resolv.conf"),
        };
        let spec = spec::build(&rec, &self.layer_dirs(&rec), &etc)?;
        let process = spec.process().clone().expect("build sets a process");
        let command = opts.cmd.join(" ");
        let exec_id = new_id();
        let journal = self.journal();
        let event = |action: &str| {
            container_event(&rec, &format!("{action}: {command}")).attr("execID", &exec_id)
        };
        journal.record(event("exec_create"));
        let process = c.exec(&process, stdio.into())?;
        journal.record(event("exec_start"));
        Ok(ExecProcess {
            process,
            on_exit: Some((journal, event("exec_die"))),
        })
    }

    /// Removes the anonymous volumes of a container that is gone, unless another container
    /// names them too (`--volumes-from`).
    fn remove_volumes(&self, rec: &ContainerRecord) {
        let Ok(_lock) = self.volumes_lock() else {
            return;
        };
        let users = self.volume_users().unwrap_or_default();
        for m in rec.mounts.iter().filter(|m| m.anonymous) {
            if let Some(name) = &m.name {
                if !users.contains_key(name) {
                    let _ = self.destroy_volume(name);
                }
            }
        }
    }

    /// Removes a container: refused while it runs unless `force` (which kills it first).
    /// `volumes` also removes its anonymous volumes.
    pub fn remove(&self, rec: &ContainerRecord, force: bool, volumes: bool) -> Result<()> {
        let st = self.state(rec);
        if st.restarting && !force {
            return Err(EngineError::Running {
                id: rec.id.clone(),
                status: "restarting",
            });
        }
        if matches!(st.status, Status::Running | Status::Paused) && !force {
            return Err(EngineError::Running {
                id: rec.id.clone(),
                status: st.status.as_str(),
            });
        }
        // Its supervisor must not restart what is being removed.
        let _lock = match self.lock(&rec.id) {
            Ok(l) => Some(l),
            Err(EngineError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        // Nor a `cp` have its files mounted while they go.
        let _files = match _lock {
            Some(_) => Some(self.lock_files(rec)?),
            None => None,
        };
        if _lock.is_some() && (rec.restart_policy != RestartPolicy::No || rec.restarting) {
            let mut r = self.load(&rec.id)?;
            r.restart_cancelled = true;
            r.restarting = false;
            self.save(&r)?;
        }
        let journal = self.journal();
        if let Some(c) = self.runtime(rec) {
            if matches!(st.status, Status::Running | Status::Paused) {
                journal
                    .record(container_event(rec, "kill").attr("signal", libc::SIGKILL.to_string()));
            }
            // Its runtime state lives in its directory, which goes whole below.
            c.release(true)?;
        }
        self.disconnect(rec);
        // The record goes first (a rename), so a failure below leaves debris, not a
        // half-removed container that commands trip over.
        let dir = self.dir(&rec.id);
        // `run --rm`: its files go in the background (see `remove_in_background`).
        let trash_dir = self.root.join("trash");
        let later = rec.host.auto_remove
            && rustix::process::geteuid().is_root()
            && std::fs::create_dir_all(&trash_dir).is_ok()
            && std::fs::rename(&dir, trash_dir.join(&rec.id)).is_ok();
        if later {
            self.release_name(&rec.name, &rec.id);
            remove_in_background(&trash_dir);
        } else {
            let trash = self
                .root
                .join("containers")
                .join(format!(".removing-{}", rec.id));
            std::fs::rename(&dir, &trash).map_err(io_err(&dir))?;
            self.release_name(&rec.name, &rec.id);
            remove_tree(&trash).map_err(io_err(&trash))?;
        }
        if volumes {
            self.remove_volumes(rec);
        }
        journal.record(container_event(rec, "destroy"));
        Ok(())
    }

    /// `container prune`: removes every stopped container `admit` admits (a prune's
    /// filters); their ids and the bytes their writable layers held.
    pub fn prune_containers(
        &self,
        admit: impl Fn(&ContainerRecord) -> bool,
    ) -> Result<(Vec<String>, u64)> {
        let mut deleted = Vec::new();
        let mut reclaimed = 0;
        for rec in self.list()? {
            let st = self.state(&rec);
            // One that waits to restart is not stopped (docker's Running).
            if !st.running()
                && matches!(st.status, Status::Exited | Status::Created | Status::Dead)
                && admit(&rec)
            {
                let size = self.size_rw(&rec);
                self.remove(&rec, false, false)?;
                reclaimed += size;
                deleted.push(rec.id);
            }
        }
        self.journal()
            .record(Event::prune(Kind::Container, reclaimed));
        Ok((deleted, reclaimed))
    }

    /// Gives a container another name.
    pub fn rename(&self, rec: &ContainerRecord, new_name: &str) -> Result<()> {
        let new_name = new_name.strip_prefix('/').unwrap_or(new_name);
        if new_name == rec.name {
            return Err(EngineError::Invalid(format!(
                "Renaming a container with the same name as its current name: {new_name}"
            )));
        }
        self.reserve_name(new_name, &rec.id)?;
        let mut updated = rec.clone();
        updated.name = new_name.to_string();
        if let Err(e) = self.save(&updated) {
            self.release_name(new_name, &rec.id);
            return Err(e);
        }
        self.release_name(&rec.name, &rec.id);
        // The resolvers answer the new name at once.
        if matches!(self.state(rec).status, Status::Running | Status::Paused) {
            for (e, host, user) in self.endpoints_of(&updated).unwrap_or_default() {
                if user.is_some() {
                    let _ = berth_runtime::net::set_names(
                        &host,
                        &rec.id,
                        &Self::dns_names(&updated, &e),
                    );
                }
            }
        }
        self.journal()
            .record(container_event(&updated, "rename").attr("oldName", format!("/{}", rec.name)));
        Ok(())
    }

    /// docker's `network connect`: the container is on the network from its next start, and
    /// at once when it runs (a new interface, `eth<N>`).
    pub fn connect_network(&self, rec: &ContainerRecord, e: EndpointConfig) -> Result<()> {
        match rec.host.network {
            NetworkMode::Bridge => {}
            NetworkMode::None => {
                return Err(EngineError::Invalid(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode".into(),
                ))
            }
            _ => {
                return Err(EngineError::Invalid(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                ))
            }
        }
        let mut updated = rec.clone();
        let mut e = self.check_endpoint(e)?;
        if updated.host.networks.is_empty() {
            updated.host.networks.push(EndpointConfig {
                network: "bridge".into(),
                ..EndpointConfig::default()
            });
        }
        if updated.host.networks.iter().any(|x| {
            x.network == e.network || (!e.network_id.is_empty() && x.network_id == e.network_id)
        }) {
            return Err(EngineError::Invalid(format!(
                "endpoint with name {} already exists in network {}",
                rec.name, e.network
            )));
        }
        e.aliases.dedup();
        updated.host.networks.push(e);
        let st = self.state(rec);
        if let (Status::Running | Status::Paused, Some(pid)) = (st.status, st.pid) {
            let index = updated.host.networks.len() - 1;
            let eps = self.endpoints_of(&updated)?;
            let mut state = self
                .network_state(rec, st.status)
                .unwrap_or_else(|| NetworkState {
                    ip_address: String::new(),
                    gateway: String::new(),
                    prefix: 0,
                    mac_address: String::new(),
                    ports: vec![],
                    endpoints: vec![],
                });
            // The default route is through the first network with a way out: this one only
            // when the container is on no such network yet.
            let routed = eps[..index].iter().any(|(_, h, _)| !h.internal);
            // The first interface name free in the container (after a disconnect, eth<index>
            // may be another network's).
            let interface = (0..)
                .map(|i| format!("eth{i}"))
                .find(|n| !state.endpoints.iter().any(|s| &s.interface == n))
                .expect("a free interface name");
            let (s, _) = self.plug_endpoint(
                &updated,
                pid,
                &eps[index],
                interface.clone(),
                !routed,
                vec![],
            )?;
            if state.ip_address.is_empty() {
                state.ip_address = s.ip_address.clone();
                state.gateway = s.gateway.clone();
                state.prefix = s.prefix;
                state.mac_address = s.mac_address.clone();
            }
            state.endpoints.push(s.clone());
            if let Err(err) = self
                .save(&updated)
                .and_then(|_| self.write_network_state(&updated, &state))
            {
                let _ = berth_runtime::net::detach(&eps[index].1, &rec.id, &interface);
                return Err(err);
            }
            // Its first resolving network: docker's embedded DNS takes the container's name
            // servers as its upstreams and becomes its name server.
            if eps[index].1.dns && !eps[..index].iter().any(|(_, h, _)| h.dns) {
                let resolv = self.dir(&rec.id).join("resolv.conf");
                self.point_resolv_at_resolver(&updated, &eps[index..], &resolv)?;
            }
            self.journal()
                .record(self.endpoint_event(&updated, &s, "connect"));
            return Ok(());
        }
        self.save(&updated)
    }

    /// docker's `network disconnect`: off the network now (its interface goes) and at the
    /// next starts. `force` also takes it off a network whose definition is gone.
    pub fn disconnect_network(
        &self,
        rec: &ContainerRecord,
        network: &str,
        force: bool,
    ) -> Result<()> {
        let found = self.find_network(network)?;
        let (name, id) = match (&found, network) {
            (Some(r), _) => (r.name.clone(), r.id.clone()),
            (None, "bridge") => ("bridge".to_string(), String::new()),
            (None, n) if force => (n.to_string(), String::new()),
            (None, n) => return Err(EngineError::Invalid(format!("network {n} not found"))),
        };
        let on = |x: &EndpointConfig| x.network == name || (!id.is_empty() && x.network_id == id);
        let listed = if rec.host.networks.is_empty() {
            name == "bridge" && rec.host.network == NetworkMode::Bridge
        } else {
            rec.host.networks.iter().any(on)
        };
        if !listed {
            return Err(EngineError::Invalid(format!(
                "container {} is not connected to network {name}",
                rec.id
            )));
        }
        let mut updated = rec.clone();
        if updated.host.networks.is_empty() {
            updated.host.networks.push(EndpointConfig {
                network: "bridge".into(),
                ..EndpointConfig::default()
            });
        }
        let index = updated.host.networks.iter().position(on).unwrap_or(0);
        updated.host.networks.remove(index);
        if updated.host.networks.is_empty() {
            // Off every network: docker leaves it with loopback alone.
            updated.host.network = NetworkMode::None;
            updated.host.port_bindings.clear();
            updated.host.publish_all = false;
        }
        let st = self.state(rec);
        if matches!(st.status, Status::Running | Status::Paused) {
            let mut state = self.network_state(rec, st.status);
            let interface = state
                .as_ref()
                .and_then(|s| s.endpoints.get(index).map(|e| e.interface.clone()))
                .unwrap_or_else(|| format!("eth{index}"));
            let host = match &found {
                Some(r) => Some(self.host_side(r)),
                None if name == "bridge" => Some(self.bridge.clone()),
                None => None,
            };
            if let Some(host) = host {
                berth_runtime::net::detach(&host, &rec.id, &interface)?;
                let driver = found.as_ref().map_or("bridge", |r| r.driver.as_str());
                self.journal()
                    .record(network_event(rec, &name, &id, driver, "disconnect"));
            }
            // Its name server follows: the next resolving network's resolver; off the last,
            // its name servers again (docker's embedded DNS would forward every name to
            // them now: the same answers).
            let resolv = self.dir(&rec.id).join("resolv.conf");
            let eps = self.endpoints_of(&updated).unwrap_or_default();
            if !self.point_resolv_at_resolver(&updated, &eps, &resolv)? {
                let text = spec::plain_resolv(&updated);
                std::fs::write(&resolv, text).map_err(io_err(&resolv))?;
            }
            if let Some(state) = state.as_mut() {
                state.endpoints.retain(|e| e.interface != interface);
                let first = state.endpoints.first().cloned().unwrap_or_default();
                if index == 0 {
                    state.ports.clear();
                }
                state.ip_address = first.ip_address;
                state.gateway = first.gateway;
                state.prefix = first.prefix;
                state.mac_address = first.mac_address;
                self.write_network_state(&updated, state)?;
            }
        }
        self.save(&updated)
    }

    /// Refuses, at create, ports that the container's first network (the one its ports are
    /// published on) cannot publish, naming the network as the user knows it: a host address
    /// must be of a family the container has an address in (berth has no userland proxy to
    /// carry IPv6 to an IPv4 address, as docker's does), and never `::1`.
    fn check_publish(&self, e: &EndpointConfig, ports: &[PortBinding]) -> Result<()> {
        if ports.is_empty() {
            return Ok(());
        }
        let (ipv4, ipv6) = if e.network == "bridge" {
            (true, self.bridge.ipv6.is_some())
        } else {
            let Some(r) = self.find_network(&e.network)? else {
                return Ok(());
            };
            if r.internal {
                return Err(cannot_publish_on(e, "it is internal (no route out)"));
            }
            if r.driver == "macvlan" {
                return Err(cannot_publish_on(
                    e,
                    "its driver is macvlan: its containers have addresses of their own on the \
                     parent's network",
                ));
            }
            (r.enable_ipv4, r.enable_ipv6)
        };
        for p in ports.iter().filter(|p| !p.host_ip.is_empty()) {
            let ip: std::net::IpAddr = p
                .host_ip
                .parse()
                .map_err(|_| EngineError::Invalid(format!("invalid IP address: {}", p.host_ip)))?;
            if ip == std::net::Ipv6Addr::LOCALHOST {
                return Err(EngineError::Invalid(format!(
                    "ports cannot be published on {ip}: the kernel forwards no IPv6 loopback \
                     packet to a container, and berth has no userland proxy (publish on [::] \
                     or another of the host's addresses)"
                )));
            }
            if ip.is_ipv4() && !ipv4 {
                return Err(cannot_publish_on(
                    e,
                    &format!(
                        "it is IPv6-only, and {ip} is an IPv4 address (leave the address out to \
                         publish on all of the host's IPv6 addresses)"
                    ),
                ));
            }
            if ip.is_ipv6() && !ipv6 {
                return Err(cannot_publish_on(
                    e,
                    &format!(
                        "it has no IPv6 subnet, and {ip} is an IPv6 address (berth has no \
                         userland proxy to carry IPv6 to a container's IPv4 address)"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks an endpoint `create` or `network connect` was asked for: the network exists
    /// (its id filled in), `--ip`, `--ip6` and aliases only on user-defined networks (an
    /// IPv6 address only on one with an IPv6 subnet).
    pub(crate) fn check_endpoint(&self, mut e: EndpointConfig) -> Result<EndpointConfig> {
        if e.network == "default" {
            e.network = "bridge".into();
        }
        if e.network == "bridge" {
            if !e.ipv4_address.is_empty() || !e.ipv6_address.is_empty() {
                return Err(EngineError::Invalid(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
            if !e.aliases.is_empty() {
                return Err(EngineError::Invalid(
                    "network-scoped alias is supported only for containers in user defined networks"
                        .into(),
                ));
            }
            return Ok(e);
        }
        if matches!(e.network.as_str(), "host" | "none") {
            return Err(EngineError::Invalid(format!(
                "conflicting options: cannot attach both user-defined and non-user-defined \
                 network-modes ({} is only a --network of its own)",
                e.network
            )));
        }
        let r = self
            .find_network(&e.network)?
            .ok_or_else(|| EngineError::Invalid(format!("network {} not found", e.network)))?;
        if !e.ipv4_address.is_empty() {
            let a: std::net::Ipv4Addr = e.ipv4_address.parse().map_err(|_| {
                EngineError::Invalid(format!("invalid IPv4 address: {}", e.ipv4_address))
            })?;
            if !self.host_side(&r).holds(a) {
                return Err(EngineError::Invalid(format!(
                    "no configured subnet or ip-range contain the IP address {a}"
                )));
            }
        }
        if !e.ipv6_address.is_empty() {
            let a: std::net::Ipv6Addr = e.ipv6_address.parse().map_err(|_| {
                EngineError::Invalid(format!("invalid IPv6 address: {}", e.ipv6_address))
            })?;
            let host = self.host_side(&r);
            if host.ipv6.is_none() {
                return Err(EngineError::Invalid(
                    "user specified IP address is supported only when connecting to networks \
                     with user configured subnets"
                        .into(),
                ));
            }
            if !host.holds6(a) {
                return Err(EngineError::Invalid(format!(
                    "no configured subnet or ip-range contain the IP address {a}"
                )));
            }
        }
        for a in &e.aliases {
            if a.is_empty() || a.len() > 253 || a.contains(char::is_whitespace) {
                return Err(EngineError::Invalid(format!("invalid network alias {a:?}")));
            }
        }
        e.network = r.name.clone();
        e.network_id = r.id.clone();
        Ok(e)
    }

    /// Image ids that some container uses, each with one such container's short id
    /// (`rmi` refuses them, `image prune` keeps them).
    pub fn images_in_use(&self) -> Result<BTreeMap<Digest, String>> {
        Ok(self
            .list()?
            .into_iter()
            .map(|r| (r.image_id.clone(), r.short_id().to_string()))
            .collect())
    }

    /// What `system df` says about containers and volumes.
    pub fn disk_usage(&self) -> Result<DiskUsage> {
        let mut u = DiskUsage::default();
        for rec in self.list()? {
            let size = self.size_rw(&rec);
            u.containers += 1;
            u.size += size;
            if matches!(self.state(&rec).status, Status::Running | Status::Paused) {
                u.active += 1;
            } else {
                u.reclaimable += size;
            }
        }
        let users = self.volume_users()?;
        for v in self.list_volumes()? {
            let size = self.volume_size(&v.name);
            u.volumes += 1;
            u.volume_size += size;
            if users.contains_key(&v.name) {
                u.active_volumes += 1;
            } else {
                u.volume_reclaimable += size;
            }
        }
        Ok(u)
    }

    /// Bytes a container wrote (its upper directory).
    pub fn size_rw(&self, rec: &ContainerRecord) -> u64 {
        tree_size(&self.dir(&rec.id).join("upper"))
    }
}

/// A stop timeout in seconds as docker reads it: a negative one waits for the exit however
/// long it takes (here: a century).
pub fn stop_timeout(seconds: i64) -> Duration {
    match u64::try_from(seconds) {
        Ok(s) => Duration::from_secs(s),
        Err(_) => Duration::from_secs(100 * 365 * 24 * 3600),
    }
}

/// The healthcheck a container gets: the flags' (`flags`) over the image's `Healthcheck`,
/// checked as docker checks them; `None` when neither has one.
fn image_healthcheck(cfg: &Value, flags: Option<Healthcheck>) -> Result<Option<Healthcheck>> {
    let image = cfg.get("Healthcheck").filter(|h| !h.is_null()).map(|h| {
        let n = |k: &str| h.get(k).and_then(Value::as_i64).unwrap_or(0);
        Healthcheck {
            test: json_strings(h.get("Test").unwrap_or(&Value::Null)),
            interval: n("Interval"),
            timeout: n("Timeout"),
            start_period: n("StartPeriod"),
            retries: n("Retries"),
            start_interval: n("StartInterval"),
        }
    });
    let check = match flags {
        Some(f) => Some(f.merged_over(image.as_ref())),
        None => image,
    };
    if let Some(h) = &check {
        for (what, v) in [
            ("Interval", h.interval),
            ("Timeout", h.timeout),
            ("StartPeriod", h.start_period),
            ("StartInterval", h.start_interval),
        ] {
            if v != 0 && v < 1_000_000 {
                return Err(EngineError::Invalid(format!(
                    "{what} in Healthcheck cannot be less than 1ms"
                )));
            }
        }
        if h.retries < 0 {
            return Err(EngineError::Invalid(
                "Retries in Healthcheck cannot be negative".into(),
            ));
        }
    }
    Ok(check)
}

/// Bytes of the files under `p`.
fn tree_size(p: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(p) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(_) => e.metadata().map(|m| m.len()).unwrap_or(0),
            Err(_) => 0,
        })
        .sum()
}

/// What `system df` reports about containers and volumes.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    pub containers: usize,
    pub active: usize,
    pub size: u64,
    pub reclaimable: u64,
    pub volumes: usize,
    pub active_volumes: usize,
    pub volume_size: u64,
    pub volume_reclaimable: u64,
}

/// The monitor's hook that writes a container's `die` event (with its exit code) to the
/// journal when the container exits.
fn die_event(journal: Journal, rec: ContainerRecord, dir: PathBuf) -> ExitHook {
    ExitHook(std::sync::Arc::new(move |exit: &berth_runtime::Exit| {
        if rec.host.network == NetworkMode::Pasta {
            // Its namespace is gone: pasta has nothing left to serve.
            rootless::stop_pasta(&dir, !rec.host.port_bindings.is_empty());
        }
        journal.record(container_event(&rec, "die").attr("exitCode", exit.code.to_string()));
    }))
}

/// The monitor's hook that writes a run's `start` event to the journal once its command
/// has started, and `restart` after it when the restart policy (not a person) started it.
/// The monitor calls it before it can see the run's exit: `die` never comes first.
fn start_event(journal: Journal, rec: ContainerRecord, manual: bool) -> StartHook {
    StartHook(std::sync::Arc::new(move || {
        journal.record(container_event(&rec, "start"));
        if !manual {
            journal.record(container_event(&rec, "restart"));
        }
    }))
}

/// The hostname a container sees.
pub fn hostname_of(rec: &ContainerRecord) -> String {
    spec::effective_hostname(rec)
}

/// What `exec` takes.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub tty: bool,
}

/// docker's refusal of ports on a network: `ports cannot be published on network NAME: WHY`.
fn cannot_publish_on(e: &EndpointConfig, why: &str) -> EngineError {
    EngineError::Invalid(format!(
        "ports cannot be published on network {}: {why}",
        e.network
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_arguments() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().to_str().unwrap();
        assert_eq!(
            parse_volume(&format!("{src}:/data:ro")).unwrap(),
            VolumeSpec::Bind {
                source: std::fs::canonicalize(src).unwrap(),
                dest: "/data".into(),
                read_only: true
            }
        );
        assert_eq!(
            parse_volume("cache:/var/cache/").unwrap(),
            VolumeSpec::Named {
                name: "cache".into(),
                dest: "/var/cache".into(),
                read_only: false,
                no_copy: false
            }
        );
        assert_eq!(
            parse_volume("cache:/var/cache:ro,nocopy").unwrap(),
            VolumeSpec::Named {
                name: "cache".into(),
                dest: "/var/cache".into(),
                read_only: true,
                no_copy: true
            }
        );
        assert_eq!(
            parse_volume("/scratch").unwrap(),
            VolumeSpec::Anonymous {
                dest: "/scratch".into()
            }
        );
        let bind_nocopy = format!("{src}:/data:nocopy");
        for bad in [
            "/does/not/exist/at/all:/x",
            "x:relative",
            "x:/",
            "x:/a/../b",
            "x:/a:zz",
            "a:b:c:d",
            "bad name!:/x",
            ":/x",
            bind_nocopy.as_str(),
        ] {
            assert!(parse_volume(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn ids() {
        let id = new_id();
        assert!(is_id(&id));
        assert!(!is_id(&id[..63]));
        assert!(!is_id(&id.to_uppercase()));
    }
}
