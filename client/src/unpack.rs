//! Unpacking one image layer into a snapshot directory, which is where hostile input arrives.
//!
//! [`unpack_layer`] reads a layer blob (gzip, zstd or plain tar, told apart by magic bytes),
//! hashes the uncompressed tar stream as it passes (the image config's `rootfs.diff_ids`
//! entry) and writes every entry below the target directory. Decompression and hashing run on
//! a second thread, so that they overlap with writing ([`unpack_tar`] reads a plain tar that
//! needs no hash on the caller's thread: the layer writer's own stream, `cp`). overlayfs is
//! the consumer: OCI
//! whiteouts become overlay whiteouts (`.wh.NAME` → a 0/0 character device `NAME`,
//! `.wh..wh..opq` → `trusted.overlay.opaque=y` on the directory).
//!
//! The tar reader is berth's own, so that every header is bounded: PAX and GNU long-name
//! headers larger than [`MAX_METADATA_LEN`] are refused before anything is allocated for them.
//!
//! Containment: no entry may write, link or resolve outside the target.
//! - Entry names are cleaned lexically; absolute names are taken relative to the target (as
//!   docker and containerd do); a name whose `..` climbs above the target is refused with
//!   [`UnpackError::Breakout`], and so is such a hard link target.
//! - Parent directories are walked one component at a time with `openat(O_NOFOLLOW)`. A
//!   symlink met on the way is resolved *scoped to the target*, like containerd's
//!   `fs.RootPath` or `openat2(RESOLVE_IN_ROOT)`: `/` and `..` in its text stop at the target.
//!   So `a -> /etc` followed by `a/passwd` writes `TARGET/etc/passwd`, never `/etc/passwd`.
//! - The last component is never followed: whatever is there (a symlink included) is removed
//!   and replaced, except that a directory entry over an existing directory keeps it.
//! - Symlinks are written with any target text; only writing through them is prevented.
//!
//! Privilege ([`UnpackOptions::privileged`], by default "running as root"): privileged,
//! ownership is set from the tar and device nodes are created. Unprivileged, files belong to
//! the caller and character and block devices are skipped with a warning and listed in
//! [`UnpackSummary::skipped`]. Whiteouts and opaque directories are never skipped (that would
//! bring deleted files back): if the kernel refuses them the unpack fails.
//!
//! Extended attributes from PAX `SCHILY.xattr.*` are applied to files and directories when
//! they are `user.*`, `security.capability` or POSIX ACLs; `trusted.*` (which overlayfs would
//! obey: opaque, redirect, metacopy) and `user.overlay.*` are dropped.
//!
//! On error the target is left partly written: unpack into a fresh directory and remove it
//! when this fails.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};

use berth_storage::{Algorithm, Digest, Hasher};
use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags,
};
use rustix::io::Errno;

/// The largest PAX extended header or GNU long name/link accepted, in bytes.
pub const MAX_METADATA_LEN: u64 = 1 << 20;
/// How many symlinks one path may pass through, as Linux's own limit.
const MAX_SYMLINK_HOPS: u32 = 40;
/// The longest entry or link name accepted once cleaned (Linux's PATH_MAX less the NUL); the
/// kernel would refuse longer ones on any path-based call anyway.
pub const MAX_NAME_LEN: usize = 4095;
/// The deepest directory a path may resolve to (each level holds an open descriptor).
const MAX_DEPTH: usize = MAX_NAME_LEN / 2;
const BLOCK: usize = 512;
const READ_BUF: usize = 256 << 10;
/// The piece of uncompressed stream handed from the decompressing thread to the writing one.
const CHUNK: usize = 1 << 20;
/// Chunks decompressed ahead of the writer: bounds memory at a few MiB per unpack.
const CHUNKS_IN_FLIGHT: usize = 4;
const COPY_BUF: usize = 1 << 20;

/// How a layer blob was compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// What the unpacking process may do to the files it creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackOptions {
    /// Set ownership from the tar and create device nodes. Defaults to "effective uid is 0".
    pub privileged: bool,
    /// Read `.wh.` names as OCI whiteouts (a layer); off, they are ordinary files (a tar
    /// that is not a layer, as `cp` moves).
    pub whiteouts: bool,
}

impl Default for UnpackOptions {
    fn default() -> UnpackOptions {
        UnpackOptions {
            privileged: rustix::process::geteuid().is_root(),
            whiteouts: true,
        }
    }
}

/// An entry of the layer that was deliberately not written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEntry {
    pub path: String,
    pub reason: String,
}

/// What one unpack did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackSummary {
    pub compression: Compression,
    /// Tar entries applied or skipped (extended headers are not counted).
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    /// Length of the uncompressed tar stream, trailing blocks included.
    pub uncompressed_size: u64,
    /// sha256 of the uncompressed tar stream: the layer's `rootfs.diff_ids` entry.
    pub diff_id: Digest,
    pub skipped: Vec<SkippedEntry>,
}

/// Why a layer could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("cannot open the snapshot directory {path}: {source}")]
    Target { path: PathBuf, source: io::Error },
    #[error("reading the layer failed: {0}")]
    Read(#[source] io::Error),
    #[error("the layer is not a valid tar archive: {0}")]
    Malformed(String),
    #[error("the layer has a {what} of {len} bytes; at most {limit} are allowed")]
    HeaderTooLarge {
        what: &'static str,
        len: u64,
        limit: u64,
    },
    #[error("layer entry {path:?} climbs out of the snapshot with `..`")]
    Breakout { path: String },
    #[error("layer entry {path:?}: {reason}")]
    Unsupported { path: String, reason: String },
    #[error("layer entry {path:?}: {source}")]
    Write { path: String, source: io::Error },
}

/// Unpacks the layer read from `layer` into the existing directory `target`.
///
/// Two threads share the work: one reads, decompresses and hashes the stream, the calling
/// thread parses it and writes the files.
pub fn unpack_layer<R: Read + Send>(
    layer: R,
    target: &Path,
    options: &UnpackOptions,
) -> Result<UnpackSummary, UnpackError> {
    let mut snapshot = SnapshotDir::open(target, options.privileged)?;
    snapshot.whiteouts = options.whiteouts;
    let (compression, stream) = decompress(layer).map_err(UnpackError::Read)?;
    let (chunk_tx, chunk_rx) = mpsc::sync_channel(CHUNKS_IN_FLIGHT);
    let (free_tx, free_rx) = mpsc::channel();
    std::thread::scope(|scope| {
        let producer = scope.spawn(move || produce(stream, chunk_tx, free_rx));
        let chunks = Chunks {
            rx: chunk_rx,
            free: free_tx,
            current: Vec::new(),
            pos: 0,
        };
        // On error `chunks` is dropped here, which stops the producer.
        let entries = unpack_entries(chunks, &mut snapshot)?;
        let (uncompressed_size, diff_id) = producer
            .join()
            .expect("the decompression thread panicked")
            .map_err(UnpackError::Read)?;
        Ok(UnpackSummary {
            compression,
            entries,
            bytes: snapshot.bytes,
            uncompressed_size,
            diff_id,
            skipped: std::mem::take(&mut snapshot.skipped),
        })
    })
}

/// Unpacks a plain tar whose digest the caller does not need (it has it already, or there is
/// none to check: `cp`), on the calling thread: no decompression, no hash, no second copy of
/// the bytes. Returns the entries applied or skipped.
pub fn unpack_tar<R: Read>(
    tar: R,
    target: &Path,
    options: &UnpackOptions,
) -> Result<u64, UnpackError> {
    let mut snapshot = SnapshotDir::open(target, options.privileged)?;
    snapshot.whiteouts = options.whiteouts;
    // Headers are read 512 bytes at a time: not a system call each from a pipe.
    unpack_entries(BufReader::with_capacity(256 << 10, tar), &mut snapshot)
}

fn unpack_entries<R: Read>(chunks: R, snapshot: &mut SnapshotDir) -> Result<u64, UnpackError> {
    let mut tar = TarReader::new(chunks);
    let mut entries = 0;
    while let Some(entry) = tar.next_entry()? {
        entries += 1;
        snapshot.apply(&entry, &mut tar)?;
    }
    snapshot.finish_dirs();
    // The producer hashes the stream to its end, trailing blocks included; take the rest so
    // that it can finish.
    io::copy(&mut tar.into_inner(), &mut io::sink()).map_err(UnpackError::Read)?;
    Ok(entries)
}

/// Reads the uncompressed stream in large chunks, hashing each, and hands them over. Stops
/// early when the receiving side has gone (it failed); chunks come back through `free` to be
/// reused.
fn produce(
    mut stream: Box<dyn Read + Send + '_>,
    chunks: SyncSender<io::Result<Vec<u8>>>,
    free: Receiver<Vec<u8>>,
) -> io::Result<(u64, Digest)> {
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut len = 0u64;
    loop {
        let mut buf = free.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        while filled < CHUNK {
            match stream.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let kind = e.kind();
                    let msg = e.to_string();
                    let _ = chunks.send(Err(e));
                    return Err(io::Error::new(kind, msg));
                }
            }
        }
        if filled == 0 {
            return Ok((len, hasher.finish()));
        }
        buf.truncate(filled);
        hasher.update(&buf);
        len += filled as u64;
        if chunks.send(Ok(buf)).is_err() {
            return Err(io::Error::other("unpacking stopped"));
        }
    }
}

/// The uncompressed stream as the producer thread delivers it.
struct Chunks {
    rx: Receiver<io::Result<Vec<u8>>>,
    free: Sender<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(next)) => {
                    let used = std::mem::replace(&mut self.current, next);
                    self.pos = 0;
                    let _ = self.free.send(used);
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Tells the compression apart by its magic bytes and wraps the matching decoder.
fn decompress<'a, R: Read + Send + 'a>(
    mut layer: R,
) -> io::Result<(Compression, Box<dyn Read + Send + 'a>)> {
    let mut magic = [0u8; 4];
    let mut n = 0;
    while n < magic.len() {
        match layer.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let raw = BufReader::with_capacity(READ_BUF, io::Cursor::new(magic[..n].to_vec()).chain(layer));
    Ok(match magic[..n] {
        [0x1f, 0x8b, ..] => (
            Compression::Gzip,
            Box::new(flate2::bufread::MultiGzDecoder::new(raw)),
        ),
        [0x28, 0xb5, 0x2f, 0xfd] => (
            Compression::Zstd,
            Box::new(zstd::stream::read::Decoder::with_buffer(raw)?),
        ),
        _ => (Compression::None, Box::new(raw)),
    })
}

// ---------------------------------------------------------------------------------------------
// The tar reader

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    HardLink,
    Symlink,
    Char,
    Block,
    Dir,
    Fifo,
}

/// PAX records or extended attributes: (key, value) pairs of raw bytes.
type Records = Vec<(Vec<u8>, Vec<u8>)>;

/// One tar entry with its extended headers already applied.
struct Entry {
    path: Vec<u8>,
    link: Vec<u8>,
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: Timespec,
    atime: Option<Timespec>,
    dev_major: u32,
    dev_minor: u32,
    xattrs: Records,
}

impl Entry {
    fn display(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// Streams entries out of a tar archive; the data of the current entry is read with
/// [`TarReader::read_data`], and whatever is left of it is skipped by the next call to
/// [`TarReader::next_entry`].
struct TarReader<R> {
    inner: R,
    remaining: u64,
    padding: u64,
}

fn malformed(msg: impl Into<String>) -> UnpackError {
    UnpackError::Malformed(msg.into())
}

fn read_error(e: io::Error) -> UnpackError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        malformed("the archive ends in the middle of an entry")
    } else {
        UnpackError::Read(e)
    }
}

impl<R: Read> TarReader<R> {
    fn new(inner: R) -> TarReader<R> {
        TarReader {
            inner,
            remaining: 0,
            padding: 0,
        }
    }

    fn into_inner(self) -> R {
        self.inner
    }

    /// Reads the current entry's data; 0 at its end.
    fn read_data(&mut self, buf: &mut [u8]) -> Result<usize, UnpackError> {
        if self.remaining == 0 {
            return Ok(0);
        }
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let n = loop {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(e)),
            }
        };
        if n == 0 {
            return Err(malformed("the archive ends in the middle of an entry"));
        }
        self.remaining -= n as u64;
        Ok(n)
    }

    fn skip(&mut self, len: u64) -> Result<(), UnpackError> {
        let copied =
            io::copy(&mut (&mut self.inner).take(len), &mut io::sink()).map_err(read_error)?;
        if copied != len {
            return Err(malformed("the archive ends in the middle of an entry"));
        }
        Ok(())
    }

    /// Reads one 512-byte block; false at a clean end of stream.
    fn read_block(&mut self, block: &mut [u8; BLOCK]) -> Result<bool, UnpackError> {
        let mut got = 0;
        while got < BLOCK {
            match self.inner.read(&mut block[got..]) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => return Err(malformed("the archive ends in the middle of a header")),
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(e)),
            }
        }
        Ok(true)
    }

    /// The body of an extended header, bounded by [`MAX_METADATA_LEN`].
    fn read_metadata(&mut self, len: u64, what: &'static str) -> Result<Vec<u8>, UnpackError> {
        if len > MAX_METADATA_LEN {
            return Err(UnpackError::HeaderTooLarge {
                what,
                len,
                limit: MAX_METADATA_LEN,
            });
        }
        let mut data = vec![0; len as usize];
        self.inner.read_exact(&mut data).map_err(read_error)?;
        self.skip(padding(len))?;
        Ok(data)
    }

    fn next_entry(&mut self) -> Result<Option<Entry>, UnpackError> {
        let rest = self.remaining + self.padding;
        self.remaining = 0;
        self.padding = 0;
        self.skip(rest)?;

        let mut pax: Option<Records> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut block = [0u8; BLOCK];
        loop {
            // An extended header with no entry after it is ignored, as Go's archive/tar does.
            if !self.read_block(&mut block)? || block.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            check_checksum(&block)?;
            let size = numeric(&block[124..136]).ok_or_else(|| malformed("bad size field"))?;
            match block[156] {
                b'x' => {
                    pax = Some(parse_pax(&self.read_metadata(size, "PAX header")?)?);
                    continue;
                }
                b'g' => {
                    self.read_metadata(size, "global PAX header")?;
                    continue;
                }
                b'L' => {
                    long_name = Some(trim_nul(self.read_metadata(size, "GNU long name")?));
                    continue;
                }
                b'K' => {
                    long_link = Some(trim_nul(self.read_metadata(size, "GNU long link")?));
                    continue;
                }
                _ => {}
            }
            let mut entry = parse_header(&block, long_name, long_link)?;
            let mut size = size;
            if let Some(records) = pax {
                apply_pax(&mut entry, &mut size, records)?;
            }
            if block[156] == 0 && entry.path.ends_with(b"/") {
                entry.kind = Kind::Dir;
            }
            if entry.path.contains(&0) || entry.link.contains(&0) {
                return Err(malformed(format!(
                    "entry {:?} has a NUL byte in its name",
                    entry.display()
                )));
            }
            // As in Go's archive/tar (and so docker), only regular files carry data.
            let data = if entry.kind == Kind::File { size } else { 0 };
            self.remaining = data;
            self.padding = padding(data);
            return Ok(Some(entry));
        }
    }
}

fn padding(len: u64) -> u64 {
    (BLOCK as u64 - len % BLOCK as u64) % BLOCK as u64
}

fn trim_nul(mut v: Vec<u8>) -> Vec<u8> {
    if let Some(end) = v.iter().position(|&b| b == 0) {
        v.truncate(end);
    }
    v
}

fn field_str(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == 0) {
        Some(end) => &field[..end],
        None => field,
    }
}

/// A numeric header field: octal text, or GNU base-256 when the high bit is set.
fn numeric(field: &[u8]) -> Option<u64> {
    if field[0] & 0x80 != 0 {
        if field[0] == 0xff {
            return None; // negative
        }
        let mut v = u64::from(field[0] & 0x7f);
        for &b in &field[1..] {
            if v >> 56 != 0 {
                return None;
            }
            v = v << 8 | u64::from(b);
        }
        return Some(v);
    }
    let text = field
        .iter()
        .copied()
        .skip_while(|&b| b == b' ' || b == 0)
        .take_while(|&b| b != b' ' && b != 0)
        .collect::<Vec<u8>>();
    if text.is_empty() {
        return Some(0);
    }
    let s = std::str::from_utf8(&text).ok()?;
    u64::from_str_radix(s, 8).ok()
}

fn check_checksum(block: &[u8; BLOCK]) -> Result<(), UnpackError> {
    let stored = numeric(&block[148..156]).ok_or_else(|| malformed("bad checksum field"))?;
    let (mut unsigned, mut signed) = (0u64, 0i64);
    for (i, &b) in block.iter().enumerate() {
        let b = if (148..156).contains(&i) { b' ' } else { b };
        unsigned += u64::from(b);
        signed += i64::from(b as i8);
    }
    if stored != unsigned && stored as i64 != signed {
        return Err(malformed("header checksum mismatch"));
    }
    Ok(())
}

fn parse_header(
    block: &[u8; BLOCK],
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
) -> Result<Entry, UnpackError> {
    let name = field_str(&block[0..100]);
    let path = match long_name {
        Some(n) => n,
        // POSIX ustar splits long names into prefix + name; GNU's magic has no prefix.
        None if &block[257..263] == b"ustar\0" && block[345] != 0 => {
            let mut p = field_str(&block[345..500]).to_vec();
            p.push(b'/');
            p.extend_from_slice(name);
            p
        }
        None => name.to_vec(),
    };
    let link = long_link.unwrap_or_else(|| field_str(&block[157..257]).to_vec());
    let kind = match block[156] {
        b'0' | 0 | b'7' => Kind::File,
        b'1' => Kind::HardLink,
        b'2' => Kind::Symlink,
        b'3' => Kind::Char,
        b'4' => Kind::Block,
        b'5' => Kind::Dir,
        b'6' => Kind::Fifo,
        b'S' => {
            return Err(UnpackError::Unsupported {
                path: String::from_utf8_lossy(&path).into_owned(),
                reason: "sparse files are not supported".into(),
            })
        }
        t => {
            return Err(UnpackError::Unsupported {
                path: String::from_utf8_lossy(&path).into_owned(),
                reason: format!("tar entry type {:?} is not supported", t as char),
            })
        }
    };
    let num = |range: std::ops::Range<usize>, what: &str| {
        numeric(&block[range]).ok_or_else(|| malformed(format!("bad {what} field")))
    };
    let device = |range, what| -> Result<u32, UnpackError> {
        u32::try_from(num(range, what)?).map_err(|_| malformed(format!("{what} out of range")))
    };
    Ok(Entry {
        kind,
        mode: (num(100..108, "mode")? & 0o7777) as u32,
        uid: num(108..116, "uid")?,
        gid: num(116..124, "gid")?,
        mtime: Timespec {
            tv_sec: num(136..148, "mtime")?.min(i64::MAX as u64) as i64,
            tv_nsec: 0,
        },
        atime: None,
        dev_major: device(329..337, "device major")?,
        dev_minor: device(337..345, "device minor")?,
        xattrs: Vec::new(),
        path,
        link,
    })
}

/// PAX records: `LEN KEY=VALUE\n`, LEN counting the whole record.
fn parse_pax(data: &[u8]) -> Result<Records, UnpackError> {
    let bad = || malformed("bad PAX record");
    let mut records = Vec::new();
    let mut rest = data;
    while !rest.is_empty() && !rest.iter().all(|&b| b == 0) {
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(bad)?;
        if len <= space + 1 || len > rest.len() {
            return Err(bad());
        }
        let record = rest[space + 1..len].strip_suffix(b"\n").ok_or_else(bad)?;
        let eq = record.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        records.push((record[..eq].to_vec(), record[eq + 1..].to_vec()));
        rest = &rest[len..];
    }
    Ok(records)
}

/// A PAX time: decimal seconds with an optional fraction.
fn pax_time(v: &[u8]) -> Option<Timespec> {
    let s = std::str::from_utf8(v).ok()?;
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let tv_sec: i64 = secs.parse().ok()?;
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    let mut tv_nsec: i64 = digits.parse().ok()?;
    let mut tv_sec = tv_sec;
    // "-1.5" is 1.5 seconds before the epoch.
    if secs.starts_with('-') && tv_nsec > 0 {
        tv_sec -= 1;
        tv_nsec = 1_000_000_000 - tv_nsec;
    }
    Some(Timespec {
        tv_sec,
        tv_nsec: tv_nsec as _,
    })
}

fn apply_pax(entry: &mut Entry, size: &mut u64, records: Records) -> Result<(), UnpackError> {
    for (key, value) in records {
        let bad = |key: &[u8]| {
            malformed(format!(
                "bad PAX value for {} in entry {:?}",
                String::from_utf8_lossy(key),
                entry.display()
            ))
        };
        let decimal = |v: &[u8]| {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
        };
        match key.as_slice() {
            b"path" => entry.path = value,
            b"linkpath" => entry.link = value,
            b"size" => *size = decimal(&value).ok_or_else(|| bad(&key))?,
            b"uid" => entry.uid = decimal(&value).ok_or_else(|| bad(&key))?,
            b"gid" => entry.gid = decimal(&value).ok_or_else(|| bad(&key))?,
            b"mtime" => entry.mtime = pax_time(&value).ok_or_else(|| bad(&key))?,
            b"atime" => entry.atime = Some(pax_time(&value).ok_or_else(|| bad(&key))?),
            k if k.starts_with(b"GNU.sparse.") => {
                return Err(UnpackError::Unsupported {
                    path: entry.display(),
                    reason: "sparse files are not supported".into(),
                })
            }
            k => {
                if let Some(name) = k.strip_prefix(b"SCHILY.xattr.") {
                    entry.xattrs.push((name.to_vec(), value));
                }
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Writing entries below the target

/// A directory reached from the target, and its path below the target with no symlink in it.
struct ResolvedDir {
    fd: OwnedFd,
    real: PathBuf,
}

/// Mode and times of a directory, applied once everything inside it has been written.
struct DirMeta {
    real: PathBuf,
    mode: u32,
    times: Timestamps,
}

struct SnapshotDir {
    root: OwnedFd,
    privileged: bool,
    whiteouts: bool,
    /// The parent of the previous entry, by its cleaned name in the archive.
    parent_cache: Option<(Vec<OsString>, Rc<ResolvedDir>)>,
    dirs: Vec<DirMeta>,
    buf: Vec<u8>,
    bytes: u64,
    skipped: Vec<SkippedEntry>,
}

/// The components of an entry or link name after lexical cleaning, bounded in length.
fn name_components<'a>(
    e: &Entry,
    name: &'a [u8],
    what: &str,
) -> Result<Vec<&'a OsStr>, UnpackError> {
    let parts = clean(name).ok_or_else(|| UnpackError::Breakout {
        path: match what {
            "" => e.display(),
            _ => format!("{} ({what} {})", e.display(), String::from_utf8_lossy(name)),
        },
    })?;
    let len: usize = parts.iter().map(|p| p.len() + 1).sum();
    if len > MAX_NAME_LEN {
        return Err(UnpackError::Unsupported {
            path: String::from_utf8_lossy(&name[..64.min(name.len())]).into_owned() + "…",
            reason: format!("name of {len} bytes; at most {MAX_NAME_LEN} are allowed"),
        });
    }
    Ok(parts)
}

/// The components of a name after lexical cleaning, or None if `..` climbs above the root.
/// A leading `/` is dropped: absolute names are relative to the target.
fn clean(name: &[u8]) -> Option<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                out.pop()?;
            }
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Some(out)
}

/// Removes the directory `name` of `dir` and everything in it, never following a symlink.
fn remove_tree_at(dir: BorrowedFd<'_>, name: &OsStr, depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(Errno::NAMETOOLONG.into());
    }
    let fd = open_dir(dir, name)?;
    let mut names = Vec::new();
    for e in rfs::Dir::read_from(&fd)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push((OsStr::from_bytes(n).to_os_string(), e.file_type()));
        }
    }
    for (n, kind) in names {
        let is_dir = match kind {
            FileType::Directory => true,
            FileType::Unknown => rfs::statat(&fd, &n, AtFlags::SYMLINK_NOFOLLOW)
                .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory),
            _ => false,
        };
        if is_dir {
            remove_tree_at(fd.as_fd(), &n, depth + 1)?;
        } else {
            match rfs::unlinkat(&fd, &n, AtFlags::empty()) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    match rfs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn open_dir(dir: BorrowedFd<'_>, name: &OsStr) -> Result<OwnedFd, Errno> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn mode(bits: u32) -> Mode {
    Mode::from_raw_mode(bits & 0o7777)
}

/// Extended attributes a layer may set: nothing overlayfs interprets, nothing only the host's
/// security policy should decide.
pub(crate) fn xattr_allowed(name: &[u8]) -> bool {
    (name.starts_with(b"user.") && !name.starts_with(b"user.overlay."))
        || name == b"security.capability"
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default"
}

impl SnapshotDir {
    fn open(path: &Path, privileged: bool) -> Result<SnapshotDir, UnpackError> {
        let root = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| UnpackError::Target {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(SnapshotDir {
            root,
            privileged,
            whiteouts: true,
            parent_cache: None,
            dirs: Vec::new(),
            buf: vec![0; COPY_BUF],
            bytes: 0,
            skipped: Vec::new(),
        })
    }

    /// Walks `components` from the root, following symlinks scoped to the root, and creating
    /// missing directories when `create` is set.
    fn resolve(&self, components: &[&OsStr], create: bool) -> io::Result<ResolvedDir> {
        let mut pending: std::collections::VecDeque<OsString> =
            components.iter().map(|c| c.to_os_string()).collect();
        let mut stack: Vec<(OwnedFd, OsString)> = Vec::new();
        let mut hops = 0;
        while let Some(c) = pending.pop_front() {
            if c.is_empty() || c == "." {
                continue;
            }
            if c == ".." {
                stack.pop();
                continue;
            }
            let cur = stack.last().map_or(self.root.as_fd(), |(fd, _)| fd.as_fd());
            match open_dir(cur, &c) {
                Ok(_) | Err(Errno::NOENT) if stack.len() >= MAX_DEPTH => {
                    return Err(Errno::NAMETOOLONG.into())
                }
                Ok(fd) => stack.push((fd, c)),
                Err(Errno::NOENT) if create => {
                    match rfs::mkdirat(cur, &c, mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    let fd = open_dir(cur, &c)?;
                    stack.push((fd, c));
                }
                Err(Errno::LOOP) | Err(Errno::NOTDIR) => {
                    let st = rfs::statat(cur, &c, AtFlags::SYMLINK_NOFOLLOW)?;
                    if FileType::from_raw_mode(st.st_mode) != FileType::Symlink {
                        return Err(Errno::NOTDIR.into());
                    }
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(Errno::LOOP.into());
                    }
                    let target = rfs::readlinkat(cur, &c, Vec::new())?;
                    let target = target.as_bytes();
                    if target.starts_with(b"/") {
                        stack.clear();
                    }
                    for part in target.split(|&b| b == b'/').rev() {
                        pending.push_front(OsStr::from_bytes(part).to_os_string());
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
        let real = stack.iter().map(|(_, name)| name.as_os_str()).collect();
        let fd = match stack.pop() {
            Some((fd, _)) => fd,
            None => self.root.try_clone()?,
        };
        Ok(ResolvedDir { fd, real })
    }

    /// The directory an entry goes into, created if missing.
    fn parent(&mut self, components: &[&OsStr]) -> io::Result<Rc<ResolvedDir>> {
        if let Some((key, dir)) = &self.parent_cache {
            if key.len() == components.len() && key.iter().zip(components).all(|(a, b)| a == b) {
                return Ok(dir.clone());
            }
        }
        let dir = Rc::new(self.resolve(components, true)?);
        self.parent_cache = Some((
            components.iter().map(|c| c.to_os_string()).collect(),
            dir.clone(),
        ));
        Ok(dir)
    }

    /// Removes whatever is at `name` (never following it), except an existing directory when
    /// `keep_dir` is set. Returns whether a directory was kept.
    fn clear(&mut self, dir: &ResolvedDir, name: &OsStr, keep_dir: bool) -> io::Result<bool> {
        let st = match rfs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            Err(Errno::NOENT) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
        if is_dir && keep_dir {
            return Ok(true);
        }
        // A cached parent may have lived below what goes now.
        self.parent_cache = None;
        if is_dir {
            // Through descriptors: the tree may be a running container's, changing meanwhile.
            remove_tree_at(dir.fd.as_fd(), name, 0)?;
        } else {
            rfs::unlinkat(&dir.fd, name, AtFlags::empty())?;
        }
        Ok(false)
    }

    fn apply<R: Read>(&mut self, e: &Entry, tar: &mut TarReader<R>) -> Result<(), UnpackError> {
        let components = name_components(e, &e.path, "")?;
        let Some((&name, parents)) = components.split_last() else {
            tracing::debug!(path = %e.display(), "layer entry names the snapshot root; skipped");
            return Ok(());
        };
        let write_err = |source: io::Error| UnpackError::Write {
            path: e.display(),
            source,
        };
        let dir = self.parent(parents).map_err(write_err)?;

        if let Some(hidden) = name
            .as_bytes()
            .strip_prefix(b".wh.")
            .filter(|_| self.whiteouts)
        {
            return self.whiteout(e, &dir, hidden).map_err(write_err);
        }
        match e.kind {
            Kind::File => {
                self.clear(&dir, name, false).map_err(write_err)?;
                self.write_file(e, &dir, name, tar)
            }
            Kind::Dir => {
                let kept = self.clear(&dir, name, true).map_err(write_err)?;
                if !kept {
                    rfs::mkdirat(&dir.fd, name, mode(0o700)).map_err(|e| write_err(e.into()))?;
                }
                let fd = open_dir(dir.fd.as_fd(), name).map_err(|e| write_err(e.into()))?;
                if self.privileged {
                    self.chown(&fd, e).map_err(write_err)?;
                }
                set_xattrs(&fd, e);
                self.dirs.push(DirMeta {
                    real: dir.real.join(name),
                    mode: e.mode,
                    times: times(e),
                });
                Ok(())
            }
            Kind::Symlink => {
                self.clear(&dir, name, false).map_err(write_err)?;
                let target = OsStr::from_bytes(&e.link);
                rfs::symlinkat(target, &dir.fd, name).map_err(|e| write_err(e.into()))?;
                self.node_metadata(e, &dir, name, false).map_err(write_err)
            }
            Kind::HardLink => {
                let components = name_components(e, &e.link, "hard link to")?;
                let Some((&target_name, target_parents)) = components.split_last() else {
                    return Err(UnpackError::Unsupported {
                        path: e.display(),
                        reason: "hard link to the snapshot root".into(),
                    });
                };
                // Resolved scoped to the root like any other path; never created.
                let target = self.resolve(target_parents, false).map_err(write_err)?;
                self.clear(&dir, name, false).map_err(write_err)?;
                rfs::linkat(&target.fd, target_name, &dir.fd, name, AtFlags::empty())
                    .map_err(|e| write_err(e.into()))
            }
            Kind::Char | Kind::Block if !self.privileged => {
                tracing::warn!(path = %e.display(), "device node in layer skipped: not privileged");
                self.skipped.push(SkippedEntry {
                    path: e.display(),
                    reason: "device nodes need privilege".into(),
                });
                Ok(())
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                self.clear(&dir, name, false).map_err(write_err)?;
                let (file_type, dev) = match e.kind {
                    Kind::Char => (
                        FileType::CharacterDevice,
                        rfs::makedev(e.dev_major, e.dev_minor),
                    ),
                    Kind::Block => (
                        FileType::BlockDevice,
                        rfs::makedev(e.dev_major, e.dev_minor),
                    ),
                    _ => (FileType::Fifo, 0),
                };
                rfs::mknodat(&dir.fd, name, file_type, mode(e.mode), dev)
                    .map_err(|e| write_err(e.into()))?;
                self.node_metadata(e, &dir, name, true).map_err(write_err)
            }
        }
    }

    fn whiteout(&mut self, e: &Entry, dir: &ResolvedDir, hidden: &[u8]) -> io::Result<()> {
        if hidden == b".wh..opq" {
            return rfs::fsetxattr(&dir.fd, "trusted.overlay.opaque", b"y", XattrFlags::empty())
                .map_err(|err| {
                    io::Error::new(
                        io::Error::from(err).kind(),
                        format!("cannot mark the directory opaque (trusted.overlay.opaque): {err}"),
                    )
                });
        }
        if hidden.starts_with(b".wh.") {
            tracing::debug!(path = %e.display(), "aufs metadata in layer ignored");
            return Ok(());
        }
        if matches!(hidden, b"" | b"." | b"..") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "whiteout names no file",
            ));
        }
        let name = OsStr::from_bytes(hidden);
        self.clear(dir, name, false)?;
        rfs::mknodat(
            &dir.fd,
            name,
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .map_err(|err| {
            io::Error::new(
                io::Error::from(err).kind(),
                format!("cannot create the overlay whiteout (a 0/0 character device): {err}"),
            )
        })?;
        if self.privileged {
            self.chown_at(dir, name, e)?;
        }
        Ok(())
    }

    fn write_file<R: Read>(
        &mut self,
        e: &Entry,
        dir: &ResolvedDir,
        name: &OsStr,
        tar: &mut TarReader<R>,
    ) -> Result<(), UnpackError> {
        let write_err = |source: io::Error| UnpackError::Write {
            path: e.display(),
            source,
        };
        let fd = rfs::openat(
            &dir.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode(0o600),
        )
        .map_err(|e| write_err(e.into()))?;
        let mut file = File::from(fd);
        loop {
            let n = tar.read_data(&mut self.buf)?;
            if n == 0 {
                break;
            }
            file.write_all(&self.buf[..n]).map_err(write_err)?;
            self.bytes += n as u64;
        }
        // chown clears setuid bits and file capabilities: mode and xattrs come after it.
        if self.privileged {
            self.chown(&file, e).map_err(write_err)?;
        }
        rfs::fchmod(&file, mode(e.mode)).map_err(|e| write_err(e.into()))?;
        set_xattrs(&file, e);
        rfs::futimens(&file, &times(e)).map_err(|e| write_err(e.into()))
    }

    /// Ownership, mode and times of a symlink, device or fifo just created at `name`.
    fn node_metadata(
        &self,
        e: &Entry,
        dir: &ResolvedDir,
        name: &OsStr,
        chmod: bool,
    ) -> io::Result<()> {
        if self.privileged {
            self.chown_at(dir, name, e)?;
        }
        if chmod {
            // fchmodat follows symlinks, but this entry was just created as a device or fifo
            // and nothing else writes the snapshot during the unpack.
            rfs::chmodat(&dir.fd, name, mode(e.mode), AtFlags::empty())?;
        }
        rfs::utimensat(&dir.fd, name, &times(e), AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(())
    }

    fn ids(e: &Entry) -> io::Result<(Uid, Gid)> {
        let id = |v: u64| {
            u32::try_from(v)
                .ok()
                .filter(|&v| v != u32::MAX)
                .ok_or_else(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("owner id {v} is out of range"),
                    )
                })
        };
        Ok((Uid::from_raw(id(e.uid)?), Gid::from_raw(id(e.gid)?)))
    }

    fn chown(&self, fd: impl AsFd, e: &Entry) -> io::Result<()> {
        let (uid, gid) = Self::ids(e)?;
        Ok(rfs::fchown(fd, Some(uid), Some(gid))?)
    }

    fn chown_at(&self, dir: &ResolvedDir, name: &OsStr, e: &Entry) -> io::Result<()> {
        let (uid, gid) = Self::ids(e)?;
        Ok(rfs::chownat(
            &dir.fd,
            name,
            Some(uid),
            Some(gid),
            AtFlags::SYMLINK_NOFOLLOW,
        )?)
    }

    /// Applies directory modes and times last, so that writing inside a directory neither
    /// needs its permission nor changes its mtime afterwards. A directory that was replaced
    /// since is skipped: the walk follows no symlink.
    fn finish_dirs(&mut self) {
        for d in std::mem::take(&mut self.dirs) {
            let mut fd = None;
            for c in d.real.iter() {
                let cur = fd
                    .as_ref()
                    .map_or(self.root.as_fd(), |f: &OwnedFd| f.as_fd());
                match open_dir(cur, c) {
                    Ok(next) => fd = Some(next),
                    Err(_) => {
                        fd = None;
                        break;
                    }
                }
            }
            let Some(fd) = fd else {
                tracing::debug!(path = %d.real.display(), "directory replaced before its metadata was set");
                continue;
            };
            let result = rfs::fchmod(&fd, mode(d.mode)).and_then(|()| rfs::futimens(&fd, &d.times));
            if let Err(err) = result {
                tracing::warn!(path = %d.real.display(), %err, "cannot set directory mode or times");
            }
        }
    }
}

/// Access and modification times as docker sets them: an access time before the
/// modification time is raised to it.
fn times(e: &Entry) -> Timestamps {
    let atime = match e.atime {
        Some(a) if (a.tv_sec, a.tv_nsec) >= (e.mtime.tv_sec, e.mtime.tv_nsec) => a,
        _ => e.mtime,
    };
    Timestamps {
        last_access: atime,
        last_modification: e.mtime,
    }
}

fn set_xattrs(fd: impl AsFd, e: &Entry) {
    for (name, value) in &e.xattrs {
        if !xattr_allowed(name) {
            tracing::debug!(path = %e.display(), xattr = %String::from_utf8_lossy(name), "extended attribute dropped");
            continue;
        }
        if let Err(err) = rfs::fsetxattr(&fd, OsStr::from_bytes(name), value, XattrFlags::empty()) {
            tracing::warn!(path = %e.display(), xattr = %String::from_utf8_lossy(name), %err, "cannot set extended attribute");
        }
    }
}
