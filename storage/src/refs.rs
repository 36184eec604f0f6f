//! What a stored manifest points at: the one piece of a manifest's content the store itself
//! must read, because a blob is live while a live manifest needs it.
//!
//! Read leniently: the registry validated the manifest when it was pushed; here any JSON
//! document with descriptors in the OCI places (`config`, `layers`, `blobs`, `manifests`,
//! `subject`) is understood, whatever its media type, and anything else points at nothing.

use serde::Deserialize;

use crate::digest::Digest;

/// The digests a manifest refers to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ManifestRefs {
    /// Blobs it needs: its config, layers and (artifact manifests) blobs.
    pub blobs: Vec<Digest>,
    /// Manifests it needs: an index's children.
    pub children: Vec<Digest>,
    /// The manifest it refers to (OCI 1.1 `subject`): it does not need it; it follows it.
    pub subject: Option<Digest>,
}

impl ManifestRefs {
    /// Every digest the manifest needs to be whole: blobs and children.
    pub fn needs(&self) -> impl Iterator<Item = &Digest> {
        self.blobs.iter().chain(self.children.iter())
    }
}

#[derive(Deserialize)]
struct Desc {
    digest: Option<String>,
}

#[derive(Deserialize)]
struct Doc {
    config: Option<Desc>,
    #[serde(default)]
    layers: Vec<Desc>,
    #[serde(default)]
    blobs: Vec<Desc>,
    #[serde(default)]
    manifests: Vec<Desc>,
    subject: Option<Desc>,
}

fn digest(d: &Desc) -> Option<Digest> {
    d.digest.as_deref()?.parse().ok()
}

/// The references in a manifest's bytes; a document that is not a manifest has none.
pub fn manifest_refs(body: &[u8]) -> ManifestRefs {
    let Ok(doc) = serde_json::from_slice::<Doc>(body) else {
        return ManifestRefs::default();
    };
    ManifestRefs {
        blobs: doc
            .config
            .iter()
            .chain(&doc.layers)
            .chain(&doc.blobs)
            .filter_map(digest)
            .collect(),
        children: doc.manifests.iter().filter_map(digest).collect(),
        subject: doc.subject.as_ref().and_then(digest),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_of_each_kind() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let c = Digest::sha256_of(b"c");
        let image = format!(
            r#"{{"schemaVersion":2,"config":{{"digest":"{a}"}},"layers":[{{"digest":"{b}"}}],"subject":{{"digest":"{c}"}}}}"#
        );
        let r = manifest_refs(image.as_bytes());
        assert_eq!(r.blobs, [a.clone(), b.clone()]);
        assert_eq!(r.subject, Some(c.clone()));
        let index = format!(r#"{{"manifests":[{{"digest":"{a}"}},{{"digest":"bad"}}]}}"#);
        assert_eq!(manifest_refs(index.as_bytes()).children, [a]);
        assert_eq!(manifest_refs(b"not json"), ManifestRefs::default());
        assert_eq!(manifest_refs(b"[1,2]"), ManifestRefs::default());
    }
}
