//! Networks as root on a real kernel: containers on a network of the test's own (a bridge
//! and subnet no other test uses, its host-wide state in a temporary directory) find each
//! other by name through the network's resolver, answers follow names as they change and
//! containers as they go; an internal network has no way out; a container reaches a published
//! port through the host's address (hairpin) but not the host's 127.0.0.1; macvlan links hang
//! off an interface of the test's own; and removing the network leaves nothing. Traffic goes
//! only to the test's own containers and namespaces. Fails, never skips, without root.

mod util;

use berth_runtime::net::{self, Endpoint, Network, PortMapping, Protocol};
use berth_runtime::Container;
use std::net::Ipv4Addr;
use std::process::Command;
use util::*;

/// A network of this test's own: bridge `bn<pid><k>`, subnet 10.94.<n>.0/24 (10.95 for
/// macvlan), state in a temporary directory. Removed, with what it made, when dropped.
struct TestNet {
    net: Network,
    _state: tempfile::TempDir,
}

impl TestNet {
    fn new(k: u8, internal: bool) -> TestNet {
        let state = tempfile::tempdir().unwrap();
        let n = (std::process::id() % 50) as u8 * 5 + k;
        TestNet {
            net: Network {
                name: format!("bn{}{k}", std::process::id() % 100_000),
                gateway: Ipv4Addr::new(10, 94, n, 1),
                prefix: 24,
                state_dir: state.path().to_path_buf(),
                internal,
                dns: true,
                ..Network::default()
            },
            _state: state,
        }
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        let _ = net::remove(&self.net);
    }
}

/// What a fixture's container leaves on the host is known by: its id's letters and digits,
/// last first (the host's end of a veth pair is named after a tag's first 11 characters, and
/// the fixtures' ids differ at their end).
fn tag(fx: &Fixture) -> String {
    fx.id
        .chars()
        .rev()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect()
}

/// A container running `sleep`, plugged into `n` as `names`.
fn sleeper(
    fx: &Fixture,
    n: &Network,
    names: &[&str],
    ports: Vec<PortMapping>,
) -> (Container, i32, Ipv4Addr) {
    let c = fx.create(fx.spec(&["sleep", "60"]));
    let pid = c.state().unwrap().pid.unwrap();
    let a = net::connect_endpoint(
        n,
        &Endpoint {
            tag: tag(fx),
            pid,
            interface: "eth0".into(),
            default_route: true,
            ports,
            names: names.iter().map(|s| s.to_string()).collect(),
            ..Endpoint::default()
        },
    )
    .expect("connect");
    c.start().unwrap();
    (c, pid, a.address.expect("an IPv4 network"))
}

/// Runs the host's busybox `args` in the network namespace of `pid`.
fn in_net(pid: i32, args: &str) -> (bool, String) {
    let o = Command::new("nsenter")
        .arg(format!("--net=/proc/{pid}/ns/net"))
        .arg(busybox())
        .args(["sh", "-c", args])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.success(), text)
}

/// What `nslookup NAME` from `pid`'s namespace answered, via the network's resolver.
fn lookup(pid: i32, gw: Ipv4Addr, name: &str) -> (bool, String) {
    in_net(pid, &format!("nslookup {name} {gw}"))
}

fn rules_naming(word: &str) -> Vec<String> {
    let o = Command::new("iptables-save").output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| l.starts_with("-A") && l.contains(word))
        .map(str::to_string)
        .collect()
}

#[test]
fn root_names_resolve_on_a_network_and_follow_containers() {
    let t = TestNet::new(0, false);
    let n = &t.net;
    let (fa, fb) = (Fixture::new(), Fixture::new());
    let (_a, pa, addr_a) = sleeper(&fa, n, &["alpha", "web"], vec![]);
    let (b, pb, addr_b) = sleeper(&fb, n, &["beta"], vec![]);
    let gw = n.gateway;
    let (ok, text) = lookup(pa, gw, "beta");
    assert!(ok && text.contains(&addr_b.to_string()), "{text}");
    let (ok, text) = lookup(pb, gw, "web");
    assert!(
        ok && text.contains(&addr_a.to_string()),
        "the alias: {text}"
    );
    let (ok, text) = lookup(pb, gw, "ALPHA.");
    assert!(
        ok && text.contains(&addr_a.to_string()),
        "any case, rooted: {text}"
    );
    assert!(!lookup(pa, gw, "nosuchname.invalid")
        .1
        .contains(&addr_a.to_string()));
    // Renamed: the new name answers, the old one no longer.
    let tag_b = tag(&fb);
    net::set_names(n, &tag_b, &["gamma".to_string()]).unwrap();
    let (ok, text) = lookup(pa, gw, "gamma");
    assert!(ok && text.contains(&addr_b.to_string()), "{text}");
    let (_, text) = lookup(pa, gw, "beta");
    assert!(!text.contains(&addr_b.to_string()), "{text}");
    // Gone: its name goes with it.
    net::detach(n, &tag_b, "eth0").unwrap();
    let (_, text) = lookup(pa, gw, "gamma");
    assert!(!text.contains(&addr_b.to_string()), "{text}");
    b.delete(true).unwrap();
}

#[test]
fn root_internal_network_has_no_way_out_and_no_ports() {
    let t = TestNet::new(1, true);
    let n = &t.net;
    let fx = Fixture::new();
    let (_c, pid, _) = sleeper(&fx, n, &["inside"], vec![]);
    let (_, routes) = in_net(pid, "ip route");
    assert!(!routes.contains("default"), "{routes}");
    assert!(
        rules_naming(&n.name)
            .iter()
            .any(|r| r.contains("DROP") && r.contains("! -o")),
        "{:?}",
        rules_naming(&n.name)
    );
    let f2 = Fixture::new();
    let c2 = f2.create(f2.spec(&["sleep", "60"]));
    let e = net::connect_endpoint(
        n,
        &Endpoint {
            tag: tag(&f2),
            pid: c2.state().unwrap().pid.unwrap(),
            interface: "eth0".into(),
            ports: vec![PortMapping {
                host_ip: None,
                host_port: 0,
                container_port: 80,
                protocol: Protocol::Tcp,
            }],
            ..Endpoint::default()
        },
    )
    .unwrap_err();
    assert!(e.to_string().contains("internal"), "{e}");
}

#[test]
fn root_hairpin_reaches_published_ports_but_not_the_hosts_loopback() {
    let t = TestNet::new(2, false);
    let n = &t.net;
    let port = {
        let l = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (fa, fb) = (Fixture::new(), Fixture::new());
    let (_a, pa, _) = sleeper(
        &fa,
        n,
        &["server"],
        vec![PortMapping {
            host_ip: None,
            host_port: port,
            container_port: 8080,
            protocol: Protocol::Tcp,
        }],
    );
    let (_b, pb, _) = sleeper(&fb, n, &["client"], vec![]);
    // A one-shot server in a's namespace (the host's busybox, in a's network).
    let www = tempfile::tempdir().unwrap();
    std::fs::write(www.path().join("index.html"), "hairpin\n").unwrap();
    struct Server(std::process::Child);
    impl Drop for Server {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _server = Server(
        Command::new("nsenter")
            .arg(format!("--net=/proc/{pa}/ns/net"))
            .arg(busybox())
            .args(["httpd", "-f", "-p", "8080", "-h"])
            .arg(www.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // busybox's wget crashes outside a container's /etc: a GET by hand.
    let get = |host: Ipv4Addr, port: u16| {
        format!("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} {port}")
    };
    // Until httpd listens: bounded by time, not by a count of tries (a second's worth was
    // short on a loaded machine).
    let mut got = (false, String::new());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        got = in_net(pb, &get(n.gateway, port));
        if got.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        got.1.ends_with("\r\n\r\nhairpin\n"),
        "b through the host's address: {got:?}"
    );
    let own = in_net(pa, &get(n.gateway, port));
    assert!(
        own.1.ends_with("\r\n\r\nhairpin\n"),
        "a, its own port through the host's address: {own:?}"
    );
    // The host's loopback stays the host's: a container that routes 127.0.0.1 to the
    // gateway (it would need NET_ADMIN; the test does it from outside) reaches nothing.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let lport = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let (_, out) = in_net(
        pb,
        &format!(
            "sysctl -w net.ipv4.conf.eth0.route_localnet=1 >/dev/null; \
             ip route del local 127.0.0.0/8 dev lo table local; \
             ip route add 127.0.0.1/32 via {} dev eth0; \
             nc -w 2 127.0.0.1 {lport} </dev/null && echo CONNECTED",
            n.gateway
        ),
    );
    assert!(!out.contains("CONNECTED"), "{out}");
    assert!(
        listener.accept().is_err(),
        "the host's 127.0.0.1 was reached"
    );
}

#[test]
fn root_macvlan_links_hang_off_the_parent() {
    // The parent: one end of a veth pair of the test's own; the other end in a namespace
    // of the test's own, with an address of the macvlan network's subnet.
    let k = std::process::id() % 100_000;
    let (parent, peer, ns) = (
        format!("bmv{k}a"),
        format!("bmv{k}b"),
        format!("berth-mv-{k}"),
    );
    let ip = |args: &[&str]| {
        let o = Command::new("ip").args(args).output().unwrap();
        assert!(
            o.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    struct Cleanup(String, String);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = Command::new("ip").args(["link", "del", &self.0]).status();
            let _ = Command::new("ip").args(["netns", "del", &self.1]).status();
        }
    }
    ip(&["netns", "add", &ns]);
    let _cleanup = Cleanup(parent.clone(), ns.clone());
    ip(&[
        "link", "add", &parent, "type", "veth", "peer", "name", &peer, "netns", &ns,
    ]);
    ip(&["link", "set", &parent, "up"]);
    let n8 = (std::process::id() % 250) as u8;
    ip(&[
        "-n",
        &ns,
        "addr",
        "add",
        &format!("10.95.{n8}.200/24"),
        "dev",
        &peer,
    ]);
    ip(&["-n", &ns, "link", "set", &peer, "up"]);
    let state = tempfile::tempdir().unwrap();
    let n = Network {
        name: format!("mv-{k}"),
        gateway: Ipv4Addr::new(10, 95, n8, 1),
        prefix: 24,
        state_dir: state.path().to_path_buf(),
        parent: Some(parent.clone()),
        ..Network::default()
    };
    let fx = Fixture::new();
    let (c, pid, addr) = sleeper(&fx, &n, &[], vec![]);
    assert_eq!(addr, Ipv4Addr::new(10, 95, n8, 2));
    let (ok, out) = in_net(pid, &format!("ping -c 1 -W 2 10.95.{n8}.200"));
    assert!(ok && out.contains("1 packets received"), "{out}");
    c.delete(true).unwrap();
    net::disconnect(&n, &tag(&fx)).unwrap();
    net::remove(&n).unwrap();
    assert!(std::fs::read_dir(state.path())
        .unwrap()
        .flatten()
        .all(|e| e.file_name() == "lock"));
}

#[test]
fn root_removed_network_leaves_nothing() {
    let t = TestNet::new(3, false);
    let n = t.net.clone();
    for _ in 0..3 {
        let fx = Fixture::new();
        let (c, _, _) = sleeper(
            &fx,
            &n,
            &["x"],
            vec![PortMapping {
                host_ip: Some(Ipv4Addr::LOCALHOST.into()),
                host_port: 0,
                container_port: 80,
                protocol: Protocol::Udp,
            }],
        );
        c.delete(true).unwrap();
        net::disconnect(&n, &tag(&fx)).unwrap();
    }
    let dns_pid: Option<i32> = std::fs::read_to_string(n.state_dir.join(format!("{}.dns", n.name)))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    net::remove(&n).unwrap();
    assert!(!std::path::Path::new("/sys/class/net")
        .join(&n.name)
        .exists());
    assert_eq!(rules_naming(&n.name), Vec::<String>::new());
    assert_eq!(rules_naming(&n.subnet()), Vec::<String>::new());
    if let Some(p) = dns_pid {
        assert!(!alive(p), "the resolver {p} outlived its network");
    }
    let left: Vec<String> = std::fs::read_dir(&n.state_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|f| f != "lock")
        .collect();
    assert_eq!(left, Vec::<String>::new());
}

/// The resolver's pid is in its lock file when `connect` returns, so a teardown right after
/// (a `run --rm` of `true`) stops it. Before, a `stop` that came first found no pid and
/// waited, under the host-wide lock, for a resolver it could not name, which waits for that
/// same lock once idle: every berth on the host hung.
#[test]
fn root_resolver_is_named_at_once_and_stopped_right_after() {
    let t = TestNet::new(4, false);
    let n = t.net.clone();
    let lock = n.state_dir.join(format!("{}.dns", n.name));
    for _ in 0..10 {
        let fx = Fixture::new();
        let c = fx.create(fx.spec(&["sleep", "60"]));
        let pid = c.state().unwrap().pid.unwrap();
        let endpoint = Endpoint {
            tag: tag(&fx),
            pid,
            interface: "eth0".into(),
            names: vec!["x".into()],
            ..Endpoint::default()
        };
        net::connect_endpoint(&n, &endpoint).expect("connect");
        let text = std::fs::read_to_string(&lock).unwrap();
        let resolver: i32 = text
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no resolver pid in {}: {text:?}", lock.display()));
        assert!(alive(resolver));
        c.delete(true).unwrap();
        net::disconnect(&n, &tag(&fx)).unwrap();
        assert!(
            !alive(resolver),
            "the resolver {resolver} outlived its network"
        );
    }
}
