//! User-defined networks through the command line, as root on a real kernel: `network
//! create/ls/inspect/rm/prune/connect/disconnect` and the run flags `--network` (several),
//! `--ip`, `--network-alias`, `--hostname`, with docker's messages and exit codes; names
//! resolved by each network's resolver (forwarded names go to a resolver of the test's own on
//! 127.0.0.0/8: the berth commands that start resolvers see it as the host's name server in a
//! mount namespace of their own); internal networks, hairpin, macvlan over a veth pair of the
//! test's own; and nothing left after fifty runs on networks made and removed. Subnets are
//! 10.98.<n>.0/24 (10.97 for macvlan), picked from the test process's id. Fails without root.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, UdpSocket};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::root_containers::{
    eventually, host_traces, http_get, inspect, out, setup, shared, stderr, stdout, Root,
};
use crate::root_events::journal;
use crate::util::{bounded, free_port, require, Berth, NetNs, PEER_TIMEOUT};

/// A test's client root whose containers, then networks, go when it drops.
pub(crate) struct Nets(Root);

impl std::ops::Deref for Nets {
    type Target = Berth;
    fn deref(&self) -> &Berth {
        &self.0
    }
}

impl Drop for Nets {
    fn drop(&mut self) {
        // Bounded and never panicking: a hung berth must not hang nor abort the test binary.
        let run = |args: &[&str]| {
            bounded(&mut self.0.cmd(args), None, PEER_TIMEOUT)
                .map_err(|e| eprintln!("removing the test's containers and networks: {e}"))
        };
        if let Ok(o) = run(&["ps", "-aq", "--no-trunc"]) {
            let ids = String::from_utf8_lossy(&o.stdout).into_owned();
            let mut args = vec!["rm", "-f", "-v"];
            args.extend(ids.split_whitespace());
            if args.len() > 3 {
                let _ = run(&args);
            }
        }
        let _ = run(&["network", "prune", "-f"]);
    }
}

pub(crate) fn nets() -> Nets {
    Nets(setup())
}

/// The first three octets of this test process's subnet number `i` (0 to 14), under 10.98:
/// each test has its own, as the tests of one process run side by side.
fn net24(i: u8) -> String {
    let n = (std::process::id() % 17) as u8 * 15 + i;
    format!("10.98.{n}")
}

/// Runs berth and returns (exit code, stdout, stderr).
fn code(b: &Berth, args: &[&str]) -> (i32, String, String) {
    let o = out(b, args);
    (o.status.code().unwrap_or(-1), stdout(&o), stderr(&o))
}

/// Asserts that berth fails with `status` and one line on stderr holding `needle`.
fn fails_with(b: &Berth, args: &[&str], status: i32, needle: &str) {
    let (c, _, err) = code(b, args);
    assert_eq!(c, status, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{args:?}: {err}");
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The names `network ls` shows for the filters.
fn listed(b: &Berth, filters: &[&str]) -> Vec<String> {
    let mut args = vec!["network", "ls", "--format", "{{.Name}}"];
    for f in filters {
        args.extend(["-f", f]);
    }
    b.ok(&args).lines().map(str::to_string).collect()
}

/// The container's address on a network, from `inspect`.
fn address(b: &Berth, container: &str, network: &str) -> String {
    inspect(b, container)["NetworkSettings"]["Networks"][network]["IPAddress"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn root_network_commands_flags_and_messages() {
    let _host = shared();
    let b = nets();
    let (p0, p1) = (net24(0), net24(1));
    let bridge = format!("bnc{}", std::process::id() % 100_000);
    let id = b.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{p0}.0/24"),
        "--gateway",
        &format!("{p0}.254"),
        "--ip-range",
        &format!("{p0}.128/25"),
        "--label",
        "team=a",
        "--label",
        "tier",
        "-o",
        &format!("com.docker.network.bridge.name={bridge}"),
        "front",
    ]);
    let id = id.trim().to_string();
    assert!(
        id.len() == 64 && id.bytes().all(|c| c.is_ascii_hexdigit()),
        "{id}"
    );
    let v = json(&b.ok(&["network", "inspect", "front"]))[0].clone();
    assert_eq!(v["Name"], "front");
    assert_eq!(v["Id"], id.as_str());
    assert_eq!(v["Driver"], "bridge");
    assert_eq!(v["Scope"], "local");
    assert_eq!(v["Internal"], false);
    assert_eq!(v["EnableIPv6"], false);
    let ipam = &v["IPAM"]["Config"][0];
    assert_eq!(ipam["Subnet"], format!("{p0}.0/24"));
    assert_eq!(ipam["IPRange"], format!("{p0}.128/25"));
    assert_eq!(ipam["Gateway"], format!("{p0}.254"));
    assert_eq!(v["Labels"], serde_json::json!({"team": "a", "tier": ""}));
    assert_eq!(
        v["Options"]["com.docker.network.bridge.name"],
        bridge.as_str()
    );
    assert_eq!(v["Containers"], serde_json::json!({}));
    b.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        &format!("{p1}.0/24"),
        "--label",
        "zone=in",
        "back",
    ]);
    assert_eq!(
        b.ok(&["network", "inspect", "-f", "{{.Internal}}", "back"]),
        "true\n"
    );
    // Without --subnet: a free /24 of 10.92.0.0-10.99.255.0, each its own, gateway .1.
    b.ok(&["network", "create", "auto1"]);
    b.ok(&["network", "create", "auto2"]);
    let auto: Vec<String> = ["auto1", "auto2"]
        .iter()
        .map(|n| {
            b.ok(&[
                "network",
                "inspect",
                "-f",
                "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
                n,
            ])
        })
        .collect();
    assert_ne!(auto[0], auto[1]);
    for a in &auto {
        let (subnet, gw) = a.trim().split_once(' ').unwrap();
        let (base, prefix) = subnet.split_once('/').unwrap();
        let base: Ipv4Addr = base.parse().unwrap();
        assert_eq!(prefix, "24", "{a}");
        assert!(
            (0x0a5c_0000..=0x0a63_ff00).contains(&u32::from(base)),
            "{a}"
        );
        assert_eq!(gw, Ipv4Addr::from(u32::from(base) + 1).to_string(), "{a}");
    }

    // ls: docker's table, sorted by name; -q, --no-trunc, --format, filters.
    let ls = b.ok(&["network", "ls"]);
    let rows: Vec<Vec<&str>> = ls.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows[0],
        ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"],
        "{ls}"
    );
    let names: Vec<&str> = rows[1..].iter().map(|r| r[1]).collect();
    assert_eq!(
        names,
        ["auto1", "auto2", "back", "bridge", "front", "host", "none"]
    );
    assert_eq!(rows[5], [&id[..12], "front", "bridge", "local"]);
    let q = b.ok(&["network", "ls", "-q"]);
    assert_eq!(q.lines().count(), 7);
    assert!(q.lines().all(|l| l.len() == 12), "{q}");
    assert!(b
        .ok(&["network", "ls", "--no-trunc", "-q"])
        .lines()
        .any(|l| l == id));
    assert_eq!(
        b.ok(&[
            "network",
            "ls",
            "-f",
            "name=front",
            "--format",
            "{{.Name}} {{.Driver}} {{.Internal}} {{.IPv6}} {{.Labels}}"
        ]),
        "front bridge false false team=a,tier=\n"
    );
    let row = json(&b.ok(&["network", "ls", "-f", "name=back", "--format", "json"]));
    assert_eq!(row["Name"], "back");
    assert_eq!(row["Internal"], "true");
    assert_eq!(row["Scope"], "local");
    let custom = ["auto1", "auto2", "back", "front"];
    for (filters, want) in [
        (&["driver=null"][..], &["none"][..]),
        (&["type=custom"], &custom),
        (&["type=builtin"], &["bridge", "host", "none"]),
        (&["label=team"], &["front"]),
        (&["label=team=a"], &["front"]),
        (&["label=team=b"], &[]),
        (&["name=auto"], &["auto1", "auto2"]),
        (&["name=front", "name=back"], &["back", "front"]),
        (&["type=custom", "label=tier"], &["front"]),
        (&["dangling=true"], &custom),
        (&["dangling=0", "driver=bridge"], &["bridge"]),
        (&["scope=local", "driver=host"], &["host"]),
    ] {
        assert_eq!(listed(&b, filters), want, "{filters:?}");
    }
    assert_eq!(listed(&b, &[&format!("id={}", &id[..8])]), ["front"]);
    for (f, needle) in [
        ("colour=blue", "Invalid filter 'colour'"),
        ("type=bad", "invalid filter: 'type'='bad'"),
        ("dangling=maybe", "invalid value for filter 'dangling'"),
        ("nokey", "bad format of filter"),
    ] {
        fails_with(&b, &["network", "ls", "-f", f], 1, needle);
    }

    // Bad definitions: one line, status 1, nothing made.
    let p2 = net24(2);
    let s2 = format!("{p2}.0/24");
    let s3 = format!("{}.0/24", net24(3));
    let bridge_opt = format!("com.docker.network.bridge.name={bridge}");
    let inside_front = format!("{p0}.64/26");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["front"], "network with name front already exists"),
        (
            vec!["--subnet", &inside_front, "x"],
            "Pool overlaps with other one on this address space",
        ),
        (
            vec!["--gateway", "10.1.1.1", "x"],
            "every ip-range or gateway must have a corresponding subnet",
        ),
        (
            vec!["--subnet", &s2, "--gateway", "10.1.1.1", "x"],
            "no matching subnet for gateway 10.1.1.1",
        ),
        (
            vec!["--subnet", &s2, "--ip-range", "10.1.1.0/25", "x"],
            "no matching subnet for range 10.1.1.0/25",
        ),
        (
            vec!["--subnet", "10.98.0.0/33", "x"],
            "invalid CIDR address: 10.98.0.0/33",
        ),
        (
            vec!["--subnet", "nonsense", "x"],
            "invalid CIDR address: nonsense",
        ),
        (vec!["-d", "overlay", "x"], "plugin \"overlay\" not found"),
        (
            vec!["bridge"],
            "operation is not permitted on predefined bridge network",
        ),
        (vec!["bad name"], "invalid network name"),
        (vec!["-o", "mtu=9000", "x"], "unknown option mtu"),
        (vec!["-d", "macvlan", "x"], "-o parent=IFACE"),
        (
            vec!["-d", "macvlan", "-o", "parent=nosuch0", "x"],
            "parent interface was not found on the host: nosuch0",
        ),
        (
            vec!["-o", &bridge_opt, "--subnet", &s2, "x"],
            "is used by another network",
        ),
        (
            vec!["--subnet", &s2, "--subnet", &s3, "x"],
            "one IPv4 and one IPv6 subnet",
        ),
        (vec!["--label", "=v", "x"], "invalid label"),
    ];
    for (args, needle) in cases {
        let mut full = vec!["network", "create"];
        full.extend(args);
        fails_with(&b, &full, 1, needle);
    }
    assert_eq!(listed(&b, &["type=custom"]), custom);
    fails_with(&b, &["network", "create", "--colour", "x"], 125, "--colour");
    // No name: docker 28's message, usage line and status 1.
    let (c, _, err) = code(&b, &["network", "create"]);
    assert_eq!(c, 1, "{err}");
    assert_eq!(
        err,
        "berth: 'berth network create' requires 1 argument\n\nUsage:  berth network create \
         [OPTIONS] NETWORK\n\nRun 'berth network create --help' for more information\n"
    );

    // rm and inspect of what is not there, or not removable.
    fails_with(
        &b,
        &["network", "rm", "bridge"],
        1,
        "bridge is a pre-defined network and cannot be removed",
    );
    fails_with(
        &b,
        &["network", "rm", "nosuch"],
        1,
        "network nosuch not found",
    );
    assert_eq!(
        code(&b, &["network", "rm", "-f", "nosuch"]),
        (0, "".into(), "".into())
    );
    let (c, docs, err) = code(&b, &["network", "inspect", "nosuch", "front"]);
    assert_eq!(c, 1);
    assert_eq!(err.trim(), "Error: No such network: nosuch");
    assert_eq!(json(&docs)[0]["Name"], "front");
    assert_eq!(
        b.ok(&[
            "network",
            "inspect",
            "-f",
            "{{.Name}} {{.Driver}}",
            "none",
            "host",
            "bridge",
            &id[..6]
        ]),
        "none null\nhost host\nbridge bridge\nfront bridge\n"
    );

    // A running container keeps its network; ls and inspect show it there.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "front",
        "bb",
        "sleep",
        "60",
    ]);
    let c1 = inspect(&b, "c1")["Id"].as_str().unwrap().to_string();
    assert!(
        std::path::Path::new("/sys/class/net")
            .join(&bridge)
            .exists(),
        "the bridge is named by -o com.docker.network.bridge.name"
    );
    one_batch_per_container(&b);
    let v = json(&b.ok(&["network", "inspect", "front"]))[0].clone();
    let on = &v["Containers"][&c1];
    assert_eq!(on["Name"], "c1");
    // The first address of the range (.128), its MAC docker's 02:42 and the address.
    assert_eq!(on["IPv4Address"], format!("{p0}.128/24"));
    let octet: u8 = p0.rsplit('.').next().unwrap().parse().unwrap();
    assert_eq!(on["MacAddress"], format!("02:42:0a:62:{octet:02x}:80"));
    let endpoint = on["EndpointID"].as_str().unwrap();
    assert_eq!(endpoint.len(), 64);
    // docker 28's refusal names each endpoint: its container's name, its short id.
    fails_with(
        &b,
        &["network", "rm", "front"],
        1,
        &format!(
            "error while removing network: network front has active endpoints (name:\"c1\" \
             id:\"{}\")",
            &endpoint[..12]
        ),
    );
    assert_eq!(listed(&b, &["dangling=false", "type=custom"]), ["front"]);

    // prune: asks first; filters by label and age; keeps what a container names.
    let (c, text, _) = code(&b, &["network", "prune"]);
    assert_eq!(c, 0);
    assert!(
        text.starts_with(
            "WARNING! This will remove all custom networks not used by at least one container.\n\
             Are you sure you want to continue? [y/N] "
        ),
        "{text}"
    );
    assert_eq!(listed(&b, &["type=custom"]), custom);
    b.ok(&["network", "create", "--label", "keep=1", "lab"]);
    assert_eq!(
        b.ok(&["network", "prune", "-f", "--filter", "label=keep=1"]),
        "Deleted Networks:\nlab\n\n"
    );
    assert_eq!(
        b.ok(&["network", "prune", "-f", "--filter", "until=1h"]),
        ""
    );
    fails_with(
        &b,
        &["network", "prune", "-f", "--filter", "bogus=1"],
        1,
        "Invalid filter 'bogus'",
    );
    b.ok(&["network", "create", "--label", "keep=1", "lab"]);
    assert_eq!(
        b.ok(&[
            "network",
            "prune",
            "-f",
            "--filter",
            "label!=keep",
            "--filter",
            "label!=zone"
        ]),
        "Deleted Networks:\nauto1\nauto2\n\n"
    );
    b.ok(&["network", "rm", "lab"]);

    // connect and disconnect: docker's messages.
    let not_on_bridge = format!("container {c1} is not connected to network bridge");
    for (args, needle) in [
        (&["connect", "nosuch", "c1"][..], "network nosuch not found"),
        (
            &["connect", "front", "nosuchc"],
            "No such container: nosuchc",
        ),
        (
            &["connect", "front", "c1"],
            "endpoint with name c1 already exists in network front",
        ),
        (
            &["connect", "--alias", "x", "bridge", "c1"],
            "network-scoped alias is supported only for containers in user defined networks",
        ),
        (&["connect", "host", "c1"], "conflicting options"),
        (&["disconnect", "bridge", "c1"], not_on_bridge.as_str()),
        (&["disconnect", "nosuch", "c1"], "network nosuch not found"),
        (
            &["connect", "--ip", "10.1.2.3", "back", "c1"],
            "no configured subnet or ip-range contain the IP address 10.1.2.3",
        ),
    ] {
        let mut full = vec!["network"];
        full.extend(args);
        fails_with(&b, &full, 1, needle);
    }

    // run and create flags that cannot be: 125, one line, no container.
    let named_twice = "front".to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["--network", "nosuch"], "network nosuch not found"),
        (
            vec!["--ip", "10.89.0.5"],
            "user specified IP address is supported on user defined networks only",
        ),
        (
            vec!["--network-alias", "x"],
            "network-scoped alias is supported only for containers in user defined networks",
        ),
        (
            vec!["--network", "host", "--network", "front"],
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes",
        ),
        (
            vec!["--network", "front", "--network", "none"],
            "conflicting options: cannot attach both user-defined and non-user-defined network-modes",
        ),
        (
            vec!["--network", "none", "--network-alias", "x"],
            "network-scoped aliases are only supported for user-defined networks",
        ),
        (
            vec!["--network", "front", "--ip", "10.1.2.3"],
            "no configured subnet or ip-range contain the IP address 10.1.2.3",
        ),
        (
            vec!["--network", "front", "--ip", "nonsense"],
            "invalid IPv4 address: nonsense",
        ),
        (
            vec!["--network", "front", "--network", &named_twice],
            "network front is given twice",
        ),
        (
            vec!["--network", "name=front,colour=blue"],
            "invalid --network field",
        ),
    ];
    for (flags, needle) in cases {
        let mut args = vec!["create"];
        args.extend(flags);
        args.extend(["bb", "true"]);
        fails_with(&b, &args, 125, needle);
    }
    let o = out(
        &b,
        &["run", "--rm", "--network", "back", "-p", "80", "bb", "true"],
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("internal"), "{}", stderr(&o));
    assert_eq!(b.ok(&["ps", "-aq"]).lines().count(), 1, "only c1");

    // Two networks, a fixed address, aliases, a hostname, docker's long form.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "c2",
        "--hostname",
        "h2",
        "--network",
        "front",
        "--ip",
        &format!("{p0}.7"),
        "--network-alias",
        "web",
        "--network",
        "name=back,alias=db",
        "bb",
        "sleep",
        "60",
    ]);
    let c2 = inspect(&b, "c2");
    let short = &c2["Id"].as_str().unwrap()[..12];
    let settings = &c2["NetworkSettings"];
    let front = &settings["Networks"]["front"];
    assert_eq!(front["IPAddress"], format!("{p0}.7"));
    assert_eq!(front["IPPrefixLen"], 24);
    assert_eq!(front["Gateway"], format!("{p0}.254"));
    assert_eq!(front["NetworkID"], id.as_str());
    assert_eq!(front["IPAMConfig"]["IPv4Address"], format!("{p0}.7"));
    assert_eq!(front["Aliases"], serde_json::json!(["web", short]));
    assert_eq!(front["DNSNames"], serde_json::json!(["c2", short, "web"]));
    let back = &settings["Networks"]["back"];
    assert!(back["IPAddress"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{p1}.")));
    assert_eq!(back["Aliases"], serde_json::json!(["db", short]));
    assert_eq!(
        back["Gateway"],
        format!("{p1}.1"),
        "internal networks have their gateway too"
    );
    assert_eq!(
        settings["IPAddress"], "",
        "the top level is the default bridge's"
    );
    assert_eq!(c2["Config"]["Hostname"], "h2");
    assert_eq!(c2["HostConfig"]["NetworkMode"], "bridge");
    let addrs = b.ok(&["exec", "c2", "ip", "-o", "-4", "addr"]);
    assert!(
        addrs.contains(&format!("eth0    inet {p0}.7/24")),
        "{addrs}"
    );
    assert!(addrs.contains(&format!("eth1    inet {p1}.")), "{addrs}");
    let routes = b.ok(&["exec", "c2", "ip", "route"]);
    assert!(
        routes.contains(&format!("default via {p0}.254 dev eth0")),
        "{routes}"
    );
    assert_eq!(routes.matches("default").count(), 1, "{routes}");
    assert_eq!(b.ok(&["exec", "c2", "hostname"]), "h2\n");
    assert_eq!(
        b.ok(&[
            "ps",
            "-f",
            "name=c2",
            "--format",
            "{{.Names}} {{.Networks}}"
        ]),
        "c2 front,back\n"
    );
    assert_eq!(b.ok(&["ps", "-q", "-f", "network=back"]).trim(), short);
    assert!(
        json(&b.ok(&["network", "inspect", "back"]))[0]["Containers"][c2["Id"].as_str().unwrap()]
            .is_object()
    );
    // Off a network while running, and on again with an address of its choice.
    b.ok(&["network", "disconnect", "back", "c2"]);
    assert!(!b
        .ok(&["exec", "c2", "ip", "-o", "-4", "addr"])
        .contains("eth1"));
    assert!(inspect(&b, "c2")["NetworkSettings"]["Networks"]["back"].is_null());
    b.ok(&[
        "network",
        "connect",
        "--ip",
        &format!("{p1}.50"),
        "--alias",
        "db2",
        "back",
        "c2",
    ]);
    let addrs = b.ok(&["exec", "c2", "ip", "-o", "-4", "addr"]);
    assert!(
        addrs.contains(&format!("eth1    inet {p1}.50/24")),
        "{addrs}"
    );
    // Stopped: the networks are kept with no address; started: the same addresses again.
    b.ok(&["stop", "-t", "0", "c2"]);
    assert_eq!(address(&b, "c2", "front"), "");
    assert_eq!(
        inspect(&b, "c2")["NetworkSettings"]["Networks"]["back"]["NetworkID"],
        json(&b.ok(&["network", "inspect", "back"]))[0]["Id"]
    );
    b.ok(&["start", "c2"]);
    assert_eq!(address(&b, "c2", "front"), format!("{p0}.7"));
    assert_eq!(address(&b, "c2", "back"), format!("{p1}.50"));
    // A created container is connected at its start.
    b.ok(&[
        "create",
        "--name",
        "c3",
        "--network",
        "back",
        "bb",
        "sleep",
        "60",
    ]);
    b.ok(&["network", "connect", "front", "c3"]);
    b.ok(&["start", "c3"]);
    let addrs = b.ok(&["exec", "c3", "ip", "-o", "-4", "addr"]);
    assert!(addrs.contains(&format!("eth0    inet {p1}.")), "{addrs}");
    assert!(addrs.contains(&format!("eth1    inet {p0}.")), "{addrs}");
    let routes = b.ok(&["exec", "c3", "ip", "route"]);
    assert!(
        routes.contains(&format!("default via {p0}.254 dev eth1")),
        "the first with a way out: {routes}"
    );

    // A network removed under a created container: it cannot start, and only
    // `disconnect -f` takes it off the network that is gone.
    b.ok(&["network", "create", "gone"]);
    b.ok(&["create", "--name", "c4", "--network", "gone", "bb", "true"]);
    b.ok(&["network", "rm", "gone"]);
    fails_with(&b, &["start", "c4"], 1, "network gone not found");
    fails_with(
        &b,
        &["network", "disconnect", "gone", "c4"],
        1,
        "network gone not found",
    );
    b.ok(&["network", "disconnect", "-f", "gone", "c4"]);
    assert!(inspect(&b, "c4")["NetworkSettings"]["Networks"]["gone"].is_null());
    b.ok(&["rm", "c4"]);

    let back_id = json(&b.ok(&["network", "inspect", "back"]))[0]["Id"]
        .as_str()
        .unwrap()
        .to_string();
    b.ok(&["rm", "-f", "c1", "c2", "c3"]);
    assert_eq!(b.ok(&["network", "rm", "front", "back"]), "front\nback\n");
    // The events journal: the network's create and destroy, and each container's connect and
    // disconnect on it in docker's words (the live disconnect and connect of c2 among them).
    let events: Vec<Value> = journal(&b.root)
        .into_iter()
        .filter(|e| e["Type"] == "network" && e["Actor"]["ID"] == back_id.as_str())
        .collect();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["Action"].as_str().unwrap())
        .collect();
    assert_eq!(actions.first(), Some(&"create"), "{actions:?}");
    assert_eq!(actions.last(), Some(&"destroy"), "{actions:?}");
    assert_eq!(events[0]["Actor"]["Attributes"]["name"], "back");
    assert_eq!(events[0]["Actor"]["Attributes"]["type"], "bridge");
    let c2_id = c2["Id"].as_str().unwrap();
    let of_c2: Vec<&str> = events
        .iter()
        .filter(|e| e["Actor"]["Attributes"]["container"] == c2_id)
        .map(|e| e["Action"].as_str().unwrap())
        .collect();
    assert_eq!(
        of_c2[..3],
        ["connect", "disconnect", "connect"],
        "{of_c2:?}"
    );
    let count = |a: &str| actions.iter().filter(|x| **x == a).count();
    assert_eq!(count("connect"), count("disconnect"), "{actions:?}");
    assert!(!std::path::Path::new("/sys/class/net")
        .join(&bridge)
        .exists());
    assert_eq!(listed(&b, &["type=custom"]), Vec::<String>::new());
}

/// A container's published ports are added in one `iptables-restore` batch and removed in
/// one: berth runs with wrappers first on its PATH that log each batch they pass on. The
/// network `front` is ready (a container is on it), so only the ports' rules are written.
fn one_batch_per_container(b: &Berth) {
    let wrappers = b.dir.path().join("wrappers");
    std::fs::create_dir_all(&wrappers).unwrap();
    let log = b.dir.path().join("batches.log");
    for tool in ["iptables-restore", "ip6tables-restore"] {
        let script = format!(
            "#!/bin/sh\nbatch=$(cat)\nprintf '== %s\\n%s\\n' {tool} \"$batch\" >> {log}\n\
             printf '%s\\n' \"$batch\" | exec {real} \"$@\"\n",
            log = log.display(),
            real = require(tool).display(),
        );
        let path = wrappers.join(tool);
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
    }
    let path = format!(
        "{}:{}",
        wrappers.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let logged = |args: &[&str]| {
        let o = b.cmd(args).env("PATH", &path).output().unwrap();
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    let id = logged(&[
        "run",
        "-d",
        "--network",
        "front",
        "-p",
        "80",
        "-p",
        "81",
        "-p",
        "82/udp",
        "bb",
        "sleep",
        "60",
    ]);
    let id = id.trim();
    let batches = |verb: &str| -> Vec<String> {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        text.split("== ")
            .filter(|b| b.contains(&format!("{verb} BERTH")) && b.contains(id))
            .map(str::to_string)
            .collect()
    };
    let added = batches("-A");
    assert_eq!(added.len(), 1, "{added:?}");
    assert_eq!(added[0].matches("-A BERTH").count(), 3, "{added:?}");
    logged(&["rm", "-f", id]);
    let removed = batches("-D");
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(removed[0].matches("-D BERTH").count(), 3, "{removed:?}");
}

/// A name server of the test's own on 127.0.0.0/8 port 53, standing in for the host's: it
/// answers `outside.test` with 10.123.45.67 and every other name with NXDOMAIN.
struct Upstream {
    addr: Ipv4Addr,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Upstream {
    fn start() -> Upstream {
        // One address per test process and upstream: the tests of a process run side by side.
        static STARTED: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let addr = Ipv4Addr::new(127, 53 + n, (pid >> 8) as u8, pid as u8 | 1);
        Upstream::serve(None, addr, OUTSIDE)
    }

    /// A name server on `addr` in the network namespace of process `pid` (the host's when
    /// none) that answers `outside.test` with `outside`.
    fn serve(pid: Option<i32>, addr: Ipv4Addr, outside: Ipv4Addr) -> Upstream {
        let (bound, sock) = std::sync::mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            if let Some(pid) = pid {
                // This thread alone moves into the namespace; its socket stays there.
                let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
                let entered = unsafe {
                    libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET)
                };
                assert_eq!(entered, 0, "{}", std::io::Error::last_os_error());
            }
            let sock = UdpSocket::bind((addr, 53)).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            bound.send(()).unwrap();
            let mut buf = [0u8; 512];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(reply) = answer(&buf[..n], outside) {
                    let _ = sock.send_to(&reply, from);
                }
            }
        });
        sock.recv().expect("the name server's socket is bound");
        Upstream {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the host's name server of the tests answers for `outside.test`.
const OUTSIDE: Ipv4Addr = Ipv4Addr::new(10, 123, 45, 67);

/// A DNS reply by hand: the question echoed, an A record `outside` for `outside.test`, else
/// NXDOMAIN.
fn answer(q: &[u8], outside: Ipv4Addr) -> Option<Vec<u8>> {
    if q.len() < 12 {
        return None;
    }
    // The question's name: length-prefixed labels up to a zero, then type and class.
    let mut i = 12;
    let mut labels = vec![];
    while *q.get(i)? != 0 {
        let len = q[i] as usize;
        labels.push(String::from_utf8_lossy(q.get(i + 1..i + 1 + len)?).to_ascii_lowercase());
        i += 1 + len;
    }
    let end = i + 5;
    let qtype = u16::from_be_bytes([*q.get(i + 1)?, *q.get(i + 2)?]);
    let mut r = q.get(..end)?.to_vec();
    r[2] = 0x80 | (q[2] & 0x01); // a response, RD copied
    r[3] = 0x80; // RA
    r[6..12].copy_from_slice(&[0, 0, 0, 0, 0, 0]);
    if labels.join(".") == "outside.test" {
        if qtype == 1 {
            r[7] = 1;
            r.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            r.extend_from_slice(&outside.octets());
        }
    } else {
        r[3] |= 3; // NXDOMAIN
    }
    Some(r)
}

/// `berth ARGS` in a mount namespace of its own whose /etc/resolv.conf names `upstream`:
/// a resolver it starts forwards to it.
fn with_upstream(b: &Berth, upstream: &Upstream, args: &[&str]) -> Output {
    let resolv = b.dir.path().join("upstream.conf");
    std::fs::write(&resolv, format!("nameserver {}\n", upstream.addr)).unwrap();
    with_resolv(Command::new(require("unshare")), &resolv, b.cmd(args))
}

/// `inner` run through `c` (`unshare`, or a command that runs it) in a mount namespace of
/// its own whose /etc/resolv.conf is `resolv`.
fn with_resolv(mut c: Command, resolv: &std::path::Path, inner: Command) -> Output {
    c.args(["-m", "--propagation", "slave", "sh", "-c"])
        .arg("mount --bind \"$0\" /etc/resolv.conf && exec \"$@\"")
        .arg(resolv)
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.stdin(std::process::Stdio::null()).output().unwrap()
}

/// `berth run -d ARGS bb sleep 120`, the resolvers it starts forwarding to `upstream`.
fn sleeper_with_upstream(b: &Berth, upstream: &Upstream, args: &[&str]) {
    let mut full = vec!["run", "-d"];
    full.extend(args);
    full.extend(["bb", "sleep", "120"]);
    let o = with_upstream(b, upstream, &full);
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
}

/// What `nslookup NAME` in a running container answered: (succeeded, its output).
fn lookup(b: &Berth, container: &str, name: &str) -> (bool, String) {
    let o = out(
        b,
        &[
            "exec", container, "busybox", "timeout", "5", "busybox", "nslookup", name,
        ],
    );
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

fn resolves(b: &Berth, container: &str, name: &str, addr: &str) -> bool {
    let (ok, text) = lookup(b, container, name);
    ok && text.contains(&format!("Address: {addr}"))
}

/// Whether the resolver answered that `name` does not exist (not merely no answer).
fn gone(b: &Berth, container: &str, name: &str) -> bool {
    let (ok, text) = lookup(b, container, name);
    !ok && text.contains("NXDOMAIN")
}

#[test]
fn root_names_resolve_through_the_cli() {
    let _host = shared();
    let b = nets();
    let upstream = Upstream::start();
    let (p2, p3) = (net24(4), net24(5));
    b.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{p2}.0/24"),
        "app",
    ]);
    b.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{p3}.0/24"),
        "other",
    ]);
    let start = |args: &[&str]| sleeper_with_upstream(&b, &upstream, args);
    start(&[
        "--name",
        "db",
        "--network",
        "app",
        "--network-alias",
        "database",
    ]);
    start(&["--name", "web", "--network", "app", "--network", "other"]);
    start(&["--name", "lone", "--network", "other"]);
    let db = address(&b, "db", "app");
    let db_id = inspect(&b, "db")["Id"].as_str().unwrap()[..12].to_string();
    assert!(db.starts_with(&p2), "{db}");
    // The network's resolver is the name server, on its gateway.
    assert_eq!(
        b.ok(&["exec", "web", "cat", "/etc/resolv.conf"])
            .lines()
            .filter(|l| l.starts_with("nameserver"))
            .collect::<Vec<_>>(),
        [format!("nameserver {p2}.1")]
    );
    for name in ["db", "database", &db_id, "DB", "db."] {
        assert!(
            resolves(&b, "web", name, &db),
            "{name}: {:?}",
            lookup(&b, "web", name)
        );
    }
    // Other names go to the host's resolvers.
    assert!(
        resolves(&b, "web", "outside.test", "10.123.45.67"),
        "{:?}",
        lookup(&b, "web", "outside.test")
    );
    let (ok, text) = lookup(&b, "web", "nosuch.test");
    assert!(!ok && text.contains("NXDOMAIN"), "{text}");
    // Two networks: names of the networks a container shares with another, no others.
    let lone = address(&b, "lone", "other");
    let web_other = address(&b, "web", "other");
    assert!(resolves(&b, "web", "lone", &lone));
    assert!(resolves(&b, "lone", "web", &web_other));
    assert!(gone(&b, "lone", "db"), "db is not on other");
    // Renamed: the new name, not the old one; removed: no name; a newcomer: its name.
    b.ok(&["rename", "db", "store"]);
    assert!(resolves(&b, "web", "store", &db));
    assert!(gone(&b, "web", "db"));
    b.ok(&["rm", "-f", "store"]);
    for name in ["store", "database", &db_id] {
        assert!(gone(&b, "web", name), "{name}");
    }
    start(&["--name", "late", "--network", "app"]);
    let late = address(&b, "late", "app");
    assert!(
        resolves(&b, "web", "late", &late),
        "{late}: {:?}",
        lookup(&b, "web", "late")
    );
    // An alias given by connect, on a running container.
    b.ok(&["network", "connect", "--alias", "cache", "app", "lone"]);
    assert!(resolves(&b, "web", "cache", &address(&b, "lone", "app")));

    // The default bridge keeps docker's rule: no names, the host's name servers.
    start(&["--name", "plain"]);
    start(&["--name", "plain2"]);
    let resolv = b.ok(&["exec", "plain", "cat", "/etc/resolv.conf"]);
    assert!(
        !resolv.contains(&format!("{p2}.1")) && !resolv.contains("10.89.0.1"),
        "{resolv}"
    );
    let gw = inspect(&b, "plain")["NetworkSettings"]["Gateway"]
        .as_str()
        .unwrap()
        .to_string();
    let plain2 = address(&b, "plain2", "bridge");
    let o = out(
        &b,
        &[
            "exec", "plain", "busybox", "timeout", "5", "busybox", "nslookup", "plain2", &gw,
        ],
    );
    assert!(
        !o.status.success() && !stdout(&o).contains(&plain2),
        "{}",
        stdout(&o)
    );
    drop(upstream);
}

/// `--dns`, `--dns-search` and `--dns-option` on a user-defined network, as docker's: the
/// network's resolver stays the container's name server (container names resolve), and it
/// sends the container's other names to the `--dns` servers, asked from the container's own
/// namespace, as docker's embedded DNS asks its `ExtServers` (here a name server of the
/// test's on loopback inside the container: the host has none at that address); resolv.conf
/// says `search`, the resolver and `options` with `ndots:0` unless ndots is given, as
/// dockerd writes them. A container on the default bridge connected to the network gets the
/// resolver as its name server (its other names still reach the host's name servers), keeps
/// it while it is on the network, and gets its own servers back once off.
#[test]
fn root_dns_flags_and_connect_keep_container_names() {
    let _host = shared();
    let b = nets();
    let upstream = Upstream::start();
    let p = net24(14);
    b.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{p}.0/24"),
        "dnsnet",
    ]);
    let start = |args: &[&str]| sleeper_with_upstream(&b, &upstream, args);
    let resolv = |c: &str| b.ok(&["exec", c, "cat", "/etc/resolv.conf"]);
    start(&["--name", "db", "--network", "dnsnet"]);
    let pid = std::process::id();
    let inside = Ipv4Addr::new(127, 77, (pid >> 8) as u8, pid as u8 | 1).to_string();
    start(&[
        "--name",
        "web",
        "--network",
        "dnsnet",
        "--dns",
        &inside,
        "--dns-search",
        "corp.test",
        "--dns-option",
        "ndots:2",
        "--dns-option",
        "attempts:3",
    ]);
    let own = Ipv4Addr::new(10, 77, 7, 7);
    let _in_web = Upstream::serve(Some(pid_of(&b, "web")), inside.parse().unwrap(), own);
    assert_eq!(
        resolv("web"),
        format!("search corp.test\nnameserver {p}.1\noptions ndots:2 attempts:3\n")
    );
    assert_eq!(resolv("db"), format!("nameserver {p}.1\noptions ndots:0\n"));
    let (db, web) = (address(&b, "db", "dnsnet"), address(&b, "web", "dnsnet"));
    // web's names end in a dot: busybox's nslookup asks only the first search domain's name.
    assert!(
        resolves(&b, "web", "db.", &db),
        "{:?}",
        lookup(&b, "web", "db.")
    );
    assert!(
        resolves(&b, "db", "web", &web),
        "{:?}",
        lookup(&b, "db", "web")
    );
    // Other names: web's own server, db's the host's.
    assert!(
        resolves(&b, "web", "outside.test.", &own.to_string()),
        "{:?}",
        lookup(&b, "web", "outside.test.")
    );
    assert!(gone(&b, "web", "nosuch.test."));
    assert!(
        resolves(&b, "db", "outside.test", &OUTSIDE.to_string()),
        "{:?}",
        lookup(&b, "db", "outside.test")
    );

    // From the default bridge (whose name servers are the host's that it can reach: none of
    // loopback) onto the network and off it again.
    start(&["--name", "plain"]);
    let before = resolv("plain");
    assert!(!before.contains(&p), "{before}");
    let cli = |args: &[&str]| {
        let o = with_upstream(&b, &upstream, args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    cli(&["network", "connect", "dnsnet", "plain"]);
    assert_eq!(
        resolv("plain"),
        format!("nameserver {p}.1\noptions ndots:0\n")
    );
    assert!(
        resolves(&b, "plain", "db", &db),
        "{:?}",
        lookup(&b, "plain", "db")
    );
    assert!(resolves(&b, "db", "plain", &address(&b, "plain", "dnsnet")));
    assert!(resolves(&b, "plain", "outside.test", &OUTSIDE.to_string()));
    // Off the default bridge, still on the network: the resolver stays.
    cli(&["network", "disconnect", "bridge", "plain"]);
    assert_eq!(
        resolv("plain"),
        format!("nameserver {p}.1\noptions ndots:0\n")
    );
    assert!(resolves(&b, "plain", "web", &web));
    cli(&["network", "connect", "bridge", "plain"]);
    cli(&["network", "disconnect", "dnsnet", "plain"]);
    assert_eq!(resolv("plain"), before);
    assert!(gone(&b, "web", "plain."));

    // A container with no network of its own or the host's cannot be connected: dockerd's
    // messages.
    start(&["--name", "private", "--network", "none"]);
    start(&["--name", "onhost", "--network", "host"]);
    fails_with(
        &b,
        &["network", "connect", "dnsnet", "private"],
        1,
        "container cannot be connected to multiple networks with one of the networks in private (none) mode",
    );
    fails_with(
        &b,
        &["network", "connect", "dnsnet", "onhost"],
        1,
        "container sharing network namespace with another container or host cannot be connected to any other network",
    );

    // Its last containers killed (not unplugged), the resolver ends by itself and leaves
    // no file behind.
    let id = b.ok(&["network", "inspect", "-f", "{{.Id}}", "dnsnet"]);
    let lock = std::path::Path::new("/run/berth/net").join(format!("br-{}.dns", &id[..12]));
    assert!(lock.exists(), "{}", lock.display());
    b.ok(&["kill", "db", "web"]);
    eventually("the idle resolver's file to go", || !lock.exists());
}

/// The pid of a running container's init.
fn pid_of(b: &Berth, c: &str) -> i32 {
    inspect(b, c)["State"]["Pid"].as_i64().unwrap() as i32
}

/// Runs the host's busybox `script` in the network namespace of `pid` (to do what a
/// container without NET_ADMIN cannot).
fn in_net(pid: i32, script: &str) -> (bool, String) {
    let o = Command::new(require("nsenter"))
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg(require("busybox"))
        .args(["sh", "-c", script])
        .output()
        .unwrap();
    (o.status.success(), format!("{}{}", stdout(&o), stderr(&o)))
}

#[test]
fn root_internal_hairpin_and_macvlan_through_the_cli() {
    let _host = shared();
    let b = nets();
    let (p4, p5) = (net24(6), net24(7));
    // Internal: no route out, no forwarded names, no published ports.
    b.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        &format!("{p4}.0/24"),
        "inside",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "in1",
        "--network",
        "inside",
        "bb",
        "sleep",
        "60",
    ]);
    let routes = b.ok(&["exec", "in1", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    let (ok, text) = lookup(&b, "in1", "outside.test");
    assert!(
        !ok && text.contains("NXDOMAIN"),
        "answered inside, not forwarded: {text}"
    );
    assert!(resolves(&b, "in1", "in1", &address(&b, "in1", "inside")));
    fails_with(
        &b,
        &[
            "run",
            "--rm",
            "--network",
            "inside",
            "-p",
            "80",
            "bb",
            "true",
        ],
        125,
        "ports cannot be published on network inside: it is internal",
    );

    // Hairpin: containers reach published ports through the host's address on their
    // network (their gateway), their own included; the host's 127.0.0.1 stays out of reach.
    b.ok(&["network", "create", "--subnet", &format!("{p5}.0/24"), "hp"]);
    let www = b.dir.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hairpin\n").unwrap();
    let port = free_port().to_string();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "server",
        "--network",
        "hp",
        "-p",
        &format!("{port}:80"),
        "-v",
        &format!("{}:/www:ro", www.display()),
        "bb",
        "httpd",
        "-f",
        "-p",
        "80",
        "-h",
        "/www",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "hp",
        "bb",
        "sleep",
        "60",
    ]);
    let url = format!("http://{p5}.1:{port}/index.html");
    eventually("the server on its published port", || {
        http_get(&format!("127.0.0.1:{port}"), "/index.html").is_some()
    });
    for c in ["client", "server"] {
        let o = out(&b, &["exec", c, "wget", "-qO-", &url]);
        assert_eq!(stdout(&o), "hairpin\n", "{c}: {}", stderr(&o));
    }
    // The internal network forwards nothing out, not even along a route made by hand to a
    // network set up after it (whose rules the host's forwarding chain meets first).
    let server = address(&b, "server", "hp");
    let (_, text) = in_net(
        pid_of(&b, "in1"),
        &format!(
            "ip route add {p5}.0/24 via {p4}.1 dev eth0; \
             ping -c 1 -W 2 {p4}.1 >/dev/null && echo GATEWAY; \
             ping -c 1 -W 2 {server} >/dev/null && echo OUT"
        ),
    );
    assert!(text.contains("GATEWAY"), "{text}");
    assert!(
        !text.contains("OUT"),
        "an internal network forwarded: {text}"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let (_, text) = in_net(
        pid_of(&b, "client"),
        &format!(
            "sysctl -w net.ipv4.conf.eth0.route_localnet=1 >/dev/null; \
             ip route del local 127.0.0.0/8 dev lo table local; \
             ip route add 127.0.0.1/32 via {p5}.1 dev eth0; \
             nc -w 2 127.0.0.1 {lport} </dev/null && echo CONNECTED"
        ),
    );
    assert!(!text.contains("CONNECTED"), "{text}");
    assert!(
        listener.accept().is_err(),
        "the host's 127.0.0.1 was reached"
    );

    // macvlan over one end of a veth pair of the test's own, its other end in a namespace of
    // the test's own at .200.
    let mc = MacvlanParent::new('c');
    let (parent, peer, ns, k) = (mc.parent.as_str(), mc.peer.as_str(), mc.ns.as_str(), mc.k);
    let ip = |args: &[&str]| crate::util::run(Command::new("ip").args(args));
    let p6 = format!("10.97.{}", k % 250);
    ip(&[
        "-n",
        ns,
        "addr",
        "add",
        &format!("{p6}.200/24"),
        "dev",
        peer,
    ]);
    ip(&["-n", ns, "link", "set", peer, "up"]);
    mc.network(&b, "mv", &["--subnet", &format!("{p6}.0/24")]);
    assert_eq!(
        b.ok(&[
            "network",
            "inspect",
            "-f",
            "{{.Driver}} {{index .Options \"parent\"}}",
            "mv"
        ]),
        format!("macvlan {parent}\n")
    );
    let o = out(
        &b,
        &[
            "run",
            "--rm",
            "--network",
            "mv",
            "bb",
            "sh",
            "-c",
            &format!("ip -o -4 addr show eth0 && busybox ping -c 1 -W 2 {p6}.200"),
        ],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains(&format!("inet {p6}.2/24")),
        "{}",
        stdout(&o)
    );
    fails_with(
        &b,
        &["run", "--rm", "--network", "mv", "-p", "80", "bb", "true"],
        125,
        "ports cannot be published on network mv: its driver is macvlan",
    );
    // IPv6-only macvlan (`--ipv4=false`): an IPv6 address on the parent's network, no IPv4
    // address nor route; the namespace's end answers at <v6>200.
    let v6 = format!("fd47:{:x}::", k & 0xffff);
    ip(&[
        "-n",
        ns,
        "addr",
        "add",
        &format!("{v6}200/64"),
        "dev",
        peer,
        "nodad",
    ]);
    mc.network(
        &b,
        "mv6",
        &["--ipv4=false", "--ipv6", "--subnet", &format!("{v6}/64")],
    );
    let o = out(
        &b,
        &[
            "run",
            "--rm",
            "--network",
            "mv6",
            "bb",
            "sh",
            "-c",
            &format!("ip -o addr show eth0 && ip -4 route && busybox ping -6 -c 1 -W 2 {v6}200"),
        ],
    );
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{text}");
    assert!(text.contains(&format!("inet6 {v6}2/64")), "{text}");
    assert!(
        !text.contains("inet ") && !text.contains("default"),
        "{text}"
    );
    fails_with(
        &b,
        &["run", "--rm", "--network", "mv6", "-p", "80", "bb", "true"],
        125,
        "macvlan",
    );
    b.ok(&["rm", "-f", "in1", "server", "client"]);
    let bridges: Vec<String> = ["inside", "hp"]
        .iter()
        .map(|n| {
            let id = b.ok(&["network", "inspect", "-f", "{{.Id}}", n]);
            format!("br-{}", &id[..12])
        })
        .collect();
    assert_eq!(
        b.ok(&["network", "rm", "inside", "hp", "mv", "mv6"]),
        "inside\nhp\nmv\nmv6\n"
    );
    let subnets = [format!("{p4}.0/24"), format!("{p5}.0/24")];
    let left = network_traces(&bridges, &subnets);
    assert!(left.is_empty(), "{left:?}");
}

/// The name resolver of a macvlan network, whose gateway is not the host's: docker's
/// embedded one at 127.0.0.11 in each container (sockets a resolver on the host holds in the
/// container's namespace).
#[test]
fn root_macvlan_names_resolve_through_the_cli() {
    let _host = shared();
    let b = nets();
    let upstream = Upstream::start();
    let mp = MacvlanParent::new('d');
    let p = format!("10.97.{}", (mp.k + 125) % 250);
    let v6 = format!("fd48:{:x}::", mp.k & 0xffff);
    mp.network(&b, "mvd", &["--subnet", &format!("{p}.0/24")]);
    let start = |args: &[&str]| sleeper_with_upstream(&b, &upstream, args);
    start(&[
        "--name",
        "one",
        "--network",
        "mvd",
        "--network-alias",
        "first",
    ]);
    start(&["--name", "two", "--network", "mvd"]);
    // docker's embedded resolver's address is the name server.
    let nameservers = |c: &str| -> Vec<String> {
        b.ok(&["exec", c, "cat", "/etc/resolv.conf"])
            .lines()
            .filter(|l| l.starts_with("nameserver"))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(nameservers("two"), ["nameserver 127.0.0.11"]);
    let (one, two) = (address(&b, "one", "mvd"), address(&b, "two", "mvd"));
    let one_id = inspect(&b, "one")["Id"].as_str().unwrap()[..12].to_string();
    for name in ["one", "first", &one_id, "ONE."] {
        assert!(
            resolves(&b, "two", name, &one),
            "{name}: {:?}",
            lookup(&b, "two", name)
        );
    }
    assert!(
        resolves(&b, "one", "two", &two),
        "{:?}",
        lookup(&b, "one", "two")
    );
    // Over TCP too.
    let two_addr: Ipv4Addr = two.parse().unwrap();
    assert_eq!(tcp_lookup(pid_of(&b, "one"), "two"), Some(two_addr));
    // Other names go to the host's resolvers (the test's, on loopback).
    assert!(
        resolves(&b, "two", "outside.test", "10.123.45.67"),
        "{:?}",
        lookup(&b, "two", "outside.test")
    );
    assert!(gone(&b, "two", "nosuch.test"));

    // The resolver: its pid in its lock file, a control socket and two sockets per container.
    let resolver_of = |net: &str| -> (String, i32) {
        let iface = format!(
            "mv-{}",
            &b.ok(&["network", "inspect", "-f", "{{.Id}}", net])[..12]
        );
        let pid = std::fs::read_to_string(format!("/run/berth/net/{iface}.dns"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (iface, pid)
    };
    let (iface, resolver) = resolver_of("mvd");
    let sockets = || {
        std::fs::read_dir(format!("/proc/{resolver}/fd"))
            .map(|d| {
                d.flatten()
                    .filter(|e| {
                        std::fs::read_link(e.path())
                            .is_ok_and(|l| l.to_string_lossy().starts_with("socket:"))
                    })
                    .count()
            })
            .unwrap_or(0)
    };
    eventually("a control socket and two sockets per container", || {
        sockets() == 5
    });
    // A removed container's names stop resolving, and its sockets go with it (they would
    // keep its namespace and macvlan link alive).
    b.ok(&["rm", "-f", "one"]);
    for name in ["one", "first", &one_id] {
        assert!(
            gone(&b, "two", name),
            "{name}: {:?}",
            lookup(&b, "two", name)
        );
    }
    eventually(
        "the resolver to close the removed container's sockets",
        || sockets() == 3,
    );
    // A newcomer is answered for; a container given the removed one's address gets it.
    start(&["--name", "three", "--network", "mvd", "--ip", &one]);
    assert!(
        resolves(&b, "two", "three", &one),
        "{:?}",
        lookup(&b, "two", "three")
    );

    // IPv6-only: the name server is 127.0.0.11 too (the container's loopback), not IPv4
    // servers it has no route to; names get their IPv6 addresses.
    mp.network(
        &b,
        "mvd6",
        &["--ipv4=false", "--ipv6", "--subnet", &format!("{v6}/64")],
    );
    start(&["--name", "six", "--network", "mvd6"]);
    start(&["--name", "seven", "--network", "mvd6"]);
    assert_eq!(nameservers("seven"), ["nameserver 127.0.0.11"]);
    let six = inspect(&b, "six")["NetworkSettings"]["Networks"]["mvd6"]["GlobalIPv6Address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(six.starts_with(&v6), "{six}");
    assert!(
        resolves(&b, "seven", "six", &six),
        "{:?}",
        lookup(&b, "seven", "six")
    );

    // Nothing left once the containers and networks go: no resolver, no state.
    let (iface6, resolver6) = resolver_of("mvd6");
    b.ok(&["rm", "-f", "two", "three", "six", "seven"]);
    for pid in [resolver, resolver6] {
        eventually("the resolvers to exit", || {
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
        });
    }
    b.ok(&["network", "rm", "mvd", "mvd6"]);
    let left: Vec<String> = std::fs::read_dir("/run/berth/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&iface) || n.starts_with(&iface6))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    drop(upstream);
}

/// Asks 127.0.0.11 over TCP, in the network namespace of `pid`, for the IPv4 address of
/// `name`: the first A record's.
fn tcp_lookup(pid: i32, name: &str) -> Option<Ipv4Addr> {
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/net")).unwrap();
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut msg = (q.len() as u16).to_be_bytes().to_vec();
    msg.extend_from_slice(&q);
    let reply = std::thread::spawn(move || {
        // SAFETY: moves this thread only, which ends here.
        assert_eq!(
            unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) },
            0
        );
        let mut s = std::net::TcpStream::connect("127.0.0.11:53").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&msg).unwrap();
        let mut len = [0u8; 2];
        s.read_exact(&mut len).unwrap();
        let mut r = vec![0u8; u16::from_be_bytes(len) as usize];
        s.read_exact(&mut r).unwrap();
        r
    })
    .join()
    .unwrap();
    // An answer: the same id, no error, one record, an A record last (its address last).
    assert_eq!(reply[..2], [0x12, 0x34]);
    if reply[3] & 0x0f != 0 || u16::from_be_bytes([reply[6], reply[7]]) != 1 {
        return None;
    }
    let a = &reply[reply.len() - 4..];
    Some(Ipv4Addr::new(a[0], a[1], a[2], a[3]))
}

/// A parent interface for macvlan networks: one end of a veth pair of the test's own (this
/// kernel has no dummy interfaces), the other end in a network namespace of the test's own;
/// both go when it drops. `letter` keeps the names of the tests of one process apart.
struct MacvlanParent {
    parent: String,
    peer: String,
    ns: String,
    /// A number from the test process's id, for names and subnets.
    k: u32,
}

impl MacvlanParent {
    /// `network create -d macvlan FLAGS -o parent=PARENT NAME`.
    fn network(&self, b: &Berth, name: &str, flags: &[&str]) {
        let parent = format!("parent={}", self.parent);
        let mut args = vec!["network", "create", "-d", "macvlan"];
        args.extend(flags);
        args.extend(["-o", &parent, name]);
        b.ok(&args);
    }

    fn new(letter: char) -> MacvlanParent {
        let k = std::process::id() % 100_000;
        let m = MacvlanParent {
            parent: format!("bm{letter}{k}a"),
            peer: format!("bm{letter}{k}b"),
            ns: format!("berth-m{letter}-{k}"),
            k,
        };
        let ip = |args: &[&str]| crate::util::run(Command::new("ip").args(args));
        ip(&["netns", "add", &m.ns]);
        ip(&[
            "link", "add", &m.parent, "type", "veth", "peer", "name", &m.peer, "netns", &m.ns,
        ]);
        ip(&["link", "set", &m.parent, "up"]);
        m
    }
}

impl Drop for MacvlanParent {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.parent])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// What networks made by this root could leave on the host: bridges named `br-<id>` or the
/// given one, veths that are not on berth0, rules naming the subnets or bridges, state
/// files under /run/berth/net.
fn network_traces(names: &[String], subnets: &[String]) -> BTreeSet<String> {
    let mut t = BTreeSet::new();
    for e in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if names.contains(&n) {
            t.insert(format!("link {n}"));
        }
    }
    let o = Command::new("iptables-save").output().unwrap();
    for l in stdout(&o).lines() {
        if l.starts_with("-A") && names.iter().chain(subnets).any(|w| l.contains(w.as_str())) {
            t.insert(l.to_string());
        }
    }
    for e in std::fs::read_dir("/run/berth/net")
        .into_iter()
        .flatten()
        .flatten()
    {
        let n = e.file_name().to_string_lossy().into_owned();
        if names.iter().any(|b| n.starts_with(b.as_str())) {
            t.insert(format!("state {n}"));
        }
    }
    t
}

/// The host ends of containers' veth pairs (`bv` or `b<N>` and 11 characters of an id) that
/// are not on the default bridge, where other tests' containers are.
fn loose_veths() -> BTreeSet<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.len() == 13 && (n.starts_with("bv") || n[1..2].parse::<u8>().is_ok()))
        .filter(|n| {
            std::fs::read_link(format!("/sys/class/net/{n}/master"))
                .map(|m| !m.ends_with("berth0"))
                .unwrap_or(true)
        })
        .collect()
}

#[test]
fn root_fifty_runs_on_networks_made_and_removed_leave_nothing() {
    let _host = shared();
    let b = nets();
    let parent = format!("/berth-nettest-{}", std::process::id());
    let before = host_traces(&b, &parent);
    let veths_before = loose_veths();
    let mut names = vec![];
    let mut subnets = vec![];
    let p = net24(8);
    let q = net24(9);
    for i in 0..50 {
        // A network each time; every fifth container is on a second one too and publishes a
        // port; each resolves its own name, so each network's resolver starts and stops.
        let id = b.ok(&[
            "network",
            "create",
            "--subnet",
            &format!("{p}.0/24"),
            "leak",
        ]);
        names.push(format!("br-{}", &id[..12]));
        subnets.push(format!("{p}.0/24"));
        let mut args = vec![
            "run",
            "--rm",
            "--name",
            "leak-run",
            "--cgroup-parent",
            &parent,
            "--network",
            "leak",
        ];
        if i % 5 == 0 {
            let id2 = b.ok(&[
                "network",
                "create",
                "--subnet",
                &format!("{q}.0/24"),
                "leak2",
            ]);
            names.push(format!("br-{}", &id2[..12]));
            subnets.push(format!("{q}.0/24"));
            args.extend(["--network", "leak2", "-p", "80"]);
        }
        args.extend(["bb", "busybox", "nslookup", "leak-run"]);
        let o = out(&b, &args);
        assert!(o.status.success(), "run {i}: {}{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).contains(&format!("Address: {p}.")),
            "{}",
            stdout(&o)
        );
        let rm: Vec<&str> = if i % 5 == 0 {
            vec!["network", "rm", "leak", "leak2"]
        } else {
            vec!["network", "rm", "leak"]
        };
        b.ok(&rm);
    }
    assert_eq!(network_traces(&names, &subnets), BTreeSet::new());
    // The kernel takes a pair away with its namespace, in the background.
    eventually("the veths' end", || loose_veths().is_subset(&veths_before));
    // Resolvers are processes of the root too: none is left.
    assert_eq!(host_traces(&b, &parent), before);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    assert_eq!(listed(&b, &["type=custom"]), Vec::<String>::new());
    for hier in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(hier.path().join(parent.trim_start_matches('/')));
    }
}

/// An IPv6 "outside" of the test's own: a namespace behind a veth pair, the host's end at
/// `<v6>1/64`, the namespace's at `<v6>2/64`; both gone when dropped.
struct Outside6 {
    host_end: String,
    ns: String,
    v6: String,
}

impl Outside6 {
    fn new(v6: &str) -> Outside6 {
        let k = std::process::id() % 100_000;
        let o = Outside6 {
            host_end: format!("b6o{k}a"),
            ns: format!("berth-v6-{k}"),
            v6: v6.to_string(),
        };
        let ip = |args: &[&str]| crate::util::run(Command::new("ip").args(args));
        ip(&["netns", "add", &o.ns]);
        let peer = format!("b6o{k}b");
        ip(&[
            "link",
            "add",
            &o.host_end,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &o.ns,
        ]);
        ip(&[
            "addr",
            "add",
            &format!("{v6}1/64"),
            "dev",
            &o.host_end,
            "nodad",
        ]);
        ip(&["link", "set", &o.host_end, "up"]);
        ip(&[
            "-n",
            &o.ns,
            "addr",
            "add",
            &format!("{v6}2/64"),
            "dev",
            &peer,
            "nodad",
        ]);
        ip(&["-n", &o.ns, "link", "set", &peer, "up"]);
        o
    }

    /// Runs `program` in the namespace.
    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }
}

impl Drop for Outside6 {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_end])
            .status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// A one-shot TCP server in `o`'s namespace on `<v6>2`: it answers its one connection with
/// the address the connection came from. Returns its port and the child.
fn peer_echo_server(o: &Outside6) -> (u16, std::process::Child) {
    use std::io::BufRead;
    let mut child = o
        .cmd("python3")
        .args([
            "-c",
            "import socket, sys\n\
             s = socket.socket(socket.AF_INET6)\n\
             s.bind((sys.argv[1], 0))\n\
             s.listen()\n\
             s.settimeout(20)\n\
             print(s.getsockname()[1], flush=True)\n\
             c, a = s.accept()\n\
             c.sendall((a[0] + '\\n').encode())\n\
             c.close()\n",
            &format!("{}2", o.v6),
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (line.trim().parse().expect("the server's port"), child)
}

/// `network create FLAGS --ipv6 --subnet V4 --subnet V6 NAME`.
fn dual_stack(b: &Berth, flags: &[&str], v4: &str, v6: &str, name: &str) {
    let mut args = vec!["network", "create"];
    args.extend(flags);
    args.extend(["--ipv6", "--subnet", v4, "--subnet", v6, name]);
    b.ok(&args);
}

/// Asserts that container `from` pings `to` at `to_v6`, and that its network's resolver
/// answers AAAA for the name `to` with that address.
fn reaches6(b: &Berth, from: &str, to: &str, to_v6: &str) {
    let o = out(
        b,
        &[
            "exec", from, "busybox", "ping", "-6", "-c", "1", "-W", "3", to_v6,
        ],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let aaaa = b.ok(&["exec", from, "busybox", "nslookup", "-type=AAAA", to]);
    assert!(aaaa.contains(to_v6), "{aaaa}");
}

#[test]
fn root_ipv6_networks_through_the_cli() {
    let _host = shared();
    let b = nets();
    let p = net24(10);
    let k = std::process::id() & 0xffff;
    let v6 = format!("fd42:{k:x}::");
    // Without an IPv6 subnet, docker's default pool: /64s of a unique local /48 that the
    // root's engine id names, each network its own, the gateway its first address.
    let auto6 = |name: &str| {
        b.ok(&["network", "create", "--ipv6", name]);
        let v = json(&b.ok(&["network", "inspect", name]))[0].clone();
        let (s, g) = (
            &v["IPAM"]["Config"][1]["Subnet"],
            &v["IPAM"]["Config"][1]["Gateway"],
        );
        let s: std::net::Ipv6Addr = s
            .as_str()
            .unwrap()
            .strip_suffix("/64")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(s.segments()[0] >> 8, 0xfd, "{v}");
        assert_eq!(
            g.as_str().unwrap(),
            format!("{}", std::net::Ipv6Addr::from(u128::from(s) + 1))
        );
        s
    };
    let (u1, u2) = (auto6("ula1"), auto6("ula2"));
    assert_eq!(
        u128::from(u1) >> 80,
        u128::from(u2) >> 80,
        "one /48: {u1} {u2}"
    );
    assert_ne!(u1, u2);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "u6",
        "--network",
        "ula1",
        "bb",
        "sleep",
        "60",
    ]);
    let a6 = inspect(&b, "u6")["NetworkSettings"]["Networks"]["ula1"]["GlobalIPv6Address"]
        .as_str()
        .unwrap()
        .to_string();
    let a6: std::net::Ipv6Addr = a6.parse().unwrap();
    assert_eq!(
        u128::from(a6) >> 64,
        u128::from(u1) >> 64,
        "{a6} in {u1}/64"
    );
    let gw = std::net::Ipv6Addr::from(u128::from(u1) + 1).to_string();
    let o = out(
        &b,
        &[
            "exec", "u6", "busybox", "ping", "-6", "-c", "1", "-W", "3", &gw,
        ],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    b.ok(&["rm", "-f", "u6"]);
    b.ok(&["network", "rm", "ula1", "ula2"]);
    fails_with(
        &b,
        &["network", "create", "--subnet", &format!("{v6}/64"), "six"],
        1,
        "needs --ipv6",
    );
    dual_stack(&b, &[], &format!("{p}.0/24"), &format!("{v6}/64"), "six");
    fails_with(
        &b,
        &[
            "network",
            "create",
            "--ipv6",
            "--subnet",
            &format!("{v6}/80"),
            "seven",
        ],
        1,
        "Pool overlaps with other one on this address space",
    );
    let v = json(&b.ok(&["network", "inspect", "six"]))[0].clone();
    assert_eq!(v["EnableIPv6"], true);
    assert_eq!(v["IPAM"]["Config"][1]["Subnet"], format!("{v6}/64"));
    assert_eq!(v["IPAM"]["Config"][1]["Gateway"], format!("{v6}1"));
    assert_eq!(
        b.ok(&["network", "ls", "-f", "name=six", "--format", "{{.IPv6}}"]),
        "true\n"
    );
    // --ip6, with docker's messages (exit 125 for run/create, 1 for network connect).
    b.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{}.0/24", net24(11)),
        "v4only",
    ]);
    for (flags, needle) in [
        (
            vec!["--ip6", &format!("{v6}5") as &str],
            "user specified IP address is supported on user defined networks only",
        ),
        (
            vec!["--network", "six", "--ip6", "fd99::5"],
            "no configured subnet or ip-range contain the IP address fd99::5",
        ),
        (
            vec!["--network", "six", "--ip6", "10.1.2.3"],
            "invalid IPv6 address: 10.1.2.3",
        ),
        (
            vec!["--network", "v4only", "--ip6", &format!("{v6}5")],
            "user specified IP address is supported only when connecting to networks with user \
             configured subnets",
        ),
    ] {
        let mut args = vec!["create"];
        args.extend(flags);
        args.extend(["bb", "true"]);
        fails_with(&b, &args, 125, needle);
    }
    let fixed = format!("{v6}77");
    b.ok(&[
        "run",
        "-d",
        "--name",
        "s1",
        "--network",
        "six",
        "--ip6",
        &fixed,
        "bb",
        "sleep",
        "60",
    ]);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "s2",
        "--network",
        "six",
        "-p",
        "8080",
        "bb",
        "sleep",
        "60",
    ]);
    let s1 = &inspect(&b, "s1")["NetworkSettings"]["Networks"]["six"];
    assert_eq!(s1["GlobalIPv6Address"], fixed.as_str(), "{s1}");
    assert_eq!(s1["IPAMConfig"]["IPv6Address"], fixed.as_str(), "{s1}");
    let s2 = &inspect(&b, "s2")["NetworkSettings"]["Networks"]["six"];
    let s2_v6 = s2["GlobalIPv6Address"].as_str().unwrap().to_string();
    assert!(s2_v6.starts_with(&v6), "{s2}");
    assert_eq!(s2["GlobalIPv6PrefixLen"], 64);
    assert_eq!(s2["IPv6Gateway"], format!("{v6}1"));
    // The address is on eth0 and the other container answers on it.
    let addrs = b.ok(&["exec", "s2", "ip", "-o", "-6", "addr"]);
    assert!(addrs.contains(&format!("{s2_v6}/64")), "{addrs}");
    reaches6(&b, "s1", "s2", &s2_v6);
    // The network's resolver answers AAAA with the IPv6 address, A with the IPv4 one.
    reaches6(&b, "s2", "s1", &fixed);
    let a = b.ok(&["exec", "s2", "busybox", "nslookup", "-type=A", "s1"]);
    let s1_v4 = s1["IPAddress"].as_str().unwrap().to_string();
    assert!(a.contains(&s1_v4) && !a.contains(&fixed), "{a}");

    // network connect --ip6: a taken address is refused, a free one is the new interface's.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "s3",
        "--network",
        "v4only",
        "bb",
        "sleep",
        "60",
    ]);
    fails_with(
        &b,
        &["network", "connect", "--ip6", &fixed, "six", "s3"],
        1,
        "Address already in use",
    );
    let third = format!("{v6}99");
    b.ok(&["network", "connect", "--ip6", &third, "six", "s3"]);
    let addrs = b.ok(&["exec", "s3", "ip", "-o", "-6", "addr"]);
    assert!(addrs.contains(&format!("{third}/64")), "{addrs}");
    let s3 = &inspect(&b, "s3")["NetworkSettings"]["Networks"]["six"];
    assert_eq!(s3["GlobalIPv6Address"], third.as_str(), "{s3}");
    let aaaa = b.ok(&["exec", "s1", "busybox", "nslookup", "-type=AAAA", "s3"]);
    assert!(aaaa.contains(&third), "{aaaa}");

    // NAT out: an IPv6 host of the test's own sees the host's address, not the container's.
    let outside = Outside6::new(&format!("fd43:{k:x}::"));
    let (port, mut server) = peer_echo_server(&outside);
    let seen = b.ok(&[
        "exec",
        "s1",
        "busybox",
        "nc",
        "-w",
        "5",
        &format!("{}2", outside.v6),
        &port.to_string(),
    ]);
    let _ = server.wait();
    assert_eq!(seen.trim(), format!("{}1", outside.v6), "masqueraded");
    let rules = String::from_utf8_lossy(&Command::new("ip6tables-save").output().unwrap().stdout)
        .into_owned();
    assert!(
        rules.contains(&format!("-A POSTROUTING -s {v6}/64 ! -o br-")),
        "{rules}"
    );
    // A port published on all addresses is bound in both families, on one host port, and
    // shown so as docker 28 shows it: 0.0.0.0 and [::] in `port`, `ps` and `inspect`.
    let hport = b.ok(&["port", "s2", "8080"]);
    let hport = hport
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        b.ok(&["port", "s2", "8080"]),
        format!("0.0.0.0:{hport}\n[::]:{hport}\n")
    );
    assert_eq!(
        b.ok(&["port", "s2"]),
        format!("8080/tcp -> 0.0.0.0:{hport}\n8080/tcp -> [::]:{hport}\n")
    );
    assert_eq!(
        b.ok(&["ps", "-f", "name=s2", "--format", "{{.Ports}}"]),
        format!("0.0.0.0:{hport}->8080/tcp, [::]:{hport}->8080/tcp\n")
    );
    assert_eq!(
        inspect(&b, "s2")["NetworkSettings"]["Ports"],
        serde_json::json!({"8080/tcp": [
            {"HostIp": "0.0.0.0", "HostPort": hport},
            {"HostIp": "::", "HostPort": hport},
        ]})
    );
    b.ok(&[
        "exec",
        "s2",
        "sh",
        "-c",
        "mkdir -p /tmp/w && echo from-s2 > /tmp/w/index.html && httpd -p 8080 -h /tmp/w",
    ]);
    let get = "import socket, sys\n\
               s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n\
               s.sendall(b'GET /index.html HTTP/1.0\\r\\n\\r\\n')\n\
               got = b''\n\
               while True:\n\
               \x20   d = s.recv(4096)\n\
               \x20   if not d: break\n\
               \x20   got += d\n\
               print(got.decode())\n";
    let mut text = String::new();
    eventually("the published port over IPv6", || {
        let o = outside
            .cmd("python3")
            .args(["-c", get, &format!("{}1", outside.v6), &hport])
            .output()
            .unwrap();
        text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        text.contains("from-s2")
    });
    // Hairpin over IPv6: containers (the publisher itself included) reach the published
    // port through the host's IPv6 addresses: the network's gateway and another interface's.
    // (busybox's wget takes no IPv6 literal here: nc speaks the HTTP.)
    for host in [format!("{v6}1"), format!("{}1", outside.v6)] {
        for c in ["s1", "s2"] {
            let script =
                format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {host} {hport}");
            let o = out(&b, &["exec", c, "sh", "-c", &script]);
            assert!(
                stdout(&o).ends_with("from-s2\n"),
                "{c} -> [{host}]:{hport}: {}{}",
                stdout(&o),
                stderr(&o)
            );
        }
    }

    // ... and over IPv4: from the host on 127.0.0.1, from a container by hairpin.
    eventually("the published port over IPv4", || {
        http_get(&format!("127.0.0.1:{hport}"), "/index.html").as_deref() == Some("from-s2\n")
    });
    let gw4 = s1["Gateway"].as_str().unwrap().to_string();
    let script = format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {gw4} {hport}");
    assert!(b
        .ok(&["exec", "s1", "sh", "-c", &script])
        .ends_with("from-s2\n"));

    // A host address in `-p` picks the family: an IPv6 address of the host's (`[ADDR]`,
    // bracketed or not), all of its IPv6 addresses (`[::]`), all of its IPv4 ones
    // (`0.0.0.0`). Each answers there only.
    let o1 = format!("{}1", outside.v6);
    b.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "six",
        "-p",
        &format!("[{o1}]::80"),
        "-p",
        "[::]::81",
        "-p",
        "0.0.0.0::82",
        "bb",
        "sh",
        "-c",
        "mkdir -p /w && echo from-w > /w/index.html && httpd -p 80 -h /w && httpd -p 81 -h /w \
         && httpd -p 82 -h /w && exec sleep 60",
    ]);
    let port_of = |c: &str| {
        let p = b.ok(&["port", "web", c]);
        let (host, port) = p.trim().rsplit_once(':').unwrap_or_else(|| panic!("{p}"));
        (host.to_string(), port.to_string())
    };
    let ((h80, p80), (h81, p81), (h82, p82)) = (port_of("80"), port_of("81"), port_of("82"));
    assert_eq!(
        (h80.as_str(), h81.as_str(), h82.as_str()),
        (format!("[{o1}]").as_str(), "[::]", "0.0.0.0")
    );
    assert_eq!(
        b.ok(&["ps", "-f", "name=web", "--format", "{{.Ports}}"]),
        format!("[{o1}]:{p80}->80/tcp, [::]:{p81}->81/tcp, 0.0.0.0:{p82}->82/tcp\n")
    );
    let w = inspect(&b, "web");
    assert_eq!(
        w["NetworkSettings"]["Ports"],
        serde_json::json!({
            "80/tcp": [{"HostIp": o1, "HostPort": p80}],
            "81/tcp": [{"HostIp": "::", "HostPort": p81}],
            "82/tcp": [{"HostIp": "0.0.0.0", "HostPort": p82}],
        })
    );
    assert_eq!(
        w["HostConfig"]["PortBindings"]["80/tcp"],
        serde_json::json!([{"HostIp": o1, "HostPort": ""}])
    );
    let gw6 = format!("[{v6}1]");
    for (at, answers) in [
        (format!("[{o1}]:{p80}"), true),
        (format!("{gw6}:{p80}"), false),
        (format!("{gw6}:{p81}"), true),
        (format!("127.0.0.1:{p81}"), false),
        (format!("127.0.0.1:{p82}"), true),
        (format!("{gw6}:{p82}"), false),
    ] {
        if answers {
            eventually(&format!("from-w on {at}"), || {
                http_get(&at, "/index.html").as_deref() == Some("from-w\n")
            });
        } else {
            let tried =
                std::net::TcpStream::connect_timeout(&at.parse().unwrap(), Duration::from_secs(3));
            let e = tried.map(drop).expect_err(&at);
            assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{at}: {e}");
        }
    }
    // Hairpin to the one IPv6 address.
    let script = format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {o1} {p80}");
    let o = out(&b, &["exec", "s1", "sh", "-c", &script]);
    assert!(
        stdout(&o).ends_with("from-w\n"),
        "{}{}",
        stdout(&o),
        stderr(&o)
    );
    let w_v6 = w["NetworkSettings"]["Networks"]["six"]["GlobalIPv6Address"]
        .as_str()
        .unwrap()
        .to_string();
    let w_id = w["Id"].as_str().unwrap().to_string();
    // Refused at create, with the reason: [::1] (the kernel forwards no IPv6 loopback
    // packet to a container, and berth has no userland proxy), an IPv6 address on a network
    // without IPv6 (the default bridge too), a bad address as docker's CLI words it.
    for (net, spec, status, needle) in [
        (
            "six",
            "[::1]:8080:80",
            125,
            "ports cannot be published on ::1: ",
        ),
        (
            "six",
            "::1:8080:80",
            125,
            "ports cannot be published on ::1: ",
        ),
        (
            "v4only",
            &format!("[{o1}]:8080:80") as &str,
            125,
            "ports cannot be published on network v4only: it has no IPv6 subnet",
        ),
        (
            "bridge",
            "[::]:8080:80",
            125,
            "ports cannot be published on network bridge: it has no IPv6 subnet",
        ),
        (
            "six",
            "[fd00::zz]:80:80",
            125,
            "invalid IP address: fd00::zz",
        ),
    ] {
        fails_with(
            &b,
            &["create", "--network", net, "-p", spec, "bb", "true"],
            status,
            needle,
        );
    }

    // An internal IPv6 network: no IPv6 route out, and none made by hand forwards either
    // (the host drops what would leave the bridge); inside it, IPv6 works.
    let k6 = format!("fd44:{k:x}::");
    dual_stack(
        &b,
        &["--internal"],
        &format!("{}.0/24", net24(12)),
        &format!("{k6}/64"),
        "in6",
    );
    for c in ["i1", "i2"] {
        b.ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "in6",
            "bb",
            "sleep",
            "60",
        ]);
    }
    let routes = b.ok(&["exec", "i1", "ip", "-6", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    let i2_v6 = inspect(&b, "i2")["NetworkSettings"]["Networks"]["in6"]["GlobalIPv6Address"]
        .as_str()
        .unwrap()
        .to_string();
    reaches6(&b, "i1", "i2", &i2_v6);
    // The outside knows its way back to the subnet, so only the host's drop stands between.
    crate::util::run(Command::new("ip").args([
        "-n",
        &outside.ns,
        "-6",
        "route",
        "add",
        &format!("{k6}/64"),
        "via",
        &format!("{}1", outside.v6),
    ]));
    let (_, text) = in_net(
        pid_of(&b, "i1"),
        &format!(
            "ip -6 route add {o}/64 via {k6}1 dev eth0; \
             ping -6 -c 1 -W 3 {k6}1 >/dev/null && echo GATEWAY; \
             ping -6 -c 1 -W 3 {o}2 >/dev/null && echo OUT",
            o = outside.v6
        ),
    );
    assert!(text.contains("GATEWAY"), "{text}");
    assert!(
        !text.contains("OUT"),
        "an internal network forwarded IPv6 out: {text}"
    );
    let rules = String::from_utf8_lossy(&Command::new("ip6tables-save").output().unwrap().stdout)
        .into_owned();
    let in6_bridge = b
        .ok(&["network", "inspect", "-f", "{{.Id}}", "in6"])
        .trim()
        .chars()
        .take(12)
        .collect::<String>();
    assert!(
        rules.contains(&format!(
            "-A FORWARD -i br-{in6_bridge} ! -o br-{in6_bridge} -j DROP"
        )),
        "{rules}"
    );
    assert!(
        !rules.contains(&format!(
            "-A POSTROUTING -s {k6}/64 ! -o br-{in6_bridge} -j MASQUERADE"
        )),
        "{rules}"
    );

    b.ok(&["rm", "-f", "s1", "s2", "s3", "web", "i1", "i2"]);
    b.ok(&["network", "rm", "six", "v4only", "in6"]);
    let rules = String::from_utf8_lossy(&Command::new("ip6tables-save").output().unwrap().stdout)
        .into_owned();
    assert!(!rules.contains(&format!("{v6}/64")), "{rules}");
    assert!(!rules.contains(&s2_v6) && !rules.contains(&w_v6), "{rules}");
    let rules4 = String::from_utf8_lossy(&Command::new("iptables-save").output().unwrap().stdout)
        .into_owned();
    for r in [&rules, &rules4] {
        assert!(!r.contains(&format!("berth:{w_id}")), "{r}");
    }
    assert!(!rules.contains(&format!("br-{in6_bridge}")), "{rules}");
}

/// docker 28's IPv6-only networks (`--ipv4=false --ipv6`): a container gets an IPv6 address
/// and no IPv4 one, reaches the gateway and another container over IPv6, names resolve to
/// AAAA through the network's resolver on the IPv6 gateway, and nothing is left after rm.
#[test]
fn root_ipv6_only_networks_through_the_cli() {
    let _host = shared();
    let b = nets();
    let k = std::process::id() & 0xffff;
    let v6 = format!("fd45:{k:x}::");
    let subnet = format!("{v6}/64");
    fails_with(
        &b,
        &["network", "create", "--ipv4=false", "neither"],
        1,
        "IPv4 or IPv6 must be enabled",
    );
    fails_with(
        &b,
        &[
            "network",
            "create",
            "--ipv4=false",
            "--ipv6",
            "--subnet",
            "10.1.2.0/24",
            "mixed",
        ],
        1,
        "the network has IPv4 disabled (--ipv4=false)",
    );
    b.ok(&[
        "network",
        "create",
        "--ipv4=false",
        "--ipv6",
        "--subnet",
        &subnet,
        "o6",
    ]);
    let v = json(&b.ok(&["network", "inspect", "o6"]))[0].clone();
    assert_eq!(v["EnableIPv4"], false, "{v}");
    assert_eq!(v["EnableIPv6"], true, "{v}");
    assert_eq!(
        v["IPAM"]["Config"],
        serde_json::json!([{ "Subnet": subnet, "Gateway": format!("{v6}1") }]),
        "{v}"
    );
    assert_eq!(
        b.ok(&[
            "network",
            "ls",
            "-f",
            "name=o6",
            "--format",
            "{{.IPv4}} {{.IPv6}}"
        ]),
        "false true\n"
    );
    let bridge = format!("br-{}", &v["Id"].as_str().unwrap()[..12]);
    fails_with(
        &b,
        &[
            "create",
            "--network",
            "o6",
            "--ip",
            "10.1.2.3",
            "bb",
            "true",
        ],
        125,
        "no configured subnet or ip-range contain the IP address 10.1.2.3",
    );
    for c in ["p1", "p2"] {
        b.ok(&[
            "run",
            "-d",
            "--name",
            c,
            "--network",
            "o6",
            "bb",
            "sleep",
            "60",
        ]);
    }
    let ep = |c: &str| inspect(&b, c)["NetworkSettings"]["Networks"]["o6"].clone();
    let (e1, e2) = (ep("p1"), ep("p2"));
    for e in [&e1, &e2] {
        assert_eq!(e["IPAddress"], "", "{e}");
        assert_eq!(e["Gateway"], "", "{e}");
        assert_eq!(e["IPv6Gateway"], format!("{v6}1"), "{e}");
        assert_eq!(e["GlobalIPv6PrefixLen"], 64, "{e}");
        assert!(
            e["GlobalIPv6Address"].as_str().unwrap().starts_with(&v6),
            "{e}"
        );
    }
    let p2_v6 = e2["GlobalIPv6Address"].as_str().unwrap().to_string();
    assert_ne!(e1["GlobalIPv6Address"], e2["GlobalIPv6Address"]);
    // Only IPv6 on eth0: no IPv4 address, no IPv4 route.
    let v4 = b.ok(&["exec", "p1", "ip", "-o", "-4", "addr"]);
    assert!(!v4.contains("eth0"), "{v4}");
    let routes = b.ok(&["exec", "p1", "ip", "-4", "route"]);
    assert!(routes.trim().is_empty(), "{routes}");
    let routes6 = b.ok(&["exec", "p1", "ip", "-6", "route"]);
    assert!(routes6.contains(&format!("default via {v6}1")), "{routes6}");
    // The gateway answers, and the resolver on it is the container's name server.
    let o = out(
        &b,
        &[
            "exec",
            "p1",
            "busybox",
            "ping",
            "-6",
            "-c",
            "1",
            "-W",
            "3",
            &format!("{v6}1"),
        ],
    );
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let resolv = b.ok(&["exec", "p1", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains(&format!("nameserver {v6}1")), "{resolv}");
    reaches6(&b, "p1", "p2", &p2_v6);
    let a = b.ok(&["exec", "p1", "busybox", "nslookup", "-type=A", "p2"]);
    assert!(!a.contains(&p2_v6) && !a.contains("10."), "{a}");
    let hosts = b.ok(&["exec", "p2", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&p2_v6), "{hosts}");

    // A published port, as docker 28 publishes one for a container without IPv4: on the
    // host's IPv6 addresses only (`[::]`), reached from the host through an address of its
    // own (the gateway) and from containers (hairpin, the publisher's own port included).
    // Nothing answers on IPv4, and [::1] is refused at once (it is not held open: the kernel
    // sends no IPv6 loopback packet on to a container, and berth has no userland proxy).
    fails_with(
        &b,
        &[
            "create",
            "--network",
            "o6",
            "-p",
            "127.0.0.1:8080:80",
            "bb",
            "true",
        ],
        125,
        "ports cannot be published on network o6: it is IPv6-only, and 127.0.0.1 is an IPv4 \
         address",
    );
    b.ok(&[
        "run",
        "-d",
        "--name",
        "w6",
        "--network",
        "o6",
        "-p",
        "80",
        "bb",
        "sh",
        "-c",
        "mkdir -p /tmp/w && echo from-w6 > /tmp/w/index.html && exec httpd -f -p 80 -h /tmp/w",
    ]);
    let port = b.ok(&["port", "w6"]);
    let hport = port
        .trim()
        .strip_prefix("80/tcp -> [::]:")
        .unwrap_or_else(|| panic!("{port}"))
        .to_string();
    assert_eq!(
        b.ok(&["ps", "-f", "name=w6", "--format", "{{.Ports}}"]),
        format!("[::]:{hport}->80/tcp\n")
    );
    assert_eq!(
        inspect(&b, "w6")["NetworkSettings"]["Ports"],
        serde_json::json!({"80/tcp": [{"HostIp": "::", "HostPort": hport}]})
    );
    let at_gateway = format!("[{v6}1]:{hport}");
    eventually("the published port on the host's IPv6 address", || {
        http_get(&at_gateway, "/index.html").as_deref() == Some("from-w6\n")
    });
    for c in ["p1", "w6"] {
        let script =
            format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 5 {v6}1 {hport}");
        let o = out(&b, &["exec", c, "sh", "-c", &script]);
        assert!(
            stdout(&o).ends_with("from-w6\n"),
            "{c} -> [{v6}1]:{hport}: {}{}",
            stdout(&o),
            stderr(&o)
        );
    }
    for addr in [format!("127.0.0.1:{hport}"), format!("[::1]:{hport}")] {
        let tried =
            std::net::TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(3));
        let e = tried.map(drop).expect_err(&addr);
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{addr}: {e}"
        );
    }

    b.ok(&["rm", "-f", "p1", "p2", "w6"]);
    b.ok(&["network", "rm", "o6"]);
    let left = network_traces(&[bridge], std::slice::from_ref(&subnet));
    assert!(left.is_empty(), "{left:?}");
    let rules = String::from_utf8_lossy(&Command::new("ip6tables-save").output().unwrap().stdout)
        .into_owned();
    assert!(
        !rules.contains(&subnet) && !rules.contains(&p2_v6),
        "{rules}"
    );
}

/// Subnets as docker's address manager hands them out. An asked-for subnet may overlap no
/// other network's (this root's, nor one another berth root has set up on this host), but
/// the host's own routes are the user's business; a subnet picked for the network keeps off
/// the subnets the host is on (its on-link routes) and its name servers, and nothing else.
/// The host here is a network namespace of the test's own (its routes) with a resolv.conf
/// of its own (a mount namespace).
#[test]
fn root_subnets_keep_off_networks_and_the_hosts_links() {
    let _host = shared();
    let (a, b) = (nets(), nets());
    // Another root's network that no container has set up yet holds its subnet host-wide
    // too: the subnet picked for this root's keeps off it, and asking for it is refused.
    let inspect_subnet = |r: &Berth, n: &str| {
        let s = r.ok(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
            n,
        ]);
        s.trim().to_string()
    };
    let id = a.ok(&["network", "create", "held"]).trim().to_string();
    let held = inspect_subnet(&a, "held");
    let claim = std::path::Path::new("/run/berth/net/claims").join(&id);
    assert!(claim.exists(), "{}", claim.display());
    b.ok(&["network", "create", "other"]);
    assert_ne!(inspect_subnet(&b, "other"), held);
    fails_with(
        &b,
        &["network", "create", "--subnet", &held, "same"],
        1,
        "invalid pool request: Pool overlaps with other one on this address space",
    );
    a.ok(&["network", "rm", "held"]);
    assert!(!claim.exists(), "{}", claim.display());
    b.ok(&["network", "rm", "other"]);

    let k = std::process::id() & 0xffff;
    let (p, v6) = (net24(13), format!("fd46:{k:x}::"));
    // Another root's network, set up on the host by a container.
    dual_stack(
        &a,
        &[],
        &format!("{p}.0/24"),
        &format!("{v6}/64"),
        "elsewhere",
    );
    a.ok(&["run", "--rm", "--network", "elsewhere", "bb", "true"]);
    let (s4, s6) = (format!("{p}.128/25"), format!("{v6}8:0/112"));
    for args in [
        vec!["network", "create", "--subnet", &s4, "mine"],
        // The IPv4 subnet picked, the IPv6 one asked for.
        vec!["network", "create", "--ipv6", "--subnet", &s6, "mine"],
    ] {
        fails_with(
            &b,
            &args,
            1,
            "invalid pool request: Pool overlaps with other one on this address space",
        );
    }

    // The host: on the link 10.92.0.0/16, a gateway to 10.93.0.0/16, a name server there.
    let ns = NetNs::new("127.0.0.1");
    let ip = |args: &[&str]| crate::util::run(ns.exec("ip").args(args));
    ip(&["link", "add", "t0", "type", "veth", "peer", "name", "t1"]);
    ip(&["link", "set", "t0", "up"]);
    ip(&["link", "set", "t1", "up"]);
    ip(&["addr", "add", "10.55.0.1/24", "dev", "t0"]);
    ip(&["route", "add", "10.92.0.0/16", "dev", "t0"]);
    ip(&["route", "add", "10.93.0.0/16", "via", "10.55.0.2"]);
    let resolv = b.dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.93.0.53\n").unwrap();
    let on_host = |args: &[&str]| {
        let o = with_resolv(ns.exec(require("unshare")), &resolv, b.cmd(args));
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    on_host(&["network", "create", "picked"]);
    let subnet = b.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.Subnet}}{{end}}",
        "picked",
    ]);
    let subnet = subnet.trim();
    assert!(
        subnet.starts_with("10.93.") && subnet != "10.93.0.0/24",
        "picked {subnet}: off the link, beside the name server, over the gateway's route"
    );
    // Asked for, a subnet on the host's link is the user's to take.
    on_host(&["network", "create", "--subnet", "10.92.7.0/24", "onlink"]);
    fails_with(
        &b,
        &["network", "create", "--subnet", "10.92.7.128/25", "again"],
        1,
        "Pool overlaps with other one on this address space",
    );
    b.ok(&["network", "rm", "picked", "onlink"]);
    a.ok(&["network", "rm", "elsewhere"]);
    // Gone from the host, its subnet is free again.
    b.ok(&[
        "network",
        "create",
        "--subnet",
        &format!("{p}.128/25"),
        "mine",
    ]);
    b.ok(&["network", "rm", "mine"]);
}
