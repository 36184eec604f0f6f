//! berth's client configuration file: which registries may be reached over plain HTTP, which
//! mirrors to try before a registry, how many layers to move at once, and the default
//! network's bridge.
//!
//! The file is `$BERTH_CONFIG`, else `$XDG_CONFIG_HOME/berth/config.toml`, else
//! `~/.config/berth/config.toml`; a missing file means the defaults:
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
//! [`ClientConfig::remote_config`] turns it into the registry client's [`RemoteConfig`], with
//! docker's credentials (`config.json` and its helpers, [`berth_remote::config`]) and the
//! per-registry certificates of `certs.d/<host[:port]>/` beside this file and in docker's
//! `/etc/docker/certs.d` (`$BERTH_CERTS_D` instead) ([`berth_remote::certs`]). The
//! `[bridge]` section is the engine's ([`BridgeSection`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_remote::config::{docker_credentials, ConfigError};
use berth_remote::credentials::docker_helpers;
use berth_remote::RemoteConfig;
use serde::Deserialize;

use crate::engine::BridgeSection;

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
            certs_dirs: berth_remote::certs::default_roots(
                ClientConfig::default_path()
                    .as_deref()
                    .and_then(Path::parent),
            ),
            ..RemoteConfig::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(c.bridge.bridge(), BridgeSection::default().bridge());
        let r = c.remote_config().unwrap();
        assert_eq!(r.default_registry.as_deref(), Some("registry.lan:5000"));
        assert!(r.insecure.contains(&"registry.lan:5000".to_string()));
    }
}
