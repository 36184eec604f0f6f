//! Compression of layer streams, shared by the layer writer (a new layer, compressed as it is
//! written) and `push` (a layer stored uncompressed, gzipped on its way to a registry):
//! [`Compressor`] writes gzip (on every core as pigz does, `gzip`), zstd (with zstd's worker
//! threads) or the bytes as they are into a [`HashingFile`], which hashes what it writes, so
//! a blob's digest is known when its last byte is written.
//!
//! A leaf: it knows files and bytes, not the store.

mod gzip;

use std::fs::File;
use std::io::{self, Read, Write};

use berth_storage::{Algorithm, Digest, Hasher};

pub use crate::unpack::Compression;

/// A blob file being written, hashed as it is written (unless the caller already has the
/// digest of what it writes: an uncompressed layer is its own tar).
pub struct HashingFile {
    file: File,
    hasher: Option<Hasher>,
    len: u64,
}

impl HashingFile {
    pub fn new(file: File, hash: bool) -> HashingFile {
        HashingFile {
            file,
            hasher: hash.then(|| Hasher::new(Algorithm::Sha256)),
            len: 0,
        }
    }

    /// The bytes written and their digest (when hashed).
    pub fn finish(mut self) -> io::Result<(u64, Option<Digest>)> {
        self.file.flush()?;
        Ok((self.len, self.hasher.map(Hasher::finish)))
    }
}

impl Write for HashingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// A compressing writer in front of a [`HashingFile`].
pub enum Compressor {
    None(HashingFile),
    Gzip(flate2::write::GzEncoder<HashingFile>),
    ParallelGzip(gzip::ParallelGzip<HashingFile>),
    Zstd(zstd::stream::write::Encoder<'static, HashingFile>),
}

impl Compressor {
    /// `level`: gzip 1–9 (default 6, as docker), zstd 1–19 (default 3); `threads`: how many
    /// cores may compress.
    pub fn new(
        out: HashingFile,
        compression: Compression,
        level: Option<u32>,
        threads: usize,
    ) -> io::Result<Compressor> {
        Ok(match compression {
            Compression::None => Compressor::None(out),
            Compression::Gzip => {
                let level = level.unwrap_or(6).clamp(1, 9);
                if threads > 1 {
                    Compressor::ParallelGzip(gzip::ParallelGzip::new(out, level, threads)?)
                } else {
                    Compressor::Gzip(flate2::write::GzEncoder::new(
                        out,
                        flate2::Compression::new(level),
                    ))
                }
            }
            Compression::Zstd => {
                let level = level.unwrap_or(3).clamp(1, 19) as i32;
                let mut enc = zstd::stream::write::Encoder::new(out, level)?;
                if threads > 1 {
                    enc.multithread(threads as u32)?;
                }
                Compressor::Zstd(enc)
            }
        })
    }

    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.write_all(data),
            Compressor::Gzip(w) => w.write_all(data),
            Compressor::ParallelGzip(w) => w.write_all(data),
            Compressor::Zstd(w) => w.write_all(data),
        }
    }

    pub fn finish(self) -> io::Result<HashingFile> {
        match self {
            Compressor::None(w) => Ok(w),
            Compressor::Gzip(w) => w.finish(),
            Compressor::ParallelGzip(w) => w.finish(),
            Compressor::Zstd(w) => w.finish(),
        }
    }
}

/// One core per thread, unless `threads` says otherwise.
pub fn threads(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// What [`compress_file`] read and wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compressed {
    /// Digest and length of the input.
    pub input: (Digest, u64),
    /// Digest and length of the output.
    pub output: (Digest, u64),
}

/// Compresses all of `input` into `output` with gzip or zstd at the default level, on
/// every core, hashing both sides in the same pass.
pub fn compress_file(
    mut input: impl Read,
    output: File,
    compression: Compression,
) -> io::Result<Compressed> {
    let mut out = Compressor::new(
        HashingFile::new(output, true),
        compression,
        None,
        threads(0),
    )?;
    let mut hasher = Hasher::new(Algorithm::Sha256);
    let mut len = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
        out.write_all(&buf[..n])?;
    }
    let (size, digest) = out.finish()?.finish()?;
    Ok(Compressed {
        input: (hasher.finish(), len),
        output: (digest.expect("hashed"), size),
    })
}
