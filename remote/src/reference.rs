//! Image references as a person types them, normalised exactly as docker normalises them.
//!
//! `busybox`, `user/app:1`, `localhost:5000/a/b@sha256:…` all name an image on some registry.
//! [`ImageRef::parse`] splits such a string into a registry host, a repository path (validated
//! by [`RepoName`]), an optional [`Tag`] and an optional [`Digest`], filling in docker's
//! defaults: the registry `docker.io`, the `library/` prefix for its official images, and the
//! tag `latest` when neither a tag nor a digest was given. [`ImageRef::familiar`] turns it back
//! into the short form docker prints (`busybox:latest`), [`Display`](fmt::Display) into the
//! full form (`docker.io/library/busybox:latest`).

use std::fmt;
use std::str::FromStr;

use berth_storage::{Digest, DigestError, NameError, Reference, RepoName, Tag};

/// The registry a name without a host refers to.
pub const DEFAULT_REGISTRY: &str = "docker.io";
/// Where docker.io's distribution API really lives.
pub const DEFAULT_REGISTRY_API_HOST: &str = "registry-1.docker.io";
/// The tag a reference gets when it names neither a tag nor a digest.
pub const DEFAULT_TAG: &str = "latest";
/// docker's limit on a whole name, registry host included.
pub const MAX_FULL_NAME_LEN: usize = 255;

/// Host names that mean docker.io.
const DOCKER_IO_ALIASES: &[&str] = &["index.docker.io", "registry-1.docker.io"];
const OFFICIAL_PREFIX: &str = "library/";

/// Why a string is not an image reference. Messages follow docker's wording so a person who
/// knows docker's errors recognises them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format: the reference is empty")]
    Empty,
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    Uppercase(String),
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexName(String),
    #[error("invalid reference format: repository name must not be more than 255 characters ({0} given)")]
    TooLong(usize),
    #[error("invalid reference format: {host:?} is not a valid registry host in {reference:?}")]
    InvalidRegistry { reference: String, host: String },
    #[error("invalid reference format: {reference:?}: {source}")]
    InvalidName {
        reference: String,
        source: NameError,
    },
    #[error("invalid reference format: {reference:?}: {source}")]
    InvalidDigest {
        reference: String,
        source: DigestError,
    },
}

/// A normalised image reference: where the image lives and which of its versions is meant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: RepoName,
    tag: Option<Tag>,
    digest: Option<Digest>,
}

impl ImageRef {
    /// Parses and normalises `s` as docker's `ParseNormalizedNamed` followed by
    /// `TagNameOnly` does: a reference with neither tag nor digest gets `latest`.
    pub fn parse(s: &str) -> Result<ImageRef, ReferenceError> {
        if s.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(ReferenceError::HexName(s.to_string()));
        }
        let (named, digest) = match s.split_once('@') {
            Some((named, digest)) => {
                let digest =
                    digest
                        .parse::<Digest>()
                        .map_err(|source| ReferenceError::InvalidDigest {
                            reference: s.to_string(),
                            source,
                        })?;
                (named, Some(digest))
            }
            None => (s, None),
        };

        let (registry, remainder) = split_registry(named);
        // Any further `:` belongs to the tag: the registry's port has been split off already.
        let (path, tag) = match remainder.split_once(':') {
            Some((path, tag)) => (path, Some(tag)),
            None => (remainder, None),
        };
        if path.to_lowercase() != path {
            return Err(ReferenceError::Uppercase(path.to_string()));
        }
        if !valid_registry(&registry) {
            return Err(ReferenceError::InvalidRegistry {
                reference: s.to_string(),
                host: registry,
            });
        }
        let registry = if DOCKER_IO_ALIASES.contains(&registry.as_str()) {
            DEFAULT_REGISTRY.to_string()
        } else {
            registry
        };
        let path = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path.to_string()
        };
        let full_len = registry.len() + 1 + path.len();
        if full_len > MAX_FULL_NAME_LEN {
            return Err(ReferenceError::TooLong(full_len));
        }
        let invalid_name = |source| ReferenceError::InvalidName {
            reference: s.to_string(),
            source,
        };
        let repository = path.parse::<RepoName>().map_err(invalid_name)?;
        let tag = match tag {
            Some(t) => Some(t.parse::<Tag>().map_err(invalid_name)?),
            None if digest.is_none() => Some(DEFAULT_TAG.parse::<Tag>().map_err(invalid_name)?),
            None => None,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The registry host as named, normalised: `docker.io`, `localhost:5000`, `ghcr.io`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host whose distribution API serves this image: `registry-1.docker.io` for
    /// docker.io, the registry itself for every other.
    pub fn api_host(&self) -> &str {
        if self.registry == DEFAULT_REGISTRY {
            DEFAULT_REGISTRY_API_HOST
        } else {
            &self.registry
        }
    }

    /// The repository path on the registry: `library/busybox`.
    pub fn repository(&self) -> &RepoName {
        &self.repository
    }

    pub fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry's manifest endpoint for: the digest when there is one (it
    /// pins the content; the tag is then kept only for display), else the tag.
    pub fn reference(&self) -> Reference {
        match (&self.digest, &self.tag) {
            (Some(d), _) => Reference::Digest(d.clone()),
            (None, Some(t)) => Reference::Tag(t.clone()),
            (None, None) => unreachable!("parse gives every reference a tag or a digest"),
        }
    }

    /// The full name without tag or digest: `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name as docker prints it in `images`' REPOSITORY column: `busybox`, `user/app`,
    /// `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.registry != DEFAULT_REGISTRY {
            return self.name();
        }
        let path = self.repository.as_str();
        match path.strip_prefix(OFFICIAL_PREFIX) {
            Some(rest) if !rest.contains('/') => rest.to_string(),
            _ => path.to_string(),
        }
    }

    /// The short form docker prints: `busybox:latest`, `user/app@sha256:…`.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        self.push_suffix(&mut s);
        s
    }

    /// The same image with another tag and no digest (what `tag` creates).
    pub fn with_tag(&self, tag: Tag) -> ImageRef {
        ImageRef {
            tag: Some(tag),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to `digest`, keeping the tag for display.
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    fn push_suffix(&self, s: &mut String) {
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t.as_str());
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
    }
}

/// docker's `splitDockerDomain`: the first component is a registry host when it contains a
/// `.` or a `:`, is `localhost`, or has upper case (a repository path never does).
fn split_registry(name: &str) -> (String, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_string(), rest)
        }
        _ => (DEFAULT_REGISTRY.to_string(), name),
    }
}

/// A host as docker's grammar admits it: DNS-like labels or a bracketed IPv6 address, then an
/// optional numeric port.
fn valid_registry(host: &str) -> bool {
    let (host, port) = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.is_empty() || !v6.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
                    return false;
                }
                match after {
                    "" => return true,
                    p => match p.strip_prefix(':') {
                        Some(port) => ("", Some(port)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match host.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
    }
    if host.is_empty() {
        // Only a bracketed IPv6 address leaves the host part empty here.
        return port.is_some();
    }
    host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-')
            && b[0] != b'-'
            && b[b.len() - 1] != b'-'
    })
}

impl FromStr for ImageRef {
    type Err = ReferenceError;

    fn from_str(s: &str) -> Result<ImageRef, ReferenceError> {
        ImageRef::parse(s)
    }
}

/// The full normalised form: `docker.io/library/busybox:latest`.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = self.name();
        self.push_suffix(&mut s);
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! d {
        () => {
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        };
    }
    const D: &str = d!();

    #[test]
    fn normalises_as_docker_does() {
        // input, registry, repository, tag, digest, familiar form, API host
        type Row<'a> = (
            &'a str,
            &'a str,
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
            &'a str,
        );
        #[rustfmt::skip]
        let table: &[Row] = &[
            ("busybox", "docker.io", "library/busybox", Some("latest"), None, "busybox:latest", "registry-1.docker.io"),
            ("busybox:1.36", "docker.io", "library/busybox", Some("1.36"), None, "busybox:1.36", "registry-1.docker.io"),
            ("library/busybox", "docker.io", "library/busybox", Some("latest"), None, "busybox:latest", "registry-1.docker.io"),
            ("docker.io/busybox", "docker.io", "library/busybox", Some("latest"), None, "busybox:latest", "registry-1.docker.io"),
            ("docker.io/library/busybox:1", "docker.io", "library/busybox", Some("1"), None, "busybox:1", "registry-1.docker.io"),
            ("index.docker.io/busybox", "docker.io", "library/busybox", Some("latest"), None, "busybox:latest", "registry-1.docker.io"),
            ("registry-1.docker.io/user/app", "docker.io", "user/app", Some("latest"), None, "user/app:latest", "registry-1.docker.io"),
            ("user/app", "docker.io", "user/app", Some("latest"), None, "user/app:latest", "registry-1.docker.io"),
            ("library/a/b", "docker.io", "library/a/b", Some("latest"), None, "library/a/b:latest", "registry-1.docker.io"),
            ("user/app/sub:v2", "docker.io", "user/app/sub", Some("v2"), None, "user/app/sub:v2", "registry-1.docker.io"),
            ("localhost/x", "localhost", "x", Some("latest"), None, "localhost/x:latest", "localhost"),
            ("localhost:5000/a/b:1", "localhost:5000", "a/b", Some("1"), None, "localhost:5000/a/b:1", "localhost:5000"),
            ("127.0.0.1:5000/x", "127.0.0.1:5000", "x", Some("latest"), None, "127.0.0.1:5000/x:latest", "127.0.0.1:5000"),
            ("ghcr.io/org/app", "ghcr.io", "org/app", Some("latest"), None, "ghcr.io/org/app:latest", "ghcr.io"),
            ("[::1]:5000/x:t", "[::1]:5000", "x", Some("t"), None, "[::1]:5000/x:t", "[::1]:5000"),
            ("Registry.Example.com/x", "Registry.Example.com", "x", Some("latest"), None, "Registry.Example.com/x:latest", "Registry.Example.com"),
            // No slash: `localhost:5000` is the repository `localhost` with tag `5000`, as in docker.
            ("localhost:5000", "docker.io", "library/localhost", Some("5000"), None, "localhost:5000", "registry-1.docker.io"),
            ("a_b__c-d--e.f", "docker.io", "library/a_b__c-d--e.f", Some("latest"), None, "a_b__c-d--e.f:latest", "registry-1.docker.io"),
            (concat!("busybox@", d!()), "docker.io", "library/busybox", None, Some(D), concat!("busybox@", d!()), "registry-1.docker.io"),
            (concat!("user/app:1.0@", d!()), "docker.io", "user/app", Some("1.0"), Some(D), concat!("user/app:1.0@", d!()), "registry-1.docker.io"),
            (concat!("localhost:5000/a/b@", d!()), "localhost:5000", "a/b", None, Some(D), concat!("localhost:5000/a/b@", d!()), "localhost:5000"),
        ];

        for &(input, registry, repo, tag, digest, familiar, api) in table {
            let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry(), registry, "{input}");
            assert_eq!(r.repository().as_str(), repo, "{input}");
            assert_eq!(r.tag().map(Tag::as_str), tag, "{input}");
            assert_eq!(r.digest().map(Digest::as_str), digest, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
            assert_eq!(r.api_host(), api, "{input}");
            // The full form parses back to the same reference.
            let full = r.to_string();
            assert!(
                full.starts_with(&format!("{registry}/{repo}")),
                "{input}: {full}"
            );
            assert_eq!(ImageRef::parse(&full).unwrap(), r, "{input}: {full}");
            // So does the familiar form.
            assert_eq!(ImageRef::parse(&r.familiar()).unwrap(), r, "{input}");
        }
    }

    #[test]
    fn familiar_names_match_docker_images_column() {
        let table = [
            ("busybox", "busybox", "docker.io/library/busybox"),
            ("user/app:1", "user/app", "docker.io/user/app"),
            ("library/a/b", "library/a/b", "docker.io/library/a/b"),
            ("localhost:5000/x", "localhost:5000/x", "localhost:5000/x"),
            (
                "ghcr.io/library/x",
                "ghcr.io/library/x",
                "ghcr.io/library/x",
            ),
        ];
        for (input, familiar_name, name) in table {
            let r = ImageRef::parse(input).unwrap();
            assert_eq!(r.familiar_name(), familiar_name, "{input}");
            assert_eq!(r.name(), name, "{input}");
        }
    }

    #[test]
    fn digest_wins_for_resolution() {
        let r = ImageRef::parse(&format!("user/app:1.0@{D}")).unwrap();
        assert_eq!(r.reference(), Reference::Digest(D.parse().unwrap()));
        assert_eq!(r.to_string(), format!("docker.io/user/app:1.0@{D}"));
        let r = ImageRef::parse("user/app:1.0").unwrap();
        assert_eq!(r.reference(), Reference::Tag("1.0".parse().unwrap()));
        let pinned = r.with_digest(D.parse().unwrap());
        assert_eq!(pinned.familiar(), format!("user/app:1.0@{D}"));
        assert_eq!(
            pinned.with_tag("2".parse().unwrap()).familiar(),
            "user/app:2"
        );
    }

    #[test]
    fn rejects_malformed_references() {
        let hex = "a".repeat(64);
        let long = format!("x/{}", "a".repeat(260));
        let uppercase = |s: &str| ReferenceError::Uppercase(s.to_string());
        type Check = fn(&ReferenceError) -> bool;
        let table: Vec<(String, Check)> = vec![
            (String::new(), |e| *e == ReferenceError::Empty),
            ("Busybox".into(), |e| {
                *e == ReferenceError::Uppercase("Busybox".into())
            }),
            ("user/App:1".into(), |e| {
                *e == ReferenceError::Uppercase("user/App".into())
            }),
            (
                "localhost:5000/Up".into(),
                |e| matches!(e, ReferenceError::Uppercase(p) if p == "Up"),
            ),
            (hex, |e| matches!(e, ReferenceError::HexName(_))),
            (long, |e| matches!(e, ReferenceError::TooLong(_))),
            ("busybox:".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidName {
                        source: NameError::EmptyTag,
                        ..
                    }
                )
            }),
            ("busybox:-x".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidName {
                        source: NameError::InvalidTag(_),
                        ..
                    }
                )
            }),
            ("busybox:a:b".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidName {
                        source: NameError::InvalidTag(_),
                        ..
                    }
                )
            }),
            (format!("busybox:{}", "t".repeat(129)), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidName {
                        source: NameError::TagTooLong(_),
                        ..
                    }
                )
            }),
            ("user//app".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidName {
                        source: NameError::EmptyComponent(_),
                        ..
                    }
                )
            }),
            ("user/app/".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidName {
                        source: NameError::EmptyComponent(_),
                        ..
                    }
                )
            }),
            ("/app".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidName {
                        source: NameError::EmptyComponent(_),
                        ..
                    }
                )
            }),
            ("user/../app".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidName {
                        source: NameError::InvalidComponent { .. },
                        ..
                    }
                )
            }),
            ("user/-app".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidName {
                        source: NameError::InvalidComponent { .. },
                        ..
                    }
                )
            }),
            ("user/a___b".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidName {
                        source: NameError::InvalidComponent { .. },
                        ..
                    }
                )
            }),
            ("localhost:5000/".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidName {
                        source: NameError::EmptyName,
                        ..
                    }
                )
            }),
            ("busybox@".into(), |e| {
                matches!(e, ReferenceError::InvalidDigest { .. })
            }),
            ("busybox@sha256:abc".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidDigest {
                        source: DigestError::WrongLength { .. },
                        ..
                    }
                )
            }),
            ("busybox@md5:abc".into(), |e| {
                matches!(
                    e,
                    ReferenceError::InvalidDigest {
                        source: DigestError::UnsupportedAlgorithm(_),
                        ..
                    }
                )
            }),
            (
                format!("busybox@{}", D.to_uppercase().replace("SHA256", "sha256")),
                |e| {
                    matches!(
                        e,
                        ReferenceError::InvalidDigest {
                            source: DigestError::InvalidHex(_),
                            ..
                        }
                    )
                },
            ),
            (format!("@{D}"), |e| {
                matches!(e, ReferenceError::InvalidName { .. })
            }),
            ("localhost:port/x".into(), |e| {
                matches!(e, ReferenceError::InvalidRegistry { .. })
            }),
            ("-bad.io/x".into(), |e| {
                matches!(e, ReferenceError::InvalidRegistry { .. })
            }),
            ("bad..io/x".into(), |e| {
                matches!(e, ReferenceError::InvalidRegistry { .. })
            }),
            ("[zz]:5000/x".into(), |e| {
                matches!(e, ReferenceError::InvalidRegistry { .. })
            }),
            ("ba d.io/x".into(), |e| {
                matches!(e, ReferenceError::InvalidRegistry { .. })
            }),
        ];
        for (input, check) in table {
            let err = ImageRef::parse(&input).expect_err(&input);
            assert!(check(&err), "{input:?} gave {err:?}");
            assert!(err.to_string().contains("invalid"), "{input:?}: {err}");
        }
        assert_eq!(
            uppercase("user/App").to_string(),
            "invalid reference format: repository name (user/App) must be lowercase"
        );
    }
}
