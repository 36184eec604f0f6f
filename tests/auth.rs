//! `berth serve` with access control, proven with real clients: docker (`docker login`, push,
//! pull), podman and skopeo (`--creds`), containerd's `ctr` (`--user`) and berth's own
//! `login`/`push`/`pull`, each with Basic auth and with tokens from berth's token service;
//! over TLS with a test CA for skopeo and for docker (the latter in a network namespace of the
//! test's own, so that docker does not treat the registry as a loopback one and skip the
//! certificate check: it needs root). The registry's log names users and repositories and never
//! a password or a token.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::registry::busybox_rootfs_tar;
use crate::util::{
    self, oci_image, require, run_ok, run_with_input, Berth, Containerd, Dockerd, NetNs, Podman,
    Registry, Storage, TestCa,
};

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mode {
    Basic,
    Token,
}

pub(crate) const MODES: [Mode; 2] = [Mode::Basic, Mode::Token];

/// How the registry refuses a request.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Answer {
    /// 401 UNAUTHORIZED: the password (at the endpoint or at the token service) is wrong.
    WrongPassword,
    /// 401 UNAUTHORIZED with a challenge: an anonymous caller may have more rights signed in.
    SignInFirst,
    /// 403 DENIED: a signed-in user lacks the right.
    Denied,
}

/// A registry with two users: alice may pull and push `team/*`, bob may only pull it.
pub(crate) struct Secured {
    pub(crate) reg: Registry,
    _storage: Storage,
    _dir: tempfile::TempDir,
}

impl Secured {
    pub(crate) fn start(mode: Mode, tls: Option<&TestCa>) -> Secured {
        Secured::start_in(mode, tls, None, "127.0.0.1:0")
    }

    pub(crate) fn start_in(
        mode: Mode,
        tls: Option<&TestCa>,
        netns: Option<&NetNs>,
        listen: &str,
    ) -> Secured {
        let dir = tempfile::tempdir().unwrap();
        let mut htpasswd = String::new();
        for (user, pw) in [("alice", "alice-pw"), ("bob", "bob-pw")] {
            let out = run_ok(Command::new(require("htpasswd")).args(["-Bbn", user, pw]));
            htpasswd.push_str(out.trim());
            htpasswd.push('\n');
        }
        let file = dir.path().join("htpasswd");
        std::fs::write(&file, htpasswd).unwrap();
        let mut config = format!(
            "[auth]\nhtpasswd = {file:?}\n[auth.groups]\nteam = [\"alice\", \"bob\"]\n\
             [[auth.rules]]\ngroups = [\"team\"]\nrepositories = [\"team/*\"]\nactions = [\"pull\"]\n\
             [[auth.rules]]\nusers = [\"alice\"]\nrepositories = [\"team/*\"]\nactions = [\"push\", \"delete\"]\n"
        );
        if mode == Mode::Token {
            config.push_str(&format!(
                "[auth.token]\nkey = {:?}\n",
                dir.path().join("token.pem")
            ));
        }
        if let Some(ca) = tls {
            config.push_str(&format!(
                "[tls]\ncert = {:?}\nkey = {:?}\n",
                ca.cert, ca.key
            ));
        }
        let storage = Storage::fs();
        let reg = Registry::start_in(&storage, &config, netns, listen);
        Secured {
            reg,
            _storage: storage,
            _dir: dir,
        }
    }

    pub(crate) fn addr(&self) -> &str {
        &self.reg.addr
    }

    /// Where the registry's log is now: [`Secured::assert_refused`] looks at what comes after.
    pub(crate) fn log_mark(&self) -> usize {
        self.reg.stderr.all().len()
    }

    /// A peer's request was refused as `answer` says: the peer failed, its error output holds
    /// each of `says` (the status, or the spec code and message, as that peer prints them),
    /// and since `mark` the registry logged the refusal of `user` with that status and code.
    pub(crate) fn assert_refused(
        &self,
        mark: usize,
        out: &std::process::Output,
        says: &[&str],
        user: &str,
        answer: Answer,
    ) {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{answer:?} for {user}: the peer succeeded"
        );
        for s in says {
            assert!(err.contains(s), "{answer:?} for {user}: no {s:?} in {err}");
        }
        let (text, status) = match answer {
            Answer::WrongPassword => (
                "wrong user name or password",
                "status=401 code=UNAUTHORIZED",
            ),
            Answer::SignInFirst => ("access denied", "status=401 code=UNAUTHORIZED"),
            Answer::Denied => ("access denied", "status=403 code=DENIED"),
        };
        // The log arrives through a pipe: give its line a moment.
        let who = format!("user={user} ");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.reg.stderr.all();
            if log[mark..]
                .iter()
                .any(|l| l.contains(text) && l.contains(&who) && l.contains(status))
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{answer:?} for {user}: the registry logged no {text:?} with {status}:\n{}",
                log[mark..].join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The registry's log must not hold a secret.
    pub(crate) fn assert_log_keeps_secrets(&self, secrets: &[&str]) {
        let log = self.reg.stderr.all().join("\n");
        for s in secrets {
            assert!(!log.contains(s), "the log shows {s:?}:\n{log}");
        }
    }
}

fn docker(d: &Dockerd, args: &[&str]) -> String {
    run_ok(&mut d.cmd(args))
}

fn docker_out(d: &Dockerd, args: &[&str]) -> std::process::Output {
    run_with_input(&mut d.cmd(args), None, util::PEER_TIMEOUT)
}

fn docker_login(d: &Dockerd, addr: &str, user: &str, password: &str) -> std::process::Output {
    run_with_input(
        &mut d.cmd(&["login", "-u", user, "--password-stdin", addr]),
        Some(password.as_bytes()),
        util::PEER_TIMEOUT,
    )
}

/// docker login, push as alice, pull back, and the refusals: a wrong password, bob pushing,
/// nobody pulling.
fn docker_roundtrip(d: &Dockerd, s: &Secured, mode: Mode, what: &str) {
    let addr = s.addr();
    let mark = s.log_mark();
    let out = docker_login(d, addr, "alice", "wrong-pw");
    // docker shows the token service's body, and of a 401 at /v2/ only the status.
    let says = match mode {
        Mode::Basic => "failed with status: 401 Unauthorized",
        Mode::Token => "unauthorized: incorrect username or password",
    };
    s.assert_refused(mark, &out, &[says], "alice", Answer::WrongPassword);
    let out = docker_login(d, addr, "alice", "alice-pw");
    assert!(out.status.success(), "{what}: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));

    let remote = format!("{addr}/team/app:1");
    docker(d, &["tag", "e2e/base:1", &remote]);
    let pushed = docker(d, &["push", &remote]);
    let digest = pushed
        .split_once("digest: ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{what}: no digest in {pushed}"))
        .to_string();
    // What comes back is the manifest pushed, and the same image.
    let id = |name: &str| docker(d, &["image", "inspect", "--format", "{{.Id}}", name]);
    let base_id = id("e2e/base:1");
    let pull = |who: &str| {
        docker(d, &["rmi", &remote]);
        let pulled = docker(d, &["pull", &remote]);
        assert!(
            pulled.contains(&format!("Digest: {digest}")),
            "{what}: {who} pulled another manifest than {digest}: {pulled}"
        );
        assert_eq!(id(&remote), base_id, "{what}: {who}");
    };
    pull("alice");

    // bob may pull but not push.
    docker(d, &["logout", addr]);
    assert!(docker_login(d, addr, "bob", "bob-pw").status.success());
    pull("bob");
    let other = format!("{addr}/team/bob:1");
    docker(d, &["tag", "e2e/base:1", &other]);
    let mark = s.log_mark();
    s.assert_refused(
        mark,
        &docker_out(d, &["push", &other]),
        &["denied: requested access to the resource is denied"],
        "bob",
        Answer::Denied,
    );

    // Without credentials nothing is served.
    docker(d, &["logout", addr]);
    docker(d, &["rmi", &remote]);
    let mark = s.log_mark();
    let out = docker_out(d, &["pull", &remote]);
    match mode {
        Mode::Token => s.assert_refused(
            mark,
            &out,
            &["unauthorized"],
            "anonymous",
            Answer::SignInFirst,
        ),
        // docker gives up at /v2/'s Basic challenge without asking for the manifest (what
        // the registry answers that request: `anonymous_requests_are_challenged`).
        Mode::Basic => {
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && err.contains("no basic auth credentials"),
                "{what}: {err}"
            );
        }
    }
    docker(d, &["rmi", &other]);
    s.assert_log_keeps_secrets(&["alice-pw", "bob-pw", "wrong-pw"]);
}

#[test]
fn docker_logs_in_pushes_and_pulls_with_basic_auth_and_tokens() {
    let d = Dockerd::start();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs_tar(work.path());
    docker(&d, &["import", tar.to_str().unwrap(), "e2e/base:1"]);
    for mode in MODES {
        let s = Secured::start(mode, None);
        docker_roundtrip(&d, &s, mode, &format!("{mode:?}"));
        anonymous_requests_are_challenged(&s, mode);
        // The log names the user and the repository of a refusal.
        let log = s.reg.stderr.all().join("\n");
        assert!(
            log.contains("bob") && log.contains("team/bob"),
            "{mode:?}: {log}"
        );
    }
}

/// An anonymous manifest GET gets 401 UNAUTHORIZED and the challenge of `mode`.
fn anonymous_requests_are_challenged(s: &Secured, mode: Mode) {
    let r = s.reg.request("GET", "/v2/team/app/manifests/1", &[], b"");
    assert_eq!(r.status, 401, "{mode:?}");
    let scheme = match mode {
        Mode::Basic => "Basic ",
        Mode::Token => "Bearer ",
    };
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.starts_with(scheme)),
        "{mode:?}: {:?}",
        r.headers
    );
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED", "{mode:?}");
}

/// docker over TLS with a test CA: refused until the CA is in docker's certs.d, then login,
/// push and pull work. Runs dockerd and berth in a network namespace of the test's own on
/// 10.88.5.1 (root).
#[test]
fn docker_over_tls_with_a_test_ca_as_root() {
    let ns = NetNs::new("10.88.5.1");
    let ca = TestCa::new(&["10.88.5.1"]);
    let d = Dockerd::start_in(Some(&ns), &[]);
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs_tar(work.path());
    docker(&d, &["import", tar.to_str().unwrap(), "e2e/base:1"]);
    for mode in MODES {
        let s = Secured::start_in(mode, Some(&ca), Some(&ns), "10.88.5.1:0");
        let addr = s.addr().to_string();
        let out = docker_login(&d, &addr, "alice", "alice-pw");
        assert!(!out.status.success(), "{mode:?}: an unknown CA is refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("certificate") || err.contains("x509"),
            "{mode:?}: {err}"
        );
        let certs = d.certs_d().join(&addr);
        std::fs::create_dir_all(&certs).unwrap();
        std::fs::copy(&ca.ca, certs.join("ca.crt")).unwrap();
        docker_roundtrip(&d, &s, mode, &format!("TLS {mode:?}"));
    }
}

fn skopeo(args: &[&str]) -> std::process::Output {
    run_with_input(
        Command::new(require("skopeo")).args(args),
        None,
        util::PEER_TIMEOUT,
    )
}

fn skopeo_ok(args: &[&str]) -> String {
    let out = skopeo(args);
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn skopeo_fails(args: &[&str]) -> String {
    let out = skopeo(args);
    assert!(!out.status.success(), "skopeo {args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn skopeo_copies_with_creds_over_plain_http_and_over_tls_with_a_test_ca() {
    for mode in MODES {
        let s = Secured::start(mode, None);
        skopeo_roundtrip_plain(&s, mode, &format!("plain {mode:?}"));
    }
    let ca = TestCa::new(&["127.0.0.1"]);
    let certs = tempfile::tempdir().unwrap();
    std::fs::copy(&ca.ca, certs.path().join("ca.crt")).unwrap();
    for mode in MODES {
        let s = Secured::start(mode, Some(&ca));
        let layout = tempfile::tempdir().unwrap();
        let image = oci_image(layout.path(), "latest");
        let src = format!("oci:{}:latest", image.layout.display());
        let dest = format!("docker://{}/team/tls:1", s.addr());
        // Without the CA the certificate is refused.
        let err = skopeo_fails(&["copy", "--dest-creds", "alice:alice-pw", &src, &dest]);
        assert!(
            err.contains("certificate") || err.contains("x509"),
            "{mode:?}: {err}"
        );
        let dir = certs.path().to_str().unwrap();
        skopeo_ok(&[
            "copy",
            "--dest-cert-dir",
            dir,
            "--dest-creds",
            "alice:alice-pw",
            &src,
            &dest,
        ]);
        let inspect = skopeo_ok(&["inspect", "--cert-dir", dir, "--creds", "bob:bob-pw", &dest]);
        let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        assert_eq!(v["Digest"], image.manifest_digest().as_str(), "{mode:?}");
        let mark = s.log_mark();
        s.assert_refused(
            mark,
            &skopeo(&[
                "copy",
                "--dest-cert-dir",
                dir,
                "--dest-creds",
                "bob:bob-pw",
                &src,
                &dest,
            ]),
            &["denied: requested access to the resource is denied"],
            "bob",
            Answer::Denied,
        );
        s.assert_log_keeps_secrets(&["alice-pw", "bob-pw"]);
    }
}

/// skopeo copies with `--dest-creds` and inspects with `--creds`; a wrong password, bob pushing
/// and an anonymous inspect are refused.
fn skopeo_roundtrip_plain(s: &Secured, mode: Mode, what: &str) {
    let layout = tempfile::tempdir().unwrap();
    let image = oci_image(layout.path(), "latest");
    let src = format!("oci:{}:latest", image.layout.display());
    let dest = format!("docker://{}/team/sk:1", s.addr());
    let copy = |creds: &str| {
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            "--dest-creds",
            creds,
            &src,
            &dest,
        ])
    };
    let mark = s.log_mark();
    s.assert_refused(
        mark,
        &copy("alice:nope"),
        &["unauthorized"],
        "alice",
        Answer::WrongPassword,
    );
    let mark = s.log_mark();
    s.assert_refused(
        mark,
        &copy("bob:bob-pw"),
        &["denied: requested access to the resource is denied"],
        "bob",
        Answer::Denied,
    );
    let out = copy("alice:alice-pw");
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let inspect = skopeo_ok(&[
        "inspect",
        "--tls-verify=false",
        "--creds",
        "bob:bob-pw",
        &dest,
    ]);
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v["Digest"], image.manifest_digest().as_str(), "{what}");
    // containers/image answers a Basic challenge with empty credentials: a wrong password
    // of nobody.
    let (says, user, answer) = match mode {
        Mode::Basic => (
            "unauthorized: incorrect username or password",
            "",
            Answer::WrongPassword,
        ),
        Mode::Token => ("unauthorized", "anonymous", Answer::SignInFirst),
    };
    let mark = s.log_mark();
    s.assert_refused(
        mark,
        &skopeo(&["inspect", "--tls-verify=false", &dest]),
        &[says],
        user,
        answer,
    );
    s.assert_log_keeps_secrets(&["alice-pw", "bob-pw", "alice:nope"]);
}

#[test]
fn podman_pushes_and_pulls_with_creds() {
    let podman = Podman::new();
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs_tar(work.path());
    podman.run(&["import", tar.to_str().unwrap(), "localhost/e2e-base:1"]);
    for mode in MODES {
        let s = Secured::start(mode, None);
        let remote = format!("{}/team/pm:1", s.addr());
        let push = |creds: &str| {
            run_with_input(
                &mut podman.command(&[
                    "push",
                    "--tls-verify=false",
                    "--creds",
                    creds,
                    "localhost/e2e-base:1",
                    &format!("docker://{remote}"),
                ]),
                None,
                util::PEER_TIMEOUT,
            )
        };
        let mark = s.log_mark();
        let wrong = push("alice:nope");
        let mut says = vec!["unauthorized"];
        if mode == Mode::Token {
            // The token service's body (a HEAD's 401 at the endpoint has none to show).
            says.push("incorrect username or password");
        }
        s.assert_refused(mark, &wrong, &says, "alice", Answer::WrongPassword);
        let mark = s.log_mark();
        s.assert_refused(
            mark,
            &push("bob:bob-pw"),
            &["denied: requested access to the resource is denied"],
            "bob",
            Answer::Denied,
        );
        podman_push_pull(&podman, &remote, &["--tls-verify=false"]);
        s.assert_log_keeps_secrets(&["alice-pw", "bob-pw"]);
    }
}

/// podman pushes `localhost/e2e-base:1` to `remote` as alice and pulls it back as bob, with
/// `flags` (how to reach the registry): bob gets the manifest alice pushed, and the image.
pub(crate) fn podman_push_pull(podman: &Podman, remote: &str, flags: &[&str]) {
    let dest = format!("docker://{remote}");
    let digest_file = podman.dir.path().join("pushed.digest");
    let digest_arg = format!("--digestfile={}", digest_file.display());
    let mut push = vec!["push"];
    push.extend(flags);
    push.extend([
        "--creds",
        "alice:alice-pw",
        &digest_arg,
        "localhost/e2e-base:1",
        &dest,
    ]);
    podman.run(&push);
    let pushed = std::fs::read_to_string(&digest_file).unwrap();
    assert!(pushed.starts_with("sha256:"), "{pushed:?}");
    let mut pull = vec!["pull"];
    pull.extend(flags);
    pull.extend(["--creds", "bob:bob-pw", remote]);
    let pulled = podman.run(&pull);
    assert_eq!(
        pulled.trim().lines().last(),
        Some(podman.inspect("localhost/e2e-base:1", "{{.Id}}").as_str()),
        "the image pulled is the image pushed"
    );
    let repo = remote.rsplit_once(':').unwrap().0;
    let digests = podman.inspect(remote, "{{.RepoDigests}}");
    assert!(
        digests.contains(&format!("{repo}@{pushed}")),
        "pulled by the digest pushed ({pushed}): {digests}"
    );
    podman.run(&["rmi", remote]);
}

#[test]
fn ctr_pushes_and_pulls_with_user() {
    let ctr_peer = Ctr::start();
    for mode in MODES {
        let s = Secured::start(mode, None);
        let base = format!("{}/team/ct", s.addr());
        let remote = format!("{base}:1");
        ctr_peer.import(&base);
        let ctr = |args: &[&str]| {
            run_with_input(
                Command::new("ctr")
                    .arg("-a")
                    .arg(ctr_peer.containerd.dir.path().join("c.sock"))
                    .args(["-n", "berth-e2e"])
                    .args(args),
                None,
                util::PEER_TIMEOUT,
            )
        };
        // ctr prints the status alone; the registry's log says which code it answered.
        let push = |user: &str| ctr(&["images", "push", "--plain-http", "--user", user, &remote]);
        let mark = s.log_mark();
        s.assert_refused(
            mark,
            &push("bob:bob-pw"),
            &["403 Forbidden"],
            "bob",
            Answer::Denied,
        );
        let mark = s.log_mark();
        s.assert_refused(
            mark,
            &push("alice:nope"),
            &["401 Unauthorized"],
            "alice",
            Answer::WrongPassword,
        );
        ctr_peer.push_pull(&base, &["--plain-http"], mode);
        let mark = s.log_mark();
        s.assert_refused(
            mark,
            &ctr(&["images", "pull", "--plain-http", &remote]),
            &["401 Unauthorized"],
            "anonymous",
            Answer::SignInFirst,
        );
        s.assert_log_keeps_secrets(&["alice-pw", "bob-pw"]);
    }
}

/// containerd with an OCI image to import, push and pull.
pub(crate) struct Ctr {
    pub(crate) containerd: Containerd,
    image: util::OciImage,
    archive: std::path::PathBuf,
    _layout: tempfile::TempDir,
}

impl Ctr {
    pub(crate) fn start() -> Ctr {
        let containerd = Containerd::start();
        let layout = tempfile::tempdir().unwrap();
        let image = oci_image(layout.path(), "1");
        let archive = util::oci_archive(&image, &layout.path().join("image.tar"));
        Ctr {
            containerd,
            image,
            archive,
            _layout: layout,
        }
    }

    /// Imports the image as `<base>:1`.
    pub(crate) fn import(&self, base: &str) {
        self.containerd.ctr(&[
            "images",
            "import",
            "--base-name",
            base,
            self.archive.to_str().unwrap(),
        ]);
    }

    /// Imports the image as `<base>:1`, pushes it as alice and pulls it back as bob with
    /// `flags` (how to reach the registry): the pulled image is the one pushed.
    pub(crate) fn push_pull(&self, base: &str, flags: &[&str], mode: Mode) {
        let remote = format!("{base}:1");
        self.import(base);
        let run = |verb: &str, user: &str| {
            let mut args = vec!["images", verb];
            args.extend(flags);
            args.extend(["--user", user, &remote]);
            self.containerd.ctr(&args);
        };
        run("push", "alice:alice-pw");
        self.containerd.ctr(&["images", "rm", "--sync", &remote]);
        run("pull", "bob:bob-pw");
        assert_eq!(
            self.containerd.images().get(&remote),
            Some(&self.image.manifest_digest()),
            "{mode:?} {flags:?}"
        );
        self.containerd.ctr(&["images", "rm", "--sync", &remote]);
    }
}

/// A credential helper that keeps its secrets in a JSON file beside it, as the real ones keep
/// them in a keychain.
fn write_helper(dir: &Path) {
    let script = format!(
        "#!/bin/sh\nstore={store}\ncase \"$1\" in\n\
         get) read url; if [ -f \"$store\" ]; then cat \"$store\"; else echo 'credentials not found in native keychain'; exit 1; fi ;;\n\
         store) cat > \"$store\" ;;\n\
         erase) read url; rm -f \"$store\" ;;\n\
         esac\n",
        store = dir.join("secret.json").display()
    );
    let path = dir.join("docker-credential-berthtest");
    std::fs::write(&path, script).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

fn berth_with_input(
    berth: &Berth,
    args: &[&str],
    input: &str,
    path: Option<&Path>,
) -> std::process::Output {
    let mut cmd = berth.cmd(args);
    if let Some(p) = path {
        cmd.env(
            "PATH",
            format!(
                "{}:{}",
                p.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        );
    }
    run_with_input(&mut cmd, Some(input.as_bytes()), util::PEER_TIMEOUT)
}

/// berth's own client: `login` checks and stores the credential in docker's config.json, `push`
/// and `pull` use it against Basic and Bearer challenges, `logout` forgets it; a credential
/// helper named by `credsStore` keeps it instead when configured.
#[test]
fn berth_login_push_pull_logout_with_basic_auth_tokens_and_a_credential_helper() {
    let work = tempfile::tempdir().unwrap();
    let tar = busybox_rootfs_tar(work.path());
    for mode in MODES {
        let s = Secured::start(mode, None);
        let addr = s.addr().to_string();
        let berth = Berth::new();
        let image = format!("{addr}/team/b:1");
        berth.ok(&["import", tar.to_str().unwrap(), &image]);
        let mark = s.log_mark();
        let out = berth.cmd(&["push", &image]).output().unwrap();
        let says = ["unauthorized: authentication required"];
        s.assert_refused(mark, &out, &says, "anonymous", Answer::SignInFirst);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim().lines().count(), 1, "{err}");

        let out = berth_with_input(
            &berth,
            &["login", "-u", "alice", "--password-stdin", &addr],
            "nope\n",
            None,
        );
        assert!(
            !out.status.success(),
            "{mode:?}: a wrong password is refused"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("incorrect username or password"),
            "{mode:?}: {err}"
        );
        let config = berth.dir.path().join("docker/config.json");
        assert!(!config.exists(), "nothing is stored for a refused login");

        let out = berth_with_input(
            &berth,
            &["login", "-u", "alice", "--password-stdin", &addr],
            "alice-pw\n",
            None,
        );
        assert!(
            out.status.success(),
            "{mode:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));
        let stored: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
        assert_eq!(
            stored["auths"][&addr]["auth"],
            util::base64_encode(b"alice:alice-pw")
        );

        let out = berth.ok(&["push", &image]);
        let digest = out
            .split_once("digest: ")
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("{mode:?}: no digest in {out}"))
            .to_string();
        berth.ok(&["rmi", &image]);
        let out = berth.ok(&["pull", &image]);
        assert!(
            out.contains(&format!("Digest: {digest}")),
            "{mode:?}: {out}"
        );

        assert!(berth
            .ok(&["logout", &addr])
            .contains("Removing login credentials"));
        assert!(berth.ok(&["logout", &addr]).contains("Not logged in"));
        berth.ok(&["rmi", &image]);
        let mark = s.log_mark();
        let out = berth.cmd(&["pull", &image]).output().unwrap();
        s.assert_refused(mark, &out, &says, "anonymous", Answer::SignInFirst);

        // A credential helper: login stores through it, pull asks it, logout erases.
        let helper_dir = tempfile::tempdir().unwrap();
        write_helper(helper_dir.path());
        std::fs::write(&config, r#"{"credsStore":"berthtest"}"#).unwrap();
        let out = berth_with_input(
            &berth,
            &["login", "-u", "bob", "--password-stdin", &addr],
            "bob-pw",
            Some(helper_dir.path()),
        );
        assert!(
            out.status.success(),
            "{mode:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let kept = std::fs::read_to_string(helper_dir.path().join("secret.json")).unwrap();
        assert!(kept.contains("bob-pw"), "the helper keeps the secret");
        assert!(
            !std::fs::read_to_string(&config).unwrap().contains("bob-pw"),
            "config.json does not"
        );
        let mut pull = berth.cmd(&["pull", &image]);
        pull.env(
            "PATH",
            format!(
                "{}:{}",
                helper_dir.path().display(),
                std::env::var("PATH").unwrap()
            ),
        );
        let out = run_with_input(&mut pull, None, util::PEER_TIMEOUT);
        assert!(
            out.status.success(),
            "{mode:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let out = berth_with_input(&berth, &["logout", &addr], "", Some(helper_dir.path()));
        assert!(out.status.success());
        assert!(!helper_dir.path().join("secret.json").exists());
        s.assert_log_keeps_secrets(&["alice-pw", "bob-pw"]);
    }
}

/// The example auth config loads, and a registry started from it (with its files moved to a
/// temporary directory) refuses anonymous callers.
#[test]
fn the_example_auth_config_loads_and_serves() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/auth.toml");
    let config = berth_registry::Config::load(&path).unwrap();
    let auth = config.auth.expect("config/auth.toml has [auth]");
    assert!(auth.token.is_some() && !auth.rules.is_empty());
    assert!(config.tls.is_some());

    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&["127.0.0.1"]);
    let htpasswd = run_ok(Command::new(require("htpasswd")).args(["-Bbn", "alice", "alice-pw"]));
    std::fs::write(dir.path().join("htpasswd"), htpasswd).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let text: String = text
        .lines()
        .map(|l| match l.split('=').next().unwrap().trim() {
            "htpasswd" => format!("htpasswd = {:?}", dir.path().join("htpasswd")),
            "key" if l.contains("token") => format!("key = {:?}", dir.path().join("token.pem")),
            "cert" => format!("cert = {:?}", ca.cert),
            "key" => format!("key = {:?}", ca.key),
            "root" => format!("root = {:?}", dir.path().join("data")),
            "listen" => "listen = \"127.0.0.1:0\"".to_string(),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    let file = dir.path().join("auth.toml");
    std::fs::write(&file, text).unwrap();
    let mut cmd = Command::new(util::berth_bin());
    cmd.arg("serve").arg("--config").arg(&file);
    let (mut child, addr, _) = util::spawn_serving(cmd);
    let certs = tempfile::tempdir().unwrap();
    std::fs::copy(&ca.ca, certs.path().join("ca.crt")).unwrap();
    let out = skopeo(&[
        "inspect",
        "--cert-dir",
        certs.path().to_str().unwrap(),
        &format!("docker://{addr}/team-a/x:1"),
    ]);
    let _ = child.kill();
    let _ = child.wait();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("reading manifest 1 in") && err.contains(": unauthorized"),
        "{err}"
    );
    assert!(
        dir.path().join("token.pem").exists(),
        "the token key was created on start"
    );
}

/// A registry whose htpasswd holds a hash it cannot check does not start, and says why.
#[test]
fn an_htpasswd_with_md5_hashes_is_refused_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let md5 = run_ok(Command::new(require("htpasswd")).args(["-mbn", "carol", "pw"]));
    let file = dir.path().join("htpasswd");
    std::fs::write(&file, md5).unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(
        &config,
        format!("[server]\nlisten = \"127.0.0.1:0\"\n[storage]\nbackend = \"filesystem\"\nroot = {:?}\n[auth]\nhtpasswd = {file:?}\n", dir.path().join("d")),
    )
    .unwrap();
    let out = util::run_with_timeout(
        Command::new(util::berth_bin())
            .arg("serve")
            .arg("--config")
            .arg(&config),
        Duration::from_secs(60),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("carol") && err.contains("htpasswd -B") && err.contains("line 1"),
        "{err}"
    );
}

/// 1,000 wrong passwords from four threads, each on a connection of its own, against a running
/// `berth serve` with bcrypt hashes, while bob keeps pulling the manifest and every blob in two
/// more: every wrong one is 401 UNAUTHORIZED, every one of bob's gets the right bytes.
#[test]
fn a_thousand_wrong_passwords_leave_the_registry_serving_others() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let s = Secured::start(Mode::Basic, None);
    let addr = s.addr().to_string();
    let layout = tempfile::tempdir().unwrap();
    let image = oci_image(layout.path(), "latest");
    skopeo_ok(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:alice-pw",
        &format!("oci:{}:latest", image.layout.display()),
        &format!("docker://{addr}/team/bf:1"),
    ]);
    let blobs = image.blobs();
    let bob = format!("Basic {}", util::base64_encode(b"bob:bob-pw"));
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let wrong: Vec<_> = (0..4)
            .map(|t| {
                let addr = &addr;
                scope.spawn(move || {
                    for i in 0..250 {
                        let auth = util::base64_encode(format!("alice:wrong-{t}-{i}").as_bytes());
                        let r = util::request(
                            addr,
                            "GET",
                            "/v2/team/bf/manifests/1",
                            &[("Authorization", &format!("Basic {auth}"))],
                            b"",
                        );
                        assert_eq!(r.status, 401, "wrong password {t}-{i}");
                        let body = String::from_utf8_lossy(&r.body);
                        assert!(body.contains("UNAUTHORIZED"), "{body}");
                    }
                })
            })
            .collect();
        let right: Vec<_> = (0..2)
            .map(|_| {
                let (addr, bob, blobs, image, done) = (&addr, &bob, &blobs, &image, &done);
                scope.spawn(move || {
                    let mut rounds = 0;
                    // Bounded: the wrong-password threads end long before.
                    while (rounds == 0 || !done.load(Ordering::SeqCst)) && rounds < 100_000 {
                        let auth = [("Authorization", bob.as_str())];
                        let r = util::request(addr, "GET", "/v2/team/bf/manifests/1", &auth, b"");
                        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
                        assert_eq!(r.body, image.manifest);
                        for (digest, bytes) in blobs {
                            let r = util::request(
                                addr,
                                "GET",
                                &format!("/v2/team/bf/blobs/{digest}"),
                                &auth,
                                b"",
                            );
                            assert_eq!(r.status, 200, "{digest}");
                            assert!(r.body == *bytes, "{digest}: other bytes");
                        }
                        rounds += 1;
                    }
                    rounds
                })
            })
            .collect();
        let outcomes: Vec<_> = wrong.into_iter().map(|h| h.join()).collect();
        done.store(true, Ordering::SeqCst);
        let pulls: Vec<_> = right.into_iter().map(|h| h.join()).collect();
        for o in outcomes {
            if let Err(e) = o {
                std::panic::resume_unwind(e);
            }
        }
        for p in pulls {
            match p {
                Ok(rounds) => assert!(rounds >= 1),
                Err(e) => std::panic::resume_unwind(e),
            }
        }
    });
    let log = s.reg.stderr.all().join("\n");
    assert!(!log.contains("wrong-"), "no password in the log");
}
