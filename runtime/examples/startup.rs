//! Measures the runtime's share of `berth run --rm IMAGE true`: create, attach, start, wait
//! for the exit, delete, on a busybox root given as `startup ROOTFS [RUNS]` (a directory with
//! bin/true). Prints the median and the fastest run; the engine's benchmark in bench/ puts
//! the whole command next to crun, runc, podman and docker.

use berth_runtime::{create, default_spec, AttachOptions, ContainerConfig, Event, Rootfs};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(lower) = args.next() else {
        eprintln!("usage: startup ROOTFS [RUNS]");
        std::process::exit(2);
    };
    let runs: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(20);
    let scratch = tempfile::tempdir().expect("tempdir");
    let mut times = vec![];
    for i in 0..runs {
        let dir = scratch.path().join(i.to_string());
        for d in ["upper", "work"] {
            std::fs::create_dir_all(dir.join(d)).expect("mkdir");
        }
        let id = format!("startup-{}-{i}", std::process::id());
        let mut spec = default_spec(&id);
        spec.process_mut()
            .as_mut()
            .unwrap()
            .set_args(Some(vec!["true".into()]));
        let t = Instant::now();
        let c = create(ContainerConfig {
            id,
            spec,
            rootfs: Rootfs::Overlay {
                lower: vec![lower.clone().into()],
                upper: dir.join("upper"),
                work: dir.join("work"),
                volatile: false,
            },
            state_dir: dir.join("state"),
            open_stdin: false,
            log: Some(berth_runtime::LogConfig::unrotated(
                dir.join("log"),
                berth_runtime::LogFormat::JsonFile,
            )),
            on_exit: None,
            on_start: None,
            init: false,
        })
        .expect("create");
        let t_create = t.elapsed();
        let mut a = c
            .attach(AttachOptions {
                stdin: false,
                stdout: true,
                stderr: true,
            })
            .expect("attach");
        a.start().expect("start");
        let t_start = t.elapsed();
        while let Some(ev) = a.next_event().expect("event") {
            if let Event::Exit(_) = ev {
                break;
            }
        }
        let t_exit = t.elapsed();
        c.delete(false).expect("delete");
        if std::env::var_os("STARTUP_PHASES").is_some() {
            eprintln!(
                "create {t_create:?} start {t_start:?} exit {t_exit:?} deleted {:?}",
                t.elapsed()
            );
        }
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "runs {runs}: median {:.2} ms, fastest {:.2} ms",
        times[runs / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
}
