//! `berth volume …` without containers: create, ls (filters, --format, -q), inspect, rm and
//! prune answer as docker 20.10 does, and write their events. (With containers, as root:
//! `root_volumes`.)

use serde_json::Value;

use crate::util::Berth;

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn volume_commands_answer_as_docker_does() {
    let b = Berth::new();
    assert_eq!(b.ok(&["volume", "create", "v1"]), "v1\n");
    assert_eq!(
        b.ok(&[
            "volume",
            "create",
            "--label",
            "a=b",
            "--label",
            "c",
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "v2"
        ]),
        "v2\n"
    );
    let anon = b.ok(&["volume", "create"]).trim().to_string();
    assert!(
        anon.len() == 64 && anon.bytes().all(|c| c.is_ascii_hexdigit()),
        "{anon}"
    );
    // An existing name is answered again, unchanged.
    assert_eq!(b.ok(&["volume", "create", "--label", "z=1", "v1"]), "v1\n");

    for (args, msg) in [
        (
            &["volume", "create", "-d", "nosuch", "v3"][..],
            "Error: create v3: error looking up volume plugin nosuch: plugin \"nosuch\" not found\n",
        ),
        (
            &["volume", "create", "bad/name"],
            "Error: create bad/name: \"bad/name\" includes invalid characters for a local volume \
             name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a \
             host directory, use absolute path\n",
        ),
        (
            &["volume", "create", "-o", "foo=bar", "v4"],
            "Error: create v4: invalid option: \"foo\"\n",
        ),
        (
            &["volume", "create", "-o", "type=tmpfs", "v4"],
            "Error: create v4: missing required option: \"device\"\n",
        ),
        (&["volume", "ls", "-f", "bogus=1"], "Error: Invalid filter 'bogus'\n"),
        (
            &["volume", "ls", "-f", "dangling=maybe"],
            "Error: Invalid filter 'dangling=[maybe]'\n",
        ),
        (&["volume", "inspect", "nosuch"], "Error: No such volume: nosuch\n"),
        (&["volume", "rm", "nosuch"], "Error: No such volume: nosuch\n"),
        (
            &["volume", "prune", "-f", "--filter", "until=1h"],
            "Error: Invalid filter 'until'\n",
        ),
    ] {
        let out = b.cmd(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), msg, "{args:?}");
    }
    assert!(!b.root.join("volumes/v3").exists() && !b.root.join("volumes/v4").exists());

    assert_eq!(
        lines(&b.ok(&["volume", "ls"])),
        [
            "DRIVER    VOLUME NAME".to_string(),
            format!("local     {anon}"),
            "local     v1".into(),
            "local     v2".into()
        ]
    );
    assert_eq!(
        lines(&b.ok(&["volume", "ls", "-q"])),
        [anon.as_str(), "v1", "v2"]
    );
    assert_eq!(
        lines(&b.ok(&["volume", "ls", "-q", "-f", "label=a=b"])),
        ["v2"]
    );
    assert_eq!(
        lines(&b.ok(&["volume", "ls", "-q", "-f", "label=c"])),
        ["v2"]
    );
    assert_eq!(
        lines(&b.ok(&["volume", "ls", "-q", "-f", "name=v", "-f", "driver=local"])),
        ["v1", "v2"]
    );
    assert_eq!(
        lines(&b.ok(&["volume", "ls", "-q", "-f", "dangling=true", "-f", "name=v1"])),
        ["v1"]
    );
    assert_eq!(b.ok(&["volume", "ls", "-q", "-f", "dangling=false"]), "");
    let mount = b.root.join("volumes/v2/_data");
    assert_eq!(
        b.ok(&[
            "volume",
            "ls",
            "-f",
            "name=v2",
            "--format",
            "{{.Name}} {{.Labels}} {{.Mountpoint}} {{.Scope}} {{.Size}} {{.Links}}"
        ]),
        format!("v2 a=b,c= {} local N/A N/A\n", mount.display())
    );
    let row: Value =
        serde_json::from_str(&b.ok(&["volume", "ls", "-f", "name=v1", "--format", "json"]))
            .unwrap();
    assert_eq!(row["Driver"], "local");

    let docs: Value = serde_json::from_str(&b.ok(&["volume", "inspect", "v1", "v2"])).unwrap();
    let v2 = &docs[1];
    assert_eq!(v2["Name"], "v2");
    assert_eq!(v2["Driver"], "local");
    assert_eq!(v2["Scope"], "local");
    assert_eq!(v2["Labels"], serde_json::json!({"a": "b", "c": ""}));
    assert_eq!(
        v2["Options"],
        serde_json::json!({"type": "tmpfs", "device": "tmpfs"})
    );
    assert_eq!(v2["Mountpoint"], mount.to_str().unwrap());
    let created = v2["CreatedAt"].as_str().unwrap();
    assert!(
        created.len() == 20 && created.ends_with('Z'),
        "docker's seconds: {created}"
    );
    assert_eq!(
        docs[0]["Labels"],
        serde_json::json!({}),
        "create again changes nothing"
    );
    assert_eq!(
        b.ok(&["volume", "inspect", "-f", "{{.Name}}:{{.Driver}}", "v1"]),
        "v1:local\n"
    );
    // Found ones are printed, a missing one is a line and status 1.
    let out = b
        .cmd(&["volume", "inspect", "v1", "nosuch"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap()[0]["Name"],
        "v1"
    );

    // rm: each removed is printed; a missing one fails the whole (but not the others).
    let out = b.cmd(&["volume", "rm", "v2", "nosuch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "v2\n");
    assert_eq!(b.ok(&["volume", "rm", "-f", "nosuch"]), "");
    assert!(!mount.exists());

    // prune: the prompt, then only what the filter admits.
    b.ok(&["volume", "create", "--label", "keep=1", "kept"]);
    std::fs::write(b.root.join("volumes/v1/_data/f"), vec![0u8; 100 * 1024]).unwrap();
    let mut prune = b.cmd(&["volume", "prune"]);
    let out =
        crate::util::run_with_input(&mut prune, Some(b"n\n"), std::time::Duration::from_secs(30));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "WARNING! This will remove all local volumes not used by at least one container.\n\
         Are you sure you want to continue? [y/N] Total reclaimed space: 0B\n"
    );
    assert_eq!(
        b.ok(&["volume", "prune", "-f", "--filter", "label!=keep"]),
        format!("Deleted Volumes:\n{anon}\nv1\n\nTotal reclaimed space: 102.4kB\n")
    );
    assert_eq!(
        b.ok(&["volume", "prune", "-f", "--filter", "label=nosuch"]),
        "Total reclaimed space: 0B\n"
    );
    assert_eq!(lines(&b.ok(&["volume", "ls", "-q"])), ["kept"]);

    // Each creation and removal is in the journal, in docker's words.
    let events = crate::root_events::journal(&b.root);
    let of = |name: &str| crate::root_events::actions_of(&events, "volume", name);
    assert_eq!(of("v1"), ["create", "destroy"]);
    assert_eq!(of("v2"), ["create", "destroy"]);
    assert_eq!(of("kept"), ["create"]);
    let e = events
        .iter()
        .find(|e| e["Type"] == "volume" && e["Actor"]["ID"] == "v2")
        .unwrap();
    assert_eq!(e["Actor"]["Attributes"]["driver"], "local");
}
