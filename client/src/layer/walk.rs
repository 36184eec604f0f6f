//! Walking directory trees for the layer writer, `diff` and `export`.
//!
//! Every step is relative to an open directory: names are `statat`/`openat` with
//! `O_NOFOLLOW`, so a symlink met on the way is an entry, never a way out, whatever a running
//! container does to the tree meanwhile. Names are sorted bytewise in each directory, so the
//! same tree always gives the same order.
//!
//! A walk runs over a [`Stack`]: directories at the same place in several layers, top first,
//! seen the way overlayfs merges them. A name is decided by the topmost layer that has it; a
//! whiteout (a 0/0 character device) hides it below; a directory merges with the directories
//! of the same name below it until one of them is opaque (`trusted.overlay.opaque=y`) or a
//! layer has something else there.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::LayerError;
use crate::unpack::{open_dir, overlay_xattr};

/// The deepest directory a walk enters (each level holds a descriptor per layer).
const MAX_DEPTH: usize = 1024;

/// What the walk needs of `lstat`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stat {
    pub kind: FileType,
    /// Permission bits with setuid, setgid and sticky.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: i64,
    pub mtime_nsec: i64,
    pub rdev: u64,
    pub nlink: u64,
    pub dev: u64,
    pub ino: u64,
}

impl Stat {
    fn of(st: &rfs::Stat) -> Stat {
        Stat {
            kind: FileType::from_raw_mode(st.st_mode),
            mode: st.st_mode & 0o7777,
            uid: st.st_uid,
            gid: st.st_gid,
            size: st.st_size as u64,
            mtime: st.st_mtime,
            mtime_nsec: st.st_mtime_nsec as i64,
            rdev: st.st_rdev,
            nlink: st.st_nlink,
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }

    /// overlayfs marks a deleted name with a character device 0/0.
    pub fn is_whiteout(&self) -> bool {
        self.kind == FileType::CharacterDevice && self.rdev == 0
    }
}

/// What an entry is, as the layer writer emits it.
pub(crate) enum What {
    /// A regular file, open for reading.
    File(File),
    Dir,
    Symlink(Vec<u8>),
    Char,
    Block,
    Fifo,
    /// Another name of a file emitted earlier (its path).
    HardLink(Vec<u8>),
    /// The name was deleted (an overlay whiteout in an upper directory).
    Whiteout,
    /// The directory replaces the one below it (emitted after the directory itself).
    Opaque,
}

/// One entry of a walk.
pub(crate) struct Node {
    /// Relative path, components joined with `/`, no trailing `/`.
    pub path: Vec<u8>,
    pub what: What,
    pub stat: Stat,
    /// The extended attributes a layer carries (those `unpack` applies).
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// How a walk reads overlay's markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    /// A plain tree: a 0/0 character device is a device, `trusted.*` is nobody's business.
    Plain,
    /// An overlay upper directory turned into a layer: whiteouts and opaque directories are
    /// emitted as such; redirects and metacopy (which a layer cannot express) are refused.
    Upper,
    /// The union of the stack: what a process in the container sees.
    Merged,
}

/// Directories at one place in several layers, top first.
pub(crate) struct Stack {
    dirs: Vec<OwnedFd>,
}

impl Stack {
    pub fn open(layers: &[std::path::PathBuf]) -> Result<Stack, LayerError> {
        let mut dirs = Vec::with_capacity(layers.len());
        for l in layers {
            let fd = rfs::open(
                l,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| LayerError::Source {
                path: l.clone(),
                source: e.into(),
            })?;
            dirs.push(fd);
        }
        Ok(Stack { dirs })
    }

    /// One directory, already open.
    pub fn from_fd(fd: OwnedFd) -> Stack {
        Stack { dirs: vec![fd] }
    }

    /// The visible names of this merged directory, each with the layer that decides it and
    /// what is there; whiteouts hide names below them.
    pub fn entries(&self, hide_whiteouts: bool) -> io::Result<BTreeMap<Vec<u8>, (usize, Stat)>> {
        let mut out = BTreeMap::new();
        let mut hidden: HashSet<Vec<u8>> = HashSet::new();
        for (i, fd) in self.dirs.iter().enumerate() {
            for name in read_names(fd.as_fd())? {
                if out.contains_key(&name) || hidden.contains(&name) {
                    continue;
                }
                let st = match rfs::statat(fd, OsStr::from_bytes(&name), AtFlags::SYMLINK_NOFOLLOW)
                {
                    Ok(st) => Stat::of(&st),
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                };
                if st.is_whiteout() && hide_whiteouts {
                    hidden.insert(name);
                    continue;
                }
                out.insert(name, (i, st));
            }
        }
        Ok(out)
    }

    /// Looks one name up in the merged directory: what is there and, for a directory, its
    /// own stack. `None` when nothing is (or a whiteout hides it).
    pub fn lookup(&self, name: &[u8]) -> io::Result<Option<(Stat, Option<Stack>)>> {
        for (i, fd) in self.dirs.iter().enumerate() {
            let st = match rfs::statat(fd, OsStr::from_bytes(name), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Stat::of(&st),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            if st.is_whiteout() {
                return Ok(None);
            }
            if st.kind != FileType::Directory {
                return Ok(Some((st, None)));
            }
            let child = self.child(name, i)?.map(|(stack, _)| stack);
            return Ok(Some((st, child)));
        }
        Ok(None)
    }

    /// The stack of the directory `name`, which layer `top` has: that directory, then those of
    /// the same name below it, down to an opaque one or a layer with something else there.
    /// Also whether the top one is opaque. `None` if it was replaced meanwhile.
    fn child(&self, name: &[u8], top: usize) -> io::Result<Option<(Stack, bool)>> {
        let name = OsStr::from_bytes(name);
        let first = match open_dir(self.dirs[top].as_fd(), name) {
            Ok(fd) => fd,
            Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let top_opaque = is_opaque(&first)?;
        let mut dirs = vec![first];
        if !top_opaque {
            for fd in &self.dirs[top + 1..] {
                match rfs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                    Err(Errno::NOENT) => continue,
                    Err(e) => return Err(e.into()),
                    Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory => {
                        let d = match open_dir(fd.as_fd(), name) {
                            Ok(d) => d,
                            Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => break,
                            Err(e) => return Err(e.into()),
                        };
                        let opaque = is_opaque(&d)?;
                        dirs.push(d);
                        if opaque {
                            break;
                        }
                    }
                    Ok(_) => break,
                }
            }
        }
        Ok(Some((Stack { dirs }, top_opaque)))
    }

    /// The stack of the directory `name` of the top layer, and whether it is opaque.
    pub fn child_of(&self, name: &[u8]) -> io::Result<Option<(Stack, bool)>> {
        self.child(name, 0)
    }

    /// The `security.capability` of the regular file `name` as the merged directory shows
    /// it.
    pub fn capability(&self, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
        let os_name = OsStr::from_bytes(name);
        for fd in &self.dirs {
            let st = match rfs::statat(fd, os_name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Stat::of(&st),
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            if st.kind != FileType::RegularFile {
                return Ok(None);
            }
            let file = match rfs::openat(
                fd,
                os_name,
                OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(f) => f,
                Err(Errno::NOENT) | Err(Errno::LOOP) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            return get_xattr(file.as_fd(), b"security.capability");
        }
        Ok(None)
    }

    /// The layer directory that holds this directory's own metadata.
    fn top(&self) -> BorrowedFd<'_> {
        self.dirs[0].as_fd()
    }
}

/// Fails past [`MAX_DEPTH`] levels: each level holds descriptors.
pub(crate) fn check_depth(depth: usize) -> io::Result<()> {
    if depth > MAX_DEPTH {
        return Err(io::Error::other("directories nest too deeply"));
    }
    Ok(())
}

fn is_opaque(fd: &OwnedFd) -> io::Result<bool> {
    let mut buf = [0u8; 4];
    match rfs::fgetxattr(fd, overlay_xattr("opaque"), &mut buf[..]) {
        Ok(n) => Ok(&buf[..n] == b"y"),
        Err(Errno::NODATA) | Err(Errno::NOTSUP) | Err(Errno::RANGE) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// The names in a directory (without `.` and `..`), unsorted.
fn read_names(fd: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let mut names = Vec::new();
    for e in rfs::Dir::read_from(fd)? {
        let e = e?;
        let n = e.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    Ok(names)
}

/// Extended attributes of an open file or directory that a layer keeps, and overlay's
/// markers found among them.
#[derive(Default)]
pub(crate) struct Xattrs {
    pub keep: Vec<(Vec<u8>, Vec<u8>)>,
    pub opaque: bool,
    /// `trusted.overlay.redirect` or `.metacopy`: the upper directory does not hold the
    /// whole of what it changed.
    pub unsupported: Option<String>,
}

pub(crate) fn read_xattrs(fd: BorrowedFd<'_>) -> io::Result<Xattrs> {
    let mut out = Xattrs::default();
    let len = match rfs::flistxattr_query(fd) {
        Ok(0) => return Ok(out),
        Ok(n) => n,
        Err(Errno::NOTSUP) => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    let mut list = Vec::with_capacity(len + 64);
    let n = rfs::flistxattr(fd, rustix::buffer::spare_capacity(&mut list))?;
    debug_assert_eq!(n, list.len());
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let keep = crate::unpack::xattr_allowed(name);
        let prefix = overlay_xattr("");
        let overlay = name.starts_with(prefix.as_bytes());
        if !keep && !overlay {
            continue;
        }
        let value = match get_xattr(fd, name)? {
            Some(v) => v,
            None => continue,
        };
        if keep {
            out.keep.push((name.to_vec(), value));
        } else if name == overlay_xattr("opaque").as_bytes() {
            out.opaque = value == b"y";
        } else if name == overlay_xattr("redirect").as_bytes()
            || name == overlay_xattr("metacopy").as_bytes()
        {
            out.unsupported = Some(String::from_utf8_lossy(name).into_owned());
        }
    }
    out.keep.sort();
    Ok(out)
}

fn get_xattr(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let name = OsStr::from_bytes(name);
    let len = match rfs::fgetxattr_query(fd, name) {
        // An empty value (overlayfs writes some in a user namespace): nothing to read.
        Ok(0) => return Ok(Some(Vec::new())),
        Ok(n) => n,
        Err(Errno::NODATA) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let mut value = Vec::with_capacity(len);
    match rfs::fgetxattr(fd, name, rustix::buffer::spare_capacity(&mut value)) {
        Ok(_) => Ok(Some(value)),
        Err(Errno::NODATA) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Walks a stack, calling `visit` for every entry in order (a directory before what it
/// holds). `prefix` names the stack's root in the output; the root itself is visited only
/// when the prefix is not empty.
pub(crate) struct Walker<'v> {
    view: View,
    /// First path of each multiply-linked file seen: later names become hard links to it.
    links: HashMap<(u64, u64), Vec<u8>>,
    visit: &'v mut dyn FnMut(Node) -> Result<(), LayerError>,
}

impl<'v> Walker<'v> {
    pub fn new(view: View, visit: &'v mut dyn FnMut(Node) -> Result<(), LayerError>) -> Self {
        Walker {
            view,
            links: HashMap::new(),
            visit,
        }
    }

    pub fn run(&mut self, stack: Stack, prefix: &[u8]) -> Result<(), LayerError> {
        let mut path = prefix.to_vec();
        if !prefix.is_empty() {
            let root = stack.top();
            let st = rfs::fstat(root).map_err(|e| self.err(&path, e.into()))?;
            let xattrs = read_xattrs(root).map_err(|e| self.err(&path, e))?;
            (self.visit)(Node {
                path: path.clone(),
                what: What::Dir,
                stat: Stat::of(&st),
                xattrs: xattrs.keep,
            })?;
        }
        self.dir(&stack, &mut path, 0)
    }

    /// Walks one entry of `parent` (and, for a directory, all below it), naming it `as_path`.
    pub fn run_entry(
        &mut self,
        parent: &Stack,
        name: &[u8],
        as_path: &[u8],
    ) -> Result<(), LayerError> {
        let mut path = as_path.to_vec();
        let st = rfs::statat(
            parent.top(),
            OsStr::from_bytes(name),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| self.err(&path, e.into()))?;
        self.entry(parent, name, 0, Stat::of(&st), &mut path, 0)
    }

    fn err(&self, path: &[u8], source: io::Error) -> LayerError {
        LayerError::Entry {
            path: String::from_utf8_lossy(path).into_owned(),
            source,
        }
    }

    fn dir(&mut self, stack: &Stack, path: &mut Vec<u8>, depth: usize) -> Result<(), LayerError> {
        check_depth(depth).map_err(|e| self.err(path, e))?;
        let entries = stack
            .entries(self.view == View::Merged)
            .map_err(|e| self.err(path, e))?;
        for (name, (layer, st)) in entries {
            let len = path.len();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(&name);
            let r = self.entry(stack, &name, layer, st, path, depth);
            path.truncate(len);
            r?;
        }
        Ok(())
    }

    fn entry(
        &mut self,
        stack: &Stack,
        name: &[u8],
        layer: usize,
        st: Stat,
        path: &mut Vec<u8>,
        depth: usize,
    ) -> Result<(), LayerError> {
        let dirfd = stack.dirs[layer].as_fd();
        let os_name = OsStr::from_bytes(name);
        let node = |what, stat, xattrs| Node {
            path: path.clone(),
            what,
            stat,
            xattrs,
        };
        match st.kind {
            FileType::Directory => {
                let Some((child, _)) = stack.child(name, layer).map_err(|e| self.err(path, e))?
                else {
                    return Err(self.err(path, changed()));
                };
                let fd = child.top();
                let st = Stat::of(&rfs::fstat(fd).map_err(|e| self.err(path, e.into()))?);
                let x = read_xattrs(fd).map_err(|e| self.err(path, e))?;
                if self.view == View::Upper {
                    if let Some(what) = &x.unsupported {
                        return Err(LayerError::Overlay {
                            path: String::from_utf8_lossy(path).into_owned(),
                            xattr: what.clone(),
                        });
                    }
                }
                (self.visit)(node(What::Dir, st, x.keep))?;
                if self.view == View::Upper && x.opaque {
                    (self.visit)(node(What::Opaque, st, Vec::new()))?;
                }
                self.dir(&child, path, depth + 1)
            }
            FileType::RegularFile => {
                let fd = rfs::openat(
                    dirfd,
                    os_name,
                    OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| match e {
                    Errno::LOOP | Errno::NOENT => self.err(path, changed()),
                    e => self.err(path, e.into()),
                })?;
                let st = Stat::of(&rfs::fstat(&fd).map_err(|e| self.err(path, e.into()))?);
                if st.kind != FileType::RegularFile {
                    return Err(self.err(path, changed()));
                }
                let x = read_xattrs(fd.as_fd()).map_err(|e| self.err(path, e))?;
                if self.view == View::Upper {
                    if let Some(what) = &x.unsupported {
                        return Err(LayerError::Overlay {
                            path: String::from_utf8_lossy(path).into_owned(),
                            xattr: what.clone(),
                        });
                    }
                }
                if st.nlink > 1 {
                    match self.links.get(&(st.dev, st.ino)) {
                        Some(first) => {
                            let first = first.clone();
                            return (self.visit)(node(What::HardLink(first), st, Vec::new()));
                        }
                        None => {
                            self.links.insert((st.dev, st.ino), path.clone());
                        }
                    }
                }
                (self.visit)(node(What::File(File::from(fd)), st, x.keep))
            }
            FileType::Symlink => {
                let target = rfs::readlinkat(dirfd, os_name, Vec::new())
                    .map_err(|e| self.err(path, e.into()))?;
                (self.visit)(node(What::Symlink(target.into_bytes()), st, Vec::new()))
            }
            FileType::CharacterDevice if st.is_whiteout() && self.view == View::Upper => {
                (self.visit)(node(What::Whiteout, st, Vec::new()))
            }
            FileType::CharacterDevice | FileType::BlockDevice | FileType::Fifo => {
                let what = match st.kind {
                    FileType::CharacterDevice => What::Char,
                    FileType::BlockDevice => What::Block,
                    _ => What::Fifo,
                };
                if st.nlink > 1 {
                    if let Some(first) = self.links.get(&(st.dev, st.ino)) {
                        let first = first.clone();
                        return (self.visit)(node(What::HardLink(first), st, Vec::new()));
                    }
                    self.links.insert((st.dev, st.ino), path.clone());
                }
                (self.visit)(node(what, st, Vec::new()))
            }
            _ => {
                tracing::debug!(path = %String::from_utf8_lossy(path), "socket skipped: a layer cannot hold one");
                Ok(())
            }
        }
    }
}

fn changed() -> io::Error {
    io::Error::other("it changed while it was read (pause the container, or try again)")
}
