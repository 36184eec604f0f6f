//! Build information for `berth version` (docker's "Git commit" and "Built"): the commit this
//! binary was built from and when. A build from a source tarball without `.git` (or without
//! git installed) says "unknown" for the commit; `SOURCE_DATE_EPOCH` fixes the build time for
//! reproducible builds.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !s.is_empty()).then_some(s)
}

/// Watches a git file for a new commit. Only a file inside the package: a path that does not
/// exist would make cargo run this script on every build, and the git directory of a linked
/// worktree lies outside (such a build notices a new commit at its next change of `src/`).
fn rerun_if_exists(path: Option<String>) {
    let package = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let inside = |p: &std::path::Path| {
        std::fs::canonicalize(p).is_ok_and(|p| !package.is_empty() && p.starts_with(&package))
    };
    if let Some(p) = path.filter(|p| inside(std::path::Path::new(p))) {
        println!("cargo:rerun-if-changed={p}");
    }
}

fn main() {
    // Pack the binary's ~61k relative relocations (DT_RELR): ld.so reads a 17 KB bitmap table
    // instead of a 1.4 MB one at every start; measured ~0.2 ms (5%) of CPU off each short
    // command (bench/README.md, issue 19). Only the binaries (not test binaries); GNU ld >= 2.38
    // or lld, and glibc >= 2.36 to run the result.
    if std::env::var("TARGET").is_ok_and(|t| t.ends_with("-linux-gnu")) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    let commit = git(&["rev-parse", "HEAD"])
        .filter(|h| h.len() >= 7 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .map_or_else(|| "unknown".to_string(), |h| h[..7].to_string());
    println!("cargo:rustc-env=BERTH_GIT_COMMIT={commit}");

    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let built = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .or_else(|| {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).ok()?;
            i64::try_from(now.as_secs()).ok()
        })
        .unwrap_or(0);
    println!("cargo:rustc-env=BERTH_BUILD_EPOCH={built}");

    // Run again when the binary's sources change (so "Built" is this build's time) and when
    // HEAD moves (a commit, a checkout); the paths come from git so worktrees work too.
    for path in ["build.rs", "Cargo.toml", "src"] {
        println!("cargo:rerun-if-changed={path}");
    }
    if commit != "unknown" {
        for name in ["HEAD", "packed-refs"] {
            rerun_if_exists(git(&["rev-parse", "--git-path", name]));
        }
        if let Some(head) = git(&["symbolic-ref", "-q", "HEAD"]) {
            rerun_if_exists(git(&["rev-parse", "--git-path", &head]));
        }
    }
}
