//! A container's files as data: what it changed (`diff`), its changes as a new image
//! (`commit`) and its whole merged tree as a tar (`export`).
//!
//! A container's root filesystem is, top first: `upper/` (what its processes wrote),
//! `init/` (docker's init layer: the mount targets and `/.dockerenv` every container has, so
//! they are in `export` but not in `diff` or `commit`), then the image's snapshots.

use std::io::Write;
use std::path::{Path, PathBuf};

use berth_storage::Digest;
use serde_json::{json, Value};

use super::{container_event, io_err, ContainerRecord, Engine, EngineError, Result, Status};
use crate::images::{apply_changes, chain_id, now_rfc3339, ImageError, LayerRecord};
use crate::layer::{self, Change, Compression, LayerOptions, LayerSource};
use crate::reference::ImageRef;

/// docker's init layer: what every container's root has, whatever its image.
const INIT_DIRS: [&str; 4] = ["dev/pts", "dev/shm", "proc", "sys"];
const INIT_FILES: [&str; 5] = [
    ".dockerenv",
    "dev/console",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
];

/// What `commit` takes besides the container.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    /// `REPO[:TAG]` for the new image.
    pub reference: Option<ImageRef>,
    /// `-a`: the image's author.
    pub author: Option<String>,
    /// `-m`: the history entry's comment.
    pub message: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config.
    pub changes: Vec<String>,
    /// `-p` (docker's default): freeze a running container while its files are read.
    pub pause: bool,
}

impl Default for CommitOptions {
    fn default() -> CommitOptions {
        CommitOptions {
            reference: None,
            author: None,
            message: None,
            changes: Vec::new(),
            pause: true,
        }
    }
}

/// Only these instructions may change a committed image's config (docker's list).
const COMMIT_INSTRUCTIONS: [&str; 11] = [
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "HEALTHCHECK",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Writes docker's init layer into `dir` (which must not exist yet): a temporary name and a
/// rename, so a half-made one is never used.
pub(super) fn write_init_layer(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = dir.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let made = (|| -> std::io::Result<()> {
        for d in INIT_DIRS.iter().chain(["etc"].iter()) {
            std::fs::create_dir_all(tmp.join(d))?;
        }
        for f in INIT_FILES {
            let p = tmp.join(f);
            std::fs::File::create(&p)?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
        }
        std::os::unix::fs::symlink("/proc/mounts", tmp.join("etc/mtab"))?;
        std::fs::rename(&tmp, dir)
    })();
    made.map_err(|e| {
        let _ = std::fs::remove_dir_all(&tmp);
        io_err(dir)(e)
    })
}

impl Engine {
    /// The container's init layer, made when missing (containers created before berth had
    /// one get it at their next start).
    pub(super) fn init_layer(&self, rec: &ContainerRecord) -> Result<PathBuf> {
        let dir = self.dir(&rec.id).join("init");
        if !dir.is_dir() {
            write_init_layer(&dir)?;
        }
        Ok(dir)
    }

    /// The layers under the container's upper directory, top first: its init layer (when it
    /// has one), then the image's snapshots.
    pub(super) fn lower_dirs(&self, rec: &ContainerRecord) -> Vec<PathBuf> {
        let init = self.dir(&rec.id).join("init");
        let mut v: Vec<PathBuf> = init.is_dir().then_some(init).into_iter().collect();
        v.extend(rec.layers.iter().rev().map(|c| self.images.snapshot_dir(c)));
        v
    }

    /// Makes sure the snapshots under the container are there: those missing are unpacked
    /// from the image's blobs (a committed image's layer is, when first used), else an
    /// error says to pull the image again.
    pub(super) fn check_snapshots(&self, rec: &ContainerRecord) -> Result<()> {
        if rec
            .layers
            .iter()
            .any(|c| !self.images.snapshot_dir(c).is_dir())
        {
            if let Some(image) = self
                .images
                .list()?
                .into_iter()
                .find(|i| i.id == rec.image_id)
            {
                self.images.unpack_missing(&image.layers)?;
            }
        }
        for c in &rec.layers {
            let snap = self.images.snapshot_dir(c);
            if !snap.is_dir() {
                return Err(EngineError::Invalid(format!(
                    "the layer {c} of image {} is missing from {}; pull the image again",
                    rec.image,
                    snap.display()
                )));
            }
        }
        Ok(())
    }

    /// `diff`: what the container changed, with docker's rules (see [`layer::changes`]).
    pub fn changes(&self, rec: &ContainerRecord) -> Result<Vec<Change>> {
        self.check_snapshots(rec)?;
        let upper = self.dir(&rec.id).join("upper");
        layer::changes(&upper, &self.lower_dirs(rec)).map_err(invalid)
    }

    /// `export`: the container's merged root filesystem as a tar written to `out` (volumes
    /// and other mounts not included, as docker's). Returns the bytes written.
    pub fn export<W: Write>(&self, rec: &ContainerRecord, out: W) -> Result<u64> {
        self.check_snapshots(rec)?;
        let mut layers = vec![self.dir(&rec.id).join("upper")];
        layers.extend(self.lower_dirs(rec));
        let n = layer::export(&layers, out).map_err(invalid)?;
        self.journal().record(container_event(rec, "export"));
        Ok(n)
    }

    /// `commit`: a new image of the container's image plus one layer of what the container
    /// changed (stored uncompressed until it is pushed, unpacked when the image is first
    /// used), with the container's configuration
    /// and `-c` changes; returns its id. A running container is paused meanwhile when
    /// `options.pause`.
    pub async fn commit(&self, rec: &ContainerRecord, options: &CommitOptions) -> Result<Digest> {
        if options
            .reference
            .as_ref()
            .is_some_and(|r| r.digest().is_some())
        {
            return Err(EngineError::Invalid(
                "refusing to create a tag with a digest reference".into(),
            ));
        }
        for c in &options.changes {
            let inst = c.split_whitespace().next().unwrap_or_default();
            if !COMMIT_INSTRUCTIONS.contains(&inst.to_ascii_uppercase().as_str()) {
                return Err(EngineError::Invalid(format!(
                    "{} is not a valid change command",
                    inst.to_ascii_lowercase()
                )));
            }
        }
        self.check_snapshots(rec)?;
        let image = self
            .images
            .list()?
            .into_iter()
            .find(|i| i.id == rec.image_id)
            .ok_or_else(|| ImageError::NotFound(rec.image_id.to_string()))?;
        let parent_config = self.images.config(&image).await?;
        let epoch = LayerOptions::epoch_from_env().map_err(invalid)?;
        let created = match epoch {
            Some(e) => chrono::DateTime::from_timestamp(e, 0)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                .unwrap_or_else(now_rfc3339),
            None => now_rfc3339(),
        };
        let mut config = new_config(rec, parent_config, options, &created)?;

        // A rootless container without a cgroup of its own (none delegated to the user) has
        // no freezer: its files are read while it runs, as podman's `commit` does then.
        let paused = options.pause && self.state(rec).status == Status::Running && {
            let frozen = self.pause(rec);
            match frozen {
                Err(_) if super::rootless::active() => false,
                other => other.map(|()| true)?,
            }
        };
        let written = {
            let store = self.images.clone();
            let upper = self.dir(&rec.id).join("upper");
            tokio::task::spawn_blocking(move || {
                layer::write_layer(
                    &store,
                    LayerSource::Upper(&upper),
                    &LayerOptions {
                        compression: Compression::None,
                        source_date_epoch: epoch,
                        // Unpacked when the image is first used (`unpack_missing`): a
                        // commit writes the container's changes once.
                        snapshot: None,
                        // No changes, no layer (docker's commit adds none either): the
                        // image records an empty history entry and refers to no blob.
                        skip_empty: true,
                        ..LayerOptions::default()
                    },
                )
            })
            .await
            .expect("the layer task does not panic")
        };
        if paused {
            // A container stopped meanwhile has nothing to unpause.
            if let Err(e) = self.unpause(rec) {
                tracing::warn!("unpausing {} after the commit: {e}", rec.id);
            }
        }
        let written = written.map_err(invalid)?;
        let mut layers: Vec<LayerRecord> = image.layers.clone();
        let empty = written.entries == 0;
        if !empty {
            let chain = chain_id(layers.last().map(|l| &l.chain_id), &written.diff_id);
            layers.push(LayerRecord {
                digest: written.digest.clone(),
                media_type: written.media_type.to_string(),
                size: written.size,
                diff_id: written.diff_id.clone(),
                chain_id: chain,
                unpacked_size: written.uncompressed_size,
            });
            config["rootfs"]["diff_ids"]
                .as_array_mut()
                .expect("new_config makes the list")
                .push(json!(written.diff_id));
        }
        let history = config["history"]
            .as_array_mut()
            .expect("new_config makes the list");
        let mut entry = json!({
            "created": created,
            "created_by": rec.config.cmd.join(" "),
        });
        if let Some(a) = &options.author {
            entry["author"] = json!(a);
        }
        if let Some(m) = &options.message {
            entry["comment"] = json!(m);
        }
        if empty {
            entry["empty_layer"] = json!(true);
        }
        history.push(entry);
        let bytes = bytes::Bytes::from(serde_json::to_vec(&config).expect("serialises"));
        let names: Vec<ImageRef> = options.reference.iter().cloned().collect();
        let id = self
            .images
            .add_image(bytes, layers, None, &names, Some(image.id.clone()))
            .await?;
        let mut event = container_event(rec, "commit")
            .attr("comment", options.message.as_deref().unwrap_or_default())
            .attr("imageID", id.as_str());
        if let Some(r) = &options.reference {
            event = event.attr("imageRef", r.familiar());
        }
        self.journal().record(event);
        Ok(id)
    }
}

fn invalid(e: layer::LayerError) -> EngineError {
    EngineError::Invalid(e.to_string())
}

/// The committed image's config: the parent's, with the container's process settings (its
/// command, environment, user, working directory, labels as it was created), then the `-c`
/// changes; history and diff ids carried over.
fn new_config(
    rec: &ContainerRecord,
    parent: Value,
    options: &CommitOptions,
    created: &str,
) -> Result<Value> {
    let mut config = match parent {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    let mut cfg = match config.remove("config") {
        Some(Value::Object(m)) => m,
        _ => serde_json::Map::new(),
    };
    let p = &rec.config;
    // docker's container config has no environment when neither image nor `-e` set one
    // (it adds no PATH: the runtime gives a process the default one), and commits it so.
    let list_or_null = |v: &Vec<String>| if v.is_empty() { Value::Null } else { json!(v) };
    cfg.insert("Env".into(), list_or_null(&p.env));
    cfg.insert("Cmd".into(), json!(p.cmd));
    cfg.insert("Entrypoint".into(), list_or_null(&p.entrypoint));
    cfg.insert("WorkingDir".into(), json!(p.working_dir));
    cfg.insert("User".into(), json!(p.user));
    cfg.insert("Labels".into(), json!(p.labels));
    if let Some(s) = &p.stop_signal {
        cfg.insert("StopSignal".into(), json!(s));
    }
    apply_changes(&mut cfg, &options.changes)?;
    config.insert("config".into(), Value::Object(cfg));
    config.insert("created".into(), json!(created));
    config.insert("container".into(), json!(rec.id));
    match &options.author {
        Some(a) => {
            config.insert("author".into(), json!(a));
        }
        None => {
            config.remove("author");
        }
    }
    if !config.get("history").is_some_and(Value::is_array) {
        config.insert("history".into(), json!([]));
    }
    let rootfs = config
        .entry("rootfs")
        .or_insert_with(|| json!({"type": "layers"}));
    if !rootfs.get("diff_ids").is_some_and(Value::is_array) {
        rootfs["diff_ids"] = json!([]);
    }
    Ok(Value::Object(config))
}
