//! Credentials as docker keeps them: `auths` in `config.json`, or a credential helper.
//!
//! docker's order is kept: a host's entry in `credHelpers` names its helper; otherwise
//! `credsStore` names the helper for every host; otherwise the `auths` entry (base64
//! `user:password`) holds the secret. A helper is the program `docker-credential-<name>`
//! speaking docker's protocol: `get` (server URL on stdin, `{"Username","Secret"}` on stdout),
//! `store` (`{"ServerURL","Username","Secret"}` on stdin) and `erase` (server URL on stdin).
//!
//! [`DockerConfig`] edits `config.json` for `berth login` / `berth logout`: it keeps every key
//! it does not know, and writes the file atomically, readable by its owner only.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use serde::Deserialize;

use super::config::{docker_config_path, ConfigError};
use super::Credential;

/// Which helper, if any, serves which host.
#[derive(Debug, Clone, Default)]
pub struct Helpers {
    /// `credsStore`: the helper for every host not in `per_host`.
    pub store: Option<String>,
    /// `credHelpers`: host → helper.
    pub per_host: BTreeMap<String, String>,
}

impl Helpers {
    /// The helper for `host` (`docker.io`, `127.0.0.1:5000`), if any.
    pub fn for_host(&self, host: &str) -> Option<&str> {
        self.per_host
            .iter()
            .find(|(k, _)| super::config::normalise_auth_key(k) == host)
            .map(|(_, v)| v.as_str())
            .or(self.store.as_deref())
    }
}

/// What went wrong with a credential helper or docker's config file.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credential helper docker-credential-{helper}: {message}")]
    Helper { helper: String, message: String },
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
}

/// The server URL a helper is asked about: docker's own key for Docker Hub, the host otherwise.
pub fn server_url(host: &str) -> String {
    if host == crate::reference::DEFAULT_REGISTRY {
        "https://index.docker.io/v1/".to_string()
    } else {
        host.to_string()
    }
}

fn helper_command(helper: &str, verb: &str, input: &[u8]) -> Result<Vec<u8>, CredentialError> {
    let program = format!("docker-credential-{helper}");
    let fail = |message: String| CredentialError::Helper {
        helper: helper.to_string(),
        message,
    };
    let mut child = Command::new(&program)
        .arg(verb)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run {program}: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| fail(format!("writing to {program}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| fail(format!("{program}: {e}")))?;
    if !out.status.success() {
        // Helpers say why on stdout (docker's convention) or stderr.
        let said = String::from_utf8_lossy(if out.stdout.is_empty() {
            &out.stderr
        } else {
            &out.stdout
        })
        .trim()
        .to_string();
        return Err(fail(format!("{verb} failed: {said}")));
    }
    Ok(out.stdout)
}

/// Asks a helper for a host's credentials; `Ok(None)` when it has none.
pub fn helper_get(helper: &str, host: &str) -> Result<Option<Credential>, CredentialError> {
    #[derive(Deserialize)]
    struct Answer {
        #[serde(rename = "Username", default)]
        username: String,
        #[serde(rename = "Secret", default)]
        secret: String,
    }
    let out = match helper_command(helper, "get", server_url(host).as_bytes()) {
        Ok(out) => out,
        // docker's helpers answer "credentials not found in native keychain" and exit 1.
        Err(CredentialError::Helper { message, .. })
            if message
                .to_ascii_lowercase()
                .contains("credentials not found") =>
        {
            return Ok(None)
        }
        Err(e) => return Err(e),
    };
    let answer: Answer = serde_json::from_slice(&out).map_err(|e| CredentialError::Helper {
        helper: helper.to_string(),
        message: format!("get answered with invalid JSON: {e}"),
    })?;
    // "<token>" marks an identity token, which only docker's OAuth flow can use.
    if answer.secret.is_empty() || answer.username == "<token>" {
        return Ok(None);
    }
    Ok(Some(Credential {
        username: answer.username,
        password: answer.secret,
    }))
}

/// The credential helpers docker's `config.json` names.
pub fn docker_helpers() -> Result<Helpers, ConfigError> {
    let Some(path) = docker_config_path() else {
        return Ok(Default::default());
    };
    DockerConfig::open(&path)
        .map(|c| c.helpers())
        .map_err(|e| ConfigError::Invalid {
            path,
            message: e.to_string(),
        })
}

/// docker's `config.json`, as a JSON object whose unknown keys are kept.
pub struct DockerConfig {
    path: PathBuf,
    doc: serde_json::Map<String, serde_json::Value>,
}

impl DockerConfig {
    /// Opens the file at `path`; a missing file is an empty configuration.
    pub fn open(path: &Path) -> Result<DockerConfig, CredentialError> {
        let err = |message: String| CredentialError::File {
            path: path.to_path_buf(),
            message,
        };
        let doc = match std::fs::read(path) {
            Ok(bytes) if bytes.iter().all(|b| b.is_ascii_whitespace()) => serde_json::Map::new(),
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(serde_json::Value::Object(m)) => m,
                Ok(_) => return Err(err("not a JSON object".into())),
                Err(e) => return Err(err(e.to_string())),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::Map::new(),
            Err(e) => return Err(err(e.to_string())),
        };
        Ok(DockerConfig {
            path: path.to_path_buf(),
            doc,
        })
    }

    pub fn helpers(&self) -> Helpers {
        let store = self
            .doc
            .get("credsStore")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        let per_host = self
            .doc
            .get("credHelpers")
            .and_then(|v| v.as_object())
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        Helpers { store, per_host }
    }

    /// The `auths` keys that name `host` (`https://index.docker.io/v1/` names `docker.io`).
    fn auth_keys(&self, host: &str) -> Vec<String> {
        self.doc
            .get("auths")
            .and_then(|v| v.as_object())
            .map(|m| {
                m.keys()
                    .filter(|k| super::config::normalise_auth_key(k) == host)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    fn auths(&mut self) -> &mut serde_json::Map<String, serde_json::Value> {
        let entry = self
            .doc
            .entry("auths")
            .or_insert_with(|| serde_json::Value::Object(Default::default()));
        if !entry.is_object() {
            *entry = serde_json::Value::Object(Default::default());
        }
        entry.as_object_mut().expect("just made an object")
    }

    /// Stores a credential for `host`: with its helper if one is configured, else base64 in
    /// `auths`. Returns the helper used, if any.
    pub fn store(
        &mut self,
        host: &str,
        cred: &Credential,
    ) -> Result<Option<String>, CredentialError> {
        for k in self.auth_keys(host) {
            self.auths().remove(&k);
        }
        let key = server_url(host);
        let helper = self.helpers().for_host(host).map(str::to_string);
        match &helper {
            Some(h) => {
                let input = serde_json::json!({
                    "ServerURL": key,
                    "Username": cred.username,
                    "Secret": cred.password,
                });
                helper_command(h, "store", input.to_string().as_bytes())?;
                self.auths().insert(key, serde_json::json!({}));
            }
            None => {
                let auth = base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", cred.username, cred.password));
                self.auths()
                    .insert(key, serde_json::json!({ "auth": auth }));
            }
        }
        self.save()?;
        Ok(helper)
    }

    /// Forgets `host`'s credential; returns whether there was one.
    pub fn erase(&mut self, host: &str) -> Result<bool, CredentialError> {
        let keys = self.auth_keys(host);
        let mut had = !keys.is_empty();
        if let Some(h) = self.helpers().for_host(host).map(str::to_string) {
            match helper_command(&h, "erase", server_url(host).as_bytes()) {
                Ok(_) => had = true,
                Err(CredentialError::Helper { message, .. })
                    if message.to_ascii_lowercase().contains("not found") => {}
                Err(e) => return Err(e),
            }
        }
        if !keys.is_empty() {
            for k in keys {
                self.auths().remove(&k);
            }
            self.save()?;
        }
        Ok(had)
    }

    fn save(&self) -> Result<(), CredentialError> {
        use std::os::unix::fs::OpenOptionsExt;
        let err = |e: std::io::Error| CredentialError::File {
            path: self.path.clone(),
            message: e.to_string(),
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = self
            .path
            .with_extension(format!("json.tmp{}", std::process::id()));
        let mut bytes = serde_json::to_vec_pretty(&self.doc).unwrap_or_default();
        bytes.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        f.write_all(&bytes).map_err(err)?;
        f.sync_all().map_err(err)?;
        std::fs::rename(&tmp, &self.path).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_and_erase_keep_other_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d/config.json");
        std::fs::create_dir_all(dir.path().join("d")).unwrap();
        std::fs::write(
            &path,
            r#"{"auths":{"other:1":{"auth":"YTpi"}},"psFormat":"x"}"#,
        )
        .unwrap();
        let mut c = DockerConfig::open(&path).unwrap();
        let cred = Credential {
            username: "u".into(),
            password: "p:w".into(),
        };
        assert_eq!(c.store("127.0.0.1:5000", &cred).unwrap(), None);
        assert_eq!(c.store("docker.io", &cred).unwrap(), None);
        let text = std::fs::read(&path).unwrap();
        let creds = super::super::config::parse_docker_config(&text).unwrap();
        assert_eq!(creds["127.0.0.1:5000"], cred);
        assert_eq!(creds["docker.io"], cred);
        assert_eq!(creds["other:1"].username, "a");
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap();
        assert_eq!(v["psFormat"], "x");
        assert!(v["auths"]["https://index.docker.io/v1/"].is_object());
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let mut c = DockerConfig::open(&path).unwrap();
        assert!(c.erase("127.0.0.1:5000").unwrap());
        assert!(!c.erase("127.0.0.1:5000").unwrap());
        let creds =
            super::super::config::parse_docker_config(&std::fs::read(&path).unwrap()).unwrap();
        assert!(!creds.contains_key("127.0.0.1:5000"));
        assert!(creds.contains_key("docker.io"));
    }
}
