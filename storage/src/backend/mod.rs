//! Where bytes live: the small [`Backend`] trait and its two implementations.
//!
//! A backend maps string keys (`blobs/sha256/…`, `repositories/…`) to immutable objects. It
//! offers exactly what the store above needs and no more: ranged reads, writes that become
//! visible all at once on [`ObjectWriter::commit`], stat, sorted listing with pagination,
//! delete, and a server-side copy. Everything that gives the bytes meaning lives above it, in
//! code that both backends share.

use std::ops::Range;
use std::pin::Pin;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;

pub mod fs;
pub mod s3;

pub use fs::FsBackend;
pub use s3::{S3Backend, S3Config};

/// A stream of chunks read from, or written to, a backend.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// What can go wrong below the store.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("no object at {0}")]
    NotFound(String),
    #[error("range {start}..{end} is outside the object's {size} bytes")]
    RangeNotSatisfiable { start: u64, end: u64, size: u64 },
    #[error("the object at {0} changed while it was being replaced")]
    Precondition(String),
    #[error("key {0:?} is not a valid storage key")]
    InvalidKey(String),
    #[error("i/o error at {key}: {source}")]
    Io {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("S3 {op} {key}: {message}")]
    S3 {
        op: &'static str,
        key: String,
        message: String,
    },
}

impl BackendError {
    pub fn io(key: impl Into<String>, source: std::io::Error) -> BackendError {
        if source.kind() == std::io::ErrorKind::NotFound {
            BackendError::NotFound(key.into())
        } else {
            BackendError::Io {
                key: key.into(),
                source,
            }
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, BackendError::NotFound(_))
    }
}

pub type Result<T, E = BackendError> = std::result::Result<T, E>;

/// Size and age of a stored object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectMeta {
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// A key with its size and age, as [`Backend::scan`] finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// Pages of entries, as [`Backend::scan`] streams them.
pub type EntryStream = Pin<Box<dyn Stream<Item = Result<Vec<Entry>>> + Send>>;

/// A small object's bytes with the version tag that [`Backend::replace`] compares against
/// (S3's ETag; a hash of the content on a file system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub data: Bytes,
    pub etag: String,
}

/// One page of a listing: keys in byte order, and whether more follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub keys: Vec<String>,
    pub truncated: bool,
}

/// An object being written. Nothing is visible under its key until [`commit`](Self::commit)
/// returns; dropping the writer (or a crash) leaves the key as it was.
#[async_trait]
pub trait ObjectWriter: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<()>;
    /// Bytes written so far.
    fn written(&self) -> u64;
    /// Makes the object visible under its key, replacing what was there.
    async fn commit(self: Box<Self>) -> Result<u64>;
    /// Discards what was written.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// The storage a [`crate::Store`] sits on.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Streams an object, or the byte range of it.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream>;

    /// Reads a small object whole.
    async fn read(&self, key: &str) -> Result<Bytes>;

    /// Starts writing an object that becomes visible on commit.
    async fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>>;

    /// Writes a small object in one step, atomically.
    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let mut w = self.writer(key).await?;
        w.write(data).await?;
        w.commit().await.map(|_| ())
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>>;

    /// Every key under `prefix` with its size and age, in byte order. The default stats each
    /// key; backends whose listing already says both (S3) or can stat in one pass (the file
    /// system) override it.
    async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>> {
        let mut out = Vec::new();
        for key in list_all_dyn(self, prefix).await? {
            if let Some(meta) = self.stat(&key).await? {
                out.push((key, meta));
            }
        }
        Ok(out)
    }

    /// Keys under `prefix` (recursively), in byte order, after `start_after`, at most `limit`.
    async fn list(&self, prefix: &str, start_after: Option<&str>, limit: usize)
        -> Result<ListPage>;

    /// Every object under `prefix` (empty, or ending in `/`) with its size and age, in pages,
    /// in no particular order: one pass over everything, for garbage collection.
    fn scan(&self, prefix: &str) -> EntryStream;

    /// Removes an object; removing a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<()>;

    /// Removes many objects (S3's DeleteObjects, a thousand keys a request); missing ones are
    /// not an error.
    async fn delete_many(&self, keys: &[String]) -> Result<()>;

    /// Writes a small object only if none is at `key`, and returns its version tag; `None`
    /// when one already is. Of two writers racing for one key exactly one succeeds (S3's
    /// `If-None-Match: *`).
    async fn create_new(&self, key: &str, data: Bytes) -> Result<Option<String>>;

    /// Reads a small object with its version tag; `None` when there is none.
    async fn read_versioned(&self, key: &str) -> Result<Option<Versioned>>;

    /// Replaces a small object only if it is still the version `etag` names, and returns the
    /// new version's tag; `None` when it changed or went in between (S3's `If-Match`).
    async fn replace(&self, key: &str, data: Bytes, etag: &str) -> Result<Option<String>>;

    /// Copies an object to another key (server side where the backend can), atomically.
    async fn copy(&self, from: &str, to: &str) -> Result<()>;

    /// Moves an object; the default copies then deletes.
    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        self.copy(from, to).await?;
        self.delete(from).await
    }

    /// A token that changes whenever a key directly under `prefix` (a directory: `catalog/`) is
    /// added, replaced or removed, if the backend can tell that cheaply and for certain; `None`
    /// when it cannot (then a listing must be read again each time). A listing read after the
    /// token and kept with it is current for as long as the token stays the same.
    async fn listing_stamp(&self, _prefix: &str) -> Result<Option<String>> {
        Ok(None)
    }

    /// Removes what writers killed half way left behind and nobody will finish: the file
    /// system's temporary files, S3's incomplete multipart uploads under this store's blob and
    /// upload keys. Only what was begun (or last written) more than `age` before `now` goes;
    /// nothing of it is visible under a key. Returns how many; `dry_run` only counts.
    async fn expire_abandoned_writes(
        &self,
        _age: std::time::Duration,
        _now: std::time::SystemTime,
        _dry_run: bool,
    ) -> Result<u64> {
        Ok(0)
    }

    /// A path on the local file system where the object can be read directly, if there is one.
    fn local_path(&self, _key: &str) -> Option<std::path::PathBuf> {
        None
    }

    /// Whether the storage answers at all (the root directory is there and readable; the
    /// bucket exists and the credentials open it): for health checks.
    async fn reachable(&self) -> Result<()>;

    /// A short description for logs: `filesystem /var/lib/berth`, `s3 bucket/prefix`.
    fn describe(&self) -> String;
}

/// Every entry under a prefix, gathered from [`Backend::scan`]'s pages.
pub async fn scan_all(backend: &dyn Backend, prefix: &str) -> Result<Vec<Entry>> {
    use futures::TryStreamExt;
    let pages: Vec<Vec<Entry>> = backend.scan(prefix).try_collect().await?;
    Ok(pages.into_iter().flatten().collect())
}

/// Lists every key under a prefix, following pages.
pub async fn list_all(backend: &dyn Backend, prefix: &str) -> Result<Vec<String>> {
    list_all_dyn(backend, prefix).await
}

async fn list_all_dyn<B: Backend + ?Sized>(backend: &B, prefix: &str) -> Result<Vec<String>> {
    // One listing without a limit: the S3 backend follows its pages itself, and the file
    // system walks the directory once (pages of 1,000 would each walk all of it again).
    Ok(backend.list(prefix, None, usize::MAX).await?.keys)
}

/// Rejects keys that could leave the backend's root: every key the store builds comes from
/// validated names and digests, so this is a second line of defence, not the first.
pub(crate) fn check_key(key: &str) -> Result<()> {
    let bad = key.is_empty()
        || key.starts_with('/')
        || key.contains('\0')
        || key
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..");
    if bad {
        Err(BackendError::InvalidKey(key.to_string()))
    } else {
        Ok(())
    }
}
