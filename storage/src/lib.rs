//! berth-storage: digests, names, backends and the content-addressable store.
//!
//! Everything berth keeps, the registry's repositories, the mirror's cache and the client's local
//! images, lives in one format (ARCHITECTURE.md has the layout). This crate owns that format and
//! knows nothing of HTTP, of image configs or of containers: the registry and the client call it.
//!
//! - [`digest`] and [`name`]: validated digests, repository names, tags; nothing unvalidated
//!   ever becomes part of a key.
//! - [`backend`]: the [`Backend`] trait over a file system or an S3 bucket.
//! - [`Store`]: [`BlobStore`] (content by digest), [`Uploads`] (chunked upload sessions) and
//!   [`Repositories`] (tags, manifest and blob links, referrers, the catalog) over one backend,
//!   and holds (`holds/<name>`: digests that something outside the repositories needs).
//! - [`gc`]: what is live, and the one collector that deletes blobs; [`refs`]: what a stored
//!   manifest needs.

pub mod backend;
pub mod blobs;
pub mod digest;
pub mod error;
pub mod gc;
pub mod name;
pub mod refs;
pub mod repos;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod uploads;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

pub use backend::{Backend, BackendError, ByteStream, FsBackend, S3Backend, S3Config};
pub use blobs::BlobStore;
pub use digest::{Algorithm, Digest, DigestError, Hasher, Mismatch, Verifier};
pub use error::{Result, StoreError};
pub use name::{NameError, Reference, RepoName, Tag};
pub use repos::{Descriptor, Page, Repositories};
pub use uploads::{UploadStatus, Uploads};

/// Where a store keeps its bytes (the `[storage]` section of a config file).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    Filesystem {
        root: PathBuf,
        /// fsync each object before it becomes visible (off by default, as in distribution).
        #[serde(default)]
        sync: bool,
    },
    S3(S3Config),
}

/// The store: blobs, upload sessions and repository metadata over one backend.
#[derive(Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    pub blobs: BlobStore,
    pub uploads: Uploads,
    pub repos: Repositories,
    guard: gc::guard::Guard,
}

/// The key of a hold.
fn hold_key(name: &str) -> std::result::Result<String, StoreError> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if !ok {
        return Err(StoreError::Corrupt {
            key: format!("holds/{name}"),
            message: "a hold's name is letters, digits, '-', '_' and '.'".into(),
        });
    }
    Ok(format!("holds/{name}"))
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Store {
        let blobs = BlobStore::new(backend.clone());
        let guard = gc::guard::Guard::new(backend.clone());
        Store {
            uploads: Uploads::new(backend.clone(), blobs.clone()),
            repos: Repositories::new(backend.clone(), guard.clone()),
            blobs,
            backend,
            guard,
        }
    }

    /// Records that `name`, something outside the repositories (the client's image index),
    /// needs `digests`, replacing what it held before: no collection deletes them while the
    /// hold lists them. Fails with [`StoreError::BlobUnknown`] when a digest the hold did not
    /// list before is not in the store.
    pub async fn hold(&self, name: &str, digests: &BTreeSet<Digest>) -> Result<()> {
        let key = hold_key(name)?;
        let before: BTreeSet<Digest> = match self.backend.read(&key).await {
            Ok(data) => String::from_utf8_lossy(&data)
                .lines()
                .filter_map(|l| l.parse().ok())
                .collect(),
            Err(e) if e.is_not_found() => BTreeSet::new(),
            Err(e) => return Err(e.into()),
        };
        let text: String = digests.iter().map(|d| format!("{d}\n")).collect();
        self.backend.put(&key, bytes::Bytes::from(text)).await?;
        let added: Vec<&Digest> = digests.difference(&before).collect();
        self.guard.kept(&added).await
    }

    /// A registry's closing PUT of upload session `id` of `repository`: a last chunk (possibly
    /// empty), the blob verified against `expected` and put in place, linked to the
    /// repository, and only then the session removed. A PUT cut off at any point (the process
    /// killed, a backend error) leaves the session, or the linked blob, so that the same PUT
    /// sent again succeeds: the session's bytes never disappear before the blob they make is
    /// in the repository. Returns the blob's size.
    pub async fn finish_upload<S>(
        &self,
        repository: &RepoName,
        id: &str,
        offset: Option<u64>,
        declared: Option<u64>,
        stream: S,
        expected: &Digest,
    ) -> Result<u64>
    where
        S: futures::Stream<Item = std::io::Result<bytes::Bytes>> + Send,
    {
        let finished = self
            .uploads
            .finish_in(repository, id, offset, declared, stream, expected)
            .await?;
        self.repos.link_blob(repository, expected).await?;
        self.uploads.close(finished).await
    }

    /// Whether a collection is sweeping the store right now (for `/readyz` and operators).
    pub async fn collecting(&self) -> Result<Option<String>> {
        Ok(gc::lease::current(&*self.backend)
            .await?
            .map(|r| r.holder()))
    }

    /// Opens the store a config describes.
    pub fn open(config: &StoreConfig) -> std::result::Result<Store, String> {
        let backend: Arc<dyn Backend> = match config {
            StoreConfig::Filesystem { root, sync } => Arc::new(
                FsBackend::new(root, *sync)
                    .map_err(|e| format!("storage root {}: {e}", root.display()))?,
            ),
            StoreConfig::S3(s3) => Arc::new(S3Backend::new(s3)?),
        };
        Ok(Store::new(backend))
    }

    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
}
