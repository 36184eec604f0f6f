//! gzip on several threads, as pigz does it: the input is cut into blocks, each deflated on
//! a thread of its own with the 32 KiB before it as dictionary (so the ratio stays close to
//! one stream's) and ended with a sync flush, the last one with the final block; the blocks'
//! CRC-32s are combined. The output is one ordinary gzip member that any reader takes.
//!
//! gzip is the slow part of a layer (one core deflates 35–150 MB/s); this spreads it over
//! the machine's cores. With one thread it is flate2's encoder as it is.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Bytes of input per block.
const BLOCK: usize = 1 << 20;
/// deflate looks back this far: the dictionary each block gets from the one before.
const WINDOW: usize = 32 << 10;
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

struct Job {
    seq: u64,
    dict: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

struct Done {
    seq: u64,
    out: io::Result<Vec<u8>>,
    crc: crc32fast::Hasher,
}

/// A gzip encoder writing into `W`, deflating on `threads` threads.
pub(crate) struct ParallelGzip<W: Write> {
    /// Taken by `finish`.
    inner: Option<W>,
    block: Vec<u8>,
    dict: Vec<u8>,
    next_seq: u64,
    next_out: u64,
    pending: BTreeMap<u64, Done>,
    in_flight: usize,
    max_in_flight: usize,
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    workers: Vec<JoinHandle<()>>,
    crc: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> ParallelGzip<W> {
    pub fn new(mut inner: W, level: u32, threads: usize) -> io::Result<ParallelGzip<W>> {
        inner.write_all(&HEADER)?;
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel();
        let job_rx = Arc::new(Mutex::new(job_rx));
        let workers = (0..threads.max(1))
            .map(|_| {
                let rx = job_rx.clone();
                let tx = done_tx.clone();
                std::thread::spawn(move || loop {
                    let job = match rx.lock().expect("the job queue lock").recv() {
                        Ok(j) => j,
                        Err(_) => return,
                    };
                    let mut crc = crc32fast::Hasher::new();
                    crc.update(&job.data);
                    let out = deflate_block(level, &job.dict, &job.data, job.last);
                    if tx
                        .send(Done {
                            seq: job.seq,
                            out,
                            crc,
                        })
                        .is_err()
                    {
                        return;
                    }
                })
            })
            .collect();
        Ok(ParallelGzip {
            inner: Some(inner),
            block: Vec::with_capacity(BLOCK),
            dict: Vec::new(),
            next_seq: 0,
            next_out: 0,
            pending: BTreeMap::new(),
            in_flight: 0,
            max_in_flight: 2 * threads.max(1) + 1,
            jobs: Some(jobs),
            done,
            workers,
            crc: crc32fast::Hasher::new(),
            len: 0,
        })
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        while self.in_flight >= self.max_in_flight {
            self.collect_one()?;
        }
        let data = std::mem::replace(&mut self.block, Vec::with_capacity(BLOCK));
        let dict = std::mem::replace(
            &mut self.dict,
            data[data.len().saturating_sub(WINDOW)..].to_vec(),
        );
        let job = Job {
            seq: self.next_seq,
            dict,
            data,
            last,
        };
        self.next_seq += 1;
        self.in_flight += 1;
        self.jobs
            .as_ref()
            .expect("jobs are submitted before finish")
            .send(job)
            .map_err(|_| io::Error::other("a gzip thread died"))
    }

    /// Waits for one more block and writes every block that is next in order.
    fn collect_one(&mut self) -> io::Result<()> {
        let d = self
            .done
            .recv()
            .map_err(|_| io::Error::other("a gzip thread died"))?;
        self.pending.insert(d.seq, d);
        while let Some(d) = self.pending.remove(&self.next_out) {
            self.out().write_all(&d.out?)?;
            self.crc.combine(&d.crc);
            self.next_out += 1;
            self.in_flight -= 1;
        }
        Ok(())
    }

    /// Writes the last block and the trailer; returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.in_flight > 0 {
            self.collect_one()?;
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        let len = self.len;
        self.out().write_all(&crc.to_le_bytes())?;
        self.out().write_all(&(len as u32).to_le_bytes())?;
        self.stop();
        Ok(self.inner.take().expect("finish runs once"))
    }

    fn stop(&mut self) {
        self.jobs = None;
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }

    fn out(&mut self) -> &mut W {
        self.inner
            .as_mut()
            .expect("the writer is there until finish")
    }
}

impl<W: Write> Drop for ParallelGzip<W> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, mut buf: &[u8]) -> io::Result<usize> {
        let n = buf.len();
        while !buf.is_empty() {
            let room = BLOCK - self.block.len();
            let take = room.min(buf.len());
            self.block.extend_from_slice(&buf[..take]);
            buf = &buf[take..];
            if self.block.len() == BLOCK {
                self.submit(false)?;
            }
        }
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out().flush()
    }
}

/// One block of raw deflate: primed with `dict`, ended with a sync flush so that the next
/// block starts on a byte boundary, or with the final block when `last`.
fn deflate_block(level: u32, dict: &[u8], data: &[u8], last: bool) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dict.is_empty() {
        c.set_dictionary(dict).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 1024);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let all_in = c.total_in() as usize == data.len();
        let room_left = out.len() < out.capacity();
        match status {
            Status::StreamEnd => return Ok(out),
            _ if all_in && room_left && !last => return Ok(out),
            _ => out.reserve(out.capacity().max(4096)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn reads_back_as_one_gzip_stream() {
        let mut data = Vec::new();
        let mut x: u32 = 1;
        for i in 0..(3 * BLOCK + 12345) {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            // Half text-like, half noise: both block kinds.
            data.push(if i % 7 < 4 {
                b'a' + (i % 13) as u8
            } else {
                (x >> 24) as u8
            });
        }
        for threads in [1, 3] {
            let mut gz = ParallelGzip::new(Vec::new(), 6, threads).unwrap();
            for piece in data.chunks(100_000) {
                gz.write_all(piece).unwrap();
            }
            let out = gz.finish().unwrap();
            let mut back = Vec::new();
            flate2::read::GzDecoder::new(&out[..])
                .read_to_end(&mut back)
                .unwrap();
            assert!(back == data, "{threads} threads");
        }
        let empty = ParallelGzip::new(Vec::new(), 1, 2)
            .unwrap()
            .finish()
            .unwrap();
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&empty[..])
            .read_to_end(&mut back)
            .unwrap();
        assert!(back.is_empty());
    }
}
