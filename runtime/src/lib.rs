//! berth-runtime: one container's life, from an OCI runtime `Spec` and a root filesystem to an
//! exit code, with no daemon.
//!
//! # What it knows, and what it does not
//!
//! The runtime knows nothing of images, registries, names or container records. Its input is
//! an [`oci_spec::runtime::Spec`], a [`Rootfs`] (an overlay of read-only lower directories plus
//! an upper and a work directory, or a plain directory) and a *state directory* that it owns.
//! The engine (client/) turns an image config and `run` flags into a Spec, starting from
//! [`default_spec`], and keeps its own records beside ours.
//!
//! # API
//!
//! ```text
//! create(ContainerConfig) -> Result<Container>      set up, stop before the command
//! Container::open(state_dir) -> Result<Container>   any process, any time later
//! Container::attach(AttachOptions) -> Result<Attach>   stdio of a created or running container
//! Attach::start() / Container::start() -> Result<pid>  run the command
//! Attach::next_event() -> Result<Option<Event>>     Stdout / Stderr / Exit
//! Attach::input() -> AttachInput                    write_stdin, close_stdin, resize
//! Container::state() -> Result<State>               never blocks; MonitorDied when it is so
//! Container::wait() / wait_timeout(d) -> Exit       exit code (128+signal), oom_killed
//! Container::kill(signal), stop(signal, timeout)    parse_signal("TERM") for names
//! Container::pause(), resume()                      cgroup freezer
//! Container::exec(&Process, ExecStdio) -> ExecProcess   setns into a running container
//! Container::processes() -> Vec<pid>                for `top`
//! Container::sample(dir) -> (State, Option<Usage>) one read of state and counters, for `stats`
//! Container::update(&LinuxResources)               new limits on the live cgroups
//! Container::delete(force)                          leaves nothing behind
//! ContainerConfig::on_exit                          called by the monitor with the exit
//! ContainerConfig::on_start                         called by the monitor once it started
//! default_spec(id) -> Spec, resolve_user(layers, "user:group"), Error::exit_code()
//! resolve_groups(layers, ["audio", "10"]), host_supports_blkio_weight(),
//! host_supports_cpu_realtime(), host_supports_oom_kill_disable(),
//! host_supports_memory_swappiness()
//! ```
//!
//! The `run` path is `create` → `attach` (streams wanted) → `Attach::start` → read events
//! until `Event::Exit` → `delete`. `run -d` is `create` → `start` and return.
//!
//! # Invariants
//!
//! - A monitor process per container (see `monitor`) outlives the caller: it is forked from
//!   the caller — **no hook in `main` is needed**, and the caller may be a multi-threaded
//!   tokio program (the forked children only make system calls and use the allocator; see
//!   the module's notes). It owns the container's pty or pipes, writes the log (see `logfile`),
//!   serves `attach.sock` (wire format in `attach`), reaps the init, records the exit in
//!   `state.json`, removes the cgroups and exits.
//! - The container's mounts live only in its own mount namespace (made private first), so
//!   none can leak to the host and none needs unmounting; cgroups are removed by the monitor
//!   at exit and again by `delete`. After `delete` returns, no process, cgroup, mount or
//!   file of the container remains (the engine's upper/work dirs and a log kept outside the
//!   state directory aside: those are the engine's).
//! - The start path has no sleeps: the init and the monitor hand off through a socketpair.
//! - Every failure of the runtime is an [`Error`]; `Error::exit_code` maps it to docker's
//!   125, or 126 / 127 when the command is not executable / not found.
//! - cgroups: pure v1, pure v2 and hybrid hosts, detected at run time (`cgroup`). An absolute
//!   `cgroupsPath` is taken from each hierarchy's root (runc's reading), a relative one from
//!   the caller's own cgroup; `default_spec` uses `/berth/<id>`.
//! - rlimits are set exactly as the Spec asks (runc's rule): a hard limit above the runtime's
//!   own needs CAP_SYS_RESOURCE, and without it the start fails with a message naming it.
//! - sysctls only of a namespace the container has of its own (IPC, network, UTS), runc's
//!   rule and words.
//! - devices: the Spec's nodes are made in the container's /dev and its device rules go to
//!   the v1 devices controller, or on cgroup v2 become an eBPF program attached to the
//!   container's cgroup (`devices`).
//! - Networks: the Spec's (none: a new namespace with `lo`; host: no network namespace; a
//!   namespace path), and a bridge: `net::connect` plugs a created container's namespace into
//!   a host bridge (veth, address lease, NAT, published ports) before `start`;
//!   `net::disconnect` removes what it left on the host.
//! - seccomp: the Spec's `linux.seccomp` is compiled to BPF once per host (libseccomp, cached
//!   in `/run/berth/seccomp/`, see `seccomp`) and installed by the init and by every exec'd
//!   process as the last step before `execve` (before the capabilities are dropped when
//!   `noNewPrivileges` is off, as runc does); a syscall numbered above every one the profile
//!   names gets ENOSYS, not the default action.
//! - Rootless (see `userns`): an ordinary user's process joins the user's namespace first
//!   (`userns::enter`); containers then share that namespace. In it the runtime makes no
//!   cgroup, bind-mounts the host's device nodes instead of `mknod`, mounts the overlay with
//!   `userxattr` (or fuse-overlayfs), binds the host's /sys when there is no network namespace
//!   of its own, leaves /sys/fs/cgroup empty and keeps seccomp programs in the user's runtime
//!   directory.
//! - Not done: user namespaces of a container's own (`--userns`), AppArmor/SELinux, hooks.
//!
//! # Notes for the engine
//!
//! - The caller must not set SIGCHLD to SIG_IGN (exec'd processes are its children, reaped
//!   by `ExecProcess::wait`), and must use a fork-safe global allocator (glibc's malloc,
//!   jemalloc and mimalloc are).
//! - All calls block (a few milliseconds for `create`); from async code run them on a
//!   blocking thread, or take `Attach::into_stream` and speak the frames with tokio.
//! - `-i` is `ContainerConfig::open_stdin`; `-t` is `spec.process.terminal`. Attach with the
//!   streams you want, forward stdin with `AttachInput::write_stdin` (send
//!   `close_stdin` at end of input without a tty), window sizes with `resize` (before start
//!   too). Detach keys (ctrl-p ctrl-q) are the client's business: stop forwarding and drop
//!   the connection; the container keeps running. Without a tty, forward SIGINT/SIGTERM to
//!   the container with `kill` (docker's sig-proxy); with one, ctrl-c is just input.
//! - `logs`: `LogReader` reads the log (json-file or local, rotated files first); `logs -f`
//!   calls `read_new` again as it grows, across rotations, until `state()` says `Stopped`
//!   and the end is reached. `attach` shows only output from then on.
//! - `restart` is `stop` + `delete` + `create` with the same upper dir; keep the log
//!   outside the state directory if it must survive that.
//! - `exec -t` gives back the pty master (`ExecProcess::take_pty`); copy to and from it.

mod attach;
mod cgroup;
mod container;
mod devices;
mod error;
mod exec;
mod init;
mod logfile;
mod monitor;
pub mod net;
mod rootfs;
mod seccomp;
mod spec;
mod state;
mod sys;
mod usage;
mod user;
pub mod userns;

pub use attach::{Attach, AttachInput, AttachOptions, Event};
pub use cgroup::{
    delegated_subtree, host_supports_blkio_weight, host_supports_cpu_realtime,
    host_supports_memory_swappiness, host_supports_oom_kill_disable,
};
pub use container::{create, create_with_netns, Container, ContainerConfig, IPC_SYSCTLS};
pub use error::{Error, Result};
pub use exec::{ExecProcess, ExecStdio};
pub use logfile::{LogConfig, LogEntry, LogFormat, LogReader};
pub use rootfs::Rootfs;
pub use spec::{
    default_spec, device_rule, host_has_cgroupns, parse_signal, CAPABILITIES, COPY_UP,
    DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_PATH, DEFAULT_READONLY_PATHS,
};
pub use state::{now_rfc3339, Exit, ExitHook, StartHook, State, Status};
pub use usage::Usage;
pub use user::{resolve_groups, resolve_user, ResolvedUser};

/// The Spec types, re-exported so the engine uses the same version.
pub use oci_spec;
