//! Volumes with containers, as root: the volume `run -v NAME:/dir` makes is the one `volume
//! ls/inspect` show (filled with the image's content as docker fills it), a `volume
//! create`d one is used as it is, a volume in use cannot be removed or pruned, and the local
//! driver's options are mounted.

use serde_json::Value;

use crate::root_containers::{inspect, out, setup, sh, shared, stderr, stdout};
use crate::root_events::{actions_of, journal};

#[test]
fn root_volumes_run_and_volume_commands_share_one_object() {
    let _host = shared();
    let b = setup();
    // A name no volume has yet: run makes it, filled from the image, and it is listed.
    let o = sh(
        &b,
        &["--name", "user", "-v", "made:/srv/app"],
        "cat /srv/app/seed",
    );
    assert_eq!(stdout(&o), "from the image\n", "{}", stderr(&o));
    let v: Value = serde_json::from_str(&b.ok(&["volume", "inspect", "made"])).unwrap();
    let mountpoint = v[0]["Mountpoint"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(format!("{mountpoint}/seed")).unwrap(),
        "from the image\n"
    );
    assert_eq!(v[0]["Driver"], "local");

    // A created one keeps its labels when a container uses it, and is filled too.
    b.ok(&["volume", "create", "--label", "team=a", "pre"]);
    let id = b
        .ok(&[
            "create",
            "--name",
            "holder",
            "-v",
            "pre:/srv/app",
            "bb",
            "sleep",
            "300",
        ])
        .trim()
        .to_string();
    b.ok(&["start", "holder"]);
    let o = out(&b, &["exec", "holder", "cat", "/srv/app/seed"]);
    assert_eq!(stdout(&o), "from the image\n");
    let v: Value = serde_json::from_str(&b.ok(&["volume", "inspect", "pre"])).unwrap();
    assert_eq!(v[0]["Labels"]["team"], "a");
    let mounts = inspect(&b, "holder")["Mounts"].clone();
    assert_eq!(mounts[0]["Name"], "pre", "{mounts}");
    assert_eq!(mounts[0]["Source"], v[0]["Mountpoint"]);

    // In use (running, and then stopped): refused with docker's message, -f or not, and
    // kept by prune.
    let expect = format!("Error: remove pre: volume is in use - [{id}]\n");
    for args in [&["volume", "rm", "pre"][..], &["volume", "rm", "-f", "pre"]] {
        let o = out(&b, args);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(stderr(&o), expect);
    }
    // (the image's VOLUME /cache gives holder an anonymous one too)
    let used = b.ok(&["volume", "ls", "-q", "-f", "dangling=false"]);
    assert!(
        used.lines().any(|l| l == "pre") && used.lines().count() == 2,
        "{used}"
    );
    assert!(!used.contains("made"), "{used}");
    b.ok(&["stop", "-t", "0", "holder"]);
    assert_eq!(stderr(&out(&b, &["volume", "rm", "pre"])), expect);
    let pruned = b.ok(&["volume", "prune", "-f"]);
    assert!(pruned.starts_with("Deleted Volumes:\nmade\n\n"), "{pruned}");
    assert_eq!(b.ok(&["volume", "ls", "-q"]), used);
    b.ok(&["rm", "holder"]);
    assert_eq!(b.ok(&["volume", "rm", "pre"]), "pre\n");

    // Anonymous volumes are volumes too, and go with `rm -v`.
    b.ok(&["create", "--name", "anon", "-v", "/srv/app", "bb", "true"]);
    let anon = inspect(&b, "anon")["Mounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Destination"] == "/srv/app")
        .unwrap()["Name"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(b.ok(&["volume", "ls", "-q"]).contains(&anon));
    b.ok(&["rm", "-v", "anon"]);
    assert!(!b.ok(&["volume", "ls", "-q"]).contains(&anon));

    let events = journal(&b.root);
    assert_eq!(
        actions_of(&events, "volume", "made"),
        ["create", "mount", "destroy"]
    );
    assert_eq!(
        actions_of(&events, "volume", "pre"),
        ["create", "mount", "destroy"]
    );
    let anon_events = actions_of(&events, "volume", &anon);
    assert_eq!(anon_events.first().map(String::as_str), Some("create"));
    assert_eq!(anon_events.last().map(String::as_str), Some("destroy"));
    let _ = stdout;
}

#[test]
fn root_volumes_local_driver_options_are_mounted_and_unmounted() {
    let _host = shared();
    let b = setup();
    b.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=1m,nodev",
        "tv",
    ]);
    let o = sh(
        &b,
        &["-v", "tv:/srv/app"],
        "grep ' /srv/app ' /proc/mounts; cat /srv/app/seed",
    );
    let text = stdout(&o);
    assert!(
        text.starts_with("tmpfs /srv/app tmpfs rw,nodev") && text.contains("size=1024k"),
        "{text}{}",
        stderr(&o)
    );
    // Filled from the image like any new volume.
    assert!(text.ends_with("from the image\n"), "{text}");
    let mountpoint = b.root.join("volumes/tv/_data");
    let mounted = || {
        std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(mountpoint.to_str().unwrap())
    };
    assert!(mounted());
    assert_eq!(b.ok(&["volume", "rm", "tv"]), "tv\n");
    assert!(!mounted(), "volume rm unmounts");
    assert!(!b.root.join("volumes/tv").exists());

    // A mount that fails is the start's error, and nothing runs.
    b.ok(&[
        "volume",
        "create",
        "-o",
        "type=nosuchfs",
        "-o",
        "device=x",
        "bad",
    ]);
    let o = sh(&b, &["-v", "bad:/srv/app"], "true");
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("error while mounting volume"),
        "{}",
        stderr(&o)
    );
}
