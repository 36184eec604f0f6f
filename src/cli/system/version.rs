//! `berth version`: the client's version and platform, and the engine's (there is no daemon:
//! the engine is the library in this binary, with its runtime), as docker prints them.

use anyhow::Result;
use clap::Args;
use serde_json::{json, Value};

use crate::cli::format::print_document;

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

fn document() -> Value {
    let version = env!("CARGO_PKG_VERSION");
    json!({
        "Client": {
            "Platform": {"Name": "berth"},
            "Version": version,
            "Os": std::env::consts::OS,
            "Arch": go_arch(),
            "Context": "default",
        },
        "Server": {
            "Platform": {"Name": "berth (no daemon)"},
            "Version": version,
            "Os": std::env::consts::OS,
            "Arch": go_arch(),
            "KernelVersion": kernel_version(),
            "Components": [
                {"Name": "Engine", "Version": version, "Details": {"KernelVersion": kernel_version()}},
                {"Name": "berth-runtime", "Version": version, "Details": {}},
            ],
        },
    })
}

pub fn run(a: VersionArgs) -> Result<i32> {
    let doc = document();
    if let Some(f) = a.format.as_deref().filter(|f| !f.is_empty()) {
        print_document(&doc, f)?;
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
