//! How a container is confined, from its record to the Spec, in docker's terms: capabilities
//! (`--cap-add`, `--cap-drop`), `--privileged`, `--security-opt` (seccomp profile,
//! no-new-privileges, system paths). `check` runs once at `create` and normalises what it
//! keeps (docker's messages for what it refuses); `apply` runs at every start, after the rest
//! of the Spec is built.

use berth_runtime::oci_spec::runtime::{
    Capabilities, LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType, Spec,
};
use berth_runtime::{CAPABILITIES, DEFAULT_CAPABILITIES};

use super::record::{ContainerRecord, HostConfig};
use super::seccomp;
use super::{EngineError, Result};

fn invalid(msg: String) -> EngineError {
    EngineError::Invalid(msg)
}

/// docker's reading of a capability name: any case, with or without `CAP_`; `ALL` as is.
fn normalize_capability(c: &str, flag: &str) -> Result<String> {
    let upper = c.trim().to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(upper);
    }
    let name = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    if !CAPABILITIES.contains(&name.as_str()) {
        return Err(invalid(format!(
            "invalid {flag}: unknown capability: \"{name}\""
        )));
    }
    Ok(name)
}

/// One `--security-opt`, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SecurityOpt {
    SeccompUnconfined,
    /// `seccomp=builtin`: docker's default profile, named.
    SeccompDefault,
    /// A profile's JSON, as the CLI read it from the file.
    SeccompProfile(String),
    NoNewPrivileges(bool),
    /// `systempaths=unconfined`: /proc and /sys paths are neither masked nor read-only.
    UnmaskSystemPaths,
    /// `apparmor=unconfined`, `label=disable`: no confinement berth would apply anyway.
    NoOp,
}

fn parse_security_opt(opt: &str) -> Result<SecurityOpt> {
    if opt == "no-new-privileges" {
        return Ok(SecurityOpt::NoNewPrivileges(true));
    }
    // docker still takes the old `key:value` spelling.
    let Some((key, value)) = opt.split_once('=').or_else(|| opt.split_once(':')) else {
        return Err(invalid(format!("invalid --security-opt 1: {opt:?}")));
    };
    Ok(match key {
        "seccomp" if value == "unconfined" => SecurityOpt::SeccompUnconfined,
        "seccomp" if value == "builtin" => SecurityOpt::SeccompDefault,
        "seccomp" => SecurityOpt::SeccompProfile(value.to_string()),
        "no-new-privileges" => match value {
            "true" => SecurityOpt::NoNewPrivileges(true),
            "false" => SecurityOpt::NoNewPrivileges(false),
            _ => return Err(invalid(format!("invalid --security-opt 2: {opt:?}"))),
        },
        "systempaths" if value == "unconfined" => SecurityOpt::UnmaskSystemPaths,
        "apparmor" if value == "unconfined" => SecurityOpt::NoOp,
        "apparmor" => {
            return Err(invalid(format!(
                "invalid --security-opt {opt:?}: berth applies no AppArmor profile (only apparmor=unconfined is accepted)"
            )))
        }
        "label" if value == "disable" => SecurityOpt::NoOp,
        "label" => {
            return Err(invalid(format!(
                "invalid --security-opt {opt:?}: berth applies no SELinux labels (only label=disable is accepted)"
            )))
        }
        _ => return Err(invalid(format!("invalid --security-opt 1: {opt:?}"))),
    })
}

/// Checks and normalises the confinement part of a new container's host config.
pub(crate) fn check(host: &mut HostConfig) -> Result<()> {
    host.cap_add = host
        .cap_add
        .iter()
        .map(|c| normalize_capability(c, "CapAdd"))
        .collect::<Result<_>>()?;
    host.cap_drop = host
        .cap_drop
        .iter()
        .map(|c| normalize_capability(c, "CapDrop"))
        .collect::<Result<_>>()?;
    for opt in &host.security_opt {
        if let SecurityOpt::SeccompProfile(json) = parse_security_opt(opt)? {
            seccomp::resolve(&seccomp::parse(&json)?, &[])?;
        }
    }
    Ok(())
}

/// The capabilities the container's processes get (docker's rules: `--privileged` is every
/// one; `--cap-add ALL` every one but those dropped; `--cap-drop ALL` only those added;
/// otherwise docker's default set, less the dropped, plus the added).
pub fn capabilities(host: &HostConfig) -> Vec<String> {
    let all = || CAPABILITIES.iter().map(|c| c.to_string());
    let (add, drop) = (&host.cap_add, &host.cap_drop);
    let is_all = |v: &Vec<String>| v.iter().any(|c| c == "ALL");
    let mut caps: Vec<String> = if host.privileged {
        all().collect()
    } else if is_all(add) {
        all().filter(|c| !drop.contains(c)).collect()
    } else if is_all(drop) {
        add.clone()
    } else {
        DEFAULT_CAPABILITIES
            .iter()
            .map(|c| c.to_string())
            .filter(|c| !drop.contains(c))
            .chain(add.iter().cloned())
            .collect()
    };
    let mut seen = std::collections::BTreeSet::new();
    caps.retain(|c| seen.insert(c.clone()));
    caps
}

/// Makes `spec` confine the container as its record says.
pub(crate) fn apply(rec: &ContainerRecord, spec: &mut Spec) -> Result<()> {
    let host = &rec.host;
    let caps = capabilities(host);
    let set: Capabilities = caps
        .iter()
        .filter_map(|n| serde_json::from_value(serde_json::Value::String(n.clone())).ok())
        .collect();
    let mut process = spec.process().clone().unwrap_or_default();
    // Not LinuxCapabilities::default(): that one fills every set with runc's three defaults.
    let mut lc = process.capabilities().clone().unwrap_or_default();
    lc.set_inheritable(None);
    lc.set_ambient(None);
    lc.set_bounding(Some(set.clone()));
    lc.set_effective(Some(set.clone()));
    lc.set_permitted(Some(set));
    process.set_capabilities(Some(lc));

    let mut profile = if host.privileged {
        None
    } else {
        Some(seccomp::default_profile())
    };
    for opt in &host.security_opt {
        match parse_security_opt(opt)? {
            SecurityOpt::SeccompUnconfined => profile = None,
            SecurityOpt::SeccompDefault => profile = Some(seccomp::default_profile()),
            SecurityOpt::SeccompProfile(json) => profile = Some(seccomp::parse(&json)?),
            SecurityOpt::NoNewPrivileges(on) => {
                process.set_no_new_privileges(Some(on));
            }
            SecurityOpt::UnmaskSystemPaths | SecurityOpt::NoOp => {}
        }
    }
    spec.set_process(Some(process));

    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_seccomp(match &profile {
        Some(p) => Some(seccomp::resolve(p, &caps)?),
        None => None,
    });
    if host.system_paths_unconfined() {
        linux.set_masked_paths(None);
        linux.set_readonly_paths(None);
    }
    if host.privileged {
        // Every host device, and the devices cgroup open to all (docker's --privileged).
        linux.set_devices(Some(host_devices()));
        let mut resources = linux.resources().clone().unwrap_or_default();
        let mut all = LinuxDeviceCgroup::default();
        all.set_allow(true);
        all.set_access(Some("rwm".into()));
        resources.set_devices(Some(vec![all]));
        linux.set_resources(Some(resources));
    }
    spec.set_linux(Some(linux));

    if host.privileged {
        // /sys and the cgroup tree writable, as docker mounts them for --privileged.
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        for m in mounts.iter_mut() {
            let dest = m.destination().to_string_lossy().into_owned();
            if dest == "/sys" || dest == "/sys/fs/cgroup" {
                let opts: Vec<String> = m
                    .options()
                    .iter()
                    .flatten()
                    .map(|o| if o == "ro" { "rw".into() } else { o.clone() })
                    .collect();
                m.set_options(Some(opts));
            }
        }
        spec.set_mounts(Some(mounts));
    }
    Ok(())
}

/// The host's device nodes as docker gives them to a privileged container: everything under
/// /dev but the directories each container has of its own (pts, shm, mqueue) and the console.
fn host_devices() -> Vec<LinuxDevice> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = vec![];
    let mut dirs = vec![std::path::PathBuf::from("/dev")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            let ft = meta.file_type();
            if ft.is_dir() {
                let skip = ["pts", "shm", "mqueue", "fd", ".lxc", ".lxd-mounts", ".udev"];
                if dir.as_os_str() != "/dev" || !skip.iter().any(|s| e.file_name() == *s) {
                    dirs.push(path);
                }
                continue;
            }
            let typ = if ft.is_char_device() {
                LinuxDeviceType::C
            } else if ft.is_block_device() {
                LinuxDeviceType::B
            } else {
                continue;
            };
            if path == std::path::Path::new("/dev/console") {
                continue;
            }
            let rdev = meta.rdev();
            let mut d = LinuxDevice::default();
            d.set_path(path);
            d.set_typ(typ);
            d.set_major(libc::major(rdev) as i64);
            d.set_minor(libc::minor(rdev) as i64);
            d.set_file_mode(Some(meta.mode() & 0o7777));
            d.set_uid(Some(meta.uid()));
            d.set_gid(Some(meta.gid()));
            out.push(d);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(add: &[&str], drop: &[&str]) -> HostConfig {
        let mut h = HostConfig {
            cap_add: add.iter().map(|s| s.to_string()).collect(),
            cap_drop: drop.iter().map(|s| s.to_string()).collect(),
            ..HostConfig::default()
        };
        check(&mut h).unwrap();
        h
    }

    #[test]
    fn capabilities_as_docker_tweaks_them() {
        let caps = capabilities(&host(&["sys_admin", "CAP_NET_ADMIN"], &["chown"]));
        assert!(caps.contains(&"CAP_SYS_ADMIN".to_string()));
        assert!(caps.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!caps.contains(&"CAP_CHOWN".to_string()));
        assert_eq!(caps.len(), DEFAULT_CAPABILITIES.len() + 1);
        assert_eq!(capabilities(&host(&["kill"], &["all"])), ["CAP_KILL"]);
        let all = capabilities(&host(&["ALL"], &["CAP_SYS_ADMIN"]));
        assert_eq!(all.len(), CAPABILITIES.len() - 1);
        let privileged = HostConfig {
            privileged: true,
            ..HostConfig::default()
        };
        assert_eq!(capabilities(&privileged).len(), CAPABILITIES.len());
        let mut bad = HostConfig {
            cap_add: vec!["nope".into()],
            ..HostConfig::default()
        };
        assert_eq!(
            check(&mut bad).unwrap_err().to_string(),
            "invalid CapAdd: unknown capability: \"CAP_NOPE\""
        );
    }

    #[test]
    fn security_opts_in_docker_words() {
        for (opt, want) in [
            ("seccomp=unconfined", SecurityOpt::SeccompUnconfined),
            ("seccomp:unconfined", SecurityOpt::SeccompUnconfined),
            ("no-new-privileges", SecurityOpt::NoNewPrivileges(true)),
            (
                "no-new-privileges=false",
                SecurityOpt::NoNewPrivileges(false),
            ),
            ("systempaths=unconfined", SecurityOpt::UnmaskSystemPaths),
            ("apparmor=unconfined", SecurityOpt::NoOp),
            ("label=disable", SecurityOpt::NoOp),
        ] {
            assert_eq!(parse_security_opt(opt).unwrap(), want, "{opt}");
        }
        for (opt, msg) in [
            ("foo", "invalid --security-opt 1: \"foo\""),
            ("foo=bar", "invalid --security-opt 1: \"foo=bar\""),
            ("no-new-privileges=maybe", "invalid --security-opt 2"),
            ("apparmor=docker-default", "no AppArmor"),
            ("label=type:svirt_t", "no SELinux"),
        ] {
            let e = parse_security_opt(opt).unwrap_err().to_string();
            assert!(e.contains(msg), "{opt}: {e}");
        }
        let mut h = HostConfig {
            security_opt: vec!["seccomp={\"defaultAction\":\"SCMP_ACT_BAD\"}".into()],
            ..HostConfig::default()
        };
        let e = check(&mut h).unwrap_err().to_string();
        assert!(e.starts_with("Decoding seccomp profile failed"), "{e}");
    }
}
