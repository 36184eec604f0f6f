//! The content-addressable blob store: `blobs/<algorithm>/<hex>`.
//!
//! A blob is written straight to its final key through an [`ObjectWriter`], whose contract is
//! that nothing is visible before commit; the writer is committed only after the bytes that
//! went through it hashed to the promised digest. So a reader either finds no blob or the
//! whole, verified one, and two writers of the same content leave one copy.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};

use crate::backend::{Backend, BackendError, ByteStream};
use crate::digest::{Digest, Hasher, Verifier};
use crate::error::{Result, StoreError};

#[derive(Clone)]
pub struct BlobStore {
    backend: Arc<dyn Backend>,
}

/// The key of a blob's content.
pub fn blob_key(digest: &Digest) -> String {
    format!("blobs/{}/{}", digest.algorithm().name(), digest.hex())
}

impl BlobStore {
    pub fn new(backend: Arc<dyn Backend>) -> BlobStore {
        BlobStore { backend }
    }

    /// The blob's size, or `None` when the store does not hold it.
    pub async fn stat(&self, digest: &Digest) -> Result<Option<u64>> {
        Ok(self.backend.stat(&blob_key(digest)).await?.map(|m| m.size))
    }

    pub async fn exists(&self, digest: &Digest) -> Result<bool> {
        Ok(self.stat(digest).await?.is_some())
    }

    /// Streams the blob, or a byte range of it.
    pub async fn get(&self, digest: &Digest, range: Option<Range<u64>>) -> Result<ByteStream> {
        self.backend
            .get(&blob_key(digest), range)
            .await
            .map_err(|e| not_found_as_unknown(e, digest))
    }

    /// Reads a small blob (a manifest, a config) whole.
    pub async fn read(&self, digest: &Digest) -> Result<Bytes> {
        self.backend
            .read(&blob_key(digest))
            .await
            .map_err(|e| not_found_as_unknown(e, digest))
    }

    /// Stores a stream whose digest must be `expected`. The stream is hashed while it is
    /// written; on a mismatch (or a failed stream) nothing is left behind.
    pub async fn put<S>(&self, expected: &Digest, stream: S) -> Result<u64>
    where
        S: Stream<Item = std::io::Result<Bytes>> + Send,
    {
        let mut stream = std::pin::pin!(stream);
        let mut verifier = Verifier::new(expected.clone());
        if self.exists(expected).await? {
            // Already held: check what arrived (the caller may rely on the verdict) but keep
            // the copy that is there.
            while let Some(chunk) = stream.next().await {
                verifier.update(&chunk.map_err(StoreError::Stream)?);
            }
            let len = verifier.len();
            verifier.finish()?;
            return Ok(len);
        }
        let mut writer = self.backend.writer(&blob_key(expected)).await?;
        while let Some(chunk) = stream.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    writer.abort().await?;
                    return Err(StoreError::Stream(e));
                }
            };
            verifier.update(&chunk);
            if let Err(e) = writer.write(chunk).await {
                writer.abort().await?;
                return Err(e.into());
            }
        }
        match verifier.finish() {
            Ok(_) => Ok(writer.commit().await?),
            Err(m) => {
                writer.abort().await?;
                Err(m.into())
            }
        }
    }

    /// Stores bytes held in memory under the digest they must have.
    pub async fn put_bytes(&self, expected: &Digest, data: Bytes) -> Result<u64> {
        let actual = Digest::of(expected.algorithm(), &data);
        if &actual != expected {
            return Err(crate::digest::Mismatch {
                expected: expected.clone(),
                actual,
            }
            .into());
        }
        let len = data.len() as u64;
        if !self.exists(expected).await? {
            self.backend.put(&blob_key(expected), data).await?;
        }
        Ok(len)
    }

    /// Stores bytes held in memory and returns their sha256 digest.
    pub async fn put_new(&self, data: Bytes) -> Result<Digest> {
        let digest = Digest::sha256_of(&data);
        self.put_bytes(&digest, data).await?;
        Ok(digest)
    }

    /// Every blob in the store, in digest order (for garbage collection and accounting).
    pub async fn list(&self) -> Result<Vec<Digest>> {
        let keys = crate::backend::list_all(self.backend.as_ref(), "blobs/").await?;
        Ok(keys
            .iter()
            .filter_map(|k| {
                let rest = k.strip_prefix("blobs/")?;
                let (alg, hex) = rest.split_once('/')?;
                format!("{alg}:{hex}").parse().ok()
            })
            .collect())
    }

    /// Where the blob's bytes lie on the local disk, when the backend is a file system.
    pub fn local_path(&self, digest: &Digest) -> Option<PathBuf> {
        self.backend.local_path(&blob_key(digest))
    }

    /// Re-reads a stored object and returns the digest of its content.
    pub(crate) async fn hash_object(
        backend: &dyn Backend,
        key: &str,
        hasher: &mut Hasher,
    ) -> Result<u64> {
        let mut stream = backend.get(key, None).await?;
        let mut n = 0;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(StoreError::Stream)?;
            n += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(n)
    }
}

fn not_found_as_unknown(e: BackendError, digest: &Digest) -> StoreError {
    if e.is_not_found() {
        StoreError::BlobUnknown(digest.clone())
    } else {
        e.into()
    }
}
