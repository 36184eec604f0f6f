//! What the client is configured with: berth's own TOML file and docker's credentials file.
//!
//! berth's file (`$BERTH_CONFIG`, else `$XDG_CONFIG_HOME/berth/config.toml`, else
//! `~/.config/berth/config.toml`; a missing file means the defaults) says which registries may
//! be reached over plain HTTP, which mirrors to try before a registry, and how many layers to
//! move at once:
//!
//! ```toml
//! default_registry = "registry.lan:5000"     # answers for docker.io names (`busybox`)
//! insecure_registries = ["registry.lan:5000"]
//! max_concurrent_downloads = 3
//! max_concurrent_uploads = 5
//!
//! [registries."docker.io"]
//! mirrors = ["http://127.0.0.1:5000"]
//!
//! [bridge]                     # the default network's bridge (docker's `bip`)
//! name = "berth0"
//! address = "10.89.0.1/16"     # the gateway's address and the subnet's prefix
//! ```
//!
//! Per-registry CA and client certificates come from `certs.d/<host[:port]>/` beside that file
//! and from docker's `/etc/docker/certs.d` (`$BERTH_CERTS_D` instead) ([`super::certs`]).
//!
//! Credentials come from docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`): the `auths` map of registry to base64 `user:password`, and the
//! credential helpers named by `credsStore` and `credHelpers`, run when a host's credential is
//! first needed ([`super::credentials`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

use super::{Credential, RemoteConfig};

/// Why a configuration file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// One registry's section of berth's config file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// Endpoints (`http://host:port` or `https://host`) tried in order before the registry.
    #[serde(default)]
    pub mirrors: Vec<String>,
    /// Allow plain HTTP (and unverified TLS) for this registry.
    #[serde(default)]
    pub insecure: bool,
}

/// The `[bridge]` section: the host bridge of `--network bridge`; a key left out keeps
/// berth's default (`berth_runtime::net::Bridge::default()`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeSection {
    /// The interface's name.
    #[serde(default)]
    pub name: Option<String>,
    /// The gateway's address with the subnet's prefix length (`10.89.0.1/16`).
    #[serde(default)]
    pub address: Option<String>,
}

impl BridgeSection {
    /// The bridge this section describes, or why it cannot be one (a message naming the key).
    pub fn bridge(&self) -> Result<berth_runtime::net::Bridge, String> {
        let mut b = berth_runtime::net::Bridge::default();
        if let Some(name) = &self.name {
            b.name = name.clone();
        }
        if let Some(p) = b.name_problem() {
            return Err(format!("bridge.name: {p}"));
        }
        if let Some(address) = &self.address {
            let bad = || {
                format!(
                    "bridge.address: {address:?} must be an IPv4 address with a prefix length, \
                     such as 10.89.0.1/16"
                )
            };
            let (ip, prefix) = address.split_once('/').ok_or_else(bad)?;
            b.gateway = ip.parse().map_err(|_| bad())?;
            b.prefix = prefix.parse().map_err(|_| bad())?;
        }
        if let Some(p) = b.address_problem() {
            return Err(format!("bridge.address: {p}"));
        }
        Ok(b)
    }
}

/// berth's client configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The registry host that names without a registry (`busybox`, `team/app`) go to, in
    /// place of Docker Hub; local names stay `docker.io/...` (as with a mirror).
    #[serde(default)]
    pub default_registry: Option<String>,
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    #[serde(default = "default_downloads")]
    pub max_concurrent_downloads: usize,
    #[serde(default = "default_uploads")]
    pub max_concurrent_uploads: usize,
    /// Layers larger than this are pushed in chunks of this size.
    #[serde(default = "default_chunk")]
    pub push_chunk_size: u64,
    #[serde(default)]
    pub registries: BTreeMap<String, RegistrySection>,
    #[serde(default)]
    pub bridge: BridgeSection,
}

fn default_downloads() -> usize {
    3
}
fn default_uploads() -> usize {
    5
}
fn default_chunk() -> u64 {
    32 << 20
}

impl Default for ClientConfig {
    fn default() -> ClientConfig {
        ClientConfig {
            default_registry: None,
            insecure_registries: Vec::new(),
            max_concurrent_downloads: default_downloads(),
            max_concurrent_uploads: default_uploads(),
            push_chunk_size: default_chunk(),
            registries: BTreeMap::new(),
            bridge: BridgeSection::default(),
        }
    }
}

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

impl ClientConfig {
    /// Where the config file is looked for.
    pub fn default_path() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("BERTH_CONFIG").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(x).join("berth/config.toml"));
        }
        home().map(|h| h.join(".config/berth/config.toml"))
    }

    /// Loads the file at the default path; a missing file gives the defaults.
    pub fn load() -> Result<ClientConfig, ConfigError> {
        match ClientConfig::default_path() {
            Some(p) => ClientConfig::load_from(&p, std::env::var_os("BERTH_CONFIG").is_some()),
            None => Ok(ClientConfig::default()),
        }
    }

    /// Loads `path`; when `required` is false a missing file gives the defaults.
    pub fn load_from(path: &Path, required: bool) -> Result<ClientConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => {
                return Ok(ClientConfig::default())
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let config: ClientConfig = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: e.message().to_string(),
        })?;
        if config.max_concurrent_downloads == 0 || config.max_concurrent_uploads == 0 {
            return Err(ConfigError::Invalid {
                path: path.to_path_buf(),
                message: "max_concurrent_downloads and max_concurrent_uploads must be at least 1"
                    .into(),
            });
        }
        if let Some(d) = &config.default_registry {
            if d.is_empty() || d.contains(['/', ' ', '?', '#', '@']) {
                return Err(ConfigError::Invalid {
                    path: path.to_path_buf(),
                    message: format!(
                        "default_registry: {d:?} is not a registry host (host or host:port)"
                    ),
                });
            }
        }
        config
            .bridge
            .bridge()
            .map_err(|message| ConfigError::Invalid {
                path: path.to_path_buf(),
                message,
            })?;
        for (name, section) in &config.registries {
            for m in &section.mirrors {
                if !(m.starts_with("http://") || m.starts_with("https://")) {
                    return Err(ConfigError::Invalid {
                        path: path.to_path_buf(),
                        message: format!(
                            "registries.{name:?}.mirrors: {m:?} must start with http:// or https://"
                        ),
                    });
                }
            }
        }
        Ok(config)
    }

    /// The remote client configuration this file describes, with docker's credentials.
    pub fn remote_config(&self) -> Result<RemoteConfig, ConfigError> {
        let mut insecure = self.insecure_registries.clone();
        let mut mirrors = BTreeMap::new();
        for (name, section) in &self.registries {
            if section.insecure {
                insecure.push(name.clone());
            }
            if !section.mirrors.is_empty() {
                mirrors.insert(name.clone(), section.mirrors.clone());
            }
        }
        Ok(RemoteConfig {
            insecure,
            default_registry: self.default_registry.clone(),
            mirrors,
            credentials: docker_credentials()?,
            helpers: docker_helpers()?,
            certs_dirs: super::certs::default_roots(
                ClientConfig::default_path()
                    .as_deref()
                    .and_then(Path::parent),
            ),
            ..RemoteConfig::default()
        })
    }
}

#[derive(Deserialize)]
struct DockerConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(Deserialize)]
struct DockerAuth {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

/// The path of docker's credentials file.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(d).join("config.json"));
    }
    home().map(|h| h.join(".docker/config.json"))
}

/// Credentials from docker's `config.json`, keyed by registry host (`docker.io` for Docker
/// Hub's `https://index.docker.io/v1/` entry). A missing file means no credentials.
pub fn docker_credentials() -> Result<BTreeMap<String, Credential>, ConfigError> {
    let Some(path) = docker_config_path() else {
        return Ok(BTreeMap::new());
    };
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    parse_docker_config(&text).map_err(|message| ConfigError::Invalid { path, message })
}

/// The credential helpers docker's `config.json` names.
pub fn docker_helpers() -> Result<super::credentials::Helpers, ConfigError> {
    let Some(path) = docker_config_path() else {
        return Ok(Default::default());
    };
    super::credentials::DockerConfig::open(&path)
        .map(|c| c.helpers())
        .map_err(|e| ConfigError::Invalid {
            path,
            message: e.to_string(),
        })
}

/// Parses the `auths` of a docker `config.json`.
pub fn parse_docker_config(text: &[u8]) -> Result<BTreeMap<String, Credential>, String> {
    let file: DockerConfigFile = serde_json::from_slice(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (key, auth) in file.auths {
        let cred = match (&auth.auth, &auth.username, &auth.password) {
            (Some(b64), _, _) if !b64.is_empty() => {
                let raw = base64::engine::general_purpose::STANDARD
                    .decode(b64.trim())
                    .map_err(|e| format!("auths.{key:?}.auth: {e}"))?;
                let raw = String::from_utf8(raw).map_err(|e| format!("auths.{key:?}.auth: {e}"))?;
                let (u, p) = raw
                    .split_once(':')
                    .ok_or_else(|| format!("auths.{key:?}.auth is not base64 of user:password"))?;
                Credential {
                    username: u.to_string(),
                    password: p.to_string(),
                }
            }
            (_, Some(u), Some(p)) => Credential {
                username: u.clone(),
                password: p.clone(),
            },
            _ => continue,
        };
        out.insert(normalise_auth_key(&key), cred);
    }
    Ok(out)
}

/// `https://index.docker.io/v1/` → `docker.io`, `http://host:5000/v2/` → `host:5000`.
pub fn normalise_auth_key(key: &str) -> String {
    let host = key
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = host.split('/').next().unwrap_or(host).to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_docker_auths() {
        let json = br#"{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYTpzcw=="},
            "127.0.0.1:5000":{"username":"a","password":"b"},"x.io":{}},"credsStore":"desktop"}"#;
        let c = parse_docker_config(json).unwrap();
        assert_eq!(c["docker.io"].username, "user");
        assert_eq!(c["docker.io"].password, "pa:ss");
        assert_eq!(c["127.0.0.1:5000"].password, "b");
        assert!(!c.contains_key("x.io"));
    }

    #[test]
    fn config_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "insecure_registries=[\"r:5000\"]\nmax_concurrent_downloads=7\n[registries.\"docker.io\"]\nmirrors=[\"http://127.0.0.1:1\"]\n",
        )
        .unwrap();
        let c = ClientConfig::load_from(&p, true).unwrap();
        assert_eq!(c.max_concurrent_downloads, 7);
        assert_eq!(c.registries["docker.io"].mirrors, ["http://127.0.0.1:1"]);
        std::fs::write(&p, "mirrors = 1").unwrap();
        assert!(ClientConfig::load_from(&p, true).is_err());
        assert!(ClientConfig::load_from(&dir.path().join("none"), false).is_ok());
    }

    #[test]
    fn the_example_client_config_loads() {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/client.toml");
        let c = ClientConfig::load_from(&p, true).unwrap();
        assert_eq!(c.default_registry.as_deref(), Some("registry.lan:5000"));
        assert_eq!(c.push_chunk_size, 32 << 20);
        assert_eq!(c.registries["docker.io"].mirrors, ["http://127.0.0.1:5000"]);
        assert_eq!(c.bridge.bridge(), Ok(berth_runtime::net::Bridge::default()));
        let r = c.remote_config().unwrap();
        assert_eq!(r.default_registry.as_deref(), Some("registry.lan:5000"));
        assert!(r.insecure.contains(&"registry.lan:5000".to_string()));
    }
}
