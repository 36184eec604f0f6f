//! `stats` and `update` on real containers, as root: the counters come from the container's
//! cgroups and network namespace, and an update reaches the live cgroups (read here from the
//! host's cgroup files) and the record (`inspect`). Every test needs root and fails without it.

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::root_containers::{inspect, out, setup, shared, stderr, stdout};

/// The header docker prints, column by column.
const HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

/// A table's line split into its columns (tabwriter pads with at least three spaces... or
/// one space in a title such as `CPU %`: columns are separated by two or more).
fn columns(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

fn is_percent(s: &str) -> bool {
    s.strip_suffix('%')
        .and_then(|n| n.split_once('.'))
        .is_some_and(|(a, b)| {
            !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit()) && b.len() == 2
        })
}

/// `berth ARGS` fails with status 1 and `message` in its error.
fn refused(b: &crate::util::Berth, args: &[&str], message: &str) {
    let o = out(b, args);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
    assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
}

/// A cgroup v1 file of the container, read on the host.
fn cgroup_file(controller: &str, id: &str, file: &str) -> String {
    let path = format!("/sys/fs/cgroup/{controller}/berth/{id}/{file}");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("read {path}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn root_stats_columns_formats_and_refresh() {
    let _host = shared();
    let b = setup();
    // A burst of CPU, two processes, a memory limit; no network.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "busy",
        "--network",
        "none",
        "-m",
        "64m",
        "bb",
        "sh",
        "-c",
        "i=0; while [ $i -lt 100000 ]; do i=$((i+1)); done; sleep 1000 & exec sleep 1001",
    ]);
    // On the bridge, with a few packets sent to its gateway.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "net",
        "bb",
        "sh",
        "-c",
        "set -- $(ip route | grep default); wget -q -T 1 http://$3:9/; exec sleep 1000",
    ]);
    b.ok(&["create", "--name", "idle", "bb", "true"]);
    let busy = inspect(&b, "busy");
    let id = busy["Id"].as_str().unwrap().to_string();
    // Let the burst finish and the packets go: busy is down to its two sleeps, and net's
    // wget has ended (its shell has exec'd its sleep).
    let net_pid = inspect(&b, "net")["State"]["Pid"].to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let pids = cgroup_file("pids", &id, "pids.current");
        let net_cmd = std::fs::read_to_string(format!("/proc/{net_pid}/comm")).unwrap_or_default();
        if pids == "2" && net_cmd.trim() == "sleep" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "busy at {pids} pids, net's pid 1 {net_cmd:?} after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1500));

    let table = b.ok(&["stats", "--no-stream"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(columns(lines[0]), HEADER, "{table}");
    assert_eq!(lines.len(), 3, "the two running containers:\n{table}");
    let row = |name: &str| -> Vec<String> {
        lines
            .iter()
            .map(|l| columns(l))
            .find(|c| c[1] == name)
            .unwrap_or_else(|| panic!("no {name} in\n{table}"))
    };
    let r = row("busy");
    assert_eq!(r[0], id[..12]);
    assert!(is_percent(&r[2]) && r[2] != "0.00%", "CPU % {}", r[2]);
    let (usage, limit) = r[3].split_once(" / ").unwrap();
    assert_eq!(limit, "64MiB");
    assert!(usage.ends_with("iB") || usage.ends_with('B'), "{usage}");
    assert_ne!(usage, "0B");
    assert!(is_percent(&r[4]) && r[4] != "0.00%", "MEM % {}", r[4]);
    assert_eq!(r[5], "0B / 0B", "no network: no bytes");
    assert!(r[6].contains(" / "), "BLOCK I/O {}", r[6]);
    assert_eq!(r[7], "2");
    let n = row("net");
    let (_, tx) = n[5].split_once(" / ").unwrap();
    assert_ne!(tx, "0B", "the wget's packets: {}", n[5]);
    assert_eq!(n[7], "1");

    // --all adds the created one, all zeros as docker's daemon answers for it; --no-trunc
    // shows whole ids.
    let all = b.ok(&["stats", "--no-stream", "--all", "--no-trunc"]);
    let idle: Vec<String> = all
        .lines()
        .map(columns)
        .find(|c| c[1] == "idle")
        .unwrap_or_else(|| panic!("no idle in\n{all}"));
    assert_eq!(
        idle[2..],
        ["0.00%", "0B / 0B", "0.00%", "0B / 0B", "0B / 0B", "0"]
    );
    assert!(all.contains(&id), "{all}");

    // Named containers, a template, and json.
    let t = b.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Container}} {{.Name}} {{.PIDs}} {{.MemUsage}}",
        "busy",
        &id[..8],
    ]);
    let expected_limit = "/ 64MiB";
    let t: Vec<&str> = t.lines().collect();
    assert_eq!(t.len(), 2, "{t:?}");
    assert!(
        t[0].starts_with("busy busy 2 ") && t[0].ends_with(expected_limit),
        "{t:?}"
    );
    assert!(t[1].starts_with(&format!("{} busy 2 ", &id[..8])), "{t:?}");
    let j = b.ok(&["stats", "--no-stream", "--format", "json", "busy"]);
    let j: Value = serde_json::from_str(j.trim()).unwrap();
    for key in [
        "BlockIO",
        "CPUPerc",
        "Container",
        "ID",
        "MemPerc",
        "MemUsage",
        "Name",
        "NetIO",
        "PIDs",
    ] {
        assert!(j[key].is_string(), "{key} in {j}");
    }
    let h = b.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "table {{.Name}}\t{{.CPUPerc}}",
        "idle",
    ]);
    assert_eq!(
        h.lines().map(columns).collect::<Vec<_>>(),
        [vec!["NAME", "CPU %"], vec!["idle", "0.00%"]]
    );

    // No such container: docker's message, status 1, nothing printed.
    let o = out(&b, &["stats", "--no-stream", "busy", "nosuch"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "");
    assert!(
        stderr(&o).contains("No such container: nosuch"),
        "{}",
        stderr(&o)
    );

    // The live view: redrawn in place (cursor home, each line cleared, the rest erased)
    // every second, until interrupted.
    let mut command = b.cmd(&["stats", "busy"]);
    command.stdout(Stdio::piped());
    // As in a terminal, Ctrl-C's SIGINT at its default action: a suite started in the
    // background of a shell (`cmd &`) inherits it ignored, and the view would never end.
    // SAFETY: only signal(2), async-signal-safe, between fork and exec.
    unsafe {
        std::os::unix::process::CommandExt::pre_exec(&mut command, || {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let mut child = command.spawn().unwrap();
    // Read until two whole frames came (a frame ends with its erase; a second frame is a
    // second's reading later), then interrupt: a loaded machine may be slow to start it.
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut live = Vec::new();
    let mut buf = [0u8; 4096];
    let whole = |live: &[u8]| live.windows(3).filter(|w| *w == b"\x1b[J").count();
    while whole(&live) < 2 {
        match stdout_pipe.read(&mut buf).unwrap() {
            0 => panic!("the live view ended: {:?}", String::from_utf8_lossy(&live)),
            n => live.extend_from_slice(&buf[..n]),
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    stdout_pipe.read_to_end(&mut live).unwrap();
    child.wait().unwrap();
    let live = String::from_utf8(live).unwrap();
    // The interrupt may cut the frame it came in (its last line and its erase are two
    // writes): the frames before it are whole.
    let mut frames: Vec<&str> = live.split("\x1b[H").filter(|f| !f.is_empty()).collect();
    if frames.last().is_some_and(|f| !f.ends_with("\x1b[J")) {
        frames.pop();
    }
    assert!(frames.len() >= 2, "two frames: {live:?}");
    for f in &frames {
        assert!(f.ends_with("\x1b[J"), "{f:?}");
        let first = f.lines().next().unwrap();
        assert_eq!(columns(first.trim_end_matches("\x1b[K")), HEADER, "{f:?}");
        assert!(f.contains("busy"), "{f:?}");
    }

    // Stopped, a named container reads as zeros; nothing at all without containers.
    b.ok(&["rm", "-f", "busy", "net"]);
    let none = b.ok(&["stats", "--no-stream"]);
    assert_eq!(none, "", "docker prints nothing, not even the header");
}

#[test]
fn root_update_live_cgroups_and_record() {
    let _host = shared();
    let b = setup();
    b.ok(&[
        "run",
        "-d",
        "--name",
        "u1",
        "--network",
        "none",
        "-m",
        "64m",
        "bb",
        "sleep",
        "1000",
    ]);
    let id = inspect(&b, "u1")["Id"].as_str().unwrap().to_string();
    assert_eq!(
        cgroup_file("memory", &id, "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );

    // More memory than memory+swap (twice 64m) needs --memory-swap too: docker's message,
    // and nothing changes.
    let o = out(&b, &["update", "-m", "200m", "u1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&format!(
            "Cannot update container {id}: Memory limit should be smaller than already set \
             memoryswap limit, update the memoryswap at the same time"
        )),
        "{}",
        stderr(&o)
    );
    assert_eq!(inspect(&b, "u1")["HostConfig"]["Memory"], 64 << 20);

    let o = b.ok(&[
        "update",
        "-m",
        "100m",
        "--memory-swap",
        "300m",
        "--memory-reservation",
        "50m",
        "--cpus",
        "0.5",
        "-c",
        "512",
        "--pids-limit",
        "20",
        "--cpuset-cpus",
        "0",
        "--restart",
        "on-failure:3",
        "u1",
    ]);
    assert_eq!(o, "u1\n");
    // The live cgroups.
    let mem = |f: &str| cgroup_file("memory", &id, f);
    assert_eq!(mem("memory.limit_in_bytes"), (100u64 << 20).to_string());
    assert_eq!(mem("memory.soft_limit_in_bytes"), (50u64 << 20).to_string());
    if std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            mem("memory.memsw.limit_in_bytes"),
            (300u64 << 20).to_string()
        );
    }
    assert_eq!(cgroup_file("cpu", &id, "cpu.cfs_quota_us"), "50000");
    assert_eq!(cgroup_file("cpu", &id, "cpu.cfs_period_us"), "100000");
    assert_eq!(cgroup_file("cpu", &id, "cpu.shares"), "512");
    assert_eq!(cgroup_file("pids", &id, "pids.max"), "20");
    // The container had no cpuset: it joined one, and so do processes exec'd later.
    assert_eq!(cgroup_file("cpuset", &id, "cpuset.cpus"), "0");
    let pid = inspect(&b, "u1")["State"]["Pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status.contains("Cpus_allowed_list:\t0\n"),
        "{}",
        status
            .lines()
            .find(|l| l.starts_with("Cpus_allowed_list"))
            .unwrap_or("")
    );
    let exec = b.ok(&[
        "exec",
        "u1",
        "grep",
        "Cpus_allowed_list",
        "/proc/self/status",
    ]);
    assert_eq!(exec.split_whitespace().last(), Some("0"));
    // The record.
    let h = &inspect(&b, "u1")["HostConfig"];
    assert_eq!(h["Memory"], 100 << 20);
    assert_eq!(h["MemorySwap"], 300 << 20);
    assert_eq!(h["MemoryReservation"], 50 << 20);
    assert_eq!(h["NanoCpus"], 500_000_000);
    assert_eq!(h["CpuShares"], 512);
    assert_eq!(h["PidsLimit"], 20);
    assert_eq!(h["CpusetCpus"], "0");
    assert_eq!(h["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(h["RestartPolicy"]["MaximumRetryCount"], 3);

    // -1 lifts the pids limit; the other values stay.
    assert_eq!(
        b.ok(&["container", "update", "--pids-limit", "-1", "u1"]),
        "u1\n"
    );
    assert_eq!(cgroup_file("pids", &id, "pids.max"), "max");
    let h = &inspect(&b, "u1")["HostConfig"];
    assert_eq!(h["PidsLimit"], Value::Null);
    assert_eq!(h["CpuShares"], 512);

    // A weight this host may not weigh: docker's warning after the names, and the value
    // discarded; or taken.
    let o = b.ok(&["update", "--blkio-weight", "300", "u1"]);
    let weight = &inspect(&b, "u1")["HostConfig"]["BlkioWeight"];
    if o.contains("Weight discarded") {
        assert_eq!(
            o,
            "u1\nYour kernel does not support Block I/O weight or the cgroup is not mounted. \
             Weight discarded.\n"
        );
        assert_eq!(*weight, 0);
    } else {
        assert_eq!(o, "u1\n");
        assert_eq!(*weight, 300);
    }

    // A created container: the record now, the cgroups at its start.
    b.ok(&[
        "create",
        "--name",
        "later",
        "--network",
        "none",
        "bb",
        "sleep",
        "1000",
    ]);
    assert_eq!(b.ok(&["update", "--pids-limit", "7", "later"]), "later\n");
    b.ok(&["start", "later"]);
    let later = inspect(&b, "later")["Id"].as_str().unwrap().to_string();
    assert_eq!(cgroup_file("pids", &later, "pids.max"), "7");

    // What docker refuses, in its words; each name answered on its own.
    for (args, message) in [
        (
            vec!["update", "u1"],
            "you must provide one or more flags when using this command",
        ),
        (
            vec!["update", "-m", "1m", "u1"],
            "Minimum memory limit allowed is 6MB",
        ),
        (
            vec!["update", "--cpus", "x", "u1"],
            "invalid argument \"x\" for \"--cpus\" flag: failed to parse x as a rational number",
        ),
        (
            vec!["update", "--cpus", "99999", "u1"],
            "range of CPUs is from 0.01 to",
        ),
        (
            vec!["update", "--restart", "sometimes", "u1"],
            "invalid restart policy 'sometimes'",
        ),
        (
            vec!["update", "--pids-limit", "5", "nosuch"],
            "No such container: nosuch",
        ),
    ] {
        refused(&b, &args, message);
    }
    b.ok(&[
        "run",
        "-d",
        "--rm",
        "--name",
        "gone",
        "--network",
        "none",
        "bb",
        "sleep",
        "1000",
    ]);
    let o = out(&b, &["update", "--restart", "always", "u1", "gone"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout(&o), "u1\n");
    assert!(
        stderr(&o).contains(
            "Restart policy cannot be updated because AutoRemove is enabled for the container"
        ),
        "{}",
        stderr(&o)
    );
    let until = (chrono::Utc::now().timestamp() + 1).to_string();
    let events = b.ok(&[
        "events",
        "--since",
        "0",
        "--until",
        &until,
        "--filter",
        "event=update",
        "--format",
        "{{.Actor.Attributes.name}}",
    ]);
    assert!(
        events.lines().filter(|l| *l == "u1").count() >= 3,
        "{events}"
    );
}

#[test]
fn root_update_cpu_period_quota_and_realtime() {
    // docker 28's `update --cpu-period/--cpu-quota/--cpu-rt-period/--cpu-rt-runtime`: the live
    // cgroup files and HostConfig's CpuPeriod, CpuQuota, CpuRealtimePeriod and
    // CpuRealtimeRuntime; its daemon's messages for what it refuses, the record unchanged.
    let _host = shared();
    let b = setup();
    // A cgroup parent of this test's own: the real-time runtime a container may get must be
    // granted to its parent first (docker's daemon does it with --cpu-rt-runtime).
    let parent = format!("berth-rt-{}", std::process::id());
    let cpu_dir = std::path::PathBuf::from(format!("/sys/fs/cgroup/cpu/{parent}"));
    b.ok(&[
        "run",
        "-d",
        "--name",
        "cfs",
        "--network",
        "none",
        "--cgroup-parent",
        &format!("/{parent}"),
        "bb",
        "sleep",
        "1000",
    ]);
    let id = inspect(&b, "cfs")["Id"].as_str().unwrap().to_string();
    let file = |f: &str| {
        let path = cpu_dir.join(&id).join(f);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
            .trim()
            .to_string()
    };
    let h = &inspect(&b, "cfs")["HostConfig"];
    for key in [
        "CpuPeriod",
        "CpuQuota",
        "CpuRealtimePeriod",
        "CpuRealtimeRuntime",
    ] {
        assert_eq!(h[key], 0, "{key}");
    }
    // The same four at `run`/`create`: written at start, shown by inspect; with --cpus, docker's
    // conflict and no container.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "cfs-run",
        "--network",
        "none",
        "--cgroup-parent",
        &format!("/{parent}"),
        "--cpu-period",
        "40000",
        "--cpu-quota",
        "10000",
        "bb",
        "sleep",
        "1000",
    ]);
    let run_id = inspect(&b, "cfs-run")["Id"].as_str().unwrap().to_string();
    let run_file = |f: &str| {
        std::fs::read_to_string(cpu_dir.join(&run_id).join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(run_file("cpu.cfs_period_us"), "40000");
    assert_eq!(run_file("cpu.cfs_quota_us"), "10000");
    let h = &inspect(&b, "cfs-run")["HostConfig"];
    assert_eq!(
        (&h["CpuPeriod"], &h["CpuQuota"]),
        (&Value::from(40000), &Value::from(10000))
    );
    b.ok(&["rm", "-f", "cfs-run"]);
    let o = out(
        &b,
        &[
            "create",
            "--name",
            "cfs-both",
            "--cpus",
            "1",
            "--cpu-period",
            "40000",
            "bb",
        ],
    );
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Conflicting options: Nano CPUs and CPU Period cannot both be set"),
        "{}",
        stderr(&o)
    );
    assert!(!b
        .ok(&["ps", "-a", "--format", "{{.Names}}"])
        .contains("cfs-both"));

    assert_eq!(
        b.ok(&[
            "update",
            "--cpu-period",
            "50000",
            "--cpu-quota",
            "25000",
            "cfs"
        ]),
        "cfs\n"
    );
    assert_eq!(file("cpu.cfs_period_us"), "50000");
    assert_eq!(file("cpu.cfs_quota_us"), "25000");
    // -1: no quota.
    assert_eq!(b.ok(&["update", "--cpu-quota", "-1", "cfs"]), "cfs\n");
    assert_eq!(file("cpu.cfs_quota_us"), "-1");

    std::fs::write(cpu_dir.join("cpu.rt_runtime_us"), "20000").unwrap();
    assert_eq!(
        b.ok(&[
            "update",
            "--cpu-rt-period",
            "500000",
            "--cpu-rt-runtime",
            "10000",
            "cfs"
        ]),
        "cfs\n"
    );
    assert_eq!(file("cpu.rt_period_us"), "500000");
    assert_eq!(file("cpu.rt_runtime_us"), "10000");
    let h = &inspect(&b, "cfs")["HostConfig"];
    assert_eq!(h["CpuPeriod"], 50000);
    assert_eq!(h["CpuQuota"], -1);
    assert_eq!(h["CpuRealtimePeriod"], 500000);
    assert_eq!(h["CpuRealtimeRuntime"], 10000);

    // More real-time runtime than the parent grants: the kernel's refusal, nothing recorded.
    let o = out(&b, &["update", "--cpu-rt-runtime", "400000", "cfs"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with(&format!("Error: Cannot update container {id}: ")),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("cpu.rt_runtime_us"), "{}", stderr(&o));
    assert_eq!(file("cpu.rt_runtime_us"), "10000");
    assert_eq!(
        inspect(&b, "cfs")["HostConfig"]["CpuRealtimeRuntime"],
        10000
    );

    // What docker refuses, in its words.
    b.ok(&[
        "run",
        "-d",
        "--name",
        "nano",
        "--network",
        "none",
        "--cpus",
        "0.5",
        "bb",
        "sleep",
        "1000",
    ]);
    for (args, message) in [
        (
            vec!["update", "--cpu-period", "x", "cfs"],
            "invalid argument \"x\" for \"--cpu-period\" flag: strconv.ParseInt: parsing \"x\": \
             invalid syntax",
        ),
        (
            vec!["update", "--cpu-period", "900", "cfs"],
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (
            vec!["update", "--cpu-period", "2000000", "cfs"],
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1s (i.e. 1000000)",
        ),
        (
            vec!["update", "--cpu-quota", "999", "cfs"],
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ),
        (
            vec![
                "update",
                "--cpu-rt-period",
                "1000",
                "--cpu-rt-runtime",
                "2000",
                "cfs",
            ],
            "cpu real-time runtime cannot be higher than cpu real-time period",
        ),
        (
            vec!["update", "--cpus", "1", "--cpu-period", "50000", "cfs"],
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ),
        (
            vec!["update", "--cpus", "1", "cfs"],
            "Conflicting options: Nano CPUs cannot be updated as CPU Period has already been set",
        ),
        (
            vec!["update", "--cpu-quota", "20000", "nano"],
            "Conflicting options: CPU Quota cannot be updated as NanoCPUs has already been set",
        ),
        (
            vec!["update", "--cpu-period", "20000", "nano"],
            "Conflicting options: CPU Period cannot be updated as NanoCPUs has already been set",
        ),
    ] {
        refused(&b, &args, message);
    }
    let h = &inspect(&b, "cfs")["HostConfig"];
    assert_eq!(
        (h["CpuPeriod"].clone(), h["NanoCpus"].clone()),
        (50000.into(), 0.into())
    );
    b.ok(&["rm", "-f", "cfs", "nano"]);
    let _ = std::fs::remove_dir(cpu_dir.join(&id));
    for controller in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let _ = std::fs::remove_dir(controller.path().join(&parent));
    }
}
