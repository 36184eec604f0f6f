//! Rootless operation: an ordinary user's berth runs inside a user namespace of its own, as
//! podman does.
//!
//! The namespace maps the user to root (`0 → uid`) and the subordinate ids of /etc/subuid and
//! /etc/subgid to 1 and up, through the setuid helpers `newuidmap`/`newgidmap` (Debian's
//! `uidmap`). It is kept alive by a *pause process* (`berth-pause`, pid in
//! `<runtime dir>/pause.pid`) and every berth command of that user joins it with `setns` before
//! it starts any thread ([`enter`]), so every command, monitor and container of the user lives
//! in the same namespace: `exec` joins a container's namespaces, `kill` signals its processes,
//! and files unpacked with their owners (uid 1000 in an image is `subuid start + 999` on the
//! host) keep them.
//!
//! Inside, the process is uid 0 with every capability over what the namespace owns, and none
//! over the host: the kernel refuses device nodes, cgroup v1 writes, host mounts and files the
//! user does not own. [`rootless`] tells the rest of the runtime it is in this mode (the
//! namespace's uid map does not map root to root) and where the user's runtime directory is.

use crate::error::{Context, Error, Result};
use crate::sys;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// What a rootless process knows of its namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rootless {
    /// The user's uid on the host (root inside the namespace).
    pub host_uid: u32,
    /// The user's runtime directory: `$XDG_RUNTIME_DIR/berth`, else `/run/user/UID/berth`,
    /// else `$TMPDIR/berth-UID` (made 0700 and checked to be the user's own).
    pub run_dir: PathBuf,
}

/// The overlay a rootless container's root is mounted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayDriver {
    /// The kernel's overlayfs, which user namespaces may mount since Linux 5.11.
    Kernel,
    /// `fuse-overlayfs` (Debian's package of that name), where the kernel refuses its own:
    /// older kernels, or upper directories on a filesystem overlayfs cannot write to (such as
    /// another overlay, when berth itself runs in a container).
    Fuse,
}

impl OverlayDriver {
    pub fn as_str(self) -> &'static str {
        match self {
            OverlayDriver::Kernel => "overlay",
            OverlayDriver::Fuse => "fuse-overlayfs",
        }
    }
}

/// The overlay `$BERTH_ROOTLESS_OVERLAY` (`overlay` or `fuse-overlayfs`) asks for, if any.
pub fn forced_overlay() -> Option<OverlayDriver> {
    match std::env::var("BERTH_ROOTLESS_OVERLAY").as_deref() {
        Ok("fuse-overlayfs") => Some(OverlayDriver::Fuse),
        Ok("overlay") => Some(OverlayDriver::Kernel),
        _ => None,
    }
}

/// Whether a failed mount of the kernel's overlay says that the kernel will not mount it
/// here (no overlay in a user namespace before Linux 5.11: `EPERM`; no `userxattr`, or an
/// upper directory on a filesystem it cannot use, such as another overlay: `EINVAL`; no
/// overlayfs at all: `ENODEV`), rather than a fault of the layers.
pub(crate) fn overlay_refused(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::EINVAL | libc::ENODEV | libc::EOPNOTSUPP)
    )
}

/// The overlay a rootless container whose upper directory is on the filesystem of `dir` gets:
/// the one `$BERTH_ROOTLESS_OVERLAY` asks for, else the kernel's when it mounts there (a child
/// process tries it, with `userxattr`, in a mount namespace of its own), else fuse-overlayfs.
/// A container's own mount decides the same way: it falls back to fuse-overlayfs when the
/// kernel refuses its overlay.
pub fn overlay_driver(dir: &Path) -> OverlayDriver {
    forced_overlay().unwrap_or_else(|| match kernel_overlay_mounts(dir) {
        Ok(()) => OverlayDriver::Kernel,
        Err(_) => OverlayDriver::Fuse,
    })
}

/// Mounts the kernel's overlay (`userxattr`) on empty directories made in `dir`, in a child
/// in a mount namespace of its own (the mount goes with it); `Err` is the mount's error.
fn kernel_overlay_mounts(dir: &Path) -> std::io::Result<()> {
    struct Probe(PathBuf);
    impl Drop for Probe {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let probe = Probe(dir.join(format!(".overlay-probe-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&probe.0);
    for d in ["", "l", "u", "w", "m"] {
        std::fs::create_dir(probe.0.join(d))?;
    }
    let c = |s: String| std::ffi::CString::new(s).map_err(std::io::Error::other);
    let p = |d: &str| probe.0.join(d).display().to_string();
    let target = c(p("m"))?;
    let data = c(format!(
        "lowerdir={},upperdir={},workdir={},userxattr",
        p("l"),
        p("u"),
        p("w")
    ))?;
    let pid = sys::fork()?;
    if pid == 0 {
        // SAFETY: system calls only, on strings made before the fork; then _exit.
        unsafe {
            let ok = libc::unshare(libc::CLONE_NEWNS) == 0
                && libc::mount(
                    std::ptr::null(),
                    c"/".as_ptr(),
                    std::ptr::null(),
                    libc::MS_REC | libc::MS_PRIVATE,
                    std::ptr::null(),
                ) == 0
                && libc::mount(
                    c"overlay".as_ptr(),
                    target.as_ptr(),
                    c"overlay".as_ptr(),
                    0,
                    data.as_ptr().cast(),
                ) == 0;
            sys::exit_now(if ok { 0 } else { *libc::__errno_location() })
        }
    }
    match sys::wait_child(pid, 0)? {
        Some((0, None)) => Ok(()),
        Some((errno, None)) => Err(std::io::Error::from_raw_os_error(errno)),
        _ => Err(std::io::Error::other("the overlay probe died")),
    }
}

/// How [`enter`] left the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entered {
    /// The caller is root on the host: nothing to do.
    Root,
    /// The caller joined (or made) the user's namespace.
    Joined,
    /// The caller was already inside a user namespace (a child of a joined berth).
    Inside,
}

/// One id range of /etc/subuid or /etc/subgid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubIds {
    pub start: u32,
    pub count: u32,
}

fn id_map(file: &str) -> Vec<(u32, u32, u32)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace().map(|n| n.parse::<u32>().ok());
            Some((f.next()??, f.next()??, f.next()??))
        })
        .collect()
}

/// This process's rootless mode: `Some` when its user namespace does not map root to root
/// (an ordinary user's berth after [`enter`], or any process it forked), `None` for root.
pub fn rootless() -> Option<&'static Rootless> {
    static ONCE: OnceLock<Option<Rootless>> = OnceLock::new();
    ONCE.get_or_init(|| {
        let map = id_map("/proc/self/uid_map");
        let euid = rustix_euid();
        let host_uid = if map.is_empty() {
            euid
        } else {
            // Our uid as the host sees it.
            map.iter()
                .find(|(inside, _, n)| euid >= *inside && euid - inside < *n)
                .map(|(inside, outside, _)| outside + (euid - inside))?
        };
        if host_uid == 0 {
            return None;
        }
        Some(Rootless {
            host_uid,
            run_dir: run_dir(host_uid),
        })
    })
    .as_ref()
}

fn rustix_euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

fn run_dir(uid: u32) -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_RUNTIME_DIR").filter(|x| !x.is_empty()) {
        return PathBuf::from(x).join("berth");
    }
    let user_run = PathBuf::from(format!("/run/user/{uid}"));
    if std::fs::metadata(&user_run).is_ok_and(|m| m.is_dir()) {
        return user_run.join("berth");
    }
    std::env::temp_dir().join(format!("berth-{uid}"))
}

/// Makes `dir` (0700) or checks that it is a directory of ours that nobody else can enter: a
/// runtime directory in a shared /tmp could otherwise be someone else's trap.
fn private_dir(dir: &Path) -> Result<()> {
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) => return Err(Error::io(format!("create {}", dir.display()), e)),
    }
    let meta = std::fs::symlink_metadata(dir).ctx(|| format!("stat {}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != rustix_euid() {
        return Err(Error::Rootless(format!(
            "{} is not a directory of this user's: remove it, or set XDG_RUNTIME_DIR",
            dir.display()
        )));
    }
    if meta.mode() & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .ctx(|| format!("chmod {}", dir.display()))?;
    }
    Ok(())
}

/// The ranges of `file` (/etc/subuid or /etc/subgid) for the user `name` or its number `id`,
/// in the file's order (shadow-utils' format: `name:start:count` or `id:start:count`).
pub fn sub_ids(file: &Path, name: &str, id: u32) -> Vec<SubIds> {
    let text = std::fs::read_to_string(file).unwrap_or_default();
    let id = id.to_string();
    text.lines()
        .filter_map(|l| {
            let mut f = l.trim().split(':');
            let (who, start, count) = (f.next()?, f.next()?, f.next()?);
            if who != name && who != id {
                return None;
            }
            let (start, count) = (start.parse().ok()?, count.parse::<u32>().ok()?);
            (count > 0).then_some(SubIds { start, count })
        })
        .collect()
}

/// The mapping arguments of newuidmap/newgidmap: `0 ID 1`, then the ranges from 1 up.
fn map_args(id: u32, ranges: &[SubIds]) -> Vec<String> {
    let mut args = vec!["0".to_string(), id.to_string(), "1".to_string()];
    let mut next = 1u32;
    for r in ranges {
        args.extend([next.to_string(), r.start.to_string(), r.count.to_string()]);
        next = next.saturating_add(r.count);
    }
    args
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string())
}

/// Joins the user's namespace, making it (and its pause process) first if there is none.
/// Call it while the process has one thread only (the kernel refuses `setns` into a user
/// namespace otherwise): first thing in `main`.
pub fn enter() -> Result<Entered> {
    let euid = rustix_euid();
    let map = id_map("/proc/self/uid_map");
    let initial = map.len() == 1 && map[0] == (0, 0, u32::MAX);
    if !initial {
        return Ok(Entered::Inside);
    }
    if euid == 0 {
        return Ok(Entered::Root);
    }
    let dir = run_dir(euid);
    private_dir(&dir)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join("pause.lock"))
        .ctx(|| format!("open {}", dir.join("pause.lock").display()))?;
    nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::io("lock pause.lock", e.into()))
        .and_then(|_held| {
            let pid_file = dir.join("pause.pid");
            let pid = match alive_pause(&pid_file) {
                Some(pid) => pid,
                None => {
                    let pid = start_pause(euid)?;
                    let start = sys::proc_stat(pid).map_or(0, |(_, s)| s);
                    std::fs::write(&pid_file, format!("{pid} {start}\n"))
                        .ctx(|| format!("write {}", pid_file.display()))?;
                    pid
                }
            };
            join(pid)
        })?;
    raise_open_files();
    Ok(Entered::Joined)
}

/// A user's session starts with a soft limit of 1024 open files (root's here is far higher),
/// and unpacking a layer holds a descriptor per directory level: raise the soft limit to the
/// hard one, as podman does.
fn raise_open_files() {
    // SAFETY: getrlimit/setrlimit on a struct we own.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// The pause process named by `pid_file`, when it still runs (same pid and start time).
fn alive_pause(pid_file: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let mut f = text.split_whitespace();
    let pid: i32 = f.next()?.parse().ok()?;
    let start: u64 = f.next()?.parse().ok()?;
    sys::process_alive(pid, start).then_some(pid)
}

fn join(pid: i32) -> Result<()> {
    let ns = format!("/proc/{pid}/ns/user");
    let f = std::fs::File::open(&ns).ctx(|| format!("open {ns}"))?;
    // SAFETY: setns on an fd we hold; the process has one thread (see `enter`).
    sys::cvt(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWUSER) })
        .ctx(|| "join the user namespace of berth's pause process".into())?;
    // Host groups other than ours are not mapped: drop them, as podman does.
    // SAFETY: setgroups with an empty list.
    unsafe { libc::setgroups(0, std::ptr::null()) };
    Ok(())
}

/// Forks the pause process into a new user namespace, maps it with newuidmap/newgidmap and
/// returns its pid. The pause process is a grandchild (its parent exits at once), in a session
/// of its own, with no fd of ours.
fn start_pause(uid: u32) -> Result<i32> {
    // SAFETY: getgid cannot fail.
    let gid = unsafe { libc::getgid() };
    let name = user_name(uid);
    let uids = sub_ids(Path::new("/etc/subuid"), &name, uid);
    if uids.is_empty() {
        return Err(Error::Rootless(format!(
            "no subordinate uids for {name} in /etc/subuid: rootless containers need a range \
             (as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {name})"
        )));
    }
    let gids = sub_ids(Path::new("/etc/subgid"), &name, uid);
    if gids.is_empty() {
        return Err(Error::Rootless(format!(
            "no subordinate gids for {name} in /etc/subgid: rootless containers need a range \
             (as root: usermod --add-subgids 100000-165535 {name})"
        )));
    }
    for helper in ["newuidmap", "newgidmap"] {
        if which(helper).is_none() {
            return Err(Error::Rootless(format!(
                "{helper} is not installed: rootless containers need it (Debian: apt-get install uidmap)"
            )));
        }
    }
    // to_parent: the pause process's pid, then one byte once it has unshared.
    // to_child: one byte once the maps are written.
    let (up_r, up_w) = sys::pipe().ctx(|| "pipe".into())?;
    let (down_r, down_w) = sys::pipe().ctx(|| "pipe".into())?;
    let middle = sys::fork().ctx(|| "fork".into())?;
    if middle == 0 {
        drop((up_r, down_w));
        // SAFETY: setsid is a plain system call.
        unsafe { libc::setsid() };
        match sys::fork() {
            Ok(0) => pause_main(up_w.as_raw_fd(), down_r.as_raw_fd()),
            Ok(pid) => {
                let _ = sys::write_all(up_w.as_raw_fd(), &pid.to_ne_bytes());
                sys::exit_now(0)
            }
            Err(_) => sys::exit_now(1),
        }
    }
    drop((up_w, down_r));
    let _ = sys::wait_child(middle, 0);
    let mut up = std::fs::File::from(up_r);
    let mut pid = [0u8; 4];
    up.read_exact(&mut pid)
        .ctx(|| "start the pause process".into())?;
    let pid = i32::from_ne_bytes(pid);
    let mut unshared = [0u8; 1];
    let kill = || {
        // SAFETY: kill(2) of the child we just made.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    };
    if up.read(&mut unshared).ctx(|| "pause process".into())? != 1 || unshared[0] != b'u' {
        kill();
        return Err(Error::Rootless(
            "the kernel refused a user namespace to this user (see sysctl user.max_user_namespaces and kernel.unprivileged_userns_clone)".into(),
        ));
    }
    for (helper, id, ranges) in [("newuidmap", uid, &uids), ("newgidmap", gid, &gids)] {
        let out = std::process::Command::new(helper)
            .arg(pid.to_string())
            .args(map_args(id, ranges))
            .stdin(std::process::Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                kill();
                return Err(Error::Rootless(format!(
                    "{helper} {pid} {}: {}",
                    map_args(id, ranges).join(" "),
                    String::from_utf8_lossy(&o.stderr).trim()
                )));
            }
            Err(e) => {
                kill();
                return Err(Error::io(format!("run {helper}"), e));
            }
        }
    }
    let mut down = std::fs::File::from(down_w);
    down.write_all(b"m").ctx(|| "pause process".into())?;
    Ok(pid)
}

fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The pause process: unshares the user namespace, waits to be mapped, then sleeps for ever
/// holding it. Never returns.
fn pause_main(up_in: i32, down_in: i32) -> ! {
    sys::reset_signals();
    sys::set_process_name(c"berth-pause");
    // Keep none of the caller's fds (a lock, a test's output pipe): only the two pipes, as 3
    // and 4.
    let (up, down) = (3, 4);
    // SAFETY: plain system calls on our own fds.
    unsafe {
        let (a, b) = (libc::dup(up_in), libc::dup(down_in));
        libc::dup2(a, up);
        libc::dup2(b, down);
    }
    sys::close_from(5);
    // SAFETY: plain system calls on our own fds.
    unsafe {
        if libc::unshare(libc::CLONE_NEWUSER) != 0 {
            let _ = sys::write_all(up, b"e");
            sys::exit_now(1);
        }
        let _ = sys::write_all(up, b"u");
        let mut b = [0u8; 1];
        if libc::read(down, b.as_mut_ptr().cast(), 1) != 1 {
            sys::exit_now(1);
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if null >= 0 {
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
        }
        libc::chdir(c"/".as_ptr());
    }
    sys::close_from(3);
    loop {
        // SAFETY: pause(2) waits for a signal; the default actions end the process.
        unsafe { libc::pause() };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_ids_by_name_or_number_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("subuid");
        std::fs::write(
            &f,
            "alice:100000:65536\nbob:165536:65536\n1001:300000:10\nalice:400000:0\nbad line\n",
        )
        .unwrap();
        assert_eq!(
            sub_ids(&f, "alice", 1000),
            vec![SubIds {
                start: 100000,
                count: 65536
            }]
        );
        assert_eq!(sub_ids(&f, "carol", 1001).len(), 1);
        assert!(sub_ids(&f, "dave", 1002).is_empty());
        let r = sub_ids(&f, "bob", 1001);
        assert_eq!(
            map_args(1001, &r).join(" "),
            "0 1001 1 1 165536 65536 65537 300000 10"
        );
    }
}
