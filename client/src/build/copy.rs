//! COPY and ADD: files placed into a new layer directory as docker places them.
//!
//! The layer directory starts empty and becomes the layer (and its snapshot): what is copied
//! goes to its path under the destination; the destination's parent directories that the
//! image already has are made with the image's owner, mode and time (so the layer changes
//! nothing about them), the others with mode 0755 and the `--chown` owner. A destination
//! that passes through a symlink of the image (`/bin -> usr/bin`) is followed inside the
//! image, never outside it.
//!
//! Sources come from the context ([`super::context`], which refuses what leaves it) or
//! from the root filesystem of a stage or image ([`Rootfs`], the merged view of its
//! snapshots, symlinks resolved inside it).
//!
//! The rules: a directory source copies its content, not itself; a file source becomes
//! `DEST/NAME` when the destination ends with `/`, is a directory in the image, or there are
//! several sources, else `DEST`; several sources need such a destination. Files keep their
//! mode and modification time; they belong to root, or keep their owner when they come from
//! an image, unless `--chown` says otherwise; `--chmod` sets the mode of what is copied.

use std::collections::BTreeMap;
use std::fs::Metadata;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::engine::lookup;

use super::context::{has_wildcards, match_component, Context};
use super::ignore::clean;

/// A failure while copying; `String` messages are docker's where it has them.
pub type CopyResult<T> = std::result::Result<T, String>;

fn ioe(path: &Path) -> impl FnOnce(std::io::Error) -> String + '_ {
    move |e| format!("{}: {e}", path.display())
}

/// How to own and mode what is copied.
#[derive(Debug, Clone, Copy, Default)]
pub struct Owner {
    /// `--chown`, resolved.
    pub ids: Option<(u32, u32)>,
    /// `--chmod`.
    pub mode: Option<u32>,
    /// Keep the source's owner (files from an image) when `ids` is not given.
    pub keep: bool,
}

/// The root filesystem of a stage or image: its snapshot directories, topmost first.
pub struct Rootfs<'a> {
    pub layers: &'a [PathBuf],
}

impl Rootfs<'_> {
    /// Where `path` is (no symlink followed at its end), if it exists.
    pub fn entry(&self, path: &str) -> Option<(PathBuf, Metadata)> {
        if self.layers.is_empty() {
            return None;
        }
        lookup(self.layers, path)
    }

    /// Resolves every symlink on `path` inside this root (`/` and `..` stop at it); with
    /// `last`, the final component too. Returns an absolute, clean path.
    pub fn resolve(&self, path: &str, last: bool) -> String {
        let mut done: Vec<String> = Vec::new();
        let mut todo: Vec<String> = path
            .split('/')
            .filter(|p| !p.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut hops = 0;
        while let Some(part) = todo.pop() {
            match part.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let candidate = format!(
                "/{}",
                [done.join("/"), part.clone()]
                    .join("/")
                    .trim_start_matches('/')
            );
            let follow = last || !todo.is_empty();
            match self.entry(&candidate) {
                Some((host, m)) if follow && m.file_type().is_symlink() && hops < 40 => {
                    hops += 1;
                    let target = std::fs::read_link(&host)
                        .map(|t| t.to_string_lossy().to_string())
                        .unwrap_or_default();
                    if target.starts_with('/') {
                        done.clear();
                    }
                    for t in target.split('/').filter(|t| !t.is_empty()).rev() {
                        todo.push(t.to_string());
                    }
                }
                _ => done.push(part),
            }
        }
        format!("/{}", done.join("/"))
    }

    /// The names in directory `dir` of the merged view, each with where it is.
    pub fn children(&self, dir: &str) -> BTreeMap<String, (PathBuf, Metadata)> {
        let mut out: BTreeMap<String, (PathBuf, Metadata)> = BTreeMap::new();
        let mut hidden: Vec<String> = Vec::new();
        let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        for layer in self.layers {
            // What this layer says about `dir`: there (a directory), hidden below, or
            // nothing (look further down), and whether lower layers are cut off.
            let mut here = layer.clone();
            let mut present = true;
            let mut last = false;
            for part in &parts {
                here.push(part);
                match std::fs::symlink_metadata(&here) {
                    Err(_) => {
                        present = false;
                        break;
                    }
                    Ok(m) if m.file_type().is_char_device() && m.rdev() == 0 => return out,
                    Ok(m) if !m.is_dir() => return out,
                    Ok(_) => {
                        if is_opaque(&here) {
                            last = true;
                        }
                    }
                }
            }
            if present {
                if parts.is_empty() {
                    last |= is_opaque(&here);
                }
                if let Ok(rd) = std::fs::read_dir(&here) {
                    for e in rd.flatten() {
                        let name = e.file_name().to_string_lossy().to_string();
                        if out.contains_key(&name) || hidden.contains(&name) {
                            continue;
                        }
                        let Ok(em) = std::fs::symlink_metadata(e.path()) else {
                            continue;
                        };
                        if em.file_type().is_char_device() && em.rdev() == 0 {
                            hidden.push(name);
                            continue;
                        }
                        out.insert(name, (e.path(), em));
                    }
                }
            }
            if last {
                break;
            }
        }
        out
    }

    /// The paths a `--from` source names (wildcards matched in the merged view).
    pub fn sources(&self, src: &str) -> CopyResult<Vec<(String, PathBuf, Metadata)>> {
        let path = clean(&format!("/{src}"));
        if !has_wildcards(&path) {
            let resolved = self.resolve(&path, true);
            let Some((host, m)) = self.entry(&resolved) else {
                return Err(format!("{src}: not found"));
            };
            let m = if m.file_type().is_symlink() {
                std::fs::metadata(&host).map_err(ioe(&host))?
            } else {
                m
            };
            return Ok(vec![(resolved, host, m)]);
        }
        let mut found = vec!["/".to_string()];
        for part in path.split('/').filter(|p| !p.is_empty()) {
            let mut next = Vec::new();
            for dir in &found {
                let dir = self.resolve(dir, true);
                if has_wildcards(part) {
                    for name in self.children(&dir).keys() {
                        if match_component(part, name) {
                            next.push(format!("{}/{name}", dir.trim_end_matches('/')));
                        }
                    }
                } else {
                    next.push(format!("{}/{part}", dir.trim_end_matches('/')));
                }
            }
            found = next;
        }
        let mut out = Vec::new();
        for p in found {
            let resolved = self.resolve(&p, true);
            if let Some((host, m)) = self.entry(&resolved) {
                out.push((resolved, host, m));
            }
        }
        Ok(out)
    }
}

fn is_opaque(dir: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    let mut buf = [0u8; 2];
    // SAFETY: a valid NUL-terminated path and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"trusted.overlay.opaque".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

fn set_times(path: &Path, meta: &Metadata) -> std::io::Result<()> {
    use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
    let ts = Timestamps {
        last_access: Timespec {
            tv_sec: meta.atime(),
            tv_nsec: meta.atime_nsec() as _,
        },
        last_modification: Timespec {
            tv_sec: meta.mtime(),
            tv_nsec: meta.mtime_nsec() as _,
        },
    };
    utimensat(CWD, path, &ts, AtFlags::SYMLINK_NOFOLLOW).map_err(Into::into)
}

/// Gives `path` the owner, mode and time it should have.
fn finish(path: &Path, src: &Metadata, owner: &Owner, is_symlink: bool) -> CopyResult<()> {
    let (uid, gid) = match (owner.ids, owner.keep) {
        (Some(ids), _) => ids,
        (None, true) => (src.uid(), src.gid()),
        (None, false) => (0, 0),
    };
    std::os::unix::fs::lchown(path, Some(uid), Some(gid)).map_err(ioe(path))?;
    if !is_symlink {
        let mode = match owner.mode {
            Some(m) => m,
            None => src.permissions().mode() & 0o7777,
        };
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(ioe(path))?;
    }
    set_times(path, src).map_err(ioe(path))
}

/// Copies one non-directory entry to `dst` (replacing what is there).
fn copy_leaf(src: &Path, meta: &Metadata, dst: &Path, owner: &Owner) -> CopyResult<()> {
    if let Ok(m) = std::fs::symlink_metadata(dst) {
        if m.is_dir() {
            std::fs::remove_dir_all(dst).map_err(ioe(dst))?;
        } else {
            std::fs::remove_file(dst).map_err(ioe(dst))?;
        }
    }
    let ft = meta.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(ioe(src))?;
        std::os::unix::fs::symlink(&target, dst).map_err(ioe(dst))?;
        return finish(dst, meta, owner, true);
    }
    if ft.is_file() {
        std::fs::copy(src, dst).map_err(ioe(dst))?;
        return finish(dst, meta, owner, false);
    }
    if ft.is_socket() {
        return Ok(());
    }
    // FIFOs and device nodes, as they are.
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    let kind = if ft.is_fifo() {
        FileType::Fifo
    } else if ft.is_char_device() {
        FileType::CharacterDevice
    } else {
        FileType::BlockDevice
    };
    mknodat(
        CWD,
        dst,
        kind,
        Mode::from_raw_mode(meta.permissions().mode() & 0o7777),
        meta.rdev(),
    )
    .map_err(|e| format!("{}: {e}", dst.display()))?;
    finish(dst, meta, owner, false)
}

/// Makes the directory `dst` (if missing) as a copy of `meta`'s kind.
fn make_dir(dst: &Path) -> CopyResult<()> {
    match std::fs::symlink_metadata(dst) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => {
            std::fs::remove_file(dst).map_err(ioe(dst))?;
            std::fs::create_dir(dst).map_err(ioe(dst))
        }
        Err(_) => std::fs::create_dir(dst).map_err(ioe(dst)),
    }
}

/// The layer being filled.
pub struct LayerDir<'a> {
    /// The directory that becomes the layer.
    pub dir: &'a Path,
    /// The image below it (to keep its directories as they are).
    pub below: Rootfs<'a>,
    /// Owner of directories the copy creates.
    pub owner: Owner,
    /// Files copied that have other links, by (device, inode): their copy, so the other
    /// links become links to it again, as docker copies hard links.
    pub links: std::cell::RefCell<std::collections::HashMap<(u64, u64), PathBuf>>,
}

impl<'a> LayerDir<'a> {
    pub fn new(dir: &'a Path, below: Rootfs<'a>, owner: Owner) -> LayerDir<'a> {
        LayerDir {
            dir,
            below,
            owner,
            links: Default::default(),
        }
    }

    /// Copies a non-directory, linking it to an earlier copy of the same file.
    fn leaf(&self, src: &Path, meta: &Metadata, dst: &Path, owner: &Owner) -> CopyResult<()> {
        if !meta.is_file() || meta.nlink() < 2 {
            return copy_leaf(src, meta, dst, owner);
        }
        let key = (meta.dev(), meta.ino());
        let earlier = self.links.borrow().get(&key).cloned();
        match earlier {
            Some(first) if first != dst => {
                if std::fs::symlink_metadata(dst).is_ok() {
                    std::fs::remove_file(dst).map_err(ioe(dst))?;
                }
                std::fs::hard_link(&first, dst).map_err(ioe(dst))
            }
            _ => {
                copy_leaf(src, meta, dst, owner)?;
                self.links.borrow_mut().insert(key, dst.to_path_buf());
                Ok(())
            }
        }
    }

    fn host(&self, path: &str) -> PathBuf {
        self.dir.join(path.trim_start_matches('/'))
    }

    /// Makes `path` and its parents in the layer: like the image's where it has them.
    pub fn ensure_dir(&self, path: &str) -> CopyResult<PathBuf> {
        let mut cur = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur = format!("{cur}/{part}");
            let host = self.host(&cur);
            if std::fs::symlink_metadata(&host).is_ok_and(|m| m.is_dir()) {
                continue;
            }
            make_dir(&host)?;
            match self.below.entry(&cur) {
                Some((_, m)) if m.is_dir() => {
                    std::os::unix::fs::lchown(&host, Some(m.uid()), Some(m.gid()))
                        .map_err(ioe(&host))?;
                    std::fs::set_permissions(&host, m.permissions()).map_err(ioe(&host))?;
                    set_times(&host, &m).map_err(ioe(&host))?;
                }
                _ => {
                    let (uid, gid) = self.owner.ids.unwrap_or((0, 0));
                    std::os::unix::fs::lchown(&host, Some(uid), Some(gid)).map_err(ioe(&host))?;
                    std::fs::set_permissions(&host, std::fs::Permissions::from_mode(0o755))
                        .map_err(ioe(&host))?;
                }
            }
        }
        Ok(self.host(path))
    }

    /// Whether `path` is a directory in the image (following its symlinks).
    pub fn is_dir_below(&self, path: &str) -> bool {
        let resolved = self.below.resolve(path, true);
        self.below.entry(&resolved).is_some_and(|(_, m)| m.is_dir())
    }

    /// Copies one context source to `dest` (a file's final path, or a directory to fill).
    pub fn copy_from_context(
        &self,
        ctx: &Context,
        rel: &str,
        host: &Path,
        is_dir: bool,
        dest: &str,
        excludes: &super::ignore::Ignore,
    ) -> CopyResult<()> {
        let owner = self.owner;
        if !is_dir {
            let parent = parent_of(dest);
            let dir = self.ensure_dir(&parent)?;
            let meta = std::fs::metadata(host).map_err(ioe(host))?;
            return self.leaf(host, &meta, &dir.join(base_of(dest)), &owner);
        }
        let new_top = self.below.entry(&self.below.resolve(dest, true)).is_none()
            && std::fs::symlink_metadata(self.host(dest)).is_err();
        let top = self.ensure_dir(dest)?;
        let mut dirs: Vec<(PathBuf, Metadata)> = Vec::new();
        if new_top {
            // A directory the copy makes takes the source directory's mode and time.
            dirs.push((top.clone(), std::fs::metadata(host).map_err(ioe(host))?));
        }
        ctx.walk(rel, &mut |sub, path, meta| {
            if !excludes.is_empty() && excludes.excludes(sub) {
                return Ok(());
            }
            let dst = top.join(sub);
            let r = if meta.is_dir() {
                make_dir(&dst).map(|_| dirs.push((dst, meta.clone())))
            } else {
                self.leaf(path, meta, &dst, &owner)
            };
            r.map_err(super::context::ContextError::Unusable)
        })
        .map_err(|e| e.to_string())?;
        // Directories get their owner, mode and time after their content is in.
        for (dst, meta) in dirs.iter().rev() {
            finish(dst, meta, &owner, false)?;
        }
        Ok(())
    }

    /// Copies one entry of another root filesystem (recursively for a directory).
    pub fn copy_from_rootfs(
        &self,
        from: &Rootfs<'_>,
        path: &str,
        host: &Path,
        meta: &Metadata,
        dest: &str,
        excludes: &super::ignore::Ignore,
    ) -> CopyResult<()> {
        let owner = Owner {
            keep: true,
            ..self.owner
        };
        if !meta.is_dir() {
            let dir = self.ensure_dir(&parent_of(dest))?;
            return self.leaf(host, meta, &dir.join(base_of(dest)), &owner);
        }
        let new_top = self.below.entry(&self.below.resolve(dest, true)).is_none()
            && std::fs::symlink_metadata(self.host(dest)).is_err();
        let top = self.ensure_dir(dest)?;
        self.copy_tree(from, path, &top, "", &owner, excludes)?;
        if new_top {
            finish(&top, meta, &owner, false)?;
        }
        Ok(())
    }

    fn copy_tree(
        &self,
        from: &Rootfs<'_>,
        dir: &str,
        dst_dir: &Path,
        sub: &str,
        owner: &Owner,
        excludes: &super::ignore::Ignore,
    ) -> CopyResult<()> {
        for (name, (host, meta)) in from.children(dir) {
            let rel = if sub.is_empty() {
                name.clone()
            } else {
                format!("{sub}/{name}")
            };
            if !excludes.is_empty() && excludes.excludes(&rel) {
                continue;
            }
            let dst = dst_dir.join(&name);
            if meta.is_dir() {
                make_dir(&dst)?;
                let child = format!("{}/{name}", dir.trim_end_matches('/'));
                self.copy_tree(from, &child, &dst, &rel, owner, excludes)?;
                finish(&dst, &meta, owner, false)?;
            } else {
                self.leaf(&host, &meta, &dst, owner)?;
            }
        }
        Ok(())
    }

    /// Writes a file of the given content (a heredoc source, a downloaded file).
    pub fn write_file(
        &self,
        dest: &str,
        data: &[u8],
        mode: u32,
        mtime: Option<i64>,
    ) -> CopyResult<()> {
        let dir = self.ensure_dir(&parent_of(dest))?;
        let path = dir.join(base_of(dest));
        if let Ok(m) = std::fs::symlink_metadata(&path) {
            if m.is_dir() {
                return Err(format!("cannot replace directory {dest} with a file"));
            }
            std::fs::remove_file(&path).map_err(ioe(&path))?;
        }
        std::fs::write(&path, data).map_err(ioe(&path))?;
        let (uid, gid) = self.owner.ids.unwrap_or((0, 0));
        std::os::unix::fs::lchown(&path, Some(uid), Some(gid)).map_err(ioe(&path))?;
        let mode = self.owner.mode.unwrap_or(mode);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(ioe(&path))?;
        if let Some(t) = mtime {
            use rustix::fs::{utimensat, AtFlags, Timespec, Timestamps, CWD};
            let ts = Timespec {
                tv_sec: t,
                tv_nsec: 0,
            };
            utimensat(
                CWD,
                &path,
                &Timestamps {
                    last_access: ts,
                    last_modification: ts,
                },
                AtFlags::empty(),
            )
            .map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(())
    }
}

/// `/a/b` → `/a`; `/a` → `/`.
pub fn parent_of(path: &str) -> String {
    match path.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) | None => "/".into(),
        Some((p, _)) => p.to_string(),
    }
}

/// `/a/b` → `b`.
pub fn base_of(path: &str) -> String {
    let t = path.trim_end_matches('/');
    t.rsplit_once('/').map_or(t, |(_, b)| b).to_string()
}

/// Whether a layer directory holds nothing (the step changed nothing).
pub fn is_empty_dir(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|mut r| r.next().is_none())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parent_of("/a/b"), "/a");
        assert_eq!(parent_of("/a"), "/");
        assert_eq!(parent_of("/a/b/"), "/a");
        assert_eq!(base_of("/a/b"), "b");
        assert_eq!(base_of("/a/b/"), "b");
    }

    #[test]
    fn merged_view_and_symlinks() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("top");
        let bottom = d.path().join("bottom");
        std::fs::create_dir_all(bottom.join("usr/bin")).unwrap();
        std::fs::write(bottom.join("usr/bin/tool"), "t").unwrap();
        std::fs::write(bottom.join("usr/bin/gone"), "g").unwrap();
        std::os::unix::fs::symlink("usr/bin", bottom.join("bin")).unwrap();
        std::os::unix::fs::symlink("/../../etc", bottom.join("escape")).unwrap();
        std::fs::create_dir_all(top.join("usr/bin")).unwrap();
        std::fs::write(top.join("usr/bin/new"), "n").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("usr/bin/gone"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0),
            0,
        )
        .unwrap();
        let layers = vec![top, bottom];
        let r = Rootfs { layers: &layers };
        assert_eq!(r.resolve("/bin/tool", true), "/usr/bin/tool");
        assert_eq!(r.resolve("/bin", false), "/bin");
        assert_eq!(r.resolve("/escape/passwd", true), "/etc/passwd");
        let names: Vec<String> = r.children("/usr/bin").into_keys().collect();
        assert_eq!(names, ["new", "tool"]);
        assert!(r.entry("/usr/bin/gone").is_none());
        let found: Vec<String> = r
            .sources("bin/t*")
            .unwrap()
            .into_iter()
            .map(|s| s.0)
            .collect();
        assert_eq!(found, ["/usr/bin/tool"]);
        assert!(r.sources("nope").is_err());
    }
}
