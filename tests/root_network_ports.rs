//! Published ports (`-p`, `-P`) through the command line, as root on a real kernel: which
//! host address and port a container may take beside the others and the host's processes,
//! with the words a private dockerd (20.10, its proxy binding each port) answers with. Host
//! addresses are 127.0.0.0/8 and unique local IPv6 addresses on a veth pair of the
//! test's own. Fails without root.

use std::process::Command;

use crate::root_containers::{eventually, http_get, inspect, shared};
use crate::root_network::nets;
use crate::util::{free_port, run, Berth};
use serde_json::json;

/// Starts `name` serving `name\n` over HTTP on its port 80, published with `publish`.
fn serve(b: &Berth, name: &str, network: &str, publish: &[&str]) {
    let mut args = vec!["run", "-d", "--name", name, "--network", network];
    for p in publish {
        args.extend(["-p", p]);
    }
    let script = format!(
        "mkdir -p /w && echo {name} > /w/index.html && httpd -p 80 -h /w && exec sleep 120"
    );
    args.extend(["bb", "sh", "-c", &script]);
    b.ok(&args);
}

/// Asserts that `run -p PUBLISH…` (a `-p` for each word) fails with docker's status and
/// exactly `message` after berth's prefix.
fn refused(b: &Berth, network: &str, publish: &str, message: &str) {
    let mut args = vec!["run", "--rm", "--network", network];
    for p in publish.split_whitespace() {
        args.extend(["-p", p]);
    }
    args.extend(["bb", "true"]);
    let o = b.cmd(&args).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(125), "-p {publish}: {err}");
    assert_eq!(err, format!("berth: {message}\n"), "-p {publish}");
}

/// A veth pair of the test's own, one end with two unique local IPv6 addresses, gone when
/// dropped.
struct HostLink {
    name: String,
    prefix: String,
}

impl HostLink {
    /// The link `bp<tag><pid>a`, its addresses `fd<tag>:<pid>::1` and `::2` (`tag` two hex
    /// digits, one per test).
    fn new(tag: &str) -> HostLink {
        let k = std::process::id() & 0xffff;
        let d = HostLink {
            name: format!("bp{tag}{k:x}a"),
            prefix: format!("fd{tag}:{k:x}::"),
        };
        let ip = |args: &[&str]| run(Command::new("ip").args(args));
        let peer = format!("{}b", d.name);
        ip(&[
            "link", "add", &d.name, "type", "veth", "peer", "name", &peer,
        ]);
        ip(&["link", "set", &peer, "up"]);
        for host in ["1", "2"] {
            let a = format!("{}{host}/64", d.prefix);
            ip(&["addr", "add", &a, "dev", &d.name, "nodad"]);
        }
        ip(&["link", "set", &d.name, "up"]);
        d
    }
}

impl Drop for HostLink {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.name])
            .status();
    }
}

#[test]
fn root_published_ports_are_held_per_host_address() {
    let _host = shared();
    // Its containers, then its networks, go when it ends, passed or not.
    let b = nets();
    // Two IPv4 loopback addresses hold one port side by side, each answered by its own
    // container; the same address again is the allocator's refusal, all of the IPv4
    // addresses the proxy's bind failure (and the other way round).
    let p = free_port();
    serve(&b, "a1", "bridge", &[&format!("127.0.0.1:{p}:80")]);
    serve(&b, "a2", "bridge", &[&format!("127.0.0.2:{p}:80")]);
    for (addr, name) in [("127.0.0.1", "a1"), ("127.0.0.2", "a2")] {
        eventually(&format!("{name} at {addr}:{p}"), || {
            http_get(&format!("{addr}:{p}"), "/index.html") == Some(format!("{name}\n"))
        });
    }
    refused(
        &b,
        "bridge",
        &format!("127.0.0.1:{p}:80"),
        &format!("Bind for 127.0.0.1:{p} failed: port is already allocated"),
    );
    refused(
        &b,
        "bridge",
        &format!("{p}:80"),
        &format!(
            "Error starting userland proxy: listen tcp4 0.0.0.0:{p}: bind: address already in use"
        ),
    );
    let q = free_port();
    serve(
        &b,
        "a3",
        "bridge",
        &[&format!("{q}:80"), &format!("{q}:80/udp")],
    );
    refused(
        &b,
        "bridge",
        &format!("127.0.0.3:{q}:81/udp"),
        &format!(
            "Error starting userland proxy: listen udp4 127.0.0.3:{q}: bind: address already in \
             use"
        ),
    );
    // Two of one container clash as two containers' would.
    let r = free_port();
    refused(
        &b,
        "bridge",
        &format!("127.0.0.1:{r}:80 127.0.0.1:{r}:81"),
        &format!("Bind for 127.0.0.1:{r} failed: port is already allocated"),
    );
    // A host process's port: the proxy's bind failure, on the address asked for.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = listener.local_addr().unwrap().port();
    refused(
        &b,
        "bridge",
        &format!("127.0.0.1:{busy}:80"),
        &format!(
            "Error starting userland proxy: listen tcp4 127.0.0.1:{busy}: bind: address already \
             in use"
        ),
    );
    refused(
        &b,
        "bridge",
        &format!("{busy}:80"),
        &format!(
            "Error starting userland proxy: listen tcp4 0.0.0.0:{busy}: bind: address already in \
             use"
        ),
    );
    drop(listener);

    // The same over IPv6: two host addresses side by side, `[::]` refused beside them, and
    // the IPv4 port free beside the IPv6 one.
    let d = HostLink::new("44");
    b.ok(&["network", "create", "--ipv6", "ports6"]);
    let (h1, h2) = (format!("{}1", d.prefix), format!("{}2", d.prefix));
    let s = free_port();
    serve(&b, "b1", "ports6", &[&format!("[{h1}]:{s}:80")]);
    serve(&b, "b2", "ports6", &[&format!("[{h2}]:{s}:80")]);
    for (addr, name) in [(&h1, "b1"), (&h2, "b2")] {
        eventually(&format!("{name} at [{addr}]:{s}"), || {
            http_get(&format!("[{addr}]:{s}"), "/index.html") == Some(format!("{name}\n"))
        });
    }
    refused(
        &b,
        "ports6",
        &format!("[{h1}]:{s}:80"),
        &format!("Bind for {h1}:{s} failed: port is already allocated"),
    );
    refused(
        &b,
        "ports6",
        &format!("[::]:{s}:80"),
        &format!(
            "Error starting userland proxy: listen tcp6 [::]:{s}: bind: address already in use"
        ),
    );
    serve(&b, "b3", "ports6", &[&format!("0.0.0.0:{s}:80")]);
    eventually(&format!("b3 at 127.0.0.1:{s}"), || {
        http_get(&format!("127.0.0.1:{s}"), "/index.html").as_deref() == Some("b3\n")
    });

    // Once a container is gone, its address and port are free again; the others' are not.
    b.ok(&["rm", "-f", "a1", "b1"]);
    serve(&b, "a4", "bridge", &[&format!("127.0.0.1:{p}:80")]);
    serve(&b, "b4", "ports6", &[&format!("[{h1}]:{s}:80")]);
    refused(
        &b,
        "bridge",
        &format!("127.0.0.2:{p}:80"),
        &format!("Bind for 127.0.0.2:{p} failed: port is already allocated"),
    );
    b.ok(&["rm", "-f", "a2", "a3", "a4", "b2", "b3", "b4"]);
    b.ok(&["network", "rm", "ports6"]);
}

/// `n` consecutive free ports (free_port walks its range one port a call; another test's
/// call in between breaks a run, and the next try starts after it).
fn free_run(n: u16) -> u16 {
    for _ in 0..50 {
        let first = free_port();
        if (1..n).all(|i| free_port() == first + i) {
            return first;
        }
    }
    panic!("no {n} consecutive free ports");
}

/// `ps`'s PORTS column and `port`'s lines as docker's CLI writes them for the same `-p` sets
/// (checked against docker 28's CLI over a private dockerd with IPv6): sorted, consecutive
/// ports merged into ranges per host address and protocol, IPv4 before `[::]`, exposed ports
/// without a host side; `port` in natural order; `inspect`'s exposed ports `null`.
#[test]
fn root_published_ports_are_listed_as_docker_lists_them() {
    let _host = shared();
    // Its containers, then its networks, go when it ends, passed or not.
    let b = nets();
    let tar = b.dir.path().join("rootfs.tar");
    let tar = tar.to_str().unwrap();
    b.ok(&[
        "import",
        "-c",
        "EXPOSE 80/tcp",
        "-c",
        "EXPOSE 53/udp",
        tar,
        "bbx:ports",
    ]);
    b.ok(&["network", "create", "--ipv6", "ports46"]);
    let sleeper = |name: &str, flags: &[String]| {
        let mut args = vec!["run", "-d", "--name", name, "--network", "ports46"];
        args.extend(flags.iter().map(String::as_str));
        args.extend(["bbx:ports", "sleep", "120"]);
        b.ok(&args);
    };
    let ps = |name: &str| {
        b.ok(&[
            "ps",
            "-a",
            "-f",
            &format!("name={name}"),
            "--format",
            "{{.Ports}}",
        ])
    };

    let a = free_run(3);
    let (a1, a2) = (a + 1, a + 2);
    sleeper("r1", &["-p".into(), format!("{a}-{a2}:{a}-{a2}")]);
    assert_eq!(
        ps("r1"),
        format!("53/udp, 80/tcp, 0.0.0.0:{a}-{a2}->{a}-{a2}/tcp, [::]:{a}-{a2}->{a}-{a2}/tcp\n")
    );
    let mut lines = String::new();
    for p in [a, a1, a2] {
        lines += &format!("{p}/tcp -> 0.0.0.0:{p}\n{p}/tcp -> [::]:{p}\n");
    }
    assert_eq!(b.ok(&["port", "r1"]), lines);

    let c = free_run(4);
    let (c1, c2, c3) = (c + 1, c + 2, c + 3);
    let flags: Vec<String> = [
        format!("{c}:{c}"),
        format!("{c2}:{c2}"),
        format!("{c1}:{c1}/udp"),
        format!("{c1}:{c1}"),
        format!("127.0.0.1:{c3}:80"),
    ]
    .into_iter()
    .flat_map(|p| ["-p".to_string(), p])
    .chain(["--expose".into(), "9000-9002".into()])
    .collect();
    sleeper("r2", &flags);
    assert_eq!(
        ps("r2"),
        format!(
            "53/udp, 9000-9002/tcp, 0.0.0.0:{c}-{c2}->{c}-{c2}/tcp, [::]:{c}-{c2}->{c}-{c2}/tcp, \
             0.0.0.0:{c1}->{c1}/udp, [::]:{c1}->{c1}/udp, 127.0.0.1:{c3}->80/tcp\n"
        )
    );
    assert_eq!(
        b.ok(&["port", "r2"]),
        format!(
            "80/tcp -> 127.0.0.1:{c3}\n\
             {c}/tcp -> 0.0.0.0:{c}\n{c}/tcp -> [::]:{c}\n\
             {c1}/tcp -> 0.0.0.0:{c1}\n{c1}/tcp -> [::]:{c1}\n\
             {c1}/udp -> 0.0.0.0:{c1}\n{c1}/udp -> [::]:{c1}\n\
             {c2}/tcp -> 0.0.0.0:{c2}\n{c2}/tcp -> [::]:{c2}\n"
        )
    );
    assert_eq!(
        b.ok(&["port", "r2", &format!("{c1}/udp")]),
        format!("0.0.0.0:{c1}\n[::]:{c1}\n")
    );
    let ports = &inspect(&b, "r2")["NetworkSettings"]["Ports"];
    for exposed in ["53/udp", "9000/tcp", "9001/tcp", "9002/tcp"] {
        assert_eq!(ports[exposed], json!(null), "{exposed}: {ports}");
    }
    assert_eq!(
        ports["80/tcp"],
        json!([{"HostIp": "127.0.0.1", "HostPort": c3.to_string()}])
    );

    // A container that does not run lists no port, as docker's.
    b.ok(&["stop", "-t", "0", "r1"]);
    assert_eq!(ps("r1"), "\n");
    b.ok(&["rm", "-f", "r1", "r2"]);
    b.ok(&["network", "rm", "ports46"]);
}
