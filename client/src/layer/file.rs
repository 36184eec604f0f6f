//! One regular file copied out of a tree with no tar in between: what [`super::tar_entry`]
//! piped into `unpack` would make of it (its bytes, its mode, its time in whole seconds with
//! the access time equal, the extended attributes a layer keeps, the caller as owner), with
//! the kernel moving the bytes (`copy_file_range`, through `std::io::copy`) instead of four
//! copies through a pipe and two hashes. `cp` of a large file is bound by the disk this way.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, Timespec, Timestamps};
use rustix::io::Errno;

use super::{tar, walk, LayerError};

/// Copies the regular file `name` of the directory `parent` (never following a symlink) to
/// `as_name` in the host directory `into`, through a temporary file renamed over it at the
/// end, so a failed copy leaves nothing behind. Returns the length the tar of it would have
/// had (what `cp` reports), or `None` when this way does not apply (the entry is no longer a
/// regular file, or `as_name` is a directory): then the caller copies through a tar.
/// `backing`, given the file's `stat` as opened, may answer the same file opened where it
/// really lives (an overlay's upper or lower directory), so the bytes move between two
/// files of one file system (`copy_file_range` can share or copy them in the kernel) and
/// nothing is synced through the overlay.
pub fn copy_file(
    parent: BorrowedFd<'_>,
    name: &[u8],
    backing: &dyn Fn(&rfs::Stat) -> Option<OwnedFd>,
    into: &Path,
    as_name: &str,
) -> Result<Option<u64>, LayerError> {
    let source_err = |source: io::Error| LayerError::Entry {
        path: String::from_utf8_lossy(name).into_owned(),
        source,
    };
    let src = match rfs::openat(
        parent,
        OsStr::from_bytes(name),
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // A symlink swapped in meanwhile, or something that cannot be opened this way.
        Err(Errno::LOOP) | Err(Errno::NXIO) => return Ok(None),
        Err(e) => return Err(source_err(e.into())),
    };
    let st = rfs::fstat(&src).map_err(|e| source_err(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Ok(None);
    }
    let xattrs = walk::read_xattrs(src.as_fd()).map_err(source_err)?.keep;
    let src = backing(&st).unwrap_or(src);

    let dest_err = |source: io::Error| {
        LayerError::Write(io::Error::new(
            source.kind(),
            format!("{}: {source}", into.join(as_name).display()),
        ))
    };
    let dir = rfs::open(
        into,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| dest_err(e.into()))?;
    match rfs::statat(&dir, as_name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(t) if FileType::from_raw_mode(t.st_mode) == FileType::Directory => return Ok(None),
        _ => {}
    }
    let tmp = format!(".berth-cp-{}", uuid::Uuid::new_v4().simple());
    let written = (|| -> io::Result<()> {
        let out = rfs::openat(
            &dir,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        let mut out = File::from(out);
        io::copy(&mut File::from(src), &mut out)?;
        rfs::fchmod(&out, Mode::from_raw_mode(st.st_mode & 0o7777))?;
        for (k, v) in &xattrs {
            if let Err(err) =
                rfs::fsetxattr(&out, OsStr::from_bytes(k), v, rfs::XattrFlags::empty())
            {
                tracing::warn!(xattr = %String::from_utf8_lossy(k), %err, "cannot set extended attribute");
            }
        }
        let t = Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: 0,
        };
        rfs::futimens(
            &out,
            &Timestamps {
                last_access: t,
                last_modification: t,
            },
        )?;
        rfs::renameat(&dir, tmp.as_str(), &dir, as_name)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = rfs::unlinkat(&dir, tmp.as_str(), AtFlags::empty());
        return Err(dest_err(e));
    }
    let mut head = Vec::new();
    tar::encode(
        &tar::Header {
            name: as_name.as_bytes(),
            link: b"",
            typeflag: tar::TYPE_FILE,
            mode: st.st_mode & 0o7777,
            uid: u64::from(st.st_uid),
            gid: u64::from(st.st_gid),
            size: st.st_size as u64,
            mtime: st.st_mtime,
            devmajor: 0,
            devminor: 0,
            xattrs: &xattrs,
        },
        &mut head,
    );
    let size = st.st_size as u64;
    Ok(Some(
        head.len() as u64 + size + tar::padding(size) as u64 + 2 * tar::BLOCK as u64,
    ))
}
