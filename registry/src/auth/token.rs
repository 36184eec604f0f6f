//! Signed tokens of the docker token protocol: issued by berth's own token service, verified on
//! every request, whoever issued them.
//!
//! berth signs with an ECDSA P-256 key (ES256) read from a PKCS#8 PEM file, written there on
//! first start when the file does not exist (without a path the key lives only in memory and
//! tokens die with the process). The header carries the key's libtrust id (`kid`), the form
//! CNCF distribution uses to pick a trusted key. A token is accepted when its signature checks
//! against berth's key or a trusted external service's key or certificate, its issuer is the
//! one that goes with that key, its audience is this registry's service name and it has not
//! expired (30 s of clock skew allowed).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use ring::rand::SecureRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde::{Deserialize, Serialize};

/// `[auth.token]`: berth's token service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    /// The `service` of the challenge and the tokens' audience.
    #[serde(default = "default_service")]
    pub service: String,
    /// The tokens' issuer.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// PKCS#8 PEM file of the P-256 signing key; created on first start when missing.
    #[serde(default)]
    pub key: Option<PathBuf>,
    /// Seconds a token is valid.
    #[serde(default = "default_lifetime")]
    pub lifetime: u64,
    /// The realm clients are sent to; by default `<scheme>://<Host of the request>/token`.
    #[serde(default)]
    pub realm: Option<String>,
    /// External token services whose tokens are accepted too.
    #[serde(default)]
    pub trust: Vec<TrustConfig>,
}

/// One external token service: its issuer name and its public key or certificate (PEM).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    pub issuer: String,
    pub key: PathBuf,
}

fn default_service() -> String {
    "berth".into()
}
fn default_issuer() -> String {
    "berth".into()
}
fn default_lifetime() -> u64 {
    300
}

/// One entry of a token's `access` claim.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceAccess {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl ResourceAccess {
    /// Parses a scope such as `repository:team/app:pull,push` or `registry:catalog:*`.
    pub fn parse_scope(scope: &str) -> Option<ResourceAccess> {
        let (kind, rest) = scope.split_once(':')?;
        let (name, actions) = rest.rsplit_once(':')?;
        if kind.is_empty() || name.is_empty() {
            return None;
        }
        Some(ResourceAccess {
            kind: kind.to_string(),
            name: name.to_string(),
            actions: actions
                .split(',')
                .filter(|a| !a.is_empty())
                .map(str::to_string)
                .collect(),
        })
    }

    pub fn is_repository(&self) -> bool {
        self.kind == "repository" || self.kind.starts_with("repository(")
    }

    pub fn grants(&self, action: &str) -> bool {
        self.actions.iter().any(|a| a == action || a == "*")
    }
}

#[derive(Serialize)]
struct OutClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    nbf: u64,
    iat: u64,
    jti: String,
    access: &'a [ResourceAccess],
}

#[derive(Deserialize)]
struct InClaims {
    #[serde(default)]
    sub: String,
    #[serde(default)]
    access: Vec<ResourceAccess>,
}

/// A token that checked out.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The subject; empty for an anonymous token.
    pub subject: String,
    pub access: Vec<ResourceAccess>,
    /// Whether berth issued it (so its rules are the ones that were applied).
    pub own: bool,
}

struct Verifier {
    issuer: String,
    key: DecodingKey,
    algorithms: Vec<Algorithm>,
    own: bool,
}

/// Issues and verifies tokens.
pub struct Tokens {
    pub service: String,
    pub issuer: String,
    pub lifetime: u64,
    pub realm: Option<String>,
    encoding: EncodingKey,
    kid: String,
    verifiers: Vec<Verifier>,
    rng: ring::rand::SystemRandom,
}

impl Tokens {
    pub fn new(config: &TokenConfig) -> Result<Tokens, String> {
        if config.lifetime == 0 || config.lifetime > 86_400 {
            return Err("auth.token.lifetime must be between 1 and 86400 seconds".into());
        }
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = match &config.key {
            Some(path) => load_or_create_key(path, &rng)?,
            None => {
                tracing::warn!(
                    "auth.token.key is not set: tokens are signed with a key that lives only in \
                     this process (they stop working on restart and on other processes)"
                );
                generate_key(&rng)?
            }
        };
        Tokens::with_key(config, pkcs8, rng)
    }

    /// Tokens signed by a key that lives only in this process: the web page's sessions when
    /// the registry has no token service of its own.
    pub fn in_memory(service: &str) -> Result<Tokens, String> {
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = generate_key(&rng)?;
        let config = TokenConfig {
            service: service.to_string(),
            issuer: service.to_string(),
            key: None,
            lifetime: default_lifetime(),
            realm: None,
            trust: Vec::new(),
        };
        Tokens::with_key(&config, pkcs8, rng)
    }

    fn with_key(
        config: &TokenConfig,
        pkcs8: Vec<u8>,
        rng: ring::rand::SystemRandom,
    ) -> Result<Tokens, String> {
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .map_err(|e| format!("auth.token.key: not a PKCS#8 P-256 key: {e}"))?;
        let point = pair.public_key().as_ref().to_vec();
        let mut verifiers = vec![Verifier {
            issuer: config.issuer.clone(),
            key: DecodingKey::from_ec_der(&point),
            algorithms: vec![Algorithm::ES256],
            own: true,
        }];
        for (i, t) in config.trust.iter().enumerate() {
            let at = format!("auth.token.trust[{i}].key {}", t.key.display());
            let pem = std::fs::read(&t.key).map_err(|e| format!("{at}: {e}"))?;
            let (key, algorithms) = if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                (k, vec![Algorithm::ES256, Algorithm::ES384])
            } else if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                let rsa = [
                    Algorithm::RS256,
                    Algorithm::RS384,
                    Algorithm::RS512,
                    Algorithm::PS256,
                    Algorithm::PS384,
                    Algorithm::PS512,
                ];
                (k, rsa.to_vec())
            } else {
                return Err(format!(
                    "{at}: not a PEM EC or RSA public key or certificate"
                ));
            };
            verifiers.push(Verifier {
                issuer: t.issuer.clone(),
                key,
                algorithms,
                own: false,
            });
        }
        Ok(Tokens {
            service: config.service.clone(),
            issuer: config.issuer.clone(),
            lifetime: config.lifetime,
            realm: config.realm.clone(),
            encoding: EncodingKey::from_ec_der(&pkcs8),
            kid: libtrust_key_id(&point),
            verifiers,
            rng,
        })
    }

    /// Signs a token for `subject` (empty for anonymous) granting `access`; returns the token
    /// and its issue time in seconds since the epoch.
    pub fn issue(&self, subject: &str, access: &[ResourceAccess]) -> Result<(String, u64), String> {
        self.issue_for(subject, access, &self.service, self.lifetime)
    }

    /// Signs a token for another audience than the registry's API (the web page's sessions,
    /// which the API must not take as bearer tokens), valid for `lifetime` seconds.
    pub fn issue_for(
        &self,
        subject: &str,
        access: &[ResourceAccess],
        audience: &str,
        lifetime: u64,
    ) -> Result<(String, u64), String> {
        let now = now();
        let mut jti = [0u8; 16];
        self.rng
            .fill(&mut jti)
            .map_err(|_| "no system randomness".to_string())?;
        let claims = OutClaims {
            iss: &self.issuer,
            sub: subject,
            aud: audience,
            exp: now + lifetime,
            nbf: now.saturating_sub(5),
            iat: now,
            jti: hex(&jti),
            access,
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)
            .map_err(|e| format!("signing a token: {e}"))?;
        Ok((token, now))
    }

    /// Checks a token's signature, issuer, audience and times.
    pub fn verify(&self, token: &str) -> Result<Verified, String> {
        self.verify_for(token, &self.service)
    }

    /// Checks a token issued for `audience` ([`Tokens::issue_for`]).
    pub fn verify_for(&self, token: &str, audience: &str) -> Result<Verified, String> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| format!("malformed: {e}"))?;
        let mut last = "no trusted key for its algorithm".to_string();
        for v in self.verifiers.iter() {
            if !v.algorithms.contains(&header.alg) {
                continue;
            }
            let mut validation = Validation::new(header.alg);
            validation.algorithms = vec![header.alg];
            validation.leeway = 30;
            validation.validate_nbf = true;
            validation.set_audience(&[audience]);
            validation.set_issuer(&[&v.issuer]);
            validation.set_required_spec_claims(&["exp", "iss", "aud"]);
            match jsonwebtoken::decode::<InClaims>(token, &v.key, &validation) {
                Ok(data) => {
                    return Ok(Verified {
                        subject: data.claims.sub,
                        access: data.claims.access,
                        own: v.own,
                    })
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn generate_key(rng: &ring::rand::SystemRandom) -> Result<Vec<u8>, String> {
    EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, rng)
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| "generating a token signing key failed".to_string())
}

/// The DER inside the first `-----BEGIN PRIVATE KEY-----` block.
fn pem_private_key(text: &str) -> Option<Vec<u8>> {
    let (_, body) = text.split_once("-----BEGIN PRIVATE KEY-----")?;
    let (b64, _) = body.split_once("-----END PRIVATE KEY-----")?;
    let b64: String = b64.split_whitespace().collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// Reads the signing key, or creates it (mode 0600, never overwriting one that appeared
/// meanwhile, so processes that start together agree on one key).
fn load_or_create_key(path: &Path, rng: &ring::rand::SystemRandom) -> Result<Vec<u8>, String> {
    let at = format!("auth.token.key {}", path.display());
    match std::fs::read_to_string(path) {
        Ok(text) => {
            return pem_private_key(&text).ok_or_else(|| {
                format!("{at}: no \"BEGIN PRIVATE KEY\" (PKCS#8) block; create one with openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256")
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("{at}: {e}")),
    }
    let der = generate_key(rng)?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(pem.as_bytes())?;
        f.sync_all()?;
        // A hard link publishes the key only if no other process got there first.
        let linked = std::fs::hard_link(&tmp, path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
            _ => Ok(()),
        }
    };
    write().map_err(|e| format!("{at}: creating the key: {e}"))?;
    tracing::info!(path = %path.display(), "created a token signing key");
    let text = std::fs::read_to_string(path).map_err(|e| format!("{at}: {e}"))?;
    pem_private_key(&text).ok_or_else(|| format!("{at}: unreadable after creation"))
}

/// libtrust's key id: the first 240 bits of the SHA-256 of the DER public key, in base32,
/// in groups of four separated by `:`.
fn libtrust_key_id(point: &[u8]) -> String {
    const P256_SPKI_PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(point);
    let sum = ring::digest::digest(&ring::digest::SHA256, &der);
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bits = sum.as_ref().iter().take(30);
    let mut out = String::new();
    let (mut acc, mut n) = (0u32, 0);
    for &b in bits {
        acc = acc << 8 | b as u32;
        n += 8;
        while n >= 5 {
            n -= 5;
            out.push(ALPHABET[(acc >> n & 31) as usize] as char);
        }
    }
    out.as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(":")
}

/// Seconds since the epoch as RFC 3339 UTC (`issued_at`).
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> TokenConfig {
        TokenConfig {
            service: "svc".into(),
            issuer: "me".into(),
            key: Some(dir.join("key.pem")),
            lifetime: 60,
            realm: None,
            trust: vec![],
        }
    }

    #[test]
    fn issue_verify_and_reload_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let t = Tokens::new(&config(dir.path())).unwrap();
        let access = vec![ResourceAccess::parse_scope("repository:a/b:pull,push").unwrap()];
        let (tok, _) = t.issue("alice", &access).unwrap();
        let v = t.verify(&tok).unwrap();
        assert_eq!(v.subject, "alice");
        assert_eq!(v.access, access);
        assert!(v.own);
        // The key file was written; a second service over it accepts the first one's tokens.
        let again = Tokens::new(&config(dir.path())).unwrap();
        assert!(again.verify(&tok).is_ok());
        // Another service name (audience), a tampered token, another key: refused.
        let mut other = config(dir.path());
        other.service = "else".into();
        assert!(Tokens::new(&other).unwrap().verify(&tok).is_err());
        let mut bad = tok.clone();
        bad.insert(tok.len() - 5, 'A');
        assert!(t.verify(&bad).is_err());
        let dir2 = tempfile::tempdir().unwrap();
        assert!(Tokens::new(&config(dir2.path()))
            .unwrap()
            .verify(&tok)
            .is_err());
        assert_eq!(t.kid.len(), 59);
    }

    #[test]
    fn scopes_and_dates() {
        let s = ResourceAccess::parse_scope("repository(plugin):x/y:pull").unwrap();
        assert!(s.is_repository() && s.grants("pull") && !s.grants("push"));
        let c = ResourceAccess::parse_scope("registry:catalog:*").unwrap();
        assert!(c.grants("anything") && !c.is_repository());
        assert!(ResourceAccess::parse_scope("nonsense").is_none());
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
