//! `cp` against a directory standing in for a container's root, as root: docker's path rules,
//! and a root that swaps symlinks under the copy without anything outside it read or written.

use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

fn root_fd(dir: &Path) -> OwnedFd {
    rfs::open(dir, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()).unwrap()
}

/// Copies out of `root`, which is also the one layer a regular file may be read from
/// directly (as an overlay's upper directory would be).
fn out(root: &Path, src: &str, dest: &Path) -> Result<u64> {
    copy_out(
        root_fd(root).as_fd(),
        &[root.to_path_buf()],
        "c1",
        src,
        HostTarget::Path(dest),
        &CopyOptions::default(),
    )
}

fn into(root: &Path, src: &Path, dest: &str) -> Result<u64> {
    copy_in(
        root_fd(root).as_fd(),
        "c1",
        HostSource::Path(src),
        dest,
        &CopyOptions::default(),
    )
}

fn tree() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("etc/sub")).unwrap();
    std::fs::write(t.path().join("etc/a"), "a").unwrap();
    std::fs::write(t.path().join("etc/sub/b"), "b").unwrap();
    std::os::unix::fs::symlink("/etc", t.path().join("link")).unwrap();
    t
}

#[test]
fn root_paths_follow_dockers_rules() {
    let c = tree();
    let h = tempfile::tempdir().unwrap();
    // A file to a new name, into a directory, over a file.
    out(c.path(), "/etc/a", &h.path().join("x")).unwrap();
    assert_eq!(std::fs::read(h.path().join("x")).unwrap(), b"a");
    out(c.path(), "/etc/a", h.path()).unwrap();
    assert_eq!(std::fs::read(h.path().join("a")).unwrap(), b"a");
    std::fs::write(h.path().join("x"), "old").unwrap();
    out(c.path(), "etc/sub/b", &h.path().join("x")).unwrap();
    assert_eq!(std::fs::read(h.path().join("x")).unwrap(), b"b");
    // A directory to a new name, into a directory, its content with /.
    out(c.path(), "/etc", &h.path().join("new")).unwrap();
    assert!(h.path().join("new/sub/b").is_file());
    out(c.path(), "/etc/", &h.path().join("new")).unwrap();
    assert!(h.path().join("new/etc/sub/b").is_file());
    std::fs::create_dir(h.path().join("flat")).unwrap();
    out(c.path(), "/etc/.", &h.path().join("flat")).unwrap();
    assert!(h.path().join("flat/sub/b").is_file());
    // Symlinks are copied as links, followed with -L (inside the root).
    out(c.path(), "/link", &h.path().join("l")).unwrap();
    assert_eq!(
        std::fs::read_link(h.path().join("l")).unwrap(),
        Path::new("/etc")
    );
    copy_out(
        root_fd(c.path()).as_fd(),
        &[],
        "c1",
        "/link",
        HostTarget::Path(&h.path().join("followed")),
        &CopyOptions {
            follow_link: true,
            ..CopyOptions::default()
        },
    )
    .unwrap();
    assert!(h.path().join("followed/sub/b").is_file());
    // Errors, in docker's words.
    let not_dir = format!("stat {}/x/: not a directory", h.path().display());
    for (src, dest, msg) in [
        (
            "/nope",
            h.path().join("y"),
            "Could not find the file /nope in container c1",
        ),
        ("/etc", h.path().join("x"), "cannot copy directory"),
        (
            "/etc/a/",
            h.path().join("y"),
            "lstat /etc/a/: not a directory",
        ),
        ("/etc/a", h.path().join("nodir/"), "no such directory"),
        ("/etc/a", h.path().join("x/"), not_dir.as_str()),
    ] {
        let e = out(c.path(), src, &dest).unwrap_err();
        assert_eq!(e.to_string(), msg);
        assert_eq!(e.exit_code(), 1);
    }

    // Into the container.
    let src = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(src.path().join("d/e")).unwrap();
    std::fs::write(src.path().join("d/e/f"), "f").unwrap();
    std::fs::write(src.path().join("file"), "file").unwrap();
    into(c.path(), &src.path().join("file"), "/etc").unwrap();
    assert_eq!(std::fs::read(c.path().join("etc/file")).unwrap(), b"file");
    into(c.path(), &src.path().join("file"), "/etc/renamed").unwrap();
    assert!(c.path().join("etc/renamed").is_file());
    into(c.path(), &src.path().join("d"), "/tmpd").unwrap();
    assert!(c.path().join("tmpd/e/f").is_file());
    into(c.path(), &src.path().join("d"), "/etc/").unwrap();
    assert!(c.path().join("etc/d/e/f").is_file());
    // Through the container's absolute symlink: resolved inside its root.
    into(c.path(), &src.path().join("file"), "/link/via-link").unwrap();
    assert!(c.path().join("etc/via-link").is_file());
    for (s, dest, msg) in [
        (src.path().join("d"), "/etc/a", "cannot copy directory"),
        (src.path().join("file"), "/nonexist/", "no such directory"),
        (src.path().join("file"), "/etc/a/", "no such directory"),
        (
            src.path().join("file"),
            "/etc/a/x",
            "extraction point is not a directory",
        ),
        (
            src.path().join("file"),
            "/nonexist/x",
            "Could not find the file /nonexist in container c1",
        ),
    ] {
        let e = into(c.path(), &s, dest).unwrap_err();
        assert_eq!(e.to_string(), msg);
    }
    let e = into(c.path(), &src.path().join("nope"), "/").unwrap_err();
    assert!(e.to_string().starts_with("lstat "), "{e}");
}

/// CVE-2018-15664: the "container" swaps `/swap` between a directory and a symlink to the
/// host's directory while copies run; nothing outside its root is read or written.
#[test]
fn root_symlink_swap_race_stays_inside() {
    let c = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret"), "host secret").unwrap();
    let real = c.path().join("real");
    std::fs::create_dir(&real).unwrap();
    std::fs::write(real.join("secret"), "container file").unwrap();
    let swap = c.path().join("swap");
    let stop = AtomicBool::new(false);
    let h = tempfile::tempdir().unwrap();
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("planted"), "from host").unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            let tmp_link = c.path().join("swap-link");
            let tmp_dir = c.path().join("swap-dir");
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::remove_file(&tmp_link);
                std::os::unix::fs::symlink(outside.path(), &tmp_link).unwrap();
                let _ = std::fs::rename(&tmp_link, &swap);
                let _ = std::fs::remove_dir_all(&tmp_dir);
                let _ = std::fs::rename(&real, &tmp_dir);
                let _ = std::fs::rename(&tmp_dir, &real);
                let _ = std::fs::remove_file(&swap);
                let _ = std::os::unix::fs::symlink("real", &swap);
            }
        });
        for i in 0..300 {
            let dest = h.path().join(format!("got{i}"));
            if out(c.path(), "/swap/secret", &dest).is_ok() {
                let got = std::fs::read_to_string(&dest).unwrap_or_default();
                assert_ne!(got, "host secret", "read through the swapped symlink");
            }
            let _ = into(c.path(), &src.path().join("planted"), "/swap/");
            assert!(
                !outside.path().join("planted").exists(),
                "wrote through the swapped symlink"
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert_eq!(
        std::fs::read_dir(outside.path()).unwrap().count(),
        1,
        "the host directory is untouched"
    );
}
