//! `--mount`'s value, read as docker's CLI reads it (`opts/mount.go`): comma-separated
//! `key=value` fields (`readonly`, `volume-nocopy` and `bind-nonrecursive` also alone),
//! with its messages. What docker's daemon checks (paths, sources, propagation modes) the
//! engine checks.

use anyhow::{anyhow, Result};
use berth_client::engine::MountSpec;

use crate::cli::flags::parse_bytes;

/// Go's `strconv.ParseBool`.
fn go_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// One `--mount` argument.
pub fn parse_mount(arg: &str) -> Result<MountSpec> {
    let fail = |why: String| anyhow!("invalid argument \"{arg}\" for \"--mount\" flag: {why}");
    if arg.is_empty() {
        return Err(fail("EOF".into()));
    }
    let mut m = MountSpec {
        kind: "volume".into(),
        ..MountSpec::default()
    };
    let (mut bind_opts, mut volume_opts, mut tmpfs_opts) = (false, false, false);
    for field in arg.split(',') {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.to_ascii_lowercase(), Some(v)),
            None => (field.to_ascii_lowercase(), None),
        };
        let boolean = |v: Option<&str>| -> Result<bool> {
            match v {
                None => Ok(true),
                Some(v) => go_bool(v).ok_or_else(|| fail(format!("invalid value for {key}: {v}"))),
            }
        };
        match (key.as_str(), value) {
            ("readonly" | "ro", v) => m.read_only = boolean(v)?,
            ("volume-nocopy", v) => {
                volume_opts = true;
                m.no_copy = boolean(v)?;
            }
            ("bind-nonrecursive", v) => {
                bind_opts = true;
                m.non_recursive = boolean(v)?;
            }
            (_, None) => {
                return Err(fail(format!(
                    "invalid field '{field}' must be a key=value pair"
                )))
            }
            ("type", Some(v)) => m.kind = v.to_ascii_lowercase(),
            ("source" | "src", Some(v)) => {
                m.source = if v == "." || v.starts_with("./") {
                    std::path::absolute(v)
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|_| v.to_string())
                } else {
                    v.to_string()
                }
            }
            ("target" | "dst" | "destination", Some(v)) => m.target = v.to_string(),
            // Docker Desktop's file sharing hint; nothing to do on Linux, as for docker.
            ("consistency", Some(_)) => {}
            ("bind-propagation", Some(v)) => {
                bind_opts = true;
                m.propagation = v.to_ascii_lowercase();
            }
            ("volume-driver", Some(v)) => {
                volume_opts = true;
                if v != "local" {
                    return Err(fail(format!(
                        "volume driver {v:?}: berth has only the local volume driver"
                    )));
                }
            }
            ("volume-label" | "volume-opt", Some(_)) => {
                return Err(fail(format!(
                    "{key} is not supported: berth's local volumes take no labels or driver \
                     options here (use `berth volume create`)"
                )))
            }
            ("tmpfs-size", Some(v)) => {
                tmpfs_opts = true;
                m.tmpfs_size = match parse_bytes(v) {
                    Ok(n) if !v.trim_start().starts_with('-') => n,
                    _ => return Err(fail(format!("invalid value for {key}: {v}"))),
                };
            }
            ("tmpfs-mode", Some(v)) => {
                tmpfs_opts = true;
                m.tmpfs_mode = u32::from_str_radix(v, 8)
                    .ok()
                    .filter(|n| *n <= 0o7777)
                    .ok_or_else(|| fail(format!("invalid value for {key}: {v}")))?;
            }
            _ => return Err(fail(format!("unexpected key '{key}' in '{field}'"))),
        }
    }
    if m.target.is_empty() {
        return Err(fail("target is required".into()));
    }
    for (given, prefix, kind) in [
        (volume_opts, "volume", "volume"),
        (bind_opts, "bind", "bind"),
        (tmpfs_opts, "tmpfs", "tmpfs"),
    ] {
        if given && m.kind != kind {
            return Err(fail(format!(
                "cannot mix '{prefix}-*' options with mount type '{}'",
                m.kind
            )));
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_arguments_as_dockers_cli_reads_them() {
        let m = parse_mount("type=bind,src=/tmp,dst=/x,ro,bind-propagation=RSLAVE").unwrap();
        assert_eq!(
            (m.kind.as_str(), m.source.as_str(), m.target.as_str()),
            ("bind", "/tmp", "/x")
        );
        assert!(m.read_only);
        assert_eq!(m.propagation, "rslave");
        let t = parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770").unwrap();
        assert_eq!((t.tmpfs_size, t.tmpfs_mode), (1 << 20, 0o1770));
        let v = parse_mount("target=/v,volume-nocopy,readonly=false").unwrap();
        assert_eq!(v.kind, "volume");
        assert!(v.no_copy && !v.read_only);
        let err = |a: &str| parse_mount(a).unwrap_err().to_string();
        let says = |a: &str, why: &str| {
            assert_eq!(
                err(a),
                format!("invalid argument \"{a}\" for \"--mount\" flag: {why}")
            )
        };
        says("", "EOF");
        says("type=bind,source=/tmp", "target is required");
        says(
            "type=tmpfs,target=/x,tmpfs-size=abc",
            "invalid value for tmpfs-size: abc",
        );
        says(
            "type=tmpfs,target=/x,tmpfs-size=-1",
            "invalid value for tmpfs-size: -1",
        );
        says(
            "type=tmpfs,target=/x,tmpfs-mode=999",
            "invalid value for tmpfs-mode: 999",
        );
        says(
            "type=bind,source=/tmp,target=/x,volume-nocopy",
            "cannot mix 'volume-*' options with mount type 'bind'",
        );
        says(
            "type=volume,target=/x,bind-propagation=rshared",
            "cannot mix 'bind-*' options with mount type 'volume'",
        );
        says(
            "type=bind,source=/tmp,target=/x,tmpfs-size=1m",
            "cannot mix 'tmpfs-*' options with mount type 'bind'",
        );
        says(
            "type=bind,source=/tmp,target=/x,readonly=maybe",
            "invalid value for readonly: maybe",
        );
        says("bogus=1,target=/x", "unexpected key 'bogus' in 'bogus=1'");
        says(
            "type=bind,source=/tmp,target=/x,foo",
            "invalid field 'foo' must be a key=value pair",
        );
    }
}
