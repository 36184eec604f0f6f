//! docker's credentials file, as every docker-compatible client reads it.
//!
//! `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`): the `auths` map
//! of registry to base64 `user:password`, and the credential helpers named by `credsStore` and
//! `credHelpers`, run when a host's credential is first needed ([`super::credentials`]).
//! berth's own client configuration file, which names mirrors and insecure registries, is the
//! client's (`berth_client::config`); it builds a [`super::RemoteConfig`] with these
//! credentials.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use serde::Deserialize;

use super::Credential;

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

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
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
}
