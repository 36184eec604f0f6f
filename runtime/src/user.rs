//! Resolving docker's `-u user[:group]` against the container's own /etc/passwd and
//! /etc/group, the way docker does: names or numbers, supplementary groups from /etc/group,
//! gid 0 for a numeric uid that has no passwd entry.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// A user as the container's process will run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    /// The passwd home directory, for HOME (docker sets it; `/` when unknown).
    pub home: String,
}

/// The first of `layers` (topmost first: an overlay's upper dir, then its lower dirs, or a
/// single rootfs directory) that holds `rel`. A symlink on the way (`etc` or the file) ends
/// the search with nothing: it points somewhere in the container, and following it on the
/// host could read a host file.
fn find(layers: &[PathBuf], rel: &str) -> Option<String> {
    for layer in layers {
        let mut path = layer.clone();
        for part in rel.split('/') {
            path.push(part);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if m.file_type().is_symlink() => return None,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_file() => return std::fs::read_to_string(&path).ok(),
            // A whiteout (character device) or anything else hides lower layers' files.
            Ok(_) => return None,
            Err(_) => continue,
        }
    }
    None
}

/// Resolves `spec` (`""`, `name`, `uid`, `name:group`, `uid:gid`, ...) in the root
/// filesystem made of `layers`, topmost first.
pub fn resolve_user(layers: &[impl AsRef<Path>], spec: &str) -> Result<ResolvedUser> {
    let layers: Vec<PathBuf> = layers.iter().map(|l| l.as_ref().to_path_buf()).collect();
    let passwd = find(&layers, "etc/passwd").unwrap_or_default();
    let group = find(&layers, "etc/group").unwrap_or_default();
    let (user, grp) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let entries: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 7)
        .collect();
    let found = entries
        .iter()
        .find(|f| f[0] == user)
        .or_else(|| entries.iter().find(|f| f[2] == user));
    let (uid, mut gid, name, home) = match found {
        Some(f) => (
            f[2].parse().map_err(|_| Error::UnknownUser(spec.into()))?,
            f[3].parse().map_err(|_| Error::UnknownUser(spec.into()))?,
            Some(f[0].to_string()),
            f[5].to_string(),
        ),
        None => match user.parse::<u32>() {
            Ok(uid) => (uid, 0, None, "/".to_string()),
            Err(_) => return Err(Error::UnknownUser(spec.into())),
        },
    };
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .filter(|f| f.len() >= 4)
        .collect();
    if let Some(g) = grp {
        gid = match groups
            .iter()
            .find(|f| f[0] == g)
            .or_else(|| groups.iter().find(|f| f[2] == g))
        {
            Some(f) => f[2].parse().map_err(|_| Error::UnknownUser(spec.into()))?,
            None => g.parse().map_err(|_| Error::UnknownUser(spec.into()))?,
        };
    }
    // runc's rule: the primary group is the first supplementary group too.
    let mut additional_gids = vec![gid];
    if let (Some(name), None) = (&name, grp) {
        for f in &groups {
            if f[3].split(',').any(|m| m == name) {
                if let Ok(g) = f[2].parse::<u32>() {
                    if g != gid && !additional_gids.contains(&g) {
                        additional_gids.push(g);
                    }
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home: if home.is_empty() { "/".into() } else { home },
    })
}

/// docker's `--group-add`: each of `groups` (a name in the container's /etc/group, or a
/// number, which needs no entry) as a gid, in the root filesystem made of `layers`.
pub fn resolve_groups(layers: &[impl AsRef<Path>], groups: &[String]) -> Result<Vec<u32>> {
    let layers: Vec<PathBuf> = layers.iter().map(|l| l.as_ref().to_path_buf()).collect();
    let file = find(&layers, "etc/group").unwrap_or_default();
    groups
        .iter()
        .map(|g| {
            if let Ok(gid) = g.parse::<u32>() {
                return Ok(gid);
            }
            file.lines()
                .map(|l| l.split(':').collect::<Vec<_>>())
                .find(|f| f.len() >= 3 && f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| Error::UnknownGroup(g.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("etc")).unwrap();
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/var/www:/bin/false\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/group"),
            "root:x:0:\nwww:x:33:\nadm:x:4:www\n",
        )
        .unwrap();
        let layers = [dir.path()];
        let r = |s: &str| resolve_user(&layers, s).map(|u| (u.uid, u.gid, u.additional_gids));
        assert_eq!(r("").unwrap(), (0, 0, vec![0]));
        assert_eq!(r("www").unwrap(), (33, 33, vec![33, 4]));
        assert_eq!(r("33").unwrap(), (33, 33, vec![33, 4]));
        assert_eq!(r("www:adm").unwrap(), (33, 4, vec![4]));
        assert_eq!(r("1000").unwrap(), (1000, 0, vec![0]));
        assert_eq!(r("1000:1000").unwrap(), (1000, 1000, vec![1000]));
        assert!(r("nobody").is_err());
        assert!(r("www:nogroup").is_err());
        assert_eq!(resolve_user(&layers, "www").unwrap().home, "/var/www");
    }

    #[test]
    fn symlinks_are_not_followed_on_the_host() {
        let host = tempfile::tempdir().unwrap();
        std::fs::write(host.path().join("passwd"), "evil:x:4242:4242::/:/bin/sh\n").unwrap();
        for link_etc in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            if link_etc {
                std::os::unix::fs::symlink(host.path(), dir.path().join("etc")).unwrap();
            } else {
                std::fs::create_dir(dir.path().join("etc")).unwrap();
                std::os::unix::fs::symlink(
                    host.path().join("passwd"),
                    dir.path().join("etc/passwd"),
                )
                .unwrap();
            }
            // A lower layer's real file is hidden by the link above it too.
            let lower = tempfile::tempdir().unwrap();
            std::fs::create_dir(lower.path().join("etc")).unwrap();
            std::fs::write(lower.path().join("etc/passwd"), "evil:x:1:1::/:/bin/sh\n").unwrap();
            let layers = [dir.path(), lower.path()];
            assert!(
                resolve_user(&layers, "evil").is_err(),
                "link_etc={link_etc}"
            );
            assert_eq!(resolve_user(&layers, "7").unwrap().uid, 7);
        }
    }
}
