//! The events journal and `berth events`, as root (containers run): what each command did is
//! in the journal under the root, in docker's words and order.

use serde_json::Value;

use crate::root_containers::{eventually, setup, shared};

/// The journal's events, oldest first: (Type, Action, Actor.ID, attributes).
pub(crate) fn journal(root: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    for name in ["journal.1", "journal"] {
        if let Ok(text) = std::fs::read_to_string(root.join("events").join(name)) {
            out.extend(
                text.lines()
                    .map(|l| serde_json::from_str::<Value>(l).unwrap()),
            );
        }
    }
    out
}

pub(crate) fn actions_of(events: &[Value], kind: &str, id: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["Type"] == kind && e["Actor"]["ID"] == id)
        .map(|e| e["Action"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn root_events_the_journal_has_what_each_command_did_in_dockers_words() {
    let _host = shared();
    let b = setup();
    let id = b
        .ok(&[
            "run",
            "-d",
            "--name",
            "ev",
            "-l",
            "team=a",
            "-v",
            "evvol:/data",
            "bb",
            "sleep",
            "300",
        ])
        .trim()
        .to_string();
    b.ok(&["exec", "ev", "true"]);
    b.ok(&["pause", "ev"]);
    b.ok(&["unpause", "ev"]);
    b.ok(&["kill", "ev"]);
    eventually("the die event", || {
        actions_of(&journal(&b.root), "container", &id).contains(&"die".to_string())
    });
    b.ok(&["rename", "ev", "ev2"]);
    b.ok(&["rm", "ev2"]);
    b.ok(&["tag", "bb", "bb:two"]);
    b.ok(&["rmi", "bb:two"]);

    let events = journal(&b.root);
    assert_eq!(
        actions_of(&events, "container", &id),
        [
            "create",
            "start",
            "exec_create: true",
            "exec_start: true",
            "exec_die: true",
            "pause",
            "unpause",
            "kill",
            "die",
            "rename",
            "destroy"
        ]
    );
    let get = |action: &str| -> &Value {
        events
            .iter()
            .find(|e| e["Actor"]["ID"] == id.as_str() && e["Action"] == action)
            .unwrap()
    };
    let create = get("create");
    assert_eq!(create["status"], "create");
    assert_eq!(create["id"], id.as_str());
    assert_eq!(create["from"], "bb");
    assert_eq!(create["scope"], "local");
    assert_eq!(
        create["Actor"]["Attributes"],
        serde_json::json!({"image": "bb", "name": "ev", "team": "a"})
    );
    assert_eq!(
        create["time"].as_i64().unwrap(),
        create["timeNano"].as_i64().unwrap() / 1_000_000_000
    );
    assert_eq!(get("kill")["Actor"]["Attributes"]["signal"], "9");
    assert_eq!(get("die")["Actor"]["Attributes"]["exitCode"], "137");
    assert_eq!(
        get("exec_die: true")["Actor"]["Attributes"]["exitCode"],
        "0"
    );
    assert_eq!(get("rename")["Actor"]["Attributes"]["oldName"], "/ev");
    assert_eq!(get("rename")["Actor"]["Attributes"]["name"], "ev2");
    assert_eq!(actions_of(&events, "volume", "evvol"), ["create", "mount"]);
    let net: Vec<&Value> = events.iter().filter(|e| e["Type"] == "network").collect();
    assert_eq!(
        net.iter()
            .map(|e| e["Action"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["connect", "disconnect"]
    );
    assert_eq!(net[0]["Actor"]["Attributes"]["container"], id.as_str());
    assert_eq!(net[0]["Actor"]["Attributes"]["name"], "bridge");
    // Images: the import of the test image, then the tag and its removal, by image id.
    let image_actions: Vec<&str> = events
        .iter()
        .filter(|e| e["Type"] == "image")
        .map(|e| e["Action"].as_str().unwrap())
        .collect();
    assert_eq!(image_actions, ["import", "tag", "untag"]);
    let tag = events.iter().find(|e| e["Action"] == "tag").unwrap();
    assert!(tag["Actor"]["ID"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(tag["Actor"]["Attributes"]["name"], "bb:two");
}

/// `berth events` over what the commands wrote: docker's lines, filters, templates, json,
/// and a follower that sees what is written while it runs and stops at `--until`.
#[test]
fn root_events_command_prints_filters_and_follows() {
    let _host = shared();
    let b = setup();
    let since = chrono::Utc::now().timestamp().to_string();
    b.ok(&["run", "--name", "evc", "-l", "team=b", "bb", "true"]);
    let id = b
        .ok(&["inspect", "-f", "{{.Id}}", "evc"])
        .trim()
        .to_string();
    b.ok(&["rm", "evc"]);
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    let window = ["--since", since.as_str(), "--until", until.as_str()];
    let events = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["events"];
        args.extend_from_slice(&window);
        args.extend_from_slice(extra);
        b.ok(&args).lines().map(str::to_string).collect()
    };
    // docker's line: time type action id (attributes sorted).
    let all = events(&["--filter", "container=evc"]);
    let create = &all[0];
    let (time, rest) = create.split_once(' ').unwrap();
    assert!(
        chrono::DateTime::parse_from_rfc3339(time).is_ok(),
        "{create}"
    );
    assert_eq!(
        time.split('.').nth(1).unwrap().len(),
        10,
        "nanoseconds and Z: {time}"
    );
    assert_eq!(
        rest,
        format!("container create {id} (image=bb, name=evc, team=b)")
    );
    let actions = events(&[
        "-f",
        "container=evc",
        "-f",
        "event=start",
        "-f",
        "event=die",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Status}} {{index .Actor.Attributes \"exitCode\"}}",
    ]);
    assert_eq!(
        actions,
        [
            // `index` of a key missing from a map[string]string is "" in Go (docker 28).
            "container start evc start ",
            "container die evc die 0"
        ]
    );
    // One key ORs, different keys AND: no volume event is about a container.
    assert!(events(&["-f", "type=volume", "-f", "container=evc"]).is_empty());
    assert_eq!(
        events(&["-f", "label=team=b", "-f", "event=destroy"]).len(),
        1
    );
    let json = events(&[
        "-f",
        "event=create",
        "-f",
        "container=evc",
        "--format",
        "json",
    ]);
    let v: Value = serde_json::from_str(&json[0]).unwrap();
    assert_eq!(
        (v["status"].as_str(), v["from"].as_str()),
        (Some("create"), Some("bb"))
    );
    assert_eq!(v["Actor"]["ID"], id.as_str());
    // Bad filters: docker's words, exit 1.
    let (_, err) = b.fails(&["events", "--filter", "colour=red"]);
    assert!(err.contains("invalid filter 'colour'"), "{err}");
    let (_, err) = b.fails(&["events", "--filter", "nokey"]);
    assert!(err.contains("bad format of filter"), "{err}");

    // Live: a follower started now sees a tag written after it and ends at --until (with
    // --until alone, as docker's, it prints the past too: the filter leaves the tag).
    let until = (chrono::Utc::now().timestamp() + 4).to_string();
    let follower = b
        .cmd(&[
            "events",
            "--until",
            &until,
            "-f",
            "event=tag",
            "--format",
            "{{.Action}} {{.Actor.Attributes.name}}",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    b.ok(&["tag", "bb", "bb:live"]);
    let out = follower.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), "tag bb:live\n");
}
