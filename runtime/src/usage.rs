//! What a running container uses, read from its cgroups and its network namespace: the
//! counters docker's daemon reports for `docker stats`, read at one moment (no sampling; a
//! rate is the caller's difference of two readings).
//!
//! cgroup v1 (and hybrid hosts): `cpuacct.usage`, `memory.usage_in_bytes` and `memory.stat`'s
//! `total_inactive_file`, `memory.limit_in_bytes`, the blkio controller's
//! `io_service_bytes_recursive` (CFQ/BFQ) or else its `throttle.` twin, `pids.current`.
//! cgroup v2: `cpu.stat`'s `usage_usec`, `memory.current` and `memory.stat`'s
//! `inactive_file`, `memory.max`, `io.stat`'s `rbytes`/`wbytes`, `pids.current`.
//! The network: `/proc/<init>/net/dev` (the init's namespace), every interface but `lo`.

use crate::cgroup::CgroupPaths;
use std::path::Path;

/// One reading of a container's counters. Byte counts and nanoseconds since the container's
/// cgroup was made; `memory_limit` is `None` when the cgroup sets none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// CPU time of every process of the container, nanoseconds.
    pub cpu_ns: u64,
    /// Memory charged to the cgroup.
    pub memory: u64,
    /// The part of `memory` that is inactive file cache (docker subtracts it).
    pub inactive_file: u64,
    pub memory_limit: Option<u64>,
    pub block_read: u64,
    pub block_write: u64,
    pub pids: u64,
    pub net_rx: u64,
    pub net_tx: u64,
}

fn read(dir: &Path, file: &str) -> Option<String> {
    std::fs::read_to_string(dir.join(file)).ok()
}

fn read_u64(dir: &Path, file: &str) -> Option<u64> {
    read(dir, file)?.trim().parse().ok()
}

/// `key value` lines (`memory.stat`, `cpu.stat`): the value of `key`.
fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok())?
    })
}

/// v1 blkio's `MAJ:MIN Op bytes` lines: the bytes read and written.
fn blkio_v1(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for l in text.lines() {
        let mut f = l.split_whitespace();
        let (Some(_dev), Some(op), Some(v)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let v: u64 = v.parse().unwrap_or(0);
        match op {
            "Read" => r += v,
            "Write" => w += v,
            _ => {}
        }
    }
    (r, w)
}

/// v2's `io.stat`: `MAJ:MIN rbytes=N wbytes=N rios=N …` lines.
fn io_stat_v2(text: &str) -> (u64, u64) {
    let (mut r, mut w) = (0, 0);
    for field in text.split_whitespace() {
        if let Some(v) = field.strip_prefix("rbytes=") {
            r += v.parse().unwrap_or(0);
        } else if let Some(v) = field.strip_prefix("wbytes=") {
            w += v.parse().unwrap_or(0);
        }
    }
    (r, w)
}

/// `/proc/net/dev`: bytes received and sent over every interface but the loopback.
fn net_dev(text: &str) -> (u64, u64) {
    let (mut rx, mut tx) = (0, 0);
    for l in text.lines().skip(2) {
        let Some((name, counters)) = l.split_once(':') else {
            continue;
        };
        if name.trim() == "lo" {
            continue;
        }
        let c: Vec<u64> = counters
            .split_whitespace()
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if c.len() >= 9 {
            rx += c[0];
            tx += c[8];
        }
    }
    (rx, tx)
}

/// A limit file's value: v1 writes a huge number and v2 `max` for "none".
fn limit(value: Option<String>) -> Option<u64> {
    let v: u64 = value?.trim().parse().ok()?;
    // v1's "unlimited" is the largest page-aligned i64.
    (v < (i64::MAX as u64) & !0xfff).then_some(v)
}

impl CgroupPaths {
    /// The container's counters now; `init` is its init's host pid (for the network).
    pub(crate) fn usage(&self, init: Option<i32>) -> Usage {
        let mut u = Usage::default();
        let v2 = self.v2.as_deref();
        if let Some(dir) = self.v1_dir("cpuacct") {
            u.cpu_ns = read_u64(dir, "cpuacct.usage").unwrap_or(0);
        } else if let Some(stat) = v2.and_then(|d| read(d, "cpu.stat")) {
            u.cpu_ns = keyed(&stat, "usage_usec").unwrap_or(0) * 1000;
        }
        if let Some(dir) = self.v1_dir("memory") {
            u.memory = read_u64(dir, "memory.usage_in_bytes").unwrap_or(0);
            u.inactive_file = read(dir, "memory.stat")
                .and_then(|s| keyed(&s, "total_inactive_file"))
                .unwrap_or(0);
            u.memory_limit = limit(read(dir, "memory.limit_in_bytes"));
        } else if let Some(dir) = v2.filter(|d| d.join("memory.current").exists()) {
            u.memory = read_u64(dir, "memory.current").unwrap_or(0);
            u.inactive_file = read(dir, "memory.stat")
                .and_then(|s| keyed(&s, "inactive_file"))
                .unwrap_or(0);
            u.memory_limit = limit(read(dir, "memory.max"));
        }
        if let Some(dir) = self.v1_dir("blkio") {
            let service = read(dir, "blkio.io_service_bytes_recursive").unwrap_or_default();
            (u.block_read, u.block_write) = blkio_v1(&service);
            if (u.block_read, u.block_write) == (0, 0) {
                let throttle =
                    read(dir, "blkio.throttle.io_service_bytes_recursive").unwrap_or_default();
                (u.block_read, u.block_write) = blkio_v1(&throttle);
            }
        } else if let Some(stat) = v2.and_then(|d| read(d, "io.stat")) {
            (u.block_read, u.block_write) = io_stat_v2(&stat);
        }
        if let Some(dir) = self.v1_dir("pids").or(v2) {
            u.pids = read_u64(dir, "pids.current").unwrap_or(0);
        }
        if let Some(pid) = init.filter(|p| *p > 0) {
            let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
            (u.net_rx, u.net_tx) = net_dev(&dev);
        }
        u
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroup::V1Dir;
    use std::path::PathBuf;

    #[test]
    fn reads_v1_counters() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = |c: &str| {
            let d = tmp.path().join(c);
            std::fs::create_dir(&d).unwrap();
            d
        };
        let (cpu, mem, blkio, pids) = (dir("cpuacct"), dir("memory"), dir("blkio"), dir("pids"));
        std::fs::write(cpu.join("cpuacct.usage"), "123456789\n").unwrap();
        std::fs::write(mem.join("memory.usage_in_bytes"), "10485760\n").unwrap();
        std::fs::write(
            mem.join("memory.stat"),
            "cache 4096\ninactive_file 1\ntotal_inactive_file 2097152\n",
        )
        .unwrap();
        std::fs::write(mem.join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        std::fs::write(blkio.join("blkio.io_service_bytes_recursive"), "Total 0\n").unwrap();
        std::fs::write(
            blkio.join("blkio.throttle.io_service_bytes_recursive"),
            "8:0 Read 4096\n8:0 Write 8192\n8:0 Sync 0\n8:0 Total 12288\n8:16 Read 1\nTotal 12289\n",
        )
        .unwrap();
        std::fs::write(pids.join("pids.current"), "3\n").unwrap();
        let v1 = |d: PathBuf, c: &str| V1Dir {
            dir: d,
            controllers: vec![c.to_string()],
        };
        let paths = CgroupPaths {
            v1: vec![
                v1(cpu, "cpuacct"),
                v1(mem.clone(), "memory"),
                v1(blkio, "blkio"),
                v1(pids, "pids"),
            ],
            v2: None,
            cpuset_later: None,
            v2_base: None,
        };
        let u = paths.usage(None);
        assert_eq!(
            u,
            Usage {
                cpu_ns: 123456789,
                memory: 10 << 20,
                inactive_file: 2 << 20,
                memory_limit: None,
                block_read: 4097,
                block_write: 8192,
                pids: 3,
                net_rx: 0,
                net_tx: 0,
            }
        );
        std::fs::write(mem.join("memory.limit_in_bytes"), "67108864\n").unwrap();
        assert_eq!(paths.usage(None).memory_limit, Some(64 << 20));
    }

    #[test]
    fn reads_v2_counters() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("cpu.stat"), "usage_usec 2500\nuser_usec 2000\n").unwrap();
        std::fs::write(d.join("memory.current"), "8192000\n").unwrap();
        std::fs::write(d.join("memory.stat"), "anon 4096\ninactive_file 192000\n").unwrap();
        std::fs::write(d.join("memory.max"), "max\n").unwrap();
        std::fs::write(
            d.join("io.stat"),
            "8:0 rbytes=1000 wbytes=2000 rios=1 wios=2 dbytes=0 dios=0\n8:16 rbytes=24 wbytes=0\n",
        )
        .unwrap();
        std::fs::write(d.join("pids.current"), "7\n").unwrap();
        let paths = CgroupPaths {
            v1: vec![],
            v2: Some(d.to_path_buf()),
            cpuset_later: None,
            v2_base: None,
        };
        let u = paths.usage(None);
        assert_eq!(
            (u.cpu_ns, u.memory, u.inactive_file, u.memory_limit),
            (2_500_000, 8_192_000, 192_000, None)
        );
        assert_eq!((u.block_read, u.block_write, u.pids), (1024, 2000, 7));
        std::fs::write(d.join("memory.max"), "33554432\n").unwrap();
        assert_eq!(paths.usage(None).memory_limit, Some(32 << 20));
    }

    #[test]
    fn network_counters_leave_out_the_loopback() {
        let dev = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:   5000      10    0    0    0     0          0         0     5000      10    0    0    0     0       0          0\n  \
            eth0:   1296      16    0    0    0     0          0         0      726       9    0    0    0     0       0          0\n  \
            eth1:      4       1    0    0    0     0          0         0        6       1    0    0    0     0       0          0\n";
        assert_eq!(net_dev(dev), (1300, 732));
    }
}
