//! The long form of a container's mounts: `--mount` (docker's `HostConfig.Mounts`), checked
//! as docker's daemon checks it (its messages), and `--volumes-from` (another container's
//! mounts, taken over). `create` turns both into the record's [`MountPoint`]s beside `-v`'s;
//! `tmpfs` is how the Spec mounts a tmpfs, for `--mount type=tmpfs` and `--tmpfs` alike.

use std::path::{Path, PathBuf};

use berth_runtime::oci_spec::runtime::Mount;

use super::record::{ContainerRecord, MountPoint, MountSpec};
use super::{clean_dest, names, EngineError, Result};

/// A checked `--mount`: a volume still to be made (a name, or none for an anonymous one),
/// or a mount point as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LongMount {
    Volume {
        name: Option<String>,
        dest: String,
        read_only: bool,
        no_copy: bool,
    },
    Ready(MountPoint),
}

impl LongMount {
    pub(super) fn dest(&self) -> &str {
        match self {
            LongMount::Volume { dest, .. } => dest,
            LongMount::Ready(m) => &m.destination,
        }
    }
}

fn invalid(kind: &str, why: impl std::fmt::Display) -> EngineError {
    EngineError::Invalid(format!("invalid mount config for type \"{kind}\": {why}"))
}

/// docker's propagation modes for binds.
pub(super) const PROPAGATIONS: &[&str] = &[
    "private", "rprivate", "shared", "rshared", "slave", "rslave",
];

/// Checks one `--mount` as docker's daemon does (`volume/mounts` validation).
pub(super) fn check(m: &MountSpec) -> Result<LongMount> {
    let kind = m.kind.as_str();
    if !matches!(kind, "bind" | "volume" | "tmpfs") {
        return Err(invalid(kind, "mount type unknown"));
    }
    if !m.target.starts_with('/') {
        return Err(invalid(
            kind,
            format!(
                "invalid mount path: '{}' mount path must be absolute",
                m.target
            ),
        ));
    }
    let dest = clean_dest(&m.target, &m.target).map_err(|e| {
        let why = e.to_string();
        invalid(
            kind,
            why.rsplit(": ").next().unwrap_or(&why).replace(
                "destination can't be '/'",
                "invalid specification: destination can't be '/'",
            ),
        )
    })?;
    match kind {
        "bind" => {
            if m.source.is_empty() {
                return Err(invalid(kind, "field Source must not be empty"));
            }
            if !m.source.starts_with('/') {
                return Err(invalid(
                    kind,
                    format!(
                        "invalid mount path: '{}' mount path must be absolute",
                        m.source
                    ),
                ));
            }
            if !m.propagation.is_empty() && !PROPAGATIONS.contains(&m.propagation.as_str()) {
                return Err(invalid(
                    kind,
                    format!("invalid propagation mode: {}", m.propagation),
                ));
            }
            let source = std::fs::canonicalize(&m.source).map_err(|_| {
                invalid(
                    kind,
                    format!("bind source path does not exist: {}", m.source),
                )
            })?;
            if matches!(
                m.propagation.as_str(),
                "shared" | "rshared" | "slave" | "rslave"
            ) {
                check_source_propagation(&source, &m.propagation)?;
            }
            Ok(LongMount::Ready(MountPoint {
                kind: "bind".into(),
                source,
                destination: dest,
                read_only: m.read_only,
                propagation: m.propagation.clone(),
                non_recursive: m.non_recursive,
                ..MountPoint::default()
            }))
        }
        "volume" => {
            let name = match m.source.as_str() {
                "" => None,
                s if names::valid(s) => Some(s.to_string()),
                s => {
                    return Err(EngineError::Invalid(format!(
                        "create {s}: \"{s}\" includes invalid characters for a local volume \
                         name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended \
                         to pass a host directory, use absolute path"
                    )))
                }
            };
            if name.is_none() && m.read_only {
                return Err(invalid(
                    kind,
                    "must not set ReadOnly mode when using anonymous volumes",
                ));
            }
            Ok(LongMount::Volume {
                name,
                dest,
                read_only: m.read_only,
                no_copy: m.no_copy,
            })
        }
        _ => {
            if !m.source.is_empty() {
                return Err(invalid(kind, "field Source must not be specified"));
            }
            Ok(LongMount::Ready(MountPoint {
                kind: "tmpfs".into(),
                destination: dest,
                read_only: m.read_only,
                tmpfs_options: tmpfs_size_mode(m.tmpfs_size, m.tmpfs_mode),
                ..MountPoint::default()
            }))
        }
    }
}

/// `size=` and `mode=` as docker writes them for `tmpfs-size` and `tmpfs-mode`.
fn tmpfs_size_mode(size: i64, mode: u32) -> Vec<String> {
    let mut out = vec![];
    if size > 0 {
        // docker's rounding: whole kibibytes, or mebi-, gibibytes when they divide.
        let s = match size {
            s if s % (1 << 30) == 0 => format!("{}g", s >> 30),
            s if s % (1 << 20) == 0 => format!("{}m", s >> 20),
            s if s % (1 << 10) == 0 => format!("{}k", s >> 10),
            s => s.to_string(),
        };
        out.push(format!("size={s}"));
    }
    if mode != 0 {
        out.push(format!("mode={mode:o}"));
    }
    out
}

/// docker's rule for a shared or slave bind: the mount the source sits on must itself be
/// shared (for `shared`) or shared or slave (for `slave`), or nothing could propagate.
fn check_source_propagation(source: &Path, mode: &str) -> Result<()> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(super::io_err(Path::new("/proc/self/mountinfo")))?;
    // The longest mount point that holds the source.
    let mut best: Option<(PathBuf, String)> = None;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(point) = fields.get(4) else { continue };
        let point = PathBuf::from(unescape(point));
        if !source.starts_with(&point) {
            continue;
        }
        let optional: Vec<&str> = fields
            .iter()
            .skip(6)
            .take_while(|f| **f != "-")
            .copied()
            .collect();
        let longer = best
            .as_ref()
            .is_none_or(|(p, _)| point.as_os_str().len() >= p.as_os_str().len());
        if longer {
            best = Some((point, optional.join(" ")));
        }
    }
    let Some((point, optional)) = best else {
        return Ok(());
    };
    let shared = optional.contains("shared:");
    let slave = optional.contains("master:");
    let ok = match mode {
        "shared" | "rshared" => shared,
        _ => shared || slave,
    };
    if ok {
        return Ok(());
    }
    let what = if mode.ends_with("shared") {
        "a shared mount"
    } else {
        "a shared or slave mount"
    };
    Err(EngineError::Invalid(format!(
        "path {} is mounted on {} but it is not {what}",
        source.display(),
        point.display()
    )))
}

/// mountinfo's octal escapes (`\040` for a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let n = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(n);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One `--volumes-from` argument: the container and whether its mounts become read-only
/// (`ro`), stay as they are (no mode) or become writable (`rw`).
pub(super) fn parse_volumes_from(arg: &str) -> Result<(&str, Option<bool>)> {
    if arg.is_empty() {
        return Err(EngineError::Invalid(
            "volumes-from specification cannot be an empty string".into(),
        ));
    }
    let (container, mode) = match arg.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (arg, None),
    };
    let mut read_only = None;
    for m in mode.into_iter().flat_map(|m| m.split(',')) {
        match m {
            "ro" => read_only = Some(true),
            "rw" => read_only = Some(false),
            // SELinux relabelling: nothing to do without SELinux.
            "z" | "Z" => {}
            other => return Err(EngineError::Invalid(format!("invalid mode: {other}"))),
        }
    }
    Ok((container, read_only))
}

/// The mounts a container takes over from `from` (docker's `--volumes-from`): each of its
/// mounts at the same place, read-only when asked (`ro`) or when it was (unless `rw`);
/// never filled from the image, and never this container's to remove.
pub(super) fn taken_from(from: &ContainerRecord, read_only: Option<bool>) -> Vec<MountPoint> {
    from.mounts
        .iter()
        .map(|m| MountPoint {
            read_only: read_only.unwrap_or(m.read_only),
            anonymous: false,
            no_copy: true,
            ..m.clone()
        })
        .collect()
}

/// A tmpfs at `dest` with `options` after docker's defaults (`nosuid`, `nodev`, `noexec`),
/// for `--mount type=tmpfs` and `--tmpfs` alike.
pub(crate) fn tmpfs(dest: &str, options: &[String]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some("tmpfs".into()));
    m.set_source(Some(PathBuf::from("tmpfs")));
    let mut opts: Vec<String> = ["nosuid", "nodev", "noexec"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    opts.extend(options.iter().cloned());
    m.set_options(Some(opts));
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: &str, source: &str, target: &str) -> MountSpec {
        MountSpec {
            kind: kind.into(),
            source: source.into(),
            target: target.into(),
            ..MountSpec::default()
        }
    }

    #[test]
    fn mounts_are_checked_as_dockers_daemon_does() {
        let msg = |m: MountSpec| check(&m).unwrap_err().to_string();
        assert_eq!(
            msg(spec("bogus", "", "/x")),
            "invalid mount config for type \"bogus\": mount type unknown"
        );
        assert_eq!(
            msg(spec("bind", "", "/x")),
            "invalid mount config for type \"bind\": field Source must not be empty"
        );
        assert_eq!(
            msg(spec("bind", "/does/not/exist", "/x")),
            "invalid mount config for type \"bind\": bind source path does not exist: \
             /does/not/exist"
        );
        assert_eq!(
            msg(spec("bind", "/tmp", "x")),
            "invalid mount config for type \"bind\": invalid mount path: 'x' mount path must \
             be absolute"
        );
        assert_eq!(
            msg(spec("bind", "tmp", "/x")),
            "invalid mount config for type \"bind\": invalid mount path: 'tmp' mount path must \
             be absolute"
        );
        assert_eq!(
            msg(spec("bind", "/tmp", "/")),
            "invalid mount config for type \"bind\": invalid specification: destination can't \
             be '/'"
        );
        assert_eq!(
            msg(spec("tmpfs", "/x", "/y")),
            "invalid mount config for type \"tmpfs\": field Source must not be specified"
        );
        assert!(msg(spec("volume", "a/b", "/x")).starts_with(
            "create a/b: \"a/b\" includes invalid characters for a local volume name"
        ));
        let mut p = spec("bind", "/tmp", "/x");
        p.propagation = "bogus".into();
        assert_eq!(
            msg(p),
            "invalid mount config for type \"bind\": invalid propagation mode: bogus"
        );
        let mut t = spec("tmpfs", "", "/x/");
        t.tmpfs_size = 1 << 20;
        t.tmpfs_mode = 0o1770;
        let LongMount::Ready(m) = check(&t).unwrap() else {
            panic!()
        };
        assert_eq!(m.destination, "/x");
        assert_eq!(m.tmpfs_options, vec!["size=1m", "mode=1770"]);
        assert_eq!(tmpfs_size_mode(1000, 0), vec!["size=1000"]);
        assert_eq!(
            check(&spec("volume", "", "/v")).unwrap(),
            LongMount::Volume {
                name: None,
                dest: "/v".into(),
                read_only: false,
                no_copy: false
            }
        );
    }

    #[test]
    fn volumes_from_modes() {
        assert_eq!(parse_volumes_from("a").unwrap(), ("a", None));
        assert_eq!(parse_volumes_from("a:ro").unwrap(), ("a", Some(true)));
        assert_eq!(parse_volumes_from("a:rw,z").unwrap(), ("a", Some(false)));
        assert_eq!(
            parse_volumes_from("a:bogus").unwrap_err().to_string(),
            "invalid mode: bogus"
        );
        assert!(parse_volumes_from("").is_err());
        assert_eq!(unescape("/a\\040b"), "/a b");
    }
}
