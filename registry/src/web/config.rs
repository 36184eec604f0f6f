//! `[web]` in the registry's config: where the page lives and how long a sign-in lasts. A leaf
//! of `web`, so that the config module can hold it without importing the page (which imports
//! the API, which imports the config).

use serde::Deserialize;

/// `[web]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Whether `berth serve` serves the page.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Where the page lives (`/` also shows it to browsers).
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// Seconds a sign-in lasts.
    #[serde(default = "default_session")]
    pub session_lifetime: u64,
}

fn yes() -> bool {
    true
}

fn default_prefix() -> String {
    "/ui".into()
}

fn default_session() -> u64 {
    8 * 3600
}

impl Default for WebConfig {
    fn default() -> WebConfig {
        WebConfig {
            enabled: true,
            prefix: default_prefix(),
            session_lifetime: default_session(),
        }
    }
}

/// Paths that belong to the API: the page's prefix may not be one of them or lie under one.
const API_PATHS: [&str; 7] = [
    "/v2", "/v1", "/token", "/metrics", "/livez", "/readyz", "/_",
];

impl WebConfig {
    /// The prefix must be a path of its own, beside the API's.
    pub fn validate(&self) -> Result<(), String> {
        let p = &self.prefix;
        let shape_ok = p.len() > 1
            && p.starts_with('/')
            && !p.ends_with('/')
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"/-_.".contains(&b))
            && !p.contains("//");
        if !shape_ok {
            return Err(format!(
                "web.prefix {p:?} must be a path such as \"/ui\": a leading /, no trailing /, \
                 letters, digits, -, _ and ."
            ));
        }
        if let Some(api) = API_PATHS
            .iter()
            .find(|a| p == *a || p.starts_with(&format!("{a}/")) || p.starts_with(*a))
        {
            return Err(format!(
                "web.prefix {p:?} collides with the registry API's {api}; choose another path"
            ));
        }
        if !(60..=30 * 86_400).contains(&self.session_lifetime) {
            return Err("web.session_lifetime must be between 60 and 2592000 seconds".into());
        }
        Ok(())
    }
}
