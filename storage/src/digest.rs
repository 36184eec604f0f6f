//! Content digests: the `algorithm:hex` names that address every blob and manifest.
//!
//! [`Digest`] only exists in a validated form (`sha256:` + 64 or `sha512:` + 128 lowercase hex
//! digits), so a digest that reaches a path or a key can never climb out of the store.
//! [`Hasher`] computes a digest while bytes stream past; sha2 picks the CPU's SHA extensions at
//! run time when they exist, which is what makes hashing run at the speed of the hardware.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::Digest as _;

/// The hash functions the OCI image spec registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("digest {0:?} has no `algorithm:` prefix")]
    MissingAlgorithm(String),
    #[error("digest algorithm {0:?} is not supported (use sha256 or sha512)")]
    UnsupportedAlgorithm(String),
    #[error("digest {value:?} must have {expected} hex digits, has {actual}")]
    WrongLength {
        value: String,
        expected: usize,
        actual: usize,
    },
    #[error("digest {0:?} may contain only lowercase hex digits after the algorithm")]
    InvalidHex(String),
}

/// A validated content digest such as `sha256:e3b0c442…`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    // The whole `algorithm:hex` string; kept so that Display and as_str never allocate.
    full: String,
}

impl Digest {
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The hex part, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.full[self.algorithm.name().len() + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The digest of a byte slice held in memory.
    pub fn of(algorithm: Algorithm, data: &[u8]) -> Digest {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        h.finish()
    }

    pub fn sha256_of(data: &[u8]) -> Digest {
        Digest::of(Algorithm::Sha256, data)
    }

    /// Builds a digest from an algorithm and the raw hash output.
    fn from_raw(algorithm: Algorithm, raw: &[u8]) -> Digest {
        Digest {
            algorithm,
            full: format!("{}:{}", algorithm.name(), hex::encode(raw)),
        }
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Digest, DigestError> {
        let (alg, hex) = s
            .split_once(':')
            .ok_or_else(|| DigestError::MissingAlgorithm(s.to_string()))?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            _ => return Err(DigestError::UnsupportedAlgorithm(alg.to_string())),
        };
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::WrongLength {
                value: s.to_string(),
                expected: algorithm.hex_len(),
                actual: hex.len(),
            });
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::InvalidHex(s.to_string()));
        }
        Ok(Digest {
            algorithm,
            full: s.to_string(),
        })
    }
}

impl TryFrom<&str> for Digest {
    type Error = DigestError;
    fn try_from(s: &str) -> Result<Digest, DigestError> {
        s.parse()
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.full)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.full)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Computes a digest over bytes that arrive in pieces.
#[derive(Clone)]
pub enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Sha256 => Hasher::Sha256(sha2::Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(sha2::Sha512::new()),
        }
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Hasher::Sha256(_) => Algorithm::Sha256,
            Hasher::Sha512(_) => Algorithm::Sha512,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Hasher::Sha256(h) => Digest::from_raw(Algorithm::Sha256, &h.finalize()),
            Hasher::Sha512(h) => Digest::from_raw(Algorithm::Sha512, &h.finalize()),
        }
    }
}

/// Checks bytes against an expected digest while they stream past.
pub struct Verifier {
    expected: Digest,
    hasher: Hasher,
    len: u64,
}

impl Verifier {
    pub fn new(expected: Digest) -> Verifier {
        let hasher = Hasher::new(expected.algorithm());
        Verifier {
            expected,
            hasher,
            len: 0,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        self.len += data.len() as u64;
        self.hasher.update(data);
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// `Ok(expected)` when the bytes matched, else the digest they really have.
    pub fn finish(self) -> Result<Digest, Mismatch> {
        let actual = self.hasher.finish();
        if actual == self.expected {
            Ok(self.expected)
        } else {
            Err(Mismatch {
                expected: self.expected,
                actual,
            })
        }
    }
}

/// Bytes whose digest is not the one that was promised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("content has digest {actual}, expected {expected}")]
pub struct Mismatch {
    pub expected: Digest,
    pub actual: Digest,
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hashes_known_values() {
        assert_eq!(Digest::sha256_of(b"").as_str(), EMPTY);
        let d = Digest::of(Algorithm::Sha512, b"abc");
        assert!(d.as_str().starts_with("sha512:ddaf35a193617aba"));
        assert_eq!(d.hex().len(), 128);
    }

    #[test]
    fn verifier_reports_mismatch() {
        let mut v = Verifier::new(EMPTY.parse().unwrap());
        v.update(b"x");
        let err = v.finish().unwrap_err();
        assert_eq!(err.expected.as_str(), EMPTY);
    }
}
