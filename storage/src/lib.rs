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
//!   [`Repositories`] (tags, manifest and blob links, referrers, the catalog) over one backend.

pub mod backend;
pub mod blobs;
pub mod digest;
pub mod error;
pub mod name;
pub mod repos;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod uploads;

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
}

impl Store {
    pub fn new(backend: Arc<dyn Backend>) -> Store {
        let blobs = BlobStore::new(backend.clone());
        Store {
            uploads: Uploads::new(backend.clone(), blobs.clone()),
            repos: Repositories::new(backend.clone()),
            blobs,
            backend,
        }
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
