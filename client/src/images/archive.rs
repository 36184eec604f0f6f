//! `save`, `load` and `import`: images in and out of tar archives.
//!
//! `save` writes one tar that both generations of docker read: docker's `manifest.json`
//! (Config, RepoTags, Layers as paths in the tar) beside an OCI image layout (`oci-layout`,
//! `index.json`, `blobs/<alg>/<hex>`), the shape docker 25 and later write themselves. Layers
//! are written as stored (compressed or not); `docker load` decompresses them.
//!
//! `load` reads such tars (docker's older layout with `<id>/layer.tar` and its symlinks
//! included) and plain OCI image layouts, optionally gzip- or zstd-compressed. Entries are
//! written below a private directory of the store with their names checked; the blobs are
//! then hashed, moved into the store and unpacked like pulled layers.
//!
//! `import` turns one root filesystem tar into a one-layer image, with `-c` Dockerfile
//! instructions applied to its config.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use berth_storage::{Digest, Hasher};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};

use super::pull::{parse_config, parse_manifest, Desc};
use super::{
    chain_id, io_err, remove_tree, write_atomic, ImageError, ImageRecord, ImageStore, LayerRecord,
    Result,
};
use crate::reference::ImageRef;
use crate::remote::{
    is_index, select_platform, Platform, MEDIA_DOCKER_CONFIG, MEDIA_DOCKER_LAYER_GZIP,
    MEDIA_DOCKER_LAYER_TAR, MEDIA_DOCKER_MANIFEST, MEDIA_OCI_INDEX, MEDIA_OCI_LAYER_ZSTD,
    MEDIA_OCI_MANIFEST,
};
use crate::unpack::{unpack_layer, UnpackOptions};

/// Options of `import`.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Dockerfile instructions (`CMD ["sh"]`, `ENV A=b`, …) applied to the config.
    pub changes: Vec<String>,
    /// The history comment (`-m`).
    pub message: Option<String>,
    pub platform: Platform,
    /// Where the tar came from, for the default comment (`Imported from -`).
    pub source: String,
}

impl Default for ImportOptions {
    fn default() -> ImportOptions {
        ImportOptions {
            changes: Vec::new(),
            message: None,
            platform: Platform::host(),
            source: "-".into(),
        }
    }
}

/// An image that `load` brought in.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub id: Digest,
    /// Full references it was tagged with.
    pub names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OciIndex {
    #[serde(default)]
    manifests: Vec<OciDesc>,
}

#[derive(Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct OciDesc {
    media_type: String,
    digest: Digest,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

fn media_type_of(path: &Path) -> Result<&'static str> {
    let mut magic = [0u8; 4];
    let mut f = File::open(path).map_err(io_err(path))?;
    let n = f.read(&mut magic).map_err(io_err(path))?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => MEDIA_DOCKER_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => MEDIA_OCI_LAYER_ZSTD,
        _ => MEDIA_DOCKER_LAYER_TAR,
    })
}

fn hash_file(path: &Path) -> Result<(Digest, u64)> {
    let mut f = File::open(path).map_err(io_err(path))?;
    let mut h = Hasher::new(berth_storage::Algorithm::Sha256);
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = f.read(&mut buf).map_err(io_err(path))?;
        if k == 0 {
            return Ok((h.finish(), n));
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
}

/// A path inside an archive, made relative and free of `..`; `None` if it tries to leave.
fn clean(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(x) => out.push(x),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// Unwraps gzip or zstd around a tar stream.
fn decompressed<'a, R: Read + 'a>(r: R) -> std::io::Result<Box<dyn Read + 'a>> {
    let mut r = BufReader::with_capacity(1 << 20, r);
    let magic = {
        use std::io::BufRead;
        r.fill_buf()?
            .get(..4)
            .map(|m| m.to_vec())
            .unwrap_or_default()
    };
    Ok(match magic.as_slice() {
        [0x1f, 0x8b, ..] => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(zstd::stream::read::Decoder::with_buffer(r)?),
        _ => Box::new(r),
    })
}

/// Writes an archive's regular files and directories below `dir`; symlinks between its own
/// files become hard links; anything else is ignored.
fn extract(r: impl Read, dir: &Path) -> Result<()> {
    let mut ar = tar::Archive::new(decompressed(r).map_err(io_err(dir))?);
    let mut links = Vec::new();
    let entries = ar
        .entries()
        .map_err(|e| ImageError::Invalid(format!("the archive is not a tar: {e}")))?;
    for entry in entries {
        let mut entry = entry
            .map_err(|e| ImageError::Invalid(format!("the archive is not a valid tar: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| ImageError::Invalid(format!("bad entry name: {e}")))?
            .into_owned();
        let Some(rel) = clean(&path) else {
            return Err(ImageError::Invalid(format!(
                "archive entry {} points outside the archive",
                path.display()
            )));
        };
        if rel.as_os_str().is_empty() {
            continue;
        }
        let dest = dir.join(&rel);
        match entry.header().entry_type() {
            tar::EntryType::Directory => std::fs::create_dir_all(&dest).map_err(io_err(&dest))?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                if let Some(p) = dest.parent() {
                    std::fs::create_dir_all(p).map_err(io_err(p))?;
                }
                let mut f = File::create(&dest).map_err(io_err(&dest))?;
                std::io::copy(&mut entry, &mut f).map_err(io_err(&dest))?;
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Some(target) = entry.link_name().ok().flatten() {
                    let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                        rel.parent()
                            .map(Path::to_path_buf)
                            .unwrap_or_default()
                            .join(target)
                    } else {
                        target.into_owned()
                    };
                    if let Some(t) = clean(&base).filter(|t| !t.as_os_str().is_empty()) {
                        links.push((dest, dir.join(t)));
                    }
                }
            }
            _ => {}
        }
    }
    for (link, target) in links {
        if target.is_file() {
            if let Some(p) = link.parent() {
                std::fs::create_dir_all(p).map_err(io_err(p))?;
            }
            let _ = std::fs::remove_file(&link);
            std::fs::hard_link(&target, &link).map_err(io_err(&link))?;
        }
    }
    Ok(())
}

/// The config's list or map `key`, made `empty` when missing or null (docker writes
/// `"OnBuild": null`, `"Labels": null`), so a change adds to it rather than vanish.
fn field<'a>(
    config: &'a mut serde_json::Map<String, Value>,
    key: &str,
    empty: Value,
) -> &'a mut Value {
    let v = config.entry(key).or_insert(Value::Null);
    if v.is_null() {
        *v = empty;
    }
    v
}

/// Applies `-c` Dockerfile instructions to an image config's `config` object. Each is read
/// by the Dockerfile parser (`dockerfile::instructions`) and its words substituted with the config's
/// environment (`dockerfile::shell`), as docker's commit does; the instructions docker's commit
/// accepts are applied, others refused.
pub(crate) fn apply_changes(
    config: &mut serde_json::Map<String, Value>,
    changes: &[String],
) -> Result<()> {
    use crate::dockerfile::config::HealthConfig;
    use crate::dockerfile::instructions::{expose_ports, single, CommandLine, Instruction};
    use crate::dockerfile::shell::Lexer;
    let lexer = Lexer::new('\\');
    // The shell form runs under the default shell, as docker's commit does.
    let list = |c: &CommandLine| -> Value {
        if c.shell_form {
            json!(["/bin/sh", "-c", c.args.join(" ")])
        } else {
            json!(c.args)
        }
    };
    for change in changes {
        let (word, inst) = single(change.trim()).map_err(ImageError::Invalid)?;
        let env: Vec<(String, String)> = config
            .get("Env")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str()?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let expand = |w: &str| {
            lexer
                .word(w, &env)
                .map_err(|e| ImageError::Invalid(format!("{change}: {e}")))
        };
        match inst {
            Instruction::Cmd(c) => {
                config.insert("Cmd".into(), list(&c));
            }
            Instruction::Entrypoint(c) => {
                config.insert("Entrypoint".into(), list(&c));
            }
            Instruction::User(u) => {
                config.insert("User".into(), json!(expand(&u)?));
            }
            Instruction::Workdir(w) => {
                config.insert("WorkingDir".into(), json!(expand(&w)?));
            }
            Instruction::Onbuild(t) => {
                let triggers = field(config, "OnBuild", json!([]));
                if !triggers.is_array() {
                    *triggers = json!([]);
                }
                if let Value::Array(a) = triggers {
                    a.push(json!(t));
                }
            }
            Instruction::StopSignal(s) => {
                config.insert("StopSignal".into(), json!(expand(&s)?));
            }
            Instruction::Healthcheck(h) => {
                let hc = serde_json::to_value(HealthConfig::from(&h))
                    .expect("a health config serializes");
                config.insert("Healthcheck".into(), hc);
            }
            Instruction::Env(pairs) => {
                let pairs = pairs
                    .iter()
                    .map(|kv| Ok((expand(&kv.key)?, expand(&kv.value)?)))
                    .collect::<Result<Vec<_>>>()?;
                if let Value::Array(a) = field(config, "Env", json!([])) {
                    for (k, v) in pairs {
                        let prefix = format!("{k}=");
                        a.retain(|e| !e.as_str().is_some_and(|e| e.starts_with(&prefix)));
                        a.push(json!(format!("{k}={v}")));
                    }
                }
            }
            Instruction::Label(pairs) => {
                let pairs = pairs
                    .iter()
                    .map(|kv| Ok((expand(&kv.key)?, expand(&kv.value)?)))
                    .collect::<Result<Vec<_>>>()?;
                let labels = field(config, "Labels", json!({}));
                for (k, v) in pairs {
                    labels[k] = json!(v);
                }
            }
            Instruction::Expose(ports) => {
                let ports = ports
                    .iter()
                    .map(|p| expand(p))
                    .collect::<Result<Vec<_>>>()?;
                // docker's reading of a port spec: `8000-8002` is three ports.
                let mut specs = Vec::new();
                for p in &ports {
                    specs.extend(expose_ports(p).map_err(ImageError::Invalid)?);
                }
                let exposed = field(config, "ExposedPorts", json!({}));
                for p in specs {
                    exposed[p] = json!({});
                }
            }
            Instruction::Volume(paths) => {
                let paths = paths
                    .iter()
                    .map(|p| expand(p))
                    .collect::<Result<Vec<_>>>()?;
                let vols = field(config, "Volumes", json!({}));
                for p in paths {
                    vols[p] = json!({});
                }
            }
            _ => {
                return Err(ImageError::Invalid(format!(
                    "{word} is not a valid change command"
                )))
            }
        }
    }
    Ok(())
}

impl ImageStore {
    fn work_dir(&self) -> Result<PathBuf> {
        let d = self
            .root
            .join("partial")
            .join(format!("work-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&d).map_err(io_err(&d))?;
        Ok(d)
    }

    /// Gives an unpacked layer (`tmp`, under `snapshots/`) its name: the chain id of
    /// `diff_id` on top of `parent`, with its sidecar record. A snapshot already there (the
    /// same layer, made by another command) is kept and `tmp` removed. Returns the chain id.
    pub(crate) fn publish_snapshot(
        &self,
        tmp: &Path,
        parent: Option<&Digest>,
        diff_id: &Digest,
        size: u64,
    ) -> Result<Digest> {
        let chain = chain_id(parent, diff_id);
        self.publish_snapshot_as(tmp, &chain, diff_id, size)?;
        Ok(chain)
    }

    /// [`ImageStore::publish_snapshot`] under a known chain id.
    fn publish_snapshot_as(
        &self,
        tmp: &Path,
        chain: &Digest,
        diff_id: &Digest,
        size: u64,
    ) -> Result<()> {
        let snap = self.snapshot_dir(chain);
        if snap.exists() {
            remove_tree(tmp)?;
        } else if let Err(e) = std::fs::rename(tmp, &snap) {
            // Another command published the same layer meanwhile: keep its copy.
            if !snap.is_dir() {
                return Err(io_err(&snap)(e));
            }
            remove_tree(tmp)?;
        }
        write_atomic(
            &snap.with_extension("json"),
            &serde_json::to_vec(&json!({"diff_id": diff_id, "size": size})).expect("serialises"),
        )
    }

    /// Unpacks from their blobs the snapshots of `layers` that are missing: `commit` stores
    /// only the blob, and its layer is unpacked when the image is first used (run, create,
    /// build FROM). Each one is checked against its diff id. A layer whose blob is missing
    /// too is left for the caller to report.
    pub(crate) fn unpack_missing(&self, layers: &[LayerRecord]) -> Result<()> {
        for l in layers {
            if self.snapshot_dir(&l.chain_id).is_dir() {
                continue;
            }
            let path = self
                .store
                .blobs
                .local_path(&l.digest)
                .expect("the client store is on a file system");
            let Ok(blob) = File::open(&path) else {
                continue;
            };
            let tmp = self.snapshot_tmp()?;
            let unpacked = unpack_layer(blob, &tmp, &UnpackOptions::default())
                .map_err(ImageError::from)
                .and_then(|s| {
                    if s.diff_id != l.diff_id {
                        return Err(ImageError::DiffIdMismatch {
                            layer: l.digest.clone(),
                            expected: l.diff_id.clone(),
                            actual: s.diff_id,
                        });
                    }
                    self.publish_snapshot_as(&tmp, &l.chain_id, &l.diff_id, s.uncompressed_size)
                });
            if let Err(e) = unpacked {
                let _ = remove_tree(&tmp);
                return Err(e);
            }
        }
        Ok(())
    }

    /// A fresh directory under `snapshots/` to unpack a layer into before it has a name.
    pub(crate) fn snapshot_tmp(&self) -> Result<PathBuf> {
        let tmp = self
            .root
            .join("snapshots")
            .join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        Ok(tmp)
    }

    /// Moves a layer file into the store (as blob `digest`) and makes its snapshot on top of
    /// `parent`; checks the diff id when one is expected.
    fn ingest_layer(
        &self,
        path: &Path,
        expected: Option<&Digest>,
        parent: Option<&Digest>,
        expected_diff: Option<&Digest>,
        media_type: Option<&str>,
    ) -> Result<LayerRecord> {
        let (digest, size) = hash_file(path)?;
        if let Some(e) = expected {
            if e != &digest {
                return Err(
                    berth_storage::StoreError::DigestMismatch(berth_storage::Mismatch {
                        expected: e.clone(),
                        actual: digest,
                    })
                    .into(),
                );
            }
        }
        let media_type = match media_type {
            Some(m) => m.to_string(),
            None => media_type_of(path)?.to_string(),
        };
        let tmp = self.snapshot_tmp()?;
        let summary = File::open(path)
            .map_err(io_err(path))
            .and_then(|f| Ok(unpack_layer(f, &tmp, &UnpackOptions::default())?));
        let summary = match summary {
            Ok(s) => s,
            Err(e) => {
                let _ = remove_tree(&tmp);
                return Err(e);
            }
        };
        if let Some(e) = expected_diff {
            if e != &summary.diff_id {
                let _ = remove_tree(&tmp);
                return Err(ImageError::DiffIdMismatch {
                    layer: digest,
                    expected: e.clone(),
                    actual: summary.diff_id,
                });
            }
        }
        let chain =
            self.publish_snapshot(&tmp, parent, &summary.diff_id, summary.uncompressed_size)?;
        let dest = self
            .store
            .blobs
            .local_path(&digest)
            .expect("a file system store");
        if !dest.exists() {
            let parent = dest.parent().expect("blob paths have a parent");
            std::fs::create_dir_all(parent).map_err(io_err(parent))?;
            // Hard link, not rename: the same file may serve another image of the archive.
            if std::fs::hard_link(path, &dest).is_err() {
                std::fs::copy(path, &dest).map_err(io_err(&dest))?;
            }
        }
        Ok(LayerRecord {
            digest,
            media_type,
            size,
            diff_id: summary.diff_id,
            chain_id: chain,
            unpacked_size: summary.uncompressed_size,
        })
    }

    /// Records an image whose config is `config` and layers are `layers`, with `manifest`
    /// if the archive carried one (else a docker v2 manifest is written), and the image it
    /// was made from (`commit`'s parent).
    pub(crate) async fn add_image(
        &self,
        config: Bytes,
        layers: Vec<LayerRecord>,
        manifest: Option<(Bytes, String)>,
        names: &[ImageRef],
        parent: Option<Digest>,
    ) -> Result<Digest> {
        let id = self.store.blobs.put_new(config.clone()).await?;
        let cfg = parse_config(&config)?;
        let (manifest, manifest_media_type) = match manifest {
            Some(m) => m,
            None => {
                let m = json!({
                    "schemaVersion": 2,
                    "mediaType": MEDIA_DOCKER_MANIFEST,
                    "config": {"mediaType": MEDIA_DOCKER_CONFIG, "size": config.len(), "digest": id},
                    "layers": layers.iter().map(|l| json!({"mediaType": l.media_type, "size": l.size, "digest": l.digest})).collect::<Vec<_>>(),
                });
                (
                    Bytes::from(serde_json::to_vec_pretty(&m).expect("serialises")),
                    MEDIA_DOCKER_MANIFEST.to_string(),
                )
            }
        };
        let manifest_digest = self.store.blobs.put_new(manifest.clone()).await?;
        let mut record = cfg.record(
            &id,
            config.len() as u64,
            (&manifest_digest, manifest_media_type, manifest.len() as u64),
            Vec::new(),
            layers,
        );
        record.parent = parent;
        self.commit_image(record, names, None).await?;
        Ok(id)
    }

    /// Writes `names` (images) as one tar to `out`.
    pub async fn save<W: Write + Send + 'static>(&self, names: &[String], out: W) -> Result<()> {
        let mut images: Vec<(ImageRecord, Vec<String>)> = Vec::new();
        for n in names {
            let image = self.resolve(n)?;
            // Name the image as it was asked for; an id saves every tag it has.
            let tags: Vec<String> = match ImageRef::parse(n) {
                Ok(r) if r.digest().is_none() && image.tags.contains(&r.to_string()) => {
                    vec![r.to_string()]
                }
                _ => image.tags.clone(),
            };
            match images.iter_mut().find(|(i, _)| i.id == image.id) {
                Some((_, t)) => t.extend(tags),
                None => images.push((image, tags)),
            }
        }
        let mut manifest_json = Vec::new();
        let mut index = Vec::new();
        let mut blobs: Vec<Digest> = Vec::new();
        for (image, tags) in &images {
            manifest_json.push(json!({
                "Config": format!("blobs/sha256/{}", image.id.hex()),
                "RepoTags": if tags.is_empty() { Value::Null } else { json!(tags.iter().map(|t| super::familiar_of(t)).collect::<Vec<_>>()) },
                "Layers": image.layers.iter().map(|l| format!("blobs/{}/{}", l.digest.algorithm().name(), l.digest.hex())).collect::<Vec<_>>(),
            }));
            let entry = |ann: Value| json!({"mediaType": image.manifest_media_type, "digest": image.manifest, "size": image.manifest_size, "annotations": ann});
            if tags.is_empty() {
                index.push(entry(json!({})));
            }
            for t in tags {
                let tag = ImageRef::parse(t)
                    .ok()
                    .and_then(|r| r.tag().map(|t| t.to_string()))
                    .unwrap_or_default();
                index.push(entry(json!({"io.containerd.image.name": t, "org.opencontainers.image.ref.name": tag})));
            }
            for b in [&image.id, &image.manifest]
                .into_iter()
                .chain(image.layers.iter().map(|l| &l.digest))
            {
                if !blobs.contains(b) {
                    blobs.push(b.clone());
                }
            }
        }
        let paths: Vec<(Digest, PathBuf)> = blobs
            .iter()
            .map(|b| {
                (
                    b.clone(),
                    self.store.blobs.local_path(b).expect("a file system store"),
                )
            })
            .collect();
        let index_json =
            json!({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX, "manifests": index});
        tokio::task::spawn_blocking(move || -> Result<()> {
            let mut tar = tar::Builder::new(out);
            let mut add = |path: &str, data: &[u8]| -> std::io::Result<()> {
                let mut h = tar::Header::new_ustar();
                h.set_size(data.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(&mut h, path, data)
            };
            let e = |e| ImageError::Io {
                path: "the archive".into(),
                source: e,
            };
            add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(e)?;
            add(
                "index.json",
                &serde_json::to_vec(&index_json).expect("serialises"),
            )
            .map_err(e)?;
            add(
                "manifest.json",
                &serde_json::to_vec(&manifest_json).expect("serialises"),
            )
            .map_err(e)?;
            for (d, path) in paths {
                let f = File::open(&path).map_err(io_err(&path))?;
                let size = f.metadata().map_err(io_err(&path))?.len();
                let mut h = tar::Header::new_ustar();
                h.set_size(size);
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_entry_type(tar::EntryType::Regular);
                tar.append_data(
                    &mut h,
                    format!("blobs/{}/{}", d.algorithm().name(), d.hex()),
                    f,
                )
                .map_err(e)?;
            }
            tar.into_inner().and_then(|mut w| w.flush()).map_err(e)?;
            Ok(())
        })
        .await
        .expect("the save task does not panic")?;
        let journal = self.journal();
        for (image, _) in &images {
            journal.record(
                super::image_event(image.id.as_str(), "save").attr("name", image.id.as_str()),
            );
        }
        Ok(())
    }

    /// Loads every image of a `docker save` tar or OCI layout tar read from `input`.
    pub async fn load<R: Read + Send + 'static>(&self, input: R) -> Result<Vec<LoadedImage>> {
        let dir = self.work_dir()?;
        let res = self.load_in(input, &dir).await;
        let _ = remove_tree(&dir);
        let journal = self.journal();
        for l in res.iter().flatten() {
            journal.record(super::image_event(l.id.as_str(), "load").attr("name", l.id.as_str()));
        }
        res
    }

    async fn load_in<R: Read + Send + 'static>(
        &self,
        input: R,
        dir: &Path,
    ) -> Result<Vec<LoadedImage>> {
        {
            let dir = dir.to_path_buf();
            tokio::task::spawn_blocking(move || extract(input, &dir))
                .await
                .expect("the extract task does not panic")?;
        }
        let manifest_path = dir.join("manifest.json");
        let index_path = dir.join("index.json");
        let oci_index: Option<OciIndex> = std::fs::read(&index_path)
            .ok()
            .map(|d| serde_json::from_slice(&d))
            .transpose()
            .map_err(|e| ImageError::Invalid(format!("index.json: {e}")))?;
        let mut out = Vec::new();
        if manifest_path.exists() {
            let data = std::fs::read(&manifest_path).map_err(io_err(&manifest_path))?;
            let entries: Vec<SaveEntry> = serde_json::from_slice(&data)
                .map_err(|e| ImageError::Invalid(format!("manifest.json: {e}")))?;
            for e in entries {
                let config_path = dir.join(
                    clean(Path::new(&e.config))
                        .ok_or_else(|| ImageError::Invalid("bad Config path".into()))?,
                );
                let config =
                    Bytes::from(std::fs::read(&config_path).map_err(io_err(&config_path))?);
                let cfg = parse_config(&config)?;
                if cfg.rootfs.diff_ids.len() != e.layers.len() {
                    return Err(ImageError::Invalid(format!(
                        "manifest.json lists {} layers for a config with {} diff ids",
                        e.layers.len(),
                        cfg.rootfs.diff_ids.len()
                    )));
                }
                let id = Digest::sha256_of(&config);
                // Keep the OCI manifest the archive carries for this config, if any.
                let manifest = match &oci_index {
                    Some(ix) => self.find_oci_manifest(dir, ix, &id)?,
                    None => None,
                };
                let media: Vec<Option<String>> = match &manifest {
                    Some((m, _)) => parse_manifest(m)?
                        .layers
                        .into_iter()
                        .map(|l| Some(l.media_type))
                        .collect(),
                    None => vec![None; e.layers.len()],
                };
                let mut layers: Vec<LayerRecord> = Vec::new();
                for (i, l) in e.layers.iter().enumerate() {
                    let p = dir.join(
                        clean(Path::new(l))
                            .ok_or_else(|| ImageError::Invalid(format!("bad layer path {l}")))?,
                    );
                    let parent = layers.last().map(|x| x.chain_id.clone());
                    let this = self.clone();
                    let diff = cfg.rootfs.diff_ids[i].clone();
                    let mt = media.get(i).cloned().flatten();
                    let rec = tokio::task::spawn_blocking(move || {
                        this.ingest_layer(&p, None, parent.as_ref(), Some(&diff), mt.as_deref())
                    })
                    .await
                    .expect("the ingest task does not panic")?;
                    layers.push(rec);
                }
                let names: Vec<ImageRef> = e
                    .repo_tags
                    .unwrap_or_default()
                    .iter()
                    .map(|t| ImageRef::parse(t))
                    .collect::<Result<_, _>>()?;
                let id = self
                    .add_image(config, layers, manifest, &names, None)
                    .await?;
                out.push(LoadedImage {
                    id,
                    names: names.iter().map(|n| n.to_string()).collect(),
                });
            }
        } else if let Some(ix) = oci_index {
            for d in &ix.manifests {
                let (m, media_type) = if is_index(&d.media_type) {
                    let nested = self.read_layout_blob(dir, &d.digest)?;
                    let entry = select_platform(&nested, &Platform::host())?;
                    (self.read_layout_blob(dir, &entry.digest)?, entry.media_type)
                } else {
                    (self.read_layout_blob(dir, &d.digest)?, d.media_type.clone())
                };
                let doc = parse_manifest(&m)?;
                let config = self.read_layout_blob(dir, &doc.config.digest)?;
                let cfg = parse_config(&config)?;
                if cfg.rootfs.diff_ids.len() != doc.layers.len() {
                    return Err(ImageError::Invalid(
                        "the manifest and its config disagree on the layers".into(),
                    ));
                }
                let mut layers: Vec<LayerRecord> = Vec::new();
                for (i, l) in doc.layers.iter().enumerate() {
                    let p = layout_path(dir, &l.digest);
                    let parent = layers.last().map(|x| x.chain_id.clone());
                    let this = self.clone();
                    let diff = cfg.rootfs.diff_ids[i].clone();
                    let Desc {
                        media_type, digest, ..
                    } = l.clone();
                    let rec = tokio::task::spawn_blocking(move || {
                        this.ingest_layer(
                            &p,
                            Some(&digest),
                            parent.as_ref(),
                            Some(&diff),
                            Some(&media_type),
                        )
                    })
                    .await
                    .expect("the ingest task does not panic")?;
                    layers.push(rec);
                }
                let name = d
                    .annotations
                    .get("io.containerd.image.name")
                    .or_else(|| d.annotations.get("org.opencontainers.image.ref.name"))
                    .and_then(|n| {
                        ImageRef::parse(n)
                            .ok()
                            .filter(|_| n.contains(['/', ':']) || !n.is_empty())
                    });
                let names: Vec<ImageRef> = name.into_iter().collect();
                let id = self
                    .add_image(config, layers, Some((m, media_type)), &names, None)
                    .await?;
                out.push(LoadedImage {
                    id,
                    names: names.iter().map(|n| n.to_string()).collect(),
                });
            }
        } else {
            return Err(ImageError::Invalid(
                "the archive has neither a manifest.json nor an index.json: not an image archive"
                    .into(),
            ));
        }
        Ok(out)
    }

    fn read_layout_blob(&self, dir: &Path, d: &Digest) -> Result<Bytes> {
        let p = layout_path(dir, d);
        let data = std::fs::read(&p).map_err(io_err(&p))?;
        let actual = Digest::of(d.algorithm(), &data);
        if &actual != d {
            return Err(
                berth_storage::StoreError::DigestMismatch(berth_storage::Mismatch {
                    expected: d.clone(),
                    actual,
                })
                .into(),
            );
        }
        Ok(Bytes::from(data))
    }

    /// The manifest of an OCI layout's index whose config is `id`.
    fn find_oci_manifest(
        &self,
        dir: &Path,
        ix: &OciIndex,
        id: &Digest,
    ) -> Result<Option<(Bytes, String)>> {
        for d in &ix.manifests {
            if d.media_type != MEDIA_OCI_MANIFEST && d.media_type != MEDIA_DOCKER_MANIFEST {
                continue;
            }
            let Ok(m) = self.read_layout_blob(dir, &d.digest) else {
                continue;
            };
            if parse_manifest(&m).is_ok_and(|doc| &doc.config.digest == id) {
                return Ok(Some((m, d.media_type.clone())));
            }
        }
        Ok(None)
    }

    /// Creates a one-layer image from a root filesystem tar; returns its id.
    pub async fn import<R: Read + Send + 'static>(
        &self,
        input: R,
        reference: Option<&ImageRef>,
        options: &ImportOptions,
    ) -> Result<Digest> {
        let dir = self.work_dir()?;
        let res = self.import_in(input, &dir, reference, options).await;
        let _ = remove_tree(&dir);
        if let Ok(id) = &res {
            self.journal()
                .record(super::image_event(id.as_str(), "import").attr("name", id.as_str()));
        }
        res
    }

    async fn import_in<R: Read + Send + 'static>(
        &self,
        mut input: R,
        dir: &Path,
        reference: Option<&ImageRef>,
        options: &ImportOptions,
    ) -> Result<Digest> {
        let path = dir.join("layer");
        let layer = {
            let path = path.clone();
            let this = self.clone();
            tokio::task::spawn_blocking(move || -> Result<LayerRecord> {
                let mut f = File::create(&path).map_err(io_err(&path))?;
                std::io::copy(&mut input, &mut f).map_err(io_err(&path))?;
                f.flush().map_err(io_err(&path))?;
                drop(f);
                this.ingest_layer(&path, None, None, None, None)
            })
            .await
            .expect("the import task does not panic")?
        };
        let mut cfg = serde_json::Map::new();
        apply_changes(&mut cfg, &options.changes)?;
        let now = super::now_rfc3339();
        let comment = options
            .message
            .clone()
            .unwrap_or_else(|| format!("Imported from {}", options.source));
        let mut config = json!({
            "architecture": options.platform.architecture,
            "os": options.platform.os,
            "created": now,
            "config": cfg,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id]},
            "history": [{"created": now, "comment": comment}],
        });
        if let Some(v) = &options.platform.variant {
            config["variant"] = json!(v);
        }
        let config = Bytes::from(serde_json::to_vec(&config).expect("serialises"));
        let names: Vec<ImageRef> = reference.cloned().into_iter().collect();
        self.add_image(config, vec![layer], None, &names, None)
            .await
    }
}

fn layout_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join("blobs").join(d.algorithm().name()).join(d.hex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes() {
        let mut c = serde_json::Map::new();
        apply_changes(
            &mut c,
            &[
                "CMD [\"sh\"]".into(),
                "ENV A=1 B=2".into(),
                "ENTRYPOINT echo hi".into(),
                "EXPOSE 80".into(),
                "LABEL x=y".into(),
                "WORKDIR /w".into(),
            ],
        )
        .unwrap();
        assert_eq!(c["Cmd"], json!(["sh"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(c["Env"], json!(["A=1", "B=2"]));
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}}));
        assert_eq!(c["Labels"], json!({"x": "y"}));
        assert!(apply_changes(&mut c, &["RUN x".into()]).is_err());
        // The Dockerfile's parser reads them: quotes, and HEALTHCHECK with its flags.
        apply_changes(
            &mut c,
            &[
                "ENV A=\"x y\" C=$B-${B}".into(),
                "HEALTHCHECK --interval=2s --retries=4 CMD cat /ok".into(),
            ],
        )
        .unwrap();
        assert_eq!(c["Env"], json!(["B=2", "A=x y", "C=2-2"]));
        assert_eq!(
            c["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "cat /ok"], "Interval": 2_000_000_000u64, "Retries": 4})
        );
        apply_changes(&mut c, &["HEALTHCHECK NONE".into()]).unwrap();
        assert_eq!(c["Healthcheck"], json!({"Test": ["NONE"]}));
        let err = |c: &str| apply_changes(&mut serde_json::Map::new(), &[c.into()]).unwrap_err();
        assert!(err("RUN x")
            .to_string()
            .contains("run is not a valid change command"));
        assert!(err("FROM x")
            .to_string()
            .contains("from is not a valid change command"));
        assert!(err("HEALTHCHECK --interval=1us CMD x")
            .to_string()
            .contains("cannot be less than 1ms"));
    }

    #[test]
    fn cleans_paths() {
        assert_eq!(clean(Path::new("/a/./b")), Some(PathBuf::from("a/b")));
        assert_eq!(clean(Path::new("a/../../b")), None);
        assert_eq!(clean(Path::new("a/../b")), Some(PathBuf::from("b")));
    }
}
