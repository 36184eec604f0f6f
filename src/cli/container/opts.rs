//! The flags `run` and `create` share ([`CreateFlags`]) and their conversion into the
//! engine's [`CreateOptions`] ([`create_options`]): every check of a flag's value, in docker's
//! words, happens here, once. A new flag: a field in `CreateFlags` (in docker's order of
//! `docker run --help`, with its help line), and its reading in `create_options`. The
//! device, limit and kernel-setting flags are a group of their own (`resources`).

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use berth_client::dockerfile::instructions::parse_duration;
use berth_client::engine::{
    rootless, CreateOptions, EndpointConfig, Engine, Healthcheck, HostConfig, Lifecycle, LogConfig,
    NetworkMode, PortBinding, RestartPolicy,
};
use clap::Args;

use super::mount::parse_mount;
use super::resources::ResourceFlags;
use crate::cli::flags::parse_bytes;

// The flags `create` and `run` share. (A plain comment: clap would take a doc comment for the
// verb's about; see cli/mod.rs.)
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateFlags {
    /// Print usage
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    pub name: Option<String>,
    /// Automatically remove the container and its anonymous volumes when it exits
    #[arg(long)]
    pub rm: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Add Linux capabilities (a name with or without CAP_, or ALL)
    #[arg(long, value_name = "CAPABILITY")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities (a name with or without CAP_, or ALL)
    #[arg(long, value_name = "CAPABILITY")]
    pub cap_drop: Vec<String>,
    /// Give extended privileges to this container: every capability and host device, no
    /// seccomp filter, no masked paths
    #[arg(long)]
    pub privileged: bool,
    /// Security options: seccomp=unconfined|builtin|PROFILE.json, no-new-privileges[=true],
    /// systempaths=unconfined, apparmor=unconfined, label=disable
    #[arg(long, value_name = "OPTION")]
    pub security_opt: Vec<String>,
    /// Set environment variables (KEY=VALUE, or KEY to take it from here)
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long, value_name = "FILE")]
    pub env_file: Vec<PathBuf>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    pub user: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    pub hostname: Option<String>,
    /// Set custom DNS servers
    #[arg(long, value_name = "IP")]
    pub dns: Vec<String>,
    /// Set custom DNS search domains
    #[arg(long, value_name = "DOMAIN")]
    pub dns_search: Vec<String>,
    /// Set DNS options
    #[arg(long, value_name = "OPTION")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip; host-gateway is the bridge's gateway)
    #[arg(long, value_name = "HOST:IP")]
    pub add_host: Vec<String>,
    /// Bind mount a volume (HOST-DIR:CONTAINER-DIR[:ro], NAME:CONTAINER-DIR[:ro], or CONTAINER-DIR)
    #[arg(short, long = "volume", value_name = "VOLUME")]
    pub volume: Vec<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Memory limit (e.g. 32m, 1g)
    #[arg(short, long)]
    pub memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    pub cpus: Option<f64>,
    /// Tune container pids limit (-1 for unlimited)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    pub read_only: bool,
    /// Parent cgroup for the container's cgroup (default /berth)
    #[arg(long, value_name = "PATH")]
    pub cgroup_parent: Option<String>,
    /// Connect a container to a network: bridge (berth0, 10.89.0.0/16, the default), a
    /// network of `network create` (repeat for several: one interface each), none, host or
    /// container:NAME (another container's network). Long form: name=NET[,alias=A][,ip=IP]
    #[arg(long, alias = "net", value_name = "NETWORK")]
    pub network: Vec<String>,
    /// Add network-scoped alias for the container (on its first network)
    #[arg(long, value_name = "ALIAS")]
    pub network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104) on the container's first network
    #[arg(long)]
    pub ip: Option<String>,
    /// IPv6 address (e.g., 2001:db8::33) on the container's first network
    #[arg(long)]
    pub ip6: Option<String>,
    /// Publish a container's port(s) to the host: [IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]
    #[arg(short, long, value_name = "PORTS")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to free host ports
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Set meta data on a container
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Pull image before running: missing, always, never
    #[arg(long, default_value = "missing")]
    pub pull: String,
    /// Set platform if the image must be pulled (os/arch[/variant])
    #[arg(long)]
    pub platform: Option<String>,
    /// Suppress the pull output
    #[arg(short, long)]
    pub quiet: bool,
    /// Restart policy to apply when a container exits: no, always, unless-stopped,
    /// on-failure[:max-retries]
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// Command to run to check health (run with /bin/sh -c inside the container)
    #[arg(long, value_name = "STRING")]
    pub health_cmd: Option<String>,
    /// Time between running the check (ms|s|m|h) (default 30s)
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub health_interval: Option<String>,
    /// Maximum time to allow one check to run (ms|s|m|h) (default 30s)
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub health_timeout: Option<String>,
    /// Start period for the container to initialize before starting health-retries countdown
    /// (ms|s|m|h) (default 0s)
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub health_start_period: Option<String>,
    /// Consecutive failures needed to report unhealthy (default 3)
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub health_retries: Option<String>,
    /// Disable any container-specified HEALTHCHECK
    #[arg(long)]
    pub no_healthcheck: bool,
    /// Logging driver for the container: json-file (default), local or none
    #[arg(long, value_name = "STRING")]
    pub log_driver: Option<String>,
    /// Log driver options: max-size=SIZE, max-file=N, compress=true|false
    #[arg(long, value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
    /// Signal to stop the container (default: the image's STOPSIGNAL, else SIGTERM)
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container before it is killed (default 10; -1 waits
    /// forever)
    #[arg(long, value_name = "INT", allow_hyphen_values = true)]
    pub stop_timeout: Option<String>,
    /// Devices, limits and kernel settings (`--device`, `--ulimit`, `--sysctl`, …).
    #[command(flatten)]
    pub resources: ResourceFlags,
    /// Attach to STDIN, STDOUT or STDERR
    #[arg(short = 'a', long, value_name = "STREAM")]
    pub attach: Vec<String>,
    /// Write the container ID to the file (refused when the file exists)
    #[arg(long, value_name = "FILE")]
    pub cidfile: Option<PathBuf>,
    /// Attach a filesystem mount to the container:
    /// type=bind|volume|tmpfs,source=…,target=…[,readonly][,bind-propagation=…]
    /// [,bind-nonrecursive][,volume-nocopy][,tmpfs-size=…][,tmpfs-mode=…]
    #[arg(long, value_name = "MOUNT")]
    pub mount: Vec<String>,
    /// Mount volumes from the specified container(s): CONTAINER[:ro|rw]
    #[arg(long, value_name = "CONTAINER")]
    pub volumes_from: Vec<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    pub init: bool,
    /// Expose a port or a range of ports: PORT[-PORT][/PROTO] (shown by inspect; -P
    /// publishes it)
    #[arg(long, value_name = "PORT")]
    pub expose: Vec<String>,
    /// Container NIS domain name
    #[arg(long, value_name = "STRING")]
    pub domainname: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33) on its first network
    #[arg(long, value_name = "MAC")]
    pub mac_address: Option<String>,
    /// Add an annotation to the container (passed through to the OCI runtime): KEY=VALUE
    #[arg(long, value_name = "KEY=VALUE")]
    pub annotation: Vec<String>,
    /// PID namespace to use: host or container:NAME
    #[arg(long, value_name = "MODE")]
    pub pid: Option<String>,
    /// IPC mode to use: private (default), shareable, none, host or container:NAME (a
    /// shareable one)
    #[arg(long, value_name = "MODE")]
    pub ipc: Option<String>,
    /// UTS namespace to use: host
    #[arg(long, value_name = "MODE")]
    pub uts: Option<String>,
    /// User namespace to use: host (berth remaps no users, so the only mode)
    #[arg(long, value_name = "MODE")]
    pub userns: Option<String>,
    /// Time between running the check during the start period (ms|s|m|h) (default 5s)
    #[arg(long, value_name = "DURATION", allow_hyphen_values = true)]
    pub health_start_interval: Option<String>,
    /// Read in a line delimited file of labels (KEY=VALUE; # starts a comment)
    #[arg(long, value_name = "FILE")]
    pub label_file: Vec<PathBuf>,
    /// Cgroup namespace to use: private (the container's own, the default where the host
    /// has cgroup namespaces) or host
    #[arg(long, value_name = "MODE")]
    pub cgroupns: Option<String>,
    /// docker's flags berth refuses, each with the reason (hidden).
    #[command(flatten)]
    pub refused: super::refused::RefusedFlags,
    // New flags go above this line: the image and the command come last.
    /// The image to run, then the command and its arguments. One positional, so that
    /// parsing stops at the image as docker's does: everything after it belongs to the
    /// command (`run --entrypoint sh IMAGE -c 'echo hi'` gives `-c` to sh).
    #[arg(
        value_name = "IMAGE",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    argv: Vec<String>,
}

impl CreateFlags {
    /// The image to run (the first positional).
    pub fn image(&self) -> &str {
        &self.argv[0]
    }

    /// The command and its arguments: everything after the image, flags included.
    pub fn command(&self) -> &[String] {
        &self.argv[1..]
    }
}

/// The environment from `--env-file`s then `-e`s: `KEY=VALUE`, or `KEY` alone to take this
/// process's value (dropped when unset, as docker does).
pub fn environment(files: &[PathBuf], env: &[String]) -> Result<Vec<String>> {
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
        for line in file_lines(f, "env")? {
            add(&line, &format!("in {}", f.display()))?;
        }
    }
    for kv in env {
        add(kv, "given with -e")?;
    }
    Ok(out)
}

/// The lines of an `--env-file` or `--label-file` (`what`), as docker reads them: leading
/// blanks trimmed, blank lines and lines starting with `#` skipped.
fn file_lines(f: &std::path::Path, what: &str) -> Result<Vec<String>> {
    let file =
        std::fs::File::open(f).with_context(|| format!("open {what} file {}", f.display()))?;
    let mut out = vec![];
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("read {what} file {}", f.display()))?;
        let line = line.trim_start();
        if !line.is_empty() && !line.starts_with('#') {
            out.push(line.to_string());
        }
    }
    Ok(out)
}

/// The labels of `--label-file`s, one a line.
fn label_lines(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut out = vec![];
    for f in files {
        out.extend(file_lines(f, "label")?);
    }
    Ok(out)
}

/// The engine's options for the flags: every value checked, in docker's words.
pub fn create_options(e: &Engine, f: &CreateFlags) -> Result<CreateOptions> {
    let (network, network_container, networks) = networks(f)?;
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
        .map(|h| parse_add_host(h, e.bridge_gateway()))
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
    f.refused.check()?;
    let mut labels = Vec::new();
    for l in label_lines(&f.label_file)?.iter().chain(&f.label) {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        if k.is_empty() {
            bail!("invalid label {l:?}");
        }
        labels.push((k.to_string(), v.to_string()));
    }
    let cgroupns_mode = match f.cgroupns.as_deref() {
        None => String::new(),
        Some(m @ ("host" | "private")) => m.to_string(),
        Some(m) => bail!("--cgroupns: invalid CGROUP mode {m:?}: host or private"),
    };
    let attach = f
        .attach
        .iter()
        .map(|a| match a.to_ascii_lowercase().as_str() {
            s @ ("stdin" | "stdout" | "stderr") => Ok(s.to_string()),
            _ => Err(anyhow!(
                "invalid argument \"{a}\" for \"-a, --attach\" flag: valid streams are STDIN, \
                 STDOUT and STDERR"
            )),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut expose = vec![];
    for e in &f.expose {
        expose.extend(parse_expose(e)?);
    }
    let mac_address = f.mac_address.as_deref().map(parse_mac).transpose()?;
    let mut annotations = std::collections::BTreeMap::new();
    for a in &f.annotation {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                annotations.insert(k.to_string(), v.to_string());
            }
            _ => bail!("invalid argument \"{a}\" for \"--annotation\" flag: bad format, expected KEY=VALUE"),
        }
    }
    let mounts = f
        .mount
        .iter()
        .map(|m| parse_mount(m))
        .collect::<Result<Vec<_>>>()?;
    Ok(CreateOptions {
        domainname: f.domainname.clone(),
        expose,
        mac_address,
        attach,
        name: f.name.clone(),
        cmd: f.command().to_vec(),
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
            publish_all: f.publish_all
                && matches!(network, NetworkMode::Bridge | NetworkMode::Pasta),
            dns,
            dns_search: f.dns_search.clone(),
            dns_options: f.dns_option.clone(),
            extra_hosts,
            network_container,
            networks,
            privileged: f.privileged,
            cap_add: f.cap_add.clone(),
            cap_drop: f.cap_drop.clone(),
            security_opt: security_opts(&f.security_opt)?,
            resources: f.resources.resources()?,
            mounts,
            volumes_from: f.volumes_from.clone(),
            init: f.init,
            pid_mode: f.pid.clone().unwrap_or_default(),
            ipc_mode: f.ipc.clone().unwrap_or_default(),
            uts_mode: f.uts.clone().unwrap_or_default(),
            userns_mode: f.userns.clone().unwrap_or_default(),
            cgroupns_mode,
            annotations,
        },
    })
}

/// What the flags say about the container's life: `--restart`, `--health-*`, `--log-*`,
/// `--stop-*`, read and checked as docker's CLI does (its messages). What docker's daemon
/// checks (durations under 1 ms, log option values, the signal's name) the engine checks.
pub fn lifecycle(f: &CreateFlags) -> Result<Lifecycle> {
    let restart_policy = RestartPolicy::parse(&f.restart).map_err(|e| anyhow!(e))?;
    if f.rm && restart_policy != RestartPolicy::No {
        bail!("conflicting options: cannot specify both --restart and --rm");
    }
    let duration = |flag: &str, v: &Option<String>| -> Result<i64> {
        match v {
            None => Ok(0),
            Some(s) => parse_duration(s)
                .map_err(|e| anyhow!("invalid argument \"{s}\" for \"--{flag}\" flag: {e}")),
        }
    };
    let integer = |flag: &str, v: &Option<String>| -> Result<Option<i64>> {
        v.as_deref()
            .map(|s| {
                s.parse::<i64>().map_err(|_| {
                    anyhow!(
                        "invalid argument \"{s}\" for \"--{flag}\" flag: strconv.ParseInt: \
                         parsing \"{s}\": invalid syntax"
                    )
                })
            })
            .transpose()
    };
    let interval = duration("health-interval", &f.health_interval)?;
    let timeout = duration("health-timeout", &f.health_timeout)?;
    let start_period = duration("health-start-period", &f.health_start_period)?;
    let start_interval = duration("health-start-interval", &f.health_start_interval)?;
    let retries = integer("health-retries", &f.health_retries)?.unwrap_or(0);
    let stop_timeout = integer("stop-timeout", &f.stop_timeout)?;
    let have_health = f.health_cmd.as_deref().is_some_and(|c| !c.is_empty())
        || interval != 0
        || timeout != 0
        || start_period != 0
        || start_interval != 0
        || retries != 0;
    let healthcheck = if f.no_healthcheck {
        if have_health {
            bail!("--no-healthcheck conflicts with --health-* options");
        }
        Some(Healthcheck {
            test: vec!["NONE".into()],
            ..Default::default()
        })
    } else if have_health {
        for (flag, v) in [
            ("interval", interval),
            ("timeout", timeout),
            ("retries", retries),
            ("start-period", start_period),
            ("start-interval", start_interval),
        ] {
            if v < 0 {
                bail!("--health-{flag} cannot be negative");
            }
        }
        Some(Healthcheck {
            test: match f.health_cmd.as_deref() {
                Some(c) if !c.is_empty() => vec!["CMD-SHELL".into(), c.into()],
                _ => vec![],
            },
            interval,
            timeout,
            start_period,
            retries,
            start_interval,
        })
    } else {
        None
    };
    let mut options = std::collections::BTreeMap::new();
    for o in &f.log_opt {
        let (k, v) = o.split_once('=').unwrap_or((o, ""));
        options.insert(k.to_string(), v.to_string());
    }
    let driver = f.log_driver.clone().unwrap_or_else(|| "json-file".into());
    if driver == "none" && !options.is_empty() {
        bail!("invalid logging opts for driver none");
    }
    Ok(Lifecycle {
        restart_policy,
        log_config: LogConfig { driver, options },
        healthcheck,
        stop_signal: f.stop_signal.clone(),
        stop_timeout,
    })
}

/// `--network` (each), `--ip`, `--ip6` and `--network-alias`: the network mode, the container
/// whose network is joined (`container:NAME`), and the networks of a container with a
/// namespace of its own, in the order of its interfaces. `--ip`, `--ip6` and the aliases
/// belong to the first.
fn networks(f: &CreateFlags) -> Result<(NetworkMode, String, Vec<EndpointConfig>)> {
    let given: Vec<&str> = if f.network.is_empty() {
        // podman's default: the bridge needs root, pasta does not.
        vec![if rootless::active() {
            "pasta"
        } else {
            "bridge"
        }]
    } else {
        f.network.iter().map(String::as_str).collect()
    };
    let mut endpoints = vec![];
    for (i, g) in given.iter().enumerate() {
        let mut e = EndpointConfig::default();
        if g.contains('=') {
            // docker's long form: name=NET,alias=A,ip=IP,ip6=IP6.
            for field in g.split(',') {
                match field.split_once('=') {
                    Some(("name", v)) => e.network = v.to_string(),
                    Some(("alias", v)) => e.aliases.push(v.to_string()),
                    Some(("ip", v)) => e.ipv4_address = v.to_string(),
                    Some(("ip6", v)) => e.ipv6_address = v.to_string(),
                    _ => bail!(
                        "invalid --network field {field:?}: berth takes name=NET, alias=ALIAS, \
                         ip=IP and ip6=IP6"
                    ),
                }
            }
            if e.network.is_empty() {
                bail!("invalid --network {g:?}: name=NET is missing");
            }
        } else {
            e.network = g.to_string();
        }
        if i == 0 {
            e.aliases.extend(f.network_alias.iter().cloned());
            if let Some(ip) = &f.ip {
                if !e.ipv4_address.is_empty() {
                    bail!("conflicting options: --ip and ip= in --network");
                }
                e.ipv4_address = ip.clone();
            }
            if let Some(ip6) = &f.ip6 {
                if !e.ipv6_address.is_empty() {
                    bail!("conflicting options: --ip6 and ip6= in --network");
                }
                e.ipv6_address = ip6.clone();
            }
        }
        endpoints.push(e);
    }
    let own_mode = |n: &str| matches!(n, "none" | "host") || n.starts_with("container:");
    if endpoints.len() > 1 && endpoints.iter().any(|e| own_mode(&e.network)) {
        bail!(
            "conflicting options: cannot attach both user-defined and non-user-defined \
             network-modes"
        );
    }
    let first = endpoints[0].network.clone();
    let mode = match first.as_str() {
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        c if c.starts_with("container:") => NetworkMode::Container,
        "pasta" if rootless::active() => NetworkMode::Pasta,
        "pasta" => bail!("--network pasta is rootless berth's network: as root, use bridge"),
        _ => NetworkMode::Bridge,
    };
    if mode != NetworkMode::Bridge {
        let e = &endpoints[0];
        if !e.aliases.is_empty() {
            bail!("network-scoped aliases are only supported for user-defined networks");
        }
        if !e.ipv4_address.is_empty() || !e.ipv6_address.is_empty() {
            bail!("user specified IP address is supported on user defined networks only");
        }
        let container = match first.strip_prefix("container:") {
            Some("") => bail!("--network container: needs a container's name or id"),
            Some(c) => c.to_string(),
            None => String::new(),
        };
        return Ok((mode, container, vec![]));
    }
    Ok((mode, String::new(), endpoints))
}

/// `--add-host NAME:IP` (or `NAME=IP`): `NAME:IP` with `host-gateway` resolved to the
/// bridge's gateway, as docker resolves it to its bridge's.
fn parse_add_host(arg: &str, gateway: std::net::Ipv4Addr) -> Result<String> {
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
        "host-gateway" => gateway.to_string(),
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
    // docker's split: the last two parts are the ports, what comes before them the host
    // address, an IPv6 one in brackets or not (`[::1]:8080:80`, `::1:8080:80`).
    let parts: Vec<&str> = spec.split(':').collect();
    let (host_ip, host, container) = match parts[..] {
        [c] => (String::new(), "", c),
        [h, c] => (String::new(), h, c),
        [ref ip @ .., h, c] => (ip.join(":"), h, c),
        [] => unreachable!("split yields one part at least"),
    };
    let host_ip = match host_ip.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']').ok_or_else(|| {
            anyhow!("invalid IP address {host_ip}: address {host_ip}:: missing ']' in address")
        })?,
        None => host_ip.as_str(),
    };
    if !host_ip.is_empty() && host_ip.parse::<std::net::IpAddr>().is_err() {
        bail!("invalid IP address: {host_ip}");
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

/// One `--expose`: `PORT[-PORT][/PROTO]`, docker's messages; the ports as `80/tcp`.
fn parse_expose(arg: &str) -> Result<Vec<String>> {
    let (ports, proto) = arg.split_once('/').unwrap_or((arg, "tcp"));
    let port = |p: &str| {
        p.parse::<u16>().map_err(|e| {
            let why = match e.kind() {
                std::num::IntErrorKind::PosOverflow => "value out of range",
                _ => "invalid syntax",
            };
            anyhow!(
                "invalid range format for --expose: {arg}, error: strconv.ParseUint: parsing \
                 {p:?}: {why}"
            )
        })
    };
    let (start, end) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => (port(ports)?, port(ports)?),
    };
    if end < start {
        bail!("invalid range format for --expose: {arg}: the range ends before it starts");
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

/// `--mac-address`: six bytes in hex, as docker's `net.ParseMAC` takes them for Ethernet;
/// lower case with colons.
fn parse_mac(arg: &str) -> Result<String> {
    let parts: Vec<&str> = arg.split([':', '-']).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if !ok {
        bail!("{arg} is not a valid mac address");
    }
    Ok(parts.join(":").to_ascii_lowercase())
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--security-opt` values as the engine keeps them: a seccomp profile's file is read here and
/// kept as its compact JSON (`seccomp={...}`), as docker's CLI sends it, so the container does
/// not depend on the file later. Errors in docker's words.
fn security_opts(opts: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for opt in opts {
        let (key, value) = match opt.split_once('=') {
            Some(kv) => kv,
            None if opt == "no-new-privileges" => (opt.as_str(), ""),
            None => opt.split_once(':').unwrap_or((opt.as_str(), "")),
        };
        if value.is_empty() && key != "no-new-privileges" {
            bail!("Invalid --security-opt: {opt:?}");
        }
        if key != "seccomp" || value == "unconfined" || value == "builtin" {
            out.push(opt.clone());
            continue;
        }
        let data = std::fs::read(value).map_err(|e| {
            let why = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
                _ => e.to_string(),
            };
            anyhow!("opening seccomp profile ({value}) failed: open {value}: {why}")
        })?;
        let json: serde_json::Value = serde_json::from_slice(&data)
            .map_err(|e| anyhow!("compacting json for seccomp profile ({value}) failed: {e}"))?;
        out.push(format!("seccomp={json}"));
    }
    Ok(out)
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
        assert_eq!(one("[::1]:8080:80"), "::1|8080|80/tcp");
        assert_eq!(one("::1:8080:80"), "::1|8080|80/tcp");
        assert_eq!(one("[fd00::1:2]::53/udp"), "fd00::1:2|0|53/udp");
        assert_eq!(one("[::]:8080:80"), "::|8080|80/tcp");
        for (bad, message) in [
            ("x.y:80:80", "invalid IP address: x.y"),
            ("1:2:3:4", "invalid IP address: 1:2"),
            ("[fd00::zz]:80:80", "invalid IP address: fd00::zz"),
            (
                "[::1:80:80",
                "invalid IP address [::1: address [::1:: missing ']' in address",
            ),
        ] {
            assert_eq!(parse_publish(bad).unwrap_err().to_string(), message);
        }
        for bad in [
            "",
            "0",
            "http",
            "80/sctp",
            "[::1]80:80",
            "70000",
            "81-80",
            "8000-8002:80-81",
            "8080:80-81",
        ] {
            assert!(parse_publish(bad).is_err(), "{bad:?}");
        }
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
