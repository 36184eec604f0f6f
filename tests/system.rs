//! `version` and `info`, their fields and `--format`, and a prune's question answered no: what
//! docker prints for each (a client root of the test's own, no container run).

use serde_json::Value;

use crate::util::{busybox_rootfs, import_rootfs, run_with_input, Berth};

#[test]
fn version_fields_and_formats() {
    let b = Berth::new();
    let version = env!("CARGO_PKG_VERSION");
    let text = b.ok(&["version"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "Client:");
    let field = |name: &str| -> Vec<String> {
        lines
            .iter()
            .filter_map(|l| l.trim_start().strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
            .collect()
    };
    assert_eq!(field("Version"), [version, version, version], "{text}");
    assert_eq!(field("OS/Arch")[0], format!("linux/{}", go_arch()));
    assert_eq!(field("Context"), ["default"]);
    assert!(
        text.contains("\nServer: berth (no daemon)\n Engine:\n"),
        "{text}"
    );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(field("Kernel Version"), [kernel.trim()]);

    assert_eq!(
        b.ok(&[
            "version",
            "--format",
            "{{.Client.Version}} {{.Server.Os}}/{{.Server.Arch}}"
        ]),
        format!("{version} linux/{}\n", go_arch())
    );
    let doc: Value = serde_json::from_str(&b.ok(&["version", "-f", "json"])).unwrap();
    assert_eq!(doc["Client"]["Version"], version);
    assert_eq!(doc["Server"]["Components"][0]["Name"], "Engine");
    assert_eq!(
        b.ok(&[
            "version",
            "--format",
            "{{range .Server.Components}}{{.Name}} {{end}}"
        ]),
        "Engine berth-runtime \n"
    );
    let (_, err) = b.fails(&["version", "--format", "{{.Nope}}"]);
    assert!(err.contains("Nope"), "{err}");
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[test]
fn info_fields_and_formats() {
    let b = Berth::new();
    let rootfs = b.dir.path().join("rootfs");
    busybox_rootfs(&rootfs, &[]);
    import_rootfs(&b, &rootfs, "info-img:1");
    let cgroup = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    let ncpu = std::thread::available_parallelism().unwrap().get();
    let f = |format: &str| b.ok(&["info", "--format", format]);
    assert_eq!(
        f("{{.Images}} {{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}}"),
        "1 0 0 0\n"
    );
    assert_eq!(
        f("{{.CgroupVersion}} {{.CgroupDriver}}"),
        format!("{cgroup} cgroupfs\n")
    );
    assert_eq!(f("{{.NCPU}} {{.OSType}}"), format!("{ncpu} linux\n"));
    assert_eq!(f("{{.DockerRootDir}}"), format!("{}\n", b.root.display()));
    assert_eq!(f("{{.Driver}} {{.DefaultRuntime}}"), "overlay berth\n");
    assert_eq!(f("{{json .Plugins.Volume}}"), "[\"local\"]\n");
    let doc: Value = serde_json::from_str(&f("json")).unwrap();
    for key in [
        "Containers",
        "Images",
        "Driver",
        "CgroupVersion",
        "KernelVersion",
        "RegistryConfig",
        "MemTotal",
        "ServerVersion",
    ] {
        assert!(!doc[key].is_null(), "{key} in {doc}");
    }

    let text = b.ok(&["info"]);
    for line in [
        "Client:",
        "Server:",
        " Containers: 0",
        "  Running: 0",
        " Images: 1",
        " Storage Driver: overlay",
        " Logging Driver: json-file",
        &format!(" Cgroup Version: {cgroup}"),
        &format!(" CPUs: {ncpu}"),
        &format!(" Docker Root Dir: {}", b.root.display()),
    ] {
        assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
    }
}

#[test]
fn prune_answered_no_prints_only_the_question() {
    // docker 28: the warning and its question, then nothing at all and status 0 (the cancel
    // is no error); only "y" or "Y" is a yes.
    let b = Berth::new();
    for answer in ["n\n", "yes\n", "\n"] {
        let mut cmd = b.cmd(&["container", "prune"]);
        let o = run_with_input(
            &mut cmd,
            Some(answer.as_bytes()),
            std::time::Duration::from_secs(30),
        );
        assert_eq!(o.status.code(), Some(0), "{answer:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "WARNING! This will remove all stopped containers.\nAre you sure you want to \
             continue? [y/N] ",
            "{answer:?}"
        );
        assert!(o.stderr.is_empty(), "{answer:?}");
    }
    let mut cmd = b.cmd(&["container", "prune"]);
    let o = run_with_input(&mut cmd, Some(b"Y\n"), std::time::Duration::from_secs(30));
    assert!(
        String::from_utf8_lossy(&o.stdout).ends_with("[y/N] Total reclaimed space: 0B\n"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}
