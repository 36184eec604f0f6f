//! `berth build`, run for real as root (its RUN steps are containers): instructions and
//! flags, docker's messages with line numbers, the cache, multi-stage builds,
//! `.dockerignore`, hostile contexts, reproducible images, images that run in berth and,
//! pushed, in docker and podman; and the corpus: Dockerfiles of `tests/build-corpus` built by
//! berth and by `docker build` into the same files and the same run configuration.
//!
//! Every test has its own client root holding `base:1`, a small alpine-like image made from
//! the static busybox (every applet linked, /etc/passwd, a /usr/share/doc and /etc/motd to
//! delete) and loaded from a deterministic OCI layout, so it has the same id everywhere.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

use crate::util::{require, run, sha256_hex, Berth, Dockerd, Podman, Registry};

/// The base image's root filesystem, as a tar with fixed times and owners.
fn base_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "root",
        "home",
        "var/log",
        "usr/share/doc/busybox",
    ] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777)).unwrap();
    std::fs::set_permissions(root.join("root"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::copy(require("busybox"), root.join("bin/busybox")).unwrap();
    let list = run(Command::new(require("busybox")).arg("--list-full"));
    for applet in String::from_utf8(list.stdout).unwrap().lines() {
        let p = root.join(applet);
        if !p.exists() && applet != "bin/busybox" {
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink("/bin/busybox", &p).unwrap();
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )
    .unwrap();
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(
        root.join("etc/shadow"),
        "root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n",
    )
    .unwrap();
    std::fs::set_permissions(
        root.join("etc/shadow"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::write(root.join("etc/motd"), "base\n").unwrap();
    std::fs::write(root.join("usr/share/doc/busybox/README"), "busybox\n").unwrap();
    let tar = dir.join("rootfs.tar");
    run(Command::new("tar")
        .args([
            "--sort=name",
            "--mtime=@0",
            "--owner=0",
            "--group=0",
            "--numeric-owner",
            "-C",
        ])
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// An OCI layout being written: `put` stores a blob and gives its descriptor's digest and
/// size; `finish` writes `oci-layout` and an `index.json` naming `entry`.
struct Layout(PathBuf);

impl Layout {
    fn new(path: PathBuf) -> Layout {
        std::fs::create_dir_all(path.join("blobs/sha256")).unwrap();
        Layout(path)
    }

    fn put(&self, data: &[u8]) -> (String, usize) {
        let hex = sha256_hex(data);
        std::fs::write(self.0.join("blobs/sha256").join(&hex), data).unwrap();
        (format!("sha256:{hex}"), data.len())
    }

    fn finish(self, entry: Value) -> PathBuf {
        std::fs::write(
            self.0.join("oci-layout"),
            r#"{"imageLayoutVersion":"1.0.0"}"#,
        )
        .unwrap();
        let index = json!({"schemaVersion": 2, "manifests": [entry]});
        std::fs::write(
            self.0.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
        self.0
    }
}

/// `base:1` as an OCI layout tar: the same bytes, and image id, on every run.
fn base_layout(dir: &Path) -> PathBuf {
    let layer = std::fs::read(base_rootfs(dir)).unwrap();
    let layout = Layout::new(dir.join("layout"));
    let (layer_digest, _) = layout.put(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"], "Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "busybox"}],
    }))
    .unwrap();
    let (config_digest, _) = layout.put(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer.len()}],
    }))
    .unwrap();
    let (manifest_digest, _) = layout.put(&manifest);
    let layout = layout.finish(json!({
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": manifest_digest,
        "size": manifest.len(), "annotations": {"io.containerd.image.name": "docker.io/library/base:1"}}));
    let tar = dir.join("base.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&layout)
        .arg("-cf")
        .arg(&tar)
        .arg("."));
    tar
}

/// A client root with `base:1`; the work directory holds the base's rootfs tar too.
struct Root {
    b: Berth,
    work: tempfile::TempDir,
}

fn setup() -> Root {
    setup_with(Berth::new())
}

fn setup_with(b: Berth) -> Root {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "berth build runs its steps as containers: the build tests need root"
    );
    let work = tempfile::tempdir().unwrap();
    let tar = base_layout(work.path());
    b.ok(&["load", "-q", "-i", tar.to_str().unwrap()]);
    Root { b, work }
}

fn ctx(files: &[(&str, &str)]) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    for (p, c) in files {
        let path = d.path().join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    d
}

impl Root {
    /// `berth build --progress=plain ARGS CONTEXT` with the host lock of the container tests.
    fn build(&self, args: &[&str], context: &Path) -> Output {
        let _host = crate::root_containers::shared();
        let mut full = vec!["build", "--progress=plain"];
        full.extend_from_slice(args);
        let c = context.to_str().unwrap();
        full.push(c);
        self.b.cmd(&full).output().unwrap()
    }

    fn build_ok(&self, args: &[&str], context: &Path) -> String {
        let o = self.build(args, context);
        assert!(
            o.status.success(),
            "berth build {args:?} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .filter(|l| !l.starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n")
        );
        String::from_utf8(o.stderr).unwrap()
    }

    fn inspect(&self, image: &str) -> Value {
        let v: Value = serde_json::from_str(&self.b.ok(&["image", "inspect", image])).unwrap();
        v[0].clone()
    }

    /// `cat PATH` in a container of the image.
    fn cat(&self, image: &str, path: &str) -> String {
        let _host = crate::root_containers::shared();
        let o = self
            .b
            .cmd(&[
                "run",
                "--rm",
                "--network",
                "none",
                "--entrypoint",
                "cat",
                image,
                path,
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "cat {path} in {image}: {}",
            err_text(&o)
        );
        String::from_utf8(o.stdout).unwrap()
    }
}

fn err_text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every entry under `root` with its inode, size and (for all but directories) modification
/// time.
fn files_of(root: &Path) -> BTreeMap<PathBuf, (u64, u64, i128)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                todo.push(e.path());
            }
            let t = i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec());
            let t = if m.is_dir() { 0 } else { t };
            out.insert(e.path(), (m.ino(), m.len(), t));
        }
    }
    out
}

/// The names of steps that ran (`#N [..] X` followed by `#N DONE`) and were cached.
fn steps(progress: &str) -> (Vec<String>, Vec<String>) {
    let mut names: BTreeMap<String, String> = BTreeMap::new();
    let (mut ran, mut cached) = (vec![], vec![]);
    for l in progress.lines() {
        let Some((num, rest)) = l.split_once(' ') else {
            continue;
        };
        if rest.starts_with('[') && !rest.starts_with("[internal]") {
            names.insert(num.to_string(), rest.to_string());
        } else if let Some(name) = names.get(num) {
            if rest.starts_with("DONE") && !name.contains("] FROM ") {
                ran.push(name.clone());
            } else if rest == "CACHED" && !name.contains("] FROM ") {
                cached.push(name.clone());
            }
        }
    }
    (ran, cached)
}

#[test]
fn root_build_every_instruction_into_the_config() {
    let r = setup();
    let c = ctx(&[("a.txt", "a\n")]);
    std::fs::hard_link(c.path().join("a.txt"), c.path().join("linked.txt")).unwrap();
    std::fs::write(
        c.path().join("Dockerfile"),
        r#"# syntax=docker/dockerfile:1
FROM base:1
MAINTAINER someone <someone@example.com>
LABEL org.example.one=1 "org.example.two"="two words"
ENV GREETING=hello \
    TARGET=/srv
ARG BUILT_BY=nobody
WORKDIR $TARGET
COPY a.txt .
ADD a.txt added.txt
COPY a.txt linked.txt /links/
RUN echo "$GREETING from $BUILT_BY" > greeting
SHELL ["/bin/sh", "-ec"]
RUN echo shell > shell.txt
USER nobody
EXPOSE 80 53/udp 8000-8001
VOLUME ["/data", "/cache"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD cat /srv/greeting
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /srv/greeting"]
"#,
    )
    .unwrap();
    let out = r.build_ok(
        &[
            "-t",
            "every:1",
            "--build-arg",
            "BUILT_BY=berth",
            "--label",
            "from.flag=yes",
        ],
        c.path(),
    );
    let notes: Vec<&str> = out.lines().filter(|l| l.contains("syntax")).collect();
    assert_eq!(
        notes,
        ["[WARNING]: the `# syntax=docker/dockerfile:1` directive is ignored: berth reads Dockerfiles itself"]
    );
    let i = r.inspect("every:1");
    // The image id at the end of the progress, and the name, as BuildKit prints them.
    let id = i["Id"].as_str().unwrap();
    let end: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with('#'))
        .rev()
        .take(3)
        .collect();
    let v = end[0].split(' ').next().unwrap();
    assert!(end[0].starts_with(&format!("{v} DONE ")), "{out}");
    assert_eq!(
        end[1..],
        [
            format!("{v} naming to docker.io/library/every:1 done"),
            format!("{v} writing image {id} done"),
        ],
        "{out}"
    );
    let cfg = &i["Config"];
    assert_eq!(i["Author"], "someone <someone@example.com>");
    assert_eq!(cfg["Labels"]["org.example.one"], "1");
    assert_eq!(cfg["Labels"]["org.example.two"], "two words");
    assert_eq!(cfg["Labels"]["from.flag"], "yes");
    let env: Vec<&str> = cfg["Env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert!(
        env.contains(&"GREETING=hello") && env.contains(&"TARGET=/srv"),
        "{env:?}"
    );
    assert!(
        !env.iter().any(|e| e.starts_with("BUILT_BY")),
        "ARGs stay out of the image"
    );
    assert_eq!(cfg["WorkingDir"], "/srv");
    assert_eq!(cfg["User"], "nobody");
    assert_eq!(
        cfg["ExposedPorts"],
        json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
    );
    assert_eq!(cfg["Volumes"], json!({"/data": {}, "/cache": {}}));
    assert_eq!(cfg["StopSignal"], "SIGQUIT");
    assert_eq!(
        cfg["Healthcheck"]["Test"],
        json!(["CMD-SHELL", "cat /srv/greeting"])
    );
    assert_eq!(cfg["Healthcheck"]["Interval"], 5_000_000_000u64);
    assert_eq!(cfg["Healthcheck"]["Retries"], 4);
    assert_eq!(cfg["OnBuild"], json!(["RUN echo triggered"]));
    assert_eq!(cfg["Shell"], json!(["/bin/sh", "-ec"]));
    assert_eq!(cfg["Entrypoint"], json!(["/bin/sh", "-c"]));
    assert_eq!(cfg["Cmd"], json!(["cat /srv/greeting"]));
    assert_eq!(r.cat("every:1", "/srv/greeting"), "hello from berth\n");
    assert_eq!(r.cat("every:1", "/srv/added.txt"), "a\n");
    // Hard links in the context stay links.
    let o =
        r.b.cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "stat",
            "every:1",
            "-c",
            "%h %i",
            "/links/a.txt",
            "/links/linked.txt",
        ])
        .output()
        .unwrap();
    let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 2, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(lines[0], lines[1], "not one inode: {lines:?}");
    assert!(lines[0].starts_with("2 "), "{lines:?}");
    // History: one entry per instruction (BuildKit's words), diff ids for the layer steps.
    let h = r.b.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}",
        "every:1",
    ]);
    for want in [
        "MAINTAINER someone <someone@example.com>",
        "ENV GREETING=hello TARGET=/srv",
        "ARG BUILT_BY=berth",
        "WORKDIR /srv",
        "COPY a.txt . # buildkit",
        "RUN |1 BUILT_BY=berth /bin/sh -c echo \"$GREETING from $BUILT_BY\" > greeting # buildkit",
        "RUN |1 BUILT_BY=berth /bin/sh -ec echo shell > shell.txt # buildkit",
        "EXPOSE [53/udp 80/tcp 8000/tcp 8001/tcp]",
        "CMD [\"cat /srv/greeting\"]",
    ] {
        assert!(
            h.lines().any(|l| l == want),
            "no history line {want:?} in:\n{h}"
        );
    }
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 1 + 6);
    // A child runs the trigger, and does not carry it.
    let child = ctx(&[("Dockerfile", "FROM every:1\nUSER root\n")]);
    let out = r.build_ok(&["-t", "child:1"], child.path());
    assert!(out.contains("ONBUILD RUN echo triggered"), "{out}");
    assert!(out.contains("triggered"), "{out}");
    assert_eq!(r.inspect("child:1")["Config"]["OnBuild"], Value::Null);
}

#[test]
fn root_build_flags() {
    let r = setup();
    let c = ctx(&[
        ("Dockerfile", "FROM base:1\nARG V=default\nRUN echo $V > /v\n"),
        ("other.Dockerfile", "FROM base:1 AS first\nRUN echo first > /f\nFROM base:1 AS second\nRUN echo second > /f\n"),
    ]);
    let iid = r.work.path().join("iid");
    let out = r.b.cmd(&[
        "build",
        "-q",
        "-t",
        "flags:1",
        "-t",
        "flags:2",
        "--build-arg",
        "V=given",
        "--iidfile",
        iid.to_str().unwrap(),
        c.path().to_str().unwrap(),
    ]);
    let out = {
        let _h = crate::root_containers::shared();
        run(&mut { out })
    };
    let id = String::from_utf8(out.stdout).unwrap();
    assert!(id.trim().starts_with("sha256:"), "-q prints the id: {id:?}");
    assert!(
        out.stderr.is_empty(),
        "-q is quiet: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id.trim());
    // The journal has docker's (BuildKit's) events: a tag per name, no step as a container.
    let journal = std::fs::read_to_string(r.b.root.join("events/journal")).unwrap();
    let events: Vec<Value> = journal
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for name in ["flags:1", "flags:2"] {
        assert!(
            events.iter().any(|e| e["Type"] == "image"
                && e["Action"] == "tag"
                && e["Actor"]["ID"] == id.trim()
                && e["Actor"]["Attributes"]["name"] == name),
            "{journal}"
        );
    }
    assert!(
        !events.iter().any(|e| e["Type"] == "container"),
        "{journal}"
    );
    assert_eq!(r.cat("flags:2", "/v"), "given\n");
    // --build-arg KEY takes the value from the environment.
    let mut cmd = r.b.cmd(&[
        "build",
        "-q",
        "-t",
        "env:1",
        "--build-arg",
        "V",
        c.path().to_str().unwrap(),
    ]);
    cmd.env("V", "from-env");
    {
        let _h = crate::root_containers::shared();
        run(&mut cmd);
    }
    assert_eq!(r.cat("env:1", "/v"), "from-env\n");
    // -f and --target: only the target's stages run.
    let f = c.path().join("other.Dockerfile");
    let out = r.build_ok(
        &["-f", f.to_str().unwrap(), "--target", "first", "-t", "t:1"],
        c.path(),
    );
    assert_eq!(r.cat("t:1", "/f"), "first\n");
    assert!(!out.contains("second"), "{out}");
    // --no-cache runs every step again.
    r.build_ok(&["-t", "flags:1"], c.path());
    let (_, cached) = steps(&r.build_ok(&["-t", "flags:1"], c.path()));
    assert!(!cached.is_empty());
    let (ran, cached) = steps(&r.build_ok(&["--no-cache", "-t", "flags:1"], c.path()));
    assert!(cached.is_empty() && ran.len() == 1, "{ran:?} {cached:?}");
    // --network: none has only loopback, host sees the host's interfaces.
    let net = ctx(&[(
        "Dockerfile",
        "FROM base:1\nRUN ls /sys/class/net | sort > /ifaces\n",
    )]);
    r.build_ok(&["--network", "none", "-t", "net:none"], net.path());
    assert_eq!(r.cat("net:none", "/ifaces"), "lo\n");
    r.build_ok(&["--network", "host", "-t", "net:host"], net.path());
    let host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(r.cat("net:host", "/ifaces").lines().count(), host.len());
    r.build_ok(&["-t", "net:default"], net.path());
    assert!(
        r.cat("net:default", "/ifaces").contains("eth0"),
        "the default network is the bridge"
    );
    let o = r.build(&["--network", "bogus"], net.path());
    assert!(!o.status.success() && err_text(&o).contains("network mode \"bogus\" not supported"));
    // --platform: this host's only.
    r.build_ok(&["--platform", "linux/amd64", "-t", "p:1"], net.path());
    let o = r.build(&["--platform", "linux/s390x"], net.path());
    assert!(
        !o.status.success() && err_text(&o).contains("host's platform"),
        "{}",
        err_text(&o)
    );
    // -o type=tar and type=local: the image's files.
    let tar = r.work.path().join("fs.tar");
    r.build_ok(
        &["-o", &format!("type=tar,dest={}", tar.display())],
        c.path(),
    );
    let list = run(Command::new("tar").arg("-tf").arg(&tar));
    assert!(String::from_utf8_lossy(&list.stdout)
        .lines()
        .any(|l| l.trim_start_matches("./") == "v"));
    let dir = r.work.path().join("fs");
    r.build_ok(
        &["-o", &format!("type=local,dest={}", dir.display())],
        c.path(),
    );
    assert_eq!(std::fs::read_to_string(dir.join("v")).unwrap(), "default\n");
    // The context and the Dockerfile from STDIN.
    let mut cmd = r.b.cmd(&["build", "-q", "-t", "stdin:1", "-"]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = {
        let _h = crate::root_containers::shared();
        let mut child = cmd.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"FROM base:1\nRUN echo piped > /p\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r.cat("stdin:1", "/p"), "piped\n");
    let ctar = r.work.path().join("ctx.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(c.path())
        .arg("-cf")
        .arg(&ctar)
        .arg("."));
    let mut cmd =
        r.b.cmd(&["build", "-q", "-t", "stdin:2", "--build-arg", "V=tar", "-"]);
    cmd.stdin(std::fs::File::open(&ctar).unwrap())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let out = {
        let _h = crate::root_containers::shared();
        cmd.output().unwrap()
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r.cat("stdin:2", "/v"), "tar\n");
}

#[test]
fn root_build_errors_name_the_line() {
    let r = setup();
    let cases: &[(&str, &str)] = &[
        ("FROM base:1\nRUNN echo\n", "dockerfile parse error on line 2: unknown instruction: RUNN (did you mean RUN?)"),
        ("FROM base:1\n\nCOPY onlyone\n", "dockerfile parse error on line 3: COPY requires at least two arguments, but only one was provided. Destination could not be determined"),
        ("FROM base:1\nENV A\n", "dockerfile parse error on line 2: ENV must have two arguments"),
        ("RUN echo\n", "dockerfile parse error on line 1: no build stage in current context"),
        ("FROM base:1\nRUN --network=bridge true\n", "dockerfile parse error on line 2: invalid network mode \"bridge\""),
        ("FROM base:1\nRUN <<EOF\ntrue\n", "dockerfile parse error on line 2: unterminated heredoc"),
        ("FROM base:1\nCOPY --from=later / /\nFROM base:1 AS later\n", "cannot copy from stage \"later\", it needs to be defined before current stage \"stage-0\""),
        ("FROM base:1\nWORKDIR ${X\n", "failed to process \"${X\": syntax error: missing '}'"),
        ("FROM nosuchimage:1\n", "nosuchimage:1"),
        ("FROM base:1\nCOPY missing /x\n", "file not found in build context or excluded by .dockerignore: stat missing: file does not exist"),
        ("FROM base:1\nSTOPSIGNAL SIGNOPE\n", "Invalid signal: SIGNOPE"),
        ("FROM base:1\nRUN echo failing-output && exit 7\n", "process \"/bin/sh -c echo failing-output && exit 7\" did not complete successfully: exit code: 7"),
    ];
    for (df, want) in cases {
        let c = ctx(&[("Dockerfile", df)]);
        let o = r.build(&[], c.path());
        let e = err_text(&o);
        assert_eq!(o.status.code(), Some(1), "{df:?}: {e}");
        assert!(e.contains(want), "{df:?}: wanted {want:?} in:\n{e}");
        assert!(e.contains("ERROR: failed to solve: "), "{e}");
    }
    // The failing step's output and the lines around it.
    let c = ctx(&[(
        "Dockerfile",
        "FROM base:1\nRUN true\nRUN echo failing-output && exit 7\nCMD x\n",
    )]);
    let e = err_text(&r.build(&[], c.path()));
    assert!(
        e.contains(" > [3/3] RUN echo failing-output && exit 7:"),
        "{e}"
    );
    assert!(e.lines().any(|l| l.ends_with(" failing-output")), "{e}");
    assert!(
        e.contains("Dockerfile:3\n") && e.contains("   3 | >>> RUN echo failing-output && exit 7"),
        "{e}"
    );
    // Unused build args and empty continuation lines are warned about.
    let c = ctx(&[("Dockerfile", "FROM base:1\nRUN true \\\n\n  && true\n")]);
    let e = r.build_ok(&["--build-arg", "NOBODY=x"], c.path());
    assert!(
        e.contains("[WARNING]: One or more build-args [NOBODY] were not consumed"),
        "{e}"
    );
    assert!(e.contains("Empty continuation line"), "{e}");
}

#[test]
fn root_build_cache_reuses_steps_and_prunes() {
    let r = setup();
    let c = ctx(&[
        ("Dockerfile", "FROM base:1\nCOPY one /one\nRUN cat /one > /copy1\nCOPY two /two\nRUN cat /two > /copy2\nENV DONE=1\n"),
        ("one", "1"),
        ("two", "2"),
    ]);
    let (ran, cached) = steps(&r.build_ok(&["-t", "c:1"], c.path()));
    assert_eq!((ran.len(), cached.len()), (4, 0), "{ran:?}");
    let id = r.inspect("c:1")["Id"].clone();
    // Unchanged: no step runs, the same image, and nothing in the store is written again
    // (only the events journal gets the tag event docker gives every build; every command,
    // build or not, may note the store's tags as seen in images/synced.json).
    let before = files_of(&r.b.root);
    let (ran, cached) = steps(&r.build_ok(&["-t", "c:1"], c.path()));
    assert_eq!((ran.len(), cached.len()), (0, 4), "{ran:?}");
    let after = files_of(&r.b.root);
    let changed: Vec<&PathBuf> = after
        .iter()
        .filter(|(p, m)| {
            before.get(*p) != Some(m)
                && !p.starts_with(r.b.root.join("events"))
                && !p.ends_with("images/synced.json")
        })
        .map(|(p, _)| p)
        .collect();
    assert!(changed.is_empty(), "a cached rebuild wrote {changed:?}");
    assert_eq!(r.inspect("c:1")["Id"], id);
    // On a terminal, the live view: redrawn in place, its last frame every step finished.
    let o =
        r.b.cmd(&[
            "build",
            "--progress=tty",
            "-t",
            "c:1",
            c.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let e = err_text(&o);
    assert!(o.status.success(), "{e}");
    let last = e.rsplit("[+] Building ").next().unwrap();
    let head = last.lines().next().unwrap();
    let (counts, end) = head.split_once(") ").unwrap_or_else(|| panic!("{head:?}"));
    let (done, total) = counts.split_once(" (").unwrap().1.split_once('/').unwrap();
    assert_eq!((done, end), (total, "FINISHED"), "{e:?}");
    assert!(
        e.contains("\x1b[") && last.contains(" => CACHED [3/5] RUN cat /one > /copy1"),
        "{e:?}"
    );
    // A touched time only: still cached (content decides).
    let f = std::fs::File::options()
        .write(true)
        .open(c.path().join("one"))
        .unwrap();
    f.set_modified(std::time::SystemTime::now()).unwrap();
    let (ran, _) = steps(&r.build_ok(&["-t", "c:1"], c.path()));
    assert!(ran.is_empty(), "{ran:?}");
    // One source changed: its COPY and what follows run again, not what precedes.
    std::fs::write(c.path().join("two"), "2 changed").unwrap();
    let (ran, cached) = steps(&r.build_ok(&["-t", "c:1"], c.path()));
    assert_eq!(
        ran,
        ["[4/5] COPY two /two", "[5/5] RUN cat /two > /copy2"],
        "{cached:?}"
    );
    assert_eq!(
        cached,
        ["[2/5] COPY one /one", "[3/5] RUN cat /one > /copy1"]
    );
    assert_eq!(r.cat("c:1", "/copy2"), "2 changed");
    // rmi keeps what the cache holds, and so does a registry's collection over the same
    // root, past its grace time for new blobs; builder prune -a removes the cache, then the
    // image's layers still serve the image.
    r.b.ok(&["rmi", "c:1"]);
    crate::util::backdate(&r.b.root);
    r.b.ok(&["--root", r.b.root.to_str().unwrap(), "gc"]);
    let (ran, _) = steps(&r.build_ok(&["-t", "c:1"], c.path()));
    assert!(ran.is_empty(), "the cache outlived the image: {ran:?}");
    let out = r.b.ok(&["builder", "prune", "-a", "-f"]);
    assert!(
        out.starts_with("Deleted build cache objects:\n") && out.contains("Total reclaimed space:"),
        "{out}"
    );
    assert_eq!(r.cat("c:1", "/copy1"), "1");
    let (ran, _) = steps(&r.build_ok(&["-t", "c:1"], c.path()));
    assert_eq!(ran.len(), 4, "{ran:?}");
    // Without -a only cache no image uses goes (the image replaced is pruned first).
    std::fs::write(c.path().join("two"), "2 again").unwrap();
    r.build_ok(&["-t", "c:1"], c.path());
    r.b.ok(&["image", "prune", "-f"]);
    let out = r.b.ok(&["builder", "prune", "-f"]);
    assert_eq!(out.lines().filter(|l| l.len() == 25).count(), 2, "{out}");
    let (ran, _) = steps(&r.build_ok(&["-t", "c:1"], c.path()));
    assert!(ran.is_empty(), "{ran:?}");
    // RUN --mount=type=cache keeps its files between builds, not in the image.
    let m = ctx(&[("Dockerfile", "FROM base:1\nARG N\nRUN --mount=type=cache,target=/var/cache/pkg echo $N >> /var/cache/pkg/log && cat /var/cache/pkg/log > /seen\n")]);
    r.build_ok(&["--build-arg", "N=first", "-t", "m:1"], m.path());
    r.build_ok(&["--build-arg", "N=second", "-t", "m:1"], m.path());
    assert_eq!(r.cat("m:1", "/seen"), "first\nsecond\n");
    let o =
        r.b.cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "m:1",
            "ls",
            "/var/cache/pkg",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).trim().is_empty());
}

#[test]
fn root_build_from_digest_scratch_link_and_proxy_args() {
    let r = setup();
    // FROM by digest: the base pushed to a registry, built from in a store without it.
    let reg = Registry::serve_root(&r.work.path().join("registry"));
    let remote = format!("{}/lib/base:1", reg.addr);
    r.b.ok(&["tag", "base:1", &remote]);
    let pushed = r.b.ok(&["push", &remote]);
    let digest = pushed
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_else(|| panic!("no digest in {pushed:?}"))
        .to_string();
    let fresh = setup_with(Berth::new());
    let by_digest = format!("{}/lib/base@{digest}", reg.addr);
    let c = ctx(&[(
        "Dockerfile",
        &format!("FROM {by_digest}\nRUN echo from-digest > /d\n"),
    )]);
    fresh.build_ok(&["-t", "d:1"], c.path());
    assert_eq!(fresh.cat("d:1", "/d"), "from-digest\n");
    let wrong = format!("{}/lib/base@sha256:{}", reg.addr, "0".repeat(64));
    let c = ctx(&[("Dockerfile", &format!("FROM {wrong}\n"))]);
    let o = fresh.build(&[], c.path());
    assert!(!o.status.success());
    assert!(err_text(&o).contains(&wrong), "{}", err_text(&o));

    // FROM scratch: the image holds the COPY's layer and nothing else.
    let c = ctx(&[
        (
            "Dockerfile",
            "FROM scratch\nCOPY hello /hello\nCMD [\"/hello\"]\n",
        ),
        ("hello", "hi\n"),
    ]);
    let tar = r.work.path().join("scratch.tar");
    r.build_ok(&["-t", "s:1"], c.path());
    r.build_ok(
        &["-o", &format!("type=tar,dest={}", tar.display())],
        c.path(),
    );
    let i = r.inspect("s:1");
    assert_eq!(i["RootFS"]["Layers"].as_array().unwrap().len(), 1, "{i}");
    assert_eq!(i["Config"]["Cmd"], json!(["/hello"]));
    let listed = run(Command::new("tar").arg("-tf").arg(&tar));
    let names: Vec<String> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != ".")
        .collect();
    assert_eq!(names, ["hello"]);

    // COPY --link: its layer does not depend on what is below it; a changed RUN under it
    // leaves the step cached and its layer the same.
    let c = ctx(&[
        (
            "Dockerfile",
            "FROM base:1\nARG V\nRUN echo $V > /v\nCOPY --link f /f\n",
        ),
        ("f", "linked\n"),
    ]);
    r.build_ok(&["--build-arg", "V=1", "-t", "l:1"], c.path());
    let (ran, cached) = steps(&r.build_ok(&["--build-arg", "V=2", "-t", "l:2"], c.path()));
    assert_eq!(ran, ["[2/3] RUN echo 2 > /v"], "{cached:?}");
    assert_eq!(cached, ["[3/3] COPY --link f /f"]);
    let top = |tag: &str| {
        r.inspect(tag)["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .last()
            .cloned()
    };
    assert_eq!(top("l:1"), top("l:2"));
    assert_eq!(r.cat("l:2", "/v"), "2\n");
    assert_eq!(r.cat("l:2", "/f"), "linked\n");

    // The predefined proxy ARGs: seen by RUN without an ARG line, not warned about as
    // unused, kept out of the image's environment and history and out of the cache key.
    let c = ctx(&[(
        "Dockerfile",
        "FROM base:1\nRUN echo \"$HTTP_PROXY $no_proxy\" > /p\n",
    )]);
    let proxy = |p: &str| {
        r.build_ok(
            &[
                "--build-arg",
                &format!("HTTP_PROXY=http://127.0.0.1:{p}"),
                "--build-arg",
                "no_proxy=localhost",
                "-t",
                "p:1",
            ],
            c.path(),
        )
    };
    let out = proxy("3128");
    assert!(!out.contains("were not consumed"), "{out}");
    assert_eq!(r.cat("p:1", "/p"), "http://127.0.0.1:3128 localhost\n");
    let i = r.inspect("p:1");
    assert!(!i["Config"]["Env"].to_string().contains("3128"), "{i}");
    let history =
        r.b.ok(&["history", "--no-trunc", "--format", "{{.CreatedBy}}", "p:1"]);
    assert!(
        !history.contains("3128") && !history.contains("no_proxy="),
        "{history}"
    );
    let (ran, cached) = steps(&proxy("3129"));
    assert!(ran.is_empty(), "a changed proxy reran {ran:?}");
    assert_eq!(cached, ["[2/2] RUN echo \"$HTTP_PROXY $no_proxy\" > /p"]);
}

#[test]
fn root_build_multi_stage_in_parallel() {
    let r = setup();
    let port = crate::util::free_port();
    // The two stages meet over the host's network: the build ends only if they run at once.
    // The server reads with -e: a plain `nc -l` shuts its sending side when its (empty) stdin
    // ends, and the client may see that and leave before it has sent anything. The client
    // tries for a minute: a loaded machine can start the server's container seconds later.
    let df = format!(
        "FROM base:1 AS server\nRUN nc -l -p {port} -e sh -c 'cat > /got'\n\
         FROM base:1 AS client\nRUN for i in $(seq 600); do echo hi | nc 127.0.0.1 {port} && exit 0; sleep 0.1; done; exit 1\n\
         FROM base:1 AS skipped\nRUN exit 9\n\
         FROM base:1\nCOPY --from=server /got /got\nCOPY --from=client /etc/motd /motd\n"
    );
    let c = ctx(&[("Dockerfile", &df)]);
    let out = r.build_ok(&["--network", "host", "-t", "par:1"], c.path());
    assert_eq!(r.cat("par:1", "/got"), "hi\n");
    assert!(
        !out.contains("exit 9"),
        "a stage the target does not need ran:\n{out}"
    );
    assert!(out.contains("[server 2/2] RUN nc -l"), "{out}");
}

#[test]
fn root_build_dockerignore_and_hostile_contexts() {
    let r = setup();
    let c = ctx(&[
        ("Dockerfile", "FROM base:1\nCOPY . /ctx/\n"),
        (
            ".dockerignore",
            "# comment\n*.log\ndocs\n!docs/keep.md\n**/*.tmp\n",
        ),
        ("a.txt", "a"),
        ("b.log", "b"),
        ("docs/readme.md", "r"),
        ("docs/keep.md", "k"),
        ("deep/x/y.tmp", "t"),
        ("deep/x/z.txt", "z"),
    ]);
    r.build_ok(&["-t", "ign:1"], c.path());
    let o =
        r.b.cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "ign:1",
            "find",
            "/ctx",
            "-type",
            "f",
        ])
        .output()
        .unwrap();
    let mut files: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "/ctx/.dockerignore",
            "/ctx/Dockerfile",
            "/ctx/a.txt",
            "/ctx/deep/x/z.txt",
            "/ctx/docs/keep.md"
        ]
    );
    // Sources outside the context are refused.
    let h = ctx(&[("ok", "ok")]);
    std::os::unix::fs::symlink("/etc", h.path().join("etc-link")).unwrap();
    std::os::unix::fs::symlink("../../..", h.path().join("up")).unwrap();
    for (df, want) in [
        (
            "FROM base:1\nCOPY ../outside /x\n",
            "forbidden path outside the build context: ../outside",
        ),
        (
            "FROM base:1\nCOPY /etc/passwd /x\n",
            "forbidden path outside the build context: /etc/passwd",
        ),
        (
            "FROM base:1\nCOPY etc-link/passwd /x\n",
            "forbidden path outside the build context: etc-link/passwd",
        ),
        (
            "FROM base:1\nCOPY up/etc /x\n",
            "forbidden path outside the build context: up/etc",
        ),
        (
            "FROM base:1\nADD ../outside.tar /x\n",
            "forbidden path outside the build context",
        ),
    ] {
        std::fs::write(h.path().join("Dockerfile"), df).unwrap();
        let o = r.build(&[], h.path());
        assert!(!o.status.success(), "{df:?} was accepted");
        let e = err_text(&o);
        assert!(e.contains(want), "{df:?}: {e}");
        assert!(e.contains("Dockerfile:2\n"), "{e}");
    }
}

#[test]
fn root_build_context_of_100000_files() {
    // On tmpfs, store included: the test is about berth, not about this disk's file creation
    // (100,000 files cost ~20 s to create on ext4 here, ~1 s in memory).
    let shm = tempfile::tempdir_in("/dev/shm").unwrap();
    let r = setup_with(Berth::with_root(shm.path().join("root")));
    let big = shm.path().join("ctx");
    for d in 0..100 {
        let dir = big.join(format!("files/{d:03}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            std::fs::write(dir.join(f.to_string()), [b'0' + (f % 10) as u8]).unwrap();
        }
    }
    std::fs::write(big.join(".dockerignore"), "files/099\n").unwrap();
    std::fs::write(
        big.join("Dockerfile"),
        "FROM base:1\nCOPY files /files\nRUN find /files -type f | wc -l > /count\n",
    )
    .unwrap();
    let out = r.build_ok(&["-t", "big:1"], &big);
    assert!(out.contains("transferring context: "), "{out}");
    assert_eq!(r.cat("big:1", "/count").trim(), "99000");
    let (ran, _) = steps(&r.build_ok(&["-t", "big:1"], &big));
    assert!(ran.is_empty(), "{ran:?}");
    // The store goes before the tmpfs directory does.
    drop(r);
}

/// A local HTTP server for ADD: serves `body` at any path, with a Last-Modified time.
fn serve_once(body: &'static [u8], count: usize) -> (String, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let h = std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        }
    });
    (format!("http://{addr}"), h)
}

#[test]
fn root_build_add_urls_and_archives() {
    let r = setup();
    let (url, server) = serve_once(b"remote content\n", 3);
    let sum = format!("sha256:{}", sha256_hex(b"remote content\n"));
    let c = ctx(&[]);
    let inner = tempfile::tempdir().unwrap();
    std::fs::write(inner.path().join("in.txt"), "inside").unwrap();
    run(Command::new("tar")
        .arg("-C")
        .arg(inner.path())
        .arg("-czf")
        .arg(c.path().join("pack.tgz"))
        .arg("in.txt"));
    std::fs::write(
        c.path().join("Dockerfile"),
        format!("FROM base:1\nADD {url}/files/remote.txt /r/\nADD --checksum={sum} {url}/x /checked\nADD pack.tgz /unpacked/\nRUN stat -c '%a %Y' /r/remote.txt > /meta\n"),
    )
    .unwrap();
    r.build_ok(&["-t", "add:1"], c.path());
    assert_eq!(r.cat("add:1", "/r/remote.txt"), "remote content\n");
    assert_eq!(r.cat("add:1", "/checked"), "remote content\n");
    assert_eq!(r.cat("add:1", "/unpacked/in.txt"), "inside");
    assert_eq!(r.cat("add:1", "/meta"), "600 1445412480\n");
    let bad = format!("sha256:{}", sha256_hex(b"other"));
    std::fs::write(
        c.path().join("Dockerfile"),
        format!("FROM base:1\nADD --checksum={bad} {url}/x /x\n"),
    )
    .unwrap();
    let o = r.build(&[], c.path());
    assert!(
        err_text(&o).contains(&format!("digest mismatch {bad}: {sum}")),
        "{}",
        err_text(&o)
    );
    server.join().unwrap();
}

#[test]
fn root_build_reproducible_with_source_date_epoch() {
    let c = ctx(&[
        ("Dockerfile", "FROM base:1\nCOPY f /f\nRUN echo made > /made && mkdir /dir && touch /dir/file\nENV X=1\n"),
        ("f", "f"),
    ]);
    let ids: Vec<(String, Value)> = (0..2)
        .map(|_| {
            let r = setup();
            let mut cmd =
                r.b.cmd(&["build", "-q", "-t", "repro:1", c.path().to_str().unwrap()]);
            cmd.env("SOURCE_DATE_EPOCH", "1700000000");
            let out = {
                let _h = crate::root_containers::shared();
                run(&mut cmd)
            };
            let i = r.inspect("repro:1");
            assert_eq!(i["Created"], "2023-11-14T22:13:20Z");
            // The next build is a second later: its files' times differ unless clamped.
            std::thread::sleep(std::time::Duration::from_millis(1100));
            (String::from_utf8(out.stdout).unwrap(), i["RootFS"].clone())
        })
        .collect();
    assert_eq!(ids[0], ids[1], "two builds in two stores, a second apart");
}

#[test]
fn root_build_result_runs_in_berth_docker_and_podman() {
    let r = setup();
    let c = ctx(&[
        (
            "Dockerfile",
            "FROM base:1\nCOPY msg /msg\nRUN echo built >> /msg\nCMD [\"cat\", \"/msg\"]\n",
        ),
        ("msg", "hello\n"),
    ]);
    let reg = Registry::serve_root(&r.work.path().join("registry"));
    let name = format!("{}/built/app:1", reg.addr);
    let docker_name = format!("{}/built/docker-types:1", reg.addr);
    r.build_ok(&["-t", &name, "--push"], c.path());
    r.build_ok(
        &["-t", &docker_name, "--push", "-o", "type=docker"],
        c.path(),
    );
    // OCI media types by default, docker's when asked.
    let media = |n: &str| -> String {
        let raw = run(Command::new(require("skopeo")).args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &format!("docker://{n}"),
        ]));
        let v: Value = serde_json::from_slice(&raw.stdout).unwrap();
        v["mediaType"].as_str().unwrap_or_default().to_string()
    };
    assert_eq!(media(&name), "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(
        media(&docker_name),
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let _h = crate::root_containers::shared();
    assert_eq!(
        r.b.ok(&["run", "--rm", "--network", "none", &name]),
        "hello\nbuilt\n"
    );
    let d = Dockerd::start();
    d.ok(&["pull", "-q", &name]);
    assert_eq!(
        d.ok(&["run", "--rm", "--network", "none", &name]),
        "hello\nbuilt\n"
    );
    let p = Podman::new();
    p.run(&["pull", "-q", "--tls-verify=false", &name]);
    let out = p.run(&[
        "run",
        "--rm",
        "--runtime",
        "runc",
        "--ulimit",
        "nofile=20000:20000",
        "--ulimit",
        "nproc=32768:32768",
        "--network",
        "none",
        &name,
    ]);
    assert_eq!(out, "hello\nbuilt\n");
}

// The corpus: each directory of tests/build-corpus built by berth and by docker's classic
// builder, the two images' files compared. (dockerd's BuildKit here reads only Dockerfile
// 1.2-era syntax and fetches a frontend for `# syntax=`: the features it can build are
// compared in `root_build_buildkit_features_match_buildkit`.)

/// Files the corpus needs that git does not keep well (archives, modes, symlinks).
fn prepare(name: &str, dir: &Path) {
    match name {
        "dockerignore" => {
            for (p, c) in [
                ("a.txt", "a"),
                ("b.log", "b"),
                ("tmp/x", "x"),
                ("tmp/keep.txt", "k"),
                ("sub/c.bak", "c"),
                ("sub/d.txt", "d"),
                ("secret.key", "s"),
            ] {
                let path = dir.join(p);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(path, c).unwrap();
            }
        }
        "archives" => {
            let src = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(src.path().join("lib/deep")).unwrap();
            std::fs::write(src.path().join("lib/a.so"), "so").unwrap();
            std::fs::write(src.path().join("lib/deep/b.txt"), "b").unwrap();
            run(Command::new("tar")
                .args(["--owner=0", "--group=0", "--numeric-owner", "-C"])
                .arg(src.path())
                .arg("-czf")
                .arg(dir.join("vendor.tar.gz"))
                .arg("lib"));
        }
        "links" => {
            let l = dir.join("links");
            std::fs::create_dir_all(&l).unwrap();
            std::fs::write(l.join("target.txt"), "target").unwrap();
            std::os::unix::fs::symlink("target.txt", l.join("rel")).unwrap();
            std::os::unix::fs::symlink(".", l.join("self")).unwrap();
            std::fs::hard_link(l.join("target.txt"), l.join("hard")).unwrap();
        }
        "permissions" => {
            std::fs::set_permissions(
                dir.join("scripts/tool.sh"),
                std::fs::Permissions::from_mode(0o755),
            )
            .unwrap();
            std::fs::set_permissions(
                dir.join("scripts/secret.sh"),
                std::fs::Permissions::from_mode(0o700),
            )
            .unwrap();
        }
        "shell-app" => {
            std::fs::set_permissions(
                dir.join("bin/run.sh"),
                std::fs::Permissions::from_mode(0o700),
            )
            .unwrap();
        }
        _ => {}
    }
}

/// What a tree holds, path by path: type, mode, owner, size, content digest, link target,
/// link count (times left out).
fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let ft = m.file_type();
            let what = if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_file() {
                // Not the link count: which files share an inode after a RUN's `ln`
                // depends on docker's storage driver (overlay2 copies the target up and links
                // it, vfs diffs the new name alone).
                format!(
                    "file {} {}",
                    m.len(),
                    sha256_hex(&std::fs::read(&p).unwrap())
                )
            } else {
                format!("special {:x}", m.rdev())
            };
            let mode = if ft.is_symlink() {
                0
            } else {
                m.mode() & 0o7777
            };
            out.insert(
                rel,
                format!("{what} mode={mode:o} owner={}:{}", m.uid(), m.gid()),
            );
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Paths a container's export has that are not the image's (docker's init layer).
const CONTAINER_ONLY: &[&str] = &[
    ".dockerenv",
    "dev",
    "proc",
    "sys",
    "etc/hostname",
    "etc/hosts",
    "etc/resolv.conf",
    "etc/mtab",
];

fn extract(tar: &Path, into: &Path) -> BTreeMap<String, String> {
    std::fs::create_dir_all(into).unwrap();
    run(Command::new("tar")
        .args(["--numeric-owner", "-xpf"])
        .arg(tar)
        .arg("-C")
        .arg(into));
    tree(into)
        .into_iter()
        .filter(|(p, _)| {
            !CONTAINER_ONLY
                .iter()
                .any(|c| p == c || p.starts_with(&format!("{c}/")))
        })
        .collect()
}

/// What an image's config tells a container, with empty and absent alike.
fn run_config(c: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for k in [
        "User",
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "ExposedPorts",
        "Volumes",
        "Labels",
        "StopSignal",
        "Shell",
        "Healthcheck",
        "OnBuild",
    ] {
        let v = &c[k];
        let empty = v.is_null()
            || v.as_str().is_some_and(str::is_empty)
            || v.as_array().is_some_and(Vec::is_empty)
            || v.as_object().is_some_and(serde_json::Map::is_empty);
        if !empty {
            out.insert(k.to_string(), v.clone());
        }
    }
    Value::Object(out)
}

#[test]
fn root_build_corpus_matches_docker_build() {
    let r = setup();
    // overlay2, not the helper's vfs: a layer per step costs a copy of the image under vfs.
    let d = Dockerd::start_with(&["--storage-driver=overlay2".into()]);
    docker_base(&r, &d);
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/build-corpus");
    let mut names: Vec<String> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(
        names.len() >= 10,
        "the corpus has {} Dockerfiles",
        names.len()
    );
    let mut failures = Vec::new();
    for name in &names {
        let work = r.work.path().join(format!("corpus-{name}"));
        run(Command::new("cp")
            .arg("-a")
            .arg(corpus.join(name))
            .arg(&work));
        prepare(name, &work);
        let args = ["--build-arg", "NAME=corpus"];
        // berth: the image's files as a tar.
        let ours = r.work.path().join(format!("{name}-berth.tar"));
        let tag = format!("corpus-{name}:1");
        let mut b_args = vec!["--network", "none", "-t", &tag, "-o"];
        let dest = format!("type=tar,dest={}", ours.display());
        b_args.push(&dest);
        b_args.extend_from_slice(&args);
        r.build_ok(&b_args, &work);
        // docker: build, create a container, export it.
        let mut cmd = d.cmd(&["build", "-q", "--network", "none", "-t", &tag]);
        cmd.args(args).arg(&work).env("DOCKER_BUILDKIT", "0");
        run(&mut cmd);
        failures.extend(differences(&r, &d, name, &tag, &ours));
    }
    assert!(
        failures.is_empty(),
        "berth and docker built different files or configs:\n{}",
        failures.join("\n")
    );
}

// Base images from a registry on 127.0.0.1: `--pull`, `FROM --platform`, `COPY --from=IMAGE`.

/// This host's architecture as OCI names it, and another one.
fn arches() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", "arm64"),
        "aarch64" => ("arm64", "amd64"),
        a => panic!("no OCI name for {a} in this test"),
    }
}

/// An OCI layout whose index names one image per architecture: the base's rootfs and a
/// second layer with `/plat` holding the architecture.
fn index_layout(dir: &Path, archs: &[&str]) -> PathBuf {
    let base = std::fs::read(base_rootfs(&dir.join("base"))).unwrap();
    let layout = Layout::new(dir.join("index-layout"));
    let put = |data: &[u8]| layout.put(data);
    let mut manifests = vec![];
    for arch in archs {
        let src = dir.join(format!("plat-{arch}"));
        std::fs::create_dir_all(&src).unwrap();
        std::fs::write(src.join("plat"), format!("{arch}\n")).unwrap();
        let tar = dir.join(format!("plat-{arch}.tar"));
        run(Command::new("tar")
            .args([
                "--mtime=@0",
                "--owner=0",
                "--group=0",
                "--numeric-owner",
                "-C",
            ])
            .arg(&src)
            .arg("-cf")
            .arg(&tar)
            .arg("plat"));
        let plat = std::fs::read(&tar).unwrap();
        let layers = [put(&base), put(&plat)];
        let config = serde_json::to_vec(&json!({
            "architecture": arch, "os": "linux", "created": "2024-01-01T00:00:00Z",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [&layers[0].0, &layers[1].0]},
        }))
        .unwrap();
        let (cd, cs) = put(&config);
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
            "layers": layers.iter().map(|(d, s)| json!({
                "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s})).collect::<Vec<_>>(),
        }))
        .unwrap();
        let (md, ms) = put(&manifest);
        manifests.push(
            json!({"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": md, "size": ms, "platform": {"architecture": arch, "os": "linux"}}),
        );
    }
    let index = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}))
    .unwrap();
    let (id, is) = put(&index);
    layout.finish(json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": id, "size": is}))
}

#[test]
fn root_build_pull_resolves_the_base_again() {
    let r = setup();
    let reg = Registry::serve_root(&r.work.path().join("registry"));
    let moving = format!("{}/lib/moving:1", reg.addr);
    let two = format!("{}/lib/moving:2", reg.addr);
    for (tag, v) in [(&moving, "one"), (&two, "two")] {
        let c = ctx(&[(
            "Dockerfile",
            &format!("FROM base:1\nRUN echo {v} > /version\n"),
        )]);
        r.build_ok(&["-t", tag, "--push"], c.path());
    }
    // A second store pulls the base on its first build.
    let f = setup_with(Berth::new());
    let c = ctx(&[(
        "Dockerfile",
        &format!("FROM {moving}\nRUN cat /version > /seen\n"),
    )]);
    let out = f.build_ok(&["-t", "app:1"], c.path());
    assert!(
        out.contains(&format!("[internal] load metadata for {moving}")),
        "{out}"
    );
    assert_eq!(f.cat("app:1", "/seen"), "one\n");
    // The registry's tag moves to the second image (pushed from the first store).
    r.b.ok(&["tag", &two, &moving]);
    r.b.ok(&["push", &moving]);
    // Without --pull the base in the store serves: nothing reruns.
    let (ran, cached) = steps(&f.build_ok(&["-t", "app:2"], c.path()));
    assert!(ran.is_empty(), "{ran:?}");
    assert_eq!(cached, ["[2/2] RUN cat /version > /seen"]);
    assert_eq!(f.cat("app:2", "/seen"), "one\n");
    // --pull resolves the tag again although the store has it: the new base, and the RUN
    // on it reruns.
    let (ran, _) = steps(&f.build_ok(&["--pull", "-t", "app:3"], c.path()));
    assert_eq!(ran, ["[2/2] RUN cat /version > /seen"]);
    assert_eq!(f.cat("app:3", "/seen"), "two\n");
    // --pull with nothing changed upstream still uses the cache.
    let (ran, cached) = steps(&f.build_ok(&["--pull", "-t", "app:4"], c.path()));
    assert!(ran.is_empty(), "{ran:?}");
    assert_eq!(cached, ["[2/2] RUN cat /version > /seen"]);
    // With the registry gone, --pull fails naming the image (docker's exit code 1); without
    // --pull the store's copy serves.
    drop(reg);
    let o = f.build(&["--pull", "-t", "app:5"], c.path());
    assert_eq!(o.status.code(), Some(1), "{}", err_text(&o));
    assert!(
        err_text(&o).contains(&format!("failed to resolve source metadata for {moving}")),
        "{}",
        err_text(&o)
    );
    f.build_ok(&["-t", "app:5"], c.path());
    assert_eq!(f.cat("app:5", "/seen"), "two\n");
}

#[test]
fn root_build_from_platform_picks_from_an_index() {
    let r = setup();
    let (host, other) = arches();
    let reg = Registry::serve_root(&r.work.path().join("registry"));
    let multi = format!("{}/lib/multi:1", reg.addr);
    let foreign = format!("{}/lib/foreign:1", reg.addr);
    for (name, archs) in [(&multi, vec![other, host]), (&foreign, vec![other])] {
        let dir = r.work.path().join(format!("layout-{}", archs.len()));
        let layout = index_layout(&dir, &archs);
        run(Command::new(require("skopeo")).args([
            "copy",
            "-q",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}", layout.display()),
            &format!("docker://{name}"),
        ]));
    }
    // The host's manifest, however the platform is given.
    for (i, (from, flags)) in [
        (format!("FROM --platform=linux/{host} {multi}"), vec![]),
        (format!("FROM --platform=$BUILDPLATFORM {multi}"), vec![]),
        (format!("FROM --platform=$TARGETPLATFORM {multi}"), vec![]),
        (format!("FROM {multi}"), vec!["--platform", "linux/"]),
        (format!("FROM {multi}"), vec![]),
    ]
    .into_iter()
    .enumerate()
    {
        let c = ctx(&[("Dockerfile", &format!("{from}\nRUN cat /plat > /seen\n"))]);
        let tag = format!("plat:{i}");
        let platform = format!("linux/{host}");
        let mut args: Vec<&str> = flags
            .iter()
            .map(|f| if *f == "linux/" { platform.as_str() } else { f })
            .collect();
        args.extend(["-t", &tag]);
        r.build_ok(&args, c.path());
        assert_eq!(r.cat(&tag, "/seen"), format!("{host}\n"), "{from} {args:?}");
        assert_eq!(r.inspect(&tag)["Architecture"], host);
    }
    // An index without the host's platform: docker's words.
    let c = ctx(&[("Dockerfile", &format!("FROM {foreign}\nRUN true\n"))]);
    let o = r.build(&[], c.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err_text(&o).contains(&format!(
            "no matching manifest for linux/{host} in the manifest list entries"
        )),
        "{}",
        err_text(&o)
    );
    // Another platform: berth runs steps on this host only, and says so with the line.
    let c = ctx(&[(
        "Dockerfile",
        &format!("FROM base:1\nFROM --platform=linux/{other} {multi}\n"),
    )]);
    let o = r.build(&[], c.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err_text(&o).contains(&format!(
            "dockerfile parse error on line 2: berth builds for this host's platform (linux/{host}) only, and --platform=linux/{other} asks for another"
        )),
        "{}",
        err_text(&o)
    );
    let c = ctx(&[("Dockerfile", &format!("FROM {multi}\n"))]);
    let o = r.build(&["--platform", &format!("linux/{other}")], c.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err_text(&o).contains("builds for this host's platform"),
        "{}",
        err_text(&o)
    );
}

#[test]
fn root_build_copy_from_an_image() {
    let r = setup();
    let reg = Registry::serve_root(&r.work.path().join("registry"));
    let src = format!("{}/lib/src:1", reg.addr);
    let c = ctx(&[(
        "Dockerfile",
        "FROM base:1\nRUN mkdir -p /opt/d && echo payload > /opt/d/f && chmod 640 /opt/d/f\n",
    )]);
    r.build_ok(&["-t", &src, "--push"], c.path());
    // A store without the image pulls it for the COPY; a local image serves as it is.
    let f = setup_with(Berth::new());
    let c = ctx(&[(
        "Dockerfile",
        &format!(
            "FROM base:1\nCOPY --from={src} /opt/d /d/\nCOPY --from=base:1 /etc/motd /motd\n\
             RUN stat -c '%a %U' /d/f > /mode\n"
        ),
    )]);
    let out = f.build_ok(&["-t", "cf:1"], c.path());
    assert!(
        out.contains(&format!("[internal] load metadata for {src}")),
        "{out}"
    );
    assert_eq!(f.cat("cf:1", "/d/f"), "payload\n");
    assert_eq!(f.cat("cf:1", "/mode"), "640 root\n");
    assert_eq!(f.cat("cf:1", "/motd"), "base\n");
    // An image that is nowhere: the build fails naming it.
    let missing = format!("{}/lib/missing:1", reg.addr);
    let c2 = ctx(&[(
        "Dockerfile",
        &format!("FROM base:1\nCOPY --from={missing} /x /x\n"),
    )]);
    let o = f.build(&[], c2.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err_text(&o).contains(&format!("failed to resolve source metadata for {missing}")),
        "{}",
        err_text(&o)
    );
    // Once pulled, the image is in the store: a rebuild needs no registry and reruns nothing.
    drop(reg);
    let (ran, cached) = steps(&f.build_ok(&["-t", "cf:2"], c.path()));
    assert!(ran.is_empty(), "{ran:?}");
    assert_eq!(cached.len(), 3, "{cached:?}");
}

/// An HTTP server on 127.0.0.1 that answers every request and records its path.
fn recording_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let record = seen.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { return };
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).into_owned();
            let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
            record.lock().unwrap().push(path);
            let _ = s.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\nreached\n",
            );
        }
    });
    (format!("http://{addr}"), seen)
}

#[test]
fn root_build_run_network_per_step() {
    // The Dockerfile reference, RUN --network: `none` runs "with no network access (lo is
    // still available, but is isolated to this process)"; `host` "in the host's network
    // environment"; `default` is "equivalent to not supplying a flag at all, the command is
    // run in the default network for the build" (the build's --network). Each step observes
    // its namespace: its interfaces, and whether a server on the host's 127.0.0.1 answers.
    let r = setup();
    let (url, seen) = recording_server();
    let observe = |out: &str, path: &str| {
        format!(
            "awk -F: 'NR>2 {{ gsub(/ /, \"\", $1); print $1 }}' /proc/net/dev | sort > {out}; \
             wget -q -O /dev/null {url}{path} && echo reached >> {out} || echo unreachable >> {out}"
        )
    };
    let c = ctx(&[(
        "Dockerfile",
        &format!(
            "FROM base:1\nRUN --network=none {}\nRUN --network=host {}\nRUN --network=default {}\nRUN {}\n",
            observe("/none", "/none"),
            observe("/host", "/host"),
            observe("/default", "/default"),
            observe("/unflagged", "/unflagged"),
        ),
    )]);
    let lines = |tag: &str, path: &str| -> Vec<String> {
        r.cat(tag, path).lines().map(str::to_string).collect()
    };
    // The build's default network is the bridge: lo and eth0, and the host's loopback is
    // not the step's.
    r.build_ok(&["-t", "net:1"], c.path());
    assert_eq!(lines("net:1", "/none"), ["lo", "unreachable"]);
    let host = lines("net:1", "/host");
    assert_eq!(host.last().map(String::as_str), Some("reached"), "{host:?}");
    assert!(
        host.contains(&"lo".to_string()) && host.len() > 2,
        "{host:?}"
    );
    assert_eq!(lines("net:1", "/default"), ["eth0", "lo", "unreachable"]);
    assert_eq!(lines("net:1", "/unflagged"), ["eth0", "lo", "unreachable"]);
    assert_eq!(*seen.lock().unwrap(), ["/host"]);
    // The network is part of a step's cache key: `--network none` reruns only the steps
    // that follow the build's network.
    let (ran, cached) = steps(&r.build_ok(&["--network", "none", "-t", "net:2"], c.path()));
    assert_eq!(cached.len(), 2, "{cached:?}");
    assert_eq!(ran.len(), 2, "{ran:?}");
    assert_eq!(lines("net:2", "/default"), ["lo", "unreachable"]);
    assert_eq!(lines("net:2", "/unflagged"), ["lo", "unreachable"]);
    // `--network host`: the default steps reach the host's loopback.
    r.build_ok(&["--network", "host", "-t", "net:3"], c.path());
    for p in ["/default", "/unflagged"] {
        let l = lines("net:3", p);
        assert_eq!(l.last().map(String::as_str), Some("reached"), "{p}: {l:?}");
    }
    let mut hits = seen.lock().unwrap().clone();
    hits.sort();
    assert_eq!(hits, ["/default", "/host", "/unflagged"]);
}

#[test]
fn root_build_syntax_directive_is_ignored() {
    // docker's classic builder (what `docker build` is here without BuildKit) reads
    // `# syntax=` as a parser directive and ignores it: no frontend is fetched, the steps and
    // the result are those of the file without it (the corpus builds one such file with
    // docker). berth does the same and says so once.
    let r = setup();
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let frontend = format!("{}/frontend:1", l.local_addr().unwrap());
    let body = "FROM base:1\nRUN echo hi > /hi\n";
    let c = ctx(&[("Dockerfile", &format!("# syntax={frontend}\n{body}"))]);
    let out = r.build_ok(&["-t", "syn:1"], c.path());
    let notes: Vec<&str> = out.lines().filter(|l| l.contains("syntax")).collect();
    assert_eq!(
        notes,
        [format!(
            "[WARNING]: the `# syntax={frontend}` directive is ignored: berth reads Dockerfiles itself"
        )]
    );
    assert!(l.accept().is_err(), "the frontend's registry was contacted");
    let (ran, _) = steps(&out);
    assert_eq!(ran, ["[2/2] RUN echo hi > /hi"]);
    // Without the directive: the same steps, all cached.
    let plain = ctx(&[("Dockerfile", body)]);
    let out = r.build_ok(&["-t", "syn:2"], plain.path());
    assert!(!out.contains("syntax"), "{out}");
    let (ran, cached) = steps(&out);
    assert!(ran.is_empty(), "{ran:?}");
    assert_eq!(cached, ["[2/2] RUN echo hi > /hi"]);
    // After a comment it is a comment: no note.
    let late = ctx(&[(
        "Dockerfile",
        &format!("# a comment\n# syntax={frontend}\n{body}"),
    )]);
    let out = r.build_ok(&["-t", "syn:3"], late.path());
    assert!(!out.contains("syntax"), "{out}");
}

#[test]
fn root_build_heredocs_as_the_reference_says() {
    // BuildKit-only syntax that dockerd's built-in frontend here (Dockerfile 1.2) does not
    // parse, and no newer frontend can be fetched: the expected values are the Dockerfile
    // reference's ("Here-Documents"): a RUN that is only a heredoc runs it with the default
    // shell; a command before the heredoc gets it on stdin; several heredocs feed their own
    // commands; a quoted delimiter turns expansion off; `<<-` strips leading tabs; COPY
    // writes the body to the destination, expanding build args unless the delimiter is
    // quoted.
    let r = setup();
    let c = ctx(&[(
        "Dockerfile",
        "FROM base:1\nARG FOO=bar\n\
         RUN <<EOF\necho one > /h1\necho \"$FOO\" >> /h1\nEOF\n\
         RUN <<EOT sh\necho from-sh > /h2\nEOT\n\
         RUN cat <<EOF > /h3\nline $FOO\nEOF\n\
         RUN cat <<'EOF' > /h4\nline $FOO\nEOF\n\
         RUN <<FILE1 cat > /file1 && <<FILE2 cat > /file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\n\
         COPY <<-EOT /script.sh\n\techo \"hello ${FOO}\"\n\tEOT\n\
         COPY <<\"EOT\" /quoted.sh\necho \"hello ${FOO}\"\nEOT\n",
    )]);
    r.build_ok(&["-t", "here:1"], c.path());
    for (path, want) in [
        ("/h1", "one\nbar\n"),
        ("/h2", "from-sh\n"),
        ("/h3", "line bar\n"),
        ("/h4", "line $FOO\n"),
        ("/file1", "I am\nfirst\n"),
        ("/file2", "I am\nsecond\n"),
        ("/script.sh", "echo \"hello bar\"\n"),
        ("/quoted.sh", "echo \"hello ${FOO}\"\n"),
    ] {
        assert_eq!(r.cat("here:1", path), want, "{path}");
    }
}

/// `docker build` with BuildKit. Debian's docker 20.10 CLI (`/usr/bin/docker`, package
/// docker.io) drives BuildKit itself (later CLIs need the buildx plugin, not packaged here);
/// the frontend is dockerd's built-in one, as no `# syntax=` image can be fetched.
fn buildkit(d: &Dockerd, args: &[&str]) -> Command {
    let mut c = Command::new("/usr/bin/docker");
    c.arg("-H")
        .arg(format!("unix://{}", d.socket.display()))
        .args(args)
        .env("DOCKER_BUILDKIT", "1")
        .env("DOCKER_CONFIG", d.dir.path().join("cfg"));
    c
}

/// `base:1` in a dockerd, for builds to compare with.
fn docker_base(r: &Root, d: &Dockerd) {
    d.ok(&[
        "import",
        "-c",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "-c",
        "CMD [\"sh\"]",
        r.work.path().join("rootfs.tar").to_str().unwrap(),
        "base:1",
    ]);
}

/// How berth's image (its files as a tar at `ours`) and docker's image `tag` differ: the
/// run configuration, then file by file (docker's through a container's export).
fn differences(r: &Root, d: &Dockerd, name: &str, tag: &str, ours: &Path) -> Option<String> {
    let mut failures = vec![];
    let theirs: Value = serde_json::from_str(&d.ok(&["image", "inspect", tag])).unwrap();
    let (a, b) = (
        run_config(&r.inspect(tag)["Config"]),
        run_config(&theirs[0]["Config"]),
    );
    if a != b {
        failures.push(format!("{name}: config berth {a:#} / docker {b:#}"));
    }
    let cid = d.ok(&["create", tag, "true"]).trim().to_string();
    let theirs = r.work.path().join(format!("{name}-docker.tar"));
    d.ok(&["export", "-o", theirs.to_str().unwrap(), &cid]);
    let a = extract(ours, &r.work.path().join(format!("{name}-berth")));
    let b = extract(&theirs, &r.work.path().join(format!("{name}-docker")));
    if a != b {
        let mut diff = Vec::new();
        for (k, v) in &a {
            match b.get(k) {
                None => diff.push(format!("  only berth: {k} {v}")),
                Some(w) if w != v => diff.push(format!("  {k}: berth {v} / docker {w}")),
                _ => {}
            }
        }
        for (k, v) in &b {
            if !a.contains_key(k) {
                diff.push(format!("  only docker: {k} {v}"));
            }
        }
        failures.push(format!("{name}:\n{}", diff.join("\n")));
    }
    (!failures.is_empty()).then(|| failures.join("\n"))
}

/// A saved image (`save -o TAR`, unpacked under `into`): its config, and the digest of each
/// of its layers uncompressed, in order.
fn saved(tar: &Path, into: &Path) -> (Value, Vec<String>) {
    std::fs::create_dir_all(into).unwrap();
    run(Command::new("tar").arg("-xf").arg(tar).arg("-C").arg(into));
    let read = |p: &str| -> Value {
        serde_json::from_slice(&std::fs::read(into.join(p)).unwrap()).unwrap()
    };
    let m = read("manifest.json");
    let config = read(m[0]["Config"].as_str().unwrap());
    let layers = m[0]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let o = run(Command::new("sh")
                .arg("-c")
                .arg("gzip -dcf < \"$1\"")
                .arg("sh")
                .arg(into.join(l.as_str().unwrap())));
            format!("sha256:{}", sha256_hex(&o.stdout))
        })
        .collect();
    (config, layers)
}

/// An RFC 3339 time as a value that sorts as time does (Go drops a fraction's trailing
/// zeros, so the strings alone do not).
fn instant(t: &str) -> (String, u32) {
    let t = t
        .strip_suffix('Z')
        .unwrap_or_else(|| panic!("not UTC: {t}"));
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    (whole.to_string(), format!("{frac:0<9}").parse().unwrap())
}

/// What a history says, entry by entry after the first `skip`: what made it (through
/// `wording`), whether it made a layer, its comment, and which entry first had its time;
/// checked on the way: times never go back, the image's time is the last entry's, and the
/// diff ids are the layers' digests, one per entry that made a layer.
fn history_shape(
    (config, layers): &(Value, Vec<String>),
    skip: usize,
    wording: impl Fn(&str) -> String,
) -> Vec<String> {
    let history = config["history"].as_array().unwrap();
    let times: Vec<(String, u32)> = history
        .iter()
        .map(|h| {
            instant(
                h["created"]
                    .as_str()
                    .unwrap_or_else(|| panic!("no time: {h}")),
            )
        })
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "times go back: {history:#?}"
    );
    assert_eq!(config["created"], history.last().unwrap()["created"]);
    assert_eq!(config["rootfs"]["diff_ids"], json!(layers));
    let with_layer = history.iter().filter(|h| h["empty_layer"] != true).count();
    assert_eq!(with_layer, layers.len(), "{history:#?}");
    history
        .iter()
        .zip(&times)
        .skip(skip)
        .map(|(h, t)| {
            let first = times[skip..].iter().position(|u| u == t).unwrap();
            format!(
                "{} | layer={} | {} | time of entry {first}",
                wording(h["created_by"].as_str().unwrap_or_default()),
                h["empty_layer"] != true,
                h["comment"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

#[test]
fn root_build_buildkit_features_match_buildkit() {
    // What BuildKit alone does that dockerd's BuildKit here can build: COPY/ADD --chmod and
    // RUN --mount (cache, bind from the context and from an image, tmpfs); and the history
    // BuildKit writes for every kind of instruction.
    let r = setup();
    let d = Dockerd::start_with(&["--storage-driver=overlay2".into()]);
    docker_base(&r, &d);
    let c = ctx(&[
        (
            "Dockerfile",
            "FROM base:1\n\
             ARG V=1\n\
             LABEL org.example.kind=buildkit\n\
             ENV X=1 Y=\"two words\"\n\
             WORKDIR /srv\n\
             COPY --chmod=640 a.txt /files/a.txt\n\
             COPY --chmod=755 dir /files/dir/\n\
             ADD --chmod=600 a.txt /files/added\n\
             RUN --mount=type=cache,target=/cache echo $V >> /cache/log && wc -l < /cache/log > /files/cache-lines\n\
             RUN --mount=type=bind,source=dir,target=/mnt/dir ls -R /mnt/dir > /files/bound\n\
             RUN --mount=type=bind,target=/ctx cat /ctx/a.txt > /files/ctx-a\n\
             RUN --mount=type=tmpfs,target=/scratch touch /scratch/x && ls /scratch > /files/tmpfs\n\
             RUN --mount=type=bind,from=base:1,source=/etc,target=/baseetc cat /baseetc/motd > /files/motd\n\
             USER nobody\n\
             EXPOSE 80 53/udp\n\
             VOLUME /data\n\
             STOPSIGNAL SIGQUIT\n\
             HEALTHCHECK --interval=5s CMD true\n\
             SHELL [\"/bin/sh\", \"-ec\"]\n\
             ENTRYPOINT [\"sh\"]\n\
             CMD [\"-c\", \"true\"]\n",
        ),
        ("a.txt", "a\n"),
        ("dir/x", "x\n"),
        ("dir/sub/y", "y\n"),
    ]);
    let ours = r.work.path().join("bk-berth.tar");
    r.build_ok(
        &[
            "--network",
            "none",
            "-t",
            "bk:1",
            "-o",
            &format!("type=tar,dest={}", ours.display()),
        ],
        c.path(),
    );
    run(&mut buildkit(
        &d,
        &[
            "build",
            "-q",
            "--network",
            "none",
            "-t",
            "bk:1",
            c.path().to_str().unwrap(),
        ],
    ));
    // BuildKit before v0.11 (dockerd 20.10's) leaves the empty directories it made as mount
    // points in the image; later BuildKit removes them (moby/buildkit#3307, #3314), as
    // berth does. Those, and nothing else, may differ.
    let stubs = ["baseetc", "cache", "ctx", "mnt", "mnt/dir", "scratch"];
    if let Some(diff) = differences(&r, &d, "buildkit", "bk:1", &ours) {
        let rest: Vec<&str> = diff
            .lines()
            .filter(|l| {
                *l != "buildkit:"
                    && !stubs
                        .iter()
                        .any(|s| l.trim() == format!("only docker: {s} dir mode=755 owner=0:0"))
            })
            .collect();
        assert!(
            rest.is_empty(),
            "berth and BuildKit built different files or configs:\n{diff}"
        );
    }
    assert_eq!(r.cat("bk:1", "/files/cache-lines"), "1\n");
    // The history after the base's one entry. dockerd 20.10's BuildKit (v0.8) words three
    // kinds of entries otherwise than BuildKit does today (its dockerfile2llb: COPY and ADD
    // name their --chown/--chmod, EXPOSE lists its ports, HEALTHCHECK prints its fields by
    // name), and berth writes today's words: those map to the older ones.
    let older: &[(&str, &str)] = &[
        ("COPY --chmod=640 a.txt /files/a.txt # buildkit", "COPY a.txt /files/a.txt # buildkit"),
        ("COPY --chmod=755 dir /files/dir/ # buildkit", "COPY dir /files/dir/ # buildkit"),
        ("ADD --chmod=600 a.txt /files/added # buildkit", "ADD a.txt /files/added # buildkit"),
        ("EXPOSE [53/udp 80/tcp]", "EXPOSE map[53/udp:{} 80/tcp:{}]"),
        (
            "HEALTHCHECK {Test:[CMD-SHELL true] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:0}",
            "HEALTHCHECK &{[\"CMD-SHELL\" \"true\"] \"5s\" \"0s\" \"0s\" '\\x00'}",
        ),
    ];
    let then = |w: &str| -> String {
        older
            .iter()
            .find(|(now, _)| *now == w)
            .map_or(w, |(_, then)| then)
            .to_string()
    };
    let berth_tar = r.work.path().join("bk-berth-save.tar");
    r.b.ok(&["save", "-o", berth_tar.to_str().unwrap(), "bk:1"]);
    let docker_tar = r.work.path().join("bk-docker-save.tar");
    d.ok(&["save", "-o", docker_tar.to_str().unwrap(), "bk:1"]);
    let ours = history_shape(
        &saved(&berth_tar, &r.work.path().join("bk-berth-save")),
        1,
        then,
    );
    let theirs = history_shape(
        &saved(&docker_tar, &r.work.path().join("bk-docker-save")),
        1,
        str::to_string,
    );
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), 20, "{ours:#?}");
    // `history` prints the times as docker's CLI does: to the second.
    let shape = |out: String| -> String {
        out.chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect()
    };
    let times = [
        "history",
        "--human=false",
        "--format",
        "{{.CreatedAt}} {{.CreatedSince}}",
        "bk:1",
    ];
    assert_eq!(shape(r.b.ok(&times)), shape(d.ok(&times)));
}

#[test]
fn root_build_hostile_context_from_stdin() {
    // A context archive on STDIN that climbs out: `../` is refused with one clear line
    // (docker's untar refuses it too); an absolute name, and a file written through a
    // symlink to an absolute path, land inside the context, as in docker's chrooted untar.
    // Nothing is written outside, and nothing of the archive is left in the store.
    let r = setup();
    let work = r.work.path().join("hostile");
    let outside = r.work.path().join("outside");
    std::fs::create_dir_all(work.join("real")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(work.join("Dockerfile"), "FROM base:1\nCOPY . /ctx/\n").unwrap();
    std::fs::write(work.join("real/pwned"), "pwned").unwrap();
    std::os::unix::fs::symlink(&outside, work.join("out")).unwrap();
    let abs = outside.join("abs");
    // Each archive: its name, where its file lands (None: refused), the `tar -r` runs after
    // the Dockerfile.
    type Case = (&'static str, Option<String>, Vec<Vec<String>>);
    let tars: Vec<Case> = vec![
        (
            "dotdot",
            None,
            vec![vec![
                "--transform=s,^real/pwned,../../pwned,".into(),
                "-P".into(),
                "real/pwned".into(),
            ]],
        ),
        (
            "absolute",
            Some(format!("/ctx{}", abs.display())),
            vec![vec![
                format!("--transform=s,^real/pwned,{},", abs.display()),
                "-P".into(),
                "real/pwned".into(),
            ]],
        ),
        (
            "symlink",
            Some(format!("/ctx{}/pwned", outside.display())),
            vec![
                vec!["out".into()],
                vec!["--transform=s,^real/,out/,".into(), "real/pwned".into()],
            ],
        ),
    ];
    for (name, landed, parts) in tars {
        let tar = r.work.path().join(format!("{name}.tar"));
        run(Command::new("tar")
            .current_dir(&work)
            .arg("-cf")
            .arg(&tar)
            .arg("Dockerfile"));
        for p in parts {
            run(Command::new("tar")
                .current_dir(&work)
                .arg("-rf")
                .arg(&tar)
                .args(p));
        }
        let mut cmd = r.b.cmd(&["build", "-q", "-t", "hostile:1", "-"]);
        cmd.stdin(std::fs::File::open(&tar).unwrap());
        let o = {
            let _h = crate::root_containers::shared();
            cmd.output().unwrap()
        };
        let e = err_text(&o);
        if let Some(inside) = landed {
            assert!(o.status.success(), "{name}: {e}");
            assert_eq!(r.cat("hostile:1", &inside), "pwned");
            r.b.ok(&["rmi", "hostile:1"]);
        } else {
            assert_eq!(o.status.code(), Some(1), "{name}: {e}");
            assert!(
                e.contains("unpacking the context from STDIN"),
                "{name}: {e}"
            );
        }
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "{name} wrote outside"
        );
        for dir in ["builder/tmp", "images/builder/tmp"] {
            let tmp = r.b.root.join(dir);
            if tmp.exists() {
                let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
                assert!(left.is_empty(), "{name} left {left:?}");
            }
        }
    }
    assert!(
        r.b.cmd(&["image", "inspect", "hostile:1"])
            .output()
            .unwrap()
            .status
            .code()
            != Some(0)
    );
}
