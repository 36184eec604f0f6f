//! `pull`: a manifest, its config and its layers from a registry into the local store.
//!
//! Layers move in parallel (bounded by [`PullOptions::concurrency`]). Each layer's bytes go
//! through one pipeline: the network, a file under `partial/` (so an interrupted pull resumes
//! from where it stopped, with `Range`), and the unpacker, which decompresses and writes the
//! snapshot on a blocking thread while the download goes on, hashing the uncompressed stream
//! for the diff id. Only when the blob's digest and the diff id both check out does the blob
//! file become `blobs/…` and the snapshot directory get its real name; the image record comes
//! last. A layer whose blob and snapshot already exist is not fetched again.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_storage::{Digest, Hasher, Reference};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use super::{
    chain_ids, io_err, remove_tree, write_atomic, ImageError, ImageRecord, ImageStore, LayerRecord,
    Result,
};
use crate::reference::ImageRef;
use crate::remote::{
    is_index, Platform, Remote, MEDIA_DOCKER_LAYER_GZIP, MEDIA_DOCKER_LAYER_TAR,
    MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_LAYER_TAR, MEDIA_OCI_LAYER_ZSTD,
};
use crate::unpack::{unpack_layer, UnpackOptions};

/// How to pull.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub platform: Platform,
    /// Layers downloaded at once.
    pub concurrency: usize,
}

impl Default for PullOptions {
    fn default() -> PullOptions {
        PullOptions {
            platform: Platform::host(),
            concurrency: 3,
        }
    }
}

/// Where a layer is, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LayerState {
    Waiting,
    AlreadyExists,
    Downloading { current: u64, total: u64 },
    Extracting,
    PullComplete,
    Preparing,
    Pushing { current: u64, total: u64 },
    Pushed,
    LayerAlreadyExists,
    MountedFrom(String),
}

/// Receives progress of pulls and pushes.
pub trait Progress: Send + Sync {
    fn layer(&self, digest: &Digest, state: LayerState);
}

/// Ignores progress.
pub struct NoProgress;

impl Progress for NoProgress {
    fn layer(&self, _: &Digest, _: LayerState) {}
}

/// What a pull did.
#[derive(Debug, Clone)]
pub struct PullResult {
    /// The reference pulled (with its tag or digest).
    pub reference: ImageRef,
    /// The digest the registry has under the reference (an index's when it was one).
    pub digest: Digest,
    /// The image id.
    pub id: Digest,
    /// Whether anything new arrived or a tag moved (docker's "Downloaded newer image").
    pub updated: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ManifestDoc {
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Desc,
    #[serde(default)]
    pub layers: Vec<Desc>,
}

#[derive(Deserialize, Serialize, Clone)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Desc {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

#[derive(Deserialize, Default)]
pub(crate) struct ConfigDoc {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub rootfs: RootFs,
}

impl ConfigDoc {
    /// The record of an image with this config, before it has names. `manifest` is the
    /// platform manifest's digest, media type and size.
    pub(crate) fn record(
        &self,
        id: &Digest,
        config_size: u64,
        manifest: (&Digest, String, u64),
        extra_blobs: Vec<Digest>,
        layers: Vec<LayerRecord>,
    ) -> ImageRecord {
        ImageRecord {
            id: id.clone(),
            config_size,
            created: self.created.clone(),
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone(),
            manifest: manifest.0.clone(),
            manifest_media_type: manifest.1,
            manifest_size: manifest.2,
            extra_blobs,
            layers,
            tags: Vec::new(),
            repo_digests: Vec::new(),
            linked: Default::default(),
            last_tag_time: None,
            parent: None,
        }
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct RootFs {
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

/// A snapshot's sidecar record: `snapshots/<chain hex>.json`.
#[derive(Serialize, Deserialize)]
struct SnapshotMeta {
    diff_id: Digest,
    size: u64,
}

pub(crate) fn parse_manifest(bytes: &[u8]) -> Result<ManifestDoc> {
    serde_json::from_slice(bytes).map_err(|e| {
        ImageError::Invalid(format!("the manifest is not a valid image manifest: {e}"))
    })
}

pub(crate) fn parse_config(bytes: &[u8]) -> Result<ConfigDoc> {
    serde_json::from_slice(bytes)
        .map_err(|e| ImageError::Invalid(format!("the image config is not valid: {e}")))
}

pub(crate) fn check_layer_type(media_type: &str) -> Result<()> {
    match media_type {
        MEDIA_DOCKER_LAYER_GZIP
        | MEDIA_DOCKER_LAYER_TAR
        | MEDIA_OCI_LAYER_GZIP
        | MEDIA_OCI_LAYER_TAR
        | MEDIA_OCI_LAYER_ZSTD => Ok(()),
        other => Err(ImageError::Invalid(format!(
            "layer media type {other:?} is not supported"
        ))),
    }
}

impl ImageStore {
    /// Pulls `reference` from its registry.
    pub async fn pull(
        &self,
        remote: &Remote,
        reference: &ImageRef,
        options: &PullOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<PullResult> {
        let registry = reference.registry();
        let repo = reference.repository();
        super::store_repo(reference)?;
        let top = remote
            .get_manifest(registry, repo, &reference.reference(), None)
            .await?;
        let (manifest, index) = if is_index(&top.media_type) {
            let entry = crate::remote::select_platform(&top.bytes, &options.platform)?;
            let m = remote
                .get_manifest(registry, repo, &Reference::Digest(entry.digest), None)
                .await?;
            (m, Some(top))
        } else {
            (top, None)
        };
        let doc = parse_manifest(&manifest.bytes)?;
        for l in &doc.layers {
            check_layer_type(&l.media_type)?;
        }
        let top_digest = index
            .as_ref()
            .map(|i| i.digest.clone())
            .unwrap_or(manifest.digest.clone());

        // The config: small, fetched whole and verified.
        let blobs = &self.store.blobs;
        let config_bytes = if blobs.exists(&doc.config.digest).await? {
            blobs.read(&doc.config.digest).await?
        } else {
            let stream = remote.get_blob(registry, repo, &doc.config.digest).await?;
            let parts: Vec<Bytes> = stream.try_collect().await?;
            let data = Bytes::from(parts.concat());
            blobs.put_bytes(&doc.config.digest, data.clone()).await?;
            data
        };
        let config = parse_config(&config_bytes)?;
        if config.rootfs.diff_ids.len() != doc.layers.len() {
            return Err(ImageError::Invalid(format!(
                "the manifest has {} layers but the config lists {} diff ids",
                doc.layers.len(),
                config.rootfs.diff_ids.len()
            )));
        }
        let chains = chain_ids(&config.rootfs.diff_ids);
        for l in &doc.layers {
            progress.layer(&l.digest, LayerState::Waiting);
        }

        let jobs = doc.layers.iter().enumerate().map(|(i, l)| {
            let progress = progress.clone();
            let diff_id = config.rootfs.diff_ids[i].clone();
            let chain = chains[i].clone();
            async move {
                self.fetch_layer(
                    Some((remote, reference)),
                    l,
                    &diff_id,
                    &chain,
                    progress.as_ref(),
                )
                .await
            }
        });
        let layers: Vec<LayerRecord> = futures::stream::iter(jobs)
            .buffered(options.concurrency.max(1))
            .try_collect()
            .await?;

        // Manifests last among the content: they are what a registry over this root serves.
        blobs
            .put_bytes(&manifest.digest, manifest.bytes.clone())
            .await?;
        let mut extra = Vec::new();
        if let Some(ix) = &index {
            blobs.put_bytes(&ix.digest, ix.bytes.clone()).await?;
            extra.push(ix.digest.clone());
        }
        let media_type = doc
            .media_type
            .clone()
            .unwrap_or_else(|| manifest.media_type.clone());
        let record = config.record(
            &doc.config.digest,
            config_bytes.len() as u64,
            (&manifest.digest, media_type, manifest.bytes.len() as u64),
            extra,
            layers,
        );
        let id = record.id.clone();
        let names: Vec<ImageRef> = reference
            .tag()
            .map(|_| reference.clone())
            .into_iter()
            .collect();
        let named = ImageRef::parse(&reference.name())?;
        let updated = self
            .commit_image(record, &names, Some((&named, &top_digest)))
            .await?;
        self.journal().record(
            super::image_event(&reference.familiar(), "pull")
                .attr("name", reference.familiar_name()),
        );
        Ok(PullResult {
            reference: reference.clone(),
            digest: top_digest,
            id,
            updated,
        })
    }

    /// Makes sure one layer's blob and snapshot are in the store; a blob the store lacks
    /// comes from `source`, or is an error without one.
    pub(crate) async fn fetch_layer(
        &self,
        source: Option<(&Remote, &ImageRef)>,
        layer: &Desc,
        diff_id: &Digest,
        chain: &Digest,
        progress: &dyn Progress,
    ) -> Result<LayerRecord> {
        let snapshot = self.snapshot_dir(chain);
        let meta_path = snapshot.with_extension("json");
        let have_blob = self.store.blobs.exists(&layer.digest).await?;
        let record = |size: u64| LayerRecord {
            digest: layer.digest.clone(),
            media_type: layer.media_type.clone(),
            size: layer.size,
            diff_id: diff_id.clone(),
            chain_id: chain.clone(),
            unpacked_size: size,
        };
        if have_blob && snapshot.is_dir() {
            if let Some(meta) = std::fs::read(&meta_path)
                .ok()
                .and_then(|d| serde_json::from_slice::<SnapshotMeta>(&d).ok())
            {
                progress.layer(&layer.digest, LayerState::AlreadyExists);
                return Ok(record(meta.size));
            }
        }
        let tmp = self
            .root
            .join("snapshots")
            .join(format!(".tmp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&tmp).map_err(io_err(&tmp))?;
        let result = if let (false, Some((remote, reference))) = (have_blob, source) {
            self.download_and_unpack(remote, reference, layer, &tmp, progress)
                .await
        } else {
            progress.layer(&layer.digest, LayerState::Extracting);
            let path = self
                .store
                .blobs
                .local_path(&layer.digest)
                .expect("the client store is on a file system");
            let tmp2 = tmp.clone();
            tokio::task::spawn_blocking(move || -> Result<(Digest, u64)> {
                let f = File::open(&path).map_err(io_err(&path))?;
                let s = unpack_layer(f, &tmp2, &UnpackOptions::default())?;
                Ok((s.diff_id, s.uncompressed_size))
            })
            .await
            .expect("the unpack task does not panic")
        };
        let (actual, size) = match result {
            Ok(r) => r,
            Err(e) => {
                let _ = remove_tree(&tmp);
                return Err(e);
            }
        };
        if &actual != diff_id {
            let _ = remove_tree(&tmp);
            return Err(ImageError::DiffIdMismatch {
                layer: layer.digest.clone(),
                expected: diff_id.clone(),
                actual,
            });
        }
        // Publish the snapshot: a concurrent pull may have won the race; keep its copy.
        if snapshot.exists() {
            remove_tree(&tmp)?;
        } else if let Err(e) = std::fs::rename(&tmp, &snapshot) {
            let _ = remove_tree(&tmp);
            if !snapshot.exists() {
                return Err(io_err(&snapshot)(e));
            }
        }
        let meta = SnapshotMeta {
            diff_id: diff_id.clone(),
            size,
        };
        write_atomic(&meta_path, &serde_json::to_vec(&meta).expect("serialises"))?;
        progress.layer(&layer.digest, LayerState::PullComplete);
        Ok(record(size))
    }

    /// Downloads a layer into `partial/` (resuming what an earlier pull left there) while
    /// unpacking it into `target`; moves the verified blob into the store.
    async fn download_and_unpack(
        &self,
        remote: &Remote,
        reference: &ImageRef,
        layer: &Desc,
        target: &Path,
        progress: &dyn Progress,
    ) -> Result<(Digest, u64)> {
        let partial = self.root.join("partial").join(format!(
            "{}-{}",
            layer.digest.algorithm().name(),
            layer.digest.hex()
        ));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(io_err(&partial))?;
        let mut have = file.metadata().map_err(io_err(&partial))?.len();
        if have > layer.size {
            file.set_len(0).map_err(io_err(&partial))?;
            have = 0;
        }
        // Hash what an earlier pull left, so the download continues the same digest.
        let (file, prefix) = {
            let p = partial.clone();
            let alg = layer.digest.algorithm();
            tokio::task::spawn_blocking(move || -> Result<(File, Hasher)> {
                let mut h = Hasher::new(alg);
                file.seek(SeekFrom::Start(0)).map_err(io_err(&p))?;
                let mut left = have;
                let mut buf = vec![0u8; 1 << 20];
                while left > 0 {
                    let n = file
                        .read(&mut buf[..(left.min(1 << 20)) as usize])
                        .map_err(io_err(&p))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                    left -= n as u64;
                }
                Ok((file, h))
            })
            .await
            .expect("the hashing task does not panic")?
        };
        progress.layer(
            &layer.digest,
            LayerState::Downloading {
                current: have,
                total: layer.size,
            },
        );

        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let unpacker = {
            let target = target.to_path_buf();
            let partial = partial.clone();
            tokio::task::spawn_blocking(move || -> Result<(Digest, u64)> {
                let reader = TeeReader::new(file, have, rx, partial)?;
                let s = unpack_layer(reader, &target, &UnpackOptions::default())?;
                Ok((s.diff_id, s.uncompressed_size))
            })
        };

        let download = async {
            if have < layer.size || layer.size == 0 {
                let mut stream = remote
                    .get_blob_from(
                        reference.registry(),
                        reference.repository(),
                        &layer.digest,
                        have,
                        prefix,
                    )
                    .await?;
                let mut current = have;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk?;
                    current += chunk.len() as u64;
                    if current > layer.size {
                        return Err(ImageError::Invalid(format!(
                            "blob {} is larger than the {} bytes its manifest says",
                            layer.digest, layer.size
                        )));
                    }
                    if tx.send(chunk).await.is_err() {
                        // The unpacker stopped: its error says why.
                        return Ok(false);
                    }
                    progress.layer(
                        &layer.digest,
                        LayerState::Downloading {
                            current,
                            total: layer.size,
                        },
                    );
                }
            } else {
                let actual = prefix.finish();
                if actual != layer.digest {
                    return Err(ImageError::Remote(crate::remote::RemoteError::Mismatch(
                        berth_storage::Mismatch {
                            expected: layer.digest.clone(),
                            actual,
                        },
                    )));
                }
            }
            Ok(true)
        };
        let downloaded: Result<bool> = download.await;
        drop(tx);
        progress.layer(&layer.digest, LayerState::Extracting);
        let unpacked = unpacker.await.expect("the unpack task does not panic");
        match (downloaded, unpacked) {
            (Err(e), _) => {
                if matches!(
                    &e,
                    ImageError::Remote(crate::remote::RemoteError::Mismatch(_))
                ) {
                    let _ = std::fs::remove_file(&partial);
                }
                Err(e)
            }
            (Ok(_), Err(e)) => Err(e),
            (Ok(false), Ok(_)) => Err(ImageError::Invalid(format!(
                "layer {} ended before its content did",
                layer.digest
            ))),
            (Ok(true), Ok(r)) => {
                let dest = self
                    .store
                    .blobs
                    .local_path(&layer.digest)
                    .expect("the client store is on a file system");
                let parent = dest.parent().expect("blob paths have a parent");
                std::fs::create_dir_all(parent).map_err(io_err(parent))?;
                std::fs::rename(&partial, &dest).map_err(io_err(&dest))?;
                Ok(r)
            }
        }
    }
}

/// Feeds the unpacker: first the bytes a previous pull left in the partial file, then each
/// chunk from the network, appending those to the file as they pass.
struct TeeReader {
    file: File,
    path: PathBuf,
    /// Bytes of the file still to replay.
    replay: u64,
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl TeeReader {
    fn new(
        mut file: File,
        have: u64,
        rx: tokio::sync::mpsc::Receiver<Bytes>,
        path: PathBuf,
    ) -> Result<TeeReader> {
        file.seek(SeekFrom::Start(0)).map_err(io_err(&path))?;
        Ok(TeeReader {
            file,
            path,
            replay: have,
            rx,
            current: Bytes::new(),
        })
    }
}

impl Read for TeeReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.replay > 0 {
            let want = (buf.len() as u64).min(self.replay) as usize;
            let n = self.file.read(&mut buf[..want])?;
            if n == 0 {
                return Err(std::io::Error::other(format!(
                    "{} shrank while being read",
                    self.path.display()
                )));
            }
            self.replay -= n as u64;
            if self.replay == 0 {
                self.file.seek(SeekFrom::End(0))?;
            }
            return Ok(n);
        }
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.file.write_all(&chunk)?;
                    self.current = chunk;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}
