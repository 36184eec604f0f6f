//! `berth info` (`system info`): the root, its containers and images, and the host, in
//! docker's fields and layout.

use anyhow::Result;
use berth_client::config::ClientConfig;
use berth_client::engine::{rootless, Status};
use clap::Args;
use serde_json::{json, Value};

use super::version::{go_arch, kernel_version};
use crate::cli::format::{print_document, Schema, Style};
use crate::cli::globals::Globals;

#[derive(Args)]
pub struct InfoArgs {
    /// Format output using a custom template: 'json' prints in JSON format, 'TEMPLATE' prints
    /// output using the given Go template
    #[arg(short = 'f', long, value_name = "string")]
    format: Option<String>,
}

fn read_trim(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// `/etc/os-release`'s `PRETTY_NAME` and `VERSION_ID`.
fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_string())
            .unwrap_or_default()
    };
    (get("PRETTY_NAME"), get("VERSION_ID"))
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// docker's `units.BytesSize`: binary units to two decimals, trailing zeros kept as Go's %.4g.
fn bytes_size(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    let s = format!("{v:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", UNITS[i])
}

fn document(g: &Globals) -> Result<Value> {
    let engine = g.engine()?;
    let (mut running, mut paused, mut stopped) = (0, 0, 0);
    let containers = engine.list()?;
    for rec in &containers {
        match engine.state(rec).status {
            Status::Running => running += 1,
            Status::Paused => paused += 1,
            _ => stopped += 1,
        }
    }
    let images = engine.images().list()?.len();
    let cgroup_version = if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    };
    let config = ClientConfig::load()?;
    let mirrors: Vec<String> = config
        .registries
        .values()
        .flat_map(|r| r.mirrors.iter())
        // as docker's daemon normalises them: the URL with one trailing slash
        .map(|m| format!("{}/", m.trim_end_matches('/')))
        .collect();
    let mut insecure: Vec<String> = config.insecure_registries.clone();
    insecure.extend(
        config
            .registries
            .iter()
            .filter(|(_, r)| r.insecure)
            .map(|(n, _)| n.clone()),
    );
    insecure.push("127.0.0.0/8".into());
    let (os, os_version) = os_release();
    // Rootless, as docker's rootless daemon says it: `name=rootless`, no cgroup driver where
    // none is delegated, and the overlay the user namespace mounts.
    let rootless = rootless::info();
    let mut security = vec!["name=seccomp,profile=builtin"];
    if rootless.is_some() {
        security.push("name=rootless");
    }
    let networks = rootless
        .as_ref()
        .map_or(&["bridge", "host", "macvlan", "null"][..], |r| {
            r.network_drivers
        });
    Ok(json!({
        "ID": "",
        "Containers": containers.len(),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": if rootless.is_some() { rootless::overlay(engine.root()) } else { "overlay" },
        "DriverStatus": [],
        "Plugins": {"Volume": ["local"], "Network": networks, "Log": ["json-file", "local", "none"]},
        "LoggingDriver": "json-file",
        "CgroupDriver": rootless.as_ref().map_or("cgroupfs", |r| r.cgroups),
        "CgroupVersion": cgroup_version,
        "KernelVersion": kernel_version(),
        "OperatingSystem": os,
        "OSVersion": os_version,
        "OSType": std::env::consts::OS,
        "Architecture": std::env::consts::ARCH,
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": mem_total(),
        "DockerRootDir": engine.root().display().to_string(),
        "Name": read_trim("/proc/sys/kernel/hostname"),
        "ServerVersion": env!("CARGO_PKG_VERSION"),
        "Runtimes": {"berth": {"path": "berth-runtime (built in)"}},
        "DefaultRuntime": "berth",
        "SecurityOptions": security,
        "RegistryConfig": {"InsecureRegistryCIDRs": insecure, "Mirrors": mirrors},
        "DefaultRegistry": config.default_registry.clone().unwrap_or_else(|| "docker.io".into()),
        "ClientInfo": {"Version": env!("CARGO_PKG_VERSION"), "Os": std::env::consts::OS, "Arch": go_arch(), "Context": "default", "Debug": false},
    }))
}

pub fn run(g: &Globals, a: InfoArgs) -> Result<i32> {
    let d = document(g)?;
    if let Some(f) = a.format.as_deref().filter(|f| !f.is_empty()) {
        print_document(&d, f, Style::INFO, &DOC)?;
        return Ok(0);
    }
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let list = |v: &Value| {
        v.as_array()
            .map(|a| a.iter().map(s).collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    let mut out = String::new();
    let mut line = |t: String| {
        out.push_str(&t);
        out.push('\n');
    };
    line("Client:".into());
    line(format!(" Version:    {}", s(&d["ClientInfo"]["Version"])));
    line(" Context:    default".into());
    line(" Debug Mode: false".into());
    line(String::new());
    line("Server:".into());
    line(format!(" Containers: {}", d["Containers"]));
    line(format!("  Running: {}", d["ContainersRunning"]));
    line(format!("  Paused: {}", d["ContainersPaused"]));
    line(format!("  Stopped: {}", d["ContainersStopped"]));
    line(format!(" Images: {}", d["Images"]));
    line(format!(" Server Version: {}", s(&d["ServerVersion"])));
    line(format!(" Storage Driver: {}", s(&d["Driver"])));
    line(format!(" Logging Driver: {}", s(&d["LoggingDriver"])));
    line(format!(" Cgroup Driver: {}", s(&d["CgroupDriver"])));
    line(format!(" Cgroup Version: {}", s(&d["CgroupVersion"])));
    line(" Plugins:".into());
    line(format!("  Volume: {}", list(&d["Plugins"]["Volume"])));
    line(format!("  Network: {}", list(&d["Plugins"]["Network"])));
    line(format!("  Log: {}", list(&d["Plugins"]["Log"])));
    line(" Runtimes: berth".into());
    line(format!(" Default Runtime: {}", s(&d["DefaultRuntime"])));
    line(" Security Options:".into());
    line("  seccomp".into());
    line("   Profile: builtin".into());
    if let Some(r) = rootless::info() {
        line("  rootless".into());
        line(format!("   Network: {}", r.network));
        line(format!("   Runtime Dir: {}", r.run_dir.display()));
    }
    line(format!(" Kernel Version: {}", s(&d["KernelVersion"])));
    line(format!(" Operating System: {}", s(&d["OperatingSystem"])));
    line(format!(" OSType: {}", s(&d["OSType"])));
    line(format!(" Architecture: {}", s(&d["Architecture"])));
    line(format!(" CPUs: {}", d["NCPU"]));
    line(format!(
        " Total Memory: {}",
        bytes_size(d["MemTotal"].as_u64().unwrap_or(0))
    ));
    line(format!(" Name: {}", s(&d["Name"])));
    line(format!(" Docker Root Dir: {}", s(&d["DockerRootDir"])));
    line(format!(" Default Registry: {}", s(&d["DefaultRegistry"])));
    line(" Insecure Registries:".into());
    for r in d["RegistryConfig"]["InsecureRegistryCIDRs"]
        .as_array()
        .into_iter()
        .flatten()
    {
        line(format!("  {}", s(r)));
    }
    let mirrors = d["RegistryConfig"]["Mirrors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if !mirrors.is_empty() {
        line(" Registry Mirrors:".into());
        for m in &mirrors {
            line(format!("  {}", s(m)));
        }
    }
    print!("{out}");
    Ok(0)
}

/// docker's `info` document.
pub const DOC: Schema = Schema {
    root: "system.dockerInfo",
    types: &[],
    raw_fallback: false,
};

#[cfg(test)]
mod tests {
    #[test]
    fn bytes_size_as_dockers() {
        assert_eq!(super::bytes_size(25_276_194_816), "23.54GiB");
        assert_eq!(super::bytes_size(1024), "1KiB");
        assert_eq!(super::bytes_size(512), "512B");
    }
}
