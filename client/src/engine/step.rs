//! Build steps: a `RUN` of `berth build` as a container that has no record, no name and no
//! log, so `ps` never lists it; the build's own process creates it, reads its output, waits
//! for it and deletes it. Its root is an overlay of the image's snapshots under an upper
//! directory the build gives: afterwards that directory holds exactly what the step
//! changed, the mount points the runtime had to create (`/proc`, `/etc/hosts`, a cache
//! mount's target…) taken out again, as BuildKit does.
//!
//! Its directory is `builder/run/<id>/` (the runtime's state, the overlay's work directory,
//! the /etc files it sees), removed when the step ends.

use std::path::{Path, PathBuf};

use berth_runtime::{AttachOptions, ContainerConfig, Event, Rootfs};
use berth_storage::Digest;

use super::record::{ContainerRecord, HostConfig, MountPoint, NetworkMode, ProcessConfig};
use super::{io_err, remove_tree, spec, Engine, EngineError, Result};

/// A bind mount of a step (cache mounts, bind mounts from the context or a stage, a
/// heredoc script).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepMount {
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
}

/// What a step runs, and where.
#[derive(Debug, Clone)]
pub struct StepProcess {
    /// The image's snapshot directories, topmost first.
    pub lower: Vec<PathBuf>,
    /// Where the step's changes go: an empty directory.
    pub upper: PathBuf,
    pub args: Vec<String>,
    /// `KEY=value`.
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    /// `none`, `host`, or the default network (berth's bridge).
    pub network: NetworkMode,
    pub mounts: Vec<StepMount>,
}

/// Which stream a piece of output came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Whether `path` exists in an overlay stack (directories topmost first), whiteouts and
/// opaque directories respected: where it is and its metadata when it does (symlinks are
/// not followed).
pub fn lookup(layers: &[PathBuf], path: &str) -> Option<(PathBuf, std::fs::Metadata)> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let rel = path.trim_start_matches('/');
    let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
    for layer in layers {
        // A whiteout for the path or one of its parents in this layer hides the rest;
        // an opaque parent hides what lies below it.
        let mut hidden = false;
        let mut opaque = false;
        let mut here = layer.clone();
        for (i, part) in parts.iter().enumerate() {
            here.push(part);
            let Ok(m) = std::fs::symlink_metadata(&here) else {
                break;
            };
            if m.file_type().is_char_device() && m.rdev() == 0 {
                hidden = true;
                break;
            }
            if i + 1 == parts.len() {
                return Some((here, m));
            }
            if !m.is_dir() {
                // A file here hides whatever lower layers have below its path.
                return None;
            }
            if crate::unpack::is_opaque(&here) {
                opaque = true;
            }
        }
        if hidden {
            return None;
        }
        if parts.is_empty() {
            return std::fs::metadata(layer).ok().map(|m| (layer.clone(), m));
        }
        if opaque {
            // The deepest opaque directory present here hides lower layers' content.
            return None;
        }
    }
    None
}

/// Removes from `upper` the mount points the runtime created for `destinations` where the
/// image had nothing, and the directories it created only for them.
fn remove_stubs(upper: &Path, lower: &[PathBuf], destinations: &[String]) {
    let mut dests: Vec<&String> = destinations.iter().collect();
    dests.sort_by_key(|d| std::cmp::Reverse(d.len()));
    for d in dests {
        let mut path = d.trim_end_matches('/').to_string();
        while !path.is_empty() && path != "/" {
            if lookup(lower, &path).is_some() {
                break;
            }
            let host = upper.join(path.trim_start_matches('/'));
            let Ok(m) = std::fs::symlink_metadata(&host) else {
                break;
            };
            let empty = if m.is_dir() {
                std::fs::read_dir(&host).is_ok_and(|mut r| r.next().is_none())
            } else {
                m.is_file() && m.len() == 0
            };
            if !empty {
                break;
            }
            let removed = if m.is_dir() {
                std::fs::remove_dir(&host)
            } else {
                std::fs::remove_file(&host)
            };
            if removed.is_err() {
                break;
            }
            path = match path.rsplit_once('/') {
                Some((p, _)) => p.to_string(),
                None => String::new(),
            };
        }
    }
}

impl Engine {
    /// Runs one build step to its end, handing its output to `output`; returns its exit
    /// code. The step's changes are in `p.upper` afterwards.
    pub fn run_step(&self, p: &StepProcess, output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32> {
        super::rootless::check(&super::HostConfig {
            network: p.network,
            ..Default::default()
        })?;
        let id = super::new_id();
        let dir = self.root.join("builder/run").join(&id);
        std::fs::create_dir_all(dir.join("work")).map_err(io_err(&dir))?;
        let result = self.run_step_in(&id, &dir, p, output);
        let _ = remove_tree(&dir);
        result
    }

    fn run_step_in(
        &self,
        id: &str,
        dir: &Path,
        p: &StepProcess,
        output: &mut dyn FnMut(Stream, &[u8]),
    ) -> Result<i32> {
        let rec = ContainerRecord {
            id: id.to_string(),
            name: String::new(),
            created: berth_runtime::now_rfc3339(),
            image: String::new(),
            image_id: Digest::sha256_of(id.as_bytes()),
            layers: vec![],
            config: ProcessConfig {
                hostname: "buildkitsandbox".into(),
                user: p.user.clone(),
                env: p.env.clone(),
                cmd: p.args.clone(),
                working_dir: p.workdir.clone(),
                ..ProcessConfig::default()
            },
            host: HostConfig {
                network: p.network,
                ..HostConfig::default()
            },
            mounts: p
                .mounts
                .iter()
                .map(|m| MountPoint {
                    kind: "bind".into(),
                    name: None,
                    source: m.source.clone(),
                    destination: m.destination.clone(),
                    read_only: m.read_only,
                    anonymous: false,
                    no_copy: true,
                    ..MountPoint::default()
                })
                .collect(),
            restart_count: 0,
            last_run: None,
            restart_policy: Default::default(),
            log_config: Default::default(),
            manually_stopped: false,
            restart_cancelled: false,
            restarting: false,
        };
        let etc = spec::write_etc_files(&rec, dir).map_err(io_err(dir))?;
        let mut layers = vec![p.upper.clone()];
        let empty = dir.join("empty");
        let lower = if p.lower.is_empty() {
            std::fs::create_dir_all(&empty).map_err(io_err(&empty))?;
            vec![empty]
        } else {
            p.lower.clone()
        };
        layers.extend(lower.iter().cloned());
        let spec = spec::build(&rec, &layers, &etc)?;
        let destinations: Vec<String> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().to_string_lossy().to_string())
            .chain(std::iter::once(if p.workdir.is_empty() {
                "/".to_string()
            } else {
                p.workdir.clone()
            }))
            .collect();
        let c = berth_runtime::create(ContainerConfig {
            id: id.to_string(),
            spec,
            rootfs: Rootfs::Overlay {
                lower,
                upper: p.upper.clone(),
                work: dir.join("work"),
                // The upper becomes a layer read right after; a crash loses the build.
                volatile: true,
            },
            state_dir: dir.join("run"),
            open_stdin: false,
            log: None,
            // BuildKit's steps are no containers to `docker events`: no die event.
            on_exit: None,
            on_start: None,
            init: false,
        })?;
        let run = (|| -> Result<i32> {
            if p.network == NetworkMode::Bridge {
                let pid = c.state()?.pid.ok_or_else(|| {
                    EngineError::Invalid("the build step has no process to plug in".into())
                })?;
                let a = berth_runtime::net::connect(&self.bridge, id, pid, &[])?;
                // The default bridge has IPv4.
                let address = a.address.map_or("127.0.0.1".to_string(), |x| x.to_string());
                let text = spec::own_hosts(&rec, "buildkitsandbox", &address);
                std::fs::write(&etc.hosts, text).map_err(io_err(&etc.hosts))?;
            }
            let mut attach = c.attach(AttachOptions {
                stdin: false,
                stdout: true,
                stderr: true,
            })?;
            attach.start()?;
            loop {
                match attach.next_event()? {
                    Some(Event::Stdout(b)) => output(Stream::Stdout, &b),
                    Some(Event::Stderr(b)) => output(Stream::Stderr, &b),
                    Some(Event::Exit(e)) => return Ok(e.code),
                    None => return Ok(c.wait()?.code),
                }
            }
        })();
        let _ = c.delete(true);
        if p.network == NetworkMode::Bridge {
            if let Err(e) = berth_runtime::net::disconnect(&self.bridge, id) {
                tracing::warn!("unplugging build step {id} from the bridge: {e}");
            }
        }
        let code = run?;
        remove_stubs(&p.upper, &p.lower, &destinations);
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_through_layers() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("top");
        let bottom = d.path().join("bottom");
        std::fs::create_dir_all(bottom.join("etc/sub")).unwrap();
        std::fs::write(bottom.join("etc/passwd"), "x").unwrap();
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::write(top.join("etc/group"), "g").unwrap();
        let layers = vec![top.clone(), bottom.clone()];
        assert!(lookup(&layers, "/etc/passwd").is_some());
        assert!(lookup(&layers, "/etc/group").is_some());
        assert!(lookup(&layers, "/etc/sub").unwrap().1.is_dir());
        assert_eq!(
            lookup(&layers, "/etc/group").unwrap().0,
            top.join("etc/group")
        );
        assert!(lookup(&layers, "/nope").is_none());
        assert!(lookup(&layers, "/etc/passwd/x").is_none());
        assert!(lookup(&layers, "/").unwrap().1.is_dir());
    }

    #[test]
    fn stubs_go_and_real_changes_stay() {
        let d = tempfile::tempdir().unwrap();
        let lower = d.path().join("lower");
        let upper = d.path().join("upper");
        std::fs::create_dir_all(lower.join("etc")).unwrap();
        std::fs::create_dir_all(upper.join("etc")).unwrap();
        std::fs::write(upper.join("etc/hosts"), "").unwrap();
        std::fs::create_dir_all(upper.join("proc")).unwrap();
        std::fs::create_dir_all(upper.join("cache/deep")).unwrap();
        std::fs::write(upper.join("etc/made-by-run"), "x").unwrap();
        std::fs::create_dir_all(upper.join("data")).unwrap();
        std::fs::write(upper.join("data/file"), "x").unwrap();
        remove_stubs(
            &upper,
            &[lower],
            &[
                "/etc/hosts".into(),
                "/proc".into(),
                "/cache/deep".into(),
                "/data".into(),
            ],
        );
        assert!(!upper.join("etc/hosts").exists());
        assert!(!upper.join("proc").exists());
        assert!(!upper.join("cache").exists());
        assert!(upper.join("etc/made-by-run").exists());
        assert!(upper.join("data/file").exists());
    }
}
