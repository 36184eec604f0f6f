//! From a container record to the runtime's Spec: docker's defaults (from
//! `berth_runtime::default_spec`), then the process, mounts, network and limits the record
//! asks for.

use std::path::{Path, PathBuf};

use berth_runtime::oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxNamespaceType, LinuxPidsBuilder, Mount, Spec, User,
};
use berth_runtime::{default_spec, resolve_user, COPY_UP, DEFAULT_PATH};

use super::record::{ContainerRecord, MountPoint, NetworkMode};
use super::{EngineError, Result};

/// The files docker bind-mounts over the image's own: /etc/hostname, /etc/hosts and
/// /etc/resolv.conf, written into the container's directory.
pub(crate) struct EtcFiles {
    pub hostname: PathBuf,
    pub hosts: PathBuf,
    pub resolv: PathBuf,
}

/// Writes the three files for `rec` into `dir`.
pub(crate) fn write_etc_files(rec: &ContainerRecord, dir: &Path) -> std::io::Result<EtcFiles> {
    let files = EtcFiles {
        hostname: dir.join("hostname"),
        hosts: dir.join("hosts"),
        resolv: dir.join("resolv.conf"),
    };
    let hostname = effective_hostname(rec);
    std::fs::write(&files.hostname, format!("{hostname}\n"))?;
    let hosts = match rec.host.network {
        NetworkMode::Host => {
            let mut h = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
            if !h.is_empty() && !h.ends_with('\n') {
                h.push('\n');
            }
            h + &extra_hosts(rec)
        }
        NetworkMode::None | NetworkMode::Bridge | NetworkMode::Container | NetworkMode::Pasta => {
            own_hosts(rec, &hostname, "127.0.0.1")
        }
    };
    std::fs::write(&files.hosts, hosts)?;
    std::fs::write(&files.resolv, plain_resolv(rec))?;
    Ok(files)
}

/// resolv.conf of a container on no user-defined network: the host's, with `--dns`,
/// `--dns-search` and `--dns-option` in place of its lines.
pub(crate) fn plain_resolv(rec: &ContainerRecord) -> String {
    let resolv = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = match rec.host.network {
        NetworkMode::Bridge if rec.host.dns.is_empty() => bridge_resolv(&resolv),
        _ => resolv,
    };
    with_dns_flags(rec, &resolv)
}

/// /etc/hosts of a container with a network namespace of its own: localhost, the
/// `--add-host` lines, and its hostname on `address`.
pub(crate) fn own_hosts(rec: &ContainerRecord, hostname: &str, address: &str) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n{}{address}\t{hostname}\n",
        extra_hosts(rec)
    )
}

/// `--add-host NAME:IP` lines of /etc/hosts, docker's `IP\tNAME`.
fn extra_hosts(rec: &ContainerRecord) -> String {
    rec.host
        .extra_hosts
        .iter()
        .filter_map(|h| h.split_once(':'))
        .map(|(name, ip)| format!("{ip}\t{name}\n"))
        .collect()
}

/// resolv.conf with `--dns`, `--dns-search` and `--dns-option` in place of the host's
/// nameserver, search and options lines (each kind replaced only when given, as docker).
fn with_dns_flags(rec: &ContainerRecord, resolv: &str) -> String {
    let h = &rec.host;
    let kinds = [
        ("nameserver", &h.dns),
        ("search", &h.dns_search),
        ("options", &h.dns_options),
    ];
    let replaced = |l: &str| {
        kinds
            .iter()
            .any(|(k, given)| !given.is_empty() && l.split_whitespace().next() == Some(*k))
    };
    let mut out: String = resolv
        .lines()
        .filter(|l| !replaced(l))
        .map(|l| format!("{l}\n"))
        .collect();
    for ns in &h.dns {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    if !h.dns_search.is_empty() {
        out.push_str(&format!("search {}\n", h.dns_search.join(" ")));
    }
    if !h.dns_options.is_empty() {
        out.push_str(&format!("options {}\n", h.dns_options.join(" ")));
    }
    out
}

/// resolv.conf of a container on a user-defined network, as docker writes it: `search`
/// (`--dns-search`, else the host's), the network's resolver at `nameserver` alone (the
/// `--dns` servers are its upstreams for the container), then `options` (`--dns-option`,
/// else the host's) with `ndots:0` unless they set ndots, so that a container's name is
/// asked as it is before any search domain.
pub(crate) fn resolv_with_nameserver(rec: &ContainerRecord, nameserver: &str) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    // The last line of a kind is the one resolvers use.
    let host_line = |kind: &str| -> Vec<String> {
        host.lines()
            .filter_map(|l| {
                let mut w = l.split_whitespace();
                (w.next() == Some(kind)).then(|| w.map(str::to_string).collect())
            })
            .next_back()
            .unwrap_or_default()
    };
    let given = |flag: &Vec<String>, kind: &str| {
        if flag.is_empty() {
            host_line(kind)
        } else {
            flag.clone()
        }
    };
    let search = given(&rec.host.dns_search, "search");
    let mut options = given(&rec.host.dns_options, "options");
    if !options.iter().any(|o| o.starts_with("ndots:")) {
        options.push("ndots:0".into());
    }
    let mut out = String::new();
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    out.push_str(&format!("nameserver {nameserver}\n"));
    out.push_str(&format!("options {}\n", options.join(" ")));
    out
}

/// The host's resolv.conf as a container on the bridge can use it (docker's rule): name
/// servers on the host's loopback cannot be reached from the container, so they go, and
/// when none is left the container gets public ones.
fn bridge_resolv(host: &str) -> String {
    let local = |l: &str| {
        let mut w = l.split_whitespace();
        w.next() == Some("nameserver")
            && w.next()
                .and_then(|a| a.parse::<std::net::IpAddr>().ok())
                .is_some_and(|a| a.is_loopback())
    };
    let mut out: String = host
        .lines()
        .filter(|l| !local(l))
        .map(|l| format!("{l}\n"))
        .collect();
    if !out
        .lines()
        .any(|l| l.trim_start().starts_with("nameserver"))
    {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    out
}

/// The hostname the container sees: its own, or the host's with `--network host` (docker).
pub(crate) fn effective_hostname(rec: &ContainerRecord) -> String {
    if rec.host.network == NetworkMode::Host && rec.config.hostname.is_empty() {
        return std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default();
    }
    if rec.config.hostname.is_empty() {
        rec.short_id().to_string()
    } else {
        rec.config.hostname.clone()
    }
}

/// Makes the container join the namespace of type `typ` at `path` instead of making its own.
pub(super) fn set_namespace_path(spec: &mut Spec, typ: LinuxNamespaceType, path: PathBuf) {
    let mut linux = spec.linux().clone().unwrap_or_default();
    if let Some(ns) = linux
        .namespaces_mut()
        .iter_mut()
        .flatten()
        .find(|ns| ns.typ() == typ)
    {
        ns.set_path(Some(path));
    }
    spec.set_linux(Some(linux));
}

pub(super) fn bind(source: &Path, dest: &str, read_only: bool) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(source.to_path_buf()));
    let mut opts = vec!["rbind".to_string(), "rprivate".to_string()];
    if read_only {
        opts.push("ro".into());
    }
    m.set_options(Some(opts));
    m
}

/// A mount point of the record as the Spec has it: a bind (its propagation, recursive or
/// not), a volume (filled from the image when empty, unless `nocopy`) or a tmpfs.
fn mount_of(m: &MountPoint) -> Mount {
    if m.kind == "tmpfs" {
        let mut opts = m.tmpfs_options.clone();
        if m.read_only {
            opts.push("ro".into());
        }
        return super::mounts::tmpfs(&m.destination, &opts);
    }
    let mut mount = bind(&m.source, &m.destination, m.read_only);
    let mut opts = mount.options().clone().unwrap_or_default();
    if m.non_recursive {
        opts[0] = "bind".into();
    }
    if !m.propagation.is_empty() {
        opts[1] = m.propagation.clone();
    }
    if m.kind == "volume" && !m.no_copy {
        // docker fills an empty volume with what the image has at its destination.
        opts.push(COPY_UP.to_string());
    }
    mount.set_options(Some(opts));
    mount
}

/// The environment: the record's (image then user, later wins), plus PATH, HOSTNAME, HOME
/// and TERM as docker adds them when missing.
fn environment(rec: &ContainerRecord, hostname: &str, home: &str) -> Vec<String> {
    let mut env: Vec<String> = Vec::new();
    let mut set = |kv: String| {
        let key = kv.split('=').next().unwrap_or_default().to_string();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(kv);
    };
    set(format!("PATH={DEFAULT_PATH}"));
    set(format!("HOSTNAME={hostname}"));
    for kv in &rec.config.env {
        set(kv.clone());
    }
    let has = |env: &[String], k: &str| env.iter().any(|e| e.split('=').next() == Some(k));
    if rec.config.tty && !has(&env, "TERM") {
        env.push("TERM=xterm".into());
    }
    if !has(&env, "HOME") {
        env.push(format!("HOME={home}"));
    }
    env
}

/// Builds the Spec. `layers` are the root filesystem's directories topmost first (upper
/// then lower), for resolving the user.
pub(crate) fn build(rec: &ContainerRecord, layers: &[PathBuf], etc: &EtcFiles) -> Result<Spec> {
    let mut spec = default_spec(&rec.id);
    let hostname = effective_hostname(rec);
    spec.set_hostname(Some(hostname.clone()));

    let argv = rec.config.argv();
    if argv.is_empty() {
        return Err(EngineError::Invalid(
            "no command specified: the image has no Cmd or Entrypoint; give one after the image name"
                .into(),
        ));
    }
    let user = resolve_user(layers, &rec.config.user)?;
    let mut process = spec.process().clone().unwrap_or_default();
    process.set_args(Some(argv));
    process.set_env(Some(environment(rec, &hostname, &user.home)));
    let cwd = if rec.config.working_dir.is_empty() {
        "/".to_string()
    } else {
        rec.config.working_dir.clone()
    };
    process.set_cwd(PathBuf::from(cwd));
    let mut u = User::default();
    u.set_uid(user.uid);
    u.set_gid(user.gid);
    u.set_additional_gids(Some(user.additional_gids.clone()));
    process.set_user(u);
    process.set_terminal(Some(rec.config.tty));
    spec.set_process(Some(process));

    let mut mounts = spec.mounts().clone().unwrap_or_default();
    // A mount over one of the defaults (/dev/shm, …) takes its place.
    mounts.retain(|d| {
        !rec.mounts
            .iter()
            .any(|m| Path::new(&m.destination) == d.destination())
    });
    mounts.extend(rec.mounts.iter().map(mount_of));
    let covered = |dest: &str| rec.mounts.iter().any(|m| m.destination == dest);
    for (file, dest) in [
        (&etc.hostname, "/etc/hostname"),
        (&etc.hosts, "/etc/hosts"),
        (&etc.resolv, "/etc/resolv.conf"),
    ] {
        if !covered(dest) {
            mounts.push(bind(file, dest, rec.host.readonly_rootfs));
        }
    }
    spec.set_mounts(Some(mounts));

    if rec.host.readonly_rootfs {
        let mut root = spec.root().clone().unwrap_or_default();
        root.set_readonly(Some(true));
        spec.set_root(Some(root));
    }

    if !rec.config.domainname.is_empty() {
        spec.set_domainname(Some(rec.config.domainname.clone()));
    }
    if !rec.host.annotations.is_empty() {
        spec.set_annotations(Some(rec.host.annotations.clone().into_iter().collect()));
    }
    let mut linux = spec.linux().clone().unwrap_or_default();
    // docker's rule: a shared bind needs a shared root, a slave one at least a slave root,
    // or nothing the host mounts later under the source would reach the container.
    let propagations: Vec<&str> = rec.mounts.iter().map(|m| m.propagation.as_str()).collect();
    if propagations.iter().any(|p| p.ends_with("shared")) {
        linux.set_rootfs_propagation(Some("rshared".into()));
    } else if propagations.iter().any(|p| p.ends_with("slave")) {
        linux.set_rootfs_propagation(Some("rslave".into()));
    }
    if rec.host.network == NetworkMode::Host {
        if let Some(ns) = linux.namespaces_mut() {
            ns.retain(|n| n.typ() != LinuxNamespaceType::Network);
        }
        // The host's /sys shows the host's interfaces; docker mounts it read-only the same.
    }
    if !rec.host.cgroup_parent.is_empty() {
        let parent = rec.host.cgroup_parent.trim_end_matches('/');
        linux.set_cgroups_path(Some(PathBuf::from(format!("{parent}/{}", rec.id))));
    }
    let mut resources = linux.resources().clone().unwrap_or_default();
    if rec.host.memory > 0 {
        let swap = match rec.host.memory_swap {
            0 => rec.host.memory * 2,
            s => s,
        };
        let mem = LinuxMemoryBuilder::default()
            .limit(rec.host.memory)
            .swap(swap)
            .build()
            .map_err(|e| EngineError::Invalid(format!("memory limit: {e}")))?;
        resources.set_memory(Some(mem));
    }
    if rec.host.nano_cpus > 0 {
        let period: u64 = 100_000;
        let cpu = LinuxCpuBuilder::default()
            .period(period)
            .quota(rec.host.nano_cpus * period as i64 / 1_000_000_000)
            .build()
            .map_err(|e| EngineError::Invalid(format!("cpu limit: {e}")))?;
        resources.set_cpu(Some(cpu));
    }
    if rec.host.pids_limit > 0 {
        let pids = LinuxPidsBuilder::default()
            .limit(rec.host.pids_limit)
            .build()
            .map_err(|e| EngineError::Invalid(format!("pids limit: {e}")))?;
        resources.set_pids(Some(pids));
    }
    linux.set_resources(Some(resources));
    spec.set_linux(Some(linux));
    super::confine::apply(rec, &mut spec)?;
    super::resources::apply(rec, &mut spec, layers)?;
    Ok(spec)
}
