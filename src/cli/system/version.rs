//! `berth version`: the client's version and platform, and the engine's (there is no daemon:
//! the engine is the library in this binary, with its runtime), as docker prints them.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::cli::format::{print_document, Schema, Style};

#[derive(Args)]
pub struct VersionArgs {
    /// Format output using a custom template: 'json' prints in JSON format, 'TEMPLATE' prints
    /// output using the given Go template
    #[arg(short = 'f', long, value_name = "string")]
    format: Option<String>,
}

/// Go's name for this machine's architecture, as docker prints it (`amd64`, `arm64`).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The kernel's release (`uname -r`).
pub fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The commit this binary was built from, seven hex digits as docker prints it ("unknown" for
/// a build outside a git checkout); set by build.rs.
pub const GIT_COMMIT: &str = env!("BERTH_GIT_COMMIT");

/// When this binary was built, in Go's `time.ANSIC` layout in UTC as docker prints it
/// (`Fri May 30 12:07:14 2025`); build.rs records the time (or `SOURCE_DATE_EPOCH`).
pub fn build_time() -> String {
    env!("BERTH_BUILD_EPOCH")
        .parse::<i64>()
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0))
        .map_or_else(
            || "unknown".to_string(),
            |t| t.format("%a %b %e %H:%M:%S %Y").to_string(),
        )
}

fn document() -> Value {
    let version = env!("CARGO_PKG_VERSION");
    let built = build_time();
    json!({
        "Client": {
            "Platform": {"Name": "berth"},
            "Version": version,
            "GitCommit": GIT_COMMIT,
            "BuildTime": built,
            "Os": std::env::consts::OS,
            "Arch": go_arch(),
            "Context": "default",
        },
        "Server": {
            "Platform": {"Name": "berth (no daemon)"},
            "Version": version,
            "GitCommit": GIT_COMMIT,
            "BuildTime": built,
            "Os": std::env::consts::OS,
            "Arch": go_arch(),
            "KernelVersion": kernel_version(),
            "Components": [
                {"Name": "Engine", "Version": version, "Details": {
                    "GitCommit": GIT_COMMIT,
                    "BuildTime": built,
                    "Os": std::env::consts::OS,
                    "Arch": go_arch(),
                    "KernelVersion": kernel_version(),
                }},
                {"Name": "berth-runtime", "Version": version, "Details": {}},
            ],
        },
    })
}

pub fn run(a: VersionArgs) -> Result<i32> {
    let doc = document();
    if let Some(f) = a.format.as_deref().filter(|f| !f.is_empty()) {
        print_document(&doc, f, Style::VERSION, &DOC)?;
        return Ok(0);
    }
    let c = &doc["Client"];
    let s = &doc["Server"];
    let line = |indent: &str, k: &str, v: &Value| {
        let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
        println!(
            "{indent}{:<w$}{v}",
            format!("{k}:"),
            w = 19 - indent.len() + 1
        );
    };
    println!("Client:");
    line(" ", "Version", &c["Version"]);
    line(" ", "Git commit", &c["GitCommit"]);
    line(" ", "Built", &c["BuildTime"]);
    line(
        " ",
        "OS/Arch",
        &json!(format!("{}/{}", c["Os"].as_str().unwrap_or(""), go_arch())),
    );
    line(" ", "Context", &c["Context"]);
    println!();
    println!("Server: {}", s["Platform"]["Name"].as_str().unwrap_or(""));
    println!(" Engine:");
    line("  ", "Version", &s["Version"]);
    line("  ", "Git commit", &s["GitCommit"]);
    line("  ", "Built", &s["BuildTime"]);
    line(
        "  ",
        "OS/Arch",
        &json!(format!("{}/{}", s["Os"].as_str().unwrap_or(""), go_arch())),
    );
    line("  ", "Kernel Version", &s["KernelVersion"]);
    println!(" berth-runtime:");
    line("  ", "Version", &s["Version"]);
    Ok(0)
}

/// docker's `version` document.
pub const DOC: Schema = Schema {
    root: "system.versionInfo",
    types: &[],
    raw_fallback: false,
};
