//! The executor over a real store and runtime (as root): a base image made from the static
//! busybox, Dockerfiles built, the result's files and config checked, the cache exercised.
//! The CLI's end-to-end tests (tests/build.rs) cover what a person sees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::*;
use crate::dockerfile::config;
use crate::engine::Engine;
use crate::images::ImportOptions;
use crate::remote::{Remote, RemoteConfig};

/// Records vertices, for checks of what ran and what was cached.
#[derive(Default)]
struct Recorder {
    lines: Mutex<Vec<String>>,
    names: Mutex<BTreeMap<usize, String>>,
}

impl Recorder {
    fn push(&self, v: usize, what: &str) {
        let name = self
            .names
            .lock()
            .unwrap()
            .get(&v)
            .cloned()
            .unwrap_or_default();
        self.lines.lock().unwrap().push(format!("{what} {name}"));
    }

    fn with(&self, prefix: &str) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| l.strip_prefix(prefix).map(str::to_string))
            .collect()
    }
}

impl Progress for Recorder {
    fn start(&self, v: usize, name: &str) {
        self.names.lock().unwrap().insert(v, name.to_string());
    }
    fn status(&self, _: usize, _: &str) {}
    fn log(&self, _: usize, data: &[u8]) {
        self.lines
            .lock()
            .unwrap()
            .push(format!("log {}", String::from_utf8_lossy(data).trim_end()));
    }
    fn cached(&self, v: usize) {
        self.push(v, "cached");
    }
    fn done(&self, v: usize) {
        self.push(v, "done");
    }
    fn error(&self, v: usize, m: &str) {
        self.push(v, &format!("error {m}"));
    }
    fn warning(&self, t: &str) {
        self.lines.lock().unwrap().push(format!("warning {t}"));
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    engine: Engine,
    remote: Remote,
    rt: tokio::runtime::Runtime,
}

/// A store with `base:1`: busybox, `sh` and a /etc/passwd with `app` (uid 1000).
fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let engine = Engine::open(&root).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let rootfs = dir.path().join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::create_dir_all(rootfs.join("etc")).unwrap();
    std::fs::create_dir_all(rootfs.join("tmp")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    for tool in [
        "sh", "cat", "echo", "ls", "mkdir", "touch", "id", "stat", "env", "rm", "sleep", "wc",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(tool)).unwrap();
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\napp:x:1000:\n").unwrap();
    let tar = dir.path().join("base.tar");
    let ok = std::process::Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let reference = crate::reference::ImageRef::parse("base:1").unwrap();
    rt.block_on(engine.images().import(
        std::fs::File::open(&tar).unwrap(),
        Some(&reference),
        &ImportOptions {
            changes: vec!["ENV PATH=/bin".into(), "CMD [\"sh\"]".into()],
            ..ImportOptions::default()
        },
    ))
    .unwrap();
    let remote = Remote::new(RemoteConfig::default());
    Fixture {
        _dir: dir,
        root,
        engine,
        remote,
        rt,
    }
}

impl Fixture {
    fn build(
        &self,
        ctx: &Path,
        dockerfile: &str,
        tag: &str,
    ) -> (Result<BuildResult, BuildError>, Recorder) {
        self.build_with(ctx, dockerfile, tag, |_| {})
    }

    fn build_with(
        &self,
        ctx: &Path,
        dockerfile: &str,
        tag: &str,
        f: impl FnOnce(&mut BuildOptions),
    ) -> (Result<BuildResult, BuildError>, Recorder) {
        let mut opts = BuildOptions {
            dockerfile: dockerfile.to_string(),
            dockerfile_path: None,
            context: Some(ctx.to_path_buf()),
            tags: vec![crate::reference::ImageRef::parse(tag).unwrap()],
            build_args: BTreeMap::new(),
            target: None,
            no_cache: false,
            pull: false,
            labels: BTreeMap::new(),
            network: crate::engine::NetworkMode::None,
            source_date_epoch: None,
            oci: true,
        };
        f(&mut opts);
        let rec = Recorder::default();
        let r = build(
            &self.engine,
            &|| self.remote.clone(),
            self.rt.handle(),
            &opts,
            &rec,
        );
        (r, rec)
    }

    /// A file of the built image's merged view.
    fn read(&self, tag: &str, path: &str) -> Option<String> {
        let image = self.engine.images().resolve(tag).unwrap();
        let layers: Vec<PathBuf> = image
            .layers
            .iter()
            .rev()
            .map(|l| self.engine.images().snapshot_dir(&l.chain_id))
            .collect();
        let (host, _) = crate::engine::lookup(&layers, path)?;
        std::fs::read_to_string(host).ok()
    }

    fn config(&self, tag: &str) -> config::ImageConfig {
        let image = self.engine.images().resolve(tag).unwrap();
        let v = self.engine.images().config_sync(&image).unwrap();
        config::ImageConfig::from_json(&serde_json::to_vec(&v).unwrap()).unwrap()
    }
}

fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let path = d.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    d
}

#[test]
fn root_build_runs_copies_and_caches() {
    let f = fixture();
    let ctx = context(&[("a.txt", "hello\n"), ("dir/b.txt", "bee\n")]);
    let df = "FROM base:1\nCOPY a.txt /app/\nCOPY dir /app/dir\nRUN cat /app/a.txt /app/dir/b.txt > /app/both\nENV X=1\nCMD [\"cat\", \"/app/both\"]\n";
    let (r, rec) = f.build(ctx.path(), df, "t:1");
    let r = r.unwrap_or_else(|e| panic!("{e}: {:?}", rec.lines.lock().unwrap()));
    assert_eq!((r.ran, r.cached), (3, 0));
    assert_eq!(f.read("t:1", "/app/both").as_deref(), Some("hello\nbee\n"));
    let c = f.config("t:1");
    assert_eq!(
        c.config.cmd,
        Some(vec!["cat".to_string(), "/app/both".to_string()])
    );
    assert!(c.config.env.contains(&"X=1".to_string()));
    assert_eq!(c.rootfs.diff_ids.len(), 4);
    let by: Vec<String> = c
        .history
        .iter()
        .filter_map(|h| h.created_by.clone())
        .collect();
    assert!(
        by.contains(&"COPY a.txt /app/ # buildkit".to_string()),
        "{by:?}"
    );
    assert!(
        by.contains(
            &"RUN /bin/sh -c cat /app/a.txt /app/dir/b.txt > /app/both # buildkit".to_string()
        ),
        "{by:?}"
    );

    // Unchanged: nothing runs, same image.
    let (again, _) = f.build(ctx.path(), df, "t:1");
    let again = again.unwrap();
    assert_eq!((again.ran, again.cached), (0, 3));
    assert_eq!(again.id, r.id);

    // One source changed: that step and the ones after it run again.
    std::fs::write(ctx.path().join("dir/b.txt"), "bee2\n").unwrap();
    let (third, rec) = f.build(ctx.path(), df, "t:1");
    let third = third.unwrap();
    assert_eq!(
        (third.ran, third.cached),
        (2, 1),
        "{:?}",
        rec.lines.lock().unwrap()
    );
    assert_eq!(f.read("t:1", "/app/both").as_deref(), Some("hello\nbee2\n"));
    let _ = &f.root;
}

#[test]
fn root_failing_run_gives_its_exit_code_and_output() {
    let f = fixture();
    let ctx = context(&[]);
    let (r, rec) = f.build(
        ctx.path(),
        "FROM base:1\nRUN echo before\nRUN echo oops; exit 3\n",
        "t:2",
    );
    match r {
        Err(BuildError::Step {
            line,
            exit_code,
            message,
            ..
        }) => {
            assert_eq!(line, 3);
            assert_eq!(exit_code, Some(3));
            assert_eq!(
                message,
                "process \"/bin/sh -c echo oops; exit 3\" did not complete successfully: exit code: 3"
            );
        }
        other => panic!("{:?}", other.map(|r| r.id)),
    }
    assert!(rec.with("log ").contains(&"oops".to_string()));
}

#[test]
fn root_multi_stage_args_heredocs_and_owners() {
    let f = fixture();
    let ctx = context(&[
        ("src/x", "x"),
        ("skip.log", "no"),
        (".dockerignore", "*.log\n"),
    ]);
    let df = r#"ARG GREETING=hello
FROM base:1 AS build
ARG GREETING
ARG WHO=world
RUN echo "$GREETING $WHO" > /out
RUN <<EOF
echo one > /h1
echo two >> /h1
EOF
COPY <<-EOT /etc/conf
	value=$WHO
	EOT
FROM base:1 AS unused
RUN exit 1
FROM base:1
WORKDIR /work
USER app
WORKDIR sub
COPY --from=build /out /h1 /etc/conf ./
COPY --chown=app:app --chmod=600 src /owned/
COPY * /all/
USER root
RUN stat -c '%U %a' /owned/x /work/sub > /stats && id -u app >> /stats
"#;
    let (r, rec) = f.build_with(ctx.path(), df, "m:1", |o| {
        o.build_args.insert("WHO".into(), "berth".into());
    });
    r.unwrap_or_else(|e| panic!("{e}: {:?}", rec.lines.lock().unwrap()));
    assert_eq!(
        f.read("m:1", "/work/sub/out").as_deref(),
        Some("hello berth\n")
    );
    assert_eq!(f.read("m:1", "/work/sub/h1").as_deref(), Some("one\ntwo\n"));
    assert_eq!(
        f.read("m:1", "/work/sub/conf").as_deref(),
        Some("value=berth\n")
    );
    assert_eq!(
        f.read("m:1", "/stats").as_deref(),
        Some("app 600\napp 755\n1000\n")
    );
    assert_eq!(
        f.read("m:1", "/all/src/x"),
        None,
        "a directory's content, not itself"
    );
    assert_eq!(f.read("m:1", "/all/x").as_deref(), Some("x"));
    assert_eq!(f.read("m:1", "/all/skip.log"), None, ".dockerignore'd");
    assert!(
        !rec.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("exit 1")),
        "the unused stage ran"
    );
    let c = f.config("m:1");
    assert_eq!(c.config.working_dir, "/work/sub");
    assert_eq!(c.config.user, "root");
}

#[test]
fn root_reproducible_with_source_date_epoch() {
    let f = fixture();
    let ctx = context(&[("a", "a")]);
    let df = "FROM base:1\nCOPY a /a\nRUN echo x > /b && mkdir -p /d\nENV Z=1\n";
    let ids: Vec<_> = (0..2)
        .map(|_| {
            // No cache: every step runs again, at another time.
            let (r, _) = f.build_with(ctx.path(), df, "r:1", |o| {
                o.source_date_epoch = Some(1_700_000_000);
                o.no_cache = true;
            });
            let r = r.unwrap();
            assert_eq!(r.ran, 2);
            let c = f.config("r:1");
            assert_eq!(c.created.as_deref(), Some("2023-11-14T22:13:20Z"));
            std::thread::sleep(std::time::Duration::from_millis(1100));
            r.manifest
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
}

#[test]
fn root_onbuild_triggers_and_add_archives() {
    let f = fixture();
    let ctx = context(&[("t.txt", "trigger")]);
    let parent = "FROM base:1\nONBUILD COPY t.txt /from-trigger\nONBUILD RUN echo ran > /ran\n";
    let (r, _) = f.build(ctx.path(), parent, "parent:1");
    r.unwrap();
    assert_eq!(f.config("parent:1").config.on_build.len(), 2);
    let tar = ctx.path().join("a.tar.gz");
    let src = tempfile::tempdir().unwrap();
    std::fs::write(src.path().join("inside"), "in").unwrap();
    assert!(std::process::Command::new("tar")
        .arg("-C")
        .arg(src.path())
        .arg("-czf")
        .arg(&tar)
        .arg("inside")
        .status()
        .unwrap()
        .success());
    let (r, rec) = f.build(
        ctx.path(),
        "FROM parent:1\nADD a.tar.gz /x/\nCOPY a.tar.gz /y/\n",
        "child:1",
    );
    r.unwrap_or_else(|e| panic!("{e}: {:?}", rec.lines.lock().unwrap()));
    assert_eq!(
        f.read("child:1", "/from-trigger").as_deref(),
        Some("trigger")
    );
    assert_eq!(f.read("child:1", "/ran").as_deref(), Some("ran\n"));
    assert_eq!(f.read("child:1", "/x/inside").as_deref(), Some("in"));
    let image = f.engine.images().resolve("child:1").unwrap();
    let layers: Vec<PathBuf> = image
        .layers
        .iter()
        .rev()
        .map(|l| f.engine.images().snapshot_dir(&l.chain_id))
        .collect();
    assert!(crate::engine::lookup(&layers, "/y/a.tar.gz").is_some_and(|(_, m)| m.len() > 0));
    assert!(f.config("child:1").config.on_build.is_empty());
}

#[test]
fn root_hostile_sources_are_refused() {
    let f = fixture();
    let ctx = context(&[("ok", "ok")]);
    std::os::unix::fs::symlink("/etc/shadow", ctx.path().join("leak")).unwrap();
    for (df, want) in [
        (
            "FROM base:1\nCOPY ../x /x\n",
            "forbidden path outside the build context: ../x",
        ),
        (
            "FROM base:1\nCOPY /etc/passwd /x\n",
            "forbidden path outside the build context: /etc/passwd",
        ),
        (
            "FROM base:1\nCOPY leak /x\n",
            "forbidden path outside the build context: leak",
        ),
        (
            "FROM base:1\nCOPY nope /x\n",
            "file not found in build context or excluded by .dockerignore",
        ),
    ] {
        let (r, _) = f.build(ctx.path(), df, "h:1");
        let e = r.map(|_| ()).unwrap_err();
        assert!(e.to_string().contains(want), "{df:?}: {e}");
        assert_eq!(e.lines(), Some((2, 2)));
    }
}
