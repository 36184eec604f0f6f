//! Shared helpers for the runtime's root tests: a busybox root filesystem built once per test
//! process, one overlay (upper, work, state dir) per container, and a `run` that creates,
//! attaches, starts and collects output the way the engine's `run` will.

#![allow(dead_code)]

use berth_runtime::oci_spec::runtime::{Mount, Spec};
use berth_runtime::{
    create, default_spec, AttachOptions, Container, ContainerConfig, Event, Exit, Rootfs,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// Fails (never skips) when the tests cannot do what they are for.
pub fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "the runtime tests need root");
    assert!(
        busybox().exists(),
        "the runtime tests need a static busybox: apt-get install -y busybox-static"
    );
}

pub fn busybox() -> PathBuf {
    ["/bin/busybox", "/usr/bin/busybox"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/bin/busybox"))
}

/// A read-only busybox root, shared as an overlay lower dir by every test (and test process:
/// it lives at a fixed place in the temp dir, built once, renamed into place atomically).
pub fn busybox_layer() -> &'static Path {
    static LAYER: OnceLock<PathBuf> = OnceLock::new();
    LAYER.get_or_init(|| {
        require_root();
        let done = std::env::temp_dir().join("berth-test-busybox-v1");
        if done.join("bin/busybox").exists() {
            return done;
        }
        let dir = tempfile::Builder::new()
            .prefix("berth-test-busybox-")
            .tempdir()
            .unwrap()
            .keep();
        let root = dir.join("root");
        for d in [
            "bin",
            "etc",
            "tmp",
            "proc",
            "sys",
            "dev",
            "root",
            "home/user",
        ] {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
        std::fs::copy(busybox(), root.join("bin/busybox")).unwrap();
        let list = std::process::Command::new(root.join("bin/busybox"))
            .arg("--list")
            .output()
            .unwrap();
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if applet != "busybox" {
                let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
            }
        }
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000:user:/home/user:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nuser:x:1000:\n").unwrap();
        std::fs::write(root.join("etc/not-executable"), "#!/bin/sh\necho no\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))
            .unwrap();
        // Another test process may have won the race: then use its copy.
        if std::fs::rename(&root, &done).is_err() {
            assert!(done.join("bin/busybox").exists());
        }
        let _ = std::fs::remove_dir_all(&dir);
        done
    })
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One container's directories: overlay upper and work dirs and a state dir.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub id: String,
}

impl Fixture {
    pub fn new() -> Fixture {
        require_root();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let id = format!("berth-test-{}-{n}", std::process::id());
        let dir = tempfile::Builder::new()
            .prefix("berth-ctr")
            .tempdir()
            .unwrap();
        for d in ["upper", "work"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        Fixture { dir, id }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("container.log")
    }

    pub fn rootfs(&self) -> Rootfs {
        Rootfs::Overlay {
            lower: vec![busybox_layer().to_path_buf()],
            upper: self.dir.path().join("upper"),
            work: self.dir.path().join("work"),
            // Every fixture is removed with its test: the engine's --rm case.
            volatile: true,
        }
    }

    /// docker's defaults with `args` as the command.
    pub fn spec(&self, args: &[&str]) -> Spec {
        let mut spec = default_spec(&self.id);
        let p = spec.process_mut().as_mut().unwrap();
        p.set_args(Some(args.iter().map(|s| s.to_string()).collect()));
        spec
    }

    pub fn config(&self, spec: Spec) -> ContainerConfig {
        ContainerConfig {
            id: self.id.clone(),
            spec,
            rootfs: self.rootfs(),
            state_dir: self.state_dir(),
            open_stdin: false,
            log: Some(berth_runtime::LogConfig::unrotated(
                self.log_path(),
                berth_runtime::LogFormat::JsonFile,
            )),
            on_exit: None,
            on_start: None,
            init: false,
        }
    }

    pub fn create(&self, spec: Spec) -> Container {
        create(self.config(spec)).expect("create")
    }
}

impl Fixture {
    /// What is left of this container on the host: mounts whose point or source lies in the
    /// fixture's directory, and processes (the monitor, the container's) whose working
    /// directory, root or an open file lies there. Empty once it is gone.
    pub fn traces(&self) -> Vec<String> {
        let dir = self.dir.path().to_string_lossy().into_owned();
        let mut found: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&dir) || l.contains(&self.id))
            .map(|l| format!("mount: {l}"))
            .collect();
        let me = std::process::id().to_string();
        for p in std::fs::read_dir("/proc").unwrap().flatten() {
            let pid = p.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
                continue;
            }
            let mut links: Vec<PathBuf> = ["cwd", "root"]
                .iter()
                .filter_map(|l| std::fs::read_link(p.path().join(l)).ok())
                .collect();
            if let Ok(fds) = std::fs::read_dir(p.path().join("fd")) {
                links.extend(
                    fds.flatten()
                        .filter_map(|f| std::fs::read_link(f.path()).ok()),
                );
            }
            if links.iter().any(|l| l.starts_with(&dir)) && alive(pid.parse().unwrap_or(0)) {
                let comm = std::fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                found.push(format!("process {pid} ({})", comm.trim()));
            }
        }
        found
    }
}

/// A test that fails halfway still removes its container.
impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(c) = Container::open(self.state_dir()) {
            let _ = c.delete(true);
        }
    }
}

/// What an attached run saw.
#[derive(Debug)]
pub struct Output {
    pub exit: Exit,
    pub stdout: String,
    pub stderr: String,
}

/// Reads events until the exit.
pub fn collect(attach: &mut berth_runtime::Attach) -> Output {
    let (mut out, mut err) = (vec![], vec![]);
    loop {
        match attach.next_event().expect("event") {
            Some(Event::Stdout(d)) => out.extend(d),
            Some(Event::Stderr(d)) => err.extend(d),
            Some(Event::Exit(exit)) => {
                return Output {
                    exit,
                    stdout: String::from_utf8_lossy(&out).into(),
                    stderr: String::from_utf8_lossy(&err).into(),
                }
            }
            None => panic!("no exit event"),
        }
    }
}

/// create → attach → start → collect → delete, as `berth run --rm` does.
pub fn run(fx: &Fixture, spec: Spec) -> Output {
    let c = fx.create(spec);
    let mut a = c
        .attach(AttachOptions {
            stdin: false,
            stdout: true,
            stderr: true,
        })
        .expect("attach");
    a.start().expect("start");
    let out = collect(&mut a);
    c.delete(false).expect("delete");
    out
}

/// Reads stdout until `needle` shows up (the container says it is ready).
pub fn read_until(attach: &mut berth_runtime::Attach, needle: &str) -> String {
    let mut seen = vec![];
    loop {
        match attach.next_event().expect("event") {
            Some(Event::Stdout(d)) | Some(Event::Stderr(d)) => {
                seen.extend(d);
                if String::from_utf8_lossy(&seen).contains(needle) {
                    return String::from_utf8_lossy(&seen).into();
                }
            }
            other => panic!(
                "container ended before {needle:?}: {other:?}, saw {:?}",
                String::from_utf8_lossy(&seen)
            ),
        }
    }
}

/// A bind mount entry for the Spec.
pub fn bind(source: &Path, dest: &str, ro: bool) -> Mount {
    let mut m = Mount::default();
    m.set_destination(PathBuf::from(dest));
    m.set_typ(Some("bind".into()));
    m.set_source(Some(source.to_path_buf()));
    let mut opts = vec!["rbind".to_string()];
    if ro {
        opts.push("ro".into());
    }
    m.set_options(Some(opts));
    m
}

/// Whether the process `pid` still exists (zombies count as gone).
pub fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").trim_start();
            !state.starts_with('Z') && !state.starts_with('X')
        })
        .unwrap_or(false)
}

/// Every cgroup directory whose name is `id`, in every mounted hierarchy.
pub fn cgroup_dirs(id: &str) -> Vec<PathBuf> {
    let mut found = vec![];
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = h.path().join("berth").join(id);
        if p.exists() {
            found.push(p);
        }
    }
    if Path::new("/sys/fs/cgroup/berth").join(id).exists() {
        found.push(Path::new("/sys/fs/cgroup/berth").join(id));
    }
    found
}
