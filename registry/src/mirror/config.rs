//! The `[mirror]` section of `berth serve`'s config: the upstreams, which one is the default,
//! how long a tag is trusted, and which repositories are local.
//!
//! ```toml
//! [mirror]
//! default = "docker.io"
//! tag_ttl = 300
//! local = ["team"]
//! spool = "/var/tmp/berth-spool"
//!
//! [mirror.upstream."docker.io"]
//! url = "https://registry-1.docker.io"
//! timeout = 30
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use berth_storage::RepoName;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MirrorConfig {
    /// The upstream that serves names routed by neither `ns` nor a host prefix (dockerd sends
    /// Docker Hub's paths, `library/busybox`, to its `registry-mirrors`). None: such names are
    /// local or unknown.
    #[serde(default)]
    pub default: Option<String>,
    /// Seconds a cached tag is served without asking the upstream again.
    #[serde(default = "default_tag_ttl")]
    pub tag_ttl: u64,
    /// Repository name prefixes (whole path components) that are ordinary local repositories:
    /// pushed to and served from the store, never looked up upstream.
    #[serde(default)]
    pub local: Vec<String>,
    /// The upstreams by host: the name containerd sends as `ns` and the first component of a
    /// prefixed repository name (`/v2/ghcr.io/org/app/...`).
    #[serde(default)]
    pub upstream: BTreeMap<String, UpstreamConfig>,
    /// Where blobs on their way from an upstream are kept until they are whole and stored
    /// (unnamed files, gone when done). Default: the system's temporary directory.
    #[serde(default)]
    pub spool: Option<std::path::PathBuf>,
    /// A certs.d directory laid out as docker's (`/etc/docker/certs.d`): for an upstream whose
    /// URL names `host[:port]`, `<certs_d>/<host[:port]>/` holds the CA certificates
    /// (`*.crt`) trusted for it beside the system's, and a client certificate
    /// (`NAME.cert` + `NAME.key`) presented to it. None: the system's CAs only.
    #[serde(default)]
    pub certs_d: Option<std::path::PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Where the upstream's API is: `https://registry-1.docker.io`, `http://127.0.0.1:5000`.
    pub url: String,
    /// Credentials for basic auth or for the upstream's token service.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// A bearer token sent as it is on every request (instead of username and password).
    #[serde(default)]
    pub token: Option<String>,
    /// Seconds an answer from the upstream may take before the mirror gives up on it (and
    /// serves what it has cached, or a 5xx); also the longest stall inside a blob.
    #[serde(default = "default_timeout")]
    pub timeout: u64,
    /// Seconds to establish a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: u64,
}

fn default_tag_ttl() -> u64 {
    300
}

fn default_timeout() -> u64 {
    30
}

fn default_connect_timeout() -> u64 {
    10
}

impl UpstreamConfig {
    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout)
    }

    /// The `host[:port]` of the upstream's URL: what its credentials and its certs.d
    /// directory are keyed by.
    pub fn api_host(&self) -> String {
        let url = self.url.trim_end_matches('/');
        url.split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or(rest))
            .unwrap_or(url)
            .to_ascii_lowercase()
    }
}

/// The repository-name component that stands for an upstream host: the host with `:` (not
/// allowed in names) as `_`, as the client's store names `localhost:5000` too.
pub fn host_component(host: &str) -> String {
    host.replace(':', "_")
}

impl MirrorConfig {
    /// Checks what serde cannot; errors name the key.
    pub fn validate(&self) -> Result<(), String> {
        if self.upstream.is_empty() {
            return Err("mirror.upstream: at least one upstream is needed".into());
        }
        if let Some(d) = &self.default {
            if !self.upstream.contains_key(d) {
                return Err(format!(
                    "mirror.default: {d:?} is not one of the upstreams ({})",
                    self.upstream.keys().cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        for (host, u) in &self.upstream {
            let key = format!("mirror.upstream.{host:?}");
            let component = host_component(host);
            if component.contains('/') || component.parse::<RepoName>().is_err() {
                return Err(format!(
                    "{key}: {host:?} is not a registry host (lowercase, like docker.io or registry.lan:5000)"
                ));
            }
            if !(u.url.starts_with("http://") || u.url.starts_with("https://")) {
                return Err(format!(
                    "{key}.url: {:?} must start with http:// or https://",
                    u.url
                ));
            }
            if u.username.is_some() != u.password.is_some() {
                return Err(format!("{key}: username and password go together"));
            }
            if u.token.is_some() && u.username.is_some() {
                return Err(format!(
                    "{key}: give either a token or a username and password"
                ));
            }
            if u.timeout == 0 || u.connect_timeout == 0 {
                return Err(format!("{key}: timeouts must be at least 1 second"));
            }
        }
        if let Some(dir) = &self.certs_d {
            if !dir.is_dir() {
                return Err(format!(
                    "mirror.certs_d: {} is not a directory",
                    dir.display()
                ));
            }
            for u in self.upstream.values() {
                let roots = [dir.clone()];
                berth_remote::certs::for_host(&roots, &u.api_host())
                    .map_err(|e| format!("mirror.certs_d: {e}"))?;
            }
        }
        for prefix in &self.local {
            if prefix.parse::<RepoName>().is_err() {
                return Err(format!(
                    "mirror.local: {prefix:?} is not a repository name prefix"
                ));
            }
            let first = prefix.split('/').next().unwrap_or("");
            if self.upstream.keys().any(|h| host_component(h) == first) {
                return Err(format!(
                    "mirror.local: {prefix:?} lies in the namespace of upstream {first:?}"
                ));
            }
        }
        Ok(())
    }
}
