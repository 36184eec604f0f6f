//! Per-registry TLS material laid out as docker lays it out: a directory per registry host
//! (`host` or `host:port`, exactly as the image reference names it) under a `certs.d` root.
//!
//! In a host's directory, every `*.crt` file is a CA certificate trusted for that host (beside
//! the system's roots), and every `NAME.cert` with its `NAME.key` is a client certificate
//! presented to it (`client.cert` / `client.key` by convention). A `.cert` without its `.key`
//! (or the reverse) is an error, as it is for docker.
//!
//! The roots are searched in order and all of them contribute: berth's own
//! `<config dir>/certs.d` (beside its config file), then docker's `/etc/docker/certs.d`, which
//! `$BERTH_CERTS_D` replaces (for tests, and for hosts that keep docker's directory elsewhere).

use std::path::{Path, PathBuf};

/// docker's system-wide certs.d root.
pub const DOCKER_CERTS_D: &str = "/etc/docker/certs.d";

/// The environment variable that replaces [`DOCKER_CERTS_D`].
pub const CERTS_D_ENV: &str = "BERTH_CERTS_D";

/// The certs.d roots for a client whose config file lives in `config_dir`.
pub fn default_roots(config_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(dir) = config_dir {
        roots.push(dir.join("certs.d"));
    }
    match std::env::var_os(CERTS_D_ENV).filter(|v| !v.is_empty()) {
        Some(v) => roots.push(PathBuf::from(v)),
        None => roots.push(PathBuf::from(DOCKER_CERTS_D)),
    }
    roots
}

/// What the certs.d directories hold for one host.
#[derive(Default)]
pub struct HostTls {
    /// CA certificates (PEM), each trusted for the host.
    pub roots: Vec<reqwest::Certificate>,
    /// The client certificate and its key.
    pub identity: Option<reqwest::Identity>,
}

/// The host's directories under `roots`; `None` when none of them holds anything.
pub fn for_host(roots: &[PathBuf], host: &str) -> Result<Option<HostTls>, String> {
    // A host is a name or an address with an optional port; nothing here may climb out.
    if host.is_empty() || host.contains(['/', '\\']) || host.starts_with('.') {
        return Ok(None);
    }
    let mut found = HostTls::default();
    let mut any = false;
    for root in roots {
        let dir = root.join(host);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("reading {}: {e}", dir.display())),
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        for name in &names {
            let path = dir.join(name);
            if name.ends_with(".crt") {
                let pem = read(&path)?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
                if certs.is_empty() {
                    return Err(format!("{}: no CERTIFICATE in the file", path.display()));
                }
                found.roots.extend(certs);
                any = true;
            } else if let Some(stem) = name.strip_suffix(".cert") {
                let key = format!("{stem}.key");
                if !names.contains(&key) {
                    return Err(format!(
                        "{}: client certificate without its key {key}",
                        path.display()
                    ));
                }
                if found.identity.is_some() {
                    continue;
                }
                let mut pem = read(&dir.join(&key))?;
                pem.push(b'\n');
                pem.extend(read(&path)?);
                let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
                    format!(
                        "{} with {key}: not a usable client certificate and key: {e}",
                        path.display()
                    )
                })?;
                found.identity = Some(identity);
                any = true;
            } else if let Some(stem) = name.strip_suffix(".key") {
                if !names.contains(&format!("{stem}.cert")) {
                    return Err(format!(
                        "{}: key without its client certificate {stem}.cert",
                        path.display()
                    ));
                }
            }
        }
    }
    Ok(any.then_some(found))
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("reading {}: {e}", path.display()))
}
