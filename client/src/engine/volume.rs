//! Volumes: docker's `local` volume driver, without a daemon.
//!
//! ```text
//! volumes/<name>/_data          the content: what containers mount
//! volumes/<name>/volume.json    when it was made, its labels and driver options
//! volumes/.lock                 (flock) volume create, rm, prune and container create
//! ```
//!
//! A volume is the same object however it came to be: `volume create`, `run -v NAME:/dir`
//! (a name no volume has yet is created then, as docker does) or an anonymous one (`-v
//! /dir`, an image's `VOLUME`, named by 64 hex digits). A volume made by an older berth has
//! no `volume.json`: its directory's time stands for its creation, and it has no labels.
//! "In use" means named by a container record, whatever the container's state, as docker
//! counts it; the check and the removal happen under the lock that container create also
//! takes, so a volume cannot go between a create's check and its record.
//!
//! Driver options are the local driver's: `type`, `device` and `o` (mount options), mounted
//! over `_data` by the first start of a container that uses the volume and unmounted when
//! the volume is removed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::events::{Event, Kind};

use super::supervise::{flock, Flock};
use super::{io_err, names, new_id, remove_tree, tree_size, write_file, Engine, EngineError};
use super::{ContainerRecord, Result};

/// The one driver berth has.
pub const LOCAL: &str = "local";

/// A volume as `volume inspect` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub driver: String,
    /// RFC 3339, whole seconds.
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The local driver's options (`type`, `device`, `o`).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// What `volume create` takes.
#[derive(Debug, Clone, Default)]
pub struct VolumeOptions {
    /// `None`: an anonymous volume (64 hex digits).
    pub name: Option<String>,
    /// `None` or `local`.
    pub driver: Option<String>,
    pub labels: Vec<(String, String)>,
    pub options: Vec<(String, String)>,
}

/// A volume's `create` or `destroy` event (docker's: the name, the driver).
pub(super) fn volume_event(name: &str, action: &str) -> Event {
    Event::new(Kind::Volume, action, name).attr("driver", LOCAL)
}

fn now_seconds() -> String {
    let t = berth_runtime::now_rfc3339();
    match t.split_once('.') {
        Some((s, _)) => format!("{s}Z"),
        None => t,
    }
}

/// The local driver's options, checked as docker checks them.
fn check_options(name: &str, options: &BTreeMap<String, String>) -> Result<()> {
    let bad = |m: String| EngineError::Invalid(format!("create {name}: {m}"));
    for k in options.keys() {
        match k.as_str() {
            "type" | "device" | "o" => {}
            "size" => return Err(bad("quota size requested but no quota support".into())),
            other => return Err(bad(format!("invalid option: {other:?}"))),
        }
    }
    for (opt, needs) in [("device", "type"), ("type", "device"), ("o", "device")] {
        if options.contains_key(opt) && !options.contains_key(needs) {
            return Err(bad(format!("missing required option: {needs:?}")));
        }
    }
    if let Some(o) = options.get("o") {
        mount_flags(o).map_err(bad)?;
    }
    Ok(())
}

/// `o=` as mount(8) reads it: the flags it names, and the rest as the file system's data.
pub(super) fn mount_flags(
    o: &str,
) -> std::result::Result<(rustix::mount::MountFlags, String), String> {
    use rustix::mount::MountFlags as F;
    let mut flags = F::empty();
    let mut data = Vec::new();
    for opt in o.split(',').filter(|s| !s.is_empty()) {
        match opt {
            "ro" => flags |= F::RDONLY,
            "rw" => flags -= F::RDONLY,
            "nosuid" => flags |= F::NOSUID,
            "suid" => flags -= F::NOSUID,
            "nodev" => flags |= F::NODEV,
            "dev" => flags -= F::NODEV,
            "noexec" => flags |= F::NOEXEC,
            "exec" => flags -= F::NOEXEC,
            "sync" => flags |= F::SYNCHRONOUS,
            "async" => flags -= F::SYNCHRONOUS,
            "noatime" => flags |= F::NOATIME,
            "nodiratime" => flags |= F::NODIRATIME,
            "relatime" => flags |= F::RELATIME,
            "strictatime" => flags |= F::STRICTATIME,
            "bind" => flags |= F::BIND,
            "rbind" => flags |= F::BIND | F::REC,
            "remount" | "move" => return Err(format!("invalid mount option {opt:?}")),
            other => data.push(other),
        }
    }
    Ok((flags, data.join(",")))
}

/// Whether `dir` is a mount point (its device differs from its parent's).
pub(super) fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(dir), dir.parent().map(std::fs::metadata)) {
        (Ok(a), Some(Ok(b))) => a.dev() != b.dev(),
        _ => false,
    }
}

impl Engine {
    fn volume_dir(&self, name: &str) -> PathBuf {
        self.volumes_dir().join(name)
    }

    /// Where a volume's content is (`Mountpoint`).
    pub fn volume_mountpoint(&self, name: &str) -> PathBuf {
        self.volume_dir(name).join("_data")
    }

    /// The lock under which volumes are made, checked for use and removed.
    pub(super) fn volumes_lock(&self) -> Result<Flock> {
        let dir = self.volumes_dir();
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        Ok(flock(&dir.join(".lock"), true, true)?.expect("a blocking flock returns locked"))
    }

    /// Makes a volume unless it exists (the caller holds [`Engine::volumes_lock`]); true
    /// when it was made.
    pub(super) fn make_volume(&self, r: &VolumeRecord) -> Result<bool> {
        let dir = self.volume_dir(&r.name);
        if dir.join("_data").is_dir() {
            return Ok(false);
        }
        let data = dir.join("_data");
        std::fs::create_dir_all(&data).map_err(io_err(&data))?;
        let json = serde_json::to_vec_pretty(r).expect("a volume record serialises");
        write_file(&dir.join("volume.json"), &json)?;
        Ok(true)
    }

    /// A fresh record for a volume that a container asks for by name (or anonymously).
    pub(super) fn volume_for_container(name: &str) -> VolumeRecord {
        VolumeRecord {
            name: name.to_string(),
            driver: LOCAL.into(),
            created_at: now_seconds(),
            labels: BTreeMap::new(),
            options: BTreeMap::new(),
        }
    }

    /// `volume create`: an existing volume of that name is answered as it is (docker's
    /// rule); the event is written only for a new one.
    pub fn create_volume(&self, o: &VolumeOptions) -> Result<VolumeRecord> {
        let name = o.name.clone().unwrap_or_else(new_id);
        let driver = o.driver.clone().unwrap_or_else(|| LOCAL.into());
        if driver != LOCAL {
            return Err(EngineError::Invalid(format!(
                "create {name}: error looking up volume plugin {driver}: plugin {driver:?} not found"
            )));
        }
        if !names::valid(&name) {
            return Err(EngineError::Invalid(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, \
                 only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host \
                 directory, use absolute path"
            )));
        }
        let options: BTreeMap<String, String> = o.options.iter().cloned().collect();
        check_options(&name, &options)?;
        let rec = VolumeRecord {
            name: name.clone(),
            driver,
            created_at: now_seconds(),
            labels: o.labels.iter().cloned().collect(),
            options,
        };
        let _lock = self.volumes_lock()?;
        if self.make_volume(&rec)? {
            self.journal().record(volume_event(&name, "create"));
            Ok(rec)
        } else {
            self.volume(&name)
        }
    }

    /// A volume by its name, or docker's `No such volume`.
    pub fn volume(&self, name: &str) -> Result<VolumeRecord> {
        let dir = self.volume_dir(name);
        if !names::valid(name) || !dir.join("_data").is_dir() {
            return Err(EngineError::NoSuchVolume(name.to_string()));
        }
        if let Ok(data) = std::fs::read(dir.join("volume.json")) {
            if let Ok(r) = serde_json::from_slice::<VolumeRecord>(&data) {
                return Ok(r);
            }
        }
        let created = std::fs::metadata(&dir)
            .and_then(|m| m.modified())
            .map(|t| chrono::DateTime::<chrono::Utc>::from(t).format("%Y-%m-%dT%H:%M:%SZ"))
            .map(|t| t.to_string())
            .unwrap_or_default();
        Ok(VolumeRecord {
            created_at: created,
            ..Engine::volume_for_container(name)
        })
    }

    /// Every volume of the root, by name.
    pub fn list_volumes(&self) -> Result<Vec<VolumeRecord>> {
        let dir = self.volumes_dir();
        let mut names = Vec::new();
        match std::fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    if let Some(n) = e.file_name().to_str() {
                        names.push(n.to_string());
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&dir)(e)),
        }
        names.sort();
        // One removed meanwhile is simply not listed.
        Ok(names.iter().filter_map(|n| self.volume(n).ok()).collect())
    }

    /// Which containers name each volume (ids, in the order of the records).
    pub fn volume_users(&self) -> Result<BTreeMap<String, Vec<String>>> {
        Ok(users_of(&self.list()?))
    }

    /// Bytes of a volume's files.
    pub fn volume_size(&self, name: &str) -> u64 {
        tree_size(&self.volume_mountpoint(name))
    }

    /// `volume rm`: refused while a container names the volume (docker's message, `force`
    /// or not).
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        self.volume(name)?;
        let _lock = self.volumes_lock()?;
        if let Some(ids) = self.volume_users()?.get(name) {
            return Err(EngineError::Invalid(format!(
                "remove {name}: volume is in use - [{}]",
                ids.join(" ")
            )));
        }
        self.destroy_volume(name)
    }

    /// Removes a volume nobody uses (the caller holds the lock and has checked).
    pub(super) fn destroy_volume(&self, name: &str) -> Result<()> {
        let dir = self.volume_dir(name);
        let data = dir.join("_data");
        if is_mount_point(&data) {
            rustix::mount::unmount(&data, rustix::mount::UnmountFlags::DETACH)
                .map_err(|e| io_err(&data)(e.into()))?;
        }
        // Renamed away first: a failure below leaves debris, never half a volume.
        let trash = self.volumes_dir().join(format!(".removing-{name}"));
        std::fs::rename(&dir, &trash).map_err(io_err(&dir))?;
        remove_tree(&trash).map_err(io_err(&trash))?;
        self.journal().record(volume_event(name, "destroy"));
        Ok(())
    }

    /// `volume prune`: removes every volume no container names and `keep` does not keep;
    /// the names removed and the bytes they held.
    pub fn prune_volumes(
        &self,
        keep: impl Fn(&VolumeRecord) -> bool,
    ) -> Result<(Vec<String>, u64)> {
        let _lock = self.volumes_lock()?;
        let used = self.volume_users()?;
        let mut removed = Vec::new();
        let mut bytes = 0;
        for v in self.list_volumes()? {
            if used.contains_key(&v.name) || keep(&v) {
                continue;
            }
            let size = self.volume_size(&v.name);
            self.destroy_volume(&v.name)?;
            bytes += size;
            removed.push(v.name);
        }
        self.journal().record(Event::prune(Kind::Volume, bytes));
        Ok((removed, bytes))
    }

    /// Mounts a volume's driver options over its content before a container uses it (once:
    /// a volume already mounted stays as it is).
    pub(super) fn mount_volume(&self, name: &str) -> Result<()> {
        let v = self.volume(name)?;
        let (Some(fstype), Some(device)) = (v.options.get("type"), v.options.get("device")) else {
            return Ok(());
        };
        let _lock = self.volumes_lock()?;
        let data = self.volume_mountpoint(name);
        if is_mount_point(&data) {
            return Ok(());
        }
        let (flags, extra) = mount_flags(v.options.get("o").map(String::as_str).unwrap_or(""))
            .map_err(|m| {
                EngineError::Invalid(format!("error while mounting volume '{name}': {m}"))
            })?;
        let extra_c = std::ffi::CString::new(extra.clone())
            .map_err(|_| EngineError::Invalid(format!("volume {name}: a NUL in its options")))?;
        rustix::mount::mount(device.as_str(), &data, fstype.as_str(), flags, extra_c.as_c_str())
            .map_err(|e| {
                EngineError::Invalid(format!(
                    "error while mounting volume '{}': failed to mount local volume: mount {device}:{} , data: {extra}: {}",
                    data.display(),
                    data.display(),
                    std::io::Error::from(e)
                ))
            })
    }
}

/// Volume name → ids of the containers whose records name it.
fn users_of(containers: &[ContainerRecord]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in containers {
        let names: BTreeSet<&String> = c.mounts.iter().filter_map(|m| m.name.as_ref()).collect();
        for n in names {
            m.entry(n.clone()).or_default().push(c.id.clone());
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_driver_options() {
        let opts = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(check_options("v", &opts(&[])).is_ok());
        assert!(check_options("v", &opts(&[("type", "tmpfs"), ("device", "tmpfs")])).is_ok());
        let err = |kv| check_options("v", &opts(kv)).unwrap_err().to_string();
        assert_eq!(err(&[("foo", "bar")]), "create v: invalid option: \"foo\"");
        assert_eq!(
            err(&[("type", "tmpfs")]),
            "create v: missing required option: \"device\""
        );
        assert_eq!(
            err(&[("o", "size=1m")]),
            "create v: missing required option: \"device\""
        );
        let (f, data) = mount_flags("ro,nodev,size=10m,uid=1000").unwrap();
        assert!(f.contains(rustix::mount::MountFlags::RDONLY | rustix::mount::MountFlags::NODEV));
        assert_eq!(data, "size=10m,uid=1000");
    }
}
