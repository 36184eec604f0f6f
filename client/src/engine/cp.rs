//! `cp`: files in and out of a container, with docker's rules for `/` and `/.` at the ends
//! of paths, and no way out of the container's root whatever it does meanwhile
//! (CVE-2018-15664).
//!
//! The container's root is a descriptor: `/proc/PID/root` of a running container (its own
//! mount namespace, volumes included), or for a stopped one an overlay of its layers mounted
//! in a private mount namespace of a helper thread, with its volumes bound in, that lives as
//! long as the copy. Paths inside are opened with `openat2(RESOLVE_IN_ROOT |
//! RESOLVE_NO_MAGICLINKS)`, so `..` and absolute symlinks stop at that root, and from there
//! every step is relative to a descriptor with `O_NOFOLLOW` (the layer writer's walk going
//! out, `unpack`'s scoped resolution coming in). Both directions move a tar stream, as
//! docker's do: the walk writes it, `unpack` reads it; except a regular file copied out to
//! a host path, which `layer::copy_file` copies with the kernel's `copy_file_range` (the same
//! result, at the speed of `cp`), from the overlay's own upper or lower file when that is the
//! very file the root shows (found with no symlink followed; its inode, size and time
//! compared), so the copy stays within one file system. A stopped container's overlay is
//! mounted read-only for a copy out: unmounting a writable one syncs its upper file system,
//! which would wait for the copy's own freshly written bytes.

use std::ffi::CString;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use super::{container_event, ContainerRecord, Engine, EngineError, Result, Status};
use crate::layer;
use crate::unpack::{unpack_layer, unpack_tar, UnpackError, UnpackOptions};

/// `cp`'s flags.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// `-a`: files copied into the container keep their owners (else they are root's).
    /// Files copied out are always the caller's, as docker makes them.
    pub archive: bool,
    /// `-L`: follow a symlink named by the source path.
    pub follow_link: bool,
}

/// The host side of a copy out of a container.
pub enum HostTarget<'a> {
    Path(&'a Path),
    /// `-`: the tar stream itself.
    Stream(&'a mut (dyn Write + Send)),
}

/// The host side of a copy into a container.
pub enum HostSource<'a> {
    Path(&'a Path),
    /// `-`: a tar stream to extract.
    Stream(Box<dyn Read + Send + 'a>),
}

/// A path as `cp` reads it: where it points, and what its ending says.
struct CpPath {
    /// Without the trailing `/` or `/.`.
    path: String,
    /// Ends with `/.`: the directory's content, not the directory.
    contents: bool,
    /// Ends with `/` (or `/.`): must be a directory.
    dir: bool,
}

impl CpPath {
    fn parse(p: &str) -> CpPath {
        let contents = p.ends_with("/.") || p == ".";
        let dir = contents || p.ends_with('/');
        let mut path = p.trim_end_matches("/.").trim_end_matches('/').to_string();
        if path.is_empty() && p.starts_with('/') {
            path = "/".into();
        }
        CpPath {
            path,
            contents: contents || p == "/",
            dir,
        }
    }

    /// The parent directory and the last name (`None` for the root).
    fn split(&self) -> (String, Option<String>) {
        let p = self.path.trim_end_matches('/');
        match p.rsplit_once('/') {
            Some((parent, name)) if !name.is_empty() && name != "." && name != ".." => (
                if parent.is_empty() {
                    "/".into()
                } else {
                    parent.into()
                },
                Some(name.into()),
            ),
            None if !p.is_empty() && p != "." && p != ".." => (".".into(), Some(p.into())),
            _ => (p.into(), None),
        }
    }
}

fn cp_err(msg: impl Into<String>) -> EngineError {
    EngineError::Copy(msg.into())
}

/// A container's root, held open for a copy.
pub(crate) struct ContainerRoot {
    fd: OwnedFd,
    /// The directories its root is an overlay of, top first (upper, init, image layers).
    layers: Vec<PathBuf>,
    /// For a stopped container: the helper thread whose mount namespace holds the overlay;
    /// dropping the sender lets it end.
    _hold: Option<(mpsc::Sender<()>, std::thread::JoinHandle<()>)>,
    mountpoint: Option<PathBuf>,
    /// A stopped container's files stay ours (no `start`) until the copy ends.
    _lock: Option<FilesLock>,
}

impl Drop for ContainerRoot {
    fn drop(&mut self) {
        if let Some((tx, h)) = self._hold.take() {
            drop(tx);
            let _ = h.join();
        }
        if let Some(m) = &self.mountpoint {
            let _ = std::fs::remove_dir(m);
        }
    }
}

/// Opens `path` below `root`, resolved as if `root` were `/`.
fn open_in_root(root: BorrowedFd<'_>, path: &str, flags: OFlags) -> io::Result<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    loop {
        match rfs::openat2(
            root,
            rel,
            flags | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        ) {
            // The kernel asks for a retry when a rename raced the lookup.
            Err(Errno::AGAIN) | Err(Errno::INTR) => continue,
            Err(Errno::NOSYS) => {
                return Err(io::Error::other(
                    "this kernel lacks openat2 (Linux 5.6 or later is needed for cp)",
                ))
            }
            other => return other.map_err(Into::into),
        }
    }
}

/// Holds a container's files for one user: `start` (while the runtime mounts its root) and
/// `cp` of a stopped container (while its overlay is mounted for the copy) take it, so the
/// two never mount one upper directory twice. An exclusive `flock`, released on drop.
pub(crate) struct FilesLock(#[allow(dead_code)] OwnedFd);

impl Engine {
    /// Takes the container's [`FilesLock`], waiting for whoever holds it.
    pub(crate) fn lock_files(&self, rec: &ContainerRecord) -> Result<FilesLock> {
        let path = self.dir(&rec.id).join("files.lock");
        let fd = rfs::open(
            &path,
            OFlags::RDWR | OFlags::CREATE | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| super::io_err(&path)(e.into()))?;
        loop {
            match rfs::flock(&fd, rfs::FlockOperation::LockExclusive) {
                Err(Errno::INTR) => continue,
                r => r.map_err(|e| super::io_err(&path)(e.into()))?,
            }
            return Ok(FilesLock(fd));
        }
    }

    /// The root of the container's running init, when it has one: `/proc/PID/root`, once the
    /// process is known to be the container's (its cgroup names the container), so a pid
    /// that was reused after the container stopped never lends its root.
    fn live_root(&self, rec: &ContainerRecord) -> Result<Option<OwnedFd>> {
        for _ in 0..3 {
            let Some(st) = self.runtime(rec).and_then(|c| c.state().ok()) else {
                return Ok(None);
            };
            use berth_runtime::Status as R;
            let pid = match (st.status, st.pid) {
                (R::Created | R::Running | R::Paused, Some(pid)) => pid,
                _ => return Ok(None),
            };
            // The /proc directory pins the process: if it dies, reads through it fail
            // rather than reach another process that took its pid.
            let Ok(proc) = rfs::open(
                format!("/proc/{pid}"),
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ) else {
                continue;
            };
            let cgroup = rfs::openat(
                &proc,
                "cgroup",
                OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .ok()
            .and_then(|fd| std::io::read_to_string(std::fs::File::from(fd)).ok());
            // Rootless containers have no cgroup of their own: the init's start time, read
            // through the same pinned directory, names it instead.
            let ours = if super::rootless::active() {
                let start = self.runtime(rec).and_then(|c| c.init_start_time().ok());
                let stat = rfs::openat(
                    &proc,
                    "stat",
                    OFlags::RDONLY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .ok()
                .and_then(|fd| std::io::read_to_string(std::fs::File::from(fd)).ok());
                start.is_some() && stat.and_then(|s| stat_start_time(&s)) == start
            } else {
                cgroup.is_some_and(|c| c.contains(&rec.id))
            };
            if !ours {
                continue;
            }
            match rfs::openat(
                &proc,
                "root",
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => return Ok(Some(fd)),
                Err(_) => continue,
            }
        }
        match self.state(rec).status {
            Status::Running | Status::Paused => Err(cp_err(format!(
                "cannot reach the root of container {}: its process is not the one recorded",
                rec.name
            ))),
            _ => Ok(None),
        }
    }

    /// The container's root as a descriptor (see the module documentation).
    /// `writable`: a copy into it; a copy out mounts a stopped container's overlay read-only,
    /// so that unmounting it syncs nothing.
    pub(crate) fn container_root(
        &self,
        rec: &ContainerRecord,
        writable: bool,
    ) -> Result<ContainerRoot> {
        let lock = self.lock_files(rec)?;
        let upper = self.dir(&rec.id).join("upper");
        let layers: Vec<PathBuf> = std::iter::once(upper.clone())
            .chain(self.lower_dirs(rec))
            .collect();
        if let Some(fd) = self.live_root(rec)? {
            return Ok(ContainerRoot {
                fd,
                layers,
                _hold: None,
                mountpoint: None,
                _lock: None,
            });
        }
        self.check_snapshots(rec)?;
        if !rec.layers.is_empty() {
            self.init_layer(rec)?;
        }
        let dir = self.dir(&rec.id);
        let mountpoint = dir.join(format!("cp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir(&mountpoint).map_err(super::io_err(&mountpoint))?;
        let lowers = self.lower_dirs(rec);
        let work = writable.then(|| dir.join("work"));
        let mounts: Vec<(PathBuf, String, bool)> = rec
            .mounts
            .iter()
            .map(|m| (m.source.clone(), m.destination.clone(), m.read_only))
            .collect();
        let (fd_tx, fd_rx) = mpsc::channel();
        let (hold_tx, hold_rx) = mpsc::channel::<()>();
        let mp = mountpoint.clone();
        let handle = std::thread::spawn(move || {
            let r = mount_private(&mp, &lowers, &upper, work.as_deref(), &mounts);
            let ok = r.is_ok();
            let _ = fd_tx.send(r);
            if ok {
                // Holds the namespace (and so the volumes' bind mounts) until the copy ends.
                let _ = hold_rx.recv();
            }
        });
        let root = ContainerRoot {
            layers,
            fd: match fd_rx.recv() {
                Ok(Ok(fd)) => fd,
                Ok(Err(e)) => {
                    let _ = handle.join();
                    let _ = std::fs::remove_dir(&mountpoint);
                    return Err(cp_err(format!(
                        "cannot mount the stopped container's files: {e}"
                    )));
                }
                Err(_) => {
                    let _ = std::fs::remove_dir(&mountpoint);
                    return Err(cp_err("the mount helper died"));
                }
            },
            _hold: Some((hold_tx, handle)),
            mountpoint: Some(mountpoint),
            _lock: Some(lock),
        };
        Ok(root)
    }

    /// `cp CONTAINER:SRC DEST`: returns the bytes of tar moved.
    pub fn copy_from(
        &self,
        rec: &ContainerRecord,
        src: &str,
        dest: HostTarget<'_>,
        options: &CopyOptions,
    ) -> Result<u64> {
        let root = self.container_root(rec, false)?;
        let n = copy_out(root.fd.as_fd(), &root.layers, &rec.name, src, dest, options)?;
        self.journal()
            .record(container_event(rec, "archive-path").attr("path", src));
        Ok(n)
    }

    /// `cp SRC CONTAINER:DEST`: returns the bytes of tar moved.
    pub fn copy_to(
        &self,
        rec: &ContainerRecord,
        src: HostSource<'_>,
        dest: &str,
        options: &CopyOptions,
    ) -> Result<u64> {
        let root = self.container_root(rec, true)?;
        let n = copy_in(root.fd.as_fd(), &rec.name, src, dest, options)?;
        self.journal()
            .record(container_event(rec, "extract-to-dir").attr("path", dest));
        Ok(n)
    }
}

/// In a thread's own mount namespace: the overlay at `mountpoint`, the volumes bound in;
/// returns the root, open. Without `work`, the overlay is read-only (the upper directory
/// one more lower one), and its unmount syncs nothing.
fn mount_private(
    mountpoint: &Path,
    lowers: &[PathBuf],
    upper: &Path,
    work: Option<&Path>,
    mounts: &[(PathBuf, String, bool)],
) -> io::Result<OwnedFd> {
    // SAFETY: unshare and mount take no pointers we do not own; the namespace and the fs
    // attributes become this thread's alone.
    let sys = |r: libc::c_int| {
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    sys(unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_FS) })?;
    let root = CString::new("/").expect("no NUL");
    sys(unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })?;
    let c = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
    let target = c(mountpoint)?;
    if lowers.is_empty() {
        sys(unsafe {
            libc::mount(
                c(upper)?.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        })?;
    } else {
        let list: Vec<String> = lowers.iter().map(|l| l.display().to_string()).collect();
        let (data, flags) = match work {
            Some(work) => (
                format!(
                    "lowerdir={},upperdir={},workdir={}",
                    list.join(":"),
                    upper.display(),
                    work.display()
                ),
                0,
            ),
            None => (
                format!("lowerdir={}:{}", upper.display(), list.join(":")),
                libc::MS_RDONLY,
            ),
        };
        let data = CString::new(data).map_err(io::Error::other)?;
        let kind = CString::new("overlay").expect("no NUL");
        sys(unsafe {
            libc::mount(
                kind.as_ptr(),
                target.as_ptr(),
                kind.as_ptr(),
                flags,
                data.as_ptr().cast(),
            )
        })?;
    }
    let rootfd = rfs::open(
        mountpoint,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    for (source, dest, read_only) in mounts {
        // The mount point, resolved inside the root; missing ones are left alone.
        let Ok(at) = open_in_root(rootfd.as_fd(), dest, OFlags::PATH | OFlags::DIRECTORY) else {
            continue;
        };
        let at_path = CString::new(format!("/proc/self/fd/{}", at.as_raw_fd())).expect("no NUL");
        sys(unsafe {
            libc::mount(
                c(source)?.as_ptr(),
                at_path.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            )
        })?;
        if *read_only {
            // `at` is the directory under the new mount: the remount goes to the mount now
            // on top of it, reached by resolving the path again.
            let top = open_in_root(rootfd.as_fd(), dest, OFlags::PATH | OFlags::DIRECTORY)?;
            let at_path =
                CString::new(format!("/proc/self/fd/{}", top.as_raw_fd())).expect("no NUL");
            sys(unsafe {
                libc::mount(
                    std::ptr::null(),
                    at_path.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                    std::ptr::null(),
                )
            })?;
        }
    }
    Ok(rootfd)
}

/// The file at `path` (no symlink on the way) in the first of `layers` that holds it, when
/// it is the very file `seen` describes: its inode, size and modification time (the layers
/// all on one file system, where an overlay shows a file's own inode number). Else `None`,
/// and the copy reads through the container's root.
fn backing_file(layers: &[PathBuf], path: &str, seen: &rfs::Stat) -> Option<OwnedFd> {
    let rel = path.trim_start_matches('/');
    let mut dev = None;
    for layer in layers {
        let dir = rfs::open(
            layer,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let dir_dev = rfs::fstat(&dir).ok()?.st_dev;
        if *dev.get_or_insert(dir_dev) != dir_dev {
            return None;
        }
        let fd = match rfs::openat2(
            &dir,
            rel,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT
                | ResolveFlags::NO_SYMLINKS
                | ResolveFlags::NO_MAGICLINKS
                | ResolveFlags::NO_XDEV,
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => continue,
            // A whiteout, a symlink, a directory in the way: the overlay decides.
            Err(_) => return None,
        };
        let st = rfs::fstat(&fd).ok()?;
        let same = FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
            && st.st_dev == dir_dev
            && st.st_ino == seen.st_ino
            && st.st_size == seen.st_size
            && st.st_mtime == seen.st_mtime
            && st.st_mtime_nsec == seen.st_mtime_nsec;
        return same.then_some(fd);
    }
    None
}

/// What a copy reads: a directory and one of its names, or a directory's content.
enum Source {
    Entry { parent: OwnedFd, name: Vec<u8> },
    Contents(OwnedFd),
}

/// Resolves a source path inside `root`: the last name is a symlink itself unless
/// `follow`, in which case links are followed (still inside the root).
fn resolve_source(
    root: BorrowedFd<'_>,
    src: &CpPath,
    follow: bool,
    missing: &dyn Fn(&str) -> EngineError,
) -> Result<(Source, FileType)> {
    let mut path = src.path.clone();
    for _ in 0..40 {
        let probe = CpPath {
            path: path.clone(),
            contents: false,
            dir: false,
        };
        let (parent, name) = probe.split();
        let Some(name) = name else {
            let dir = open_in_root(root, &path, OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(|_| missing(&src.path))?;
            return Ok((Source::Contents(dir), FileType::Directory));
        };
        let parent_fd = open_in_root(root, &parent, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|_| missing(&src.path))?;
        let st = rfs::statat(&parent_fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|_| missing(&src.path))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        if kind == FileType::Symlink && (follow || src.dir) {
            let target = rfs::readlinkat(&parent_fd, name.as_str(), Vec::new())
                .map_err(|e| cp_err(e.to_string()))?;
            let target = target.to_string_lossy().into_owned();
            path = if target.starts_with('/') {
                target
            } else {
                format!("{}/{target}", parent.trim_end_matches('/'))
            };
            continue;
        }
        if src.dir && kind != FileType::Directory {
            return Err(cp_err(format!("lstat {}/: not a directory", src.path)));
        }
        if src.contents {
            let dir = rfs::openat(
                &parent_fd,
                name.as_str(),
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| cp_err(e.to_string()))?;
            return Ok((Source::Contents(dir), kind));
        }
        return Ok((
            Source::Entry {
                parent: parent_fd,
                name: name.into_bytes(),
            },
            kind,
        ));
    }
    Err(cp_err(format!(
        "{}: too many levels of symbolic links",
        src.path
    )))
}

/// Writes the source as a tar whose top entry is `top` (ignored for a directory's content).
fn write_source<W: Write>(
    source: Source,
    top: &str,
    owner: Option<(u32, u32)>,
    out: W,
) -> Result<u64> {
    let r = match source {
        Source::Entry { parent, name } => layer::tar_entry(parent, &name, top, owner, out),
        Source::Contents(dir) => layer::tar_contents(dir, owner, out),
    };
    r.map_err(|e| cp_err(e.to_string()))
}

/// Streams `source` as a tar into `unpack` below the directory `into`.
fn pipe_into(
    source: Source,
    top: &str,
    owner: Option<(u32, u32)>,
    into: &Path,
    options: &UnpackOptions,
) -> Result<u64> {
    let (reader, writer) = io::pipe().map_err(|e| cp_err(e.to_string()))?;
    std::thread::scope(|s| {
        let top = top.to_string();
        let w = s.spawn(move || write_source(source, &top, owner, writer));
        let unpacked = unpack_tar(reader, into, options);
        let written = w.join().expect("the tar writer does not panic");
        match (written, unpacked) {
            (_, Err(e)) => Err(unpack_err(e)),
            (Err(e), Ok(_)) => Err(e),
            (Ok(n), Ok(_)) => Ok(n),
        }
    })
}

fn unpack_err(e: UnpackError) -> EngineError {
    match &e {
        UnpackError::Write { source, .. } if source.raw_os_error() == Some(libc::EROFS) => {
            cp_err("mounted volume is marked read-only")
        }
        UnpackError::Target { source, .. } if source.raw_os_error() == Some(libc::EROFS) => {
            cp_err("mounted volume is marked read-only")
        }
        _ => cp_err(e.to_string()),
    }
}

fn base_name(p: &str) -> String {
    let t = p.trim_end_matches('/');
    t.rsplit('/').next().unwrap_or(t).to_string()
}

pub(crate) fn copy_out(
    root: BorrowedFd<'_>,
    layers: &[PathBuf],
    container: &str,
    src: &str,
    dest: HostTarget<'_>,
    options: &CopyOptions,
) -> Result<u64> {
    let s = CpPath::parse(src);
    let missing = |p: &str| {
        cp_err(format!(
            "Could not find the file {p} in container {container}"
        ))
    };
    let (source, kind) = resolve_source(root, &s, options.follow_link, &missing)?;
    let is_dir = kind == FileType::Directory;
    let owner = None;
    let dest = match dest {
        HostTarget::Stream(out) => return write_source(source, &base_name(&s.path), owner, out),
        HostTarget::Path(p) => p,
    };
    let d = CpPath::parse(&dest.to_string_lossy());
    // Files copied out belong to whoever copies them, as docker's (`-a` is for copies in).
    let unpack = UnpackOptions {
        privileged: false,
        whiteouts: false,
    };
    // A regular file goes straight to its place; anything else as a tar into `unpack`.
    let place = |source: Source, top: &str, into: &Path| -> Result<u64> {
        if kind == FileType::RegularFile {
            if let Source::Entry { parent, name } = &source {
                let backing = |st: &rfs::Stat| backing_file(layers, &s.path, st);
                let copied = layer::copy_file(parent.as_fd(), name, &backing, into, top)
                    .map_err(|e| cp_err(e.to_string()))?;
                if let Some(n) = copied {
                    return Ok(n);
                }
            }
        }
        pipe_into(source, top, owner, into, &unpack)
    };
    match std::fs::metadata(dest) {
        Ok(m) if m.is_dir() => place(source, &base_name(&s.path), dest),
        Ok(_) if is_dir => Err(cp_err("cannot copy directory")),
        Ok(_) => {
            let into = dest.parent().filter(|p| !p.as_os_str().is_empty());
            let into = into.unwrap_or(Path::new("."));
            place(source, &base_name(&d.path), into)
        }
        // docker's CLI stats the destination first: `FILE/` is not a directory.
        Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => {
            Err(cp_err(format!("stat {}: not a directory", dest.display())))
        }
        Err(_) if d.dir && !is_dir => Err(cp_err("no such directory")),
        Err(_) => {
            let into = Path::new(&d.path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf();
            if !into.is_dir() {
                return Err(cp_err("no such directory"));
            }
            match source {
                // A directory's content lands in a new directory of the destination's name.
                Source::Contents(dir) => {
                    let new = Path::new(&d.path);
                    std::fs::create_dir(new).map_err(|e| cp_err(e.to_string()))?;
                    pipe_into(Source::Contents(dir), "", owner, new, &unpack)
                }
                entry => place(entry, &base_name(&d.path), &into),
            }
        }
    }
}

pub(crate) fn copy_in(
    root: BorrowedFd<'_>,
    container: &str,
    src: HostSource<'_>,
    dest: &str,
    options: &CopyOptions,
) -> Result<u64> {
    let d = CpPath::parse(dest);
    let unpack = UnpackOptions {
        privileged: true,
        whiteouts: false,
    };
    let missing = |p: &str| {
        cp_err(format!(
            "Could not find the file {p} in container {container}"
        ))
    };
    // Where the destination is: an existing directory, an existing file, or a new name.
    let existing = open_in_root(root, &d.path, OFlags::PATH);
    let existing_kind = match &existing {
        Ok(fd) => Some(FileType::from_raw_mode(
            rfs::fstat(fd).map_err(|e| cp_err(e.to_string()))?.st_mode,
        )),
        Err(_) => None,
    };
    let into_dir = |path: &str| -> Result<OwnedFd> {
        open_in_root(root, path, OFlags::RDONLY | OFlags::DIRECTORY).map_err(|e| {
            if e.raw_os_error() == Some(libc::ENOTDIR)
                && open_in_root(root, path, OFlags::PATH).is_ok()
            {
                cp_err("extraction point is not a directory")
            } else {
                missing(path)
            }
        })
    };
    let proc_path = |fd: &OwnedFd| PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()));
    let src_path = match src {
        HostSource::Stream(r) => {
            if existing_kind != Some(FileType::Directory) {
                return Err(cp_err(format!(
                    "destination \"{container}:{dest}\" must be a directory"
                )));
            }
            let dir = into_dir(&d.path)?;
            let mut counted = Counted { inner: r, n: 0 };
            unpack_layer(&mut counted, &proc_path(&dir), &unpack).map_err(unpack_err)?;
            return Ok(counted.n);
        }
        HostSource::Path(p) => p,
    };
    let s = CpPath::parse(&src_path.to_string_lossy());
    let host_missing = |p: &str| cp_err(format!("lstat {p}: no such file or directory"));
    let host_root = rfs::open("/", OFlags::PATH | OFlags::DIRECTORY, Mode::empty())
        .map_err(|e| cp_err(e.to_string()))?;
    // The host side is the caller's own: resolved from the real root (relative paths from
    // the working directory).
    let abs = std::path::absolute(&s.path).map_err(|e| cp_err(e.to_string()))?;
    let s = CpPath {
        path: abs.to_string_lossy().into_owned(),
        ..s
    };
    let (source, kind) = resolve_source(host_root.as_fd(), &s, options.follow_link, &host_missing)?;
    let is_dir = kind == FileType::Directory;
    let owner = (!options.archive).then_some((0, 0));
    match existing_kind {
        // `FILE/` names nothing (docker's stat fails on it).
        Some(k) if d.dir && k != FileType::Directory => Err(cp_err("no such directory")),
        Some(FileType::Directory) => {
            let dir = into_dir(&d.path)?;
            pipe_into(
                source,
                &base_name(&s.path),
                owner,
                &proc_path(&dir),
                &unpack,
            )
        }
        Some(_) if is_dir => Err(cp_err("cannot copy directory")),
        Some(_) => {
            let (parent, _) = d.split();
            let dir = into_dir(&parent)?;
            pipe_into(
                source,
                &base_name(&d.path),
                owner,
                &proc_path(&dir),
                &unpack,
            )
        }
        None if d.dir => Err(cp_err("no such directory")),
        None => {
            let (parent, name) = d.split();
            let name = name.ok_or_else(|| missing(&d.path))?;
            let dir = into_dir(&parent)?;
            match source {
                Source::Contents(src_dir) => {
                    rfs::mkdirat(&dir, name.as_str(), Mode::from_raw_mode(0o755))
                        .map_err(|e| cp_err(e.to_string()))?;
                    let new = rfs::openat(
                        &dir,
                        name.as_str(),
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(|e| cp_err(e.to_string()))?;
                    pipe_into(
                        Source::Contents(src_dir),
                        "",
                        owner,
                        &proc_path(&new),
                        &unpack,
                    )
                }
                entry => pipe_into(entry, &name, owner, &proc_path(&dir), &unpack),
            }
        }
    }
}

/// Counts what passes through.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}

/// The start time in /proc/PID/stat's text (field 22, after the command in parentheses).
fn stat_start_time(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests;
