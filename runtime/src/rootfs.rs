//! The container's filesystem view, built by its init inside its own mount namespace: the root
//! (overlay of read-only lower dirs plus upper and work dir, or a plain directory), the Spec's
//! mounts in order, /dev with its device nodes, `pivot_root`, then masked and read-only paths.
//!
//! Every mount target inside the root is resolved with `secure_join`, so a symlink in an image
//! can never point a mount (or the directory created for it) outside the root.

use crate::cgroup::Layout;
use crate::error::{Context, Error, Result};
use crate::spec::MountPlan;
use crate::sys::cvt;
use std::collections::VecDeque;
use std::ffi::{CString, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// The root filesystem of a container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rootfs {
    /// An overlay: `lower` lists read-only directories, topmost first (overlayfs order);
    /// `upper` takes the container's writes; `work` is overlayfs's scratch directory on the
    /// same filesystem as `upper`. The engine owns all three (restart keeps `upper`).
    Overlay {
        lower: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        /// Mount with overlayfs's `volatile` (Linux 5.10+): no sync of the upper dir's
        /// filesystem when the overlay goes away, which otherwise flushes the whole host
        /// disk at every container exit. After a host crash such an upper dir cannot be
        /// mounted again: for containers that are removed when they exit (`--rm`).
        /// Falls back to a normal mount on kernels without it.
        volatile: bool,
    },
    /// A directory used as the root as it is (bind-mounted).
    Directory(PathBuf),
}

fn c(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap_or_default()
}

pub(crate) fn mount(
    source: Option<&Path>,
    target: &Path,
    fstype: Option<&str>,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> io::Result<()> {
    let source = source.map(c);
    let target = c(target);
    let fstype = fstype.map(|s| CString::new(s).unwrap_or_default());
    let data = data
        .filter(|d| !d.is_empty())
        .map(|s| CString::new(s).unwrap_or_default());
    // SAFETY: all pointers are NUL-terminated strings or null.
    cvt(unsafe {
        libc::mount(
            source.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            target.as_ptr(),
            fstype.as_ref().map_or(std::ptr::null(), |s| s.as_ptr()),
            flags,
            data.as_ref()
                .map_or(std::ptr::null(), |s| s.as_ptr() as *const libc::c_void),
        )
    })?;
    Ok(())
}

/// Resolves `path` as if `root` were `/`: symlinks are followed inside the root, `..` stops
/// at the root. The result is a host path below `root`.
pub(crate) fn secure_join(root: &Path, path: &Path) -> Result<PathBuf> {
    let mut queue: VecDeque<OsString> = path
        .components()
        .filter_map(|c| match c {
            Component::Normal(n) => Some(n.to_os_string()),
            Component::ParentDir => Some("..".into()),
            _ => None,
        })
        .collect();
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = queue.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = resolved.join(&part);
        let full = root.join(&candidate);
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.file_type().is_symlink() => {
                links += 1;
                if links > 255 {
                    return Err(Error::Setup(format!(
                        "too many symlinks in {}",
                        path.display()
                    )));
                }
                let target =
                    std::fs::read_link(&full).ctx(|| format!("readlink {}", full.display()))?;
                if target.is_absolute() {
                    resolved = PathBuf::new();
                }
                let mut front: VecDeque<OsString> = target
                    .components()
                    .filter_map(|c| match c {
                        Component::Normal(n) => Some(n.to_os_string()),
                        Component::ParentDir => Some("..".into()),
                        _ => None,
                    })
                    .collect();
                front.extend(queue);
                queue = front;
            }
            _ => resolved = candidate,
        }
    }
    Ok(root.join(resolved))
}

/// Mounts the root filesystem on `mountpoint`.
pub(crate) fn mount_rootfs(rootfs: &Rootfs, mountpoint: &Path) -> Result<()> {
    match rootfs {
        Rootfs::Directory(dir) => mount(
            Some(dir),
            mountpoint,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .ctx(|| format!("bind {} as root", dir.display())),
        Rootfs::Overlay {
            lower,
            upper,
            work,
            volatile,
        } => {
            if lower.is_empty() {
                return Err(Error::InvalidSpec(
                    "an overlay needs at least one lower dir".into(),
                ));
            }
            let list = |dirs: &[String]| dirs.join(":");
            let lowers: Vec<String> = lower.iter().map(|p| p.display().to_string()).collect();
            let mut data = format!(
                "lowerdir={},upperdir={},workdir={}",
                list(&lowers),
                upper.display(),
                work.display()
            );
            // mount(2) takes one page of options: with many layers, name them relative to
            // their common parent, which becomes our working directory for the call.
            if data.len() > 4000 {
                let mut common = lower[0].parent().map(Path::to_path_buf).unwrap_or_default();
                while !lower.iter().all(|l| l.starts_with(&common)) {
                    common.pop();
                }
                std::env::set_current_dir(&common).ctx(|| format!("chdir {}", common.display()))?;
                let rel: Vec<String> = lower
                    .iter()
                    .map(|l| l.strip_prefix(&common).unwrap_or(l).display().to_string())
                    .collect();
                data = format!(
                    "lowerdir={},upperdir={},workdir={}",
                    list(&rel),
                    upper.display(),
                    work.display()
                );
            }
            let overlay = |data: &str| {
                let mount = |data: &str| {
                    mount(
                        Some(Path::new("overlay")),
                        mountpoint,
                        Some("overlay"),
                        0,
                        Some(data),
                    )
                };
                if *volatile {
                    match mount(&format!("{data},volatile")) {
                        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                        other => return other,
                    }
                }
                mount(data)
            };
            if crate::userns::rootless().is_none() {
                return overlay(&data).ctx(|| format!("mount overlay ({data})"));
            }
            // In a user namespace overlayfs cannot use trusted.* xattrs: it keeps (and reads
            // the image's opaque directories from) user.overlay.* instead. Where the kernel
            // refuses it, fuse-overlayfs serves the same directories.
            use crate::userns::OverlayDriver;
            let forced = crate::userns::forced_overlay();
            if forced == Some(OverlayDriver::Fuse) {
                return fuse_overlay(&data, mountpoint);
            }
            let kernel = format!("{data},userxattr");
            match overlay(&kernel) {
                Err(e) if forced.is_none() && crate::userns::overlay_refused(&e) => {
                    fuse_overlay(&data, mountpoint).map_err(|fuse| {
                        Error::Setup(format!(
                            "the kernel refused its overlay here ({e}) and fuse-overlayfs \
                             failed too: {fuse}"
                        ))
                    })
                }
                other => other.ctx(|| format!("mount overlay ({kernel})")),
            }
        }
    }
}

/// Mounts the overlay with fuse-overlayfs (rootless, on kernels whose overlayfs a user
/// namespace may not mount). Its daemon stays in the container's pid namespace and ends with
/// it; the mount ends with the container's mount namespace.
///
/// `pivot_root` gives the new root to every process whose root is the old one: the daemon
/// too, whose own paths (the layers, /proc/self/fd) would then resolve through the overlay it
/// serves, and it would wait on itself. So it gets a root of its own: a private recursive
/// bind of `/` beside the mountpoint, which stays alive for it when the old root is detached.
/// Seen from there the mountpoint would be the copy's, so we mount the fuse connection here
/// ourselves and hand the daemon its descriptor (`/dev/fd/N`, as libfuse takes it).
fn fuse_overlay(data: &str, mountpoint: &Path) -> Result<()> {
    let host_root = mountpoint.with_file_name("fuse-root");
    std::fs::create_dir_all(&host_root).ctx(|| format!("mkdir {}", host_root.display()))?;
    mount(
        Some(Path::new("/")),
        &host_root,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
    )
    .ctx(|| format!("bind / at {}", host_root.display()))?;
    mount(
        None,
        &host_root,
        None,
        libc::MS_PRIVATE | libc::MS_REC,
        None,
    )
    .ctx(|| format!("make {} private", host_root.display()))?;
    // Many layers are named relative to the working directory (see above): keep it.
    let cwd = std::env::current_dir().ctx(|| "getcwd".into())?;
    let c_path = |p: &Path| {
        CString::new(p.as_os_str().as_encoded_bytes())
            .map_err(|_| Error::Setup(format!("{} has a NUL", p.display())))
    };
    let (root, cwd) = (c_path(&host_root)?, c_path(&cwd)?);
    // SAFETY: open(2) of the fuse device; the fd is ours until the daemon has it.
    let fd = unsafe { libc::open(c"/dev/fuse".as_ptr(), libc::O_RDWR) };
    if fd < 0 {
        return Err(Error::Setup(format!(
            "open /dev/fuse: {} (fuse-overlayfs needs it open to users, 0666 as udev makes it)",
            io::Error::last_os_error()
        )));
    }
    // SAFETY: we own fd and close it once.
    let fuse = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let options =
        format!("fd={fd},rootmode=40000,user_id=0,group_id=0,default_permissions,allow_other");
    mount(
        Some(Path::new("fuse-overlayfs")),
        mountpoint,
        Some("fuse.fuse-overlayfs"),
        libc::MS_NODEV | libc::MS_NOATIME,
        Some(&options),
    )
    .ctx(|| format!("mount fuse at {}", mountpoint.display()))?;
    let mut cmd = std::process::Command::new("fuse-overlayfs");
    cmd.arg("-o")
        .arg(data)
        .arg(format!("/dev/fd/{fd}"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null());
    // SAFETY: chroot(2), chdir(2) and fcntl(2) between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            if libc::chroot(root.as_ptr()) != 0
                || libc::chdir(cwd.as_ptr()) != 0
                || libc::fcntl(fd, libc::F_SETFD, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().map_err(|e| {
        Error::Setup(format!(
            "cannot run fuse-overlayfs ({e}): install Debian's fuse-overlayfs"
        ))
    })?;
    drop(fuse);
    if !out.status.success() {
        return Err(Error::Setup(format!(
            "fuse-overlayfs ({data}): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn create_target(target: &Path, dir: bool) -> Result<()> {
    if dir {
        std::fs::create_dir_all(target).ctx(|| format!("mkdir {}", target.display()))
    } else {
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p).ctx(|| format!("mkdir {}", p.display()))?;
        }
        if std::fs::symlink_metadata(target).is_err() {
            std::fs::File::create(target).ctx(|| format!("create {}", target.display()))?;
        }
        Ok(())
    }
}

/// Mounts one entry of the Spec's mounts below `root`.
pub(crate) fn mount_one(root: &Path, m: &MountPlan, layout: &Layout) -> Result<()> {
    let target = secure_join(root, &m.dest)?;
    if m.fstype == "cgroup" || m.fstype == "cgroup2" {
        if crate::userns::rootless().is_some() {
            // A rootless container has no cgroup of its own and may not mount the host's
            // hierarchies: its /sys/fs/cgroup stays an empty directory.
            return create_target(&target, true);
        }
        return mount_cgroups(&target, m, layout);
    }
    if m.bind {
        let meta = std::fs::metadata(&m.source).map_err(|e| {
            Error::Setup(format!(
                "bind source {} does not exist: {e}",
                m.source.display()
            ))
        })?;
        create_target(&target, meta.is_dir())?;
        if m.copy_up && meta.is_dir() && dir_is_empty(&m.source)? {
            copy_tree(&target, &m.source).ctx(|| {
                format!(
                    "copy the image's {} into the volume {}",
                    m.dest.display(),
                    m.source.display()
                )
            })?;
        }
        mount(
            Some(&m.source),
            &target,
            None,
            libc::MS_BIND | (m.flags & libc::MS_REC),
            None,
        )
        .ctx(|| format!("bind {} on {}", m.source.display(), m.dest.display()))?;
        let extra = m.flags & !(libc::MS_BIND | libc::MS_REC | libc::MS_REMOUNT);
        if extra != 0 {
            remount_bind(&target, extra)
                .ctx(|| format!("remount {} with its options", m.dest.display()))?;
        }
    } else {
        create_target(&target, true)?;
        let mounted = mount(
            Some(&m.source),
            &target,
            Some(&m.fstype),
            m.flags,
            Some(&m.data),
        );
        match mounted {
            // A user namespace may mount sysfs only with a network namespace of its own
            // (`--network host`): the host's /sys then, read-only, as runc does rootless.
            Err(e)
                if e.raw_os_error() == Some(libc::EPERM)
                    && m.fstype == "sysfs"
                    && crate::userns::rootless().is_some() =>
            {
                mount(
                    Some(Path::new("/sys")),
                    &target,
                    None,
                    libc::MS_BIND | libc::MS_REC,
                    None,
                )
                .ctx(|| "bind the host's /sys".into())?;
                remount_bind(&target, m.flags | libc::MS_RDONLY)
                    .ctx(|| "remount /sys read-only".into())?;
            }
            other => other.ctx(|| format!("mount {} on {}", m.fstype, m.dest.display()))?,
        }
    }
    if m.propagation != 0 {
        mount(None, &target, None, m.propagation, None)
            .ctx(|| format!("set propagation of {}", m.dest.display()))?;
    }
    Ok(())
}

/// Remounts the bind mount `target` with `flags` (MS_RDONLY, MS_NOSUID, ...). In a user
/// namespace the flags a mount was given by its owner are locked (EPERM if one is dropped):
/// they are kept, as runc keeps them.
fn remount_bind(target: &Path, flags: libc::c_ulong) -> io::Result<()> {
    let base = libc::MS_BIND | libc::MS_REMOUNT;
    match mount(None, target, None, base | flags, None) {
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
            let st = nix::sys::statvfs::statvfs(target)?;
            let locked = st.flags().bits() as libc::c_ulong
                & (libc::MS_RDONLY
                    | libc::MS_NOSUID
                    | libc::MS_NODEV
                    | libc::MS_NOEXEC
                    | libc::MS_NOATIME
                    | libc::MS_NODIRATIME
                    | libc::MS_RELATIME);
            mount(None, target, None, base | flags | locked, None)
        }
        other => other,
    }
}

fn dir_is_empty(dir: &Path) -> Result<bool> {
    Ok(std::fs::read_dir(dir)
        .ctx(|| format!("read {}", dir.display()))?
        .next()
        .is_none())
}

/// Copies the tree under `from` into the existing directory `to` as `cp -a` would, without
/// following any symlink: files, directories, symlinks, device nodes, fifos and sockets keep
/// their mode, owner and modification time; hard links inside the tree stay hard links.
/// Extended attributes are not copied.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut links: std::collections::HashMap<(u64, u64), PathBuf> = Default::default();
    let mut dirs = Vec::new();
    let mut pending = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src_dir, dst_dir)) = pending.pop() {
        for entry in std::fs::read_dir(&src_dir)? {
            let entry = entry?;
            let (src, dst) = (entry.path(), dst_dir.join(entry.file_name()));
            let meta = std::fs::symlink_metadata(&src)?;
            let kind = meta.file_type();
            if !kind.is_dir() && meta.nlink() > 1 {
                if let Some(first) = links.get(&(meta.dev(), meta.ino())) {
                    std::fs::hard_link(first, &dst)?;
                    continue;
                }
                links.insert((meta.dev(), meta.ino()), dst.clone());
            }
            if kind.is_dir() {
                std::fs::create_dir(&dst)?;
                pending.push((src, dst.clone()));
                // Modes and times once the directory is filled (a read-only one could not
                // take its entries, and each entry would touch its mtime).
                dirs.push((dst, meta));
                continue;
            }
            if kind.is_symlink() {
                std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
            } else if kind.is_file() {
                let mut input = std::fs::File::open(&src)?;
                let mut output = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&dst)?;
                io::copy(&mut input, &mut output)?;
            } else {
                let path = c(&dst);
                // SAFETY: a NUL-terminated path; mknod only creates the node.
                cvt(unsafe { libc::mknod(path.as_ptr(), meta.mode(), meta.rdev()) })?;
            }
            set_owner_mode_time(&dst, &meta)?;
        }
    }
    for (dst, meta) in dirs.iter().rev() {
        set_owner_mode_time(dst, meta)?;
    }
    Ok(())
}

/// Gives `path` (not followed if a symlink) the owner, mode and modification time in `meta`.
fn set_owner_mode_time(path: &Path, meta: &std::fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    std::os::unix::fs::lchown(path, Some(meta.uid()), Some(meta.gid()))?;
    if !meta.file_type().is_symlink() {
        // After the chown, which clears set-id bits.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    let times = [
        libc::timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec(),
        },
        libc::timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec(),
        },
    ];
    let p = c(path);
    // SAFETY: a NUL-terminated path and two timespecs, as utimensat expects.
    cvt(unsafe {
        libc::utimensat(
            libc::AT_FDCWD,
            p.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// /sys/fs/cgroup inside the container: cgroup2 on a v2 host; else a tmpfs holding each v1
/// hierarchy (and the hybrid `unified` one). With a cgroup namespace each shows the
/// container's own cgroup as its root.
fn mount_cgroups(target: &Path, m: &MountPlan, layout: &Layout) -> Result<()> {
    create_target(target, true)?;
    let flags = m.flags & !libc::MS_BIND;
    if layout.v1.is_empty() {
        return mount(
            Some(Path::new("cgroup2")),
            target,
            Some("cgroup2"),
            flags,
            None,
        )
        .ctx(|| "mount cgroup2".into());
    }
    let tmpfs_flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mount(
        Some(Path::new("tmpfs")),
        target,
        Some("tmpfs"),
        tmpfs_flags,
        Some("mode=755"),
    )
    .ctx(|| "mount tmpfs for cgroups".into())?;
    for h in &layout.v1 {
        let Some(name) = h.mountpoint.file_name() else {
            continue;
        };
        let dir = target.join(name);
        create_target(&dir, true)?;
        mount(
            Some(Path::new("cgroup")),
            &dir,
            Some("cgroup"),
            flags,
            Some(&h.controllers.join(",")),
        )
        .ctx(|| format!("mount cgroup {}", h.controllers.join(",")))?;
    }
    if let Some((mp, _)) = &layout.v2 {
        if let Some(name) = mp.file_name() {
            let dir = target.join(name);
            create_target(&dir, true)?;
            mount(
                Some(Path::new("cgroup2")),
                &dir,
                Some("cgroup2"),
                flags,
                None,
            )
            .ctx(|| "mount cgroup2".into())?;
        }
    }
    if flags & libc::MS_RDONLY != 0 {
        mount(
            None,
            target,
            None,
            libc::MS_REMOUNT | libc::MS_RDONLY | tmpfs_flags,
            Some("mode=755"),
        )
        .ctx(|| "remount cgroup tmpfs read-only".into())?;
    }
    Ok(())
}

/// A device node to create in the container's /dev.
#[derive(Clone, Debug)]
pub(crate) struct Device {
    pub path: PathBuf,
    pub kind: libc::mode_t,
    pub major: u32,
    pub minor: u32,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

/// The devices every container gets, as runc gives them.
pub(crate) fn default_devices() -> Vec<Device> {
    [
        ("null", 1, 3),
        ("zero", 1, 5),
        ("full", 1, 7),
        ("random", 1, 8),
        ("urandom", 1, 9),
        ("tty", 5, 0),
    ]
    .into_iter()
    .map(|(n, major, minor)| Device {
        path: PathBuf::from("/dev").join(n),
        kind: libc::S_IFCHR,
        major,
        minor,
        mode: 0o666,
        uid: None,
        gid: None,
    })
    .collect()
}

pub(crate) fn create_devices(root: &Path, devices: &[Device], with_links: bool) -> Result<()> {
    for d in devices {
        let target = secure_join(root, &d.path)?;
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p).ctx(|| format!("mkdir {}", p.display()))?;
        }
        let _ = std::fs::remove_file(&target);
        if crate::userns::rootless().is_some() {
            bind_host_device(d, &target)?;
            continue;
        }
        let path = c(&target);
        // SAFETY: valid path; mknod/chown are plain system calls.
        unsafe {
            cvt(libc::mknod(
                path.as_ptr(),
                d.kind | d.mode,
                libc::makedev(d.major, d.minor),
            ))
            .ctx(|| format!("mknod {}", d.path.display()))?;
            if d.uid.is_some() || d.gid.is_some() {
                cvt(libc::chown(
                    path.as_ptr(),
                    d.uid.unwrap_or(u32::MAX),
                    d.gid.unwrap_or(u32::MAX),
                ))
                .ctx(|| format!("chown {}", d.path.display()))?;
            }
        }
    }
    if with_links {
        let dev = root.join("dev");
        let mut links = vec![
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
            ("ptmx", "pts/ptmx"),
        ];
        if Path::new("/proc/kcore").exists() {
            links.push(("core", "/proc/kcore"));
        }
        for (name, to) in links {
            let at = dev.join(name);
            let _ = std::fs::remove_file(&at);
            std::os::unix::fs::symlink(to, &at).ctx(|| format!("symlink /dev/{name}"))?;
        }
    }
    Ok(())
}

/// A user namespace may not make device nodes: the host's node of the same path and number
/// is bind-mounted instead, as runc and podman do rootless.
fn bind_host_device(d: &Device, target: &Path) -> Result<()> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let host = &d.path;
    let same = std::fs::metadata(host).is_ok_and(|m| {
        let kind = m.file_type();
        let kind_ok = if d.kind == libc::S_IFBLK {
            kind.is_block_device()
        } else {
            kind.is_char_device()
        };
        kind_ok && m.rdev() == libc::makedev(d.major, d.minor)
    });
    if !same {
        return Err(Error::Setup(format!(
            "device {} ({}:{}): a rootless container can only have the host's own nodes",
            d.path.display(),
            d.major,
            d.minor
        )));
    }
    std::fs::File::create(target).ctx(|| format!("create {}", target.display()))?;
    mount(Some(host), target, None, libc::MS_BIND, None)
        .ctx(|| format!("bind the host's {}", host.display()))
}

/// pivot_root into `new_root` and detach the old root, runc's way (no temporary directory).
pub(crate) fn pivot_root(new_root: &Path) -> Result<()> {
    let open_dir = |p: &Path| -> Result<std::fs::File> {
        std::fs::File::open(p).ctx(|| format!("open {}", p.display()))
    };
    use std::os::fd::AsRawFd;
    let old = open_dir(Path::new("/"))?;
    let new = open_dir(new_root)?;
    let dot = CString::new(".").unwrap();
    // SAFETY: plain system calls on fds we hold.
    unsafe {
        cvt(libc::fchdir(new.as_raw_fd())).ctx(|| "fchdir new root".into())?;
        cvt(libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) as i32)
            .ctx(|| "pivot_root".into())?;
        cvt(libc::fchdir(old.as_raw_fd())).ctx(|| "fchdir old root".into())?;
    }
    mount(
        None,
        Path::new("."),
        None,
        libc::MS_SLAVE | libc::MS_REC,
        None,
    )
    .ctx(|| "make old root rslave".into())?;
    // SAFETY: plain system calls.
    unsafe {
        cvt(libc::umount2(dot.as_ptr(), libc::MNT_DETACH)).ctx(|| "detach old root".into())?;
        let slash = CString::new("/").unwrap();
        cvt(libc::chdir(slash.as_ptr())).ctx(|| "chdir /".into())?;
    }
    Ok(())
}

/// Hides each path that exists: a directory under an empty read-only tmpfs, a file under
/// /dev/null. Runs after pivot_root.
pub(crate) fn mask_paths(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        match std::fs::metadata(p) {
            Err(_) => continue,
            Ok(m) if m.is_dir() => mount(
                Some(Path::new("tmpfs")),
                p,
                Some("tmpfs"),
                libc::MS_RDONLY,
                None,
            ),
            Ok(_) => mount(Some(Path::new("/dev/null")), p, None, libc::MS_BIND, None),
        }
        .ctx(|| format!("mask {}", p.display()))?;
    }
    Ok(())
}

/// Makes each path that exists read-only. Runs after pivot_root.
pub(crate) fn readonly_paths(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        if std::fs::symlink_metadata(p).is_err() {
            continue;
        }
        mount(Some(p), p, None, libc::MS_BIND | libc::MS_REC, None)
            .ctx(|| format!("bind {} read-only", p.display()))?;
        let flags = libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
        remount_bind(p, flags).ctx(|| format!("remount {} read-only", p.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_stays_inside() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("a/b")).unwrap();
        std::os::unix::fs::symlink("/etc", r.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../../..", r.join("a/up")).unwrap();
        std::os::unix::fs::symlink("b", r.join("a/rel")).unwrap();
        assert_eq!(
            secure_join(r, Path::new("/abs/x")).unwrap(),
            r.join("etc/x")
        );
        assert_eq!(
            secure_join(r, Path::new("/a/up/etc")).unwrap(),
            r.join("etc")
        );
        assert_eq!(secure_join(r, Path::new("/../../x")).unwrap(), r.join("x"));
        assert_eq!(
            secure_join(r, Path::new("/a/rel/c")).unwrap(),
            r.join("a/b/c")
        );
        std::os::unix::fs::symlink("loop", r.join("loop")).unwrap();
        assert!(secure_join(r, Path::new("/loop")).is_err());
    }
}
