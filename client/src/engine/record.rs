//! What the engine writes about a container: `containers/<id>/config.json`.
//!
//! The record holds what `create` decided (image, command, environment, mounts, limits) in
//! docker's words, so that `inspect` is a translation and `start` after a restart rebuilds
//! the same Spec. The live part (pid, status, exit) is the runtime's `state.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_storage::Digest;
use serde::{Deserialize, Serialize};

/// docker's `Config` of a container: what the process is.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ProcessConfig {
    pub hostname: String,
    pub user: String,
    pub env: Vec<String>,
    /// The command after the entrypoint (docker's `Cmd`).
    pub cmd: Vec<String>,
    pub entrypoint: Vec<String>,
    pub working_dir: String,
    pub tty: bool,
    /// `-i`: keep stdin open for attached clients.
    pub open_stdin: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Mount points the image declares (`VOLUME`); each gets an anonymous volume.
    #[serde(default)]
    pub volumes: Vec<String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `--stop-timeout`: seconds `stop` waits before SIGKILL when not told (docker: 10).
    #[serde(default)]
    pub stop_timeout: Option<i64>,
    /// The healthcheck: the image's `HEALTHCHECK` merged with the `--health-*` flags.
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// `--domainname`: the NIS domain name of the container's uts namespace.
    #[serde(default)]
    pub domainname: String,
    /// docker's `ExposedPorts`: the image's and `--expose`'s, as `80/tcp`.
    #[serde(default)]
    pub exposed_ports: Vec<String>,
    /// `--mac-address`: the MAC address of the container's first interface.
    #[serde(default)]
    pub mac_address: String,
    /// `-a`: the streams `run` attaches (`stdin`, `stdout`, `stderr`); empty: docker's
    /// default (stdout and stderr, and stdin with `-i`).
    #[serde(default)]
    pub attach: Vec<String>,
}

/// docker's `Healthcheck` (durations in nanoseconds; 0: docker's default).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Healthcheck {
    /// `[]` inherit, `["NONE"]` off, `["CMD", args…]`, `["CMD-SHELL", command]`.
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    pub start_period: i64,
    pub retries: i64,
    /// Time between checks during the start period (docker's `StartInterval`; 0: `interval`).
    #[serde(default)]
    pub start_interval: i64,
}

impl Healthcheck {
    /// docker's defaults: every 30 s (every 5 s while starting in the start period), 30 s
    /// to answer, 3 failures in a row.
    pub const DEFAULT_INTERVAL: i64 = 30_000_000_000;
    pub const DEFAULT_TIMEOUT: i64 = 30_000_000_000;
    pub const DEFAULT_RETRIES: i64 = 3;
    pub const DEFAULT_START_INTERVAL: i64 = 5_000_000_000;

    /// The probe's command line, `None` when there is no check to run.
    pub fn argv(&self) -> Option<Vec<String>> {
        match self.test.split_first() {
            Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
            Some((kind, [cmd])) if kind == "CMD-SHELL" => {
                Some(vec!["/bin/sh".into(), "-c".into(), cmd.clone()])
            }
            _ => None,
        }
    }

    /// Fields the flags left unset (0, `[]`) taken from the image's check (docker's merge).
    pub fn merged_over(mut self, image: Option<&Healthcheck>) -> Healthcheck {
        if let Some(i) = image {
            if self.test.is_empty() {
                self.test = i.test.clone();
            }
            for (mine, theirs) in [
                (&mut self.interval, i.interval),
                (&mut self.timeout, i.timeout),
                (&mut self.start_period, i.start_period),
                (&mut self.retries, i.retries),
                (&mut self.start_interval, i.start_interval),
            ] {
                if *mine == 0 {
                    *mine = theirs;
                }
            }
        }
        self
    }
}

/// docker's restart policies.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    No,
    Always,
    UnlessStopped,
    /// At most this many restarts (0: no limit).
    OnFailure(u32),
}

impl RestartPolicy {
    /// Reads `--restart`: `no`, `always`, `unless-stopped`, `on-failure[:N]`, with docker's
    /// messages.
    pub fn parse(s: &str) -> Result<RestartPolicy, String> {
        let (name, count) = match s.split_once(':') {
            Some(("", _)) => {
                return Err("invalid restart policy format: no policy provided before colon".into())
            }
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let count = match count {
            None => None,
            Some(c) => match c.parse::<i64>() {
                Ok(n) if n < 0 => return Err("maximum retry count cannot be negative".into()),
                Ok(n) => Some(n.min(u32::MAX as i64) as u32),
                Err(_) => {
                    return Err(
                        "invalid restart policy format: maximum retry count must be an integer"
                            .into(),
                    )
                }
            },
        };
        let policy = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => return Ok(RestartPolicy::OnFailure(count.unwrap_or(0))),
            other => return Err(format!("invalid restart policy '{other}'")),
        };
        if count.is_some() {
            return Err(format!(
                "maximum retry count cannot be used with restart policy '{}'",
                policy.name()
            ));
        }
        Ok(policy)
    }

    /// docker's `RestartPolicy.Name`.
    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
            RestartPolicy::OnFailure(_) => "on-failure",
        }
    }

    /// docker's `RestartPolicy.MaximumRetryCount`.
    pub fn maximum_retry_count(&self) -> u32 {
        match self {
            RestartPolicy::OnFailure(n) => *n,
            _ => 0,
        }
    }
}

/// What `create` takes about a container's life beyond its process: restarts, health, logs
/// and how it is stopped (the `--restart`, `--health-*`, `--log-*` and `--stop-*` flags).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub restart_policy: RestartPolicy,
    pub log_config: LogConfig,
    /// The flags' healthcheck, merged over the image's; `["NONE"]` for `--no-healthcheck`.
    pub healthcheck: Option<Healthcheck>,
    /// `--stop-signal`, in place of the image's `STOPSIGNAL`.
    pub stop_signal: Option<String>,
    pub stop_timeout: Option<i64>,
}

/// docker's `LogConfig`: the driver and its options as given.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogConfig {
    /// `json-file`, `local` or `none`.
    pub driver: String,
    pub options: BTreeMap<String, String>,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            driver: "json-file".into(),
            options: BTreeMap::new(),
        }
    }
}

impl ProcessConfig {
    /// The full command line: entrypoint then cmd.
    pub fn argv(&self) -> Vec<String> {
        self.entrypoint.iter().chain(&self.cmd).cloned().collect()
    }
}

/// How a network is given to the container.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// A network namespace with only loopback.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// A namespace of its own plugged into berth's host bridge (docker's default network).
    Bridge,
    /// Another container's namespace (`--network container:NAME`; the id is
    /// `HostConfig::network_container`).
    Container,
    /// A namespace of its own with user-mode networking by pasta: rootless berth's default.
    Pasta,
}

impl NetworkMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            NetworkMode::None => "none",
            NetworkMode::Host => "host",
            NetworkMode::Bridge => "bridge",
            NetworkMode::Container => "container",
            NetworkMode::Pasta => "pasta",
        }
    }
}

/// docker's `HostConfig`: limits and how the container sits on the host.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct HostConfig {
    /// `-v` arguments as given.
    pub binds: Vec<String>,
    pub network: NetworkMode,
    /// `--rm`.
    pub auto_remove: bool,
    /// Bytes; 0 = no limit.
    pub memory: i64,
    /// Memory plus swap, bytes; 0 = docker's default (twice `memory`), -1 = unlimited.
    pub memory_swap: i64,
    /// CPUs × 10⁹; 0 = no limit.
    pub nano_cpus: i64,
    /// 0 = no limit.
    pub pids_limit: i64,
    pub readonly_rootfs: bool,
    /// `--cgroup-parent`: the cgroup the container's own goes under (default `/berth`).
    #[serde(default)]
    pub cgroup_parent: String,
    /// `-p`: ports published on the host (bridge network only).
    #[serde(default)]
    pub port_bindings: Vec<PortBinding>,
    /// `-P`: the image's exposed ports are published too, each on a free host port.
    #[serde(default)]
    pub publish_all: bool,
    /// `--dns`: name servers replacing the host's in the container's resolv.conf.
    #[serde(default)]
    pub dns: Vec<String>,
    /// `--dns-search`: search domains replacing the host's.
    #[serde(default)]
    pub dns_search: Vec<String>,
    /// `--dns-option`: resolver options replacing the host's.
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// `--add-host NAME:IP`: lines added to the container's /etc/hosts, as `NAME:IP`
    /// (`host-gateway` already replaced by the bridge's gateway).
    #[serde(default)]
    pub extra_hosts: Vec<String>,
    /// With `NetworkMode::Container`: the container whose network namespace this one joins
    /// (a name or id as given to `create`, its id once created).
    #[serde(default)]
    pub network_container: String,
    /// With `NetworkMode::Bridge`: the networks the container is on, in the order of its
    /// interfaces (eth0 first); empty means the default bridge alone.
    #[serde(default)]
    pub networks: Vec<EndpointConfig>,
    /// `--privileged`: every capability and device, no seccomp filter, no masked paths.
    #[serde(default)]
    pub privileged: bool,
    /// `--cap-add`, `--cap-drop`: `CAP_` names (or `ALL`), as normalised by `create`.
    #[serde(default)]
    pub cap_add: Vec<String>,
    #[serde(default)]
    pub cap_drop: Vec<String>,
    /// `--security-opt`: `seccomp=unconfined`, `seccomp=<the profile's JSON>` (the CLI reads
    /// the file, as docker's does), `no-new-privileges[=true|false]`, `apparmor=unconfined`,
    /// `label=disable`, `systempaths=unconfined`.
    #[serde(default)]
    pub security_opt: Vec<String>,
    /// `--mount`: docker's `HostConfig.Mounts`, as given (checked by `create`).
    #[serde(default)]
    pub mounts: Vec<MountSpec>,
    /// `--volumes-from`: `CONTAINER[:ro|rw]`, the container's id once created.
    #[serde(default)]
    pub volumes_from: Vec<String>,
    /// `--init`: a small init as the container's pid 1 reaps zombies and forwards signals.
    #[serde(default)]
    pub init: bool,
    /// `--pid`, `--ipc`, `--uts`, `--userns`: docker's modes (`host`, `container:<id>`,
    /// for ipc also `none`, `private`, `shareable`); empty: docker's default.
    #[serde(default)]
    pub pid_mode: String,
    #[serde(default)]
    pub ipc_mode: String,
    #[serde(default)]
    pub uts_mode: String,
    #[serde(default)]
    pub userns_mode: String,
    /// `--cgroupns`: `host` or `private`; empty: private where the kernel has cgroup
    /// namespaces.
    #[serde(default)]
    pub cgroupns_mode: String,
    /// `--annotation`: passed to the runtime in the Spec's annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// Devices, limits and kernel settings beyond the ones above (`--device`, `--ulimit`, …).
    #[serde(default)]
    pub resources: Resources,
}

/// The rest of docker's `HostConfig` that confines or limits a container: devices and their
/// cgroup rules, extra groups, sysctls, rlimits, /dev/shm and tmpfs mounts, the OOM killer
/// and the cgroup knobs. Each field in docker's meaning, checked by `create`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Resources {
    /// `--device HOST[:CONTAINER[:PERMISSIONS]]`.
    #[serde(default)]
    pub devices: Vec<DeviceMapping>,
    /// `--device-cgroup-rule`: `TYPE MAJOR:MINOR ACCESS` lines (`c 1:3 rwm`, `b *:* m`).
    #[serde(default)]
    pub device_cgroup_rules: Vec<String>,
    /// `--group-add`: group names (resolved in the container's /etc/group at start) or ids.
    #[serde(default)]
    pub group_add: Vec<String>,
    /// `--sysctl`: namespaced kernel parameters.
    #[serde(default)]
    pub sysctls: BTreeMap<String, String>,
    /// `--ulimit`.
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// `--shm-size` in bytes; 0 is docker's 64 MiB.
    #[serde(default)]
    pub shm_size: i64,
    /// `--tmpfs PATH[:OPTIONS]`: mount point to tmpfs options.
    #[serde(default)]
    pub tmpfs: BTreeMap<String, String>,
    #[serde(default)]
    pub oom_kill_disable: bool,
    /// -1000 to 1000.
    #[serde(default)]
    pub oom_score_adj: i32,
    /// Relative CPU weight; 0 = the kernel's default (1024).
    #[serde(default)]
    pub cpu_shares: i64,
    /// CFS scheduler period in microseconds (1000 to 1000000); 0 = the kernel's (100000).
    #[serde(default)]
    pub cpu_period: i64,
    /// CFS quota in microseconds per period; 0 = none (a negative value is unlimited).
    #[serde(default)]
    pub cpu_quota: i64,
    /// Real-time scheduler period in microseconds; 0 = the parent's.
    #[serde(default)]
    pub cpu_realtime_period: i64,
    /// Real-time runtime in microseconds per period; 0 = none.
    #[serde(default)]
    pub cpu_realtime_runtime: i64,
    /// CPUs allowed (`0-2`, `0,1`); empty = all.
    #[serde(default)]
    pub cpuset_cpus: String,
    /// Memory nodes allowed; empty = all.
    #[serde(default)]
    pub cpuset_mems: String,
    /// Soft memory limit in bytes; 0 = none.
    #[serde(default)]
    pub memory_reservation: i64,
    /// How eagerly the kernel swaps the container's memory, 0 to 100; None or -1 = the
    /// host's (docker's `MemorySwappiness`, kept as given).
    #[serde(default)]
    pub memory_swappiness: Option<i64>,
    /// Block I/O weight, 10 to 1000; 0 = the default (also when the host cannot weigh I/O:
    /// `create` discards it then, as docker).
    #[serde(default)]
    pub blkio_weight: u16,
}

/// One `--device`, docker's `DeviceMapping`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceMapping {
    pub path_on_host: String,
    pub path_in_container: String,
    /// Some of `rwm`.
    pub cgroup_permissions: String,
}

/// One `--ulimit NAME=SOFT[:HARD]`; -1 is unlimited.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// One `--mount`: docker's `mount.Mount`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountSpec {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// A host path (bind), a volume's name (volume; empty: anonymous), nothing (tmpfs).
    #[serde(default)]
    pub source: String,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    /// `bind-propagation`: `rprivate` (docker's default), `private`, `rshared`, `shared`,
    /// `rslave`, `slave`; empty: the default.
    #[serde(default)]
    pub propagation: String,
    /// `bind-nonrecursive`: the source's submounts are not carried along.
    #[serde(default)]
    pub non_recursive: bool,
    /// `volume-nocopy`.
    #[serde(default)]
    pub no_copy: bool,
    /// `tmpfs-size` in bytes (0: the kernel's default, half the memory).
    #[serde(default)]
    pub tmpfs_size: i64,
    /// `tmpfs-mode` (0: 1777).
    #[serde(default)]
    pub tmpfs_mode: u32,
}

/// One network of a container, as `--network`, `--ip`, `--network-alias` and `network
/// connect` asked.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointConfig {
    /// The network's name (`bridge` for the default one).
    pub network: String,
    /// The network's id (empty for the default bridge).
    #[serde(default)]
    pub network_id: String,
    /// `--network-alias`: more names the network's resolver answers for the container.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`: the address asked for; empty for the first free one.
    #[serde(default)]
    pub ipv4_address: String,
    /// `--ip6`: the IPv6 address asked for, on a network with an IPv6 subnet.
    #[serde(default)]
    pub ipv6_address: String,
}

impl HostConfig {
    /// docker's `HostConfig.NetworkMode`: `bridge`, `none`, `host`, `container:<id>`.
    pub fn network_mode(&self) -> String {
        match self.network {
            NetworkMode::Container => format!("container:{}", self.network_container),
            other => other.as_str().to_string(),
        }
    }

    /// docker's `HostConfig.MaskedPaths`: what the container sees empty (/proc/kcore, …);
    /// none with `--privileged` or `--security-opt systempaths=unconfined`.
    pub fn masked_paths(&self) -> Vec<String> {
        self.system_paths(berth_runtime::DEFAULT_MASKED_PATHS)
    }

    /// docker's `HostConfig.ReadonlyPaths`: what the container sees read-only (/proc/sys, …).
    pub fn readonly_paths(&self) -> Vec<String> {
        self.system_paths(berth_runtime::DEFAULT_READONLY_PATHS)
    }

    /// Whether /proc and /sys paths are left as the kernel shows them.
    pub fn system_paths_unconfined(&self) -> bool {
        self.privileged
            || self
                .security_opt
                .iter()
                .any(|o| o == "systempaths=unconfined" || o == "systempaths:unconfined")
    }

    fn system_paths(&self, paths: &[&str]) -> Vec<String> {
        if self.system_paths_unconfined() {
            return vec![];
        }
        paths.iter().map(|p| p.to_string()).collect()
    }
}

/// One `-p`: a container port and where on the host it is published.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PortBinding {
    /// `tcp` or `udp`.
    pub protocol: String,
    pub container_port: u16,
    /// Empty for all of the host's addresses.
    #[serde(default)]
    pub host_ip: String,
    /// 0: a free port is chosen at each start.
    pub host_port: u16,
}

impl PortBinding {
    /// docker's key for the container side: `80/tcp`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.container_port, self.protocol)
    }

    /// Where it answers on the host, as docker prints a bound port: `0.0.0.0:8080` for all
    /// addresses, `[::]:8080` for all IPv6 ones, `127.0.0.1:8080`.
    pub fn host_address(&self) -> String {
        let ip = match self.host_ip.as_str() {
            "" => "0.0.0.0",
            ip => ip,
        };
        if ip.contains(':') {
            format!("[{ip}]:{}", self.host_port)
        } else {
            format!("{ip}:{}", self.host_port)
        }
    }
}

/// Where a running container sits on the bridge: `containers/<id>/network.json`, written
/// when it is plugged in and removed when it is unplugged.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NetworkState {
    pub ip_address: String,
    pub gateway: String,
    pub prefix: u8,
    pub mac_address: String,
    /// The published ports with the host ports chosen.
    pub ports: Vec<PortBinding>,
    /// Every network the container is on (the fields above are the first's).
    #[serde(default)]
    pub endpoints: Vec<EndpointState>,
}

/// Where a running container sits on one network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct EndpointState {
    pub network: String,
    #[serde(default)]
    pub network_id: String,
    /// The interface inside (`eth0`, `eth1`, …).
    pub interface: String,
    pub ip_address: String,
    pub gateway: String,
    pub prefix: u8,
    pub mac_address: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// On a network with IPv6: the address, its prefix length and the gateway.
    #[serde(default)]
    pub global_ipv6_address: String,
    #[serde(default)]
    pub global_ipv6_prefix: u8,
    #[serde(default)]
    pub ipv6_gateway: String,
}

/// A volume, bind or tmpfs mount of the container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct MountPoint {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// The volume's name (volumes only).
    #[serde(default)]
    pub name: Option<String>,
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
    /// An anonymous volume, removed with the container by `rm -v` and `--rm`.
    #[serde(default)]
    pub anonymous: bool,
    /// A volume that is not filled with the image's content when empty (`-v name:/dir:nocopy`).
    #[serde(default)]
    pub no_copy: bool,
    /// A bind's propagation (empty: `rprivate`).
    #[serde(default)]
    pub propagation: String,
    /// A bind without its source's submounts (`bind-nonrecursive`).
    #[serde(default)]
    pub non_recursive: bool,
    /// A tmpfs's `size=` and `mode=` options (`kind` is `tmpfs`, `source` empty).
    #[serde(default)]
    pub tmpfs_options: Vec<String>,
}

/// How a previous run ended, kept when a restart replaces the runtime's state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LastRun {
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub error: Option<String>,
}

/// The engine's record of one container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Without docker's leading `/`.
    pub name: String,
    /// RFC 3339.
    pub created: String,
    /// The image as the user named it (`busybox`).
    pub image: String,
    /// The image id (config digest).
    pub image_id: Digest,
    /// Snapshot keys (chain ids), bottom layer first: the container keeps its layers even if
    /// the image's name is removed.
    pub layers: Vec<Digest>,
    pub config: ProcessConfig,
    pub host: HostConfig,
    pub mounts: Vec<MountPoint>,
    #[serde(default)]
    pub restart_count: u32,
    #[serde(default)]
    pub last_run: Option<LastRun>,
    /// `--restart` (docker's HostConfig.RestartPolicy).
    #[serde(default)]
    pub restart_policy: RestartPolicy,
    /// `--log-driver`, `--log-opt` (docker's HostConfig.LogConfig).
    #[serde(default)]
    pub log_config: LogConfig,
    /// Stopped or killed by a person (docker's HasBeenManuallyStopped): `unless-stopped`
    /// then stays down, also after a reboot. A manual start clears it.
    #[serde(default)]
    pub manually_stopped: bool,
    /// The next exit is not followed by a restart, whatever the policy (docker's
    /// ExitOnNext): set by `stop`, `rm -f` and `kill`; a manual start clears it.
    #[serde(default)]
    pub restart_cancelled: bool,
    /// The supervisor waits to restart the container (docker's `Restarting`).
    #[serde(default)]
    pub restarting: bool,
}

impl ContainerRecord {
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}
