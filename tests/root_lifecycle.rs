//! A container's life through the command line, as root: the `--restart`, `--health-*`,
//! `--log-*` and `--stop-*` flags of `run`/`create` with docker's messages and exit codes,
//! restarts and health in `ps` and `inspect`, `logs` over rotated json-file and local logs,
//! and `system boot` after a (simulated) loss of the host. One test runs the same containers
//! under a private dockerd and compares what docker prints. Every test needs root and fails
//! without it.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::root_containers::{inspect, out, setup, shared, stderr, stdout};
use crate::util::{run, Berth, Dockerd};

/// Waits (bounded) until `f` holds.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The STATUS column of `ps -a` for one container.
fn ps_status(b: &Berth, name: &str) -> String {
    let o = out(
        b,
        &[
            "ps",
            "-a",
            "--filter",
            &format!("name={name}"),
            "--format",
            "{{.Status}}",
        ],
    );
    stdout(&o).trim().to_string()
}

fn field(b: &Berth, name: &str, template: &str) -> String {
    b.ok(&["inspect", "--format", template, name])
        .trim()
        .to_string()
}

/// Each `(flags, docker's message)`: `create` and `run` with the flags exit 125 with one
/// line that holds the message.
pub(crate) fn refused_as_docker_does(b: &Berth, cases: &[(&[&str], &str)]) {
    for (flags, msg) in cases {
        for verb in ["create", "run"] {
            let mut args = vec![verb];
            args.extend_from_slice(flags);
            args.extend_from_slice(&["bb", "true"]);
            let o = out(b, &args);
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(125), "{args:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
            assert!(err.contains(msg), "{args:?}: {err}");
        }
    }
}

#[test]
fn root_lifecycle_flags_are_checked_as_docker_does() {
    let _host = shared();
    let b = setup();
    // (flags, docker's message, docker's exit code); nothing is created by any of them.
    let cases: &[(&[&str], &str)] = &[
        (&["--restart", "bogus"], "invalid restart policy 'bogus'"),
        (
            &["--restart", "always:3"],
            "maximum retry count cannot be used with restart policy 'always'",
        ),
        (
            &["--restart", "on-failure:-1"],
            "maximum retry count cannot be negative",
        ),
        (
            &["--restart", "on-failure:x"],
            "invalid restart policy format: maximum retry count must be an integer",
        ),
        (
            &["--restart", ":3"],
            "invalid restart policy format: no policy provided before colon",
        ),
        (
            &["--restart", "always", "--rm"],
            "conflicting options: cannot specify both --restart and --rm",
        ),
        (
            &["--health-interval", "1x"],
            r#"invalid argument "1x" for "--health-interval" flag: time: unknown unit "x" in duration "1x""#,
        ),
        (
            &["--health-cmd", "true", "--health-interval", "500us"],
            "Interval in Healthcheck cannot be less than 1ms",
        ),
        (
            &["--health-cmd", "true", "--health-start-period", "0.5ms"],
            "StartPeriod in Healthcheck cannot be less than 1ms",
        ),
        (
            &["--health-cmd", "true", "--health-retries", "-1"],
            "--health-retries cannot be negative",
        ),
        (
            &["--health-cmd", "true", "--health-timeout", "-1s"],
            "--health-timeout cannot be negative",
        ),
        (
            &["--health-retries", "x"],
            r#"invalid argument "x" for "--health-retries" flag: strconv.ParseInt: parsing "x": invalid syntax"#,
        ),
        (
            &["--no-healthcheck", "--health-cmd", "true"],
            "--no-healthcheck conflicts with --health-* options",
        ),
        (
            &["--log-driver", "bogus"],
            r#"error looking up logging plugin bogus: plugin "bogus" not found"#,
        ),
        (
            &["--log-driver", "none", "--log-opt", "max-size=1k"],
            "invalid logging opts for driver none",
        ),
        (
            &["--log-opt", "foo=1"],
            "unknown log opt 'foo' for json-file log driver",
        ),
        (
            &["--log-driver", "local", "--log-opt", "foo=1"],
            "unknown log opt 'foo' for log driver local",
        ),
        (&["--log-opt", "max-size=abc"], "invalid size: 'abc'"),
        (
            &["--log-opt", "max-file=0"],
            "max-file cannot be less than 1",
        ),
        (
            &["--log-opt", "compress=true"],
            "compress cannot be true when max-file is less than 2 or max-size is not set",
        ),
        (&["--stop-signal", "BOGUS"], "Invalid signal: BOGUS"),
        (
            &["--stop-timeout", "x"],
            r#"invalid argument "x" for "--stop-timeout" flag: strconv.ParseInt: parsing "x": invalid syntax"#,
        ),
    ];
    refused_as_docker_does(&b, cases);
    assert_eq!(b.ok(&["ps", "-aq"]), "");
    // Accepted as docker accepts them.
    b.ok(&[
        "create",
        "--restart",
        "on-failure:3",
        "--health-cmd",
        "true",
        "--health-interval",
        "1m30s",
        "--health-retries",
        "4",
        "--log-driver",
        "local",
        "--log-opt",
        "max-size=10k",
        "--stop-signal",
        "SIGUSR1",
        "--stop-timeout",
        "-1",
        "--name",
        "ok",
        "bb",
        "true",
    ]);
    let c = inspect(&b, "ok");
    assert_eq!(
        c["HostConfig"]["RestartPolicy"],
        json!({"Name": "on-failure", "MaximumRetryCount": 3})
    );
    assert_eq!(
        c["HostConfig"]["LogConfig"],
        json!({"Type": "local", "Config": {"max-size": "10k"}})
    );
    assert_eq!(
        c["Config"]["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "true"], "Interval": 90_000_000_000i64, "Retries": 4})
    );
    assert_eq!(c["Config"]["StopSignal"], "SIGUSR1");
    assert_eq!(c["Config"]["StopTimeout"], -1);
    assert_eq!(c["LogPath"], "");
    // Created, never started: no health yet (docker's).
    assert!(c["State"].get("Health").is_none(), "{}", c["State"]);
    b.ok(&["create", "--no-healthcheck", "--name", "nohc", "bb", "true"]);
    assert_eq!(
        inspect(&b, "nohc")["Config"]["Healthcheck"],
        json!({"Test": ["NONE"]})
    );
}

#[test]
fn root_restart_policies_through_the_cli() {
    let _host = shared();
    let b = setup();
    // on-failure:2: two restarts, then it stays down with the last exit.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "on-failure:2",
        "--name",
        "fails",
        "bb",
        "sh",
        "-c",
        "echo ran; exit 3",
    ]);
    eventually("three runs", || {
        stdout(&out(&b, &["logs", "fails"])) == "ran\nran\nran\n"
    });
    eventually("two restarts", || {
        field(&b, "fails", "{{.RestartCount}} {{.State.Status}}") == "2 exited"
    });
    assert_eq!(field(&b, "fails", "{{.State.ExitCode}}"), "3");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(stdout(&out(&b, &["logs", "fails"])), "ran\nran\nran\n");
    assert_eq!(field(&b, "fails", "{{.RestartCount}}"), "2");
    assert!(ps_status(&b, "fails").starts_with("Exited (3) "));
    // on-failure: a clean exit is not restarted.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "on-failure",
        "--name",
        "clean",
        "bb",
        "true",
    ]);
    // always: between runs docker's STATUS says Restarting (the delays grow: 100 ms, 200 ms,
    // … so a wait of 800 ms or more comes within a few runs); `ps` lists it without -a.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "always",
        "--name",
        "loop",
        "bb",
        "sh",
        "-c",
        "echo ran; exit 1",
    ]);
    eventually("Restarting in ps", || {
        let o = out(&b, &["ps", "--format", "{{.Names}}|{{.State}}|{{.Status}}"]);
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("loop|restarting|Restarting (1) ") && l.ends_with(" ago"))
    });
    assert_eq!(
        field(&b, "clean", "{{.RestartCount}} {{.State.Status}}"),
        "0 exited"
    );
    // In a delay, inspect says so as docker does (Running and Restarting both true), and the
    // status filter finds it (and only it).
    let mut during = None;
    eventually("inspect during a restart delay", || {
        let st = inspect(&b, "loop")["State"].clone();
        let restarting = st["Status"] == "restarting";
        during = Some(st);
        restarting
    });
    let st = during.unwrap();
    assert_eq!(
        (st["Running"].clone(), st["Restarting"].clone()),
        (json!(true), json!(true)),
        "{st}"
    );
    // docker counts a restart when it schedules it: in a delay, RestartCount is already the
    // number of runs so far (read twice around the logs, so the delay held throughout).
    eventually("RestartCount in a delay counts the run that ended", || {
        let before = field(&b, "loop", "{{.State.Status}} {{.RestartCount}}");
        let runs = stdout(&out(&b, &["logs", "loop"])).lines().count();
        let after = field(&b, "loop", "{{.State.Status}} {{.RestartCount}}");
        before == after && before == format!("restarting {runs}")
    });
    eventually("ps --filter status=restarting", || {
        b.ok(&[
            "ps",
            "--filter",
            "status=restarting",
            "--format",
            "{{.Names}}",
        ]) == "loop\n"
    });
    // stop ends it: no run follows.
    b.ok(&["stop", "loop"]);
    let count = field(&b, "loop", "{{.RestartCount}}");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(field(&b, "loop", "{{.RestartCount}}"), count);
    assert_eq!(field(&b, "loop", "{{.State.Status}}"), "exited");
    // A stop that arrives while the supervisor is starting a restart's run (held there by
    // its test hook, under the container's lock) waits for that run and stops it: the
    // container is down when `stop` returns and stays down. Decided on a record read before
    // the lock, such a stop saw neither a running nor a restarting container and let the
    // restarts go on.
    let mut run = b.cmd(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "always",
        "--name",
        "held",
        "bb",
        "sh",
        "-c",
        "echo ran; sleep 0.5; exit 1",
    ]);
    run.env("BERTH_TEST_RESTART_PAUSE_MS", "1500");
    crate::util::run(&mut run);
    let id = field(&b, "held", "{{.Id}}");
    let lock = std::fs::File::open(b.root.join("containers").join(&id).join("lock")).unwrap();
    eventually("the supervisor to hold the lock for the restart", || {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this test owns; a lock it gets is given back at once.
        let free = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
        if free {
            // SAFETY: as above.
            unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_UN) };
        }
        !free && field(&b, "held", "{{.RestartCount}}") == "1"
    });
    b.ok(&["stop", "-t", "1", "held"]);
    assert_eq!(
        field(&b, "held", "{{.State.Status}} {{.RestartCount}}"),
        "exited 1"
    );
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        field(&b, "held", "{{.State.Status}} {{.RestartCount}}"),
        "exited 1"
    );
    // The restart's run did start (the monitor writes `start` once the command runs) and
    // was stopped. Its output is not looked at: the stop may reach `sh` before its `echo`.
    let st = inspect(&b, "held")["State"].clone();
    let actions =
        crate::root_events::actions_of(&crate::root_events::journal(&b.root), "container", &id);
    assert_eq!(
        actions.iter().filter(|a| *a == "start").count(),
        2,
        "{actions:?} {st}"
    );
    assert!(stdout(&out(&b, &["logs", "held"])).starts_with("ran\n"));
    // always survives a kill of its process from outside, and a manual start resets the
    // count; `berth kill` is a person's stop: it stays down.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--restart",
        "always",
        "--name",
        "srv",
        "bb",
        "sleep",
        "1000",
    ]);
    let pid: i32 = field(&b, "srv", "{{.State.Pid}}").parse().unwrap();
    assert!(pid > 0);
    // SAFETY: a signal to the container's init, which this test started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    eventually("srv to run again", || {
        field(&b, "srv", "{{.RestartCount}} {{.State.Status}}") == "1 running"
    });
    assert_ne!(field(&b, "srv", "{{.State.Pid}}"), pid.to_string());
    b.ok(&["kill", "srv"]);
    eventually("srv to stop", || {
        field(&b, "srv", "{{.State.Status}}") == "exited"
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(field(&b, "srv", "{{.State.Status}}"), "exited");
    b.ok(&["start", "srv"]);
    assert_eq!(field(&b, "srv", "{{.RestartCount}}"), "0");
    b.ok(&["rm", "-f", "srv", "loop"]);
}

#[test]
fn root_healthchecks_in_ps_and_inspect() {
    let _host = shared();
    let b = setup();
    let since = chrono::Utc::now().timestamp().to_string();
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "hc",
        "--health-cmd",
        "echo probing; test -e /tmp/ok",
        "--health-interval",
        "200ms",
        "--health-retries",
        "2",
        "bb",
        "sh",
        "-c",
        "touch /tmp/ok; exec sleep 1000",
    ]);
    // A check that never runs within the test stays starting.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "slow",
        "--health-cmd",
        "true",
        "bb",
        "sleep",
        "1000",
    ]);
    assert!(
        ps_status(&b, "slow").ends_with(" (health: starting)"),
        "{}",
        ps_status(&b, "slow")
    );
    // A check that closes its output and outlives its timeout is one that timed out (its
    // supervisor used to wait for its exit, for ever with a process that never ends).
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "deaf",
        "--health-cmd",
        "exec >/dev/null 2>&1; sleep 1000",
        "--health-timeout",
        "500ms",
        "--health-interval",
        "200ms",
        "--health-retries",
        "1",
        "bb",
        "sleep",
        "1000",
    ]);
    eventually("healthy", || ps_status(&b, "hc").ends_with(" (healthy)"));
    assert!(ps_status(&b, "hc").starts_with("Up "));
    eventually("unhealthy after a timeout", || {
        ps_status(&b, "deaf").ends_with(" (unhealthy)")
    });
    let h = inspect(&b, "deaf")["State"]["Health"].clone();
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], -1, "{h}");
    assert_eq!(
        last["Output"], "Health check exceeded timeout (500ms)",
        "{h}"
    );
    b.ok(&["rm", "-f", "deaf"]);
    let h = inspect(&b, "hc")["State"]["Health"].clone();
    assert_eq!(h["Status"], "healthy");
    assert_eq!(h["FailingStreak"], 0);
    let last = h["Log"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["ExitCode"], 0);
    assert_eq!(last["Output"], "probing\n");
    assert!(last["Start"].as_str().unwrap() <= last["End"].as_str().unwrap());
    assert_eq!(
        b.ok(&["ps", "--filter", "health=healthy", "--format", "{{.Names}}"]),
        "hc\n"
    );
    b.ok(&["exec", "hc", "rm", "/tmp/ok"]);
    eventually("unhealthy", || {
        ps_status(&b, "hc").ends_with(" (unhealthy)")
    });
    let h = inspect(&b, "hc")["State"]["Health"].clone();
    assert_eq!(h["Status"], "unhealthy");
    assert!(h["FailingStreak"].as_i64().unwrap() >= 2, "{h}");
    assert!(h["Log"].as_array().unwrap().len() <= 5);
    assert_eq!(
        b.ok(&[
            "ps",
            "--filter",
            "health=unhealthy",
            "--format",
            "{{.Names}}"
        ]),
        "hc\n"
    );
    // Each change is a `health_status` event, which `events` shows and filters as docker's
    // (`event=health_status` takes every status).
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    let events = b.ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "container=hc",
        "--filter",
        "event=health_status",
        "--format",
        "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ]);
    assert_eq!(
        events,
        "container health_status: healthy hc\ncontainer health_status: unhealthy hc\n"
    );
    let o = out(&b, &["ps", "--filter", "health=sick"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("Unrecognised filter value for health: sick"));
    // Stopped, it keeps its last results and reads unhealthy, as docker's.
    b.ok(&["stop", "-t", "1", "hc"]);
    let h = inspect(&b, "hc")["State"]["Health"].clone();
    assert_eq!(h["Status"], "unhealthy");
    assert!(!h["Log"].as_array().unwrap().is_empty());
    // In the foreground too, the check runs while the person is attached.
    let o = out(
        &b,
        &[
            "run",
            "--rm",
            "--network",
            "none",
            "--health-cmd",
            "touch /tmp/probed",
            "--health-interval",
            "100ms",
            "bb",
            "sh",
            "-c",
            "for i in $(seq 1 100); do test -e /tmp/probed && echo probed && exit 0; sleep 0.1; done; exit 1",
        ],
    );
    assert_eq!(stdout(&o), "probed\n", "{}", stderr(&o));
    b.ok(&["rm", "-f", "hc", "slow"]);
}

#[test]
fn root_log_drivers_rotation_and_follow() {
    let _host = shared();
    let b = setup();
    let script = "for i in $(seq 1 300); do echo line-$i; done";
    for driver in ["json-file", "local"] {
        let name = format!("log-{driver}");
        b.ok(&[
            "run",
            "--network",
            "none",
            "--name",
            &name,
            "--log-driver",
            driver,
            "--log-opt",
            "max-size=1k",
            "--log-opt",
            "max-file=3",
            "--log-opt",
            "compress=true",
            "bb",
            "sh",
            "-c",
            script,
        ]);
        // Three files of at most ~1 KiB: the newest lines, in order, ending with the last.
        let text = stdout(&out(&b, &["logs", &name]));
        let nums: Vec<u32> = text
            .lines()
            .map(|l| l.strip_prefix("line-").unwrap().parse().unwrap())
            .collect();
        assert_eq!(nums.last(), Some(&300), "{driver}");
        assert!(nums.len() < 300, "{driver}: rotation kept everything");
        assert!(
            nums.windows(2).all(|w| w[1] == w[0] + 1),
            "{driver}: {nums:?}"
        );
        let dir = b.root.join("containers").join(field(&b, &name, "{{.Id}}"));
        let files: Vec<String> = walk(&dir)
            .into_iter()
            .filter(|f| f.contains(".log"))
            .collect();
        assert!(files.iter().any(|f| f.ends_with(".log.2.gz")), "{files:?}");
        assert_eq!(
            stdout(&out(&b, &["logs", "--tail", "2", &name])),
            "line-299\nline-300\n"
        );
        let o = out(&b, &["logs", "-t", "--tail", "1", &name]);
        let (ts, text) = stdout(&o)
            .split_once(' ')
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .unwrap();
        assert!(chrono::DateTime::parse_from_rfc3339(&ts).is_ok(), "{ts}");
        assert_eq!(text, "line-300\n");
        assert_eq!(
            stdout(&out(
                &b,
                &["logs", "--since", "2099-01-01T00:00:00Z", &name]
            )),
            ""
        );
    }
    assert_eq!(
        field(&b, "log-json-file", "{{.HostConfig.LogConfig.Type}}"),
        "json-file"
    );
    // none keeps nothing, and logs says so as docker does.
    b.ok(&[
        "run",
        "--network",
        "none",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "bb",
        "echo",
        "hi",
    ]);
    let o = out(&b, &["logs", "quiet"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("configured logging driver does not support reading"),
        "{}",
        stderr(&o)
    );
    // logs -f follows across rotations: from the first line it shows to the last, none
    // is missing (the writer leaves the follower time to see each file before the
    // retention drops it: a file rotated out twice between two reads would be gone). A
    // rotation every third of a second or so: a follower held up for most of a second on a
    // loaded machine still reads every file.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "slowlog",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=3",
        "bb",
        "sh",
        "-c",
        "for i in $(seq 1 200); do echo line-$i; test $((i % 2)) = 0 && sleep 0.05; done",
    ]);
    let mut follow = b.cmd(&["logs", "-f", "slowlog"]);
    let mut child = follow.stdout(Stdio::piped()).spawn().unwrap();
    let lines: Vec<u32> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(|l| l.unwrap().strip_prefix("line-").unwrap().parse().unwrap())
        .collect();
    assert!(child.wait().unwrap().success());
    assert_eq!(lines.last(), Some(&200));
    assert!(lines.windows(2).all(|w| w[1] == w[0] + 1), "{lines:?}");
}

/// Every file under `dir`, as paths relative to it.
fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                todo.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out
}

#[test]
fn root_stop_signal_and_stop_timeout() {
    let _host = shared();
    let b = setup();
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "sig",
        "--stop-signal",
        "USR1",
        "bb",
        "sh",
        "-c",
        "trap 'echo got-usr1; exit 7' USR1; echo ready; while true; do sleep 0.1; done",
    ]);
    eventually("ready", || {
        stdout(&out(&b, &["logs", "sig"])).contains("ready")
    });
    b.ok(&["stop", "sig"]);
    assert_eq!(field(&b, "sig", "{{.State.ExitCode}}"), "7");
    assert!(stdout(&out(&b, &["logs", "sig"])).contains("got-usr1"));
    // --stop-timeout 1: a process that ignores SIGTERM is killed after 1 s, not docker's
    // default 10 s; `stop -t` still overrides it.
    b.ok(&[
        "run",
        "-d",
        "--network",
        "none",
        "--name",
        "stubborn",
        "--stop-timeout",
        "1",
        "bb",
        "sh",
        "-c",
        "trap '' TERM; echo ready; while true; do sleep 0.1; done",
    ]);
    eventually("ready", || {
        stdout(&out(&b, &["logs", "stubborn"])).contains("ready")
    });
    let t = Instant::now();
    b.ok(&["stop", "stubborn"]);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    assert_eq!(field(&b, "stubborn", "{{.State.ExitCode}}"), "137");
    assert_eq!(field(&b, "stubborn", "{{.Config.StopTimeout}}"), "1");
}

/// The pids of this root's supervisors (`berth __supervise --root ROOT …`).
fn supervisors(b: &Berth) -> Vec<i32> {
    let root = b.root.to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            cmd.contains("__supervise") && cmd.contains(&root)
        })
        .collect()
}

#[test]
fn root_system_boot_starts_what_the_policies_ask_for() {
    let _host = shared();
    let b = setup();
    for (name, policy) in [
        ("always", "always"),
        ("unless", "unless-stopped"),
        ("stopped", "unless-stopped"),
        ("failure", "on-failure:1"),
        ("never", "no"),
    ] {
        b.ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--restart",
            policy,
            "--name",
            name,
            "bb",
            "sleep",
            "1000",
        ]);
    }
    b.ok(&["stop", "-t", "0", "stopped"]);
    // The host goes down: every supervisor, monitor and container process dies at once, and
    // nobody records an exit.
    for pid in supervisors(&b) {
        // SAFETY: signals to processes this test's berth started.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for name in ["always", "unless", "failure", "never"] {
        let id = field(&b, name, "{{.Id}}");
        let state: Value = serde_json::from_slice(
            &std::fs::read(b.root.join("containers").join(&id).join("run/state.json")).unwrap(),
        )
        .unwrap();
        let pid = field(&b, name, "{{.State.Pid}}").parse::<i32>().unwrap();
        let monitor = state["monitor_pid"].as_i64().unwrap() as i32;
        unsafe {
            libc::kill(monitor, libc::SIGKILL);
            libc::kill(pid, libc::SIGKILL);
        }
    }
    eventually("the containers to be dead", || {
        ["always", "unless", "failure", "never"]
            .iter()
            .all(|n| field(&b, n, "{{.State.Status}}") == "dead")
    });
    // The host is up again.
    let started = b.ok(&["system", "boot"]);
    let mut started: Vec<&str> = started.lines().collect();
    started.sort();
    assert_eq!(started, ["always", "failure", "unless"]);
    for name in ["always", "unless", "failure"] {
        assert_eq!(field(&b, name, "{{.State.Status}}"), "running", "{name}");
        assert_eq!(field(&b, name, "{{.RestartCount}}"), "0", "{name}");
    }
    assert_eq!(field(&b, "stopped", "{{.State.Status}}"), "exited");
    assert_eq!(
        field(&b, "never", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 255"
    );
    // Their supervisors are back: a kill of the process is followed by a restart.
    let pid: i32 = field(&b, "always", "{{.State.Pid}}").parse().unwrap();
    unsafe { libc::kill(pid, libc::SIGKILL) };
    eventually("always to run again", || {
        field(&b, "always", "{{.RestartCount}} {{.State.Status}}") == "1 running"
    });
    // A second boot changes nothing.
    assert_eq!(b.ok(&["system", "boot"]), "");
}

#[test]
fn root_lifecycle_beside_docker() {
    let _host = shared();
    let b = setup();
    let d = Dockerd::start();
    let tar = b.dir.path().join("rootfs.tar");
    run(&mut d.cmd(&[
        "import",
        "-c",
        "CMD [\"sh\"]",
        tar.to_str().unwrap(),
        "bb:latest",
    ]));
    let both = |args: &[&str]| {
        let mut a = vec!["run", "-d", "--network", "none"];
        a.extend_from_slice(args);
        b.ok(&a);
        run(&mut d.cmd(&a));
    };
    both(&[
        "--name",
        "fails",
        "--restart",
        "on-failure:2",
        "--log-opt",
        "max-size=1k",
        "--log-opt",
        "max-file=2",
        "bb",
        "sh",
        "-c",
        "exit 3",
    ]);
    both(&[
        "--name",
        "hc",
        "--health-cmd",
        "true",
        "--health-interval",
        "200ms",
        "--stop-timeout",
        "3",
        "bb",
        "sleep",
        "1000",
    ]);
    let docker_field = |name: &str, template: &str| {
        String::from_utf8(run(&mut d.cmd(&["inspect", "--format", template, name])).stdout)
            .unwrap()
            .trim()
            .to_string()
    };
    let settled = |f: &dyn Fn(&str, &str) -> String| {
        eventually("two restarts and healthy", || {
            f("fails", "{{.RestartCount}} {{.State.Status}}") == "2 exited"
                && f("hc", "{{.State.Health.Status}}") == "healthy"
        })
    };
    settled(&|n, t| field(&b, n, t));
    settled(&docker_field);
    for (name, template) in [
        ("fails", "{{.State.ExitCode}} {{.RestartCount}}"),
        ("fails", "{{json .HostConfig.RestartPolicy}}"),
        ("fails", "{{json .HostConfig.LogConfig}}"),
        ("hc", "{{json .Config.Healthcheck}}"),
        ("hc", "{{.Config.StopTimeout}}"),
        (
            "hc",
            "{{.State.Health.Status}} {{.State.Health.FailingStreak}}",
        ),
    ] {
        let (ours, theirs) = (field(&b, name, template), docker_field(name, template));
        if template.starts_with("{{json") {
            // Key order aside.
            let v = |s: &str| serde_json::from_str::<Value>(s).unwrap();
            assert_eq!(v(&ours), v(&theirs), "{name} {template}");
        } else {
            assert_eq!(ours, theirs, "{name} {template}");
        }
    }
    // ps: "Up N seconds (healthy)" in both (the time aside: the two started apart).
    let shape = |s: &str| {
        s.replace("Less than a second", "1 second")
            .split_whitespace()
            .filter(|w| w.parse::<u32>().is_err())
            .map(|w| w.trim_end_matches('s').to_string())
            .collect::<Vec<_>>()
    };
    let ours = ps_status(&b, "hc");
    let theirs = String::from_utf8(
        run(&mut d.cmd(&["ps", "--filter", "name=hc", "--format", "{{.Status}}"])).stdout,
    )
    .unwrap();
    assert!(ours.ends_with(" (healthy)"), "{ours}");
    assert_eq!(shape(&ours), shape(theirs.trim()), "{ours} / {theirs}");
    let _ = d.cmd(&["rm", "-f", "fails", "hc"]).output();
}
