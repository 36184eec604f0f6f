//! Published ports (`-p`, `-P`) through the command line, as root on a real kernel: which
//! host address and port a container may take beside the others and the host's processes,
//! with the words a private dockerd (20.10, its proxy binding each port) answers with. Host
//! addresses are 127.0.0.0/8 and unique local IPv6 addresses on a veth pair of the
//! test's own. Fails without root.

use std::process::Command;

use crate::root_containers::{eventually, http_get, setup, shared, Root};
use crate::util::{free_port, run};

/// Starts `name` serving `name\n` over HTTP on its port 80, published with `publish`.
fn serve(b: &Root, name: &str, network: &str, publish: &[&str]) {
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
fn refused(b: &Root, network: &str, publish: &str, message: &str) {
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
    fn new() -> HostLink {
        let k = std::process::id() & 0xffff;
        let d = HostLink {
            name: format!("bpd{k:x}a"),
            prefix: format!("fd44:{k:x}::"),
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
    let b = setup();
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
    let d = HostLink::new();
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
