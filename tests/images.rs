//! End-to-end tests of the image commands against real peers: CNCF distribution, skopeo,
//! podman and a private dockerd. Test images are built from the static busybox.

use std::path::Path;
use std::process::Command;

use berth_storage::Digest;

use crate::util::{build_image, require, run, skopeo_push, Berth, Distribution, Dockerd};

fn blob_path(root: &Path, d: &Digest) -> std::path::PathBuf {
    root.join("blobs/sha256").join(d.hex())
}

/// Every file skopeo's `dir:` copy holds is byte-identical in berth's store.
fn assert_same_as_skopeo(berth: &Berth, reference: &str, manifest: &Digest) {
    let dir = berth.dir.path().join("skopeo-dir");
    run(Command::new(require("skopeo")).args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{reference}"),
        &format!("dir:{}", dir.display()),
    ]));
    let mut compared = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let theirs = std::fs::read(entry.path()).unwrap();
        let ours = match name.as_str() {
            "version" => continue,
            "manifest.json" => std::fs::read(blob_path(&berth.root, manifest)).unwrap(),
            hex => std::fs::read(berth.root.join("blobs/sha256").join(hex))
                .unwrap_or_else(|e| panic!("berth's store lacks blob {hex}: {e}")),
        };
        assert!(
            ours == theirs,
            "{name} differs between berth's store and skopeo's copy"
        );
        compared += 1;
    }
    assert!(compared >= 3, "skopeo's copy had only {compared} files");
}

#[test]
fn pull_stores_what_skopeo_copies_and_a_second_pull_downloads_nothing() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 2, 300_000, 1);
    let name = format!("{}/test/pull:v1", reg.host());
    skopeo_push(&image, &name);

    let berth = Berth::new();
    let out = berth.ok(&["pull", &name]);
    assert!(out.contains("v1: Pulling from test/pull"), "{out}");
    assert!(out.contains("Pull complete"), "{out}");
    assert!(
        out.contains(&format!("Digest: {}", image.manifest)),
        "{out}"
    );
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
    assert!(out.trim_end().ends_with(&name), "{out}");
    assert_same_as_skopeo(&berth, &name, &image.manifest);

    // Snapshots are the unpacked layers.
    let chain0 = &image.diff_ids[0];
    assert!(berth
        .root
        .join("snapshots")
        .join(chain0.hex())
        .join("bin/busybox")
        .is_file());
    // The store is the registry's format: tag, manifest link and blob links.
    let repo = berth
        .root
        .join(format!("repositories/127.0.0.1_{}/test/pull", reg.port));
    assert_eq!(
        std::fs::read_to_string(repo.join("_tags/v1")).unwrap(),
        image.manifest.to_string()
    );
    for l in &image.layers {
        assert!(repo.join("_blobs/sha256").join(l.hex()).exists());
    }

    let images = berth.ok(&["images"]);
    let mut lines = images.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap()
        .split("  ")
        .filter(|s| !s.is_empty())
        .map(str::trim)
        .collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    let row = lines.next().unwrap();
    assert!(
        row.starts_with(&format!("{}/test/pull", reg.host())),
        "{images}"
    );
    assert!(row.contains(&image.config.hex()[..12]), "{images}");

    // A second pull finds everything in place.
    let again = berth.ok(&["pull", &name]);
    assert!(again.contains("Status: Image is up to date"), "{again}");
    assert!(!again.contains("Pull complete"), "{again}");

    // -q prints only the reference; a pull by digest works and names the same image.
    let by_digest = format!("{}/test/pull@{}", reg.host(), image.manifest);
    assert_eq!(berth.ok(&["pull", "-q", &by_digest]).trim(), by_digest);
    assert_eq!(
        berth.ok(&["images", "-q"]).trim(),
        &image.config.hex()[..12]
    );
    // Removing the digest reference keeps the tagged image.
    assert_eq!(
        berth.ok(&["rmi", &by_digest]).trim(),
        format!("Untagged: {by_digest}")
    );
    assert_eq!(
        berth.ok(&["images", "-q"]).trim(),
        &image.config.hex()[..12]
    );
}

#[test]
fn an_interrupted_pull_resumes_from_the_partial_file() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 2_000_000, 2);
    let name = format!("{}/test/resume:1", reg.host());
    skopeo_push(&image, &name);
    let berth = Berth::new();
    // What a killed pull leaves: the first part of a layer in partial/.
    let big = &image.layers[1];
    let bytes = std::fs::read(image.layout.join("blobs/sha256").join(big.hex())).unwrap();
    std::fs::create_dir_all(berth.root.join("partial")).unwrap();
    std::fs::write(
        berth
            .root
            .join("partial")
            .join(format!("sha256-{}", big.hex())),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    berth.ok(&["pull", &name]);
    assert_eq!(std::fs::read(blob_path(&berth.root, big)).unwrap(), bytes);
    assert!(!berth
        .root
        .join("partial")
        .join(format!("sha256-{}", big.hex()))
        .exists());
    let chain = crate::util::chain_ids(&image.diff_ids);
    assert!(berth
        .root
        .join("snapshots")
        .join(chain[1].hex())
        .join("data/0")
        .is_file());

    // A corrupt partial file is detected by the digest and thrown away.
    let other = Berth::new();
    std::fs::create_dir_all(other.root.join("partial")).unwrap();
    std::fs::write(
        other
            .root
            .join("partial")
            .join(format!("sha256-{}", big.hex())),
        b"garbage",
    )
    .unwrap();
    let (_, err) = other.fails(&["pull", &name]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("digest"), "{err}");
    // The next attempt starts over and succeeds.
    other.ok(&["pull", &name]);
}

#[test]
fn tag_inspect_history_images_filters_and_rmi() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 1000, 3);
    let name = format!("{}/test/tags:1", reg.host());
    skopeo_push(&image, &name);
    let berth = Berth::new();
    berth.ok(&["pull", "-q", &name]);
    berth.ok(&["tag", &name, "mine:v2"]);
    berth.ok(&["tag", &image.config.hex()[..8], "other/app"]);

    let fmt = berth.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    let mut names: Vec<&str> = fmt.lines().collect();
    names.sort();
    assert_eq!(names, [name.as_str(), "mine:v2", "other/app:latest"]);
    let filtered = berth.ok(&[
        "images",
        "-f",
        "reference=mine",
        "--format",
        "{{.Repository}}",
    ]);
    assert_eq!(filtered.trim(), "mine");
    assert_eq!(
        berth.ok(&["images", "-f", "dangling=true", "-q"]).trim(),
        ""
    );
    let json_line = berth.ok(&["images", "--format", "{{json .}}", "mine"]);
    let v: serde_json::Value = serde_json::from_str(json_line.trim()).unwrap();
    assert_eq!(v["Repository"], "mine");
    assert_eq!(v["ID"], &image.config.hex()[..12]);
    let digests = berth.ok(&[
        "images",
        "--digests",
        "--no-trunc",
        &format!("{}/test/tags", reg.host()),
    ]);
    assert!(digests.contains(&image.manifest.to_string()), "{digests}");
    assert!(digests.contains(&image.config.to_string()), "{digests}");

    let inspect = berth.ok(&["image", "inspect", "mine:v2"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Id"], image.config.to_string());
    assert_eq!(v[0]["RootFS"]["Layers"][1], image.diff_ids[1].to_string());
    assert_eq!(v[0]["Config"]["Cmd"][0], "/bin/sh");
    assert_eq!(
        v[0]["RepoDigests"][0],
        format!("{}/test/tags@{}", reg.host(), image.manifest)
    );
    assert_eq!(
        berth
            .ok(&[
                "inspect",
                "--format",
                "{{.Id}} {{json .Config.Cmd}}",
                "mine:v2"
            ])
            .trim(),
        format!("{} [\"/bin/sh\"]", image.config)
    );

    let history = berth.ok(&["history", "mine:v2"]);
    let lines: Vec<&str> = history.lines().collect();
    assert!(lines[0].starts_with("IMAGE"), "{history}");
    assert!(lines[1].starts_with(&image.config.hex()[..12]), "{history}");
    assert!(lines[1].contains("layer 1"), "{history}");
    assert!(lines[2].starts_with("<missing>"), "{history}");
    assert_eq!(berth.ok(&["history", "-q", "mine:v2"]).lines().count(), 2);

    // rmi by one name only untags; by id with several repositories needs -f.
    assert_eq!(berth.ok(&["rmi", "mine:v2"]).trim(), "Untagged: mine:v2");
    let (_, err) = berth.fails(&["rmi", &image.config.hex()[..12]]);
    assert!(err.contains("must be forced"), "{err}");
    let out = berth.ok(&["rmi", "-f", &image.config.hex()[..12]]);
    assert!(out.contains(&format!("Deleted: {}", image.config)), "{out}");
    assert_eq!(berth.ok(&["images", "-q"]).trim(), "");
    for l in &image.layers {
        assert!(
            !blob_path(&berth.root, l).exists(),
            "layer {l} should be gone"
        );
    }
    assert!(!berth
        .root
        .join("snapshots")
        .join(image.diff_ids[0].hex())
        .exists());
    // The store's tags are gone too.
    assert!(!berth
        .root
        .join(format!(
            "repositories/127.0.0.1_{}/test/tags/_tags/1",
            reg.port
        ))
        .exists());
}

#[test]
fn rmi_keeps_what_another_image_shares() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let a = build_image(&work.path().join("a"), 1, 1000, 4);
    let b = build_image(&work.path().join("b"), 1, 2000, 4);
    // Same base layer (same seed), different top layers.
    assert_eq!(a.layers[0], b.layers[0]);
    skopeo_push(&a, &format!("{}/x/a:1", reg.host()));
    skopeo_push(&b, &format!("{}/x/b:1", reg.host()));
    let berth = Berth::new();
    berth.ok(&["pull", "-q", &format!("{}/x/a:1", reg.host())]);
    let out = berth.ok(&["pull", &format!("{}/x/b:1", reg.host())]);
    assert!(out.contains("Already exists"), "{out}");
    berth.ok(&["rmi", &format!("{}/x/a:1", reg.host())]);
    assert!(blob_path(&berth.root, &a.layers[0]).exists());
    assert!(!blob_path(&berth.root, &a.layers[1]).exists());
    assert!(berth
        .root
        .join("snapshots")
        .join(a.diff_ids[0].hex())
        .join("bin/busybox")
        .exists());
    assert_eq!(berth.ok(&["images", "-q"]).trim(), &b.config.hex()[..12]);
}

#[test]
fn push_to_distribution_then_podman_pulls_it() {
    let src = Distribution::start();
    let dst = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 5_000_000, 5);
    skopeo_push(&image, &format!("{}/src/img:1", src.host()));
    let berth = Berth::new();
    // Small chunks so that the big layer goes in several PATCHes.
    std::fs::write(
        berth.dir.path().join("config.toml"),
        "push_chunk_size = 1000000\n",
    )
    .unwrap();
    berth.ok(&["pull", "-q", &format!("{}/src/img:1", src.host())]);
    let target = format!("{}/dst/img:2", dst.host());
    berth.ok(&["tag", &format!("{}/src/img:1", src.host()), &target]);
    let out = berth.ok(&["push", &target]);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/dst/img]",
            dst.host()
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("2: digest: {} size:", image.manifest)),
        "{out}"
    );

    // A second push finds every layer there; a push to a sibling repository mounts.
    let again = berth.ok(&["push", &target]);
    assert!(again.contains("Layer already exists"), "{again}");
    let sibling = format!("{}/dst/copy:1", dst.host());
    berth.ok(&["tag", &target, &sibling]);
    let mounted = berth.ok(&["push", &sibling]);
    assert!(mounted.contains("Mounted from dst/img"), "{mounted}");

    // podman pulls what berth pushed and sees the same image.
    let podman_root = tempfile::tempdir().unwrap();
    let podman = |args: &[&str]| {
        let mut c = Command::new(require("podman"));
        c.arg("--root")
            .arg(podman_root.path().join("root"))
            .arg("--runroot")
            .arg(podman_root.path().join("run"))
            .arg("--storage-driver=vfs")
            .args(args);
        String::from_utf8(run(&mut c).stdout).unwrap()
    };
    podman(&["pull", "-q", "--tls-verify=false", &target]);
    let id = podman(&["image", "inspect", "--format", "{{.Id}}", &target]);
    assert_eq!(id.trim(), image.config.hex());
    let id = podman(&["pull", "-q", "--tls-verify=false", &sibling]);
    assert_eq!(id.trim(), image.config.hex());
}

#[test]
fn docker_pulls_what_berth_pushed_and_loads_what_berth_saved() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 100_000, 6);
    let name = format!("{}/test/dock:1", reg.host());
    skopeo_push(&image, &name);
    let berth = Berth::new();
    berth.ok(&["pull", "-q", &name]);
    let pushed = format!("{}/test/pushed:1", reg.host());
    berth.ok(&["tag", &name, &pushed]);
    berth.ok(&["push", "-q", &pushed]);

    let docker = Dockerd::start();
    docker.ok(&["pull", "-q", &pushed]);
    let id = docker.ok(&["image", "inspect", "--format", "{{.Id}}", &pushed]);
    assert_eq!(id.trim(), image.config.to_string());

    // save → docker load → docker sees the same image under the same name.
    let tar = berth.dir.path().join("saved.tar");
    berth.ok(&["tag", &name, "saved/img:7"]);
    berth.ok(&["save", "-o", tar.to_str().unwrap(), "saved/img:7"]);
    let out = docker.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert!(out.contains("Loaded image: saved/img:7"), "{out}");
    let inspect = docker.ok(&["image", "inspect", "saved/img:7"]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Id"], image.config.to_string());
    assert_eq!(v[0]["RootFS"]["Layers"][1], image.diff_ids[1].to_string());
    // The image runs under docker when this host lets dockerd run containers.
    let ran = docker
        .cmd(&[
            "run",
            "--rm",
            "--network",
            "none",
            "saved/img:7",
            "/bin/busybox",
            "cat",
            "/seed",
        ])
        .output()
        .unwrap();
    if ran.status.success() {
        assert_eq!(ran.stdout, [6u8]);
    } else {
        eprintln!(
            "note: dockerd cannot run containers here ({}); the image was checked with inspect",
            String::from_utf8_lossy(&ran.stderr).trim()
        );
    }

    // docker save → berth load: same image id and diff ids.
    let dtar = berth.dir.path().join("docker.tar");
    docker.ok(&["save", "-o", dtar.to_str().unwrap(), &pushed]);
    let other = Berth::new();
    let out = other.ok(&["load", "-i", dtar.to_str().unwrap()]);
    assert!(out.contains(&format!("Loaded image: {pushed}")), "{out}");
    let v: serde_json::Value = serde_json::from_str(&other.ok(&["inspect", &pushed])).unwrap();
    assert_eq!(v[0]["Id"], image.config.to_string());
    assert_eq!(v[0]["RootFS"]["Layers"][0], image.diff_ids[0].to_string());
    assert_eq!(v[0]["RootFS"]["Layers"][1], image.diff_ids[1].to_string());
    assert!(other
        .root
        .join("snapshots")
        .join(image.diff_ids[0].hex())
        .join("bin/busybox")
        .exists());
}

#[test]
fn save_load_import_prune_and_df() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 1000, 7);
    let name = format!("{}/test/save:1", reg.host());
    skopeo_push(&image, &name);
    let berth = Berth::new();
    berth.ok(&["pull", "-q", &name]);
    let tar = berth.dir.path().join("s.tar");
    berth.ok(&["save", "-o", tar.to_str().unwrap(), &name]);

    // berth save → berth load in another root: same id and manifest.
    let other = Berth::new();
    let out = other.ok(&["load", "-i", tar.to_str().unwrap()]);
    assert_eq!(out.trim(), format!("Loaded image: {name}"));
    let v: serde_json::Value = serde_json::from_str(&other.ok(&["inspect", &name])).unwrap();
    assert_eq!(v[0]["Id"], image.config.to_string());
    assert!(blob_path(&other.root, &image.manifest).exists());

    // An OCI layout tar (what skopeo writes) loads too.
    let oci_tar = work.path().join("oci.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&image.layout)
        .arg("-cf")
        .arg(&oci_tar)
        .arg("."));
    let third = Berth::new();
    let out = third.ok(&["load", "-i", oci_tar.to_str().unwrap()]);
    assert!(out.contains("Loaded image"), "{out}");
    assert_eq!(
        third.ok(&["images", "-q", "--no-trunc"]).trim(),
        image.config.to_string()
    );

    // import a root filesystem tar with changes.
    // The base layer's tar, as build_image made it.
    let rootfs = work.path().join("work/l0.tar");
    let id = berth.ok(&[
        "import",
        "-c",
        "CMD [\"/bin/sh\"]",
        "-c",
        "ENV A=b",
        "-m",
        "hello",
        rootfs.to_str().unwrap(),
        "imported:1",
    ]);
    assert!(id.trim().starts_with("sha256:"), "{id}");
    let v: serde_json::Value = serde_json::from_str(&berth.ok(&["inspect", "imported:1"])).unwrap();
    assert_eq!(v[0]["Config"]["Cmd"][0], "/bin/sh");
    assert_eq!(v[0]["Config"]["Env"][0], "A=b");
    assert_eq!(v[0]["Comment"], "hello");
    assert_eq!(v[0]["RootFS"]["Layers"][0], image.diff_ids[0].to_string());

    let df = berth.ok(&["system", "df"]);
    assert!(df.lines().nth(1).unwrap().starts_with("Images"), "{df}");
    assert!(df.contains("2 "), "{df}");

    // Untag the import: it becomes dangling; prune removes it and nothing else.
    let (import_id, _) = (id.trim().to_string(), ());
    berth.ok(&["tag", "imported:1", "keep:1"]);
    berth.ok(&["rmi", "keep:1"]);
    let out = berth.ok(&["image", "prune", "-f"]);
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    berth.ok(&["rmi", "imported:1"]);
    assert!(berth.ok(&["images", "-q", "--no-trunc"]).trim() == image.config.to_string());
    let out = berth.ok(&["image", "prune", "-a", "-f"]);
    assert!(out.contains(&format!("deleted: {}", image.config)), "{out}");
    assert!(!out.contains(&import_id), "{out}");
    assert_eq!(berth.ok(&["images", "-q"]).trim(), "");
}

#[test]
fn bad_inputs_are_one_line_and_nonzero() {
    let berth = Berth::new();
    let cases: &[(&[&str], &str)] = &[
        (&["rmi", "nosuch:1"], "No such image: nosuch:1"),
        (&["inspect", "nosuch"], "No such image: nosuch"),
        (&["history", "nosuch"], "No such image"),
        (&["tag", "nosuch", "x:1"], "No such image"),
        (
            &["save", "-o", "/tmp/berth-never.tar", "nosuch"],
            "No such image",
        ),
        (&["pull", "Foo//Bar"], "invalid reference format"),
        (&["pull", "a:b:c"], "invalid reference format"),
        (
            &["pull", "--platform", "linux", "busybox"],
            "invalid platform",
        ),
        (&["images", "-f", "bogus=1"], "invalid filter"),
        (&["images", "--format", "{{.Nope"], "template"),
        (&["load", "-i", "/nonexistent.tar"], "/nonexistent.tar"),
    ];
    for (args, want) in cases {
        let (_, err) = berth.fails(args);
        assert_eq!(err.lines().count(), 1, "berth {args:?}: {err}");
        assert!(err.starts_with("Error: "), "berth {args:?}: {err}");
        assert!(
            err.contains(want),
            "berth {args:?}: {err} should contain {want:?}"
        );
    }
    // An unreachable registry: a closed loopback port.
    let port = crate::util::free_port();
    let (_, err) = berth.fails(&["pull", &format!("127.0.0.1:{port}/x/y:1")]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot reach registry") && err.contains("refused"),
        "{err}"
    );

    // Wrong credentials against a registry with htpasswd auth; then the right ones.
    let reg = Distribution::start_with(Some(("alice", "secret")));
    let (_, err) = berth.fails(&["pull", &format!("{}/x/y:1", reg.host())]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("authentication required"), "{err}");
    berth.docker_config(&reg.host(), "alice", "wrong");
    let (_, err) = berth.fails(&["pull", &format!("{}/x/y:1", reg.host())]);
    assert!(err.contains("incorrect username or password"), "{err}");
    berth.docker_config(&reg.host(), "alice", "secret");
    let (_, err) = berth.fails(&["pull", &format!("{}/x/y:1", reg.host())]);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(berth.ok(&["images", "-q"]).trim(), "");
}

#[test]
fn a_full_disk_leaves_the_store_consistent() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let small = build_image(&work.path().join("s"), 0, 0, 8);
    let big = build_image(&work.path().join("b"), 1, 3_000_000, 9);
    skopeo_push(&small, &format!("{}/t/small:1", reg.host()));
    skopeo_push(&big, &format!("{}/t/big:1", reg.host()));
    let mnt = tempfile::tempdir().unwrap();
    run(Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "tmpfs"])
        .arg(mnt.path()));
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _guard = Unmount(mnt.path());
    let berth = Berth::with_root(mnt.path().join("root"));
    berth.ok(&["pull", "-q", &format!("{}/t/small:1", reg.host())]);
    let (_, err) = berth.fails(&["pull", &format!("{}/t/big:1", reg.host())]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    // The store still lists exactly the image that completed, and it is whole.
    assert_eq!(
        berth.ok(&["images", "-q", "--no-trunc"]).trim(),
        small.config.to_string()
    );
    let v: serde_json::Value =
        serde_json::from_str(&berth.ok(&["inspect", &format!("{}/t/small:1", reg.host())]))
            .unwrap();
    assert_eq!(v[0]["Id"], small.config.to_string());
    // Removing the small image frees room; tags of the failed pull never appeared.
    assert!(!berth
        .root
        .join(format!("repositories/127.0.0.1_{}/t/big/_tags/1", reg.port))
        .exists());
    berth.ok(&["rmi", &format!("{}/t/small:1", reg.host())]);
    assert_eq!(berth.ok(&["images", "-q"]).trim(), "");
}

/// `berth serve` over a child process, stopped on drop.
struct Serve(std::process::Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_over_the_client_root_serves_pulled_images_and_search_finds_them() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 1000, 10);
    skopeo_push(&image, &format!("{}/test/srv:1", reg.host()));
    let berth = Berth::new();
    berth.ok(&["pull", "-q", &format!("{}/test/srv:1", reg.host())]);

    let port = crate::util::free_port();
    let mut child = berth
        .cmd(&[
            "serve",
            "--root",
            berth.root.to_str().unwrap(),
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(child.try_wait().unwrap().is_none(), "berth serve exited");
        assert!(
            std::time::Instant::now() < deadline,
            "berth serve did not listen"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _serve = Serve(child);

    // The registry serves what the client pulled, byte for byte, under the store's name.
    let served = format!("127.0.0.1:{port}/127.0.0.1_{}/test/srv:1", reg.port);
    let copy = work.path().join("copy");
    run(Command::new(require("skopeo")).args([
        "copy",
        "--quiet",
        "--src-tls-verify=false",
        &format!("docker://{served}"),
        &format!("dir:{}", copy.display()),
    ]));
    assert_eq!(
        std::fs::read(copy.join("manifest.json")).unwrap(),
        std::fs::read(blob_path(&berth.root, &image.manifest)).unwrap()
    );
    for l in &image.layers {
        assert!(copy.join(l.hex()).exists());
    }

    // search goes to the registry's /v1/search.
    let out = berth.ok(&["search", &format!("127.0.0.1:{port}/srv")]);
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("NAME"), "{out}");
    assert!(out.contains("test/srv"), "{out}");
    let out = berth.ok(&[
        "search",
        "--format",
        "{{.Name}}",
        "--filter",
        "is-official=true",
        &format!("127.0.0.1:{port}/srv"),
    ]);
    assert_eq!(out.trim(), "", "{out}");
}

#[test]
fn a_configured_mirror_is_tried_before_the_registry() {
    let mirror = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 0, 0, 11);
    skopeo_push(&image, &format!("{}/team/app:3", mirror.host()));
    // The registry itself is unreachable: only the mirror can answer.
    let closed = crate::util::free_port();
    let berth = Berth::new();
    std::fs::write(
        berth.dir.path().join("config.toml"),
        format!(
            "max_concurrent_downloads = 1\n[registries.\"127.0.0.1:{closed}\"]\nmirrors = [\"http://{}\"]\n",
            mirror.host()
        ),
    )
    .unwrap();
    let name = format!("127.0.0.1:{closed}/team/app:3");
    let out = berth.ok(&["pull", &name]);
    assert!(
        out.contains(&format!("Digest: {}", image.manifest)),
        "{out}"
    );
    let listed = berth.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert_eq!(listed.trim(), name);
    // A config file that does not parse is one clear error.
    std::fs::write(berth.dir.path().join("config.toml"), "mirrors = 1\n").unwrap();
    let (_, err) = berth.fails(&["pull", &name]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("config.toml"), "{err}");
}
