//! `push`: a local image's layers, config and manifest to a registry.
//!
//! Per blob, cheapest first: a HEAD says the repository has it already; a mount takes it
//! from another repository of the same registry that this host pulled it from or pushed it
//! to (the store's repository links say which); otherwise it is uploaded, in chunks when it is
//! large. The manifest goes last, under the tag, so the registry never names an image whose
//! blobs it lacks.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use berth_storage::{BlobStore, ByteStream, Digest, Reference, RepoName};

use super::pull::{parse_manifest, LayerState, Progress};
use super::{store_repo, ImageError, ImageStore, Result};
use crate::reference::ImageRef;
use crate::remote::{BlobSource, PushOptions, Remote};

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
        let manifest = self.read_blob(&image.manifest).await?;
        let doc = parse_manifest(&manifest)?;
        let registry = reference.registry();
        let repo = reference.repository();
        let siblings = self.sibling_repos(reference).await?;

        let mut blobs: Vec<(Digest, u64)> = doc
            .layers
            .iter()
            .map(|l| (l.digest.clone(), l.size))
            .collect();
        blobs.push((doc.config.digest.clone(), doc.config.size));
        for l in &doc.layers {
            progress.layer(&l.digest, LayerState::Preparing);
        }
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
            for b in image.blobs() {
                let _ = self.store.repos.link_blob(&local, b).await;
            }
        }
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
