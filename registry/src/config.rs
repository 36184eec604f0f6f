//! `berth serve`'s configuration: a TOML file, or the embedded default.
//!
//! Unknown keys are errors, and every error names the key and the problem on one line, so a
//! typo never silently falls back to a default.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use berth_storage::StoreConfig;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default = "default_storage")]
    pub storage: StoreConfig,
    /// A pull-through cache of upstream registries (none: an ordinary registry).
    #[serde(default)]
    pub mirror: Option<crate::mirror::config::MirrorConfig>,
    /// Who may pull, push and delete; absent: everyone may do everything.
    #[serde(default)]
    pub auth: Option<crate::auth::AuthConfig>,
    /// Serve HTTPS with this certificate; absent: plain HTTP.
    #[serde(default)]
    pub tls: Option<crate::tls::TlsConfig>,
    /// The web page (on unless `enabled = false`).
    #[serde(default)]
    pub web: crate::web::config::WebConfig,
    /// Garbage collection: its schedule and the policy every collection of this store
    /// follows (`berth gc` too): delay, untagged, uploads, retention rules.
    #[serde(default)]
    pub gc: berth_storage::gc::Policy,
    /// Webhooks: endpoints that receive push, pull and delete events.
    #[serde(default)]
    pub notifications: Option<crate::notify::NotificationsConfig>,
    /// How `berth serve` logs.
    #[serde(default)]
    pub log: LogConfig,
}

/// The `[log]` section.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    /// `text` (the default: one readable line an event) or `json` (one object a line: time,
    /// level, message and the event's fields).
    #[serde(default)]
    pub format: LogFormat,
    /// A line for every request: request id, method, path, status, bytes, duration, user.
    #[serde(default)]
    pub requests: bool,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Whether manifests, tags and blobs may be deleted (405 UNSUPPORTED when not).
    #[serde(default = "yes")]
    pub delete: bool,
    /// Largest manifest accepted, in bytes.
    #[serde(default = "default_manifest_limit")]
    pub max_manifest_size: usize,
    /// Seconds to let in-flight requests finish on shutdown.
    #[serde(default = "default_grace")]
    pub shutdown_grace: u64,
    /// Seconds a client has to send a request's headers over HTTP/1 once it starts one, or
    /// to start the next on a kept-alive connection; past it the connection is closed, so
    /// that slow or silent clients cannot hold connections open. 0: no limit. The default
    /// outlasts the 90 s that Go's HTTP clients keep an idle connection (`http.DefaultTransport`,
    /// which containerd and skopeo/podman start from; CNCF distribution never closes one): the client, not
    /// the server, ends an idle connection, so no client sends a request into a connection
    /// the server is closing.
    #[serde(default = "default_header_timeout")]
    pub header_timeout: u64,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            listen: default_listen(),
            delete: true,
            max_manifest_size: default_manifest_limit(),
            shutdown_grace: default_grace(),
            header_timeout: default_header_timeout(),
        }
    }
}

fn yes() -> bool {
    true
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:5000".parse().unwrap()
}

fn default_manifest_limit() -> usize {
    4 << 20
}

fn default_grace() -> u64 {
    30
}

fn default_header_timeout() -> u64 {
    120
}

/// Where `berth serve` keeps its data when nothing says otherwise.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BERTH_REGISTRY_ROOT") {
        return PathBuf::from(dir);
    }
    let is_root = unsafe { libc::geteuid() } == 0;
    if is_root {
        return PathBuf::from("/var/lib/berth/registry");
    }
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("berth/registry")
}

/// Where undelivered events wait when `[notifications] queue` does not say: beside the
/// default store (`/var/lib/berth/notifications` as root).
pub fn default_queue_dir() -> PathBuf {
    default_data_dir().with_file_name("notifications")
}

fn default_storage() -> StoreConfig {
    StoreConfig::Filesystem {
        root: default_data_dir(),
        sync: false,
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            server: ServerConfig::default(),
            storage: default_storage(),
            mirror: None,
            auth: None,
            tls: None,
            web: crate::web::config::WebConfig::default(),
            gc: berth_storage::gc::Policy::default(),
            notifications: None,
            log: LogConfig::default(),
        }
    }
}

/// A config that could not be read, with the place and the problem.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The dotted key (`server.delete`) of the `key = value` line holding byte `offset`, if any.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let before = text.get(..offset.min(text.len()))?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = text.get(line_start..)?.lines().next()?;
    let key = line.split_once('=')?.0.trim();
    if key.is_empty() || key.starts_with('[') || key.starts_with('#') {
        return None;
    }
    let table = text.get(..line_start)?.lines().rev().find_map(|l| {
        let l = l.trim();
        l.strip_prefix('[')?
            .strip_suffix(']')
            .map(|t| t.trim_matches(['[', ']']).trim())
    });
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

impl Config {
    /// Parses TOML text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .and_then(|s| text.get(..s.start.min(text.len())))
                .map(|before| before.lines().count().max(1));
            let mut message = e.message().replace('\n', " ");
            // serde's messages ("invalid type: string \"yes\", expected a boolean") do not say
            // which key they are about; the span does.
            if let Some(key) = e.span().and_then(|s| key_at(text, s.start)) {
                if !message.contains(&format!("`{key}`")) {
                    message = format!("{key}: {message}");
                }
            }
            match line {
                Some(l) => ConfigError(format!("{origin}, line {l}: {message}")),
                None => ConfigError(format!("{origin}: {message}")),
            }
        })?;
        config.validate(origin)?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
        Config::parse(&text, &path.display().to_string())
    }

    fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        if self.server.max_manifest_size < 1 << 20 {
            return Err(ConfigError(format!(
                "{origin}: server.max_manifest_size must be at least 1048576 bytes"
            )));
        }
        self.web
            .validate()
            .map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        if let Some(m) = &self.mirror {
            m.validate()
                .map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        }
        self.gc
            .validate()
            .map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        if let Some(n) = &self.notifications {
            n.validate()
                .map_err(|e| ConfigError(format!("{origin}: {e}")))?;
        }
        match &self.storage {
            StoreConfig::Filesystem { root, .. } if root.as_os_str().is_empty() => Err(
                ConfigError(format!("{origin}: storage.root must not be empty")),
            ),
            StoreConfig::S3(s3) if s3.bucket.is_empty() => Err(ConfigError(format!(
                "{origin}: storage.bucket must not be empty"
            ))),
            _ => Ok(()),
        }
    }
}
