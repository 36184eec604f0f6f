//! `version` and `info`, their fields and `--format`, and a prune's question answered no: what
//! docker prints for each (a client root of the test's own, no container run).

use serde_json::Value;

use crate::util::{busybox_rootfs, import_rootfs, run_with_input, Berth, Dockerd};

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

#[test]
fn version_git_commit_and_build_time_as_docker_prints_them() {
    // docker 28 prints "Git commit:" (seven hex digits) and "Built:" (Go's time.ANSIC, UTC)
    // for the client and the engine, and has them as GitCommit and BuildTime in --format.
    let b = Berth::new();
    let text = b.ok(&["version"]);
    let field = |name: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.trim_start().strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_string())
            .collect()
    };
    let commits = field("Git commit");
    assert_eq!(commits.len(), 2, "{text}");
    assert_eq!(commits[0], commits[1]);
    let head = commits[0].clone();
    // A commit of this repository (the one built), or "unknown" for a build without git.
    let known = std::process::Command::new("git")
        .args(["cat-file", "-e", &format!("{head}^{{commit}}")])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .is_ok_and(|s| s.success());
    let in_git = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .is_ok_and(|o| o.status.success());
    if in_git {
        assert!(head.len() == 7 && known, "{head:?} is no commit here");
    } else {
        assert_eq!(head, "unknown");
    }
    let built = field("Built");
    assert_eq!(built.len(), 2, "{text}");
    assert_eq!(built[0], built[1]);
    let ansic = "%a %b %e %H:%M:%S %Y";
    let at = chrono::NaiveDateTime::parse_from_str(&built[0], ansic)
        .unwrap_or_else(|e| panic!("Built {:?}: {e}", built[0]));
    assert!(at.and_utc() <= chrono::Utc::now(), "{at}");
    // the lines stand where docker's do: after Version, before OS/Arch
    assert!(
        text.starts_with(&format!(
            "Client:\n Version:           {}\n Git commit:        {head}\n Built:             {}\n OS/Arch:",
            env!("CARGO_PKG_VERSION"),
            built[0]
        )),
        "{text}"
    );
    assert_eq!(
        b.ok(&[
            "version",
            "--format",
            "{{.Client.GitCommit}}|{{.Client.BuildTime}}|{{.Server.GitCommit}}|{{.Server.BuildTime}}"
        ]),
        format!("{head}|{0}|{head}|{0}\n", built[0])
    );
    assert_eq!(
        b.ok(&[
            "version",
            "--format",
            "{{range .Server.Components}}{{if eq .Name \"Engine\"}}{{.Details.GitCommit}} {{.Details.BuildTime}}{{end}}{{end}}"
        ]),
        format!("{head} {}\n", built[0])
    );

    // docker's client answers these fields without a daemon: the same layout.
    let docker = std::process::Command::new(crate::util::require("docker"))
        .args([
            "version",
            "--format",
            "{{.Client.GitCommit}}|{{.Client.BuildTime}}",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&docker.stdout);
    let (commit, time) = out
        .trim()
        .split_once('|')
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(commit.len(), 7, "docker {commit:?}");
    chrono::NaiveDateTime::parse_from_str(time, ansic)
        .unwrap_or_else(|e| panic!("docker's Built {time:?}: {e}"));
}

#[test]
fn malformed_templates_fail_with_gos_parse_errors() {
    // docker's client parses `version --format` itself (no daemon needed), with Go's
    // text/template: each malformed template's error and exit status (64) are docker's.
    let b = Berth::new();
    let docker = crate::util::require("docker");
    for template in [
        "{{range $i, := .}}{{end}}",
        "{{range $i, 3}}{{end}}",
        "{{range $i, }}{{end}}",
        "{{range $i, $j, $k := .}}{{end}}",
        "{{with $x, $y := .}}{{end}}",
        "{{$x, $y := .}}",
        "{{$x := }}",
        "{{}}",
        "{{if}}{{end}}",
        "{{.Client.Version}}{{if .Client}}",
        "a\n{{end}}",
        "{{else}}",
        "{{.Client",
        // variables in scope, as Go's parser keeps it
        "{{$x}}",
        "{{if true}}{{$y := 2}}{{end}}{{$y}}",
        "{{range $i, $e := .Server.Components}}{{end}}{{$e}}",
        "{{$x := 1}}{{define \"t\"}}{{$x}}{{end}}",
        "{{block \"b\" .}}{{$z}}{{end}}",
        "{{.Client.Version | printf \"%s\" $x}}",
        // break and continue only in a range's body
        "{{break}}",
        "{{continue}}",
        "{{if true}}{{break}}{{end}}",
        "{{range .Server.Components}}{{else}}{{break}}{{end}}",
        "{{range .Server.Components}}{{define \"x\"}}{{end}}{{end}}",
        // strings, parentheses and operands
        "{{\"abc}}",
        "{{`abc}}",
        "{{'a}}",
        "{{\"a\nb\"}}",
        "{{\"a\\\"}}",
        "{{\"\\q\"}}",
        "{{(.Client}}",
        "{{.Client.}}",
        "{{..}}",
        // else: once, and `else if` only in an if, `else with` only in a with
        "{{if .Client}}{{else}}{{else}}{{end}}",
        "{{range .Server.Components}}{{else if .Y}}{{end}}",
        "{{nope}}",
        "a\n{{.Client | nope}}",
        // a number is digits and one fraction; a command begins with an operand
        "{{1.2.3}}",
        "{{1..2}}",
        "{{.Client.Version | | printf \"%s\"}}",
        "{{|.Client.Version}}",
        // a field right after a literal
        "{{1.5.Foo}}",
        "{{\"a\".Foo}}",
        "{{`a`.Foo}}",
        "{{'a'.Foo}}",
        "{{true.Foo}}",
        "{{nil.Foo}}",
        "{{.Client.Version | printf \"%s\" 2.5.X}}",
    ] {
        let o = std::process::Command::new(&docker)
            .args(["version", "--format", template])
            .output()
            .unwrap();
        let theirs = String::from_utf8_lossy(&o.stderr);
        let theirs = theirs
            .lines()
            .next()
            .unwrap_or_else(|| panic!("docker accepted {template:?}"));
        assert!(theirs.starts_with("template parsing error: "), "{theirs}");
        let ours = b.cmd(&["version", "--format", template]).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&ours.stderr).trim_end(),
            theirs,
            "{template:?}"
        );
        assert_eq!(ours.status.code(), o.status.code(), "{template:?}");
        assert_eq!(ours.status.code(), Some(64), "{template:?}");
    }
    // Where Go's words changed, docker 28's (Go 1.24): checked against it when it is at hand.
    for (template, message) in [
        ("{{)}}", "unexpected right paren"),
        (
            "{{if .Client}}{{else with .Y}}{{end}}",
            "unexpected <with> in input",
        ),
    ] {
        let want = format!("template parsing error: template: version:1: {message}");
        if let Some(docker) = crate::cli::docker_28() {
            let o = std::process::Command::new(docker)
                .args(["version", "--format", template])
                .output()
                .unwrap();
            let theirs = String::from_utf8_lossy(&o.stderr);
            assert_eq!(theirs.lines().next(), Some(want.as_str()), "docker 28");
        }
        let (_, ours) = b.fails(&["version", "--format", template]);
        assert_eq!(ours.trim_end(), want, "{template:?}");
    }
    // What Go's parser accepts, berth too.
    assert_eq!(
        b.ok(&[
            "version",
            "--format",
            "{{range $i, $c := .Server.Components}}{{$i}}{{end}} {{$x := 1}}{{$x = 2}}{{$x}}"
        ]),
        "01 2\n"
    );
    for (template, out) in [
        ("{{$x := $}}{{define \"t\"}}{{$}}{{end}}{{$x.Client.Context}}", "default"),
        (
            "{{range .Server.Components}}{{if true}}{{break}}{{end}}{{end}}",
            "",
        ),
        (
            "{{range .Server.Components}}{{if eq .Name \"Engine\"}}{{continue}}{{end}}{{.Name}}{{end}}",
            "berth-runtime",
        ),
        ("{{with $v := .Client}}{{$v.Context}}{{else}}{{$v}}{{end}}", "default"),
        ("{{if $v := .Client}}{{$v.Context}}{{else if $w := 1}}{{$w}}{{end}}", "default"),
        ("{{$x := 1}}{{/* $y ( */}}{{$x}}{{\"}}$z)\"}}", "1}}$z)"),
        ("{{\"a\\\"b\\n\"}}{{1.5}} {{(.Client).Context}}", "a\"b\n1.5 default"),
        ("{{`{{$nope`}}{{'$'}}", "{{$nope36"),
        // A pipeline may end in `|`.
        ("{{.Client.Context |}}{{(.Client.Context|)}}", "defaultdefault"),
    ] {
        assert_eq!(
            b.ok(&["version", "--format", template]),
            format!("{out}\n"),
            "{template:?}"
        );
    }
}

#[test]
fn bad_templates_answer_in_each_commands_words() {
    // docker 28's client (with a 20.10 daemon, no container, no image): the words before Go's
    // error and the status differ by command. A template that does not parse: `inspect`,
    // `info` and `version` exit 64 before looking anything up; `ps` says "failed to parse
    // template", `events` "Error parsing format" (64); listings exit 1. `ps` and `events` also
    // run the template once on an empty row or event, so a field there is none of fails with
    // nothing to list. None has "Error: " before it.
    let b = Berth::new();
    let bad = "{{range $i, := .}}";
    let parse = "template: :1: range can only initialize variables";
    let cases: &[(&[&str], &str, i32)] = &[
        (&["inspect", "nosuch"], "template parsing error: ", 64),
        (
            &["container", "inspect", "nosuch"],
            "template parsing error: ",
            64,
        ),
        (
            &["image", "inspect", "nosuch"],
            "template parsing error: ",
            64,
        ),
        (
            &["volume", "inspect", "nosuch"],
            "template parsing error: ",
            64,
        ),
        (
            &["network", "inspect", "nosuch"],
            "template parsing error: ",
            64,
        ),
        (&["info"], "template parsing error: ", 64),
        (&["events", "--until", "1s"], "Error parsing format: ", 64),
        (&["ps"], "failed to parse template: ", 1),
        (&["container", "ls", "-a"], "failed to parse template: ", 1),
        (&["images"], "template parsing error: ", 1),
        (&["volume", "ls"], "template parsing error: ", 1),
        (&["network", "ls"], "template parsing error: ", 1),
        (&["system", "df"], "template parsing error: ", 1),
        (&["stats", "--no-stream"], "template parsing error: ", 1),
    ];
    for (args, words, status) in cases {
        let mut args = args.to_vec();
        args.extend(["--format", bad]);
        let o = b.cmd(&args).output().unwrap();
        assert_eq!(
            String::from_utf8_lossy(&o.stderr),
            format!("{words}{parse}\n"),
            "{args:?}"
        );
        assert_eq!(o.status.code(), Some(*status), "{args:?}");
        assert!(o.stdout.is_empty(), "{args:?}");
    }
    // A template that cannot run on an empty row: ps (a field no row has) and events (a
    // function without its argument) refuse it before listing anything.
    for (args, words, status, what) in [
        (
            vec!["ps", "--format", "{{.Nope}}"],
            "failed to execute template: ",
            1,
            "Nope",
        ),
        (
            vec!["events", "--until", "1s", "--format", "{{json}}"],
            "Error parsing format: ",
            64,
            "wrong number of args for json: want 1 got 0",
        ),
    ] {
        let o = b.cmd(&args).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.starts_with(&format!("{words}template: ")) && err.contains(what),
            "{args:?}: {err}"
        );
        assert_eq!(o.status.code(), Some(status), "{args:?}");
    }
    // What an empty row or event has passes (an event's attributes are a map with no key).
    assert_eq!(
        b.ok(&["ps", "--format", "{{.ID}} {{.Label \"x\"}} {{.Names}}"]),
        ""
    );
    assert_eq!(
        b.ok(&[
            "events",
            "--until",
            "1s",
            "--format",
            "{{.Type}} {{.Actor.Attributes.name}} {{index .Actor.Attributes \"x\"}} {{json .}}"
        ]),
        ""
    );
    // Listings read `\t` and `\n` as a tab and a newline and may begin with `table`; the
    // others read the template as it is.
    assert_eq!(b.ok(&["info", "--format", "a\\tb\\n"]), "a\\tb\\n\n");
    assert_eq!(
        b.ok(&["version", "--format", "table {{\"a\\n\"}}"]),
        "table a\n\n"
    );
    let df = b.ok(&["system", "df", "--format", "{{.Type}}\\t|\\n"]);
    assert!(df.starts_with("Images\t|\n\nContainers\t|\n"), "{df:?}");
    // `info` with a template that fails as it runs: Go's error alone, status 1.
    let (_, err) = b.fails(&["info", "--format", "{{.Nope}}"]);
    assert!(err.starts_with("template: "), "{err}");
}

#[test]
fn templates_fail_and_read_maps_where_docker_does() {
    // A private dockerd and berth, each with the same image, a container and a volume: each
    // template gives docker's exact output, error (Go's position and node, the Go type of a
    // struct without the field) and status. A key missing from a map is no value, a field
    // missing from a struct an error; docker's inspect of containers, images and networks
    // runs a failed template again on the JSON (where every object is a map).
    let d = Dockerd::start();
    let b = Berth::new();
    let rootfs = b.dir.path().join("rootfs");
    busybox_rootfs(&rootfs, &[]);
    let tar = import_rootfs(&b, &rootfs, "tmpl:1");
    d.ok(&["import", tar.to_str().unwrap(), "tmpl:1"]);
    for args in [
        &["create", "--name", "tc", "-l", "a=b", "tmpl:1", "sh"][..],
        &["volume", "create", "tv"],
        &[
            "create",
            "--name",
            "th",
            "--health-cmd",
            "true",
            "--health-interval",
            "90m",
            "--health-timeout",
            "1500ms",
            "--health-start-period",
            "1m30s",
            "--health-retries",
            "2",
            "tmpl:1",
            "sh",
        ],
    ] {
        d.ok(args);
        b.ok(args);
    }
    let same = |args: &[&str]| {
        let theirs = d.cmd(args).output().unwrap();
        let ours = b.cmd(args).output().unwrap();
        let text = |o: &std::process::Output| {
            (
                String::from_utf8_lossy(&o.stdout).to_string(),
                String::from_utf8_lossy(&o.stderr).to_string(),
                o.status.code(),
            )
        };
        // Go prints a pointer inside a struct as its address, which changes from run to
        // run; berth prints 0xc000000000 for each.
        let text = |o: &std::process::Output| {
            let (out, err, code) = text(o);
            (go_addresses_as_berths(&out), err, code)
        };
        assert_eq!(text(&ours), text(&theirs), "{args:?}");
    };
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["inspect", "tc"],
            &[
                "{{.Config.Labels.nope}}|{{index .Config.Labels \"x\"}}",
                "{{json .Config.Env}}|{{.Config.Env}}|{{len .Config.Env}}",
                "{{.NetworkSettings.Networks.nope}}|{{.HostConfig.LogConfig.Config.x}}",
                "{{.Config.Volumes.x}}|{{.HostConfig.Sysctls.x}}",
                "{{.Nope}}",
                "x{{.Config.Nope}}",
                "{{.Config.Labels.nope}}{{.State.Nope}}",
                "{{.NetworkSettings.Ports.x}}",
                // Structs print as Go prints them: fields in declaration order, nested
                // structs in braces, nil pointers as <nil>, others as addresses.
                "{{.State}}|{{.State.Health}}|{{.Config.Healthcheck}}",
                "{{.HostConfig.LogConfig}}|{{.HostConfig.RestartPolicy}}|{{.HostConfig.ConsoleSize}}",
                "{{.HostConfig.Resources}}",
                "{{.}}",
                "{{.NetworkSettings}}",
                "{{printf \"%v\" .State}}|{{json .State}}",
                // Typed nils: a nil slice [], a nil map map[], a nil pointer <nil>.
                "{{.Config.Entrypoint}}|{{json .Config.Entrypoint}}|{{.Mounts}}|{{.ExecIDs}}",
                "{{.Config.Volumes}}|{{json .Config.Volumes}}|{{.Config.Labels}}",
                "{{index .NetworkSettings.Networks \"nope\"}}|{{.HostConfig.Init}}|{{.HostConfig.PidsLimit}}",
                "{{.HostConfig.Ulimits}}|{{len .Config.Entrypoint}}|{{range .Config.Entrypoint}}x{{end}}",
                "{{.State.Health.Status}}",
            ],
        ),
        (
            &["container", "inspect", "tc"],
            &[
                "{{.Config.Labels.nope}}",
                "{{.State.Nope}}{{.Config.Labels.nope}}",
            ],
        ),
        (
            &["image", "inspect", "tmpl:1"],
            &[
                "{{.Config.Labels.nope}}|{{.GraphDriver.Data.nope}}",
                "{{.Config.Nope}}",
                // docker's image Config is an OCI image config with docker's extensions
                // embedded: printed as Go prints it, its nil slices and maps as [] and map[].
                "{{.Config}}",
                "{{.RootFS}}|{{.RepoDigests}}|{{.Descriptor}}|{{.Manifests}}",
                "{{.Config.Env}}|{{.Config.Healthcheck}}|{{json .Config}}|{{json .RootFS}}",
                "{{.Config.Labels}}|{{.Config.Volumes}}|{{.RepoTags}}",
            ],
        ),
        (
            &["volume", "inspect", "tv"],
            &[
                "{{.Labels.nope}}|{{.Options.x}}|{{.Status.x}}",
                "{{.Nope}}",
                "{{.Labels}}|{{.Options}}|{{.Status}}|{{.UsageData}}|{{.ClusterVolume}}",
                "{{.UsageData.Size}}",
                "{{.Name.x}}",
            ],
        ),
        (
            &["network", "inspect", "none"],
            &["{{.IPAM}}|{{.ConfigFrom}}|{{.Containers}}|{{.Peers}}|{{.Services}}"],
        ),
        // Durations print with their String method (1h30m0s), and compare and write JSON as
        // the integers they are.
        (
            &["inspect", "th"],
            &[
                "{{.Config.Healthcheck.Interval}}|{{.Config.Healthcheck}}",
                "{{printf \"%v %s\" .Config.Healthcheck.Timeout .Config.Healthcheck.StartPeriod}}",
                "{{json .Config.Healthcheck}}|{{.Config.Healthcheck.StartInterval}}",
                "{{eq .Config.Healthcheck.Retries 2}} {{gt .Config.Healthcheck.Interval 5}}",
                "{{if .Config.Healthcheck.StartInterval}}y{{else}}n{{end}}",
                "{{.Config.Healthcheck.Interval.x}}",
            ],
        ),
        (
            &["ps", "-a"],
            &["{{.Nope}}", "{{.Labels.nope}}", "x\n{{.Names}}{{.Nope}}"],
        ),
        (
            &["images"],
            &["{{.Nope}}", "{{.ID}}{{.Nope}}", "table {{.Nope}}"],
        ),
        (
            &["events", "--since", "1s", "--until", "1s"],
            &[
                "{{.Nope}}",
                "{{.Actor.Nope}}",
                "{{.Actor.Attributes.x}}",
                "{{json}}",
            ],
        ),
        (
            &["info"],
            &[
                "{{.Nope}}",
                "{{.Plugins.Nope}}",
                "{{.RegistryConfig.Nope}}",
                "{{.RegistryConfig.IndexConfigs.nope}}",
                // docker's Go types: Labels is a []string, Swarm.Cluster a nil pointer, a
                // missing runtime the zero RuntimeWithStatus (which embeds a Runtime).
                "{{.Labels.x}}",
                "{{.Labels}}|{{.GenericResources}}|{{.FirewallBackend}}|{{.Containerd}}|{{.CDISpecDirs}}",
                "{{.Swarm.Cluster}}|{{index .Runtimes \"nope\"}}|{{.Runtimes.nope}}",
                "{{.Swarm.Cluster.ID}}",
                "{{.Plugins.Volume.x}}",
            ],
        ),
        (
            &["version"],
            &[
                "{{.Nope}}",
                "ab\nc{{.Client.Nope}}",
                "{{index .Client.Version 99}}",
                "{{.Server.Nope}}",
                "{{(index .Server.Components 0).Nope}}",
                "{{(index .Server.Components 0).Details.nope}}",
                "{{.Client.Version|.Client}}",
                "{{$x = 1}}",
                "{{printf \"%s\" 1|}}",
                "{{.Server.Platform.Nope}}",
                "{{.Client.Version.x}}",
                "{{(index .Server.Components 0).Name.x}}",
            ],
        ),
        (&["volume", "ls"], &["{{.Nope}}"]),
        (&["network", "ls"], &["{{.Nope}}"]),
        (
            &["network", "ls", "--filter", "name=none-such"],
            &["table {{.Nope}}"],
        ),
        (&["history", "tmpl:1"], &["{{.Nope}}"]),
        (&["system", "df"], &["{{.Nope}}"]),
    ];
    for (args, templates) in cases {
        for template in *templates {
            let mut args = args.to_vec();
            args.extend(["--format", template]);
            same(&args);
        }
    }
    // A time prints with its String method (`2026-12-06 06:27:17.24 +0000 UTC`): the same
    // shape as docker's for the times each has.
    let shape = |out: String| {
        let digits: String = out
            .chars()
            .map(|c| if c.is_ascii_digit() { '9' } else { c })
            .collect();
        match digits.split_once('.') {
            Some((whole, rest)) => format!("{whole}{}", &rest[rest.find(' ').unwrap()..]),
            None => digits,
        }
    };
    let time = [
        "image",
        "inspect",
        "tmpl:1",
        "--format",
        "{{.Metadata.LastTagTime}}",
    ];
    let ours = shape(b.ok(&time));
    assert_eq!(ours, "9999-99-99 99:99:99 +9999 UTC\n");
    assert_eq!(ours, shape(d.ok(&time)));
}

/// Each `0xc…` (a Go address) as `0xc000000000`.
fn go_addresses_as_berths(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("0xc") {
        out.push_str(&rest[..i]);
        let tail = &rest[i + 3..];
        let hex = tail
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(tail.len());
        out.push_str("0xc000000000");
        rest = &tail[hex..];
    }
    out.push_str(rest);
    out
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
