//! What the registry needs to know about a manifest it is given: its kind, and the
//! descriptors it references, checked against the declared media type.
//!
//! The bytes are stored exactly as received; this parse only validates them.

use std::collections::BTreeMap;

use berth_storage::{Descriptor, Digest};
use serde::Deserialize;

use crate::error::{Code, RegistryError};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An image or artifact manifest: a config and layers.
    Image,
    /// A list of manifests.
    Index,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawDescriptor {
    media_type: Option<String>,
    digest: Option<String>,
    size: Option<i64>,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    artifact_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<i64>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<RawDescriptor>,
    layers: Option<Vec<RawDescriptor>>,
    manifests: Option<Vec<RawDescriptor>>,
    subject: Option<RawDescriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A reference from a manifest to a blob or another manifest.
#[derive(Debug, Clone)]
pub struct Reference {
    pub digest: Digest,
    pub media_type: String,
    /// Foreign layers (with `urls`) live elsewhere and are not required to be in the registry.
    pub foreign: bool,
}

/// A manifest that passed validation.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub kind: Kind,
    pub media_type: String,
    /// Blobs (config and layers) for an image; child manifests for an index.
    pub references: Vec<Reference>,
    pub subject: Option<Digest>,
    /// The artifact type the referrers API reports for this manifest.
    pub artifact_type: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

fn invalid(msg: impl Into<String>) -> RegistryError {
    RegistryError::new(Code::ManifestInvalid, msg)
}

fn kind_of(media_type: &str) -> Option<Kind> {
    match media_type {
        OCI_MANIFEST | DOCKER_MANIFEST => Some(Kind::Image),
        OCI_INDEX | DOCKER_LIST => Some(Kind::Index),
        _ => None,
    }
}

fn descriptor(raw: RawDescriptor, field: &str) -> Result<(Reference, i64), RegistryError> {
    let media_type = raw
        .media_type
        .filter(|m| !m.is_empty())
        .ok_or_else(|| invalid(format!("{field}: mediaType is missing")))?;
    let digest_text = raw
        .digest
        .ok_or_else(|| invalid(format!("{field}: digest is missing")))?;
    let digest: Digest = digest_text
        .parse()
        .map_err(|e| RegistryError::new(Code::DigestInvalid, format!("{field}: {e}")))?;
    let size = raw
        .size
        .ok_or_else(|| invalid(format!("{field}: size is missing")))?;
    if size < 0 {
        return Err(invalid(format!("{field}: size is negative")));
    }
    Ok((
        Reference {
            digest,
            foreign: !raw.urls.is_empty(),
            media_type,
        },
        size,
    ))
}

impl Manifest {
    /// Validates `body` as a manifest sent with `content_type` (parameters stripped; may be empty).
    pub fn parse(body: &[u8], content_type: &str) -> Result<Manifest, RegistryError> {
        let raw: RawManifest = serde_json::from_slice(body)
            .map_err(|e| invalid(format!("manifest is not valid JSON of a manifest: {e}")))?;
        if raw.schema_version != Some(2) {
            return Err(invalid(format!(
                "schemaVersion must be 2, is {}",
                raw.schema_version
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "missing".into())
            )));
        }
        let declared = match content_type {
            "" | "application/json" | "application/octet-stream" => None,
            other => Some(other),
        };
        if let (Some(ct), Some(mt)) = (declared, raw.media_type.as_deref()) {
            if ct != mt {
                return Err(invalid(format!(
                    "Content-Type {ct} does not match the manifest's mediaType {mt}"
                )));
            }
        }
        let media_type = match declared.or(raw.media_type.as_deref()) {
            Some(m) => m.to_string(),
            None if raw.manifests.is_some() => OCI_INDEX.to_string(),
            None => OCI_MANIFEST.to_string(),
        };
        let kind = kind_of(&media_type)
            .ok_or_else(|| invalid(format!("manifest media type {media_type} is not supported")))?;
        let subject = match raw.subject {
            Some(s) => Some(descriptor(s, "subject")?.0.digest),
            None => None,
        };
        let mut references = Vec::new();
        let artifact_type;
        match kind {
            Kind::Image => {
                if raw.manifests.is_some() {
                    return Err(invalid("an image manifest cannot list manifests"));
                }
                let config = raw
                    .config
                    .ok_or_else(|| invalid("an image manifest needs a config"))?;
                let (config, _) = descriptor(config, "config")?;
                let layers = raw
                    .layers
                    .ok_or_else(|| invalid("an image manifest needs layers"))?;
                artifact_type = raw
                    .artifact_type
                    .clone()
                    .or_else(|| Some(config.media_type.clone()));
                references.push(config);
                for (i, l) in layers.into_iter().enumerate() {
                    references.push(descriptor(l, &format!("layers[{i}]"))?.0);
                }
            }
            Kind::Index => {
                if raw.config.is_some() || raw.layers.is_some() {
                    return Err(invalid("an index cannot have a config or layers"));
                }
                let manifests = raw
                    .manifests
                    .ok_or_else(|| invalid("an index needs manifests"))?;
                for (i, m) in manifests.into_iter().enumerate() {
                    let _ = &m.annotations;
                    let _ = &m.artifact_type;
                    references.push(descriptor(m, &format!("manifests[{i}]"))?.0);
                }
                artifact_type = raw.artifact_type.clone();
            }
        }
        Ok(Manifest {
            kind,
            media_type,
            references,
            subject,
            artifact_type,
            annotations: raw.annotations,
        })
    }

    /// The descriptor a referrers index lists for this manifest.
    pub fn as_referrer(&self, digest: &Digest, size: u64) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: digest.clone(),
            size,
            artifact_type: self.artifact_type.clone(),
            annotations: self.annotations.clone(),
        }
    }
}
