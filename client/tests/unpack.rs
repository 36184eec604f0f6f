//! Layer unpacking as a pull sees it: tars crafted byte by byte, hostile ones included, go
//! through `unpack_layer` and the test looks at what landed on disk, inside and outside.
//!
//! Every hostile case unpacks into `WORK/target` beside a sentinel directory `WORK/outside`
//! and asserts that `WORK` outside `target` is exactly as it was. Tests whose names contain
//! `root` need root (mknod, chown, trusted.* xattrs) and fail without it.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use berth_client::unpack::{
    overlay_xattr, unpack_layer, Compression, UnpackError, UnpackOptions, UnpackSummary,
};
use berth_storage::Digest;
use tar::{EntryType, Header};

// ---------------------------------------------------------------------------------------------
// Building tars without the tar crate's safety checks

#[derive(Default)]
struct Layer(Vec<u8>);

impl Layer {
    fn header(name: &[u8], kind: EntryType, mode: u32, size: u64, link: &[u8]) -> Header {
        let mut h = Header::new_ustar();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        h
    }

    fn raw(&mut self, header: &Header, data: &[u8]) -> &mut Layer {
        self.0.extend_from_slice(header.as_bytes());
        self.0.extend_from_slice(data);
        let pad = (512 - data.len() % 512) % 512;
        self.0.extend(std::iter::repeat_n(0, pad));
        self
    }

    fn entry(
        &mut self,
        name: &str,
        kind: EntryType,
        mode: u32,
        data: &[u8],
        link: &str,
    ) -> &mut Layer {
        let h = Layer::header(
            name.as_bytes(),
            kind,
            mode,
            data.len() as u64,
            link.as_bytes(),
        );
        self.raw(&h, data)
    }

    fn file(&mut self, name: &str, data: &[u8]) -> &mut Layer {
        self.entry(name, EntryType::Regular, 0o644, data, "")
    }

    fn dir(&mut self, name: &str) -> &mut Layer {
        self.entry(name, EntryType::Directory, 0o755, b"", "")
    }

    fn symlink(&mut self, name: &str, target: &str) -> &mut Layer {
        self.entry(name, EntryType::Symlink, 0o777, b"", target)
    }

    fn hardlink(&mut self, name: &str, target: &str) -> &mut Layer {
        self.entry(name, EntryType::Link, 0o644, b"", target)
    }

    /// A PAX extended header for the next entry.
    fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Layer {
        let mut body = Vec::new();
        for (key, value) in records {
            let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
            let mut len = rest + 1;
            while len.to_string().len() + rest != len {
                len += 1;
            }
            body.extend_from_slice(format!("{len} {key}=").as_bytes());
            body.extend_from_slice(value);
            body.push(b'\n');
        }
        let h = Layer::header(
            b"././@PaxHeader",
            EntryType::XHeader,
            0o644,
            body.len() as u64,
            b"",
        );
        self.raw(&h, &body)
    }

    fn finish(&mut self) -> Vec<u8> {
        let mut out = self.0.clone();
        out.extend(std::iter::repeat_n(0, 1024));
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Unpacking and watching the outside

struct Work {
    _dir: tempfile::TempDir,
    root: PathBuf,
    target: PathBuf,
    outside: PathBuf,
}

impl Work {
    fn new() -> Work {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let target = root.join("target");
        let outside = root.join("outside");
        fs::create_dir(&target).unwrap();
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"original").unwrap();
        fs::set_permissions(outside.join("secret"), fs::Permissions::from_mode(0o600)).unwrap();
        Work {
            _dir: dir,
            root,
            target,
            outside,
        }
    }

    /// Everything under WORK except `target`: path → type, mode, owner, links, size, content.
    fn outside_state(&self) -> BTreeMap<PathBuf, String> {
        let mut state = BTreeMap::new();
        walk(&self.root, &self.root, &mut state, Some(&self.target));
        state
    }

    fn unpack(&self, layer: &[u8]) -> Result<UnpackSummary, UnpackError> {
        self.unpack_with(layer, &UnpackOptions::default())
    }

    /// Unpacks and asserts that nothing outside the target was created or changed.
    fn unpack_with(
        &self,
        layer: &[u8],
        options: &UnpackOptions,
    ) -> Result<UnpackSummary, UnpackError> {
        let before = self.outside_state();
        let result = unpack_layer(layer, &self.target, options);
        assert_eq!(
            before,
            self.outside_state(),
            "the unpack changed something outside its target"
        );
        result
    }

    fn tree(&self) -> BTreeMap<PathBuf, String> {
        let mut state = BTreeMap::new();
        walk(&self.target, &self.target, &mut state, None);
        state
    }
}

fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>, exclude: Option<&Path>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if Some(path.as_path()) == exclude {
            continue;
        }
        let md = fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let what = if ft.is_symlink() {
            format!("link -> {}", fs::read_link(&path).unwrap().display())
        } else if ft.is_dir() {
            "dir".into()
        } else if ft.is_file() {
            format!(
                "file {:?}",
                String::from_utf8_lossy(&fs::read(&path).unwrap())
            )
        } else if ft.is_char_device() {
            format!("char {}", md.rdev())
        } else if ft.is_block_device() {
            format!("block {}", md.rdev())
        } else if ft.is_fifo() {
            "fifo".into()
        } else {
            "other".into()
        };
        let mode = if ft.is_symlink() {
            0
        } else {
            md.mode() & 0o7777
        };
        let desc = format!(
            "{what} mode={mode:o} uid={} gid={} nlink={} mtime={}",
            md.uid(),
            md.gid(),
            md.nlink(),
            md.mtime()
        );
        out.insert(path.strip_prefix(base).unwrap().to_path_buf(), desc);
        if ft.is_dir() {
            walk(base, &path, out, exclude);
        }
    }
}

/// Whether this run is the rootless one (see `root_every_test_again_as_an_ordinary_user`).
fn rootless() -> bool {
    berth_runtime::userns::rootless().is_some()
}

fn assert_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (mknod, chown, trusted.* extended attributes)"
    );
}

fn abs_outside(work: &Work) -> String {
    work.outside.to_str().unwrap().to_string()
}

// ---------------------------------------------------------------------------------------------
// Hostile layers: one crafted tar per way out

#[test]
fn dotdot_entry_is_refused() {
    let cases: &[&[u8]] = &[
        b"../escape",
        b"a/../../escape",
        b"./../outside/secret",
        b"/../outside/new",
        b"..",
    ];
    for name in cases {
        let work = Work::new();
        let mut layer = Layer::default();
        layer.raw(
            &Layer::header(name, EntryType::Regular, 0o644, 5, b""),
            b"pwned",
        );
        let err = work
            .unpack(&layer.finish())
            .expect_err(&String::from_utf8_lossy(name));
        assert!(matches!(err, UnpackError::Breakout { .. }), "{err:?}");
        assert!(err.to_string().contains("climbs out"), "{err}");
    }
}

#[test]
fn dotdot_in_a_pax_path_is_refused() {
    let work = Work::new();
    let layer = Layer::default()
        .pax(&[("path", b"x/../../outside/secret")])
        .file("harmless", b"pwned")
        .finish();
    let err = work.unpack(&layer).unwrap_err();
    assert!(matches!(err, UnpackError::Breakout { .. }), "{err:?}");
}

#[test]
fn dotdot_that_stays_inside_is_cleaned() {
    let work = Work::new();
    work.unpack(&Layer::default().file("a/b/../c", b"x").finish())
        .unwrap();
    assert_eq!(fs::read(work.target.join("a/c")).unwrap(), b"x");
    assert!(!work.target.join("a/b").exists());
}

#[test]
fn absolute_names_are_relative_to_the_target() {
    let work = Work::new();
    let outside_secret = format!("{}/secret", abs_outside(&work));
    let layer = Layer::default()
        .file(&outside_secret, b"pwned")
        .file("/etc/passwd", b"root:x:0:0")
        .finish();
    work.unpack(&layer).unwrap();
    let inside = work.target.join(outside_secret.trim_start_matches('/'));
    assert_eq!(fs::read(inside).unwrap(), b"pwned");
    assert_eq!(
        fs::read(work.target.join("etc/passwd")).unwrap(),
        b"root:x:0:0"
    );
}

#[test]
fn writing_through_a_symlink_stays_inside() {
    // (symlink target, where `link/secret` must land below the target); `ABS` stands for the
    // absolute path of the real outside directory.
    let cases = [
        ("ABS", "ABS"),
        ("../outside", "outside"),
        ("../../../../../../outside", "outside"),
        ("/", ""),
        ("sub/../../outside", "outside"),
    ];
    for (link_target, lands) in cases {
        let work = Work::new();
        let abs = abs_outside(&work);
        let link_target = link_target.replace("ABS", &abs);
        let lands = lands.replace("ABS", abs.trim_start_matches('/'));
        let layer = Layer::default()
            .symlink("link", &link_target)
            .file("link/secret", b"pwned")
            .dir("link/newdir")
            .finish();
        work.unpack(&layer)
            .unwrap_or_else(|e| panic!("{link_target}: {e}"));
        let landed = work.target.join(&lands);
        assert_eq!(
            fs::read(landed.join("secret")).unwrap(),
            b"pwned",
            "{link_target}"
        );
        assert!(landed.join("newdir").is_dir(), "{link_target}");
        // The symlink itself is kept with its text.
        assert_eq!(
            fs::read_link(work.target.join("link")).unwrap(),
            Path::new(&link_target)
        );
    }
}

#[test]
fn symlink_chains_resolve_inside() {
    let work = Work::new();
    let layer = Layer::default()
        .symlink("a", "b")
        .symlink("b", "c/../../../..")
        .symlink("c", &abs_outside(&work))
        .file("a/outside/secret", b"pwned")
        .finish();
    work.unpack(&layer).unwrap();
    assert_eq!(
        fs::read(work.target.join("outside/secret")).unwrap(),
        b"pwned"
    );
}

#[test]
fn symlink_loops_fail() {
    let work = Work::new();
    let layer = Layer::default()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"x")
        .finish();
    let err = work.unpack(&layer).unwrap_err();
    assert!(matches!(err, UnpackError::Write { .. }), "{err:?}");
    assert!(err.to_string().contains("a/x"), "{err}");
}

#[test]
fn entry_over_a_symlink_replaces_the_symlink() {
    let work = Work::new();
    let secret = format!("{}/secret", abs_outside(&work));
    let layer = Layer::default()
        .symlink("f", &secret)
        .file("f", b"pwned")
        .symlink("d", &abs_outside(&work))
        .entry("d", EntryType::Directory, 0o777, b"", "")
        .symlink("s", &secret)
        .entry("s", EntryType::Symlink, 0o777, b"", "elsewhere")
        .finish();
    work.unpack(&layer).unwrap();
    let f = fs::symlink_metadata(work.target.join("f")).unwrap();
    assert!(f.is_file());
    assert_eq!(fs::read(work.target.join("f")).unwrap(), b"pwned");
    let d = fs::symlink_metadata(work.target.join("d")).unwrap();
    assert!(d.is_dir());
    assert_eq!(d.mode() & 0o7777, 0o777);
    assert_eq!(
        fs::read_link(work.target.join("s")).unwrap(),
        Path::new("elsewhere")
    );
}

#[test]
fn hardlink_out_of_the_target_is_refused() {
    let work = Work::new();
    let layer = Layer::default().hardlink("h", "../outside/secret").finish();
    let err = work.unpack(&layer).unwrap_err();
    assert!(matches!(err, UnpackError::Breakout { .. }), "{err:?}");
    assert!(!work.target.join("h").exists());
}

#[test]
fn hardlink_through_a_symlink_resolves_inside() {
    let work = Work::new();
    let abs = abs_outside(&work);
    // `a` points at the real outside directory; inside the target that path does not exist.
    let layer = Layer::default()
        .symlink("a", &abs)
        .hardlink("h", "a/secret")
        .finish();
    let err = work.unpack(&layer).unwrap_err();
    assert!(matches!(err, UnpackError::Write { .. }), "{err:?}");
    assert!(!work.target.join("h").exists());

    // Absolute link targets are relative to the target too.
    let work = Work::new();
    let secret = format!("{}/secret", abs_outside(&work));
    let layer = Layer::default().hardlink("h", &secret).finish();
    assert!(work.unpack(&layer).is_err());

    // When the path exists inside, the link is made to the file inside.
    let work = Work::new();
    let abs = abs_outside(&work);
    let layer = Layer::default()
        .file(&format!("{abs}/secret"), b"inside")
        .symlink("a", &abs)
        .hardlink("h", "a/secret")
        .finish();
    work.unpack(&layer).unwrap();
    let inside = work.target.join(abs.trim_start_matches('/')).join("secret");
    assert_eq!(
        fs::metadata(work.target.join("h")).unwrap().ino(),
        fs::metadata(inside).unwrap().ino()
    );
}

#[test]
fn hardlink_to_an_outward_symlink_links_the_symlink() {
    let work = Work::new();
    let secret = format!("{}/secret", abs_outside(&work));
    let layer = Layer::default()
        .symlink("s", &secret)
        .hardlink("h", "s")
        .finish();
    work.unpack(&layer).unwrap();
    let h = fs::symlink_metadata(work.target.join("h")).unwrap();
    assert!(h.file_type().is_symlink());
    assert_eq!(
        h.ino(),
        fs::symlink_metadata(work.target.join("s")).unwrap().ino()
    );
}

#[test]
fn whiteouts_cannot_name_dot_or_dotdot() {
    for name in ["sub/.wh...", "sub/.wh..", ".wh..."] {
        let work = Work::new();
        let layer = Layer::default().dir("sub").file(name, b"").finish();
        let err = work.unpack(&layer).expect_err(name);
        assert!(matches!(err, UnpackError::Write { .. }), "{name}: {err:?}");
    }
}

#[test]
fn device_nodes_are_skipped_when_unprivileged() {
    let work = Work::new();
    let mut layer = Layer::default();
    let mut h = Layer::header(b"dev/sda", EntryType::Block, 0o660, 0, b"");
    h.set_device_major(8).unwrap();
    h.set_device_minor(0).unwrap();
    h.set_cksum();
    layer.raw(&h, b"");
    let mut h = Layer::header(b"dev/mem", EntryType::Char, 0o640, 0, b"");
    h.set_device_major(1).unwrap();
    h.set_device_minor(1).unwrap();
    h.set_cksum();
    layer.raw(&h, b"");
    layer.entry("dev/fifo", EntryType::Fifo, 0o644, b"", "");
    let summary = work
        .unpack_with(
            &layer.finish(),
            &UnpackOptions {
                privileged: false,
                ..UnpackOptions::default()
            },
        )
        .unwrap();
    let skipped: Vec<_> = summary.skipped.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(skipped, ["dev/sda", "dev/mem"]);
    assert_eq!(summary.entries, 3);
    assert!(!work.target.join("dev/sda").exists());
    assert!(!work.target.join("dev/mem").exists());
    // A fifo needs no privilege.
    assert!(fs::symlink_metadata(work.target.join("dev/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn root_creates_device_nodes() {
    assert_root();
    let work = Work::new();
    let mut layer = Layer::default();
    let mut h = Layer::header(b"dev/null", EntryType::Char, 0o666, 0, b"");
    h.set_device_major(1).unwrap();
    h.set_device_minor(3).unwrap();
    h.set_uid(5);
    h.set_gid(6);
    h.set_cksum();
    layer.raw(&h, b"");
    let summary = work.unpack(&layer.finish()).unwrap();
    if rootless() {
        // A user namespace may not make device nodes: skipped, and said so.
        assert_eq!(summary.skipped.len(), 1);
        assert!(fs::symlink_metadata(work.target.join("dev/null")).is_err());
        return;
    }
    assert!(summary.skipped.is_empty());
    let md = fs::symlink_metadata(work.target.join("dev/null")).unwrap();
    assert!(md.file_type().is_char_device());
    assert_eq!(md.rdev(), rustix::fs::makedev(1, 3));
    assert_eq!((md.mode() & 0o7777, md.uid(), md.gid()), (0o666, 5, 6));
}

#[test]
fn huge_extended_headers_are_refused() {
    for kind in [
        EntryType::XHeader,
        EntryType::XGlobalHeader,
        EntryType::GNULongName,
        EntryType::GNULongLink,
    ] {
        let work = Work::new();
        let mut layer = Layer::default();
        // Claims 8 GiB, delivers 512 bytes: refused on the claim, before any allocation.
        let mut h = Layer::header(b"././@LongLink", kind, 0o644, 0, b"");
        h.set_size(8 << 30);
        h.set_cksum();
        layer.raw(&h, &[b'a'; 512]);
        let err = work.unpack(&layer.finish()).unwrap_err();
        assert!(
            matches!(err, UnpackError::HeaderTooLarge { len, .. } if len == 8 << 30),
            "{kind:?}: {err:?}"
        );
    }
}

#[test]
fn long_names_within_the_limit_work() {
    let work = Work::new();
    let long_dir = "d".repeat(200);
    let long_name = format!("{long_dir}/{}", "f".repeat(200));
    let mut layer = Layer::default();
    // GNU long name
    let mut h = Layer::header(b"././@LongLink", EntryType::GNULongName, 0o644, 0, b"");
    let name = format!("{long_name}\0");
    h.set_size(name.len() as u64);
    h.set_cksum();
    layer.raw(&h, name.as_bytes());
    layer.file("truncated-short-name", b"gnu");
    // PAX path and linkpath
    let pax_name = format!("{long_dir}/{}", "p".repeat(200));
    layer.pax(&[
        ("path", pax_name.as_bytes()),
        ("linkpath", long_name.as_bytes()),
    ]);
    layer.hardlink("short", "short-target");
    let summary = work.unpack(&layer.finish()).unwrap();
    assert_eq!(summary.entries, 2);
    assert_eq!(fs::read(work.target.join(&long_name)).unwrap(), b"gnu");
    assert_eq!(
        fs::metadata(work.target.join(&pax_name)).unwrap().ino(),
        fs::metadata(work.target.join(&long_name)).unwrap().ino()
    );
}

#[test]
fn malformed_archives_fail_clearly() {
    let work = Work::new();
    let full = Layer::default().file("a", &[7; 3000]).finish();

    // Cut inside the data.
    let err = work.unpack(&full[..1500]).unwrap_err();
    assert!(matches!(err, UnpackError::Malformed(_)), "{err:?}");
    assert!(err.to_string().contains("ends in the middle"), "{err}");
    // Cut inside a header.
    let err = Work::new().unpack(&full[..100]).unwrap_err();
    assert!(matches!(err, UnpackError::Malformed(_)), "{err:?}");
    // A damaged header.
    let mut bad = full.clone();
    bad[0] = b'b';
    let err = Work::new().unpack(&bad).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    // Corrupt gzip.
    let mut gz = gzip(&full);
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    gz[mid + 1] ^= 0xff;
    assert!(Work::new().unpack(&gz).is_err());
    // A bad PAX record.
    let layer = Layer::default()
        .pax(&[("size", b"lots")])
        .file("a", b"x")
        .finish();
    assert!(matches!(
        Work::new().unpack(&layer).unwrap_err(),
        UnpackError::Malformed(_)
    ));
    // Sparse files are not supported.
    let layer = Layer::default()
        .entry("s", EntryType::GNUSparse, 0o644, b"", "")
        .finish();
    assert!(matches!(
        Work::new().unpack(&layer).unwrap_err(),
        UnpackError::Unsupported { .. }
    ));
    // The target must exist.
    let err = unpack_layer(
        &full[..],
        &work.target.join("missing"),
        &UnpackOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::Target { .. }), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Ordinary layers

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn sample_layer() -> Vec<u8> {
    let mut layer = Layer::default();
    layer
        .dir("./")
        .dir("bin/")
        .entry("bin/su", EntryType::Regular, 0o4755, b"#!/bin/sh\n", "")
        .entry("bin/locked", EntryType::Directory, 0o500, b"", "")
        .file("bin/locked/inner", b"still written")
        .symlink("bin/sh", "busybox")
        .file("bin/busybox", &vec![0x5a; 300_000])
        .hardlink("bin/ls", "bin/busybox")
        .entry("tmp", EntryType::Directory, 0o1777, b"", "")
        .file("etc/hostname", b"berth\n")
        .file("empty", b"");
    layer.finish()
}

#[test]
fn gzip_zstd_and_plain_layers_unpack_to_the_same_tree() {
    let plain = sample_layer();
    let expected_diff_id = Digest::sha256_of(&plain);
    let layers = [
        (Compression::None, plain.clone()),
        (Compression::Gzip, gzip(&plain)),
        (Compression::Zstd, zstd::encode_all(&plain[..], 3).unwrap()),
    ];
    let mut trees = Vec::new();
    for (compression, blob) in layers {
        let work = Work::new();
        let summary = work.unpack(&blob).unwrap();
        assert_eq!(summary.compression, compression);
        assert_eq!(summary.diff_id, expected_diff_id, "{compression:?}");
        assert_eq!(summary.uncompressed_size, plain.len() as u64);
        assert_eq!(summary.entries, 11);
        assert_eq!(summary.bytes, 10 + 13 + 300_000 + 6);
        let mut tree = work.tree();
        // `etc` is a parent the layer never lists: its time is that of the unpack, which differs
        // between the three when they straddle a second (CI saw it).
        let etc = tree.get_mut(Path::new("etc")).unwrap();
        *etc = etc.split(" mtime=").next().unwrap().to_string();
        trees.push(tree);
    }
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
}

#[test]
fn metadata_is_kept() {
    let work = Work::new();
    work.unpack(&sample_layer()).unwrap();
    let t = &work.target;
    let md = |p: &str| fs::symlink_metadata(t.join(p)).unwrap();
    assert_eq!(md("bin/su").mode() & 0o7777, 0o4755);
    assert_eq!(md("bin/locked").mode() & 0o7777, 0o500);
    assert_eq!(md("tmp").mode() & 0o7777, 0o1777);
    assert_eq!(
        fs::read(t.join("bin/locked/inner")).unwrap(),
        b"still written"
    );
    assert_eq!(md("bin/ls").ino(), md("bin/busybox").ino());
    assert_eq!(md("bin/busybox").nlink(), 2);
    assert_eq!(
        fs::read_link(t.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    // Directory times are set after their content is written.
    for p in ["bin/su", "bin", "bin/locked", "bin/sh", "tmp", "empty"] {
        assert_eq!(md(p).mtime(), 1_600_000_000, "{p}");
    }
    // Parents that the layer never listed are created 0755.
    assert_eq!(md("etc").mode() & 0o7777, 0o755);
}

#[test]
fn pax_times_ownership_and_xattrs_root() {
    assert_root();
    let work = Work::new();
    let mut layer = Layer::default();
    layer.pax(&[
        ("mtime", b"1234567890.5"),
        ("uid", b"100000"),
        ("gid", b"100001"),
        ("SCHILY.xattr.user.note", b"hello"),
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
        (
            "SCHILY.xattr.security.selinux",
            b"system_u:object_r:etc_t:s0",
        ),
    ]);
    layer.entry("f", EntryType::Regular, 0o6755, b"data", "");
    layer.pax(&[
        ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
        ("SCHILY.xattr.user.dir", b"1"),
    ]);
    layer.dir("d");
    work.unpack(&layer.finish()).unwrap();

    let f = work.target.join("f");
    let md = fs::metadata(&f).unwrap();
    assert_eq!((md.uid(), md.gid()), (100000, 100001));
    // Ownership is set before the mode, so setuid and setgid survive.
    assert_eq!(md.mode() & 0o7777, 0o6755);
    assert_eq!((md.mtime(), md.mtime_nsec()), (1234567890, 500_000_000));
    let xattrs = |p: &Path| {
        let mut names: Vec<String> = xattr_names(p);
        names.sort();
        names
    };
    assert_eq!(xattrs(&f), ["user.note"]);
    assert_eq!(xattrs(&work.target.join("d")), ["user.dir"]);
}

fn xattr_names(path: &Path) -> Vec<String> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::fs::listxattr(path, &mut buf).unwrap();
    buf[..n]
        .split(|&b| b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .filter(|s| !s.starts_with("security.selinux"))
        .collect()
}

fn get_xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 256];
    rustix::fs::lgetxattr(path, name, &mut buf)
        .ok()
        .map(|n| buf[..n].to_vec())
}

#[test]
fn whiteouts_become_overlay_whiteouts_root() {
    assert_root();
    let work = Work::new();
    let layer = Layer::default()
        .dir("etc")
        .file("etc/.wh.passwd", b"")
        .file(".wh.gone-dir", b"")
        .dir("opaque")
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/kept", b"k")
        .file(".wh..wh.plnk", b"")
        .finish();
    let summary = work.unpack(&layer).unwrap();
    assert_eq!(summary.entries, 7);
    let t = &work.target;
    for p in ["etc/passwd", "gone-dir"] {
        let md = fs::symlink_metadata(t.join(p)).unwrap();
        assert!(md.file_type().is_char_device(), "{p}");
        assert_eq!(md.rdev(), 0, "{p}");
    }
    // trusted.overlay.opaque, or user.overlay.opaque in a user namespace (`userxattr`).
    let opaque = overlay_xattr("opaque");
    assert_eq!(
        get_xattr(&t.join("opaque"), &opaque).as_deref(),
        Some(&b"y"[..])
    );
    assert_eq!(get_xattr(&t.join("etc"), &opaque), None);
    assert_eq!(fs::read(t.join("opaque/kept")).unwrap(), b"k");
    // No `.wh.` file is ever written.
    let names: Vec<_> = work.tree().into_keys().collect();
    assert!(
        names.iter().all(|p| !p.to_string_lossy().contains(".wh.")),
        "{names:?}"
    );
}

#[test]
fn whiteout_replaces_an_entry_of_the_same_layer_root() {
    assert_root();
    let work = Work::new();
    let layer = Layer::default()
        .file("d/sub/x", b"x")
        .file(".wh.d", b"")
        .finish();
    work.unpack(&layer).unwrap();
    assert!(fs::symlink_metadata(work.target.join("d"))
        .unwrap()
        .file_type()
        .is_char_device());
}

#[test]
fn diff_id_covers_the_whole_stream() {
    let work = Work::new();
    let mut plain = Layer::default().file("a", b"a").finish();
    plain.extend_from_slice(&[0; 4096]);
    plain.extend_from_slice(b"trailing bytes after the end of the archive");
    let summary = work.unpack(&gzip(&plain)).unwrap();
    assert_eq!(summary.diff_id, Digest::sha256_of(&plain));
    assert_eq!(summary.uncompressed_size, plain.len() as u64);
    assert_eq!(summary.entries, 1);
}

#[test]
fn empty_layers_unpack_to_nothing() {
    for blob in [Vec::new(), vec![0; 1024], gzip(&[0; 1024])] {
        let work = Work::new();
        let summary = work.unpack(&blob).unwrap();
        assert_eq!(summary.entries, 0);
        assert_eq!(
            summary.diff_id,
            Digest::sha256_of(&if blob.is_empty() {
                vec![]
            } else {
                vec![0; 1024]
            })
        );
        assert!(work.tree().is_empty());
    }
}

#[test]
fn later_entries_replace_earlier_ones() {
    let work = Work::new();
    let layer = Layer::default()
        .file("x", b"first")
        .file("x", b"second")
        .file("d/inner", b"i")
        .file("d", b"now a file")
        .dir("e")
        .file("e/keep", b"k")
        .dir("e")
        .finish();
    work.unpack(&layer).unwrap();
    assert_eq!(fs::read(work.target.join("x")).unwrap(), b"second");
    assert_eq!(fs::read(work.target.join("d")).unwrap(), b"now a file");
    assert_eq!(fs::read(work.target.join("e/keep")).unwrap(), b"k");
}

#[test]
fn names_longer_than_path_max_are_refused() {
    let work = Work::new();
    let deep = "a/".repeat(3000) + "f";
    let layer = Layer::default()
        .pax(&[("path", deep.as_bytes())])
        .file("short", b"x")
        .finish();
    let err = work.unpack(&layer).unwrap_err();
    assert!(matches!(err, UnpackError::Unsupported { .. }), "{err:?}");
    assert!(err.to_string().contains("at most 4095"), "{err}");

    // Symlinks cannot be used to build a deeper path than a name could spell.
    let work = Work::new();
    let mut layer = Layer::default();
    let hop = "b/".repeat(2000);
    layer
        .pax(&[("linkpath", hop.as_bytes())])
        .symlink("l0", "x");
    for i in 1..40 {
        let target = format!("l{}/{hop}", i - 1);
        layer
            .pax(&[("linkpath", target.as_bytes())])
            .symlink(&format!("l{i}"), "x");
    }
    layer.file("l39/f", b"x");
    let err = work.unpack(&layer.finish()).unwrap_err();
    assert!(err.to_string().contains("File name too long"), "{err}");
}

/// GNU tar, a second implementation, writes the archive and extracts the reference tree.
#[test]
fn same_tree_as_gnu_tar_extracts_root() {
    use std::os::unix::fs::{chown, symlink};
    use std::process::Command;
    assert_root();
    let src = tempfile::tempdir().unwrap();
    let s = src.path();
    fs::create_dir_all(s.join("usr/bin")).unwrap();
    for (name, len) in [
        ("zero", 0),
        ("one", 1),
        ("b511", 511),
        ("b512", 512),
        ("b513", 513),
        ("big", (1 << 20) + 3),
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        fs::write(s.join("usr/bin").join(name), data).unwrap();
    }
    let long_dir = s.join("d".repeat(120)).join("e".repeat(120));
    fs::create_dir_all(&long_dir).unwrap();
    fs::write(long_dir.join("f".repeat(150)), b"long").unwrap();
    fs::write(s.join("ünïcødé ñame"), b"utf8").unwrap();
    symlink("bin/big", s.join("usr/link")).unwrap();
    symlink("/nowhere/at/all", s.join("dangling")).unwrap();
    fs::hard_link(s.join("usr/bin/one"), s.join("usr/hard")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        s.join("fifo"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o640),
        0,
    )
    .unwrap();
    fs::write(s.join("setuid"), b"su").unwrap();
    fs::set_permissions(s.join("setuid"), fs::Permissions::from_mode(0o4711)).unwrap();
    fs::create_dir(s.join("private")).unwrap();
    fs::write(s.join("private/owned"), b"o").unwrap();
    chown(s.join("private/owned"), Some(1234), Some(4321)).unwrap();
    fs::set_permissions(s.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
    chown(s.join("private"), Some(1234), Some(4321)).unwrap();
    fs::set_permissions(s.join("usr"), fs::Permissions::from_mode(0o750)).unwrap();

    for format in ["pax", "gnu", "ustar"] {
        let work = Work::new();
        let archive = work.root.join("layer.tar");
        let reference = work.root.join("reference");
        fs::create_dir(&reference).unwrap();
        let mut tar = Command::new("tar");
        tar.arg(format!("--format={format}"))
            .arg("-cf")
            .arg(&archive)
            .arg("-C")
            .arg(s);
        if format == "ustar" {
            // ustar cannot hold the long names; the rest still goes through its prefix field.
            tar.args(["usr", "fifo", "setuid", "private", "dangling"]);
        } else {
            tar.arg(".");
        }
        assert!(tar.status().unwrap().success(), "{format}");
        let status = Command::new("tar")
            .args(["--same-owner", "-xpf"])
            .arg(&archive)
            .arg("-C")
            .arg(&reference)
            .status()
            .unwrap();
        assert!(status.success());
        let mut expected = BTreeMap::new();
        walk(&reference, &reference, &mut expected, None);
        let blob = fs::read(&archive).unwrap();
        let summary = unpack_layer(&blob[..], &work.target, &UnpackOptions::default()).unwrap();
        assert_eq!(summary.diff_id, Digest::sha256_of(&blob), "{format}");
        assert_eq!(work.tree(), expected, "{format}");
    }
}

/// A blob download that drops after `left` bytes.
struct Dropping {
    data: Vec<u8>,
    pos: usize,
    left: usize,
}

impl std::io::Read for Dropping {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset",
            ));
        }
        let n = buf.len().min(self.left).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        self.left -= n;
        Ok(n)
    }
}

#[test]
fn a_failing_blob_reader_is_a_read_error() {
    let work = Work::new();
    let layer = gzip(&Layer::default().file("big", &vec![1; 8 << 20]).finish());
    let reader = Dropping {
        pos: 0,
        left: layer.len() / 2,
        data: layer,
    };
    let err = unpack_layer(reader, &work.target, &UnpackOptions::default()).unwrap_err();
    assert!(matches!(err, UnpackError::Read(_)), "{err:?}");
    assert!(err.to_string().contains("connection reset"), "{err}");
}

#[test]
fn an_early_refusal_stops_a_long_layer() {
    // The refusal comes while most of the stream is still to be decompressed.
    let work = Work::new();
    let mut layer = Layer::default();
    layer.file("../escape", b"x");
    for i in 0..64 {
        layer.file(&format!("f{i}"), &vec![i as u8; 1 << 20]);
    }
    let err = work
        .unpack(&zstd::encode_all(&layer.finish()[..], 1).unwrap())
        .unwrap_err();
    assert!(matches!(err, UnpackError::Breakout { .. }), "{err:?}");
}

/// Every test of this file again, as rootless berth unpacks a layer: as an ordinary user made
/// for the run (a range in /etc/subuid and /etc/subgid), root in a user namespace that maps
/// root to the user and 1 and up to the range through newuidmap/newgidmap (`unshare
/// --map-users`, util-linux), with the soft open-files limit raised to the hard one as berth
/// does. Hostile layers must stay inside there too; device nodes are skipped and opaque
/// directories marked with `user.overlay.opaque`.
#[test]
fn root_every_test_again_as_an_ordinary_user() {
    if rootless() {
        return; // the run below
    }
    assert_root();
    let name = format!("bup{:08x}", std::process::id() ^ rand_seed());
    let run = |cmd: &mut std::process::Command| {
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(std::process::Command::new("useradd").args([
        "--no-create-home",
        "--shell",
        "/bin/sh",
        &name,
    ]));
    struct Gone(String, String);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = std::process::Command::new("usermod")
                .args(["--del-subuids", &self.1, "--del-subgids", &self.1, &self.0])
                .output();
            let _ = std::process::Command::new("userdel").arg(&self.0).output();
        }
    }
    // 262144 ids: the tests own files up to uid 100001.
    let start = 5_000_000 + (rand_seed() % 1000) * 262_144;
    let range = format!("{start}-{}", start + 262_143);
    let _gone = Gone(name.clone(), range.clone());
    run(std::process::Command::new("usermod").args([
        "--add-subuids",
        &range,
        "--add-subgids",
        &range,
        &name,
    ]));
    let map = format!("{start},1,262144");
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new("runuser")
        .args([
            "-u",
            &name,
            "--",
            "env",
            "-i",
            "PATH=/usr/bin:/bin:/usr/sbin:/sbin",
        ])
        .args([
            "unshare",
            "--map-root-user",
            "--map-users",
            &map,
            "--map-groups",
            &map,
        ])
        .args([
            "--",
            "sh",
            "-c",
            "ulimit -Sn $(ulimit -Hn) && exec \"$0\" --test-threads 2",
        ])
        .arg(&exe)
        .current_dir("/")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "as {name}:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" 0 failed;"), "{text}");
}

fn rand_seed() -> u32 {
    let mut b = [0u8; 4];
    use std::io::Read;
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut b)
        .unwrap();
    u32::from_ne_bytes(b)
}
