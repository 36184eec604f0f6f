//! Round trips through berth's own reader: tree → layer → `unpack` → the same tree. As root
//! (owners, device nodes, `trusted.*` and `security.capability` need it).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType, Mode, Timespec, Timestamps, XattrFlags};

use super::*;
use crate::unpack::unpack_layer;

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (owners, device nodes, trusted.* attributes)"
    );
}

fn store() -> (tempfile::TempDir, ImageStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path()).unwrap();
    (dir, store)
}

fn set_time(p: &Path, secs: i64) {
    let t = Timespec {
        tv_sec: secs,
        tv_nsec: 0,
    };
    rfs::utimensat(
        rfs::CWD,
        p,
        &Timestamps {
            last_access: t,
            last_modification: t,
        },
        rfs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
}

fn xattr(p: &Path, name: &str, value: &[u8]) {
    rfs::lsetxattr(p, name, value, XattrFlags::empty()).unwrap();
}

/// Everything about a tree that a layer must keep, by path.
fn describe(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut first_of: BTreeMap<u64, String> = BTreeMap::new();
    fn visit(
        root: &Path,
        dir: &Path,
        out: &mut BTreeMap<String, String>,
        first_of: &mut BTreeMap<u64, String>,
    ) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        names.sort();
        for p in names {
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let kind = FileType::from_raw_mode(m.mode());
            // A whiteout's time means nothing to overlayfs, and unpack does not keep it.
            let whiteout = kind == FileType::CharacterDevice && m.rdev() == 0;
            let mut d = format!(
                "{kind:?} mode={:o} uid={} gid={} mtime={}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid(),
                if whiteout { 0 } else { m.mtime() }
            );
            match kind {
                FileType::RegularFile => {
                    let data = std::fs::read(&p).unwrap();
                    let sum: u64 = data
                        .iter()
                        .enumerate()
                        .map(|(i, &b)| (i as u64 + 1) * b as u64)
                        .sum();
                    d += &format!(" size={} sum={sum}", data.len());
                    if m.nlink() > 1 {
                        let first = first_of.entry(m.ino()).or_insert_with(|| rel.clone());
                        d += &format!(" linked-with={first}");
                    }
                }
                FileType::Symlink => {
                    d += &format!(" -> {}", std::fs::read_link(&p).unwrap().display())
                }
                FileType::CharacterDevice | FileType::BlockDevice => {
                    d += &format!(" dev={}:{}", rfs::major(m.rdev()), rfs::minor(m.rdev()))
                }
                _ => {}
            }
            if kind != FileType::Symlink {
                let mut names = vec![0u8; 4096];
                let n = rfs::llistxattr(&p, &mut names[..]).unwrap();
                let mut list: Vec<&[u8]> = names[..n]
                    .split(|&b| b == 0)
                    .filter(|n| {
                        !n.is_empty()
                            && (crate::unpack::xattr_allowed(n) || *n == b"trusted.overlay.opaque")
                    })
                    .collect();
                list.sort();
                for name in list {
                    let mut v = vec![0u8; 4096];
                    let k = rfs::lgetxattr(&p, OsStr::from_bytes(name), &mut v[..]).unwrap();
                    d += &format!(" {}={:?}", String::from_utf8_lossy(name), &v[..k]);
                }
            }
            out.insert(rel, d);
            if kind == FileType::Directory {
                visit(root, &p, out, first_of);
            }
        }
    }
    visit(root, root, &mut out, &mut first_of);
    out
}

/// A tree with every kind of entry a layer carries.
fn sample_tree(root: &Path) {
    let w = |p: &str, data: &[u8]| std::fs::write(root.join(p), data).unwrap();
    std::fs::create_dir_all(root.join("sub/deep")).unwrap();
    w("a.txt", b"hello\n");
    w("empty", b"");
    let mut big = Vec::with_capacity(3 << 20 | 77);
    let mut x: u32 = 7;
    for _ in 0..(3 << 20 | 77) {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        big.push((x >> 24) as u8);
    }
    w("sub/deep/big.bin", &big);
    w("setuid", b"#!/bin/sh\n");
    std::fs::set_permissions(root.join("setuid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::fs::create_dir(root.join("sticky")).unwrap();
    std::fs::set_permissions(root.join("sticky"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    let long_dir = root.join("d".repeat(150));
    std::fs::create_dir(&long_dir).unwrap();
    std::fs::write(long_dir.join("f".repeat(120)), b"long").unwrap();
    std::os::unix::fs::symlink("a.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
    std::os::unix::fs::symlink("l".repeat(200), root.join("long-target")).unwrap();
    w("hard1", b"same inode");
    std::fs::hard_link(root.join("hard1"), root.join("sub/hard2")).unwrap();
    rfs::mknodat(
        rfs::CWD,
        root.join("fifo"),
        FileType::Fifo,
        Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    rfs::mknodat(
        rfs::CWD,
        root.join("null"),
        FileType::CharacterDevice,
        Mode::from_raw_mode(0o666),
        rfs::makedev(1, 3),
    )
    .unwrap();
    rfs::mknodat(
        rfs::CWD,
        root.join("loop"),
        FileType::BlockDevice,
        Mode::from_raw_mode(0o660),
        rfs::makedev(7, 0),
    )
    .unwrap();
    rfs::chownat(
        rfs::CWD,
        root.join("a.txt"),
        Some(rfs::Uid::from_raw(1000)),
        Some(rfs::Gid::from_raw(2000)),
        rfs::AtFlags::empty(),
    )
    .unwrap();
    rfs::chownat(
        rfs::CWD,
        root.join("link"),
        Some(rfs::Uid::from_raw(33)),
        Some(rfs::Gid::from_raw(33)),
        rfs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .unwrap();
    xattr(&root.join("a.txt"), "user.note", b"kept");
    xattr(&root.join("sub"), "user.dir", b"too");
    w("ping", b"\x7fELF");
    // A v2 file capability: cap_net_raw permitted and effective.
    let mut cap = Vec::new();
    cap.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    cap.extend_from_slice(&(1u32 << 13).to_le_bytes());
    cap.extend_from_slice(&[0u8; 12]);
    xattr(&root.join("ping"), "security.capability", &cap);
    // A security.capability set after chown: chown clears it, so it must come last here.
    for p in walk_all(root) {
        set_time(&p, 1_600_000_000 + (p.as_os_str().len() as i64));
    }
}

fn walk_all(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk_all(&p));
        }
        out.push(p);
    }
    out
}

fn unpacked(store: &ImageStore, layer: &WrittenLayer) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let blob = store.store().blobs.local_path(&layer.digest).unwrap();
    let s = unpack_layer(
        File::open(blob).unwrap(),
        dir.path(),
        &UnpackOptions::default(),
    )
    .unwrap();
    assert_eq!(s.diff_id, layer.diff_id);
    assert_eq!(s.uncompressed_size, layer.uncompressed_size);
    dir
}

fn tar_names(store: &ImageStore, layer: &WrittenLayer) -> Vec<String> {
    let blob = store.store().blobs.local_path(&layer.digest).unwrap();
    let mut data = Vec::new();
    File::open(blob).unwrap().read_to_end(&mut data).unwrap();
    let data = match layer.media_type {
        MEDIA_DOCKER_LAYER_GZIP => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&data[..])
                .read_to_end(&mut out)
                .unwrap();
            out
        }
        MEDIA_OCI_LAYER_ZSTD => zstd::decode_all(&data[..]).unwrap(),
        _ => data,
    };
    ::tar::Archive::new(&data[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect()
}

#[test]
fn root_tree_round_trips_through_unpack() {
    require_root();
    let (_s, store) = store();
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let want = describe(src.path());
    for (compression, threads) in [
        (Compression::None, 0),
        (Compression::Gzip, 1),
        (Compression::Gzip, 3),
        (Compression::Zstd, 2),
    ] {
        let snap = tempfile::tempdir().unwrap();
        let layer = write_layer(
            &store,
            LayerSource::Tree {
                dir: src.path(),
                at: "",
            },
            &LayerOptions {
                compression,
                threads,
                snapshot: Some(snap.path().to_path_buf()),
                ..LayerOptions::default()
            },
        )
        .unwrap();
        assert_eq!(describe(snap.path()), want, "{compression:?}: snapshot");
        assert_eq!(
            describe(unpacked(&store, &layer).path()),
            want,
            "{compression:?}: blob"
        );
        let blob = store.store().blobs.local_path(&layer.digest).unwrap();
        assert_eq!(std::fs::metadata(&blob).unwrap().len(), layer.size);
        let bytes = std::fs::read(&blob).unwrap();
        assert_eq!(Digest::sha256_of(&bytes), layer.digest);
        if compression == Compression::None {
            assert_eq!(layer.digest, layer.diff_id);
        }
    }
    // Nothing is left in partial/.
    assert_eq!(
        std::fs::read_dir(store.root().join("partial"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn root_same_tree_same_bytes_and_epoch_clamps() {
    require_root();
    let (_s, store) = store();
    let src = tempfile::tempdir().unwrap();
    sample_tree(src.path());
    let opts = LayerOptions {
        compression: Compression::Gzip,
        ..LayerOptions::default()
    };
    let tree = LayerSource::Tree {
        dir: src.path(),
        at: "app",
    };
    let a = write_layer(&store, tree, &opts).unwrap();
    let b = write_layer(&store, tree, &opts).unwrap();
    assert_eq!(a, b);
    let names = tar_names(&store, &a);
    assert_eq!(names[0], "app/");
    assert!(names.iter().all(|n| n.starts_with("app/")), "{names:?}");
    let sorted = {
        let mut s = names.clone();
        s.sort_by(|x, y| {
            let key = |n: &str| n.split('/').map(str::to_string).collect::<Vec<_>>();
            key(x).cmp(&key(y))
        });
        s
    };
    assert_eq!(names, sorted, "entries are sorted");

    let clamped = write_layer(
        &store,
        tree,
        &LayerOptions {
            source_date_epoch: Some(1_000_000_000),
            ..opts.clone()
        },
    )
    .unwrap();
    assert_ne!(clamped.diff_id, a.diff_id);
    let dir = unpacked(&store, &clamped);
    for p in walk_all(dir.path()) {
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(m.mtime(), 1_000_000_000, "{}", p.display());
    }
}

#[test]
fn root_upper_directory_keeps_whiteouts_and_opaque_dirs() {
    require_root();
    let (_s, store) = store();
    let upper = tempfile::tempdir().unwrap();
    let u = upper.path();
    rfs::mknodat(
        rfs::CWD,
        u.join("gone"),
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .unwrap();
    std::fs::create_dir_all(u.join("opq")).unwrap();
    std::fs::write(u.join("opq/new"), b"new").unwrap();
    xattr(&u.join("opq"), "trusted.overlay.opaque", b"y");
    std::fs::create_dir_all(u.join("etc")).unwrap();
    std::fs::write(u.join("etc/hosts"), b"x").unwrap();
    rfs::mknodat(
        rfs::CWD,
        u.join("etc/shadow"),
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .unwrap();
    // Shared whiteout inodes (as overlayfs makes them) are whiteouts, not hard links.
    std::fs::hard_link(u.join("gone"), u.join("also-gone")).unwrap();
    for p in walk_all(u) {
        set_time(&p, 1_700_000_000);
    }
    let snap = tempfile::tempdir().unwrap();
    let layer = write_layer(
        &store,
        LayerSource::Upper(u),
        &LayerOptions {
            compression: Compression::Zstd,
            snapshot: Some(snap.path().to_path_buf()),
            ..LayerOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        tar_names(&store, &layer),
        [
            ".wh.also-gone",
            "etc/",
            "etc/hosts",
            "etc/.wh.shadow",
            ".wh.gone",
            "opq/",
            "opq/.wh..wh..opq",
            "opq/new"
        ]
    );
    // Unpacked, the layer is the upper directory again, in overlay's form.
    let want = describe(u);
    assert_eq!(describe(snap.path()), want);
    assert_eq!(describe(unpacked(&store, &layer).path()), want);
}

#[test]
fn root_redirects_are_refused() {
    require_root();
    let (_s, store) = store();
    let upper = tempfile::tempdir().unwrap();
    std::fs::create_dir(upper.path().join("moved")).unwrap();
    xattr(
        &upper.path().join("moved"),
        "trusted.overlay.redirect",
        b"/old",
    );
    let err = write_layer(
        &store,
        LayerSource::Upper(upper.path()),
        &LayerOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, LayerError::Overlay { .. }), "{err}");
    assert!(err.to_string().contains("/moved"), "{err}");
    assert_eq!(
        std::fs::read_dir(store.root().join("partial"))
            .unwrap()
            .count(),
        0
    );
}

/// An upper directory with nothing in it: stored as an empty tar unless `skip_empty` (a
/// commit of an unchanged container), which keeps no blob and nothing in partial/.
#[test]
fn empty_layer_is_stored_only_when_asked() {
    let (_s, store) = store();
    let upper = tempfile::tempdir().unwrap();
    let blobs = || {
        std::fs::read_dir(store.root().join("blobs/sha256"))
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let options = |skip_empty| LayerOptions {
        compression: Compression::None,
        skip_empty,
        ..LayerOptions::default()
    };
    let skipped = write_layer(&store, LayerSource::Upper(upper.path()), &options(true)).unwrap();
    assert_eq!(skipped.entries, 0);
    assert_eq!(blobs(), 0);
    let stored = write_layer(&store, LayerSource::Upper(upper.path()), &options(false)).unwrap();
    assert_eq!(stored.entries, 0);
    assert_eq!(stored.diff_id, skipped.diff_id);
    assert!(store
        .store()
        .blobs
        .local_path(&stored.digest)
        .unwrap()
        .is_file());
    assert_eq!(blobs(), 1);
    assert_eq!(
        std::fs::read_dir(store.root().join("partial"))
            .unwrap()
            .count(),
        0
    );
}
/// The scenario docker's `diff` is compared with in the end-to-end tests.
fn container_layers(base: &Path) -> (PathBuf, PathBuf) {
    let lower = base.join("lower");
    let upper = base.join("upper");
    for d in ["etc/sub", "d/inner", "bin"] {
        std::fs::create_dir_all(lower.join(d)).unwrap();
    }
    for (f, data) in [
        ("etc/a", "a"),
        ("etc/sub/b", "b"),
        ("etc/m", "m"),
        ("etc/keep", "k"),
        ("d/inner/x", "x"),
        ("d/y", "y"),
        ("bin/sh", "sh"),
    ] {
        std::fs::write(lower.join(f), data).unwrap();
    }
    for d in ["etc/sub", "d", "n/e/w"] {
        std::fs::create_dir_all(upper.join(d)).unwrap();
    }
    std::fs::write(upper.join("etc/a"), "a\nmod").unwrap();
    std::fs::write(upper.join("etc/new"), "new").unwrap();
    std::fs::write(upper.join("etc/m"), "m").unwrap();
    std::fs::set_permissions(upper.join("etc/m"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(upper.join("etc/keep"), "k").unwrap();
    std::fs::hard_link(upper.join("etc/keep"), upper.join("etc/keep2")).unwrap();
    rfs::mknodat(
        rfs::CWD,
        upper.join("etc/sub/b"),
        FileType::CharacterDevice,
        Mode::empty(),
        0,
    )
    .unwrap();
    xattr(&upper.join("d"), "trusted.overlay.opaque", b"y");
    std::fs::write(upper.join("d/z"), "z").unwrap();
    std::fs::write(upper.join("n/e/w/f"), "").unwrap();
    for p in walk_all(&lower) {
        set_time(&p, 1_600_000_000);
    }
    // Copied up unchanged: same times.
    for p in ["etc/m", "etc/keep"] {
        set_time(&upper.join(p), 1_600_000_000);
    }
    (upper, lower)
}

#[test]
fn root_changes_follow_dockers_rules() {
    require_root();
    let base = tempfile::tempdir().unwrap();
    let (upper, lower) = container_layers(base.path());
    let got: Vec<String> = changes(&upper, &[lower])
        .unwrap()
        .iter()
        .map(|c| format!("{} {}", c.kind.letter(), c.path))
        .collect();
    assert_eq!(
        got,
        [
            "C /d",
            "D /d/inner",
            "D /d/y",
            "A /d/z",
            "C /etc",
            "C /etc/a",
            "A /etc/keep2",
            "C /etc/m",
            "A /etc/new",
            "C /etc/sub",
            "D /etc/sub/b",
            "A /n",
            "A /n/e",
            "A /n/e/w",
            "A /n/e/w/f",
        ]
    );
}

#[test]
fn root_export_is_the_merged_view() {
    require_root();
    let base = tempfile::tempdir().unwrap();
    let (upper, lower) = container_layers(base.path());
    let mut out = Vec::new();
    let len = export(&[upper, lower], &mut out).unwrap();
    assert_eq!(len, out.len() as u64);
    let mut names: Vec<String> = ::tar::Archive::new(&out[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bin/",
            "bin/sh",
            "d/",
            "d/z",
            "etc/",
            "etc/a",
            "etc/keep",
            "etc/keep2",
            "etc/m",
            "etc/new",
            "etc/sub/",
            "n/",
            "n/e/",
            "n/e/w/",
            "n/e/w/f"
        ]
    );
}
