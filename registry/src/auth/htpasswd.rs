//! Users and their bcrypt hashes from an htpasswd file (what `htpasswd -B` writes).
//!
//! Any other hash format is refused when the file is read, so a file that cannot be checked
//! never starts a registry. bcrypt runs on the blocking pool behind a semaphore with one permit
//! per core: a flood of wrong passwords queues there and never stalls the request threads.
//! A user name that does not exist is checked against a dummy hash of the same cost, so the
//! answer takes as long as for a wrong password. A password that was right is remembered for a
//! while as an HMAC under a key made at start-up, so a client that sends Basic credentials with
//! every request pays for bcrypt once, not on every layer.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ring::hmac;
use tokio::sync::Semaphore;

/// How long a verified password is remembered.
const REMEMBER: Duration = Duration::from_secs(300);
const REMEMBER_MAX: usize = 4096;

pub struct Users {
    hashes: HashMap<String, String>,
    /// Checked when the user is unknown, so that the answer takes as long.
    dummy: String,
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    key: hmac::Key,
    permits: Semaphore,
}

/// The highest bcrypt cost accepted, as `htpasswd -C` (4 to 17). A verification at cost 31
/// would take days: one such line must not stall start-up (the dummy hash is made at the
/// file's highest cost) nor turn each sign-in into a denial of service.
const MAX_COST: u32 = 17;

/// The cost of a bcrypt hash, or None when `hash` is not one.
fn bcrypt_cost(hash: &str) -> Option<u32> {
    if !["$2a$", "$2b$", "$2y$", "$2x$"]
        .iter()
        .any(|p| hash.starts_with(p))
    {
        return None;
    }
    hash.parse::<bcrypt::HashParts>().ok().map(|h| h.get_cost())
}

impl Users {
    /// Reads an htpasswd file; every line must be `user:bcrypt-hash` (blank lines and `#`
    /// comments aside).
    pub fn load(path: &Path) -> Result<Users, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("htpasswd file {}: {e}", path.display()))?;
        Users::parse(&text, &path.display().to_string())
    }

    pub fn parse(text: &str, origin: &str) -> Result<Users, String> {
        let mut hashes = HashMap::new();
        let mut cost = 5;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim_end_matches('\r');
            if line.trim().is_empty() || line.trim_start().starts_with('#') {
                continue;
            }
            let at = format!("htpasswd file {origin}, line {}", i + 1);
            let Some((user, hash)) = line.split_once(':') else {
                return Err(format!("{at}: not user:hash"));
            };
            if user.is_empty() {
                return Err(format!("{at}: empty user name"));
            }
            let Some(c) = bcrypt_cost(hash) else {
                return Err(format!(
                    "{at}: user {user:?} has a hash berth cannot check; only bcrypt is \
                     accepted (create it with htpasswd -B)"
                ));
            };
            if c > MAX_COST {
                return Err(format!(
                    "{at}: user {user:?} has a bcrypt cost of {c}; at most {MAX_COST} is \
                     accepted (create it with htpasswd -B -C {MAX_COST} or less)"
                ));
            }
            cost = cost.max(c);
            if hashes.insert(user.to_string(), hash.to_string()).is_some() {
                return Err(format!("{at}: user {user:?} appears twice"));
            }
        }
        let rng = ring::rand::SystemRandom::new();
        let dummy = bcrypt::hash("berth: no such user", cost)
            .map_err(|e| format!("htpasswd file {origin}: {e}"))?;
        Ok(Users {
            hashes,
            dummy,
            verified: Mutex::new(HashMap::new()),
            key: hmac::Key::generate(hmac::HMAC_SHA256, &rng)
                .map_err(|_| "no system randomness".to_string())?,
            permits: Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())),
        })
    }

    pub fn len(&self) -> usize {
        self.hashes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// Whether `password` is `user`'s password.
    pub async fn verify(&self, user: &str, password: &str) -> bool {
        let mut msg = Vec::with_capacity(user.len() + password.len() + 1);
        msg.extend_from_slice(user.as_bytes());
        msg.push(0);
        msg.extend_from_slice(password.as_bytes());
        let mut tag = [0u8; 32];
        tag.copy_from_slice(hmac::sign(&self.key, &msg).as_ref());
        if let Some(at) = crate::lock(&self.verified).get(&tag) {
            if at.elapsed() < REMEMBER {
                return true;
            }
        }
        let (known, hash) = match self.hashes.get(user) {
            Some(h) => (true, h.clone()),
            None => (false, self.dummy.clone()),
        };
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let password = password.to_string();
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if ok && known {
            let mut map = crate::lock(&self.verified);
            if map.len() >= REMEMBER_MAX {
                map.retain(|_, at| at.elapsed() < REMEMBER);
                if map.len() >= REMEMBER_MAX {
                    map.clear();
                }
            }
            map.insert(tag, Instant::now());
        }
        ok && known
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn bcrypt_only() {
        let h = bcrypt::hash("s3cret", 4).unwrap();
        let users = Users::parse(&format!("# team\nalice:{h}\n\n"), "t").unwrap();
        assert!(users.verify("alice", "s3cret").await);
        assert!(users.verify("alice", "s3cret").await, "remembered");
        assert!(!users.verify("alice", "wrong").await);
        assert!(!users.verify("bob", "s3cret").await);
        for (text, want) in [
            ("bob:$apr1$abc$defghijklmnopqrstuvwx", "only bcrypt"),
            ("carol:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "only bcrypt"),
            ("dave:plain", "only bcrypt"),
            ("nocolon", "not user:hash"),
            (&format!("a:{h}\na:{h}"), "appears twice"),
            (
                &format!("eve:{}", h.replacen("$04$", "$31$", 1)),
                "a bcrypt cost of 31",
            ),
        ] {
            let err = Users::parse(text, "f").err().unwrap();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains("htpasswd file f, line"), "{err}");
        }
    }
}
