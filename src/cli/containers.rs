//! The container commands: `run`, `create`, `start`, `stop`, `restart`, `kill`, `rm`, `ps`,
//! `logs`, `top`, `exec`, `attach`, `wait`, `rename`, `pause`, `unpause`, `container …`, with
//! docker's names, flags, output and exit codes. The work is `berth_client::engine`.

mod term;

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use berth_client::engine::{
    read_logs, ContainerRecord, CreateOptions, Engine, EngineError, ExecOptions, HostConfig,
    LogOptions, NetworkMode, NetworkState, PortBinding, Status,
};
use berth_client::images::{human_ago, human_duration, human_size, ImageRecord};
use berth_client::remote::Platform;
use berth_runtime::ExecStdio;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::images::{print_formatted, pull_missing};
use super::Globals;
use term::{Outcome, Session};

/// docker's exit status for its own failures (a bad flag, no such image, …).
const ENGINE_FAILURE: i32 = 125;

#[derive(Subcommand)]
pub enum ContainerCommand {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    Rm(RmArgs),
    /// List containers
    Ps(PsArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(ContainersArg),
    /// Rename a container
    Rename(RenameArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArg),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArg),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Manage containers
    Container {
        #[command(subcommand)]
        command: ContainerSub,
    },
    /// Removes a --rm container once it exits (started by `run -d --rm`)
    #[command(hide = true, name = "__reap")]
    Reap(ContainersArg),
}

#[derive(Subcommand)]
pub enum ContainerSub {
    /// Create and run a new container from an image
    Run(RunArgs),
    /// Create a new container
    Create(CreateArgs),
    /// Start one or more stopped containers
    Start(StartArgs),
    /// Stop one or more running containers
    Stop(StopArgs),
    /// Restart one or more containers
    Restart(StopArgs),
    /// Kill one or more running containers
    Kill(KillArgs),
    /// Remove one or more containers
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// List containers
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Fetch the logs of a container
    Logs(LogsArgs),
    /// Display the running processes of a container
    Top(TopArgs),
    /// Display detailed information on one or more containers
    Inspect(ContainerInspectArgs),
    /// Execute a command in a running container
    Exec(ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(AttachArgs),
    /// Block until one or more containers stop, then print their exit codes
    Wait(ContainersArg),
    /// Rename a container
    Rename(RenameArgs),
    /// Pause all processes within one or more containers
    Pause(ContainersArg),
    /// Unpause all processes within one or more containers
    Unpause(ContainersArg),
    /// List port mappings or a specific mapping for the container
    Port(PortArgs),
    /// Remove all stopped containers
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
pub struct PortArgs {
    /// The container's name or id
    container: String,
    /// The container port to show: PORT[/PROTO]
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    port: Option<String>,
}

/// The flags `create` and `run` share.
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateFlags {
    /// Print usage
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Automatically remove the container and its anonymous volumes when it exits
    #[arg(long)]
    rm: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables (KEY=VALUE, or KEY to take it from here)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Set custom DNS servers
    #[arg(long, value_name = "IP")]
    dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long, value_name = "DOMAIN")]
    dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long, value_name = "OPTION")]
    dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip; host-gateway is the bridge's gateway)
    #[arg(long, value_name = "HOST:IP")]
    add_host: Vec<String>,
    /// Bind mount a volume (HOST-DIR:CONTAINER-DIR[:ro], NAME:CONTAINER-DIR[:ro], or CONTAINER-DIR)
    #[arg(short, long = "volume", value_name = "VOLUME")]
    volume: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Memory limit (e.g. 32m, 1g)
    #[arg(short, long)]
    memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// Tune container pids limit (-1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Parent cgroup for the container's cgroup (default /berth)
    #[arg(long, value_name = "PATH")]
    cgroup_parent: Option<String>,
    /// Connect a container to a network: bridge (berth0, 10.89.0.0/16), none, host or
    /// container:NAME (another container's network)
    #[arg(long, alias = "net", default_value = "bridge")]
    network: String,
    /// Publish a container's port(s) to the host: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]
    #[arg(short, long, value_name = "PORTS")]
    publish: Vec<String>,
    /// Publish all exposed ports to free host ports
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// Set meta data on a container
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    label: Vec<String>,
    /// Pull image before running: missing, always, never
    #[arg(long, default_value = "missing")]
    pull: String,
    /// Set platform if the image must be pulled (os/arch[/variant])
    #[arg(long)]
    platform: Option<String>,
    /// Suppress the pull output
    #[arg(short, long)]
    quiet: bool,
    /// The image to run
    image: String,
    /// The command and its arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    /// Proxy received signals to the process
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    #[command(flatten)]
    flags: CreateFlags,
}

#[derive(Args, Debug)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    #[command(flatten)]
    flags: CreateFlags,
}

#[derive(Args, Debug)]
pub struct ContainersArg {
    /// Containers (name, id or id prefix)
    #[arg(required = true, value_name = "CONTAINER")]
    containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short, long)]
    attach: bool,
    /// Attach container's STDIN
    #[arg(short, long)]
    interactive: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    #[command(flatten)]
    c: ContainersArg,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout", default_value_t = 10)]
    time: u64,
    /// Signal to send to the container (default: the image's StopSignal, else SIGTERM)
    #[arg(short, long)]
    signal: Option<String>,
    #[command(flatten)]
    c: ContainersArg,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[command(flatten)]
    c: ContainersArg,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    volumes: bool,
    #[command(flatten)]
    c: ContainersArg,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Show the latest created container (includes all states)
    #[arg(short, long)]
    latest: bool,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last", default_value_t = -1, allow_hyphen_values = true)]
    last: i64,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
    /// Filter output based on conditions provided (status=, name=, id=, ancestor=, label=, exited=)
    #[arg(short, long)]
    filter: Vec<String>,
    /// Format output using a custom template ('table', 'table TEMPLATE', 'json', or a Go template)
    #[arg(long)]
    format: Option<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Number of lines to show from the end of the logs ("all" for all)
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Show logs since a timestamp (2013-01-02T13:23:37Z) or relative (42m for 42 minutes)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp or relative time
    #[arg(long)]
    until: Option<String>,
    container: String,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    container: String,
    /// Options for ps (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Proxy all received signals to the process
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    sig_proxy: bool,
    /// Override the key sequence for detaching a container
    #[arg(long, default_value = "ctrl-p,ctrl-q")]
    detach_keys: String,
    container: String,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Do not prompt for confirmation
    #[arg(short, long)]
    force: bool,
}

#[derive(Args, Debug)]
pub struct ContainerInspectArgs {
    /// Format output using a custom template
    #[arg(short, long)]
    format: Option<String>,
    /// Display total file sizes
    #[arg(short, long)]
    size: bool,
    #[command(flatten)]
    c: ContainersArg,
}

fn engine(g: &Globals) -> Result<Engine> {
    let mut e = Engine::with_images(g.open_store()?)?;
    e.set_bridge(configured_bridge()?);
    Ok(e)
}

/// The bridge of `--network bridge`: the client config file's `[bridge]`, else berth0 on
/// 10.89.0.1/16.
pub(crate) fn configured_bridge() -> Result<berth_runtime::net::Bridge> {
    let cfg = berth_client::remote::ClientConfig::load()?;
    cfg.bridge.bridge().map_err(anyhow::Error::msg)
}

/// Runs a container command; returns the exit status.
pub fn run(g: &Globals, cmd: ContainerCommand) -> Result<i32> {
    use ContainerCommand as C;
    use ContainerSub as S;
    match cmd {
        C::Run(a) | C::Container { command: S::Run(a) } => run_container(g, a),
        C::Create(a)
        | C::Container {
            command: S::Create(a),
        } => create(g, a),
        C::Start(a)
        | C::Container {
            command: S::Start(a),
        } => start(g, a),
        C::Stop(a)
        | C::Container {
            command: S::Stop(a),
        } => stop(g, a, false),
        C::Restart(a)
        | C::Container {
            command: S::Restart(a),
        } => stop(g, a, true),
        C::Kill(a)
        | C::Container {
            command: S::Kill(a),
        } => kill(g, a),
        C::Rm(a) | C::Container { command: S::Rm(a) } => rm(g, a),
        C::Ps(a) | C::Container { command: S::Ls(a) } => ps(g, a),
        C::Logs(a)
        | C::Container {
            command: S::Logs(a),
        } => logs(g, a),
        C::Top(a) | C::Container { command: S::Top(a) } => top(g, a),
        C::Exec(a)
        | C::Container {
            command: S::Exec(a),
        } => exec(g, a),
        C::Attach(a)
        | C::Container {
            command: S::Attach(a),
        } => attach(g, a),
        C::Wait(a)
        | C::Container {
            command: S::Wait(a),
        } => wait(g, a),
        C::Rename(a)
        | C::Container {
            command: S::Rename(a),
        } => {
            let e = engine(g)?;
            let rec = e.resolve(&a.container)?;
            e.rename(&rec, &a.new_name)?;
            Ok(0)
        }
        C::Port(a)
        | C::Container {
            command: S::Port(a),
        } => port(g, a),
        C::Pause(a)
        | C::Container {
            command: S::Pause(a),
        } => each(g, &a, |e, rec| e.pause(rec).map(|_| true)),
        C::Unpause(a)
        | C::Container {
            command: S::Unpause(a),
        } => each(g, &a, |e, rec| e.unpause(rec).map(|_| true)),
        C::Container {
            command: S::Inspect(a),
        } => inspect_containers(g, &a.c, a.format.as_deref(), a.size),
        C::Container {
            command: S::Prune(a),
        } => prune(g, a),
        C::Reap(a) => reap(g, a),
    }
}

/// Does `f` for each named container, printing the name as given (docker's echo) on
/// success and one error line per failure; 1 if any failed.
fn each(
    g: &Globals,
    a: &ContainersArg,
    f: impl Fn(&Engine, &ContainerRecord) -> Result<bool, EngineError>,
) -> Result<i32> {
    let e = engine(g)?;
    let mut code = 0;
    for name in &a.containers {
        match e.resolve(name).and_then(|rec| f(&e, &rec)) {
            Ok(print) => {
                if print {
                    println!("{name}");
                }
            }
            Err(err) => {
                eprintln!("Error: {err}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// `32m`, `1g`, `512k`, `1024` (bytes) → bytes, as docker reads them.
fn parse_bytes(s: &str) -> Result<i64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("invalid size: '{s}' (use a number with k, m, g or t)"))?;
    if n < 0.0 {
        bail!("invalid size: '{s}'");
    }
    Ok((n * mult as f64) as i64)
}

/// The environment from `--env-file`s then `-e`s: `KEY=VALUE`, or `KEY` alone to take this
/// process's value (dropped when unset, as docker does).
fn environment(files: &[PathBuf], env: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut add = |kv: &str, origin: &str| -> Result<()> {
        let key = kv.split('=').next().unwrap_or_default();
        if key.is_empty() || key.contains(char::is_whitespace) {
            bail!("invalid environment variable {kv:?} {origin}");
        }
        if kv.contains('=') {
            out.push(kv.to_string());
        } else if let Ok(v) = std::env::var(key) {
            out.push(format!("{key}={v}"));
        }
        Ok(())
    };
    for f in files {
        let file =
            std::fs::File::open(f).with_context(|| format!("open env file {}", f.display()))?;
        for line in std::io::BufReader::new(file).lines() {
            let line = line.with_context(|| format!("read env file {}", f.display()))?;
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            add(line, &format!("in {}", f.display()))?;
        }
    }
    for kv in env {
        add(kv, "given with -e")?;
    }
    Ok(out)
}

fn create_options(f: &CreateFlags) -> Result<CreateOptions> {
    let network = match f.network.as_str() {
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        "bridge" | "default" => NetworkMode::Bridge,
        other if other.starts_with("container:") => NetworkMode::Container,
        other => {
            bail!("network {other} not found (berth knows bridge, none, host and container:NAME)")
        }
    };
    let network_container = match f.network.strip_prefix("container:") {
        Some("") => bail!("--network container: needs a container's name or id"),
        Some(c) => c.to_string(),
        None => String::new(),
    };
    if network == NetworkMode::Container {
        let conflict = |what: &str| anyhow!("conflicting options: {what} and the network mode");
        if f.hostname.is_some() {
            return Err(conflict("hostname"));
        }
        if !f.publish.is_empty() || f.publish_all {
            return Err(conflict("port publishing"));
        }
        if !f.dns.is_empty() || !f.dns_search.is_empty() || !f.dns_option.is_empty() {
            return Err(conflict("dns"));
        }
        if !f.add_host.is_empty() {
            return Err(conflict("custom host-to-IP mapping"));
        }
    }
    let mut port_bindings = Vec::new();
    for p in &f.publish {
        port_bindings.extend(parse_publish(p)?);
    }
    let publishes = !port_bindings.is_empty() || f.publish_all;
    let dns = f
        .dns
        .iter()
        .map(|d| match d.parse::<std::net::IpAddr>() {
            Ok(ip) => Ok(ip.to_string()),
            Err(_) => Err(anyhow!("{d} is not an ip address (--dns)")),
        })
        .collect::<Result<Vec<_>>>()?;
    for v in f.dns_search.iter().chain(&f.dns_option) {
        if v.is_empty() || v.contains(char::is_whitespace) {
            bail!("invalid DNS search domain or option {v:?}");
        }
    }
    let extra_hosts = f
        .add_host
        .iter()
        .map(|h| parse_add_host(h))
        .collect::<Result<Vec<_>>>()?;
    match network {
        NetworkMode::Host if publishes => {
            eprintln!("WARNING: Published ports are discarded when using host network mode");
            port_bindings.clear();
        }
        NetworkMode::None if publishes => {
            bail!("ports cannot be published with --network none: use --network bridge")
        }
        _ => {}
    }
    let memory = f
        .memory
        .as_deref()
        .map(parse_bytes)
        .transpose()?
        .unwrap_or(0);
    if memory != 0 && memory < 6 << 20 {
        bail!("Minimum memory limit allowed is 6MB");
    }
    let memory_swap = match f.memory_swap.as_deref() {
        None => 0,
        Some("-1") => -1,
        Some(s) => {
            let v = parse_bytes(s)?;
            if memory == 0 {
                bail!("You should always set the Memory limit when using Memoryswap limit");
            }
            if v < memory {
                bail!("Minimum memoryswap limit should be larger than memory limit, see usage");
            }
            v
        }
    };
    let nano_cpus = match f.cpus {
        None => 0,
        Some(c) if c > 0.0 && c <= num_cpus() as f64 => (c * 1e9) as i64,
        Some(c) => bail!(
            "range of CPUs is from 0.01 to {}.00, as there are only {} CPUs available (asked for {c})",
            num_cpus(),
            num_cpus()
        ),
    };
    let pids_limit = match f.pids_limit {
        None | Some(-1) | Some(0) => 0,
        Some(n) if n > 0 => n,
        Some(n) => bail!("invalid --pids-limit {n}"),
    };
    if !matches!(f.pull.as_str(), "missing" | "always" | "never") {
        bail!(
            "invalid pull option: '{}': must be one of \"always\", \"missing\" or \"never\"",
            f.pull
        );
    }
    let cgroup_parent = f.cgroup_parent.clone().unwrap_or_default();
    if cgroup_parent.split('/').any(|c| c == ".." || c == ".")
        || cgroup_parent.contains(char::is_whitespace)
    {
        bail!(
            "invalid --cgroup-parent {cgroup_parent:?}: a cgroup path without . or .. components"
        );
    }
    let mut labels = Vec::new();
    for l in &f.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!("invalid label {l:?}");
        }
        labels.push((k.to_string(), v.to_string()));
    }
    Ok(CreateOptions {
        name: f.name.clone(),
        cmd: f.command.clone(),
        entrypoint: f.entrypoint.clone(),
        env: environment(&f.env_file, &f.env)?,
        workdir: f.workdir.clone(),
        user: f.user.clone(),
        hostname: f.hostname.clone(),
        volumes: f.volume.clone(),
        tty: f.tty,
        open_stdin: f.interactive,
        labels,
        host: HostConfig {
            binds: vec![],
            network,
            auto_remove: f.rm,
            memory,
            memory_swap,
            nano_cpus,
            pids_limit,
            readonly_rootfs: f.read_only,
            cgroup_parent,
            port_bindings,
            publish_all: f.publish_all && network == NetworkMode::Bridge,
            dns,
            dns_search: f.dns_search.clone(),
            dns_options: f.dns_option.clone(),
            extra_hosts,
            network_container,
            ..HostConfig::default()
        },
    })
}

/// `--add-host NAME:IP` (or `NAME=IP`): `NAME:IP` with `host-gateway` resolved to the
/// bridge's gateway, as docker resolves it to its bridge's.
fn parse_add_host(arg: &str) -> Result<String> {
    let bad = |why: &str| anyhow!("invalid argument {arg:?} for \"--add-host\" flag: {why}");
    let (name, ip) = arg
        .split_once('=')
        .or_else(|| arg.split_once(':'))
        .ok_or_else(|| bad("expected HOST:IP"))?;
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
    if !valid_name {
        return Err(bad("invalid host name"));
    }
    let ip = match ip.trim_start_matches('[').trim_end_matches(']') {
        "host-gateway" => configured_bridge()?.gateway.to_string(),
        other => other
            .parse::<std::net::IpAddr>()
            .map_err(|_| bad(&format!("{other:?} is not an IP address")))?
            .to_string(),
    };
    Ok(format!("{name}:{ip}"))
}

/// One `-p`: `[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`, ports or ranges (`8000-8009:80-89`).
fn parse_publish(arg: &str) -> Result<Vec<PortBinding>> {
    let bad = |why: &str| anyhow::anyhow!("invalid publish {arg:?}: {why}");
    let (spec, protocol) = match arg.rsplit_once('/') {
        Some((s, p @ ("tcp" | "udp"))) => (s, p),
        Some((_, p)) => return Err(bad(&format!("unknown protocol {p:?} (tcp or udp)"))),
        None => (arg, "tcp"),
    };
    if spec.starts_with('[') {
        return Err(bad("IPv6 host addresses are not supported"));
    }
    let parts: Vec<&str> = spec.split(':').collect();
    let (host_ip, host, container) = match parts[..] {
        [c] => ("", "", c),
        [h, c] => ("", h, c),
        [ip, h, c] => (ip, h, c),
        _ => return Err(bad("expected [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]")),
    };
    if !host_ip.is_empty() && host_ip.parse::<std::net::Ipv4Addr>().is_err() {
        return Err(bad(&format!("{host_ip:?} is not an IPv4 address")));
    }
    let range = |s: &str, zero_ok: bool| -> Result<(u16, u16)> {
        let (a, b) = s.split_once('-').unwrap_or((s, s));
        let port = |p: &str| match p.parse::<u16>() {
            Ok(0) if !zero_ok => Err(bad("port 0")),
            Ok(n) => Ok(n),
            Err(_) => Err(bad(&format!("{p:?} is not a port number"))),
        };
        let (a, b) = (port(a)?, port(b)?);
        if b < a {
            return Err(bad(&format!("the range {s} ends before it starts")));
        }
        Ok((a, b))
    };
    let (c0, c1) = range(container, false)?;
    let hosts: Vec<u16> = if host.is_empty() {
        vec![0; usize::from(c1 - c0) + 1]
    } else {
        let (h0, h1) = range(host, true)?;
        if h1 - h0 != c1 - c0 {
            return Err(bad("the host and container ranges differ in length"));
        }
        (h0..=h1).collect()
    };
    Ok((c0..=c1)
        .zip(hosts)
        .map(|(c, h)| PortBinding {
            protocol: protocol.to_string(),
            container_port: c,
            host_ip: host_ip.to_string(),
            host_port: h,
        })
        .collect())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The image to run: from the store, pulled when missing (or always, with `--pull always`).
/// With `--platform`, a local image of another platform counts as missing, and the image must
/// be of that platform in the end (docker's rule).
fn find_image(e: &Engine, f: &CreateFlags) -> Result<ImageRecord> {
    let wanted: Option<Platform> = f.platform.as_deref().map(str::parse).transpose()?;
    let platform_of = |i: &ImageRecord| -> Result<Platform> {
        let config = e.images().config_sync(i)?;
        let field = |k: &str| config.get(k).and_then(|v| v.as_str()).map(str::to_string);
        Ok(Platform {
            os: field("os").unwrap_or_default(),
            architecture: field("architecture").unwrap_or_default(),
            variant: field("variant"),
        })
    };
    let fits = |i: &ImageRecord| -> Result<bool> {
        match &wanted {
            None => Ok(true),
            Some(w) => Ok(w.matches(&platform_of(i)?)),
        }
    };
    let pull = |announce| pull_missing(e.images(), &f.image, &f.platform, f.quiet, announce);
    let local = e.images().resolve(&f.image);
    let image = match (f.pull.as_str(), local) {
        ("always", _) => pull(false)?,
        (_, Ok(i)) if fits(&i)? => return Ok(i),
        ("never", Ok(i)) => i,
        (_, Ok(_)) => pull(true)?,
        ("never", Err(err)) => return Err(err.into()),
        (_, Err(berth_client::images::ImageError::NotFound(_))) => pull(true)?,
        (_, Err(err)) => return Err(err.into()),
    };
    if let Some(w) = &wanted {
        let actual = platform_of(&image)?;
        if !w.matches(&actual) {
            bail!(
                "image with reference {} was found but does not match the specified platform: \
                 wanted {w}, actual: {actual}",
                f.image
            );
        }
    }
    Ok(image)
}

/// `create` and the first half of `run`: the container's record, nothing running yet.
fn create_record(e: &Engine, f: &CreateFlags) -> Result<ContainerRecord> {
    let opts = create_options(f)?;
    let image = find_image(e, f)?;
    let config = e.images().config_sync(&image)?;
    Ok(e.create(&image, &f.image, &config, opts)?)
}

/// An engine failure as docker's CLI prints it, with docker's exit code.
fn fail(err: &anyhow::Error) -> i32 {
    eprintln!("berth: {}", super::one_line(err));
    if let Some(e) = err.downcast_ref::<EngineError>() {
        return e.exit_code();
    }
    match err.downcast_ref::<berth_runtime::Error>() {
        Some(e) => e.exit_code(),
        None => ENGINE_FAILURE,
    }
}

fn create(g: &Globals, a: CreateArgs) -> Result<i32> {
    let e = engine(g)?;
    match create_record(&e, &a.flags) {
        Ok(rec) => {
            println!("{}", rec.id);
            Ok(0)
        }
        Err(err) => Ok(fail(&err)),
    }
}

fn run_container(g: &Globals, a: RunArgs) -> Result<i32> {
    let e = match engine(g) {
        Ok(e) => e,
        Err(err) => return Ok(fail(&err)),
    };
    let detach_keys = match term::parse_detach_keys(&a.detach_keys) {
        Ok(k) => k,
        Err(err) => return Ok(fail(&err)),
    };
    let mut rec = match create_record(&e, &a.flags) {
        Ok(r) => r,
        Err(err) => return Ok(fail(&err)),
    };
    // After the run: --rm removes the container; otherwise it gives back its ports.
    let remove = |e: &Engine, rec: &ContainerRecord| {
        if rec.host.auto_remove {
            if let Err(err) = e.remove(rec, true, true) {
                eprintln!("berth: removing container {}: {err}", rec.short_id());
            }
        } else {
            e.disconnect(rec);
        }
    };
    if a.detach {
        if let Err(err) = e.start(&mut rec) {
            remove(&e, &rec);
            return Ok(fail(&err.into()));
        }
        if needs_reaper(&rec) {
            spawn_reaper(&e, &rec)?;
        }
        println!("{}", rec.id);
        return Ok(0);
    }
    let code = match attached_run(&e, &mut rec, a.flags.interactive, a.sig_proxy, detach_keys) {
        Ok(Outcome::Exited(exit)) => exit.code,
        Ok(Outcome::Detached) => {
            if needs_reaper(&rec) {
                spawn_reaper(&e, &rec)?;
            }
            return Ok(0);
        }
        Err(err) => fail(&err),
    };
    remove(&e, &rec);
    Ok(code)
}

/// Prepares, attaches and starts a container, then stays with it until it exits or the
/// user detaches.
fn attached_run(
    e: &Engine,
    rec: &mut ContainerRecord,
    stdin: bool,
    sig_proxy: bool,
    detach_keys: Vec<u8>,
) -> Result<Outcome> {
    let c = e.prepare(rec)?;
    let attach = c.attach(berth_client::engine::attach_options(stdin))?;
    let session = Session {
        stdin,
        tty: rec.config.tty,
        sig_proxy,
        detach_keys,
    };
    let killer = c.clone();
    let res = term::attach(attach, session, true, move |sig| {
        let _ = killer.kill(sig);
    });
    if res.is_err() {
        // A command that could not run: the monitor records the exit (126/127) next, so
        // that `inspect` right after says so.
        let _ = c.wait_timeout(Some(Duration::from_secs(5)));
    }
    res
}

/// Whether a started container needs someone to act when it exits: a `--rm` one is
/// removed, one with published ports gives them back (docker's daemon does both).
fn needs_reaper(rec: &ContainerRecord) -> bool {
    rec.host.auto_remove
        || (rec.host.network == NetworkMode::Bridge && !rec.host.port_bindings.is_empty())
}

/// `run -d --rm`, and containers with published ports: a process of our own waits for the
/// exit and removes the container, or unplugs it from the bridge, as docker's daemon would.
fn spawn_reaper(e: &Engine, rec: &ContainerRecord) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().context("find the berth executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__reap")
        .arg("--root")
        .arg(e.root())
        .arg(&rec.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: setsid is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn().context("start the --rm reaper")?;
    Ok(())
}

fn reap(g: &Globals, a: ContainersArg) -> Result<i32> {
    let e = engine(g)?;
    for name in &a.containers {
        if let Ok(rec) = e.resolve(name) {
            if let Some(c) = e.runtime(&rec) {
                let _ = c.wait();
            }
            // Removed meanwhile by someone else, or restarted: leave it.
            if let Ok(rec) = e.resolve(&rec.id) {
                match e.state(&rec).status {
                    Status::Exited if rec.host.auto_remove => e.remove(&rec, false, true)?,
                    Status::Exited => e.disconnect(&rec),
                    _ => {}
                }
            }
        }
    }
    Ok(0)
}

fn start(g: &Globals, a: StartArgs) -> Result<i32> {
    let e = engine(g)?;
    if a.attach || a.interactive {
        if a.c.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let keys = term::parse_detach_keys(&a.detach_keys)?;
        let mut rec = e.resolve(&a.c.containers[0])?;
        let stdin = a.interactive && rec.config.open_stdin;
        return match attached_run(&e, &mut rec, stdin, true, keys) {
            Ok(Outcome::Exited(exit)) => {
                if rec.host.auto_remove {
                    e.remove(&rec, true, true)?;
                } else {
                    e.disconnect(&rec);
                }
                Ok(exit.code)
            }
            Ok(Outcome::Detached) => {
                if needs_reaper(&rec) {
                    spawn_reaper(&e, &rec)?;
                }
                Ok(0)
            }
            Err(err) => Ok(fail(&err)),
        };
    }
    each(g, &a.c, |e, rec| {
        let mut rec = rec.clone();
        match e.state(&rec).status {
            // docker: starting a running container is not an error.
            Status::Running | Status::Paused => Ok(true),
            _ => {
                e.start(&mut rec)?;
                if needs_reaper(&rec) {
                    spawn_reaper(e, &rec).map_err(|err| EngineError::Invalid(err.to_string()))?;
                }
                Ok(true)
            }
        }
    })
}

fn stop(g: &Globals, a: StopArgs, restart: bool) -> Result<i32> {
    let timeout = Duration::from_secs(a.time);
    let signal = a
        .signal
        .as_deref()
        .map(berth_runtime::parse_signal)
        .transpose()?;
    each(g, &a.c, |e, rec| {
        let mut rec = rec.clone();
        if let Some(sig) = signal {
            rec.config.stop_signal = Some(sig.to_string());
        }
        e.stop(&rec, timeout)?;
        if restart {
            let mut rec = e.resolve(&rec.id)?;
            e.start(&mut rec)?;
        }
        Ok(true)
    })
}

fn kill(g: &Globals, a: KillArgs) -> Result<i32> {
    let signal = berth_runtime::parse_signal(&a.signal)?;
    each(g, &a.c, |e, rec| e.kill(rec, signal).map(|_| true))
}

fn rm(g: &Globals, a: RmArgs) -> Result<i32> {
    each(g, &a.c, |e, rec| {
        e.remove(rec, a.force, a.volumes).map(|_| true)
    })
}

fn wait(g: &Globals, a: ContainersArg) -> Result<i32> {
    let e = engine(g)?;
    let mut code = 0;
    for name in &a.containers {
        match e.resolve(name).and_then(|rec| e.wait(&rec)) {
            Ok(c) => println!("{c}"),
            Err(err) => {
                eprintln!("Error: {err}");
                code = 1;
            }
        }
    }
    Ok(code)
}

/// docker's `ellipsis`: at most `n` characters, the last one `…` when cut.
fn ellipsis(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        return s.to_string();
    }
    let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// Go's `strconv.Quote` for what a command line holds.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn status_text(st: &berth_client::engine::ContainerState) -> String {
    let since = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map(|t| human_duration(Utc::now().signed_duration_since(t)))
            .unwrap_or_default()
    };
    match st.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", since(&st.started_at)),
        Status::Paused => format!("Up {} (Paused)", since(&st.started_at)),
        Status::Exited => format!("Exited ({}) {} ago", st.exit_code, since(&st.finished_at)),
        Status::Dead => "Dead".into(),
    }
}

/// One container as `ps` and its templates see it.
/// `port`: `80/tcp -> 0.0.0.0:8080` per published port, or the host side of one.
fn port(g: &Globals, a: PortArgs) -> Result<i32> {
    let e = engine(g)?;
    let rec = e.resolve(&a.container)?;
    let ports = e
        .network_state(&rec, e.state(&rec).status)
        .map(|n| n.ports)
        .unwrap_or_default();
    let wanted = match &a.port {
        None => None,
        Some(p) => {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let port: u16 = port
                .parse()
                .map_err(|_| anyhow!("invalid port {p:?}: PORT[/tcp|udp]"))?;
            Some(format!("{port}/{proto}"))
        }
    };
    let mut found = false;
    for p in &ports {
        let host = format!(
            "{}:{}",
            if p.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                p.host_ip.as_str()
            },
            p.host_port
        );
        match &wanted {
            None => println!("{} -> {host}", p.key()),
            Some(w) if *w == p.key() => println!("{host}"),
            Some(_) => continue,
        }
        found = true;
    }
    if let (Some(w), false) = (&wanted, found) {
        bail!("No public port '{w}' published for {}", a.container);
    }
    Ok(0)
}

/// docker's PORTS column: `0.0.0.0:8080->80/tcp, 0.0.0.0:32768->53/udp`.
fn ports_column(net: &Option<NetworkState>) -> String {
    net.iter()
        .flat_map(|n| &n.ports)
        .map(|p| {
            let ip = if p.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                p.host_ip.as_str()
            };
            format!("{ip}:{}->{}", p.host_port, p.key())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// docker's `{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]}`; `host_port` 0 is
/// written empty, as docker writes a binding whose host port is chosen at start.
fn ports_map(ports: &[PortBinding]) -> Value {
    let mut m: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for p in ports {
        let host_port = if p.host_port == 0 {
            String::new()
        } else {
            p.host_port.to_string()
        };
        m.entry(p.key())
            .or_default()
            .push(json!({ "HostIp": p.host_ip, "HostPort": host_port }));
    }
    json!(m)
}

fn ps_row(
    e: &Engine,
    rec: &ContainerRecord,
    st: &berth_client::engine::ContainerState,
    no_trunc: bool,
    size: bool,
) -> Value {
    let command = rec.config.argv().join(" ");
    let command = if no_trunc {
        command
    } else {
        ellipsis(&command, 20)
    };
    let labels: Vec<String> = rec
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let mounts: Vec<String> = rec
        .mounts
        .iter()
        .map(|m| {
            m.name
                .clone()
                .unwrap_or_else(|| m.source.display().to_string())
        })
        .collect();
    let size = if size {
        human_size(e.size_rw(rec))
    } else {
        String::new()
    };
    json!({
        "ID": if no_trunc { rec.id.clone() } else { rec.short_id().to_string() },
        "Image": rec.image,
        "Command": go_quote(&command),
        "CreatedAt": created_at(&rec.created),
        "RunningFor": human_ago(Some(&rec.created)),
        "Ports": ports_column(&e.network_state(rec, st.status)),
        "State": st.status.as_str(),
        "Status": status_text(st),
        "Size": size,
        "Names": rec.name,
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
        "Networks": rec.host.network.as_str(),
        "LocalVolumes": rec.mounts.iter().filter(|m| m.kind == "volume").count().to_string(),
    })
}

/// docker's CreatedAt: `2024-01-02 03:04:05 +0000 UTC`.
fn created_at(t: &str) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|t| {
            t.with_timezone(&Utc)
                .format("%Y-%m-%d %H:%M:%S +0000 UTC")
                .to_string()
        })
        .unwrap_or_default()
}

/// `ps -f` filters: the same key ORs, different keys AND.
fn ps_filter(filters: &[String]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| anyhow!("bad format of filter (expected name=value): {f}"))?;
        match k {
            "status" => {
                if ![
                    "created",
                    "restarting",
                    "running",
                    "removing",
                    "paused",
                    "exited",
                    "dead",
                ]
                .contains(&v)
                {
                    bail!("invalid filter 'status={v}'");
                }
            }
            "name" | "id" | "ancestor" | "label" | "exited" => {}
            other => bail!("invalid filter '{other}'"),
        }
        m.entry(k.to_string()).or_default().push(v.to_string());
    }
    Ok(m)
}

fn matches(
    e: &Engine,
    rec: &ContainerRecord,
    st: &berth_client::engine::ContainerState,
    filters: &BTreeMap<String, Vec<String>>,
) -> bool {
    filters.iter().all(|(k, vs)| {
        vs.iter().any(|v| match k.as_str() {
            "status" => st.status.as_str() == v,
            "name" => rec.name.contains(v.trim_start_matches('/')),
            "id" => rec.id.starts_with(v.as_str()),
            "exited" => st.status == Status::Exited && v.parse() == Ok(st.exit_code),
            "label" => match v.split_once('=') {
                Some((k, val)) => rec.config.labels.get(k).is_some_and(|x| x == val),
                None => rec.config.labels.contains_key(v.as_str()),
            },
            "ancestor" => {
                rec.image == *v
                    || rec.image_id.as_str() == v
                    || rec.image_id.hex().starts_with(v.as_str())
                    || e.images().resolve(v).is_ok_and(|i| i.id == rec.image_id)
            }
            _ => false,
        })
    })
}

fn ps(g: &Globals, a: PsArgs) -> Result<i32> {
    let e = engine(g)?;
    let filters = ps_filter(&a.filter)?;
    let mut shown = Vec::new();
    let limit = if a.latest { 1 } else { a.last };
    let all =
        a.all || limit > 0 || filters.contains_key("status") || filters.contains_key("exited");
    for rec in e.list()? {
        let st = e.state(&rec);
        if !all && !matches!(st.status, Status::Running | Status::Paused) {
            continue;
        }
        if !matches(&e, &rec, &st, &filters) {
            continue;
        }
        // The state is read once per container: `ps` over many containers is a hot path.
        shown.push((rec, st));
    }
    if limit > 0 {
        shown.truncate(limit as usize);
    }
    if a.quiet && a.format.is_none() {
        let mut out = std::io::stdout().lock();
        for (rec, _) in &shown {
            writeln!(out, "{}", if a.no_trunc { &rec.id } else { rec.short_id() })?;
        }
        return Ok(0);
    }
    let rows: Vec<Value> = shown
        .iter()
        .map(|(r, st)| ps_row(&e, r, st, a.no_trunc, a.size))
        .collect();
    let default = if a.size {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}\t{{.Size}}"
    } else {
        "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
    };
    let format = match a.format.as_deref() {
        None | Some("") | Some("table") => default.to_string(),
        Some("json") => "{{json .}}".to_string(),
        Some(f) => f.to_string(),
    };
    let headers = json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Ports": "PORTS", "State": "STATE", "Status": "STATUS",
        "Size": "SIZE", "Names": "NAMES", "Labels": "LABELS", "Mounts": "MOUNTS",
        "Networks": "NETWORKS", "LocalVolumes": "LOCAL VOLUMES",
    });
    print_formatted(&format, &headers, &rows)
}

/// `--since`/`--until`: RFC 3339, a Unix time (`1700000000[.123]`), or a duration before
/// now (`10m`, `1h30m`, `45s`).
fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(secs) = s.parse::<f64>() {
        let nanos = (secs.fract() * 1e9) as u32;
        return DateTime::from_timestamp(secs.trunc() as i64, nanos)
            .ok_or_else(|| anyhow!("invalid time {s:?}"));
    }
    let mut total = 0f64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let n: f64 = num.parse().map_err(|_| anyhow!("invalid time {s:?}"))?;
        total += n * match c {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => bail!("invalid time {s:?}: use RFC 3339, a Unix time, or a duration like 10m"),
        };
        num.clear();
    }
    if !num.is_empty() || s.is_empty() {
        bail!("invalid time {s:?}: use RFC 3339, a Unix time, or a duration like 10m");
    }
    Ok(Utc::now() - chrono::Duration::milliseconds((total * 1000.0) as i64))
}

fn logs(g: &Globals, a: LogsArgs) -> Result<i32> {
    let e = engine(g)?;
    let rec = e.resolve(&a.container)?;
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(
            n.parse::<usize>()
                .map_err(|_| anyhow!("invalid --tail {n:?}: a number of lines or \"all\""))?,
        ),
    };
    let opts = LogOptions {
        tail,
        since: a.since.as_deref().map(parse_time).transpose()?,
        until: a.until.as_deref().map(parse_time).transpose()?,
    };
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    let running = || {
        e.resolve(&rec.id).is_ok_and(|r| {
            matches!(
                e.state(&r).status,
                Status::Running | Status::Paused | Status::Created
            ) && e.runtime(&r).is_some()
        })
    };
    let follow: Option<&dyn Fn() -> bool> = if a.follow { Some(&running) } else { None };
    read_logs(&e.log_path(&rec.id), &opts, follow, &mut |l| {
        let mut line = Vec::new();
        if a.timestamps {
            line.extend_from_slice(l.time.as_bytes());
            line.push(b' ');
        }
        line.extend_from_slice(&l.data);
        if l.stream == 2 {
            stderr.write_all(&line).is_ok()
        } else {
            stdout.write_all(&line).and_then(|_| stdout.flush()).is_ok()
        }
    })?;
    Ok(0)
}

fn top(g: &Globals, a: TopArgs) -> Result<i32> {
    let e = engine(g)?;
    let rec = e.resolve(&a.container)?;
    let pids = e.processes(&rec)?;
    let args = if a.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        a.ps_args.clone()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(pid_col) = header.split_whitespace().position(|h| h == "PID") else {
        bail!("ps {}: no PID column in its output", args.join(" "));
    };
    let mut rows = vec![header.split_whitespace().collect::<Vec<_>>().join("\t")];
    let ncols = header.split_whitespace().count();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let Some(pid) = fields.get(pid_col).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pids.contains(&pid) {
            // The last column (the command) may hold spaces.
            let mut cols: Vec<String> = fields[..(ncols - 1).min(fields.len())]
                .iter()
                .map(|s| s.to_string())
                .collect();
            if fields.len() >= ncols {
                cols.push(fields[ncols - 1..].join(" "));
            }
            rows.push(cols.join("\t"));
        }
    }
    print!("{}", super::images::tabulate_rows(&rows));
    Ok(0)
}

fn exec(g: &Globals, a: ExecArgs) -> Result<i32> {
    let e = engine(g)?;
    let rec = match e.resolve(&a.container) {
        Ok(r) => r,
        Err(err) => {
            eprintln!("Error: {err}");
            return Ok(1);
        }
    };
    let opts = ExecOptions {
        cmd: a.command.clone(),
        env: environment(&a.env_file, &a.env)?,
        workdir: a.workdir.clone(),
        user: a.user.clone(),
        tty: a.tty && !a.detach,
    };
    let stdio = if a.detach {
        ExecStdio::Null
    } else if a.tty || a.interactive {
        ExecStdio::Inherit
    } else {
        let null = std::fs::File::open("/dev/null")?;
        ExecStdio::Fds {
            stdin: null.into(),
            stdout: std::io::stdout().as_fd().try_clone_to_owned()?,
            stderr: std::io::stderr().as_fd().try_clone_to_owned()?,
        }
    };
    let mut p = match e.exec(&rec, &opts, stdio) {
        Ok(p) => p,
        Err(err) => {
            let code = err.exit_code();
            eprintln!("berth: {err}");
            return Ok(if code == ENGINE_FAILURE { 1 } else { code });
        }
    };
    if a.detach {
        return Ok(0);
    }
    if let Some(pty) = p.take_pty() {
        let pump = std::thread::spawn(move || term::pump_pty(pty, a.interactive));
        let exit = p.wait()?;
        // The output pump ends when the process's pty closes (its stdin reader is detached).
        let _ = pump.join();
        return Ok(exit.code);
    }
    Ok(p.wait()?.code)
}

fn attach(g: &Globals, a: AttachArgs) -> Result<i32> {
    let e = engine(g)?;
    let rec = e.resolve(&a.container)?;
    let st = e.state(&rec);
    if st.status == Status::Paused {
        bail!("You cannot attach to a paused container, unpause it first");
    }
    let Some(c) = e.runtime(&rec).filter(|_| st.status == Status::Running) else {
        bail!("You cannot attach to a stopped container, start it first");
    };
    let stdin = !a.no_stdin && rec.config.open_stdin;
    let attach = c.attach(berth_client::engine::attach_options(stdin))?;
    let session = Session {
        stdin,
        tty: rec.config.tty,
        sig_proxy: a.sig_proxy,
        detach_keys: term::parse_detach_keys(&a.detach_keys)?,
    };
    let killer = c.clone();
    match term::attach(attach, session, false, move |sig| {
        let _ = killer.kill(sig);
    })? {
        Outcome::Exited(exit) => {
            if rec.host.auto_remove {
                e.remove(&rec, true, true)?;
            }
            Ok(exit.code)
        }
        Outcome::Detached => Ok(0),
    }
}

fn prune(g: &Globals, a: PruneArgs) -> Result<i32> {
    let e = engine(g)?;
    if !a.force {
        print!("WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] ");
        std::io::stdout().flush()?;
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(0);
        }
    }
    let mut deleted = Vec::new();
    let mut reclaimed = 0;
    for rec in e.list()? {
        if matches!(
            e.state(&rec).status,
            Status::Exited | Status::Created | Status::Dead
        ) {
            let size = e.size_rw(&rec);
            e.remove(&rec, false, false)?;
            reclaimed += size;
            deleted.push(rec.id);
        }
    }
    if !deleted.is_empty() {
        println!("Deleted Containers:");
        for id in &deleted {
            println!("{id}");
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(reclaimed));
    Ok(0)
}

/// docker's container JSON for `inspect`.
pub fn inspect_value(e: &Engine, rec: &ContainerRecord, size: bool) -> Value {
    let st = e.state(rec);
    let dir = e.dir(&rec.id);
    let argv = rec.config.argv();
    let zero = "0001-01-01T00:00:00Z".to_string();
    let lower: Vec<String> = rec
        .layers
        .iter()
        .rev()
        .map(|c| e.images().snapshot_dir(c).display().to_string())
        .collect();
    let mounts: Vec<Value> = rec
        .mounts
        .iter()
        .map(|m| {
            let mode = [m.read_only.then_some("ro"), m.no_copy.then_some("nocopy")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(",");
            let mut v = json!({
                "Type": m.kind,
                "Source": m.source,
                "Destination": m.destination,
                "Mode": mode,
                "RW": !m.read_only,
                "Propagation": if m.kind == "bind" { "rprivate" } else { "" },
            });
            if let Some(n) = &m.name {
                v["Name"] = json!(n);
                v["Driver"] = json!("local");
            }
            v
        })
        .collect();
    let env_map: BTreeMap<String, Value> = rec
        .config
        .volumes
        .iter()
        .map(|v| (v.clone(), json!({})))
        .collect();
    let mut v = json!({
        "Id": rec.id,
        "Created": rec.created,
        "Path": argv.first().cloned().unwrap_or_default(),
        "Args": argv.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": st.status.as_str(),
            "Running": matches!(st.status, Status::Running | Status::Paused),
            "Paused": st.status == Status::Paused,
            "Restarting": false,
            "OOMKilled": st.oom_killed,
            "Dead": st.status == Status::Dead,
            "Pid": st.pid.unwrap_or(0),
            "ExitCode": st.exit_code,
            "Error": st.error.clone().unwrap_or_default(),
            "StartedAt": st.started_at.clone().unwrap_or(zero.clone()),
            "FinishedAt": st.finished_at.clone().unwrap_or(zero),
        },
        "Image": rec.image_id.as_str(),
        "ResolvConfPath": dir.join("resolv.conf"),
        "HostnamePath": dir.join("hostname"),
        "HostsPath": dir.join("hosts"),
        "LogPath": e.log_path(&rec.id),
        "Name": format!("/{}", rec.name),
        "RestartCount": rec.restart_count,
        "Driver": "overlay",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": null,
        "HostConfig": {
            "Binds": if rec.host.binds.is_empty() { Value::Null } else { json!(rec.host.binds) },
            "LogConfig": { "Type": "json-file", "Config": {} },
            "NetworkMode": rec.host.network_mode(),
            "PortBindings": ports_map(&rec.host.port_bindings),
            "PublishAllPorts": rec.host.publish_all,
            "Dns": rec.host.dns,
            "DnsSearch": rec.host.dns_search,
            "DnsOptions": rec.host.dns_options,
            "ExtraHosts": if rec.host.extra_hosts.is_empty() { Value::Null } else { json!(rec.host.extra_hosts) },
            "RestartPolicy": { "Name": "no", "MaximumRetryCount": 0 },
            "AutoRemove": rec.host.auto_remove,
            "ReadonlyRootfs": rec.host.readonly_rootfs,
            "Memory": rec.host.memory,
            "MemorySwap": match (rec.host.memory, rec.host.memory_swap) {
                (0, s) => s,
                (m, 0) => m * 2,
                (_, s) => s,
            },
            "NanoCpus": rec.host.nano_cpus,
            "PidsLimit": if rec.host.pids_limit > 0 { json!(rec.host.pids_limit) } else { Value::Null },
            "Privileged": false,
            "CgroupParent": rec.host.cgroup_parent,
            "MaskedPaths": berth_runtime::DEFAULT_MASKED_PATHS,
            "ReadonlyPaths": berth_runtime::DEFAULT_READONLY_PATHS,
        },
        "GraphDriver": {
            "Name": "overlay",
            "Data": {
                "LowerDir": lower.join(":"),
                "UpperDir": dir.join("upper"),
                "WorkDir": dir.join("work"),
                "MergedDir": dir.join("run/rootfs"),
            },
        },
        "Mounts": mounts,
        "Config": {
            "Hostname": berth_client::engine::hostname_of(rec),
            "Domainname": "",
            "User": rec.config.user,
            "AttachStdin": rec.config.open_stdin,
            "AttachStdout": true,
            "AttachStderr": true,
            "Tty": rec.config.tty,
            "OpenStdin": rec.config.open_stdin,
            "StdinOnce": rec.config.open_stdin,
            "Env": rec.config.env,
            "Cmd": if rec.config.cmd.is_empty() { Value::Null } else { json!(rec.config.cmd) },
            "Image": rec.image,
            "Volumes": if env_map.is_empty() { Value::Null } else { json!(env_map) },
            "WorkingDir": rec.config.working_dir,
            "Entrypoint": if rec.config.entrypoint.is_empty() { Value::Null } else { json!(rec.config.entrypoint) },
            "OnBuild": null,
            "Labels": rec.config.labels,
            "StopSignal": rec.config.stop_signal,
        },
        "NetworkSettings": network_settings(rec, &e.network_state(rec, st.status)),
    });
    if size {
        v["SizeRw"] = json!(e.size_rw(rec));
    }
    v
}

/// docker's NetworkSettings: the address and published ports while the container runs on
/// the bridge, empty otherwise.
fn network_settings(rec: &ContainerRecord, net: &Option<NetworkState>) -> Value {
    let endpoint = match net {
        Some(n) => json!({
            "IPAddress": n.ip_address,
            "IPPrefixLen": n.prefix,
            "Gateway": n.gateway,
            "MacAddress": n.mac_address,
        }),
        None => json!({ "IPAddress": "", "IPPrefixLen": 0, "Gateway": "", "MacAddress": "" }),
    };
    let mut v = endpoint.clone();
    v["Networks"] = json!({ rec.host.network.as_str(): endpoint });
    v["Ports"] = net.as_ref().map_or(json!({}), |n| ports_map(&n.ports));
    v
}

fn inspect_containers(
    g: &Globals,
    a: &ContainersArg,
    format: Option<&str>,
    size: bool,
) -> Result<i32> {
    let e = engine(g)?;
    let mut out = Vec::new();
    let mut code = 0;
    for name in &a.containers {
        match e.resolve(name) {
            Ok(rec) => out.push(inspect_value(&e, &rec, size)),
            Err(err) => {
                eprintln!("Error: {err}");
                code = 1;
            }
        }
    }
    super::images::print_inspect(&out, format)?;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_arguments() {
        let one = |a: &str| {
            parse_publish(a)
                .unwrap()
                .iter()
                .map(|p| format!("{}|{}|{}", p.host_ip, p.host_port, p.key()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(one("80"), "|0|80/tcp");
        assert_eq!(one("8080:80"), "|8080|80/tcp");
        assert_eq!(one("127.0.0.1::53/udp"), "127.0.0.1|0|53/udp");
        assert_eq!(one("10.0.0.1:81:80/tcp"), "10.0.0.1|81|80/tcp");
        assert_eq!(one("8000-8001:90-91"), "|8000|90/tcp |8001|91/tcp");
        assert_eq!(one("90-91"), "|0|90/tcp |0|91/tcp");
        for bad in [
            "",
            "0",
            "http",
            "80/sctp",
            "1:2:3:4",
            "[::1]:80:80",
            "x.y:80:80",
            "70000",
            "81-80",
            "8000-8002:80-81",
            "8080:80-81",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("32m").unwrap(), 32 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert_eq!(parse_bytes("64MB").unwrap(), 64 << 20);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("-1m").is_err());
    }

    #[test]
    fn command_column() {
        assert_eq!(
            go_quote(&ellipsis("sh -c 'while true; do sleep 1; done'", 20)),
            "\"sh -c 'while true; …\""
        );
        assert_eq!(go_quote("echo \"hi\""), "\"echo \\\"hi\\\"\"");
    }

    #[test]
    fn times() {
        let t = parse_time("2024-01-02T03:04:05Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-01-02T03:04:05+00:00");
        assert_eq!(parse_time("1700000000").unwrap().timestamp(), 1_700_000_000);
        let ago = Utc::now() - parse_time("1h30m").unwrap();
        assert!((ago.num_seconds() - 5400).abs() < 5);
        assert!(parse_time("10x").is_err());
        assert!(parse_time("").is_err());
    }

    #[test]
    fn env_files() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("env");
        std::fs::write(
            &f,
            "# comment\nA=1\n\nB=two words\nBERTH_SURELY_UNSET_VAR\n",
        )
        .unwrap();
        let env = environment(&[f], &["A=3".into(), "C=".into()]).unwrap();
        assert_eq!(env, vec!["A=1", "B=two words", "A=3", "C="]);
        assert!(environment(&[], &["=x".into()]).is_err());
        assert!(environment(&[dir.path().join("missing")], &[]).is_err());
    }
}
