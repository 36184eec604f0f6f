//! `push`: a local image's layers, config and manifest to a registry.
//!
//! Per blob, cheapest first: a HEAD says the repository has it already; a mount takes it
//! from another repository of the same registry that this host pulled it from or pushed it
//! to (the store's repository links say which); otherwise it is uploaded, in chunks when it is
//! large. The manifest goes last, under the tag, so the registry never names an image whose
//! blobs it lacks.
//!
//! A layer this host made (`commit`, `build`, `import`) is stored as a plain tar, which is
//! cheap to write and to unpack; a registry gets it gzipped, as docker sends every layer. The
//! gzip blob is made on the first push (on every core, its input hashed against the layer's
//! digest in the same pass), kept in the store, and remembered in `images/gzip/<tar hex>`, so
//! a later push of any image with that layer sends the same blob without compressing again.
//! The pushed manifest names the gzip blobs; the config, and so the image id and its
//! diff_ids, stay as they are.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use berth_storage::{BlobStore, ByteStream, Digest, Reference, RepoName};

use serde::{Deserialize, Serialize};

use super::pull::{parse_manifest, LayerState, Progress};
use super::{io_err, store_repo, write_atomic, ImageError, ImageStore, Result};
use crate::compress::{compress_file, Compression};
use crate::reference::ImageRef;
use crate::remote::{
    BlobSource, PushOptions, Remote, MEDIA_DOCKER_LAYER_GZIP, MEDIA_DOCKER_LAYER_TAR,
    MEDIA_OCI_LAYER_GZIP, MEDIA_OCI_LAYER_TAR,
};

/// The gzip blob made from a plain tar layer (`images/gzip/<tar hex>`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Gzipped {
    digest: Digest,
    size: u64,
}

/// What a push did.
#[derive(Debug, Clone)]
pub struct PushResult {
    pub tag: String,
    pub digest: Digest,
    pub size: u64,
}

/// A blob of the local store as a push source.
struct StoreBlob {
    blobs: BlobStore,
    digest: Digest,
}

#[async_trait]
impl BlobSource for StoreBlob {
    async fn open(&self, range: Range<u64>) -> std::io::Result<ByteStream> {
        self.blobs
            .get(&self.digest, Some(range))
            .await
            .map_err(std::io::Error::other)
    }
}

impl ImageStore {
    /// Pushes the local image named `reference` (which must carry a tag) to its registry.
    pub async fn push(
        &self,
        remote: &Remote,
        reference: &ImageRef,
        options: PushOptions,
        concurrency: usize,
        progress: Arc<dyn Progress>,
    ) -> Result<PushResult> {
        let image = self.resolve(&reference.to_string())?;
        let stored = self.read_blob(&image.manifest).await?;
        let doc = parse_manifest(&stored)?;
        let registry = reference.registry();
        let repo = reference.repository();
        let siblings = self.sibling_repos(reference).await?;

        for l in &doc.layers {
            progress.layer(&l.digest, LayerState::Preparing);
        }
        let manifest = self.gzip_layers(&stored).await?;
        let doc = parse_manifest(&manifest)?;
        let mut blobs: Vec<(Digest, u64)> = doc
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.size))
            .collect();
        blobs.push((doc.config.digest.clone(), doc.config.size));
        let jobs = blobs.iter().map(|(digest, size)| {
            let progress = progress.clone();
            let siblings = &siblings;
            async move {
                self.push_one(
                    remote, registry, repo, digest, *size, siblings, options, progress,
                )
                .await
            }
        });
        use futures::StreamExt;
        let results: Vec<Result<()>> = futures::stream::iter(jobs)
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        for r in results {
            r?;
        }
        let tag = reference
            .tag()
            .cloned()
            .ok_or_else(|| ImageError::Invalid("push needs a tag".into()))?;
        let digest = remote
            .put_manifest(
                registry,
                repo,
                &Reference::Tag(tag.clone()),
                &image.manifest_media_type,
                manifest.clone(),
            )
            .await?;
        // The pushed repository now holds these blobs: a later push can mount from it.
        if let Ok(local) = store_repo(reference) {
            for b in image.blobs().chain(blobs.iter().map(|(d, _)| d)) {
                let _ = self.store.repos.link_blob(&local, b).await;
            }
        }
        // docker's RepoDigests: the name with the digest the registry now serves it by.
        self.add_repo_digest(&image.id, &format!("{}@{digest}", reference.name()))
            .await?;
        self.journal().record(
            super::image_event(&reference.familiar(), "push")
                .attr("name", reference.familiar_name()),
        );
        Ok(PushResult {
            tag: tag.to_string(),
            digest,
            size: manifest.len() as u64,
        })
    }

    /// Gives image `id` the digested name `full` (`repo@sha256:…`), unless it has it.
    async fn add_repo_digest(&self, id: &Digest, full: &str) -> Result<()> {
        let lock = self.lock()?;
        let mut index = self.read_index()?;
        let Some(r) = index.images.get_mut(id.as_str()) else {
            // Removed while it was pushed: nothing to name.
            return Ok(());
        };
        if r.repo_digests.iter().any(|d| d == full) {
            return Ok(());
        }
        r.repo_digests.push(full.to_string());
        r.repo_digests.sort();
        self.write_index(&lock, &index).await
    }

    /// The gzip blob noted for the plain tar layer `tar` (`images/gzip/<tar hex>`), if any.
    pub(super) fn gzip_note(&self, tar: &Digest) -> Option<Digest> {
        let bytes = std::fs::read(self.gzip_note_path(tar)).ok()?;
        serde_json::from_slice::<Gzipped>(&bytes)
            .ok()
            .map(|g| g.digest)
    }

    fn gzip_note_path(&self, tar: &Digest) -> std::path::PathBuf {
        self.root.join("images/gzip").join(tar.hex())
    }

    /// Removes the notes whose plain tar layer the store no longer has (freed by `rmi`, a
    /// prune, or a collection of a registry over this root): a note lives as long as its
    /// layer. One that names a gzip blob freed before its tar is only a cache miss: the
    /// next push compresses again.
    pub(super) fn prune_gzip_notes(&self) {
        let Ok(dir) = std::fs::read_dir(self.root.join("images/gzip")) else {
            return;
        };
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(hex) = name.to_str() else { continue };
            // Notes are named by sha256 hex: anything else is a temporary file.
            let Ok(tar) = format!("sha256:{hex}").parse::<Digest>() else {
                continue;
            };
            let gone = self
                .store
                .blobs
                .local_path(&tar)
                .is_some_and(|p| !p.exists());
            if gone {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// The manifest as it goes to a registry: `manifest` with every plain tar layer replaced
    /// by its gzip blob (docker's or OCI's gzip media type, as the manifest's kind); the
    /// manifest itself when every layer is compressed already.
    async fn gzip_layers(&self, manifest: &bytes::Bytes) -> Result<bytes::Bytes> {
        let mut doc: serde_json::Value = serde_json::from_slice(manifest).map_err(|e| {
            ImageError::Invalid(format!("the manifest is not a valid image manifest: {e}"))
        })?;
        let Some(layers) = doc.get_mut("layers").and_then(|l| l.as_array_mut()) else {
            return Ok(manifest.clone());
        };
        let mut changed = false;
        for layer in layers {
            let gzip_type = match layer["mediaType"].as_str() {
                Some(MEDIA_DOCKER_LAYER_TAR) => MEDIA_DOCKER_LAYER_GZIP,
                Some(MEDIA_OCI_LAYER_TAR) => MEDIA_OCI_LAYER_GZIP,
                _ => continue,
            };
            let tar: Digest = serde_json::from_value(layer["digest"].clone()).map_err(|e| {
                ImageError::Invalid(format!("a layer of the manifest has no valid digest: {e}"))
            })?;
            let gz = self.gzipped(&tar).await?;
            layer["mediaType"] = gzip_type.into();
            layer["digest"] = gz.digest.as_str().into();
            layer["size"] = gz.size.into();
            changed = true;
        }
        if !changed {
            return Ok(manifest.clone());
        }
        Ok(serde_json::to_vec(&doc).expect("serialises").into())
    }

    /// The gzip blob of the plain tar layer `tar`: the one made before when it is still in
    /// the store, otherwise a new one (the tar's bytes are checked against its digest as
    /// they are read).
    async fn gzipped(&self, tar: &Digest) -> Result<Gzipped> {
        let note = self.gzip_note_path(tar);
        if let Ok(bytes) = std::fs::read(&note) {
            if let Ok(gz) = serde_json::from_slice::<Gzipped>(&bytes) {
                if matches!(self.store.blobs.stat(&gz.digest).await, Ok(Some(n)) if n == gz.size) {
                    return Ok(gz);
                }
            }
        }
        let store = self.clone();
        let tar = tar.clone();
        let gz = tokio::task::spawn_blocking(move || store.gzip_blob(&tar))
            .await
            .expect("the compression does not panic")?;
        write_atomic(&note, &serde_json::to_vec(&gz).expect("serialises"))?;
        Ok(gz)
    }

    /// Compresses the stored blob `tar` into a new gzip blob of the store. Blocks.
    fn gzip_blob(&self, tar: &Digest) -> Result<Gzipped> {
        let src = self
            .store
            .blobs
            .local_path(tar)
            .expect("the client's store is on the local disk");
        let input = std::fs::File::open(&src).map_err(io_err(&src))?;
        let partial = self.root.join("partial");
        let (tmp, file) = self.partial_file("gzip").map_err(io_err(&partial))?;
        let done = compress_file(input, file, Compression::Gzip)
            .map_err(io_err(&src))
            .and_then(|c| {
                if &c.input.0 != tar {
                    return Err(ImageError::Invalid(format!(
                        "the layer blob {tar} is damaged: its bytes hash to {}; pull or build the image again",
                        c.input.0
                    )));
                }
                let (digest, size) = c.output;
                self.publish_blob(&tmp, &digest).map_err(io_err(&partial))?;
                Ok(Gzipped { digest, size })
            });
        if done.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        done
    }

    /// Repositories of the same registry that this host knows to hold blobs: the local
    /// store's repositories under the same host prefix.
    async fn sibling_repos(&self, reference: &ImageRef) -> Result<Vec<(RepoName, RepoName)>> {
        let own = store_repo(reference)?;
        let prefix = format!(
            "{}/",
            own.as_str().split('/').next().expect("a host component")
        );
        let mut out = Vec::new();
        for name in self.store.repos.catalog(None, None).await?.items {
            if name == own.as_str() {
                continue;
            }
            if let Some(remote_name) = name.strip_prefix(&prefix) {
                if let (Ok(local), Ok(remote)) = (name.parse(), remote_name.parse()) {
                    out.push((local, remote));
                }
            }
        }
        Ok(out)
    }

    #[allow(clippy::too_many_arguments)]
    async fn push_one(
        &self,
        remote: &Remote,
        registry: &str,
        repo: &RepoName,
        digest: &Digest,
        size: u64,
        siblings: &[(RepoName, RepoName)],
        options: PushOptions,
        progress: Arc<dyn Progress>,
    ) -> Result<()> {
        if remote.blob_exists(registry, repo, digest).await?.is_some() {
            progress.layer(digest, LayerState::LayerAlreadyExists);
            return Ok(());
        }
        for (local, from) in siblings {
            if self.store.repos.has_blob(local, digest).await?
                && remote.mount_blob(registry, repo, digest, from).await?
            {
                progress.layer(digest, LayerState::MountedFrom(from.to_string()));
                return Ok(());
            }
        }
        let source = StoreBlob {
            blobs: self.store.blobs.clone(),
            digest: digest.clone(),
        };
        let report: crate::remote::ProgressFn = {
            let d = digest.clone();
            let p = progress.clone();
            Arc::new(move |current| {
                p.layer(
                    &d,
                    LayerState::Pushing {
                        current,
                        total: size,
                    },
                )
            })
        };
        remote
            .push_blob(registry, repo, digest, size, &source, options, &report)
            .await?;
        progress.layer(digest, LayerState::Pushed);
        Ok(())
    }
}
