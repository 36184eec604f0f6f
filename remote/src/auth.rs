//! The registry auth dance: `WWW-Authenticate` challenges, bearer tokens and their cache.
//!
//! A registry answers 401 with a challenge: `Basic realm="…"`, or `Bearer realm="…",
//! service="…",scope="…"`. For Basic the client resends with the credentials it has for the
//! host. For Bearer it asks the realm (the token service) for a token covering the scopes the
//! operation needs, with the host's credentials as Basic auth or anonymously, and resends with
//! `Authorization: Bearer`. Tokens are cached per (host, scopes) until shortly before they
//! expire, and the challenge per host, so later operations fetch their token up front instead
//! of paying a 401 round trip each.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Deserialize;

/// What a registry asked for in its `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Parses the first challenge of a `WWW-Authenticate` value that berth understands.
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let params = parse_params(rest);
    match scheme.to_ascii_lowercase().as_str() {
        "basic" => Some(Challenge::Basic),
        "bearer" => Some(Challenge::Bearer {
            realm: params.get("realm")?.clone(),
            service: params.get("service").cloned(),
            scope: params.get("scope").cloned(),
        }),
        _ => None,
    }
}

/// `k="v", k2=v2` with quoted values that may hold commas.
fn parse_params(s: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if chars.next().is_none() {
            return out;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n)
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
}

/// The longest a token is kept, in seconds, whatever the token service says.
const MAX_TOKEN_LIFETIME: u64 = 24 * 3600;

/// A token service's answer.
#[derive(Debug, Deserialize)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub access_token: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
}

impl TokenResponse {
    pub fn token(&self) -> Option<&str> {
        self.token
            .as_deref()
            .filter(|t| !t.is_empty())
            .or(self.access_token.as_deref().filter(|t| !t.is_empty()))
    }

    /// How long the token may be used: the spec's default is 60 s; keep a margin. A token
    /// service's word is trusted for a day at most (any `expires_in`, however large, is a
    /// lifetime that fits in an `Instant`).
    pub fn lifetime(&self) -> Duration {
        let secs = self.expires_in.unwrap_or(60).clamp(60, MAX_TOKEN_LIFETIME);
        Duration::from_secs(secs.saturating_sub(10))
    }
}

/// Tokens and challenges learned so far, shared by every request of one [`super::Remote`].
#[derive(Default)]
pub(crate) struct AuthCache {
    challenges: HashMap<String, Challenge>,
    tokens: HashMap<(String, String), (String, Instant)>,
}

impl AuthCache {
    pub fn challenge(&self, host: &str) -> Option<&Challenge> {
        self.challenges.get(host)
    }

    pub fn set_challenge(&mut self, host: &str, c: Challenge) {
        self.challenges.insert(host.to_string(), c);
    }

    pub fn token(&self, host: &str, scope: &str) -> Option<&str> {
        let (t, until) = self.tokens.get(&(host.to_string(), scope.to_string()))?;
        (Instant::now() < *until).then_some(t.as_str())
    }

    pub fn set_token(&mut self, host: &str, scope: &str, token: String, lifetime: Duration) {
        let Some(until) = Instant::now().checked_add(lifetime) else {
            return;
        };
        self.tokens
            .insert((host.to_string(), scope.to_string()), (token, until));
    }

    pub fn forget_token(&mut self, host: &str, scope: &str) {
        self.tokens.remove(&(host.to_string(), scope.to_string()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        assert_eq!(
            parse_challenge(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:library/busybox:pull,push".into()),
            })
        );
        assert_eq!(
            parse_challenge(r#"Basic realm="Registry Realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(parse_challenge("basic"), Some(Challenge::Basic));
        assert_eq!(parse_challenge("Negotiate abc"), None);
        assert_eq!(parse_challenge("Bearer service=x"), None);
    }
}
