//! Rootless berth, the engine's side: entering the user's namespace (the runtime's `userns`),
//! what a rootless container cannot have on this host, and its user-mode network.
//!
//! An ordinary user's berth runs as root inside a user namespace that maps the user and the
//! subordinate ids of /etc/subuid and /etc/subgid (see `berth_runtime::userns`). Its store is
//! the user's (`~/.local/share/berth`), separate from root's. What the kernel gives only to
//! real root is refused up front with one line: the bridge (a host interface and iptables),
//! and limits where no cgroup v2 subtree with their controllers is delegated to the user
//! (always on cgroup v1 and hybrid hosts). Where one is (`berth_runtime::delegated_subtree`),
//! every container gets its cgroup in it.
//!
//! The network of a rootless container is `pasta` (Debian's passt) by default, as podman's:
//! berth makes the container's network namespace first and starts `pasta --config-net` on it,
//! which gives it the host's addresses and routes, reaches the outside through the host's
//! sockets, and listens on the host for each `-p` port, while the runtime creates the
//! container, which joins that namespace ([`Pasta`]). pasta's pid is kept in `containers/<id>/pasta.pid`
//! and it is stopped when the container exits (the monitor's exit hook), stops or is removed.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::record::{HostConfig, NetworkMode, PortBinding};
use super::{EngineError, Result};

/// Joins (or makes) the calling user's namespace; nothing for root. Call it first in `main`,
/// before any thread starts.
pub fn enter() -> Result<()> {
    berth_runtime::userns::enter()
        .map(|_| ())
        .map_err(|e| match e {
            berth_runtime::Error::Rootless(_) => EngineError::Runtime(e),
            other => EngineError::Invalid(format!("rootless: {other}")),
        })
}

/// Whether this process is rootless berth (inside an ordinary user's namespace).
pub fn active() -> bool {
    berth_runtime::userns::rootless().is_some()
}

/// How a rootless berth runs on this host, for `berth info`.
#[derive(Debug, Clone)]
pub struct Info {
    /// The user's uid on the host.
    pub host_uid: u32,
    /// The user's runtime directory (pause process, seccomp programs).
    pub run_dir: PathBuf,
    /// The default network: `pasta`.
    pub network: &'static str,
    /// The network drivers a rootless container can have (`--network` values as `info`'s
    /// Plugins name them): no bridge, which needs root.
    pub network_drivers: &'static [&'static str],
    /// `cgroupfs` when containers get cgroups in a cgroup v2 subtree delegated to the user
    /// (limits then need their controllers delegated too), else `none`.
    pub cgroups: &'static str,
}

/// `Some` in rootless berth.
pub fn info() -> Option<Info> {
    let r = berth_runtime::userns::rootless()?;
    Some(Info {
        host_uid: r.host_uid,
        run_dir: r.run_dir.clone(),
        network: "pasta",
        network_drivers: &["host", "null", "pasta"],
        cgroups: if berth_runtime::delegated_subtree(&[]).is_ok() {
            "cgroupfs"
        } else {
            "none"
        },
    })
}

/// The overlay the user's containers get with their upper directories in the store at
/// `root`: `overlay` (the kernel's, mounted in the user namespace) when a trial mount there
/// succeeds, else `fuse-overlayfs` (`$BERTH_ROOTLESS_OVERLAY` chooses otherwise).
pub fn overlay(root: &Path) -> &'static str {
    berth_runtime::userns::overlay_driver(root).as_str()
}

/// The one line for limits that need a cgroup of the container's own, where the user has
/// no delegated cgroup v2 subtree (`why` says what is missing).
fn limits_refused(what: &str, why: &str) -> EngineError {
    EngineError::Invalid(format!(
        "rootless containers cannot have {what} on this host: {why}"
    ))
}

/// Refuses what a rootless container cannot have; nothing as root.
pub(crate) fn check(host: &HostConfig) -> Result<()> {
    if !active() {
        return Ok(());
    }
    if host.network == NetworkMode::Bridge {
        return Err(EngineError::Invalid(
            "rootless containers cannot use --network bridge or user-defined networks (they \
             need root); use the default (pasta), host or none"
                .into(),
        ));
    }
    if !host.cgroup_parent.is_empty() {
        return Err(EngineError::Invalid(
            "rootless containers cannot use --cgroup-parent: their cgroups are in the user's \
             delegated subtree, or they have none"
                .into(),
        ));
    }
    if host.ipc_mode == "shareable" {
        return Err(EngineError::Invalid(
            "rootless containers cannot use --ipc shareable: the /dev/shm other containers \
             join is a tmpfs mounted on the host, which needs root; use --ipc private (the \
             default) or host"
                .into(),
        ));
    }
    let r = &host.resources;
    if r.oom_kill_disable || !r.device_cgroup_rules.is_empty() {
        return Err(limits_refused(
            if r.oom_kill_disable {
                "--oom-kill-disable"
            } else {
                "--device-cgroup-rule"
            },
            "it needs root (cgroup v1's memory controller; a device filter program)",
        ));
    }
    if r.cpu_realtime_period != 0 || r.cpu_realtime_runtime != 0 {
        return Err(limits_refused(
            "--cpu-rt-period/--cpu-rt-runtime",
            "it needs root (cgroup v1's cpu controller; cgroup v2 has no real-time limits)",
        ));
    }
    // Each limit and the cgroup v2 controller that applies it.
    let limits = [
        (host.memory != 0, "-m/--memory", "memory"),
        (host.memory_swap > 0, "--memory-swap", "memory"),
        (r.memory_reservation != 0, "--memory-reservation", "memory"),
        (
            r.memory_swappiness.is_some_and(|s| s >= 0),
            "--memory-swappiness",
            "memory",
        ),
        (host.nano_cpus != 0, "--cpus", "cpu"),
        (r.cpu_shares != 0, "--cpu-shares", "cpu"),
        (r.cpu_period != 0, "--cpu-period", "cpu"),
        (r.cpu_quota != 0, "--cpu-quota", "cpu"),
        (!r.cpuset_cpus.is_empty(), "--cpuset-cpus", "cpuset"),
        (!r.cpuset_mems.is_empty(), "--cpuset-mems", "cpuset"),
        (host.pids_limit > 0, "--pids-limit", "pids"),
        (r.blkio_weight != 0, "--blkio-weight", "io"),
    ];
    let asked: Vec<&str> = limits.iter().filter(|l| l.0).map(|l| l.1).collect();
    let mut needed: Vec<&str> = limits.iter().filter(|l| l.0).map(|l| l.2).collect();
    needed.dedup();
    if !asked.is_empty() {
        if let Err(why) = berth_runtime::delegated_subtree(&needed) {
            return Err(limits_refused(&asked.join(", "), &why));
        }
    }
    Ok(())
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("pasta.pid")
}

/// How long pasta may take to set up a container's network before berth gives up on it.
const PASTA_SETUP: std::time::Duration = std::time::Duration::from_secs(30);

/// A container's pasta, started on a network namespace made before the container (see
/// [`Pasta::start`]): its foreground process configures the namespace and daemonizes while
/// the runtime creates the container, which joins the namespace by path. [`Pasta::finish`]
/// waits for it; dropped unfinished, it is stopped.
pub(crate) struct Pasta {
    netns: OwnedFd,
    child: Option<Child>,
    dir: PathBuf,
    published: Vec<PortBinding>,
}

impl Pasta {
    /// Makes the container's network namespace and starts pasta on it without waiting:
    /// pasta's own start (its socket pools, the netlink copy of the host's addresses and
    /// routes: ~50 ms here) then runs beside the container's create instead of before its
    /// start. Host ports asked as 0 are chosen now.
    pub(crate) fn start(dir: &Path, ports: &[PortBinding]) -> Result<Pasta> {
        let netns = berth_runtime::net::new_namespace()
            .map_err(|e| EngineError::Invalid(format!("a network namespace for pasta: {e}")))?;
        // pasta drops its capabilities before it opens a namespace by path, and may then not
        // open another process's files: it gets ours, inherited, as /proc/self/fd/N.
        let fd = netns.as_raw_fd();
        let mut published = vec![];
        let mut args: Vec<String> = vec![
            "--config-net".into(),
            "--quiet".into(),
            // Root in the user namespace is not the host's root: stay as we are.
            "--runas".into(),
            "0".into(),
            "--netns".into(),
            format!("/proc/self/fd/{fd}"),
            "-P".into(),
            pid_file(dir).display().to_string(),
            // No port of the host's loopback is forwarded into the container, nor back.
            "-T".into(),
            "none".into(),
            "-U".into(),
            "none".into(),
        ];
        let (mut tcp, mut udp) = (vec![], vec![]);
        for p in ports {
            let mut p = p.clone();
            if p.host_port == 0 {
                p.host_port = free_port(&p.protocol, &p.host_ip)?;
            }
            let spec = match p.host_ip.as_str() {
                "" => format!("{}:{}", p.host_port, p.container_port),
                ip => format!("{ip}/{}:{}", p.host_port, p.container_port),
            };
            if p.protocol == "udp" {
                udp.push(spec)
            } else {
                tcp.push(spec)
            }
            published.push(p);
        }
        for (flag, list) in [("-t", tcp), ("-u", udp)] {
            if list.is_empty() {
                args.extend([flag.to_string(), "none".to_string()]);
            }
            for s in list {
                args.extend([flag.to_string(), s]);
            }
        }
        let mut cmd = Command::new("pasta");
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: clearing close-on-exec of our own fd in the child, between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(move || {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().map_err(|e| {
            EngineError::Invalid(format!(
                "cannot run pasta for the container's network ({e}): install Debian's passt, or \
                 use --network none or host"
            ))
        })?;
        Ok(Pasta {
            netns,
            child: Some(child),
            dir: dir.to_path_buf(),
            published,
        })
    }

    /// The path the container joins the namespace by: this process's fd, valid while this
    /// `Pasta` lives (the runtime's init opens it during `create`).
    pub(crate) fn netns_path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.netns.as_raw_fd()
        ))
    }

    /// Waits (at most [`PASTA_SETUP`]) for pasta's foreground process: the namespace has its
    /// addresses and routes, and the host its listeners for the published ports, once it has
    /// exited. Returns the bindings with the host ports chosen.
    pub(crate) fn finish(mut self) -> Result<Vec<PortBinding>> {
        let mut child = self.child.take().expect("finished once");
        let status = match wait_bounded(&mut child, PASTA_SETUP) {
            Ok(Some(status)) => status,
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                stop_pasta(&self.dir, true);
                return Err(EngineError::Invalid(format!(
                    "pasta did not set up the container's network within {} s",
                    PASTA_SETUP.as_secs()
                )));
            }
            Err(e) => {
                stop_pasta(&self.dir, true);
                return Err(EngineError::Invalid(format!("waiting for pasta: {e}")));
            }
        };
        if !status.success() {
            // It has exited: what it wrote is in the pipe; the daemon (if it got that far)
            // does not hold it, but read without blocking all the same.
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                // SAFETY: fcntl on the pipe we own.
                unsafe {
                    let fd = e.as_raw_fd();
                    libc::fcntl(
                        fd,
                        libc::F_SETFL,
                        libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
                    );
                }
                let mut buf = vec![];
                let _ = e.read_to_end(&mut buf);
                err = String::from_utf8_lossy(&buf).into_owned();
            }
            let err = err
                .lines()
                .filter(|l| !l.starts_with("Failed to send") && !l.trim().is_empty())
                .collect::<Vec<_>>()
                .join("; ");
            let hint = if err.contains("tun") {
                " (/dev/net/tun must be readable and writable by the user, mode 0666 as udev \
                 makes it)"
            } else {
                ""
            };
            stop_pasta(&self.dir, true);
            return Err(EngineError::Invalid(format!("pasta: {err}{hint}")));
        }
        Ok(std::mem::take(&mut self.published))
    }
}

impl Drop for Pasta {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Given up before it was waited for (the container's create failed). Let its
            // foreground finish first (bounded): killed between its fork and writing the pid
            // file, it would leave a daemon nothing names.
            if !matches!(wait_bounded(&mut child, PASTA_SETUP), Ok(Some(_))) {
                let _ = child.kill();
                let _ = child.wait();
            }
            stop_pasta(&self.dir, true);
        }
    }
}

/// Waits at most `limit` for `child` to exit; `None` when it has not.
fn wait_bounded(
    child: &mut Child,
    limit: std::time::Duration,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    if super::exits_within(child.id() as i32, limit)? {
        child.wait().map(Some)
    } else {
        Ok(None)
    }
}

/// A free port on the host, for `-p CONTAINER_PORT` with no host port.
fn free_port(protocol: &str, host_ip: &str) -> Result<u16> {
    let ip = if host_ip.is_empty() {
        "0.0.0.0"
    } else {
        host_ip
    };
    let port = if protocol == "udp" {
        std::net::UdpSocket::bind((ip, 0)).and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind((ip, 0)).and_then(|s| s.local_addr())
    };
    port.map(|a| a.port())
        .map_err(|e| EngineError::Invalid(format!("no free host port on {ip}: {e}")))
}

/// Stops the container's pasta, if one runs (its pid file names it, and its command line
/// names the pid file: a reused pid is left alone). With `ports` (the container published
/// some) it waits for pasta to exit, so that they are free again on return; without, it
/// does not (pasta takes ~30 ms here to close its sockets, a third of a `run --rm`'s network
/// cost).
pub(crate) fn stop_pasta(dir: &Path, ports: bool) {
    let file = pid_file(dir);
    let Some(pid) = std::fs::read_to_string(&file)
        .ok()
        .and_then(|t| t.trim().parse::<i32>().ok())
    else {
        return;
    };
    let ours = std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        let needle = file.as_os_str().as_encoded_bytes();
        c.split(|&b| b == 0).any(|arg| arg == needle)
    });
    if ours && !ports {
        // SAFETY: kill(2) of the pasta this container started.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    } else if ours {
        // Its listening sockets close only when it has exited: wait for that (bounded), so
        // the host ports are free again when `stop` returns.
        // SAFETY: pidfd_open, kill(2) and poll(2) on the pasta this container started.
        unsafe {
            let pidfd = libc::syscall(libc::SYS_pidfd_open, pid, 0) as libc::c_int;
            libc::kill(pid, libc::SIGTERM);
            if pidfd >= 0 {
                let mut p = libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                };
                libc::poll(&mut p, 1, 2000);
                libc::close(pidfd);
            }
        }
    }
    let _ = std::fs::remove_file(file);
}
