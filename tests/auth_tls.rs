//! `berth serve` over TLS, proven with real peers: one port serves TLS to everyone and plain
//! HTTP to loopback peers only (curl, ctr `--plain-http`, and curl from an address of a network
//! namespace of the test's own, which gets a 400); SIGHUP swaps the certificate for new
//! connections while an open one keeps working (openssl `s_client` and a rustls client);
//! berth's own client finds a registry's CA in a docker-style certs.d directory; podman and
//! ctr push and pull over TLS with the test CA.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};

use crate::auth::{podman_push_pull, Ctr, Mode, Secured, MODES};
use crate::registry::busybox_rootfs_tar;
use crate::util::{self, base64_encode, require, run_with_input, Berth, NetNs, Podman, TestCa};

/// What curl got: the status (0 when there was no HTTP answer), the whole answer as received
/// (`-i`: head and body), curl's stderr and its exit code.
struct Curl {
    status: u16,
    raw: String,
    err: String,
    code: i32,
}

fn curl(netns: Option<&NetNs>, args: &[&str]) -> Curl {
    let mut cmd = match netns {
        Some(ns) => ns.exec(require("curl")),
        None => Command::new(require("curl")),
    };
    cmd.args(["-sS", "-i", "--max-time", "60", "--noproxy", "*"])
        .args(args);
    let out = run_with_input(&mut cmd, None, util::PEER_TIMEOUT);
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = raw
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Curl {
        status,
        raw,
        err: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code().unwrap_or(-1),
    }
}

fn header<'a>(raw: &'a str, name: &str) -> Option<&'a str> {
    raw.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim_end_matches('\r').trim())
    })
}

fn port_of(addr: &str) -> &str {
    addr.rsplit_once(':').unwrap().1
}

/// TLS on the port for a client that trusts the test CA, plain HTTP on the same port for
/// loopback clients (curl, and ctr with `--plain-http`, Basic and token auth alike, the token
/// realm following the scheme the client used), and a client that sends nothing holds up
/// nobody.
#[test]
fn plain_http_stays_open_to_loopback_clients_beside_tls() {
    let ca = TestCa::new(&["127.0.0.1"]);
    let cacert = ca.ca.to_str().unwrap();
    let ctr = Ctr::start();
    for mode in MODES {
        let s = Secured::start(mode, Some(&ca));
        let addr = s.addr().to_string();
        // A client that connects and says nothing: everyone else is still served.
        let silent = TcpStream::connect(&addr).unwrap();

        let https = format!("https://{addr}/v2/");
        let r = curl(None, &["--cacert", cacert, "-u", "alice:alice-pw", &https]);
        assert_eq!(r.status, 200, "{mode:?} https: {} {}", r.raw, r.err);
        let r = curl(None, &["-u", "alice:alice-pw", &https]);
        assert_eq!(r.code, 60, "{mode:?}: curl without the CA: {}", r.err);
        assert!(r.err.contains("certificate"), "{mode:?}: {}", r.err);

        let http = format!("http://{addr}/v2/");
        let r = curl(None, &["-u", "alice:alice-pw", &http]);
        assert_eq!(r.status, 200, "{mode:?} http: {} {}", r.raw, r.err);
        let r = curl(None, &["-u", "alice:nope", &http]);
        assert_eq!(r.status, 401, "{mode:?}: {}", r.raw);
        assert!(r.raw.contains("UNAUTHORIZED"), "{mode:?}: {}", r.raw);

        // The token realm names the scheme the client came with.
        if mode == Mode::Token {
            let plain = curl(None, &[&http]);
            let challenge = header(&plain.raw, "www-authenticate").unwrap().to_string();
            assert!(
                challenge.contains(&format!("realm=\"http://{addr}/token\"")),
                "{challenge}"
            );
            let tls = curl(None, &["--cacert", cacert, &https]);
            let challenge = header(&tls.raw, "www-authenticate").unwrap().to_string();
            assert!(
                challenge.contains(&format!("realm=\"https://{addr}/token\"")),
                "{challenge}"
            );
        }

        // ctr speaks plain HTTP to the TLS port from loopback: push as alice, pull as bob.
        let base = format!("{addr}/team/plain");
        ctr.push_pull(&base, &["--plain-http"], mode);
        drop(silent);
        s.assert_log_keeps_secrets(&["alice-pw", "bob-pw"]);
    }
    // Auth without TLS on loopback is fine: no warning.
    let s = Secured::start(Mode::Basic, None);
    let log = s.reg.stderr.all().join("\n");
    assert!(!log.contains("in clear"), "{log}");
}

/// From an address that is not loopback (one of a network namespace of the test's own), plain
/// HTTP gets a 400 telling it to use https and nothing else, while TLS and loopback plain HTTP
/// keep working on the same port. Auth without TLS on such an address warns at start-up.
/// Needs root (the namespace).
#[test]
fn plain_http_from_another_address_gets_400_as_root() {
    let ns = NetNs::new("10.88.6.1");
    let ca = TestCa::new(&["10.88.6.1", "127.0.0.1"]);
    let cacert = ca.ca.to_str().unwrap();
    let s = Secured::start_in(Mode::Basic, Some(&ca), Some(&ns), "0.0.0.0:0");
    let port = port_of(s.addr()).to_string();

    let as_alice = |url: String, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(["-u", "alice:alice-pw", &url]);
        curl(Some(&ns), &args)
    };
    let r = as_alice(format!("http://10.88.6.1:{port}/v2/"), &[]);
    assert_eq!(r.status, 400, "{} {}", r.raw, r.err);
    let (head, body) = r.raw.split_once("\r\n\r\n").unwrap();
    assert_eq!(body, "Client sent an HTTP request to an HTTPS server.\n");
    assert!(head.to_lowercase().contains("connection: close"), "{head}");
    assert!(header(&r.raw, "www-authenticate").is_none(), "{head}");
    assert_eq!(r.code, 0, "{}", r.err);

    let r = as_alice(
        format!("https://10.88.6.1:{port}/v2/"),
        &["--cacert", cacert],
    );
    assert_eq!(r.status, 200, "{} {}", r.raw, r.err);
    let r = as_alice(format!("http://127.0.0.1:{port}/v2/"), &[]);
    assert_eq!(r.status, 200, "{} {}", r.raw, r.err);
    s.assert_log_keeps_secrets(&["alice-pw"]);

    let clear = Secured::start_in(Mode::Basic, None, Some(&ns), "10.88.6.1:0");
    clear.reg.stderr.wait_for(
        "passwords and tokens will cross the network in clear",
        Duration::from_secs(60),
    );
    let log = clear.reg.stderr.all().join("\n");
    assert!(
        log.contains("WARN") && log.contains("without [tls]"),
        "{log}"
    );
}

/// A rustls client that trusts `ca`, connected to `addr` (an IP address and port).
fn tls_connect(addr: &str, ca: &Path) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let host = addr.rsplit_once(':').unwrap().0.to_string();
    let name = ServerName::try_from(host).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut stream = rustls::StreamOwned::new(conn, sock);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    stream
}

/// One keep-alive HTTP/1.1 request on an open stream: the status and the body.
fn exchange(
    stream: &mut (impl Read + Write),
    addr: &str,
    path: &str,
    auth: &str,
) -> (u16, Vec<u8>) {
    let auth = base64_encode(auth.as_bytes());
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Basic {auth}\r\n\r\n"
    )
    .unwrap();
    stream.flush().unwrap();
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "connection closed");
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let len: usize = header(&head, "content-length").unwrap().parse().unwrap();
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).unwrap();
    (status, body)
}

/// The certificate a new connection is served, as `openssl s_client` sees it, verified
/// against `ca`; `None` when the verification fails.
fn served_certificate(addr: &str, ca: &Path) -> Option<Vec<u8>> {
    let out = run_with_input(
        Command::new(require("openssl")).args([
            "s_client",
            "-connect",
            addr,
            "-CAfile",
            ca.to_str().unwrap(),
            "-verify_return_error",
        ]),
        None,
        util::PEER_TIMEOUT,
    );
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let start = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
    Some(
        CertificateDer::from_pem_slice(text[start..end].as_bytes())
            .unwrap()
            .to_vec(),
    )
}

fn der_of(pem_file: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(pem_file).unwrap().to_vec()
}

/// SIGHUP reads the certificate and key again: a new connection is served certificate B (of a
/// second CA) while a connection opened under certificate A goes on answering requests; broken
/// files keep B and say so on one line.
#[test]
fn sighup_reloads_the_certificate_and_keeps_open_connections() {
    let a = TestCa::new(&["127.0.0.1"]);
    let b = TestCa::new(&["127.0.0.1"]);
    let cert_a = der_of(&a.cert);
    let cert_b = der_of(&b.cert);
    // The registry reads a's files; the test rewrites them in place.
    let s = Secured::start(Mode::Basic, Some(&a));
    let addr = s.addr().to_string();
    assert_eq!(served_certificate(&addr, &a.ca), Some(cert_a.clone()));

    let mut open = tls_connect(&addr, &a.ca);
    assert_eq!(
        open.conn.peer_certificates().unwrap()[0].to_vec(),
        cert_a,
        "the first connection has certificate A"
    );
    let (status, _) = exchange(&mut open, &addr, "/v2/", "alice:alice-pw");
    assert_eq!(status, 200);

    std::fs::copy(&b.cert, &a.cert).unwrap();
    std::fs::copy(&b.key, &a.key).unwrap();
    s.reg.signal(libc::SIGHUP);
    s.reg
        .stderr
        .wait_for("TLS certificate reloaded", Duration::from_secs(60));
    assert_eq!(
        served_certificate(&addr, &b.ca),
        Some(cert_b.clone()),
        "a new connection has certificate B"
    );
    assert_eq!(
        served_certificate(&addr, &a.ca),
        None,
        "A's CA no longer fits"
    );
    let (status, body) = exchange(
        &mut open,
        &addr,
        "/v2/team/none/tags/list",
        "alice:alice-pw",
    );
    assert_eq!(status, 404, "the connection opened under A still answers");
    assert!(String::from_utf8_lossy(&body).contains("NAME_UNKNOWN"));

    // Broken files: the reload fails, says why once, and B stays.
    std::fs::write(&a.cert, "not a certificate\n").unwrap();
    s.reg.signal(libc::SIGHUP);
    s.reg
        .stderr
        .wait_for("TLS certificate not reloaded", Duration::from_secs(60));
    let errors: Vec<String> = s
        .reg
        .stderr
        .all()
        .into_iter()
        .filter(|l| l.contains("not reloaded"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains("ERROR") && errors[0].contains(a.cert.to_str().unwrap()),
        "{}",
        errors[0]
    );
    assert_eq!(served_certificate(&addr, &b.ca), Some(cert_b));
    let (status, _) = exchange(&mut open, &addr, "/v2/", "alice:alice-pw");
    assert_eq!(status, 200);
}

/// berth's client finds a registry's CA in a certs.d directory, berth's own (beside its
/// config file) or docker's (`$BERTH_CERTS_D` for the test): login, push and pull over TLS with
/// Basic and token auth. Without the CA: one line naming the certificate problem and where
/// the CA goes, a non-zero exit and nothing stored. The registry is at an address of a network
/// namespace of the test's own, where berth verifies certificates (on loopback it would not,
/// as docker does not); needs root.
#[test]
fn berth_finds_the_registry_ca_in_certs_d_as_root() {
    let ns = NetNs::new("10.88.7.1");
    let ca = TestCa::new(&["10.88.7.1"]);
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs_tar(work.path());
    for mode in MODES {
        let s = Secured::start_in(mode, Some(&ca), Some(&ns), "10.88.7.1:0");
        let addr = s.addr().to_string();
        let berth = Berth::new();
        let docker_certs = tempfile::tempdir().unwrap();
        let run = |args: &[&str], input: &str| {
            let mut cmd = berth.cmd_in(Some(&ns), args);
            cmd.env_remove("SSL_CERT_FILE")
                .env_remove("SSL_CERT_DIR")
                .env("BERTH_CERTS_D", docker_certs.path());
            run_with_input(&mut cmd, Some(input.as_bytes()), util::PEER_TIMEOUT)
        };
        let login = ["login", "-u", "alice", "--password-stdin", &addr];

        let out = run(&login, "alice-pw");
        assert!(!out.status.success(), "{mode:?}: an unknown CA is refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{mode:?}: {err}");
        let own_dir = berth.dir.path().join("certs.d").join(&addr);
        assert!(
            err.contains("certificate")
                && err.contains(&own_dir.join("ca.crt").display().to_string()),
            "{mode:?}: {err}"
        );
        assert!(!berth.dir.path().join("docker/config.json").exists());

        // Basic: berth's own certs.d; Token: docker's.
        let dir = match mode {
            Mode::Basic => own_dir,
            Mode::Token => docker_certs.path().join(&addr),
        };
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&ca.ca, dir.join("ca.crt")).unwrap();
        let out = run(&login, "alice-pw");
        assert!(
            out.status.success(),
            "{mode:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let image = format!("{addr}/team/certs:1");
        let out = run(&["import", tar.to_str().unwrap(), &image], "");
        assert!(out.status.success());
        let out = run(&["push", &image], "");
        assert!(
            out.status.success(),
            "{mode:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(run(&["rmi", &image], "").status.success());
        let out = run(&["pull", &image], "");
        assert!(
            out.status.success(),
            "{mode:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );

        // A client certificate without its key is an error that names the file.
        std::fs::write(dir.join("client.cert"), "").unwrap();
        let out = run(&["pull", &image], "");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{mode:?}: {err}");
        assert!(
            err.contains("client.cert") && err.contains("without its key"),
            "{mode:?}: {err}"
        );
        s.assert_log_keeps_secrets(&["alice-pw"]);
    }
}

/// podman (`--cert-dir`) and ctr (`--tlscacert`) push and pull over TLS with the test CA, with
/// Basic and token auth.
#[test]
fn podman_and_ctr_push_and_pull_over_tls_with_a_test_ca() {
    let ca = TestCa::new(&["127.0.0.1"]);
    let certs = tempfile::tempdir().unwrap();
    std::fs::copy(&ca.ca, certs.path().join("ca.crt")).unwrap();
    let cert_dir = certs.path().to_str().unwrap();
    let podman = Podman::new();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs_tar(work.path());
    podman.run(&["import", tar.to_str().unwrap(), "localhost/e2e-base:1"]);
    let ctr = Ctr::start();
    for mode in MODES {
        let s = Secured::start(mode, Some(&ca));
        let remote = format!("{}/team/pm-tls:1", s.addr());
        let push = |dir: &str| {
            run_with_input(
                &mut podman.command(&[
                    "push",
                    "--cert-dir",
                    dir,
                    "--creds",
                    "alice:alice-pw",
                    "localhost/e2e-base:1",
                    &format!("docker://{remote}"),
                ]),
                None,
                util::PEER_TIMEOUT,
            )
        };
        let empty = tempfile::tempdir().unwrap();
        let out = push(empty.path().to_str().unwrap());
        assert!(!out.status.success(), "{mode:?}: podman without the CA");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("certificate") || err.contains("x509"),
            "{mode:?}: {err}"
        );
        podman_push_pull(&podman, &remote, &["--cert-dir", cert_dir]);

        let base = format!("{}/team/ct-tls", s.addr());
        let cacert = ca.ca.to_str().unwrap();
        ctr.push_pull(&base, &["--tlscacert", cacert], mode);
        s.assert_log_keeps_secrets(&["alice-pw", "bob-pw"]);
    }
}

/// A client certificate in certs.d (`client.cert` with `client.key`) is presented to a server
/// that demands one: `openssl s_server -Verify` refuses the handshake without it, and answers
/// with it. On loopback, as docker does, berth does not verify the server's certificate.
#[test]
fn berth_presents_the_client_certificate_of_certs_d() {
    let ca = TestCa::new(&["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("client.cert"),
        dir.path().join("client.key"),
    );
    let out = run_with_input(
        Command::new(require("openssl")).args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=berth-client",
            "-keyout",
            key.to_str().unwrap(),
            "-out",
            cert.to_str().unwrap(),
        ]),
        None,
        util::PEER_TIMEOUT,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = util::free_port();
    let server_log = tempfile::NamedTempFile::new().unwrap();
    let mut server = Command::new(require("openssl"))
        .args(["s_server", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&ca.cert)
        .arg("-key")
        .arg(&ca.key)
        .args(["-Verify", "1", "-verify_return_error", "-CAfile"])
        .arg(&cert)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(server_log.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "s_server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let host = format!("127.0.0.1:{port}");
    let berth = Berth::new();
    let login = |berth: &Berth| {
        run_with_input(
            &mut berth.cmd(&["login", "-u", "alice", "--password-stdin", &host]),
            Some(b"alice-pw"),
            util::PEER_TIMEOUT,
        )
    };
    let refused = login(&berth);
    // Refused for the missing certificate, not for anything else. s_server logs it after it
    // sent its alert: berth may have failed and the test come here before the line is written.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let said = std::fs::read_to_string(server_log.path()).unwrap();
        if said.contains("peer did not return a certificate") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "s_server: {said}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let certs = berth.dir.path().join("certs.d").join(&host);
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::copy(&cert, certs.join("client.cert")).unwrap();
    std::fs::copy(&key, certs.join("client.key")).unwrap();
    let accepted = login(&berth);
    let _ = server.kill();
    let _ = server.wait();
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains(&host),
        "no client certificate, no answer: {err}"
    );
    assert!(
        accepted.status.success(),
        "{}",
        String::from_utf8_lossy(&accepted.stderr)
    );
    assert!(String::from_utf8_lossy(&accepted.stdout).contains("Login Succeeded"));
}
