//! The engine's supervisor and logs, run for real as root (namespaces, overlay, cgroups):
//! restart policies with docker's growing delays, `always` after a kill of the process,
//! `stop` ending it, healthchecks turning healthy and unhealthy, and a rotating log followed
//! while it is written. Every test here needs root and fails without it. Each has its own
//! client root with a busybox image imported from a tar, so no registry is reached.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_client::engine::{
    read_log, ContainerRecord, CreateOptions, Engine, Healthcheck, HostConfig, Lifecycle,
    LogConfig, LogOptions, NetworkMode, RestartPolicy, Status,
};
use berth_client::images::{ImageStore, ImportOptions};
use berth_client::reference::ImageRef;

struct Root {
    dir: tempfile::TempDir,
    engine: Engine,
}

impl Drop for Root {
    fn drop(&mut self) {
        if let Ok(list) = self.engine.list() {
            for rec in list {
                let _ = self.engine.remove(&rec, true, true);
            }
        }
    }
}

fn setup() -> Root {
    // SAFETY: a plain system call.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "the supervisor tests need root (namespaces, mounts, cgroups)"
    );
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    for d in ["bin", "tmp", "data"] {
        std::fs::create_dir_all(rootfs.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
        .expect("busybox-static at /bin/busybox");
    for a in ["sh", "sleep", "echo", "cat", "touch", "rm", "test", "true"] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
    }
    let tar = dir.path().join("rootfs.tar");
    let ok = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(ok.success());
    let store = ImageStore::open(&dir.path().join("root")).unwrap();
    let reference = ImageRef::parse("bb:latest").unwrap();
    let input = std::fs::File::open(&tar).unwrap();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(store.import(input, Some(&reference), &ImportOptions::default()))
        .unwrap();
    let engine = Engine::with_images(store).unwrap();
    Root { dir, engine }
}

fn create(r: &Root, script: &str, volumes: Vec<String>, life: Lifecycle) -> ContainerRecord {
    let image = r.engine.images().resolve("bb").unwrap();
    let config = r.engine.images().config_sync(&image).unwrap();
    let opts = CreateOptions {
        cmd: vec!["sh".into(), "-c".into(), script.into()],
        volumes,
        host: HostConfig {
            network: NetworkMode::None,
            ..Default::default()
        },
        ..Default::default()
    };
    r.engine
        .create_with(&image, "bb", &config, opts, life)
        .unwrap()
}

/// Starts the container and its supervisor (a thread here; `berth __reap` in the CLI).
fn start_supervised(r: &Root, rec: &ContainerRecord) -> std::thread::JoinHandle<()> {
    let mut rec = rec.clone();
    r.engine.start(&mut rec).unwrap();
    let engine = r.engine.clone();
    let id = rec.id.clone();
    std::thread::spawn(move || engine.supervise(&id).unwrap())
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn join(h: std::thread::JoinHandle<()>) {
    eventually("the supervisor to end", || h.is_finished());
    h.join().unwrap();
}

fn reload(r: &Root, rec: &ContainerRecord) -> ContainerRecord {
    r.engine.resolve(&rec.id).unwrap()
}

fn data_dir(r: &Root) -> PathBuf {
    let d = r.dir.path().join("data");
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn uptimes(path: &Path) -> Vec<f64> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn root_on_failure_restarts_n_times_with_growing_delays() {
    let r = setup();
    let data = data_dir(&r);
    let life = Lifecycle {
        restart_policy: RestartPolicy::OnFailure(4),
        ..Default::default()
    };
    // /proc/uptime is the host's clock in centiseconds: one line per start.
    let rec = create(
        &r,
        "cat /proc/uptime >> /data/starts; exit 1",
        vec![format!("{}:/data", data.display())],
        life,
    );
    join(start_supervised(&r, &rec));
    let rec = reload(&r, &rec);
    let st = r.engine.state(&rec);
    assert_eq!(
        (st.status, st.exit_code, st.restarting),
        (Status::Exited, 1, false)
    );
    assert_eq!(rec.restart_count, 4);
    // The journal: each run's start and die once (the monitor writes die, the run start).
    let actions: Vec<String> = r
        .engine
        .journal()
        .read(None, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.actor.id == rec.id && matches!(e.action.as_str(), "start" | "die"))
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["start", "die"].repeat(5));
    let starts = uptimes(&data.join("starts"));
    assert_eq!(starts.len(), 5, "{starts:?}");
    // docker's delays: 100 ms, then doubled at each restart.
    for (i, pair) in starts.windows(2).enumerate() {
        let least = 0.1 * f64::from(1 << i) - 0.011;
        assert!(
            pair[1] - pair[0] >= least,
            "restart {} came after {:.2}s, before docker's delay of {:.1}s: {starts:?}",
            i + 1,
            pair[1] - pair[0],
            least + 0.011
        );
    }
}

#[test]
fn root_always_survives_a_kill_of_its_process_and_stop_ends_it() {
    let r = setup();
    let life = Lifecycle {
        restart_policy: RestartPolicy::Always,
        ..Default::default()
    };
    let rec = create(&r, "exec sleep 1000", vec![], life);
    let supervisor = start_supervised(&r, &rec);
    let first = r.engine.state(&rec).pid.unwrap();
    // SAFETY: a signal to the container's process, which this test started.
    assert_eq!(unsafe { libc::kill(first, libc::SIGKILL) }, 0);
    eventually("the restart", || {
        let rec = reload(&r, &rec);
        let st = r.engine.state(&rec);
        st.status == Status::Running && st.pid.is_some_and(|p| p != first)
    });
    let rec = reload(&r, &rec);
    assert_eq!(rec.restart_count, 1);
    assert!(r.engine.supervisor_alive(&rec));
    // stop ends it for good: the supervisor leaves, nothing restarts it.
    r.engine.stop(&rec, Duration::from_secs(1)).unwrap();
    join(supervisor);
    let rec = reload(&r, &rec);
    assert!(rec.manually_stopped);
    std::thread::sleep(Duration::from_millis(300));
    let st = r.engine.state(&rec);
    assert_eq!((st.status, st.exit_code), (Status::Exited, 137));
    assert_eq!(reload(&r, &rec).restart_count, 1);
    assert!(!r.engine.supervisor_alive(&rec));
    // A start by a person sets the count back to 0, and a kill through berth stays down.
    let mut again = rec.clone();
    r.engine.start(&mut again).unwrap();
    let supervisor = std::thread::spawn({
        let (engine, id) = (r.engine.clone(), rec.id.clone());
        move || engine.supervise(&id).unwrap()
    });
    assert_eq!(reload(&r, &rec).restart_count, 0);
    r.engine.kill(&reload(&r, &rec), libc::SIGKILL).unwrap();
    join(supervisor);
    assert_eq!(r.engine.state(&reload(&r, &rec)).status, Status::Exited);
}

#[test]
fn root_healthcheck_turns_healthy_then_unhealthy() {
    let r = setup();
    let life = Lifecycle {
        healthcheck: Some(Healthcheck {
            test: vec!["CMD-SHELL".into(), "echo probing; test -e /tmp/ok".into()],
            interval: 200_000_000,
            timeout: 5_000_000_000,
            retries: 2,
            ..Default::default()
        }),
        ..Default::default()
    };
    let rec = create(&r, "touch /tmp/ok; exec sleep 1000", vec![], life);
    // As docker's: no health before the first start.
    assert!(r.engine.health(&rec).is_none());
    let supervisor = start_supervised(&r, &rec);
    eventually("healthy", || {
        r.engine.health(&rec).unwrap().status == "healthy"
    });
    let h = r.engine.health(&rec).unwrap();
    assert_eq!(h.log.last().unwrap().exit_code, 0);
    assert_eq!(h.log.last().unwrap().output, "probing\n");
    // The check's file goes: two failures in a row make it unhealthy.
    let mut p = r
        .engine
        .exec(
            &rec,
            &berth_client::engine::ExecOptions {
                cmd: vec!["rm".into(), "/tmp/ok".into()],
                ..Default::default()
            },
            berth_client::engine::ExecStdio::Null,
        )
        .unwrap();
    assert_eq!(p.wait().unwrap().code, 0);
    let _ = p.take_pty();
    eventually("unhealthy", || {
        r.engine.health(&rec).unwrap().status == "unhealthy"
    });
    let h = r.engine.health(&rec).unwrap();
    assert!(h.failing_streak >= 2, "{h:?}");
    assert!(h.log.len() <= 5);
    assert_eq!(h.log.last().unwrap().exit_code, 1);
    r.engine.stop(&rec, Duration::from_secs(1)).unwrap();
    join(supervisor);
    // As docker's, the last health stays for inspect.
    assert_eq!(r.engine.health(&rec).unwrap().status, "unhealthy");
    let health: Vec<String> = r
        .engine
        .journal()
        .read(None, None)
        .unwrap()
        .into_iter()
        .filter(|e| e.actor.id == rec.id && e.action.starts_with("health_status"))
        .map(|e| e.action)
        .collect();
    assert_eq!(
        health,
        ["health_status: healthy", "health_status: unhealthy"]
    );
}

#[test]
fn root_rotating_logs_are_followed_across_files() {
    let r = setup();
    for driver in ["json-file", "local"] {
        let life = Lifecycle {
            log_config: LogConfig {
                driver: driver.into(),
                options: [("max-size", "1k"), ("max-file", "3"), ("compress", "true")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            },
            ..Default::default()
        };
        let rec = create(
            &r,
            // A rotation every half second or so (a file holds about 14 lines): a follower
            // held up for a second on a loaded machine still finds every file.
            "i=0; while [ $i -lt 120 ]; do echo line $i; i=$((i+1)); sleep 0.03; done",
            vec![],
            life,
        );
        let (path, format) = r.engine.log_source(&rec).unwrap();
        let mut started = rec.clone();
        r.engine.start(&mut started).unwrap();
        let running = || {
            matches!(
                r.engine.state(&reload(&r, &rec)).status,
                Status::Running | Status::Created
            )
        };
        let mut seen = vec![];
        read_log(
            &path,
            format,
            &LogOptions::default(),
            Some(&running),
            &mut |l| {
                seen.push(String::from_utf8_lossy(&l.data).into_owned());
                true
            },
        )
        .unwrap();
        let want: Vec<String> = (0..120).map(|i| format!("line {i}\n")).collect();
        assert_eq!(seen, want, "{driver}");
        // Three files at most, the rotated ones gzipped; a later read has the newest lines.
        let mut name = path.as_os_str().to_owned();
        name.push(".2.gz");
        assert!(Path::new(&name).exists(), "{driver}: no {name:?}");
        let mut later = vec![];
        read_log(&path, format, &LogOptions::default(), None, &mut |l| {
            later.push(String::from_utf8_lossy(&l.data).into_owned());
            true
        })
        .unwrap();
        assert!(later.len() < 120 && later.ends_with(&want[want.len() - later.len()..]));
    }
}
