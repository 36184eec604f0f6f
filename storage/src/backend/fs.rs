//! The filesystem backend: each key is a file under a root directory.
//!
//! Writes go to a temporary file under `<root>/.tmp` and are renamed into place on commit, so a
//! reader sees the old object or the whole new one, never a part; a writer killed half way
//! leaves only a temporary file that no key points at. Reads and writes run on blocking threads
//! that hand large chunks across a channel, so hashing in the caller overlaps the disk I/O.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::{
    check_key, Backend, BackendError, ByteStream, Entry, EntryStream, ListPage, ObjectMeta,
    ObjectWriter, Result, Versioned,
};

/// Chunk size for streamed reads: large enough that per-chunk overhead vanishes.
const READ_CHUNK: usize = 1 << 20;
/// Objects (or ranges) up to this size are opened, stat'ed and read on the async thread that
/// asks, as is every `stat`: these are page-cache hits in the common case and cost a few
/// microseconds, while a hop to the blocking pool and back costs tens (measured with `perf`
/// under `wrk` on a small blob GET: half the server's CPU went to waking and switching
/// threads for its four hops). Larger reads stream from a blocking thread.
const INLINE_READ: u64 = 64 << 10;

/// Bytes `range` of an open file, which must hold them.
fn read_range(file: &File, range: Range<u64>) -> std::io::Result<Bytes> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0; (range.end - range.start) as usize];
    file.read_exact_at(&mut buf, range.start)?;
    Ok(Bytes::from(buf))
}

/// How old a directory's modification time must be before it stands for the directory's
/// entries (see `listing_stamp`).
const STAMP_SETTLED: std::time::Duration = std::time::Duration::from_secs(2);
const TMP_DIR: &str = ".tmp";
/// Entries a scan hands over at a time.
const SCAN_PAGE: usize = 1000;

/// Objects as files under one directory.
#[derive(Debug, Clone)]
pub struct FsBackend {
    root: PathBuf,
    /// fsync file contents before they become visible (durability against power loss).
    sync: bool,
}

impl FsBackend {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>, sync: bool) -> std::io::Result<FsBackend> {
        let root = root.into();
        std::fs::create_dir_all(root.join(TMP_DIR))?;
        Ok(FsBackend { root, sync })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    fn temp_path(&self) -> PathBuf {
        self.root
            .join(TMP_DIR)
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Runs `f` holding the root's lock for conditional writes: an `flock` on a file under
    /// `.tmp`, which every process on this host that opens the root takes for them.
    async fn conditionally<T: Send + 'static>(
        &self,
        key: &str,
        f: impl FnOnce(&Path) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T> {
        let path = self.path(key)?;
        let lock = self.root.join(TMP_DIR).join("conditional.lock");
        let key = key.to_string();
        blocking(move || {
            let run = || {
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock)?;
                file.lock()?;
                f(&path)
            };
            run().map_err(|e| BackendError::io(key, e))
        })
        .await
    }
}

/// The version tag of a small object on disk: a hash of its content.
fn etag_of(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(data)[..16])
}

/// Writes `data` to `dest` through a temporary file beside the others.
fn write_through_temp(temp: &Path, dest: &Path, data: &[u8], sync: bool) -> std::io::Result<()> {
    let write = || -> std::io::Result<()> {
        let mut f = File::create(temp)?;
        f.write_all(data)?;
        if sync {
            f.sync_all()?;
        }
        rename_into_place(temp, dest)
    };
    write().inspect_err(|_| {
        let _ = std::fs::remove_file(temp);
    })
}

/// Renames `from` onto `to`, creating `to`'s parent directories; retries when a concurrent
/// delete removed an empty parent between the two steps.
fn rename_into_place(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut tries = 0;
    loop {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        match std::fs::rename(from, to) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 8 && from.exists() => {
                tries += 1;
            }
            other => return other,
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BackendError::io("", std::io::Error::other(e)))?
}

#[async_trait]
impl Backend for FsBackend {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        let path = self.path(key)?;
        // Opened here, on the async thread, as the metadata calls are (see `INLINE_READ`).
        let file = File::open(&path).map_err(|e| BackendError::io(key, e))?;
        let size = file.metadata().map_err(|e| BackendError::io(key, e))?.len();
        let range = range.unwrap_or(0..size);
        if range.start > range.end || range.end > size {
            return Err(BackendError::RangeNotSatisfiable {
                start: range.start,
                end: range.end,
                size,
            });
        }
        if range.end - range.start <= INLINE_READ {
            let bytes = read_range(&file, range).map_err(|e| BackendError::io(key, e))?;
            return Ok(Box::pin(futures::stream::once(async move { Ok(bytes) })));
        }
        let (tx, rx) = mpsc::channel::<std::io::Result<Bytes>>(4);
        tokio::task::spawn_blocking(move || {
            let mut file = file;
            let pool = ChunkPool::default();
            if let Err(e) = file.seek(SeekFrom::Start(range.start)) {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let mut left = range.end - range.start;
            while left > 0 {
                let want = left.min(READ_CHUNK as u64);
                // read_to_end fills spare capacity without zeroing it first.
                let mut buf = pool.take(want as usize);
                match (&mut file).take(want).read_to_end(&mut buf) {
                    Ok(0) => {
                        let _ = tx.blocking_send(Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "object shrank while it was read",
                        )));
                        return;
                    }
                    Ok(n) => left -= n as u64,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
                if tx.blocking_send(Ok(pool.chunk(buf))).is_err() {
                    return;
                }
            }
        });
        Ok(Box::pin(tokio_stream_from(rx)))
    }

    async fn read(&self, key: &str) -> Result<Bytes> {
        let path = self.path(key)?;
        let file = File::open(&path).map_err(|e| BackendError::io(key, e))?;
        let size = file.metadata().map_err(|e| BackendError::io(key, e))?.len();
        if size <= INLINE_READ {
            return read_range(&file, 0..size).map_err(|e| BackendError::io(key, e));
        }
        let key = key.to_string();
        blocking(move || {
            let mut buf = Vec::with_capacity(size as usize);
            (&file)
                .read_to_end(&mut buf)
                .map(|_| Bytes::from(buf))
                .map_err(|e| BackendError::io(key, e))
        })
        .await
    }

    async fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let dest = self.path(key)?;
        let temp = self.temp_path();
        let file = {
            let temp = temp.clone();
            let key = key.to_string();
            blocking(move || File::create(&temp).map_err(|e| BackendError::io(key, e))).await?
        };
        let (tx, rx) = mpsc::channel(8);
        let worker = FileWorker {
            file,
            temp,
            dest,
            sync: self.sync,
            key: key.to_string(),
        };
        tokio::task::spawn_blocking(move || worker.run(rx));
        Ok(Box::new(FsWriter {
            tx,
            written: 0,
            key: key.to_string(),
        }))
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        let dest = self.path(key)?;
        let temp = self.temp_path();
        let sync = self.sync;
        let key = key.to_string();
        blocking(move || {
            write_through_temp(&temp, &dest, &data, sync).map_err(|e| BackendError::io(key, e))
        })
        .await
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(key)?;
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => Ok(Some(ObjectMeta {
                size: m.len(),
                modified: m.modified().ok(),
            })),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            // A file where a directory was expected (`a/b` when `a` is an object).
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => Ok(None),
            Err(e) => Err(BackendError::io(key, e)),
        }
    }

    /// The directory's inode and modification time, which every entry added, replaced
    /// (renamed over) or removed in it changes; `None` while that time is under two seconds
    /// old, as a change in the same tick of the file system's clock could leave it unchanged.
    async fn listing_stamp(&self, prefix: &str) -> Result<Option<String>> {
        use std::os::unix::fs::MetadataExt;
        let dir = prefix.trim_end_matches('/');
        if dir.is_empty() {
            return Ok(None);
        }
        let path = self.path(dir)?;
        let m = match std::fs::metadata(&path) {
            Ok(m) if m.is_dir() => m,
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BackendError::io(dir, e)),
        };
        let settled = m
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= STAMP_SETTLED);
        Ok(settled.then(|| format!("{}:{}.{}", m.ino(), m.mtime(), m.mtime_nsec())))
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let trimmed = prefix.trim_end_matches('/');
        if !trimmed.is_empty() {
            check_key(trimmed)?;
        }
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let start_after = start_after.map(str::to_string);
        blocking(move || {
            let mut out = Vec::new();
            let mut truncated = false;
            // Walk from the directory holding the prefix; keys that merely start with the
            // prefix text (`a/b` for prefix `a/b`) are found by filtering that directory.
            let (dir_key, _) = match prefix.rfind('/') {
                Some(i) => (prefix[..i].to_string(), &prefix[i + 1..]),
                None => (String::new(), prefix.as_str()),
            };
            let dir = if dir_key.is_empty() {
                root.clone()
            } else {
                root.join(&dir_key)
            };
            walk_sorted(&dir, &dir_key, &mut |key| {
                if !key.starts_with(&prefix) {
                    return true;
                }
                if let Some(a) = &start_after {
                    if key.as_str() <= a.as_str() {
                        return true;
                    }
                }
                if out.len() == limit {
                    truncated = true;
                    return false;
                }
                out.push(key);
                true
            })
            .map_err(|e| BackendError::io(prefix.clone(), e))?;
            Ok(ListPage {
                keys: out,
                truncated,
            })
        })
        .await
    }

    async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>> {
        // One walk of the directory (`list_all`'s pages of 1000 would each walk it again).
        let keys = self.list(prefix, None, usize::MAX).await?.keys;
        let root = self.root.clone();
        // One blocking task for every stat: a listing of 10,000 keys costs one thread hop.
        blocking(move || {
            let mut out = Vec::with_capacity(keys.len());
            for key in keys {
                match std::fs::metadata(root.join(&key)) {
                    Ok(m) if m.is_file() => {
                        let meta = ObjectMeta {
                            size: m.len(),
                            modified: m.modified().ok(),
                        };
                        out.push((key, meta));
                    }
                    // Deleted since it was listed.
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(BackendError::io(key, e)),
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        let root = self.root.clone();
        let key = key.to_string();
        blocking(move || {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(BackendError::io(key, e)),
            }
            // Empty directories are not objects: prune them so listings stay clean.
            let mut dir = path.parent();
            while let Some(d) = dir {
                if d == root || std::fs::remove_dir(d).is_err() {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
    }

    fn scan(&self, prefix: &str) -> EntryStream {
        let (tx, rx) = mpsc::channel::<Result<Vec<Entry>>>(4);
        let trimmed = prefix.trim_end_matches('/').to_string();
        let checked = if trimmed.is_empty() {
            Ok(())
        } else {
            check_key(&trimmed)
        };
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = checked {
                let _ = tx.blocking_send(Err(e));
                return;
            }
            let dir = if trimmed.is_empty() {
                root.clone()
            } else {
                root.join(&trimmed)
            };
            let mut page = Vec::with_capacity(SCAN_PAGE);
            let walked = walk_entries(&dir, &trimmed, &mut |entry| {
                page.push(entry);
                if page.len() == SCAN_PAGE {
                    let full = std::mem::replace(&mut page, Vec::with_capacity(SCAN_PAGE));
                    return tx.blocking_send(Ok(full)).is_ok();
                }
                true
            });
            let last = match walked {
                Ok(_) => Ok(page),
                Err(e) => Err(BackendError::io(trimmed, e)),
            };
            let _ = tx.blocking_send(last);
        });
        Box::pin(tokio_stream_from(rx))
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let mut paths = Vec::with_capacity(keys.len());
        for k in keys {
            paths.push((k.clone(), self.path(k)?));
        }
        let root = self.root.clone();
        // A few threads: unlinking is mostly waiting for the file system.
        let threads = 4.min(paths.len().max(1));
        let per = paths.len().div_ceil(threads).max(1);
        let mut tasks = Vec::new();
        let mut rest = paths;
        while !rest.is_empty() {
            let tail = rest.split_off(per.min(rest.len()));
            let part = std::mem::replace(&mut rest, tail);
            tasks.push(tokio::task::spawn_blocking(move || {
                let mut parents = std::collections::BTreeSet::new();
                for (key, path) in part {
                    match std::fs::remove_file(&path) {
                        Ok(()) => {
                            if let Some(p) = path.parent() {
                                parents.insert(p.to_path_buf());
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(BackendError::io(key, e)),
                    }
                }
                Ok(parents)
            }));
        }
        let mut parents = std::collections::BTreeSet::new();
        for t in tasks {
            parents.extend(
                t.await
                    .map_err(|e| BackendError::io("", std::io::Error::other(e)))??,
            );
        }
        blocking(move || {
            // Deepest first, so that a directory emptied by its children goes too.
            for p in parents.iter().rev() {
                let mut dir = Some(p.as_path());
                while let Some(d) = dir {
                    if d == root || std::fs::remove_dir(d).is_err() {
                        break;
                    }
                    dir = d.parent();
                }
            }
            Ok(())
        })
        .await
    }

    async fn create_new(&self, key: &str, data: Bytes) -> Result<Option<String>> {
        let temp = self.temp_path();
        let sync = self.sync;
        self.conditionally(key, move |dest| {
            if dest.exists() {
                return Ok(None);
            }
            write_through_temp(&temp, dest, &data, sync)?;
            Ok(Some(etag_of(&data)))
        })
        .await
    }

    async fn read_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        match self.read(key).await {
            Ok(data) => Ok(Some(Versioned {
                etag: etag_of(&data),
                data,
            })),
            Err(BackendError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn replace(&self, key: &str, data: Bytes, etag: &str) -> Result<Option<String>> {
        let temp = self.temp_path();
        let sync = self.sync;
        let etag = etag.to_string();
        self.conditionally(key, move |dest| {
            let current = match std::fs::read(dest) {
                Ok(c) => c,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(e),
            };
            if etag_of(&current) != etag {
                return Ok(None);
            }
            write_through_temp(&temp, dest, &data, sync)?;
            Ok(Some(etag_of(&data)))
        })
        .await
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let src = self.path(from)?;
        let dest = self.path(to)?;
        let temp = self.temp_path();
        let from = from.to_string();
        blocking(move || {
            // Objects are never modified in place, so a hard link is a faithful copy.
            let linked =
                std::fs::hard_link(&src, &temp).or_else(|_| std::fs::copy(&src, &temp).map(|_| ()));
            linked
                .and_then(|_| rename_into_place(&temp, &dest))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&temp);
                    BackendError::io(from, e)
                })
        })
        .await
    }

    async fn rename(&self, from: &str, to: &str) -> Result<()> {
        let src = self.path(from)?;
        let dest = self.path(to)?;
        let from = from.to_string();
        blocking(move || rename_into_place(&src, &dest).map_err(|e| BackendError::io(from, e)))
            .await
    }

    async fn reachable(&self) -> Result<()> {
        let root = self.root.clone();
        blocking(move || {
            std::fs::read_dir(&root)
                .map(drop)
                .map_err(|e| BackendError::io(root.display().to_string(), e))
        })
        .await
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path(key).ok()
    }

    /// The temporary files of writers that died (a process killed mid-write leaves its file
    /// under `.tmp`): those not written for longer than `age`. A live writer writes its file
    /// as bytes arrive; the lock file is not a temporary file.
    async fn expire_abandoned_writes(
        &self,
        age: std::time::Duration,
        now: std::time::SystemTime,
        dry_run: bool,
    ) -> Result<u64> {
        let dir = self.root.join(TMP_DIR);
        blocking(move || {
            let io = |e| BackendError::io(TMP_DIR, e);
            let mut count = 0;
            for entry in std::fs::read_dir(&dir).map_err(io)? {
                let entry = entry.map_err(io)?;
                let name = entry.file_name();
                let temporary = name.len() == 32
                    && name
                        .to_str()
                        .is_some_and(|n| n.bytes().all(|b| b.is_ascii_hexdigit()));
                let Ok(meta) = entry.metadata() else { continue };
                let stale = meta
                    .modified()
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|a| a >= age);
                if !temporary || !meta.is_file() || !stale {
                    continue;
                }
                if !dry_run {
                    match std::fs::remove_file(entry.path()) {
                        Ok(()) => {}
                        // Its writer finished (renamed it) or gave up meanwhile.
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                        Err(e) => return Err(io(e)),
                    }
                }
                count += 1;
            }
            Ok(count)
        })
        .await
    }

    fn describe(&self) -> String {
        format!("filesystem {}", self.root.display())
    }
}

/// Visits every file below `dir` in byte order of its key. Directories sort as `name/`, which
/// is what makes `a-b/x` come before `a/x`, as in an S3 listing.
fn walk_sorted(
    dir: &Path,
    key_prefix: &str,
    visit: &mut dyn FnMut(String) -> bool,
) -> std::io::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::NotADirectory =>
        {
            return Ok(true)
        }
        Err(e) => return Err(e),
    };
    let mut items = Vec::new();
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if key_prefix.is_empty() && name == TMP_DIR {
            continue;
        }
        let is_dir = entry.file_type()?.is_dir();
        let sort_key = if is_dir {
            format!("{name}/")
        } else {
            name.clone()
        };
        items.push((sort_key, name, is_dir));
    }
    items.sort();
    for (_, name, is_dir) in items {
        let key = if key_prefix.is_empty() {
            name.clone()
        } else {
            format!("{key_prefix}/{name}")
        };
        if is_dir {
            if !walk_sorted(&dir.join(&name), &key, visit)? {
                return Ok(false);
            }
        } else if !visit(key) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Visits every file below `dir` with its size and modification time, in directory order.
/// Returns `false` when the visitor asked to stop.
fn walk_entries(
    dir: &Path,
    key_prefix: &str,
    visit: &mut dyn FnMut(Entry) -> bool,
) -> std::io::Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                || e.kind() == std::io::ErrorKind::NotADirectory =>
        {
            return Ok(true)
        }
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if key_prefix.is_empty() && name == TMP_DIR {
            continue;
        }
        let key = if key_prefix.is_empty() {
            name
        } else {
            format!("{key_prefix}/{name}")
        };
        let meta = match entry.metadata() {
            Ok(m) => m,
            // Removed since the directory was read.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let go_on = if meta.is_dir() {
            walk_entries(&entry.path(), &key, visit)?
        } else {
            visit(Entry {
                key,
                size: meta.len(),
                modified: meta.modified().ok(),
            })
        };
        if !go_on {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The buffers of one streamed read. A chunk handed to the body comes back here when the
/// connection has written it, and the next read fills it again: a fresh 1 MiB buffer is a fresh
/// `mmap` from the allocator, and faulting in and zeroing its pages, then unmapping them, took a
/// fifth of the server's CPU on a 64 MiB blob GET (`perf record` under repeated `curl` GETs).
/// At most the chunks in flight (the channel's depth and the one being written) exist at once;
/// the last chunk dropped frees them all.
#[derive(Clone, Default)]
struct ChunkPool(std::sync::Arc<std::sync::Mutex<Vec<Vec<u8>>>>);

impl ChunkPool {
    /// An empty buffer with room for `capacity` bytes: a returned one when there is one.
    fn take(&self, capacity: usize) -> Vec<u8> {
        let returned = self.0.lock().ok().and_then(|mut free| free.pop());
        match returned {
            Some(mut buf) => {
                buf.reserve_exact(capacity);
                buf
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// `buf` as a chunk of the body that returns its buffer to this pool when dropped.
    fn chunk(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(PooledChunk {
            buf,
            pool: self.clone(),
        })
    }
}

struct PooledChunk {
    buf: Vec<u8>,
    pool: ChunkPool,
}

impl AsRef<[u8]> for PooledChunk {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledChunk {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if let Ok(mut free) = self.pool.0.lock() {
            free.push(buf);
        }
    }
}

fn tokio_stream_from<T: Send>(mut rx: mpsc::Receiver<T>) -> impl futures::Stream<Item = T> + Send {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

enum WriteOp {
    Data(Bytes),
    Commit(oneshot::Sender<std::io::Result<()>>),
}

/// The blocking side of an [`FsWriter`]: owns the temporary file.
struct FileWorker {
    file: File,
    temp: PathBuf,
    dest: PathBuf,
    sync: bool,
    key: String,
}

impl FileWorker {
    fn run(mut self, mut rx: mpsc::Receiver<WriteOp>) {
        let mut failed: Option<std::io::Error> = None;
        while let Some(op) = rx.blocking_recv() {
            match op {
                WriteOp::Data(chunk) => {
                    if failed.is_none() {
                        if let Err(e) = self.file.write_all(&chunk) {
                            failed = Some(e);
                        }
                    }
                }
                WriteOp::Commit(reply) => {
                    let result = match failed.take() {
                        Some(e) => Err(e),
                        None => self.finish(),
                    };
                    if result.is_err() {
                        let _ = std::fs::remove_file(&self.temp);
                    }
                    let _ = reply.send(result);
                    return;
                }
            }
        }
        // The writer was dropped or aborted without a commit.
        tracing::debug!(key = %self.key, "discarding uncommitted write");
        let _ = std::fs::remove_file(&self.temp);
    }

    fn finish(&mut self) -> std::io::Result<()> {
        if self.sync {
            self.file.sync_all()?;
        }
        rename_into_place(&self.temp, &self.dest)
    }
}

struct FsWriter {
    tx: mpsc::Sender<WriteOp>,
    written: u64,
    key: String,
}

impl FsWriter {
    fn gone(&self) -> BackendError {
        BackendError::io(&self.key, std::io::Error::other("writer thread ended"))
    }
}

#[async_trait]
impl ObjectWriter for FsWriter {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.written += chunk.len() as u64;
        self.tx
            .send(WriteOp::Data(chunk))
            .await
            .map_err(|_| self.gone())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn commit(self: Box<Self>) -> Result<u64> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(WriteOp::Commit(reply))
            .await
            .map_err(|_| self.gone())?;
        match rx.await {
            Ok(Ok(())) => Ok(self.written),
            Ok(Err(e)) => Err(BackendError::io(&self.key, e)),
            Err(_) => Err(self.gone()),
        }
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        // Dropping the sender ends the worker, which removes the temporary file.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_streamed_read_reuses_the_buffers_its_body_has_written() {
        let pool = ChunkPool::default();
        let mut first = pool.take(READ_CHUNK);
        first.extend_from_slice(b"abc");
        let address = first.as_ptr();
        let chunk = pool.chunk(first);
        assert_eq!(&chunk[..], b"abc");
        // While the chunk is in flight its buffer is not handed out again.
        let second = pool.take(READ_CHUNK);
        assert_ne!(second.as_ptr(), address);
        drop(chunk);
        let again = pool.take(READ_CHUNK);
        assert_eq!(
            again.as_ptr(),
            address,
            "the written chunk's buffer comes back"
        );
        assert!(again.is_empty() && again.capacity() >= READ_CHUNK);
    }
}
