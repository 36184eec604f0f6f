//! The image config a build writes: docker's JSON (also OCI's), read from the base image,
//! changed by each instruction, with one history entry per instruction as BuildKit writes
//! them (`created_by` the instruction with its values, `comment` `buildkit.dockerfile.v0`,
//! `empty_layer` for instructions that only change the config).
//!
//! Fields berth does not know are kept as they came (`extra`), so a base image's config
//! passes through whole.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::instructions::Health;

/// The `config` object: how a container of the image runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    #[serde(rename = "User", default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(
        rename = "ExposedPorts",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_map"
    )]
    pub exposed_ports: BTreeMap<String, Value>,
    #[serde(
        rename = "Env",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub env: Vec<String>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(
        rename = "Healthcheck",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub healthcheck: Option<HealthConfig>,
    #[serde(
        rename = "Volumes",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_map"
    )]
    pub volumes: BTreeMap<String, Value>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub working_dir: String,
    #[serde(
        rename = "Labels",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_map"
    )]
    pub labels: BTreeMap<String, String>,
    #[serde(
        rename = "StopSignal",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub stop_signal: String,
    #[serde(
        rename = "OnBuild",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub on_build: Vec<String>,
    #[serde(
        rename = "Shell",
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub shell: Vec<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

fn null_map<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<BTreeMap<String, T>>::deserialize(d)?.unwrap_or_default())
}

fn null_vec<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// HEALTHCHECK as docker stores it (nanoseconds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HealthConfig {
    #[serde(rename = "Test", default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    #[serde(rename = "Interval", default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(rename = "Timeout", default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(rename = "StartPeriod", default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(rename = "StartInterval", default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(rename = "Retries", default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// One line of the image's history.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub empty_layer: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default = "layers")]
    pub kind: String,
    #[serde(default, deserialize_with = "null_vec")]
    pub diff_ids: Vec<String>,
}

fn layers() -> String {
    "layers".into()
}

/// An image config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    pub rootfs: RootFs,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "null_vec"
    )]
    pub history: Vec<History>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// PATH when an image does not set one (docker's default on Linux).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The comment BuildKit gives the history entries it writes.
pub const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

impl ImageConfig {
    /// The config of `FROM scratch`.
    pub fn scratch(os: &str, architecture: &str, variant: Option<&str>) -> ImageConfig {
        ImageConfig {
            architecture: architecture.into(),
            os: os.into(),
            variant: variant.map(str::to_string),
            config: RunConfig {
                env: vec![format!("PATH={DEFAULT_PATH}")],
                working_dir: "/".into(),
                ..RunConfig::default()
            },
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![],
            },
            ..ImageConfig::default()
        }
    }

    pub fn from_json(data: &[u8]) -> Result<ImageConfig, String> {
        serde_json::from_slice(data).map_err(|e| format!("the image config is not valid: {e}"))
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an image config serialises")
    }

    /// Sets (or replaces) `key` in Env.
    pub fn set_env(&mut self, key: &str, value: &str) {
        let entry = format!("{key}={value}");
        match self
            .config
            .env
            .iter_mut()
            .find(|e| e.split('=').next() == Some(key))
        {
            Some(e) => *e = entry,
            None => self.config.env.push(entry),
        }
    }

    /// Env as `(key, value)` pairs, for substitution.
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.config
            .env
            .iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e.clone(), String::new()),
            })
            .collect()
    }

    /// The stage's shell (SHELL, or `/bin/sh -c`).
    pub fn shell(&self) -> Vec<String> {
        if self.config.shell.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            self.config.shell.clone()
        }
    }

    /// A shell-form command line with the stage's shell in front.
    pub fn with_shell(&self, args: &[String]) -> Vec<String> {
        let mut v = self.shell();
        v.push(args.join(" "));
        v
    }

    /// Adds a history entry.
    pub fn record(&mut self, created_by: String, empty_layer: bool, created: Option<String>) {
        self.history.push(History {
            created,
            created_by: Some(created_by),
            author: None,
            comment: Some(HISTORY_COMMENT.into()),
            empty_layer,
        });
    }
}

impl From<&Health> for HealthConfig {
    fn from(h: &Health) -> HealthConfig {
        HealthConfig {
            test: h.test.clone(),
            interval: h.interval,
            timeout: h.timeout,
            start_period: h.start_period,
            start_interval: h.start_interval,
            retries: h.retries,
        }
    }
}

/// Go's `%q` of a string slice, as BuildKit's history writes CMD and ENTRYPOINT:
/// `["a" "b c"]`.
pub fn go_quoted_list(v: &[String]) -> String {
    let items: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    format!("[{}]", items.join(" "))
}

/// Go's `%v` of a string slice: `[a b c]`.
pub fn go_list(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// BuildKit's `HEALTHCHECK %+v` of the config: `{Test:[CMD-SHELL x] Interval:30s …}`.
pub fn health_history(h: &HealthConfig) -> String {
    format!(
        "HEALTHCHECK {{Test:{} Interval:{} Timeout:{} StartPeriod:{} StartInterval:{} Retries:{}}}",
        go_list(&h.test),
        go_duration(h.interval),
        go_duration(h.timeout),
        go_duration(h.start_period),
        go_duration(h.start_interval),
        h.retries
    )
}

/// Go's `time.Duration.String()`.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let neg = ns < 0;
    let u = ns.unsigned_abs();
    let body = if u < 1_000 {
        format!("{u}ns")
    } else if u < 1_000_000 {
        format!("{}µs", trim_frac(u as f64 / 1e3))
    } else if u < 1_000_000_000 {
        format!("{}ms", trim_frac(u as f64 / 1e6))
    } else {
        let total_s = u / 1_000_000_000;
        let frac = u % 1_000_000_000;
        let h = total_s / 3600;
        let m = (total_s % 3600) / 60;
        let s = total_s % 60;
        let secs = if frac == 0 {
            format!("{s}s")
        } else {
            let f = format!("{frac:09}");
            format!("{s}.{}s", f.trim_end_matches('0'))
        };
        match (h, m) {
            (0, 0) => secs,
            (0, m) => format!("{m}m{secs}"),
            (h, m) => format!("{h}h{m}m{secs}"),
        }
    };
    if neg {
        format!("-{body}")
    } else {
        body
    }
}

fn trim_frac(v: f64) -> String {
    let s = format!("{v:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_unknown_fields() {
        let text = r#"{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["sh"],"ArgsEscaped":true,"Labels":null},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]},"os.features":["x"],"history":[{"created_by":"x","empty_layer":true}]}"#;
        let c = ImageConfig::from_json(text.as_bytes()).unwrap();
        assert_eq!(c.config.extra["ArgsEscaped"], Value::Bool(true));
        assert_eq!(c.extra["os.features"], serde_json::json!(["x"]));
        assert!(c.config.labels.is_empty());
        let back: Value = serde_json::from_slice(&c.to_json()).unwrap();
        assert_eq!(back["config"]["ArgsEscaped"], Value::Bool(true));
        assert_eq!(back["history"][0]["empty_layer"], Value::Bool(true));
        assert_eq!(back["rootfs"]["diff_ids"][0], "sha256:aa");
    }

    #[test]
    fn env_and_shell() {
        let mut c = ImageConfig::scratch("linux", "amd64", None);
        assert_eq!(c.config.env, [format!("PATH={DEFAULT_PATH}")]);
        c.set_env("A", "1");
        c.set_env("PATH", "/x");
        assert_eq!(c.config.env, ["PATH=/x", "A=1"]);
        assert_eq!(
            c.with_shell(&["echo hi".into()]),
            ["/bin/sh", "-c", "echo hi"]
        );
        c.config.shell = vec!["/bin/bash".into(), "-ec".into()];
        assert_eq!(c.with_shell(&["x".into()]), ["/bin/bash", "-ec", "x"]);
    }

    #[test]
    fn go_formats() {
        assert_eq!(
            go_quoted_list(&["/bin/sh".into(), "-c".into(), "echo \"hi\"".into()]),
            r#"["/bin/sh" "-c" "echo \"hi\""]"#
        );
        for (ns, s) in [
            (0, "0s"),
            (30_000_000_000, "30s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (1_500_000_000, "1.5s"),
            (5_000_000, "5ms"),
            (300_000, "300µs"),
        ] {
            assert_eq!(go_duration(ns), s);
        }
        let h = HealthConfig {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: 5_000_000_000,
            retries: 2,
            ..HealthConfig::default()
        };
        assert_eq!(
            health_history(&h),
            "HEALTHCHECK {Test:[CMD-SHELL true] Interval:5s Timeout:0s StartPeriod:0s StartInterval:0s Retries:2}"
        );
    }
}
