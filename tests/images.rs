//! End-to-end tests of the image commands against real peers: CNCF distribution, skopeo,
//! podman and a private dockerd. Test images are built from the static busybox.

use std::path::Path;
use std::process::Command;

use berth_storage::Digest;

use crate::util::{
    berth_bin, build_image, build_image_compressed, chain_ids, require, run, skopeo_copy_to_dir,
    skopeo_push, Berth, Compression, Distribution, Dockerd, Fault, FlakyProxy, Podman, Registry,
    TestImage,
};

fn blob_path(root: &Path, d: &Digest) -> std::path::PathBuf {
    root.join("blobs/sha256").join(d.hex())
}

/// `/bin/busybox` in the snapshot of a bottom layer (whose chain id is its diff id).
fn unpacked_busybox(root: &Path, diff_id: &Digest) -> std::path::PathBuf {
    root.join("snapshots")
        .join(diff_id.hex())
        .join("bin/busybox")
}

/// Every file skopeo's `dir:` copy holds is byte-identical in berth's store.
fn assert_same_as_skopeo(berth: &Berth, reference: &str, manifest: &Digest) {
    let dir = berth.dir.path().join("skopeo-dir");
    skopeo_copy_to_dir(reference, &dir);
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

/// What a first pull prints: layers completed, then docker's Digest and Status lines.
fn assert_pulled(out: &str, manifest: &Digest, name: &str) {
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains(&format!("Digest: {manifest}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {name}")),
        "{out}"
    );
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
    assert_pulled(&out, &image.manifest, &name);
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
    assert!(unpacked_busybox(&berth.root, &a.diff_ids[0]).exists());
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
    let pushed = recent_events(&berth, "event=push", "{{.Type}} {{.Action}} {{.Actor.ID}}");
    assert_eq!(pushed, format!("image push {target}\n"));
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

    // docker's RepoDigests: the pushed name with the registry's digest, in inspect and in
    // images --digests.
    let pushed = format!("{}/dst/img@{}", dst.host(), image.manifest);
    let digests = berth.ok(&["inspect", "-f", "{{json .RepoDigests}}", &target]);
    assert!(digests.contains(&format!("\"{pushed}\"")), "{digests}");
    let rows = berth.ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Digest}}",
    ]);
    assert!(
        rows.lines()
            .any(|l| l == format!("{}/dst/img {}", dst.host(), image.manifest)),
        "{rows}"
    );
    assert_eq!(
        berth.ok(&["inspect", "-f", "{{.Id}}", &pushed]).trim(),
        image.config.to_string()
    );

    // A second push finds every layer there; a push to a sibling repository mounts.
    let again = berth.ok(&["push", &target]);
    assert!(again.contains("Layer already exists"), "{again}");
    let sibling = format!("{}/dst/copy:1", dst.host());
    berth.ok(&["tag", &target, &sibling]);
    let mounted = berth.ok(&["push", &sibling]);
    assert!(mounted.contains("Mounted from dst/img"), "{mounted}");

    // At a terminal: a bar per layer, each pushed layer's last line with bytes and speed.
    let third = Distribution::start();
    let tty_target = format!("{}/tty/img:1", third.host());
    berth.ok(&["tag", &target, &tty_target]);
    let shown = on_a_terminal(&berth, &["push", &tty_target]);
    assert!(shown.contains("Pushed"), "{shown}");
    assert!(shown.contains("MiB in "), "no byte count shown: {shown}");
    assert!(shown.contains("/s)"), "no speed shown: {shown}");
    assert!(
        shown.contains(&format!("1: digest: {} size:", image.manifest)),
        "{shown}"
    );

    // podman pulls what berth pushed and sees the same image.
    let podman = Podman::new();
    podman.run(&["pull", "-q", "--tls-verify=false", &target]);
    assert_eq!(podman.inspect(&target, "{{.Id}}"), image.config.hex());
    let id = podman.run(&["pull", "-q", "--tls-verify=false", &sibling]);
    assert_eq!(id.trim(), image.config.hex());
}

/// A layer this host made is a plain tar, gzipped at its first push and noted in
/// `images/gzip/`; the push names the image by the digest the registry serves (RepoDigests).
/// When the image goes (`rmi`, `image prune`), its gzip blob and the note go with it.
#[test]
fn a_pushed_plain_layer_takes_its_gzip_blob_and_note_along_when_the_image_goes() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 0, 0, 21);
    let tar = work.path().join("work/l0.tar");
    let berth = Berth::new();
    let name = format!("{}/p/plain:1", reg.host());
    let notes = berth.root.join("images/gzip");
    let note_of = |tar_blob: &Digest| notes.join(tar_blob.hex());
    for how in ["rmi", "prune"] {
        let id = berth
            .ok(&["import", tar.to_str().unwrap(), &name])
            .trim()
            .to_string();
        let tar_blob: Digest = image.diff_ids[0].clone();
        assert!(blob_path(&berth.root, &tar_blob).exists());
        let out = berth.ok(&["push", &name]);
        let digest = out
            .lines()
            .find_map(|l| l.split("digest: ").nth(1))
            .and_then(|d| d.split_whitespace().next())
            .unwrap_or_else(|| panic!("no digest in {out}"))
            .to_string();
        let digests = berth.ok(&["inspect", "-f", "{{json .RepoDigests}}", &name]);
        assert_eq!(
            digests.trim(),
            format!("[\"{}/p/plain@{digest}\"]", reg.host())
        );
        let note: serde_json::Value =
            serde_json::from_slice(&std::fs::read(note_of(&tar_blob)).unwrap()).unwrap();
        let gz: Digest = note["digest"].as_str().unwrap().parse().unwrap();
        assert!(blob_path(&berth.root, &gz).exists());
        if how == "rmi" {
            let out = berth.ok(&["rmi", &name]);
            assert!(out.contains(&format!("Deleted: {id}")), "{out}");
        } else {
            // Its name moves to another image: dangling, and pruned.
            berth.ok(&["import", "-m", "other", tar.to_str().unwrap(), &name]);
            let out = berth.ok(&["image", "prune", "-f"]);
            assert!(out.contains(&format!("deleted: {id}")), "{out}");
            berth.ok(&["rmi", &name]);
        }
        assert!(!blob_path(&berth.root, &tar_blob).exists(), "{how}");
        assert!(
            !blob_path(&berth.root, &gz).exists(),
            "{how}: gzip blob left"
        );
        assert!(!note_of(&tar_blob).exists(), "{how}: note left");
    }
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
    // The image runs under docker.
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
    assert!(
        ran.status.success(),
        "docker run of the saved image: {}",
        String::from_utf8_lossy(&ran.stderr).trim()
    );
    assert_eq!(ran.stdout, [6u8]);

    // `--change` instructions as docker applies them on import (and commit, the same code):
    // a port range is each of its ports; protocols are lower-cased.
    let files = berth.dir.path().join("change");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("seed"), "x").unwrap();
    let layer = berth.dir.path().join("change.tar");
    let tarred = std::process::Command::new("tar")
        .arg("-C")
        .arg(&files)
        .arg("-cf")
        .arg(&layer)
        .arg(".")
        .status()
        .unwrap();
    assert!(tarred.success());
    let changes = ["EXPOSE 8000-8002 53/UDP 9000-9001/udp", "EXPOSE 80"];
    let mut args = vec!["import"];
    for c in &changes {
        args.extend(["-c", c]);
    }
    args.extend([layer.to_str().unwrap(), "changed:1"]);
    docker.ok(&args);
    berth.ok(&args);
    let ports = "{{json .Config.ExposedPorts}}";
    let parsed = |text: String| -> serde_json::Value { serde_json::from_str(&text).unwrap() };
    let theirs = parsed(docker.ok(&["image", "inspect", "--format", ports, "changed:1"]));
    let expected: serde_json::Map<String, serde_json::Value> = [
        "53/udp", "8000/tcp", "8001/tcp", "8002/tcp", "80/tcp", "9000/udp", "9001/udp",
    ]
    .into_iter()
    .map(|p| (p.to_string(), serde_json::json!({})))
    .collect();
    assert_eq!(theirs, serde_json::Value::Object(expected));
    assert_eq!(
        parsed(berth.ok(&["image", "inspect", "--format", ports, "changed:1"])),
        theirs
    );

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
    let oci_tar = image.layout_tar(&work.path().join("oci.tar"));
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
    let images: Vec<&str> = df.lines().nth(1).unwrap_or("").split_whitespace().collect();
    // TYPE TOTAL ACTIVE SIZE RECLAIMABLE: the pulled image and the import.
    assert_eq!(images.get(..3), Some(&["Images", "2", "0"][..]), "{df}");

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

    // Each image command wrote its event, in docker's words.
    let actions = |b: &Berth| -> Vec<String> {
        let out = recent_events(b, "type=image", "{{.Action}}");
        out.lines().map(str::to_string).collect()
    };
    let seen = actions(&berth);
    for action in ["pull", "save", "import", "tag", "untag", "delete"] {
        assert!(seen.iter().any(|a| a == action), "{action} in {seen:?}");
    }
    assert_eq!(actions(&other), ["load"]);
}

/// The events of the last ten minutes up to now (`--until`, so the command does not follow)
/// that `filter` keeps, one line each in `format`.
fn recent_events(b: &Berth, filter: &str, format: &str) -> String {
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    b.ok(&[
        "events", "--since", "10m", "--until", &until, "--filter", filter, "--format", format,
    ])
}

#[test]
fn bad_inputs_are_one_line_and_nonzero() {
    let berth = Berth::new();
    let cases: &[(&[&str], &str)] = &[
        (&["rmi", "nosuch:1"], "No such image: nosuch:1"),
        (&["inspect", "nosuch"], "No such object: nosuch"),
        (&["image", "inspect", "nosuch"], "No such image: nosuch"),
        (&["history", "nosuch"], "No such image"),
        (&["tag", "nosuch", "x:1"], "No such image"),
        (
            &["save", "-o", "/tmp/berth-never.tar", "nosuch"],
            "No such image",
        ),
        (&["pull", "Foo//Bar"], "invalid reference format"),
        (&["pull", "a:b:c"], "invalid reference format"),
        // (On a loopback port where nothing listens: the platform is refused before any
        // registry is asked, and no name can reach a registry on the internet.)
        (
            &["pull", "--platform", "linux", "127.0.0.1:1/busybox"],
            "invalid platform",
        ),
        (&["images", "-f", "bogus=1"], "invalid filter"),
        (&["load", "-i", "/nonexistent.tar"], "/nonexistent.tar"),
        (
            &["push", "nosuch:1"],
            "An image does not exist locally with the tag: nosuch",
        ),
        (&["push", "Foo//Bar"], "invalid reference format"),
        (&["rmi", "Foo//Bar"], "No such image: Foo//Bar"),
        (&["tag", "nosuch", "Bad//Ref"], "invalid reference format"),
        (&["import", "/nonexistent.tar", "x:1"], "/nonexistent.tar"),
        (
            &["import", "/etc/hostname", "Bad//Ref"],
            "invalid reference format",
        ),
        (
            &["save", "-o", "/nonexistent-dir/x.tar", "nosuch"],
            "invalid output path: directory \"/nonexistent-dir\" does not exist",
        ),
        (
            &["history", "--format", "{{.Nope", "nosuch"],
            "No such image",
        ),
    ];
    // A listing's template that does not parse: docker's words, without "Error: ".
    let (_, err) = berth.fails(&["images", "--format", "{{.Nope"]);
    assert_eq!(
        err,
        "template parsing error: template: :1: unclosed action\n"
    );
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

    // Files that are not image archives or root file systems.
    let garbage = berth.dir.path().join("garbage.tar");
    std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    let garbage = garbage.to_str().unwrap();
    for args in [vec!["load", "-i", garbage], vec!["import", garbage, "x:1"]] {
        let (_, err) = berth.fails(&args);
        assert_eq!(err.lines().count(), 1, "berth {args:?}: {err}");
        assert!(err.starts_with("Error: "), "berth {args:?}: {err}");
    }
    assert_eq!(berth.ok(&["images", "-a", "-q"]).trim(), "");
    // search and push to a registry that is not there.
    let (_, err) = berth.fails(&["search", &format!("127.0.0.1:{port}/x")]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach registry"), "{err}");
    let work = tempfile::tempdir().unwrap();
    build_image(work.path(), 0, 0, 19);
    let rootfs = work.path().join("work/l0.tar");
    berth.ok(&["import", rootfs.to_str().unwrap(), "local:1"]);
    let closed = format!("127.0.0.1:{port}/x/y:1");
    berth.ok(&["tag", "local:1", &closed]);
    let (_, err) = berth.fails(&["push", &closed]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach registry"), "{err}");

    // Wrong credentials against a registry with htpasswd auth; then the right ones.
    let reg = Distribution::start_with(Some(("alice", "secret")));
    let (_, err) = berth.fails(&["pull", &format!("{}/x/y:1", reg.host())]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("authentication required"), "{err}");
    berth.docker_config(&reg.host(), "alice", "wrong");
    let (_, err) = berth.fails(&["pull", &format!("{}/x/y:1", reg.host())]);
    assert!(err.contains("incorrect username or password"), "{err}");
    let guarded = format!("{}/x/y:1", reg.host());
    berth.ok(&["tag", "local:1", &guarded]);
    let (_, err) = berth.fails(&["push", &guarded]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("incorrect username or password"), "{err}");
    berth.docker_config(&reg.host(), "alice", "secret");
    let (_, err) = berth.fails(&["pull", &format!("{}/x/nothing:1", reg.host())]);
    assert!(err.contains("not found"), "{err}");
    // Nothing the failures touched changed the store: one image, its three names.
    let names = berth.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    assert_eq!(names.lines().count(), 3, "{names}");
    assert_eq!(berth.ok(&["images", "-q"]).lines().count(), 1);
}

#[test]
fn a_full_disk_leaves_the_store_consistent_root() {
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
    // load and import of more than fits fail the same way.
    let oci_tar = big.layout_tar(&work.path().join("big-oci.tar"));
    let rootfs = work.path().join("b/work/l1.tar");
    for args in [
        vec!["load", "-i", oci_tar.to_str().unwrap()],
        vec!["import", rootfs.to_str().unwrap(), "big:1"],
    ] {
        let (_, err) = berth.fails(&args);
        assert_eq!(err.lines().count(), 1, "berth {args:?}: {err}");
        assert!(
            err.contains("No space left on device"),
            "berth {args:?}: {err}"
        );
    }
    assert_eq!(
        berth.ok(&["images", "-a", "-q", "--no-trunc"]).trim(),
        small.config.to_string()
    );
    // Removing the small image frees room; tags of the failed pull never appeared.
    assert!(!berth
        .root
        .join(format!("repositories/127.0.0.1_{}/t/big/_tags/1", reg.port))
        .exists());
    berth.ok(&["rmi", &format!("{}/t/small:1", reg.host())]);
    assert_eq!(berth.ok(&["images", "-q"]).trim(), "");
}

#[test]
fn serve_over_the_client_root_serves_pulled_images_and_search_finds_them() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 1000, 10);
    skopeo_push(&image, &format!("{}/test/srv:1", reg.host()));
    let berth = Berth::new();
    berth.ok(&["pull", "-q", &format!("{}/test/srv:1", reg.host())]);

    let server = Registry::serve_root(&berth.root);
    let port = server.addr.rsplit(':').next().unwrap();
    // The registry serves what the client pulled, byte for byte, under the store's name.
    let served = format!("127.0.0.1:{port}/127.0.0.1_{}/test/srv:1", reg.port);
    let copy = work.path().join("copy");
    skopeo_copy_to_dir(&served, &copy);
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
    for bad in ["mirrors = 1\n", "default_registry = \"a/b\"\n"] {
        std::fs::write(berth.dir.path().join("config.toml"), bad).unwrap();
        let (_, err) = berth.fails(&["pull", &name]);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("config.toml"), "{err}");
    }

    // default_registry answers for names without a registry; they keep docker.io's names.
    skopeo_push(&image, &format!("{}/library/dflt:2", mirror.host()));
    skopeo_push(&image, &format!("{}/team/dflt:3", mirror.host()));
    std::fs::write(
        berth.dir.path().join("config.toml"),
        format!("default_registry = \"{}\"\n", mirror.host()),
    )
    .unwrap();
    berth.ok(&["pull", "-q", "dflt:2"]);
    berth.ok(&["pull", "-q", "team/dflt:3"]);
    let listed = berth.ok(&[
        "images",
        "--format",
        "{{.Repository}}:{{.Tag}}",
        "-f",
        "reference=dflt",
        "-f",
        "reference=*/dflt",
    ]);
    let mut listed: Vec<&str> = listed.lines().collect();
    listed.sort();
    assert_eq!(listed, ["dflt:2", "team/dflt:3"]);
}

#[test]
fn push_to_berth_serve_then_docker_and_podman_pull_it_and_the_served_root_lists_it() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 200_000, 12);
    let src = format!("{}/src/img:1", reg.host());
    skopeo_push(&image, &src);
    let berth = Berth::new();
    berth.ok(&["pull", "-q", &src]);

    // A second client root, served by `berth serve`: berth pushes to it, then docker and
    // podman pull from it.
    let served = Berth::new();
    let server = Registry::serve_root(&served.root);
    let target = format!("{}/team/app:1", server.addr);
    berth.ok(&["tag", &src, &target]);
    let out = berth.ok(&["push", &target]);
    assert!(
        out.contains(&format!("1: digest: {} size:", image.manifest)),
        "{out}"
    );
    let again = berth.ok(&["push", &target]);
    assert!(again.contains("Layer already exists"), "{again}");
    let sibling = format!("{}/team/copy:1", server.addr);
    berth.ok(&["tag", &target, &sibling]);
    let mounted = berth.ok(&["push", &sibling]);
    assert!(mounted.contains("Mounted from team/app"), "{mounted}");
    // -a pushes every tag of the repository.
    berth.ok(&["tag", &src, &format!("{}/team/app:2", server.addr)]);
    let all = berth.ok(&["push", "-a", &format!("{}/team/app", server.addr)]);
    for tag in ["1", "2"] {
        assert!(
            all.contains(&format!("{tag}: digest: {} size:", image.manifest)),
            "{all}"
        );
    }

    let docker = Dockerd::start();
    docker.ok(&["pull", "-q", &target]);
    let id = docker.ok(&["image", "inspect", "--format", "{{.Id}}", &target]);
    assert_eq!(id.trim(), image.config.to_string());
    let podman = Podman::new();
    podman.run(&["pull", "-q", "--tls-verify=false", &sibling]);
    assert_eq!(podman.inspect(&sibling, "{{.Id}}"), image.config.hex());

    // The served root is a client root too: its images include what was pushed into it,
    // under the store's own namespace, localhost/. `--root` goes before or after the
    // command, and wins over BERTH_ROOT (which `berth` here points at the first root).
    let root = served.root.to_str().unwrap();
    let short = &image.config.hex()[..12];
    let format = "{{.Repository}}:{{.Tag}} {{.ID}}";
    let listed = berth.ok(&["--root", root, "images", "--format", format]);
    let mut lines: Vec<&str> = listed.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("localhost/team/app:1 {short}"),
            format!("localhost/team/app:2 {short}"),
            format!("localhost/team/copy:1 {short}")
        ]
    );
    assert_eq!(
        berth.ok(&["images", "--root", root, "-q"]).trim(),
        short,
        "one image, three names"
    );
    assert!(!berth
        .ok(&["images", "--format", "{{.Repository}}"])
        .contains("localhost/"));
    // A whole image: inspected, its layers unpacked like a pulled image's.
    let v: serde_json::Value =
        serde_json::from_str(&served.ok(&["inspect", "localhost/team/app:1"])).unwrap();
    assert_eq!(v[0]["Id"], image.config.to_string());
    assert_eq!(
        v[0]["RepoDigests"][0],
        format!("localhost/team/app@{}", image.manifest)
    );
    let chain = chain_ids(&image.diff_ids);
    assert!(served
        .root
        .join("snapshots")
        .join(chain[1].hex())
        .join("data/0")
        .is_file());

    // A push that moves the tag: the served root's name follows the registry.
    let other = build_image(&work.path().join("o"), 0, 0, 13);
    skopeo_push(&other, &target);
    assert_eq!(
        served
            .ok(&["images", "--format", format, "localhost/team/app:1"])
            .trim(),
        format!("localhost/team/app:1 {}", &other.config.hex()[..12])
    );
    // Removing a name through the client removes the registry's tag: one store. With the
    // old image's last names gone, the image goes too, as in docker.
    let out = served.ok(&["rmi", "localhost/team/app:2", "localhost/team/copy:1"]);
    assert_eq!(
        out.lines().take(2).collect::<Vec<_>>(),
        [
            "Untagged: localhost/team/app:2",
            "Untagged: localhost/team/copy:1"
        ],
        "{out}"
    );
    assert!(out.contains(&format!("Deleted: {}", image.config)), "{out}");
    let (_, err) = berth.fails(&["pull", &sibling]);
    assert!(err.contains("not found"), "{err}");
    assert_eq!(
        served.ok(&["images", "-q", "--no-trunc"]).trim(),
        other.config.to_string()
    );
}

/// An OCI layout under `dir` whose `latest` is an index of `images` for `platforms`.
fn index_layout(dir: &Path, images: &[(&TestImage, &str)]) -> (std::path::PathBuf, Digest) {
    let layout = dir.join("index-layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    let mut manifests = Vec::new();
    for (image, platform) in images {
        for entry in std::fs::read_dir(image.layout.join("blobs/sha256")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                layout.join("blobs/sha256").join(entry.file_name()),
            )
            .unwrap();
        }
        let size = std::fs::metadata(blob_path(&image.layout, &image.manifest))
            .unwrap()
            .len();
        let (os, arch) = platform.split_once('/').unwrap();
        manifests.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": image.manifest, "size": size,
            "platform": {"os": os, "architecture": arch},
        }));
    }
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests,
    }))
    .unwrap();
    let digest = Digest::sha256_of(&index);
    std::fs::write(blob_path(&layout, &digest), &index).unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest, "size": index.len(),
                "annotations": {"org.opencontainers.image.ref.name": "latest"}}],
        }))
        .unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    (layout, digest)
}

/// Runs berth under a pseudo-terminal (`script`), as a person at a terminal would; returns
/// what the terminal showed.
fn on_a_terminal(berth: &Berth, args: &[&str]) -> String {
    let env = berth.cmd(&[]);
    let mut line = berth_bin().to_string();
    for a in args {
        line.push_str(&format!(" '{a}'"));
    }
    let mut c = Command::new(require("script"));
    c.args(["-qec", &line, "/dev/null"]);
    for (k, v) in env.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    String::from_utf8_lossy(&run(&mut c).stdout).into_owned()
}

#[test]
fn pull_all_tags_platforms_and_progress() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let amd = build_image(&work.path().join("amd"), 1, 3_000_000, 14);
    let arm = build_image(&work.path().join("arm"), 0, 0, 15);
    let (layout, index) =
        index_layout(work.path(), &[(&amd, "linux/amd64"), (&arm, "linux/arm64")]);
    let multi = format!("{}/x/multi:1", reg.host());
    run(Command::new(require("skopeo")).args([
        "copy",
        "--quiet",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:latest", layout.display()),
        &format!("docker://{multi}"),
    ]));

    // An index resolves to this host's platform, or to --platform.
    let berth = Berth::new();
    let out = berth.ok(&["pull", &multi]);
    assert!(out.contains(&format!("Digest: {index}")), "{out}");
    let id = |name: &str| {
        berth
            .ok(&["inspect", "--format", "{{.Id}}", name])
            .trim()
            .to_string()
    };
    assert_eq!(id(&multi), amd.config.to_string());
    berth.ok(&["pull", "-q", "--platform", "linux/arm64", &multi]);
    assert_eq!(id(&multi), arm.config.to_string());
    let (_, err) = berth.fails(&["pull", "--platform", "linux/s390x", &multi]);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("linux/s390x"), "{err}");

    // -a: every tag of the repository.
    let all = format!("{}/x/all", reg.host());
    skopeo_push(&amd, &format!("{all}:1"));
    skopeo_push(&arm, &format!("{all}:2"));
    let out = berth.ok(&["pull", "-a", &all]);
    assert!(out.contains("Pulling from x/all"), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer images for {all}")),
        "{out}"
    );
    assert_eq!(out.trim_end().lines().last(), Some(all.as_str()));
    let tags = berth.ok(&["images", "--format", "{{.Tag}} {{.ID}}", &all]);
    let mut tags: Vec<&str> = tags.lines().collect();
    tags.sort();
    assert_eq!(
        tags,
        [
            format!("1 {}", &amd.config.hex()[..12]),
            format!("2 {}", &arm.config.hex()[..12])
        ]
    );
    let again = berth.ok(&["pull", "--all-tags", &all]);
    assert!(again.contains("Status: Image is up to date for"), "{again}");
    let (_, err) = berth.fails(&["pull", "-a", &format!("{all}:1")]);
    assert!(err.contains("can't be used with --all-tags"), "{err}");

    // -q: the reference alone.
    let fresh = Berth::new();
    assert_eq!(
        fresh.ok(&["pull", "-q", &format!("{all}:2")]),
        format!("{all}:2\n")
    );

    // At a terminal: a bar per layer with bytes and speed, then docker's Digest and Status.
    let tty = Berth::new();
    let shown = on_a_terminal(&tty, &["pull", &format!("{all}:1")]);
    assert!(shown.contains("/s)"), "no speed shown: {shown}");
    assert!(shown.contains("MiB"), "no byte count shown: {shown}");
    assert_pulled(&shown, &amd.manifest, &format!("{all}:1"));
}

#[test]
fn zstd_and_uncompressed_layers_pull_save_and_push() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image_compressed(
        work.path(),
        2,
        100_000,
        16,
        &[Compression::Zstd, Compression::Plain, Compression::Gzip],
    );
    // Load the layout into berth and let berth push it: the plain layer goes gzipped, as
    // docker and skopeo send one; the zstd and gzip layers as they are, the config unchanged.
    let oci_tar = image.layout_tar(&work.path().join("oci.tar"));
    let loader = Berth::new();
    loader.ok(&["load", "-q", "-i", oci_tar.to_str().unwrap()]);
    let name = format!("{}/x/zstd:1", reg.host());
    loader.ok(&["tag", &image.config.to_string(), &name]);
    let out = loader.ok(&["push", &name]);
    let pushed: Digest = out
        .split("1: digest: ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in {out}"))
        .parse()
        .unwrap();
    assert_ne!(pushed, image.manifest);

    let berth = Berth::new();
    berth.ok(&["pull", "-q", &name]);
    assert_same_as_skopeo(&berth, &name, &pushed);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob_path(&berth.root, &pushed)).unwrap()).unwrap();
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+gzip"
        ]
    );
    let chain = chain_ids(&image.diff_ids);
    let snap = |i: usize| berth.root.join("snapshots").join(chain[i].hex());
    assert!(snap(0).join("bin/busybox").is_file());
    assert!(snap(1).join("data/0").is_file());
    assert!(snap(2).join("data/1").is_file());
    let v: serde_json::Value = serde_json::from_str(&berth.ok(&["inspect", &name])).unwrap();
    for (i, d) in image.diff_ids.iter().enumerate() {
        assert_eq!(v[0]["RootFS"]["Layers"][i], d.to_string());
    }
    let tar = work.path().join("z.tar");
    berth.ok(&["save", "-o", tar.to_str().unwrap(), &name]);
    let other = Berth::new();
    other.ok(&["load", "-q", "-i", tar.to_str().unwrap()]);
    assert_eq!(
        other.ok(&["images", "-q", "--no-trunc"]).trim(),
        image.config.to_string()
    );
}

#[test]
fn images_rmi_save_import_history_and_df_flags() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    // Same seed: the child's first layer is the base's only layer.
    let base = build_image(&work.path().join("base"), 0, 0, 17);
    let child = build_image(&work.path().join("child"), 1, 50_000, 17);
    let child_name = format!("{}/x/child:1", reg.host());
    skopeo_push(&child, &child_name);
    let berth = Berth::new();
    let base_tar = work.path().join("base/work/l0.tar");
    let base_tar = base_tar.to_str().unwrap();
    // import from a file, and from stdin with `-`, with --platform.
    let base_id = berth.ok(&["import", base_tar, "base:1"]).trim().to_string();
    let piped = berth
        .cmd(&["import", "--platform", "linux/arm64", "-", "piped:1"])
        .stdin(std::fs::File::open(base_tar).unwrap())
        .output()
        .unwrap();
    assert!(piped.status.success(), "{piped:?}");
    let v: serde_json::Value = serde_json::from_str(&berth.ok(&["inspect", "piped:1"])).unwrap();
    assert_eq!(v[0]["Architecture"], "arm64");
    assert_eq!(v[0]["RootFS"]["Layers"][0], base.diff_ids[0].to_string());
    berth.ok(&["rmi", "piped:1"]);

    // The base's only layer is the child's first, yet nothing made one from the other (only
    // `commit` records a parent): the base, once its name moves, is a dangling image of its
    // own, listed, and removing the child never takes it along (it once did: data lost).
    berth.ok(&["pull", "-q", &child_name]);
    berth.ok(&["tag", &child_name, "base:1"]);
    let short_base = &base_id["sha256:".len()..][..12];
    let short_child = &child.config.hex()[..12];
    let sorted = |s: String| {
        let mut v: Vec<String> = s.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    let both = sorted(format!("{short_base}\n{short_child}"));
    assert_eq!(sorted(berth.ok(&["images", "-q"])), both);
    assert_eq!(sorted(berth.ok(&["images", "-a", "-q"])), both);
    assert_eq!(
        berth
            .ok(&["inspect", "-f", "{{.Parent}}", &child_name])
            .trim(),
        ""
    );
    assert_eq!(
        berth.ok(&["images", "-q", "-f", "dangling=true"]).trim(),
        short_base
    );
    assert_eq!(
        berth
            .ok(&["images", "-a", "-q", "-f", "dangling=false"])
            .trim(),
        short_child
    );
    assert_eq!(
        berth
            .ok(&["images", "-q", "-f", "reference=*/x/*:1"])
            .trim(),
        short_child
    );
    let out = berth.ok(&["rmi", "-f", "--no-prune", short_child]);
    assert!(!out.contains(&base_id), "{out}");
    assert_eq!(berth.ok(&["images", "-q"]).trim(), short_base);
    berth.ok(&["pull", "-q", &child_name]);
    berth.ok(&["tag", &child_name, "keep:1"]);
    let out = berth.ok(&["rmi", "-f", &child.config.to_string()]);
    assert!(out.contains(&format!("Deleted: {}", child.config)), "{out}");
    assert!(!out.contains(&base_id), "{out}");
    assert_eq!(berth.ok(&["images", "-a", "-q"]).trim(), short_base);
    // The reverse: removing the base leaves a child that shares its layer whole.
    berth.ok(&["pull", "-q", &child_name]);
    let out = berth.ok(&["rmi", short_base]);
    assert_eq!(out.trim(), format!("Deleted: {base_id}"));
    assert_eq!(berth.ok(&["images", "-a", "-q"]).trim(), short_child);
    assert!(unpacked_busybox(&berth.root, &base.diff_ids[0]).exists());
    berth.ok(&["rmi", &child_name]);
    assert_eq!(berth.ok(&["images", "-a", "-q"]).trim(), "");

    // Several images at once, by name, full id and sha256: id; a missing one fails alone.
    let ids: Vec<String> = (0..3)
        .map(|i| {
            berth
                .ok(&[
                    "import",
                    "-m",
                    &format!("n{i}"),
                    base_tar,
                    &format!("i{i}:1"),
                ])
                .trim()
                .to_string()
        })
        .collect();
    // One rootfs: the three imports differ only by their comment.
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        3
    );
    let tar = work.path().join("two.tar");
    berth.ok(&["save", "-o", tar.to_str().unwrap(), "i0:1", "i1:1"]);
    let out = berth
        .cmd(&[
            "rmi",
            "i0:1",
            "nosuch:1",
            &ids[1],
            &ids[2]["sha256:".len()..],
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim(), "Error: No such image: nosuch:1");
    let stdout = String::from_utf8(out.stdout).unwrap();
    for id in &ids {
        assert!(stdout.contains(&format!("Deleted: {id}")), "{stdout}");
    }
    assert_eq!(berth.ok(&["images", "-a", "-q"]).trim(), "");
    // Both saved images come back from the one tar.
    assert_eq!(berth.ok(&["load", "-q", "-i", tar.to_str().unwrap()]), "");
    let names = berth.ok(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    assert_eq!(
        names,
        [
            format!("i0:1 {}", &ids[0]["sha256:".len()..][..12]),
            format!("i1:1 {}", &ids[1]["sha256:".len()..][..12])
        ]
    );

    // history: --no-trunc, -q, --human=false, {{json .}}.
    berth.ok(&["pull", "-q", &child_name]);
    let full = berth.ok(&["history", "--no-trunc", "-q", &child_name]);
    assert_eq!(full.lines().next(), Some(child.config.as_str()));
    let rows = berth.ok(&["history", "--format", "{{json .}}", &child_name]);
    let top: serde_json::Value = serde_json::from_str(rows.lines().next().unwrap()).unwrap();
    assert_eq!(top["ID"], short_child);
    assert_eq!(top["CreatedBy"], "layer 1");
    let raw = berth.ok(&[
        "history",
        "--human=false",
        "--format",
        "{{.Size}}",
        &child_name,
    ]);
    assert!(
        raw.lines().next().unwrap().parse::<u64>().unwrap() > 50_000,
        "{raw}"
    );
    // inspect with {{json .}}.
    let one = berth.ok(&["inspect", "--format", "{{json .}}", &child_name]);
    let v: serde_json::Value = serde_json::from_str(one.trim()).unwrap();
    assert_eq!(v["Id"], child.config.to_string());
    assert_eq!(v["Os"], "linux");

    // system df: docker's columns and rows; reclaimable counts shared layers once.
    let df = berth.ok(&["system", "df"]);
    let header: Vec<&str> = df.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    let kinds: Vec<&str> = df
        .lines()
        .skip(1)
        .map(|l| l.split("  ").next().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["Images", "Containers", "Local Volumes", "Build Cache"]
    );
    let images_row: Vec<&str> = df.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&images_row[..3], ["Images", "3", "0"], "{df}");
    let json = berth.ok(&["system", "df", "--format", "{{json .}}"]);
    let v: serde_json::Value = serde_json::from_str(json.lines().next().unwrap()).unwrap();
    assert_eq!(v["Type"], "Images");
    assert!(
        v["Reclaimable"].as_str().unwrap().ends_with("(100%)"),
        "{v}"
    );
}

#[test]
fn search_answers_from_berth_serve_with_limit_and_filters() {
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 0, 0, 18);
    let store = tempfile::tempdir().unwrap();
    let server = Registry::serve_root(store.path());
    for repo in ["library/findme", "team/findme-a", "team/findme-b"] {
        skopeo_push(&image, &format!("{}/{repo}:1", server.addr));
    }
    let berth = Berth::new();
    let term = format!("{}/findme", server.addr);
    let names = |args: &[&str]| {
        let mut a = vec!["search", "--format", "{{.Name}}"];
        a.extend_from_slice(args);
        a.push(&term);
        let out = berth.ok(&a);
        let mut v: Vec<String> = out.lines().map(str::to_string).collect();
        v.sort();
        v
    };
    assert_eq!(names(&[]).len(), 3);
    assert_eq!(names(&["--limit", "2"]).len(), 2);
    let official = names(&["--filter", "is-official=true"]);
    assert_eq!(official.len(), 1, "{official:?}");
    assert!(official[0].ends_with("findme"), "{official:?}");
    assert_eq!(
        names(&["--filter", "is-official=false", "--no-trunc"]).len(),
        2
    );
    // A name without a registry searches the configured default registry.
    std::fs::write(
        berth.dir.path().join("config.toml"),
        format!("default_registry = \"{}\"\n", server.addr),
    )
    .unwrap();
    let found = berth.ok(&["search", "--format", "{{.Name}}", "findme-a"]);
    assert_eq!(found.trim(), "team/findme-a", "{found}");
    let table = berth.ok(&["search", "--no-trunc", &term]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"]);
    for (args, want) in [
        (vec!["search", "--limit", "0", &term], "limit 0 is outside"),
        (
            vec!["search", "--filter", "is-official=maybe", &term],
            "invalid filter",
        ),
        (
            vec!["search", "--filter", "colour=red", &term],
            "invalid filter",
        ),
    ] {
        let (_, err) = berth.fails(&args);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

#[test]
fn pull_and_push_ride_out_5xx_429_and_a_dropped_connection() {
    let reg = Distribution::start();
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 3_000_000, 20);
    skopeo_push(&image, &format!("{}/x/flaky:1", reg.host()));
    let big = image.layers[1].to_string();
    let proxy = FlakyProxy::start(
        &reg.host(),
        vec![
            ("/manifests/", Fault::Status(503)),
            (&big, Fault::Status(429)),
            (&big, Fault::Cut(1_000_000)),
        ],
    );
    let berth = Berth::new();
    let name = format!("{}/x/flaky:1", proxy.addr);
    let out = berth.ok(&["pull", &name]);
    assert_pulled(&out, &image.manifest, &name);
    assert_eq!(
        std::fs::read(blob_path(&berth.root, &image.layers[1])).unwrap(),
        std::fs::read(blob_path(&image.layout, &image.layers[1])).unwrap()
    );
    // The manifest was asked for again after the 503; the big blob three times, the last
    // from where the cut connection stopped.
    assert!(proxy.seen("/manifests/").len() >= 2);
    let gets = proxy.seen(&big);
    assert!(gets.len() >= 3, "{gets:#?}");
    let resumed = gets.last().unwrap().to_ascii_lowercase();
    assert!(resumed.contains("\r\nrange: bytes="), "{resumed}");
    assert!(!resumed.contains("range: bytes=0-"), "{resumed}");

    // A push in 1 MB chunks, through a 500 on one of them.
    std::fs::write(
        berth.dir.path().join("config.toml"),
        "push_chunk_size = 1000000\n",
    )
    .unwrap();
    let faulty = FlakyProxy::start(&reg.host(), vec![("PATCH ", Fault::Status(500))]);
    let pushed_faulty = format!("{}/x/pushed:1", faulty.addr);
    berth.ok(&["tag", &name, &pushed_faulty]);
    let out = berth.ok(&["push", &pushed_faulty]);
    assert!(
        out.contains(&format!("1: digest: {} size:", image.manifest)),
        "{out}"
    );
    assert!(
        faulty.seen("PATCH ").len() >= 4,
        "the big layer goes in chunks"
    );
    let other = Berth::new();
    other.ok(&["pull", "-q", &format!("{}/x/pushed:1", reg.host())]);
    assert_eq!(
        other.ok(&["images", "-q", "--no-trunc"]).trim(),
        image.config.to_string()
    );
}
