//! `berth system prune` and `system df`'s build cache, as root: what goes is what docker
//! 20.10 removes (stopped containers, unused networks, dangling or unused images, the build
//! cache, with `--volumes` unused volumes), in its order and words, and each prune is an
//! event.

use crate::root_containers::{out, setup, shared, stderr, stdout};
use crate::root_events::journal;

#[test]
fn root_prune_system_prune_removes_what_docker_does() {
    let _host = shared();
    let b = setup();
    let dead = b
        .ok(&["create", "--name", "dead", "bb", "true"])
        .trim()
        .to_string();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "live",
        "-v",
        "kept:/srv/app",
        "bb",
        "sleep",
        "300",
    ]);
    b.ok(&["network", "create", "nn"]);
    b.ok(&["volume", "create", "orphan"]);
    // A build's layer the cache keeps after its image is gone: dangling build cache.
    let context = b.dir.path().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), "FROM bb\nRUN echo built > /f\n").unwrap();
    b.ok(&["build", "-q", "-t", "built", context.to_str().unwrap()]);
    b.ok(&["rmi", "built"]);
    // (after the rmi: rmi takes an untagged image whose layers begin the removed one's as
    // its parent)
    let tar = b.dir.path().join("rootfs.tar");
    let dangling = b
        .ok(&["import", "-c", "ENV DANGLING=1", tar.to_str().unwrap()])
        .trim()
        .to_string();
    let df = b.ok(&["system", "df", "--format", "{{.Type}}={{.TotalCount}}"]);
    assert!(df.contains("Build Cache=1\n"), "{df}");

    // Without -f: docker's prompt; "n" removes nothing.
    let mut cmd = b.cmd(&[
        "system", "prune", "--filter", "label!=x", "--filter", "label=a",
    ]);
    let o = crate::util::run_with_input(&mut cmd, Some(b"n\n"), std::time::Duration::from_secs(30));
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stdout(&o),
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by \
         at least one container\n  - all dangling images\n  - all dangling build cache\n\n  \
         Items to be pruned will be filtered with:\n  - label!=x\n  - label=a\n\nAre you sure \
         you want to continue? [y/N] "
    );
    let o = out(
        &b,
        &["system", "prune", "-f", "--volumes", "--filter", "until=1h"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "ERROR: The \"until\" filter is not supported with \"--volumes\"\n"
    );
    let o = out(&b, &["system", "prune", "-f", "--filter", "bogus=1"]);
    assert_eq!(
        (o.status.code(), stderr(&o).as_str()),
        (Some(1), "Error: Invalid filter 'bogus'\n")
    );
    assert!(b.ok(&["ps", "-aq", "--no-trunc"]).contains(&dead));

    let text = b.ok(&["system", "prune", "-f"]);
    let at = |s: &str| {
        text.find(s)
            .unwrap_or_else(|| panic!("{s:?} is not in:\n{text}"))
    };
    let sections = [
        at(&format!("Deleted Containers:\n{dead}\n\n")),
        at("Deleted Networks:\nnn\n\n"),
        at(&format!("Deleted Images:\ndeleted: {dangling}\n")),
        at("Deleted build cache objects:\n"),
        at("Total reclaimed space: "),
    ];
    assert!(
        sections.windows(2).all(|w| w[0] < w[1]),
        "docker's order:\n{text}"
    );
    assert!(!text.contains("Deleted Volumes"), "{text}");
    assert!(
        text.ends_with("\n") && text.lines().last().unwrap().len() > 23,
        "{text}"
    );
    // What runs, what it uses, and the volumes stay.
    assert_eq!(b.ok(&["ps", "-q", "-f", "name=live"]).lines().count(), 1);
    assert!(b.ok(&["images", "-q", "bb"]).lines().count() == 1);
    assert_eq!(
        b.ok(&["volume", "ls", "-q", "-f", "name=orphan"]),
        "orphan\n"
    );
    let df = b.ok(&["system", "df", "--format", "{{.Type}}={{.TotalCount}}"]);
    assert!(df.contains("Build Cache=0\n"), "{df}");

    // -a --volumes: unused volumes go; what the running container uses stays.
    let text = b.ok(&["system", "prune", "-a", "-f", "--volumes"]);
    // (with dead's anonymous volume for the image's VOLUME, which container prune leaves)
    assert!(
        text.starts_with("Deleted Volumes:\n") && text.contains("\norphan\n"),
        "{text}"
    );
    assert_eq!(b.ok(&["volume", "ls", "-q", "-f", "name=kept"]), "kept\n");
    assert_eq!(b.ok(&["images", "-q", "bb"]).lines().count(), 1);
    b.ok(&["rm", "-f", "live"]);

    let prunes: Vec<String> = journal(&b.root)
        .iter()
        .filter(|e| e["Action"] == "prune")
        .map(|e| {
            assert_eq!(e["Actor"]["ID"], "");
            assert!(e["Actor"]["Attributes"]["reclaimed"].is_string());
            e["Type"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(
        prunes,
        [
            "container",
            "network",
            "image",
            "builder",
            "container",
            "network",
            "volume",
            "image",
            "builder"
        ]
    );
}
