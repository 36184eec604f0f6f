//! The layer writer: a directory tree turned into an OCI layer in the store, and its
//! relatives, the change list (`diff`) and the merged tree as a tar (`export`).
//!
//! [`write_layer`] takes a [`LayerSource`]: an overlay upper directory (what a container
//! changed: a 0/0 character device becomes a `.wh.NAME` whiteout, a directory marked
//! `trusted.overlay.opaque=y` is followed by its `.wh..wh..opq`) or a plain tree (a build
//! context, placed at a path of the layer). The tree is walked with no symlink followed
//! (`walk`), entries sorted by name; hard links stay links; owners, modes, device numbers and
//! the extended attributes `unpack` applies (`user.*`, `security.capability`, POSIX ACLs) are
//! kept; times are whole seconds (as docker writes them), clamped to `SOURCE_DATE_EPOCH` when
//! one is given, so the same tree gives the same bytes.
//!
//! One pass: a thread walks and writes the tar stream in 1 MiB chunks, hashing it (the
//! diff_id); the calling thread compresses the chunks (gzip on every core, zstd with its own
//! worker threads, or none), hashes what comes out (the digest) and writes it into a
//! temporary file of the store, which is renamed to `blobs/sha256/<digest>` at the end: the
//! bytes are written once. With [`LayerOptions::snapshot`] the same chunks also feed
//! `unpack`, berth's hostile-safe reader, into a snapshot directory on a third thread, so the
//! layer is ready to run without reading it back.
//!
//! Where the time goes (2-core machine, 200 MiB in 2,000 files): reading and hashing cost
//! about 0.15 s each per 200 MiB; deflate costs 1.5–6 s (35–150 MB/s a core), zstd -3
//! 0.3–1.5 s; writing the blob and the snapshot is page-cache work. So a layer that stays on
//! this host (`commit`) is stored uncompressed, and gzip is paid when it is pushed.

mod file;
mod tar;
mod walk;

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;

use berth_storage::{Algorithm, Digest, Hasher};

use crate::compress::{self, Compressor, HashingFile};

use crate::images::ImageStore;
use crate::remote::{MEDIA_DOCKER_LAYER_GZIP, MEDIA_DOCKER_LAYER_TAR, MEDIA_OCI_LAYER_ZSTD};
use crate::unpack::{unpack_tar, UnpackError, UnpackOptions};

pub use crate::compress::Compression;
pub use file::copy_file;
use walk::{Node, Stack, View, Walker, What};

/// The size of the pieces the tar stream is handed over in.
const CHUNK: usize = 1 << 20;
/// Chunks between the walking thread and the writing one (bounds memory at a few MiB).
const CHUNKS_IN_FLIGHT: usize = 8;

/// What a layer is made of.
#[derive(Debug, Clone, Copy)]
pub enum LayerSource<'a> {
    /// An overlay upper directory: a container's changes to the layers below it.
    Upper(&'a Path),
    /// A plain directory tree, its content placed at `at` in the layer (`""`: the layer's
    /// root; otherwise `dir` itself is the entry `at`, and `at`'s parents are not entries).
    Tree { dir: &'a Path, at: &'a str },
}

/// How a layer is written.
#[derive(Debug, Clone)]
pub struct LayerOptions {
    pub compression: Compression,
    /// gzip 1–9 (default 6, as docker), zstd 1–19 (default 3).
    pub level: Option<u32>,
    /// Compression threads; 0 = one per core.
    pub threads: usize,
    /// Times later than this (seconds since the epoch) are written as this.
    pub source_date_epoch: Option<i64>,
    /// Also unpack the layer into this directory (which must exist and be empty) as it is
    /// written. On failure the caller removes it.
    pub snapshot: Option<PathBuf>,
    /// A layer with no entries is not stored (`commit` of an unchanged container adds no
    /// layer, as docker's): the [`WrittenLayer`] says `entries: 0` and no blob was kept.
    pub skip_empty: bool,
}

impl Default for LayerOptions {
    fn default() -> LayerOptions {
        LayerOptions {
            compression: Compression::Gzip,
            level: None,
            threads: 0,
            source_date_epoch: None,
            snapshot: None,
            skip_empty: false,
        }
    }
}

impl LayerOptions {
    /// `SOURCE_DATE_EPOCH` from the environment, as reproducible builds set it; an error
    /// names a value that is not a number of seconds.
    pub fn epoch_from_env() -> Result<Option<i64>, LayerError> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) if v.is_empty() => Ok(None),
            Ok(v) => v
                .trim()
                .parse()
                .map(Some)
                .map_err(|_| LayerError::Epoch(v.clone())),
            Err(_) => Ok(None),
        }
    }
}

/// A layer stored as a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenLayer {
    /// The blob's digest (of the compressed bytes).
    pub digest: Digest,
    /// The blob's size.
    pub size: u64,
    /// The digest of the uncompressed tar: the image config's `rootfs.diff_ids` entry.
    pub diff_id: Digest,
    pub uncompressed_size: u64,
    pub media_type: &'static str,
    /// Tar entries written (PAX headers not counted).
    pub entries: u64,
}

/// Why a layer, a change list or an export could not be made.
#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    #[error("cannot open {path}: {source}")]
    Source { path: PathBuf, source: io::Error },
    #[error("/{path}: {source}")]
    Entry { path: String, source: io::Error },
    #[error("/{path} carries {xattr}, which a layer cannot express (the overlay was mounted with redirect_dir or metacopy on)")]
    Overlay { path: String, xattr: String },
    #[error("writing the layer: {0}")]
    Write(#[source] io::Error),
    #[error("unpacking the new layer: {0}")]
    Unpack(#[from] UnpackError),
    #[error("SOURCE_DATE_EPOCH={0:?} is not a number of seconds")]
    Epoch(String),
}

/// Writes a layer from `source` into the store: the blob under its digest (none for an empty
/// layer with `options.skip_empty`), and with `options.snapshot` the unpacked snapshot too.
/// Blocks; call it off an async runtime.
pub fn write_layer(
    store: &ImageStore,
    source: LayerSource<'_>,
    options: &LayerOptions,
) -> Result<WrittenLayer, LayerError> {
    let (view, dir, prefix) = match source {
        LayerSource::Upper(dir) => (View::Upper, dir, Vec::new()),
        LayerSource::Tree { dir, at } => (View::Plain, dir, clean_prefix(at)),
    };
    let stack = Stack::open(&[dir.to_path_buf()])?;
    let (tmp, file) = store.partial_file("layer").map_err(LayerError::Write)?;
    let layer = pipeline(stack, view, &prefix, file, options).and_then(|layer| {
        if options.skip_empty && layer.entries == 0 {
            std::fs::remove_file(&tmp).map_err(LayerError::Write)?;
            return Ok(layer);
        }
        store
            .publish_blob(&tmp, &layer.digest)
            .map_err(LayerError::Write)?;
        Ok(layer)
    });
    if layer.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    layer
}

/// The merged view of `layers` (top first, overlay directories: whiteouts hide, opaque
/// directories stop) as one plain tar written to `out`; returns the bytes written.
pub fn export<W: Write>(layers: &[PathBuf], out: W) -> Result<u64, LayerError> {
    let stack = Stack::open(layers)?;
    let mut out = out;
    let mut ship = |chunk: Vec<u8>| out.write_all(&chunk);
    let mut stream = TarStream::unhashed(&mut ship);
    Walker::new(View::Merged, &mut |node| stream.node(node)).run(stack, b"")?;
    let (len, _, _) = stream.finish().map_err(LayerError::Write)?;
    out.flush().map_err(LayerError::Write)?;
    Ok(len)
}

/// The entry `name` of the directory `parent` (all below it too, for a directory) as a tar
/// written to `out`, its top entry named `as_path`; `owner` replaces every entry's owner.
/// Returns the bytes written. No symlink is followed: `parent` is the only way in.
pub fn tar_entry<W: Write>(
    parent: std::os::fd::OwnedFd,
    name: &[u8],
    as_path: &str,
    owner: Option<(u32, u32)>,
    out: W,
) -> Result<u64, LayerError> {
    let parent = Stack::from_fd(parent);
    let mut out = out;
    let mut ship = |chunk: Vec<u8>| out.write_all(&chunk);
    let mut stream = TarStream::unhashed(&mut ship);
    stream.owner = owner;
    Walker::new(View::Plain, &mut |node| stream.node(node)).run_entry(
        &parent,
        name,
        &clean_prefix(as_path),
    )?;
    let (len, _, _) = stream.finish().map_err(LayerError::Write)?;
    out.flush().map_err(LayerError::Write)?;
    Ok(len)
}

/// What the directory `dir` holds (not the directory itself) as a tar written to `out`;
/// `owner` replaces every entry's owner. Returns the bytes written.
pub fn tar_contents<W: Write>(
    dir: std::os::fd::OwnedFd,
    owner: Option<(u32, u32)>,
    out: W,
) -> Result<u64, LayerError> {
    let mut out = out;
    let mut ship = |chunk: Vec<u8>| out.write_all(&chunk);
    let mut stream = TarStream::unhashed(&mut ship);
    stream.owner = owner;
    Walker::new(View::Plain, &mut |node| stream.node(node)).run(Stack::from_fd(dir), b"")?;
    let (len, _, _) = stream.finish().map_err(LayerError::Write)?;
    out.flush().map_err(LayerError::Write)?;
    Ok(len)
}

/// The tar stream of one directory tree written to `out` (no whiteout interpreted): the
/// uncompressed layer `write_layer` would store for a [`LayerSource::Tree`]. Returns its
/// length and digest.
pub fn write_tar<W: Write>(
    dir: &Path,
    at: &str,
    source_date_epoch: Option<i64>,
    out: W,
) -> Result<(u64, Digest), LayerError> {
    let stack = Stack::open(&[dir.to_path_buf()])?;
    let mut out = out;
    let mut ship = |chunk: Vec<u8>| out.write_all(&chunk);
    let mut stream = TarStream::new(&mut ship, source_date_epoch);
    Walker::new(View::Plain, &mut |node| stream.node(node)).run(stack, &clean_prefix(at))?;
    let (len, digest, _) = stream.finish().map_err(LayerError::Write)?;
    let digest = digest.expect("hashed");
    out.flush().map_err(LayerError::Write)?;
    Ok((len, digest))
}

fn clean_prefix(at: &str) -> Vec<u8> {
    at.split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect::<Vec<_>>()
        .join("/")
        .into_bytes()
}

/// Walks, compresses, hashes and writes; see the module documentation.
fn pipeline(
    stack: Stack,
    view: View,
    prefix: &[u8],
    file: File,
    options: &LayerOptions,
) -> Result<WrittenLayer, LayerError> {
    let threads = compress::threads(options.threads);
    let epoch = options.source_date_epoch;
    std::thread::scope(|scope| {
        let (tx, rx) = mpsc::sync_channel::<Arc<Vec<u8>>>(CHUNKS_IN_FLIGHT);
        let walker = scope.spawn(move || {
            let mut ship = |chunk: Vec<u8>| {
                tx.send(Arc::new(chunk))
                    .map_err(|_| io::Error::other("the layer's writer stopped"))
            };
            let mut stream = TarStream::new(&mut ship, epoch);
            Walker::new(view, &mut |node| stream.node(node)).run(stack, prefix)?;
            stream.finish().map_err(LayerError::Write)
        });
        let (unpack_tx, unpacker) = match &options.snapshot {
            Some(dir) => {
                let (utx, urx) = mpsc::sync_channel::<Arc<Vec<u8>>>(CHUNKS_IN_FLIGHT);
                let reader = ChunkReader {
                    rx: urx,
                    current: Arc::new(Vec::new()),
                    pos: 0,
                };
                // The walker hashes the stream: the unpacker reads the same chunks unhashed.
                let h = scope.spawn(move || unpack_tar(reader, dir, &UnpackOptions::default()));
                (Some(utx), Some(h))
            }
            None => (None, None),
        };
        let written = (|| -> io::Result<(u64, Option<Digest>)> {
            let hash = options.compression != Compression::None;
            let mut out = Compressor::new(
                HashingFile::new(file, hash),
                options.compression,
                options.level,
                threads,
            )?;
            let mut unpack_tx = unpack_tx;
            for chunk in rx {
                if let Some(u) = &unpack_tx {
                    if u.send(chunk.clone()).is_err() {
                        // The unpacker stopped; its error is reported below.
                        unpack_tx = None;
                    }
                }
                out.write_all(&chunk)?;
            }
            drop(unpack_tx);
            out.finish()?.finish()
        })();
        let walked = walker.join().expect("the layer walker does not panic");
        let unpacked = unpacker.map(|h| h.join().expect("the unpacker does not panic"));
        let (len, diff_id, entries) = walked?;
        let diff_id = diff_id.expect("hashed");
        let (size, digest) = written.map_err(LayerError::Write)?;
        if let Some(u) = unpacked {
            u?;
        }
        let (digest, media_type) = match options.compression {
            Compression::None => (diff_id.clone(), MEDIA_DOCKER_LAYER_TAR),
            Compression::Gzip => (digest.expect("hashed"), MEDIA_DOCKER_LAYER_GZIP),
            Compression::Zstd => (digest.expect("hashed"), MEDIA_OCI_LAYER_ZSTD),
        };
        Ok(WrittenLayer {
            digest,
            size,
            diff_id,
            uncompressed_size: len,
            media_type,
            entries,
        })
    })
}

/// The tar stream handed to the unpacker, chunk by chunk.
struct ChunkReader {
    rx: Receiver<Arc<Vec<u8>>>,
    current: Arc<Vec<u8>>,
    pos: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(next) => {
                    self.current = next;
                    self.pos = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The tar stream being written: headers and file contents gathered into chunks, hashed.
struct TarStream<'s> {
    buf: Vec<u8>,
    ship: &'s mut dyn FnMut(Vec<u8>) -> io::Result<()>,
    /// The stream's digest, for a layer (its diff_id); `cp` and `export` need none.
    hasher: Option<Hasher>,
    len: u64,
    entries: u64,
    epoch: Option<i64>,
    /// Every entry's owner, when set.
    owner: Option<(u32, u32)>,
}

impl<'s> TarStream<'s> {
    fn new(
        ship: &'s mut dyn FnMut(Vec<u8>) -> io::Result<()>,
        epoch: Option<i64>,
    ) -> TarStream<'s> {
        TarStream {
            buf: Vec::with_capacity(CHUNK),
            ship,
            hasher: Some(Hasher::new(Algorithm::Sha256)),
            len: 0,
            entries: 0,
            epoch,
            owner: None,
        }
    }

    /// A stream nobody needs the digest of.
    fn unhashed(ship: &'s mut dyn FnMut(Vec<u8>) -> io::Result<()>) -> TarStream<'s> {
        TarStream {
            hasher: None,
            ..TarStream::new(ship, None)
        }
    }

    fn ship(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        if let Some(h) = &mut self.hasher {
            h.update(&chunk);
        }
        self.len += chunk.len() as u64;
        (self.ship)(chunk)
    }

    fn put(&mut self, data: &[u8]) -> io::Result<()> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.ship()?;
        }
        Ok(())
    }

    /// Reads `size` bytes of `file` straight into the chunks.
    fn file(&mut self, file: &mut File, size: u64) -> io::Result<()> {
        let mut left = size;
        while left > 0 {
            let start = self.buf.len();
            let want = (CHUNK - start.min(CHUNK)).max(1).min(left as usize);
            self.buf.resize(start + want, 0);
            let n = loop {
                match file.read(&mut self.buf[start..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.buf.truncate(start);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(start + n);
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file shrank while it was read (pause the container, or try again)",
                ));
            }
            left -= n as u64;
            if self.buf.len() >= CHUNK {
                self.ship()?;
            }
        }
        let pad = tar::padding(size);
        self.put(&[0u8; tar::BLOCK][..pad])
    }

    fn node(&mut self, node: Node) -> Result<(), LayerError> {
        let Node {
            path,
            what,
            stat,
            xattrs,
        } = node;
        let mtime = match self.epoch {
            Some(e) => stat.mtime.min(e),
            None => stat.mtime,
        };
        let mut name = path.clone();
        let mut link: Vec<u8> = Vec::new();
        let mut size = 0;
        let mut mode = stat.mode;
        let typeflag = match &what {
            What::File(_) => {
                size = stat.size;
                tar::TYPE_FILE
            }
            What::Dir => {
                name.push(b'/');
                tar::TYPE_DIR
            }
            What::Symlink(target) => {
                link = target.clone();
                tar::TYPE_SYMLINK
            }
            What::Char => tar::TYPE_CHAR,
            What::Block => tar::TYPE_BLOCK,
            What::Fifo => tar::TYPE_FIFO,
            What::HardLink(first) => {
                link = first.clone();
                tar::TYPE_HARDLINK
            }
            What::Whiteout => {
                name = whiteout_name(&path);
                mode &= 0o777;
                tar::TYPE_FILE
            }
            What::Opaque => {
                name.extend_from_slice(b"/.wh..wh..opq");
                mode &= 0o777;
                tar::TYPE_FILE
            }
        };
        let (uid, gid) = self.owner.unwrap_or((stat.uid, stat.gid));
        let header = tar::Header {
            name: &name,
            link: &link,
            typeflag,
            mode,
            uid: u64::from(uid),
            gid: u64::from(gid),
            size,
            mtime,
            devmajor: rustix::fs::major(stat.rdev),
            devminor: rustix::fs::minor(stat.rdev),
            xattrs: &xattrs,
        };
        let err = |source: io::Error| LayerError::Entry {
            path: String::from_utf8_lossy(&path).into_owned(),
            source,
        };
        let mut head = Vec::with_capacity(tar::BLOCK);
        tar::encode(&header, &mut head);
        self.put(&head).map_err(err)?;
        if let What::File(mut f) = what {
            self.file(&mut f, size).map_err(err)?;
        }
        self.entries += 1;
        Ok(())
    }

    /// Ends the archive (two zero blocks); returns its length, digest (when hashed) and
    /// entry count.
    fn finish(mut self) -> io::Result<(u64, Option<Digest>, u64)> {
        self.put(&[0u8; 2 * tar::BLOCK])?;
        self.ship()?;
        Ok((self.len, self.hasher.map(Hasher::finish), self.entries))
    }
}

fn whiteout_name(path: &[u8]) -> Vec<u8> {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => [&path[..=i], b".wh.", &path[i + 1..]].concat(),
        None => [&b".wh."[..], path].concat(),
    }
}

/// One line of `diff`: what happened to a path, as docker prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub kind: ChangeKind,
    /// Absolute path in the container.
    pub path: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Modified,
    Deleted,
}

impl ChangeKind {
    /// docker's letter: `A`, `C` or `D`.
    pub fn letter(&self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Modified => 'C',
            ChangeKind::Deleted => 'D',
        }
    }
}

/// What a container changed: its upper directory compared with the merged `lowers` (top
/// first), with docker's rules: a path the lowers lack is added (and all below it); one whose
/// type, mode, owner, device or capability differs, or (not a directory) whose size or
/// modification time does, is changed; a whiteout, or a name an opaque directory hides, is
/// deleted (a deleted directory's contents are not listed); a directory with any change below
/// it is changed too. Parents come before what they hold.
pub fn changes(upper: &Path, lowers: &[PathBuf]) -> Result<Vec<Change>, LayerError> {
    let top = Stack::open(&[upper.to_path_buf()])?;
    let lower = if lowers.is_empty() {
        None
    } else {
        Some(Stack::open(lowers)?)
    };
    let mut out = Vec::new();
    let mut path = String::new();
    diff_dir(&top, lower.as_ref(), false, &mut path, &mut out, 0).map_err(|source| {
        LayerError::Entry {
            path: path.trim_start_matches('/').to_string(),
            source,
        }
    })?;
    Ok(out)
}

fn diff_dir(
    upper: &Stack,
    lower: Option<&Stack>,
    opaque: bool,
    path: &mut String,
    out: &mut Vec<Change>,
    depth: usize,
) -> io::Result<()> {
    walk::check_depth(depth)?;
    let entries = upper.entries(false)?;
    // Names of the lower directory that an opaque upper one hides.
    let hidden: Vec<Vec<u8>> = match (opaque, lower) {
        (true, Some(l)) => l
            .entries(true)?
            .into_keys()
            .filter(|n| !entries.contains_key(n))
            .collect(),
        _ => Vec::new(),
    };
    let mut names: Vec<(&Vec<u8>, Option<walk::Stat>)> = entries
        .iter()
        .map(|(n, (_, st))| (n, Some(*st)))
        .chain(hidden.iter().map(|n| (n, None)))
        .collect();
    names.sort_by(|a, b| a.0.cmp(b.0));
    for (name, st) in names {
        let len = path.len();
        path.push('/');
        path.push_str(&String::from_utf8_lossy(name));
        let r = diff_entry(upper, lower, name, st, path, out, depth);
        if r.is_ok() {
            path.truncate(len);
        }
        r?;
    }
    Ok(())
}

fn diff_entry(
    upper: &Stack,
    lower: Option<&Stack>,
    name: &[u8],
    st: Option<walk::Stat>,
    path: &str,
    out: &mut Vec<Change>,
    depth: usize,
) -> io::Result<()> {
    let push = |out: &mut Vec<Change>, kind| {
        out.push(Change {
            kind,
            path: path.to_string(),
        })
    };
    let old = match lower {
        Some(l) => l.lookup(name)?,
        None => None,
    };
    let Some(st) = st else {
        // Hidden by an opaque directory above it.
        push(out, ChangeKind::Deleted);
        return Ok(());
    };
    if st.is_whiteout() {
        if old.is_some() {
            push(out, ChangeKind::Deleted);
        }
        return Ok(());
    }
    let is_dir = st.kind == rustix::fs::FileType::Directory;
    let Some((old_st, old_dir)) = old else {
        push(out, ChangeKind::Added);
        if is_dir {
            if let Some((child, _)) = upper.child_of(name)? {
                added_below(&child, &mut path.to_string(), out, depth + 1)?;
            }
        }
        return Ok(());
    };
    let changed = old_st.kind != st.kind
        || old_st.mode != st.mode
        || old_st.uid != st.uid
        || old_st.gid != st.gid
        || old_st.rdev != st.rdev
        || (!is_dir
            && (old_st.size != st.size
                || old_st.mtime != st.mtime
                || (old_st.mtime_nsec != st.mtime_nsec
                    && old_st.mtime_nsec != 0
                    && st.mtime_nsec != 0)))
        || (st.kind == rustix::fs::FileType::RegularFile
            && old_st.kind == st.kind
            && capability(upper, name)? != lower.map_or(Ok(None), |l| l.capability(name))?);
    let at = out.len();
    if changed {
        push(out, ChangeKind::Modified);
    }
    if is_dir {
        if let Some((child, opaque)) = upper.child_of(name)? {
            let old_child = if old_st.kind == rustix::fs::FileType::Directory {
                old_dir
            } else {
                None
            };
            diff_dir(
                &child,
                old_child.as_ref(),
                opaque,
                &mut path.to_string(),
                out,
                depth + 1,
            )?;
        }
        if !changed && out.len() > at {
            out.insert(
                at,
                Change {
                    kind: ChangeKind::Modified,
                    path: path.to_string(),
                },
            );
        }
    }
    Ok(())
}

/// Every path below an added directory is added.
fn added_below(
    dir: &Stack,
    path: &mut String,
    out: &mut Vec<Change>,
    depth: usize,
) -> io::Result<()> {
    walk::check_depth(depth)?;
    for (name, (_, st)) in dir.entries(true)? {
        let len = path.len();
        path.push('/');
        path.push_str(&String::from_utf8_lossy(&name));
        out.push(Change {
            kind: ChangeKind::Added,
            path: path.clone(),
        });
        if st.kind == rustix::fs::FileType::Directory {
            if let Some((child, _)) = dir.child_of(&name)? {
                added_below(&child, path, out, depth + 1)?;
            }
        }
        path.truncate(len);
    }
    Ok(())
}

fn capability(stack: &Stack, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    stack.capability(name)
}

#[cfg(test)]
mod tests;
