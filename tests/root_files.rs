//! A container's files as data, as root: `diff` and `export` beside docker's on the same
//! image and the same changes, `export` back through `import`, `commit` with its flags (the
//! image runs in berth, and in docker and podman after a push and a pull), and `cp` both
//! ways with its errors, a concurrent `start` and a pid that is not the container's. Every
//! test needs root and fails without it; the comparisons need dockerd and podman
//! (scripts/test.sh installs them).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::root_containers::{shared, Root};
use crate::root_events::{actions_of, journal};
use crate::util::{
    busybox_rootfs, digest_of, import_rootfs, run, run_with_input, Berth, Dockerd, Podman,
    Registry, Storage,
};

/// The PATH docker, podman and berth give a process whose image sets none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The same changes, made in berth's container and in docker's: create, modify, delete a
/// file, replace a directory, chmod, a hard link, a new tree.
const CHANGES: &str = "echo new > /srv/new; echo more >> /srv/mod; rm /srv/file; \
                       rm -r /srv/dir; mkdir /srv/dir; chmod 600 /srv/chm; \
                       ln /srv/new /srv/hard; mkdir -p /a/b; echo 1 > /a/b/c";

/// Runs [`CHANGES`] in a container named `box` (as berth's or docker's arguments).
const RUN_CHANGES: [&str; 9] = [
    "run",
    "--name",
    "box",
    "--network",
    "none",
    "files:1",
    "sh",
    "-c",
    CHANGES,
];

/// A client root with `files:1`: busybox with every applet, and a few files under /srv
/// (one of them a symlink, one directory of nobody's). Returns the root and the image's tar.
fn setup() -> (Root, std::path::PathBuf) {
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the container files tests need root"
    );
    let b = Berth::new();
    let rootfs = b.dir.path().join("rootfs");
    busybox_rootfs(&rootfs, &["tmp", "srv/dir/sub", "srv/owned"]);
    for (f, text) in [
        ("srv/file", "file\n"),
        ("srv/mod", "mod\n"),
        ("srv/chm", "chm\n"),
        ("srv/dir/sub/x", "x\n"),
        ("srv/owned/o", "o\n"),
    ] {
        std::fs::write(rootfs.join(f), text).unwrap();
    }
    std::os::unix::fs::symlink("mod", rootfs.join("srv/link")).unwrap();
    std::os::unix::fs::chown(rootfs.join("srv/owned/o"), Some(65534), Some(65534)).unwrap();
    let tar = import_rootfs(&b, &rootfs, "files:1");
    (Root(b), tar)
}

/// `berth VERB… --name box --network none files:1 sleep 1000` (`run -d` or `create`, with
/// their flags).
fn sleeper(b: &Berth, verb_and_flags: &[&str]) {
    let mut args = verb_and_flags.to_vec();
    args.extend([
        "--name",
        "box",
        "--network",
        "none",
        "files:1",
        "sleep",
        "1000",
    ]);
    b.ok(&args);
}

fn lines(s: &str) -> BTreeSet<String> {
    s.lines().map(str::to_string).collect()
}

/// A tar's entries as `tar -tv` shows them, without owner names, sizes and times: mode,
/// name and link target.
fn tar_listing(tar: &[u8]) -> BTreeSet<String> {
    let o = run_with_input(
        Command::new("tar").arg("-tvf").arg("-"),
        Some(tar),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            format!("{} {}", f[0], f[5..].join(" "))
        })
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Whether the events journal has `action` for the container `name`.
fn has_event(b: &Berth, name: &str, action: &str) -> bool {
    let id = b.ok(&["inspect", "-f", "{{.Id}}", name]);
    actions_of(&journal(&b.root), "container", id.trim()).contains(&action.to_string())
}

/// A failure with docker's exit code 1 and one line that contains `msg`.
fn fails_with(o: Output, msg: &str) {
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains(msg), "expected {msg:?} in {err:?}");
}

#[test]
fn root_diff_and_export_match_dockers_and_export_imports() {
    let _g = shared();
    let (b, tar) = setup();
    b.ok(&RUN_CHANGES);
    let ours = b.ok(&["diff", "box"]);
    let export = b.cmd(&["export", "box"]).output().unwrap();
    assert!(export.status.success(), "{}", stderr(&export));

    // docker, with its usual storage driver, on the same image and the same changes.
    let d = Dockerd::start_with(&["--storage-driver=overlay2".to_string()]);
    d.ok(&["import", tar.to_str().unwrap(), "files:1"]);
    d.ok(&RUN_CHANGES);
    let theirs = d.ok(&["diff", "box"]);
    let their_export = run(&mut d.cmd(&["export", "box"])).stdout;
    let _ = d.cmd(&["rm", "-f", "box"]).output();
    let _ = d.cmd(&["rmi", "-f", "files:1"]).output();

    assert_eq!(
        lines(&ours),
        lines(&theirs),
        "berth:\n{ours}\ndocker:\n{theirs}"
    );
    for line in [
        "D /srv/file",
        "C /srv/dir",
        "D /srv/dir/sub",
        "A /srv/hard",
        "C /srv/chm",
    ] {
        assert!(ours.lines().any(|l| l == line), "{line} missing:\n{ours}");
    }
    // berth prints them sorted by path.
    let paths: Vec<&str> = ours.lines().map(|l| &l[2..]).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert_eq!(
        tar_listing(&export.stdout),
        tar_listing(&their_export),
        "export differs from docker's"
    );

    // -o writes the same tar; a path whose directory is missing is refused before any work.
    assert!(has_event(&b, "box", "export"));
    let file = b.dir.path().join("c.tar");
    b.ok(&["export", "-o", file.to_str().unwrap(), "box"]);
    let written = std::fs::read(&file).unwrap();
    assert_eq!(tar_listing(&written), tar_listing(&export.stdout));
    let missing = b.dir.path().join("nodir/c.tar");
    fails_with(
        b.cmd(&["export", "-o", missing.to_str().unwrap(), "box"])
            .output()
            .unwrap(),
        "invalid output path: directory",
    );

    // The export imports and runs.
    let o = run_with_input(
        b.cmd(&["import", "-", "round:trip"]).stdin(Stdio::piped()),
        Some(&written),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let got = b.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "round:trip",
        "cat",
        "/srv/new",
        "/srv/hard",
        "/a/b/c",
    ]);
    assert_eq!(got, "new\nnew\n1\n");

    for verb in ["diff", "export"] {
        fails_with(
            b.cmd(&[verb, "nosuch"])
                .stdout(Stdio::piped())
                .output()
                .unwrap(),
            "No such container: nosuch",
        );
    }
}

/// Where the store keeps the blob `digest` (`sha256:…`) under `root`.
fn blob_path(root: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    let found = Command::new("find")
        .arg(root.join("blobs"))
        .args(["-type", "f", "-name", hex])
        .output()
        .unwrap();
    let path = String::from_utf8(found.stdout).unwrap();
    let path = path
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no blob {digest}"));
    path.into()
}

fn image_inspect(b: &Berth, name: &str) -> Value {
    let v: Value = serde_json::from_str(&b.ok(&["image", "inspect", name])).unwrap();
    v[0].clone()
}

fn status(b: &Berth, name: &str) -> String {
    b.ok(&["inspect", "-f", "{{.State.Status}}", name])
        .trim()
        .to_string()
}

#[test]
fn root_commit_flags_and_the_image_runs_in_berth_docker_and_podman() {
    let _g = shared();
    let (b, tar) = setup();
    sleeper(&b, &["run", "-d"]);
    b.ok(&[
        "exec",
        "box",
        "sh",
        "-c",
        "echo data > /srv/data; rm /srv/file",
    ]);
    let images_before = b.ok(&["images", "-q", "--no-trunc"]);

    // Changes docker refuses are refused before anything is written.
    fails_with(
        b.cmd(&["commit", "-c", "RUN true", "box", "bad:1"])
            .output()
            .unwrap(),
        "run is not a valid change command",
    );
    fails_with(
        b.cmd(&["commit", "nosuch"]).output().unwrap(),
        "No such container: nosuch",
    );
    assert_eq!(b.ok(&["images", "-q", "--no-trunc"]), images_before);

    let id = b.ok(&[
        "commit",
        "-a",
        "Ann Author <ann@example.com>",
        "-m",
        "a message",
        "-c",
        "CMD [\"cat\", \"data\"]",
        "-c",
        "ENV A=b",
        "-c",
        "EXPOSE 8080/tcp",
        "-c",
        "LABEL k=v",
        "-c",
        "WORKDIR /srv",
        "-c",
        "USER root",
        "-c",
        "VOLUME /v",
        "-c",
        "ONBUILD RUN true",
        "-c",
        "ENTRYPOINT []",
        "box",
        "committed:1",
    ]);
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    // Paused during the commit (the default), running again after it.
    assert_eq!(status(&b, "box"), "running");
    assert!(has_event(&b, "box", "commit"));

    let img = image_inspect(&b, "committed:1");
    assert_eq!(img["Id"], id);
    assert_eq!(img["Author"], "Ann Author <ann@example.com>");
    assert_eq!(img["Comment"], "a message");
    let cfg = &img["Config"];
    assert_eq!(cfg["Cmd"], serde_json::json!(["cat", "data"]));
    assert!(
        cfg["Env"].as_array().unwrap().iter().any(|e| e == "A=b"),
        "{cfg}"
    );
    assert!(cfg["ExposedPorts"]["8080/tcp"].is_object(), "{cfg}");
    assert_eq!(cfg["Labels"]["k"], "v");
    assert_eq!(cfg["WorkingDir"], "/srv");
    assert_eq!(cfg["User"], "root");
    assert!(cfg["Volumes"]["/v"].is_object(), "{cfg}");
    assert_eq!(cfg["OnBuild"], serde_json::json!(["RUN true"]));
    assert_eq!(img["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    let history = b.ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.Comment}}",
        "committed:1",
    ]);
    assert_eq!(history.lines().next(), Some("a message"));

    // The new layer is stored once, as a blob: its snapshot is unpacked when the image is
    // first used (the layers below were unpacked already).
    let lower = |img: &Value| -> Vec<String> {
        let l = img["GraphDriver"]["Data"]["LowerDir"].as_str().unwrap();
        l.split(':').map(String::from).collect()
    };
    let snapshots = lower(&img);
    assert_eq!(snapshots.len(), 2, "{snapshots:?}");
    assert!(!Path::new(&snapshots[0]).exists(), "{snapshots:?}");
    assert!(Path::new(&snapshots[1]).is_dir(), "{snapshots:?}");

    // The new layer holds what the container changed: a file, and a deletion.
    assert_eq!(
        b.ok(&["run", "--rm", "--network", "none", "committed:1"]),
        "data\n"
    );
    assert!(Path::new(&snapshots[0]).is_dir(), "{snapshots:?}");
    let gone = b
        .cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "committed:1",
            "cat",
            "/srv/file",
        ])
        .output()
        .unwrap();
    assert!(!gone.status.success());

    // Without pausing, and from a stopped container, to a second tag.
    b.ok(&["commit", "--pause=false", "box", "committed:nopause"]);
    assert_eq!(status(&b, "box"), "running");
    b.ok(&["stop", "-t", "1", "box"]);
    b.ok(&["commit", "-p", "box", "committed:stopped"]);
    // A build FROM a committed image that never ran unpacks its layer first.
    b.ok(&[
        "run",
        "--name",
        "fresh",
        "--network",
        "none",
        "files:1",
        "sh",
        "-c",
        "echo fresh > /srv/fresh",
    ]);
    b.ok(&["commit", "fresh", "committed:fresh"]);
    let ctx = b.dir.path().join("from-commit");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM committed:fresh\nRUN cat /srv/fresh > /srv/copied\n",
    )
    .unwrap();
    let fresh = lower(&image_inspect(&b, "committed:fresh"));
    assert!(!Path::new(&fresh[0]).exists(), "{fresh:?}");
    b.ok(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "built:1",
        ctx.to_str().unwrap(),
    ]);
    assert!(Path::new(&fresh[0]).is_dir(), "{fresh:?}");
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "built:1",
            "cat",
            "/srv/copied"
        ]),
        "fresh\n"
    );
    b.ok(&["rm", "fresh"]);

    // A blob that no longer holds the layer its image names is refused when the snapshot is
    // unpacked from it, and nothing is left half unpacked.
    b.ok(&[
        "run",
        "--name",
        "spoil",
        "--network",
        "none",
        "files:1",
        "sh",
        "-c",
        "echo spoilt > /srv/spoilt",
    ]);
    b.ok(&["commit", "spoil", "committed:spoilt"]);
    let spoilt = lower(&image_inspect(&b, "committed:spoilt"));
    let layer_digest = b.ok(&[
        "image",
        "inspect",
        "-f",
        "{{json .RootFS.Layers}}",
        "committed:spoilt",
    ]);
    let layers: Vec<String> = serde_json::from_str(&layer_digest).unwrap();
    // The committed layer is a plain tar: its blob's digest is its diff id.
    let blob = blob_path(&b.root, layers.last().unwrap());
    // An empty tar (two zero blocks) in its place.
    std::fs::write(&blob, [0u8; 1024]).unwrap();
    let o = b
        .cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "committed:spoilt",
            "true",
        ])
        .output()
        .unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("its content has diff id"), "{err}");
    assert!(!Path::new(&spoilt[0]).exists(), "{spoilt:?}");
    let leftovers: Vec<_> = std::fs::read_dir(b.root.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    b.ok(&["rm", "spoil"]);
    b.ok(&["rmi", "committed:spoilt"]);
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "committed:stopped",
            "cat",
            "/srv/data"
        ]),
        "data\n"
    );

    // Pushed to a registry, pulled and run by docker and podman.
    let storage = Storage::fs();
    let registry = Registry::start(&storage, "");
    let target = format!("{}/committed:1", registry.addr);
    b.ok(&["tag", "committed:1", &target]);
    b.ok(&["push", &target]);
    // berth keeps the committed layer as a plain tar; the registry got every layer gzipped
    // (as docker pushes them), each gunzipping to the config's diff_id, under the same config.
    assert!(img["RootFS"]["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .all(|d| d.as_str().unwrap().starts_with("sha256:")));
    let pushed = registry_manifest(&registry, "committed", "1");
    let layers = pushed["layers"].as_array().unwrap();
    assert_eq!(pushed["config"]["digest"], id);
    assert_eq!(layers.len(), 2);
    for (layer, diff_id) in layers
        .iter()
        .zip(img["RootFS"]["Layers"].as_array().unwrap())
    {
        assert_eq!(
            layer["mediaType"], "application/vnd.docker.image.rootfs.diff.tar.gzip",
            "{pushed}"
        );
        let blob = registry.request(
            "GET",
            &format!("/v2/committed/blobs/{}", layer["digest"].as_str().unwrap()),
            &[],
            b"",
        );
        assert_eq!(blob.status, 200);
        assert_eq!(blob.body.len() as u64, layer["size"].as_u64().unwrap());
        assert_eq!(digest_of(&blob.body), layer["digest"].as_str().unwrap());
        let gz = b.dir.path().join("layer.gz");
        std::fs::write(&gz, &blob.body).unwrap();
        let tar = run(Command::new("gzip").arg("-dc").arg(&gz));
        assert_eq!(digest_of(&tar.stdout), diff_id.as_str().unwrap());
    }
    // A second push of the layers (another tag) sends the same gzip blobs, made once.
    let notes = || -> Vec<(std::path::PathBuf, std::time::SystemTime)> {
        let mut v: Vec<_> = std::fs::read_dir(b.root.join("images/gzip"))
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path(), e.metadata().unwrap().modified().unwrap())
            })
            .collect();
        v.sort();
        v
    };
    let made = notes();
    assert_eq!(made.len(), 2, "{made:?}");
    let again = format!("{}/committed:again", registry.addr);
    b.ok(&["tag", "committed:1", &again]);
    b.ok(&["push", &again]);
    assert_eq!(registry_manifest(&registry, "committed", "again"), pushed);
    assert_eq!(notes(), made);

    let d = Dockerd::start();
    d.ok(&["pull", "-q", &target]);
    let docker_out = d.ok(&["run", "--rm", "--network", "none", &target]);
    // The base image's config has no PATH, and neither has the committed one (docker adds
    // none at commit either): every runtime gives the process its default PATH.
    let docker_path = d.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &target,
        "sh",
        "-c",
        "echo $PATH",
    ]);
    let _ = d.cmd(&["rmi", "-f", &target]).output();
    assert_eq!(docker_out, "data\n");
    assert_eq!(docker_path, format!("{DEFAULT_PATH}\n"));
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "committed:1",
            "sh",
            "-c",
            "echo $PATH"
        ]),
        docker_path
    );
    assert_eq!(cfg["Env"], serde_json::json!(["A=b"]));
    // docker's commit of the same image with nothing set: the same config environment.
    d.ok(&["import", tar.to_str().unwrap(), "files:1"]);
    let plain = [
        "run",
        "--name",
        "plain",
        "--network",
        "none",
        "files:1",
        "true",
    ];
    d.ok(&plain);
    d.ok(&["commit", "plain", "plain:1"]);
    b.ok(&plain);
    let blobs = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(b.root.join("blobs/sha256"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let blobs_before = blobs();
    b.ok(&["commit", "plain", "plain:1"]);
    // A container that changed nothing: docker's commit adds no layer, only a history entry
    // marked empty_layer, and so does berth's, which stores no blob for it either (only the
    // new config; an empty tar that nothing refers to would wait for gc).
    let layers_of = |inspect: String| -> Value {
        serde_json::from_str::<Value>(&inspect).unwrap()[0]["RootFS"]["Layers"].clone()
    };
    let base_layers = layers_of(d.ok(&["image", "inspect", "files:1"]));
    assert_eq!(
        layers_of(d.ok(&["image", "inspect", "plain:1"])),
        base_layers
    );
    assert_eq!(
        layers_of(b.ok(&["image", "inspect", "plain:1"])),
        base_layers
    );
    let config = b.ok(&["image", "inspect", "-f", "{{.Id}}", "plain:1"]);
    let config = config.trim().trim_start_matches("sha256:").to_string();
    let added: Vec<String> = blobs()
        .into_iter()
        .filter(|x| !blobs_before.contains(x))
        .collect();
    // The new config and its manifest, both JSON; no layer.
    assert!(added.contains(&config), "{added:?}");
    assert!(added.len() <= 2, "blobs the empty commit stored: {added:?}");
    for blob in &added {
        let data = std::fs::read(b.root.join("blobs/sha256").join(blob)).unwrap();
        assert!(
            serde_json::from_slice::<Value>(&data).is_ok(),
            "the empty commit stored {blob}, not JSON"
        );
    }
    let cfg: Value =
        serde_json::from_slice(&std::fs::read(b.root.join("blobs/sha256").join(&config)).unwrap())
            .unwrap();
    assert_eq!(
        cfg["history"].as_array().unwrap().last().unwrap()["empty_layer"],
        true
    );
    let env_of = |inspect: String| -> Value {
        serde_json::from_str::<Value>(&inspect).unwrap()[0]["Config"]["Env"].clone()
    };
    assert_eq!(
        env_of(b.ok(&["image", "inspect", "plain:1"])),
        env_of(d.ok(&["image", "inspect", "plain:1"]))
    );
    // An ENV change on a config without an environment sets one, as docker's does.
    d.ok(&["commit", "-c", "ENV A=b", "plain", "plain:2"]);
    b.ok(&["commit", "-c", "ENV A=b", "plain", "plain:2"]);
    let ours = env_of(b.ok(&["image", "inspect", "plain:2"]));
    assert_eq!(ours, env_of(d.ok(&["image", "inspect", "plain:2"])));
    assert_eq!(ours, serde_json::json!(["A=b"]));
    // HEALTHCHECK and quoted, substituted values, read as a Dockerfile's: docker's config.
    let changes = [
        "-c",
        "HEALTHCHECK --interval=2s --retries=4 CMD cat /ok",
        "-c",
        "ENV Q=\"x y\" R=${A:-none}",
        "-c",
        "LABEL \"k v\"=\"w z\"",
    ];
    let config_of = |inspect: String| -> Value {
        let c = &serde_json::from_str::<Value>(&inspect).unwrap()[0]["Config"];
        serde_json::json!([c["Healthcheck"], c["Env"], c["Labels"]])
    };
    d.ok(&[&["commit"][..], &changes, &["plain", "plain:3"]].concat());
    b.ok(&[&["commit"][..], &changes, &["plain", "plain:3"]].concat());
    let ours = config_of(b.ok(&["image", "inspect", "plain:3"]));
    assert_eq!(ours, config_of(d.ok(&["image", "inspect", "plain:3"])));
    assert_eq!(ours[0]["Test"], serde_json::json!(["CMD-SHELL", "cat /ok"]));
    assert_eq!(
        b.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "plain:1",
            "sh",
            "-c",
            "echo $PATH"
        ]),
        docker_path
    );

    let podman = Podman::new();
    podman.run(&["pull", "-q", "--tls-verify=false", &target]);
    let podman_run = |cmd: &[&str]| {
        let mut args = vec![
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--network",
            "none",
            "--ulimit",
            "nofile=20000:20000",
            "--ulimit",
            "nproc=32768:32768",
            &target,
        ];
        args.extend(cmd);
        podman.run(&args)
    };
    assert_eq!(podman_run(&[]), "data\n");
    let podman_path = podman_run(&["sh", "-c", "echo $PATH"]);
    assert_eq!(podman_path, docker_path);
}

/// The image manifest a registry holds under `repo:tag`.
fn registry_manifest(registry: &Registry, repo: &str, tag: &str) -> Value {
    let r = registry.request(
        "GET",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[(
            "Accept",
            "application/vnd.docker.distribution.manifest.v2+json",
        )],
        b"",
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    serde_json::from_slice(&r.body).unwrap()
}

fn cp(b: &Berth, args: &[&str]) -> Output {
    let mut full = vec!["cp"];
    full.extend_from_slice(args);
    b.cmd(&full).output().unwrap()
}

fn cp_ok(b: &Berth, args: &[&str]) -> Vec<u8> {
    let o = cp(b, args);
    assert!(o.status.success(), "cp {args:?}: {}", stderr(&o));
    o.stdout
}

#[test]
fn root_cp_both_ways_archive_links_streams_and_errors() {
    let _g = shared();
    let (b, _tar) = setup();
    let host = b.dir.path().join("host");
    let ro = b.dir.path().join("ro");
    std::fs::create_dir_all(host.join("tree/deep")).unwrap();
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::write(host.join("tree/deep/f"), "deep\n").unwrap();
    std::fs::write(host.join("mine"), "mine\n").unwrap();
    std::os::unix::fs::chown(host.join("mine"), Some(1234), Some(4321)).unwrap();
    let h = |p: &str| host.join(p).to_str().unwrap().to_string();
    sleeper(
        &b,
        &["run", "-d", "-v", &format!("{}:/ro:ro", ro.display())],
    );
    let sh = |script: &str| b.ok(&["exec", "box", "sh", "-c", script]);

    // Into a running container: a file into a directory, a tree, its content with `/.`.
    cp_ok(&b, &[&h("mine"), "box:/tmp"]);
    cp_ok(&b, &[&h("tree"), "box:/tmp/tree"]);
    cp_ok(&b, &[&h("tree/."), "box:/srv/dir"]);
    assert_eq!(
        sh("cat /tmp/mine /tmp/tree/deep/f /srv/dir/deep/f; stat -c %u:%g /tmp/mine"),
        "mine\ndeep\ndeep\n0:0\n"
    );
    assert!(has_event(&b, "box", "extract-to-dir"));
    // -a keeps the owner.
    cp_ok(&b, &["-a", &h("mine"), "box:/tmp/kept"]);
    assert_eq!(sh("stat -c %u:%g /tmp/kept"), "1234:4321\n");

    // Out of it: a file to a new name, a directory into an existing one, a symlink as a
    // link or (-L) as its target.
    cp_ok(&b, &["box:/srv/owned/o", &h("o")]);
    assert_eq!(std::fs::read_to_string(host.join("o")).unwrap(), "o\n");
    assert!(has_event(&b, "box", "archive-path"));
    cp_ok(&b, &["box:/srv/owned", &h("tree")]);
    assert!(host.join("tree/owned/o").is_file());
    cp_ok(&b, &["box:/srv/link", &h("link")]);
    assert_eq!(
        std::fs::read_link(host.join("link")).unwrap(),
        Path::new("mod")
    );
    cp_ok(&b, &["-L", "box:/srv/link", &h("followed")]);
    assert_eq!(
        std::fs::read_to_string(host.join("followed")).unwrap(),
        "mod\n"
    );

    // `-` is a tar on stdout, and a tar on stdin.
    let tar = cp_ok(&b, &["box:/srv/owned", "-"]);
    let listing = tar_listing(&tar);
    assert!(
        listing.iter().any(|l| l.ends_with(" owned/o")),
        "{listing:?}"
    );
    let o = run_with_input(
        b.cmd(&["cp", "-", "box:/tmp"]).stdin(Stdio::piped()),
        Some(&tar),
        Duration::from_secs(60),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(sh("cat /tmp/owned/o"), "o\n");

    // Bad input: one line, docker's exit code 1, nothing written.
    fails_with(cp(&b, &["nosuch:/x", &h("x")]), "No such container: nosuch");
    fails_with(
        cp(&b, &["box:/nope", &h("x")]),
        "Could not find the file /nope in container box",
    );
    fails_with(
        cp(&b, &[&h("nope"), "box:/tmp"]),
        "no such file or directory",
    );
    fails_with(cp(&b, &[&h("mine"), "box:/srv/mod/"]), "no such directory");
    fails_with(
        cp(&b, &[&h("mine"), "box:/srv/mod/x"]),
        "extraction point is not a directory",
    );
    fails_with(
        cp(&b, &["box:/srv/mod", &format!("{}/", h("mine"))]),
        "not a directory",
    );
    fails_with(cp(&b, &["box:/srv", &h("mine")]), "cannot copy directory");
    fails_with(
        cp(&b, &[&h("mine"), "box:/ro/"]),
        "mounted volume is marked read-only",
    );
    fails_with(
        cp(&b, &[&h("mine"), &h("x")]),
        "must specify at least one container source",
    );
    assert!(!host.join("x").exists());
    assert_eq!(std::fs::read_dir(&ro).unwrap().count(), 0);

    // A stopped container: in, out, and the file is there at its next start.
    b.ok(&["stop", "-t", "1", "box"]);
    cp_ok(&b, &[&h("mine"), "box:/srv/while-stopped"]);
    cp_ok(&b, &["box:/tmp/tree/deep/f", &h("from-stopped")]);
    assert_eq!(
        std::fs::read_to_string(host.join("from-stopped")).unwrap(),
        "deep\n"
    );
    fails_with(
        cp(&b, &[&h("mine"), "box:/ro/"]),
        "mounted volume is marked read-only",
    );
    b.ok(&["start", "box"]);
    assert_eq!(sh("cat /srv/while-stopped"), "mine\n");
}

/// `start` waits for a `cp` that holds the stopped container's files, and `cp` never takes a
/// root through a pid the container does not own.
#[test]
fn root_cp_waits_for_start_and_checks_the_pid() {
    let _g = shared();
    let (b, _tar) = setup();
    sleeper(&b, &["create"]);

    // A `cp -` into the stopped container, its tar still arriving.
    let src = b.dir.path().join("in");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("late"), "late\n").unwrap();
    let tar = run(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .arg("-cf")
        .arg("-")
        .arg("late"))
    .stdout;
    let mut copy = b
        .cmd(&["cp", "-", "box:/srv"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = copy.stdin.take().unwrap();
    input.write_all(&tar[..512]).unwrap();
    input.flush().unwrap();
    // Once the copy holds the files, `start` waits for it.
    let id = b.ok(&["inspect", "-f", "{{.Id}}", "box"]);
    let dir = b.root.join("containers").join(id.trim());
    wait_until("cp mounts the container's files", || {
        std::fs::read_dir(&dir)
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().starts_with("cp-"))
    });
    let mut start = b
        .cmd(&["start", "box"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        start.try_wait().unwrap().is_none(),
        "start went ahead while cp held the files"
    );
    input.write_all(&tar[512..]).unwrap();
    drop(input);
    assert!(copy.wait().unwrap().success());
    assert!(start.wait().unwrap().success());
    assert_eq!(b.ok(&["exec", "box", "cat", "/srv/late"]), "late\n");

    // The runtime's record names a pid that is not the container's (as after a reuse):
    // cp refuses rather than reach that process's root.
    let state_path = dir.join("run/state.json");
    let saved = std::fs::read(&state_path).unwrap();
    let mut stranger = Command::new("sleep").arg("60").spawn().unwrap();
    let mut state: Value = serde_json::from_slice(&saved).unwrap();
    state["pid"] = Value::from(stranger.id());
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    let out_file = b.dir.path().join("hostname");
    let o = cp(&b, &["box:/etc/passwd", out_file.to_str().unwrap()]);
    std::fs::write(&state_path, &saved).unwrap();
    let _ = stranger.kill();
    let _ = stranger.wait();
    fails_with(o, "its process is not the one recorded");
    assert!(!out_file.exists());
    // With the record right again, the copy reads the container's file.
    cp_ok(&b, &["box:/srv/late", out_file.to_str().unwrap()]);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "late\n");
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The freezer state of the container `name`'s cgroup: whether it is frozen now (the v1
/// freezer's `freezer.state`, or cgroup2's `cgroup.events` on a host without one).
fn frozen_probe(b: &Berth, name: &str) -> impl Fn() -> bool {
    let pid = b.ok(&["inspect", "-f", "{{.State.Pid}}", name]);
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    let v1 = cgroups.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (_, ctl, path) = (f.next()?, f.next()?, f.next()?);
        ctl.split(',')
            .any(|c| c == "freezer")
            .then(|| format!("/sys/fs/cgroup/freezer{path}/freezer.state"))
    });
    let file = v1.unwrap_or_else(|| {
        let path = cgroups
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a freezer: v1's or cgroup2's");
        format!("/sys/fs/cgroup{path}/cgroup.events")
    });
    assert!(Path::new(&file).exists(), "no {file}");
    move || {
        let s = std::fs::read_to_string(&file).unwrap_or_default();
        s.trim() == "FROZEN" || s.lines().any(|l| l == "frozen 1")
    }
}

/// `commit` freezes a running container while it reads its files (docker's `--pause=true`,
/// the default) and leaves it running with `--pause=false`: the container counts into a
/// file as fast as it can; its cgroup's freezer is watched while commit runs, and the
/// counter read from the upper directory.
#[test]
fn root_commit_freezes_the_container_unless_told_not_to() {
    let _g = shared();
    let (b, _tar) = setup();
    // 64 MiB to read, so a commit lasts long enough to be watched, then the counter.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "--network",
        "none",
        "files:1",
        "sh",
        "-c",
        // `1<>` writes over the number in place: a truncation each time would wait for the
        // disk's discard on a filesystem mounted with `discard`, and the count would crawl.
        "head -c 67108864 /dev/urandom > /big; i=0; \
         while :; do i=$((i+1)); printf '%012d\n' $i 1<>/count; done",
    ]);
    let id = b.ok(&["inspect", "-f", "{{.Id}}", "box"]);
    let count_file = b
        .root
        .join("containers")
        .join(id.trim())
        .join("upper/count");
    let count = || -> u64 {
        std::fs::read_to_string(&count_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    };
    wait_until("the container counts", || count() > 100);
    let frozen = frozen_probe(&b, "box");
    assert!(!frozen());

    // Watches one commit: whether the freezer was seen frozen, and whether the counter moved
    // while it was (it must not) or during the commit at all.
    let watch = |args: &[&str]| -> (bool, bool, bool) {
        let mut child = b.cmd(args).stdout(Stdio::null()).spawn().unwrap();
        let before = count();
        let (mut seen_frozen, mut moved_while_frozen) = (false, false);
        let mut at_freeze = None;
        while child.try_wait().unwrap().is_none() {
            if frozen() {
                seen_frozen = true;
                let now = count();
                // A count read as the commit thaws the container may already have moved:
                // it was read while frozen only if the freezer still says so after it (a
                // commit freezes once).
                if frozen() {
                    match at_freeze {
                        None => at_freeze = Some(now),
                        Some(c) if c != now => moved_while_frozen = true,
                        _ => {}
                    }
                }
            }
            std::thread::sleep(Duration::from_micros(500));
        }
        assert!(child.wait().unwrap().success(), "{args:?} failed");
        (seen_frozen, moved_while_frozen, count() != before)
    };

    let (seen, moved_frozen, _) = watch(&["commit", "box", "frozen:1"]);
    assert!(seen, "the container was never frozen during commit");
    assert!(
        !moved_frozen,
        "the counter moved while the container was frozen"
    );
    assert!(!frozen(), "still frozen after the commit");
    assert_eq!(status(&b, "box"), "running");

    let (seen, _, moved) = watch(&["commit", "--pause=false", "box", "frozen:2"]);
    assert!(!seen, "--pause=false froze the container");
    assert!(moved, "the container did not run during the commit");
    // The explicit spelling of the default freezes too.
    let (seen, _, _) = watch(&["commit", "--pause=true", "box", "frozen:3"]);
    assert!(seen, "--pause=true did not freeze the container");
    let _ = b.cmd(&["rm", "-f", "box"]).output();
}

/// A commit chain and what removing and pruning do to it, as one system prints it, with
/// image ids replaced by their roles: BASE (`files:1`), P (a nameless commit of BASE), CHILD
/// (a commit of P, named), D (`import` of BASE's tar without a name: its layer is BASE's and
/// CHILD's first, yet it is an image of its own), E and F (a nameless commit chain on BASE).
fn parent_chain_script(cmd: &dyn Fn(&[&str]) -> Output, tar: &Path) -> Vec<String> {
    let ok = |args: &[&str]| {
        let o = cmd(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        String::from_utf8(o.stdout).unwrap()
    };
    let id = |name: &str| ok(&["inspect", "-f", "{{.Id}}", name]).trim().to_string();
    let commit_of = |from: &str, name: &str, cname: &str| {
        ok(&[
            "run",
            "--name",
            cname,
            "--network",
            "none",
            from,
            "sh",
            "-c",
            "echo x > /x",
        ]);
        let mut args = vec!["commit", cname];
        args.extend((!name.is_empty()).then_some(name));
        ok(&args).trim().to_string()
    };
    let p = commit_of("files:1", "", "c1");
    commit_of(&p, "child:1", "c2");
    let d = ok(&["import", tar.to_str().unwrap()]).trim().to_string();
    let e = commit_of("files:1", "", "c3");
    let f = commit_of(&e, "", "c4");
    ok(&["rm", "c1", "c2", "c3", "c4"]);
    let roles = [
        (id("files:1"), "BASE"),
        (p.clone(), "P"),
        (id("child:1"), "CHILD"),
        (d, "D"),
        (e, "E"),
        (f, "F"),
    ];
    let redact = |s: &str| {
        let mut s = s.to_string();
        for (id, role) in &roles {
            let hex = id.trim_start_matches("sha256:");
            s = s
                .replace(id, role)
                .replace(hex, role)
                .replace(&hex[..12], role);
        }
        s
    };
    let sorted = |s: String| {
        let mut v: Vec<String> = s.lines().map(|l| redact(l.trim())).collect();
        // docker's overlay2 also lists the layers it deleted: ids of no image.
        v.retain(|l| !l.is_empty() && !l.contains("sha256:"));
        v.sort();
        v.join(" ")
    };
    let failure = |args: &[&str]| {
        let o = cmd(args);
        let err = stderr(&o);
        let msg = err.split_once("conflict:").map_or(err.as_str(), |(_, m)| m);
        format!("{:?} {}", o.status.code(), redact(msg.trim()))
    };
    vec![
        format!("images: {}", sorted(ok(&["images", "-q", "--no-trunc"]))),
        format!(
            "images -a: {}",
            sorted(ok(&["images", "-a", "-q", "--no-trunc"]))
        ),
        format!(
            "parent: {}",
            redact(&ok(&["inspect", "-f", "{{.Parent}}", "child:1"]))
        ),
        format!(
            "base parent: {}",
            ok(&["inspect", "-f", "{{.Parent}}", "files:1"])
        ),
        format!(
            "history: {}",
            redact(&ok(&["history", "-q", "--no-trunc", "child:1"]))
        ),
        // A parent cannot go while its child is there, forced or not.
        format!("rmi P: {}", failure(&["rmi", &p])),
        format!("rmi -f P: {}", failure(&["rmi", "-f", &p])),
        // The child takes its nameless parent; D, sharing its first layer, stays.
        format!("rmi child: {}", sorted(ok(&["rmi", "child:1"]))),
        format!(
            "left: {}",
            sorted(ok(&["images", "-a", "-q", "--no-trunc"]))
        ),
        // A dangling image and a nameless chain go; the named base stays.
        format!(
            "prune: {}",
            sorted(ok(&["image", "prune", "-f"]))
                .split(' ')
                .filter(|w| ["D", "E", "F", "BASE"].contains(w))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        format!(
            "after prune: {}",
            sorted(ok(&["images", "-a", "-q", "--no-trunc"]))
        ),
    ]
}

/// `commit` records the image it was made from (docker's Parent), and only that makes
/// images parent and child: `images` hides a nameless parent, `history` names the chain,
/// `rmi` refuses a parent with children and takes nameless parents along with their child,
/// `image prune` takes a dangling chain, and an image that only shares layers with a removed
/// one stays (it was once removed with it). The same script runs in docker (overlay2, whose
/// images have parents) and must print the same.
#[test]
fn root_commit_parents_rmi_and_prune_follow_the_recorded_parent_as_docker_does() {
    let _g = shared();
    let (b, tar) = setup();
    let ours = parent_chain_script(&|a: &[&str]| b.cmd(a).output().unwrap(), &tar);
    let d = Dockerd::start_with(&["--storage-driver=overlay2".to_string()]);
    d.ok(&["import", tar.to_str().unwrap(), "files:1"]);
    let theirs = parent_chain_script(&|a: &[&str]| d.cmd(a).output().unwrap(), &tar);
    assert_eq!(ours, theirs, "berth:\n{ours:#?}\ndocker:\n{theirs:#?}");
    // What the script shows, spelled out.
    for line in [
        "images: BASE CHILD D F",
        "images -a: BASE CHILD D E F P",
        "rmi child: Deleted: CHILD Deleted: P Untagged: child:1",
        "left: BASE D E F",
        "prune: D E F",
        "after prune: BASE",
    ] {
        assert!(
            ours.contains(&line.to_string()),
            "{line} missing: {ours:#?}"
        );
    }
}
