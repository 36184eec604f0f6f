//! What the page's views show, read from the store: repositories with their last push, a
//! repository's tags with what each points at, an image's manifest, config and referrers, the
//! mirror's upstreams.
//!
//! Manifests are read as the store holds them (the API validated them on push) into the few
//! fields the page shows; a field a manifest lacks is shown as absent, never guessed.

use std::collections::BTreeMap;
use std::time::SystemTime;

use berth_storage::{Descriptor, Digest, Reference, RepoName, Tag};
use serde::Deserialize;

use super::{Refusal, Visit};
use crate::api::{self, Registry};
use crate::auth::Action;

/// Repositories per page, unless the query asks for another number (at most [`MAX_PAGE`]).
pub const PAGE: usize = 50;
const MAX_PAGE: usize = 500;
/// Tags per page of a repository.
pub const TAGS_PAGE: usize = 50;

/// How the repository list is asked for: `?q=…&sort=name|pushed&page=N&n=N`.
#[derive(Debug, Clone)]
pub struct Listing {
    pub search: String,
    pub by_push: bool,
    pub page: usize,
    pub per_page: usize,
}

impl Listing {
    pub fn from_query(q: &api::Query) -> Listing {
        Listing {
            search: q
                .get("q")
                .map(|s| s.trim().to_lowercase())
                .unwrap_or_default(),
            by_push: q.get("sort").is_some_and(|s| s == "pushed"),
            page: q
                .get("page")
                .and_then(|p| p.parse().ok())
                .unwrap_or(1)
                .max(1),
            per_page: q
                .get("n")
                .and_then(|n| n.parse().ok())
                .unwrap_or(PAGE)
                .clamp(1, MAX_PAGE),
        }
    }
}

pub struct RepoRow {
    pub name: String,
    pub pushed: Option<SystemTime>,
}

/// One page of the repository list, and how many repositories matched in all.
pub struct Repositories {
    pub rows: Vec<RepoRow>,
    pub matched: usize,
}

/// The repositories the visitor may pull that match the search, sorted and paged. One listing
/// of the catalog gives names and push times; the rules are asked per name.
pub async fn repositories(
    reg: &Registry,
    visit: &Visit,
    listing: &Listing,
) -> Result<Repositories, Refusal> {
    let all = reg.store.repos.catalog_pushed().await?;
    let mut rows: Vec<RepoRow> = all
        .into_iter()
        .filter(|(name, _)| listing.search.is_empty() || name.contains(&listing.search))
        .filter(|(name, _)| visit.may(reg, name, Action::Pull))
        .map(|(name, pushed)| RepoRow { name, pushed })
        .collect();
    if listing.by_push {
        // Newest first; the catalog's name order breaks ties.
        rows.sort_by_key(|r| std::cmp::Reverse(r.pushed));
    }
    let matched = rows.len();
    let start = (listing.page - 1).saturating_mul(listing.per_page);
    let rows = rows
        .into_iter()
        .skip(start)
        .take(listing.per_page)
        .collect();
    Ok(Repositories { rows, matched })
}

/// What a tag or a digest in a delete form names.
pub enum Target {
    Tag(Tag),
    Manifest(Digest),
}

impl Target {
    pub fn parse(raw: &str) -> Option<Target> {
        match raw.parse::<Reference>().ok()? {
            Reference::Tag(t) => Some(Target::Tag(t)),
            Reference::Digest(d) => Some(Target::Manifest(d)),
        }
    }

    pub fn reference(&self) -> String {
        match self {
            Target::Tag(t) => t.to_string(),
            Target::Manifest(d) => d.to_string(),
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tag(t) => write!(f, "tag {t}"),
            Target::Manifest(d) => write!(f, "manifest {d}"),
        }
    }
}

// ---- manifests as the page reads them ----

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Desc {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    #[serde(default)]
    pub size: u64,
    #[serde(default)]
    pub platform: Option<Platform>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    artifact_type: Option<String>,
    #[serde(default)]
    config: Option<Desc>,
    #[serde(default)]
    layers: Vec<Desc>,
    #[serde(default)]
    manifests: Vec<Desc>,
    #[serde(default)]
    subject: Option<Desc>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// An image config's fields the page shows.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ImageConfig {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub variant: Option<String>,
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub config: RunConfig,
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RunConfig {
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default)]
    pub cmd: Option<Vec<String>>,
    #[serde(default)]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default)]
    pub working_dir: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, serde_json::Value>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HistoryEntry {
    #[serde(default)]
    pub created: Option<String>,
    #[serde(default)]
    pub created_by: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub empty_layer: bool,
}

const CONFIG_LIMIT: u64 = 4 << 20;

/// A manifest of the repository: its media type and bytes, or `None` when it is not there.
async fn read_manifest(
    reg: &Registry,
    repo: &RepoName,
    d: &Digest,
) -> Result<Option<(String, ManifestDoc)>, Refusal> {
    let Some(media_type) = reg.store.repos.manifest(repo, d).await? else {
        return Ok(None);
    };
    let body = reg.store.blobs.read(d).await?;
    let doc: ManifestDoc = serde_json::from_slice(&body).unwrap_or_default();
    let media_type = doc.media_type.clone().unwrap_or(media_type);
    Ok(Some((media_type, doc)))
}

async fn read_config(reg: &Registry, config: &Desc) -> Option<ImageConfig> {
    if config.size > CONFIG_LIMIT {
        return None;
    }
    let d: Digest = config.digest.parse().ok()?;
    let body = reg.store.blobs.read(&d).await.ok()?;
    serde_json::from_slice(&body).ok()
}

fn is_index(doc: &ManifestDoc) -> bool {
    !doc.manifests.is_empty() || doc.config.is_none()
}

/// An image's compressed size: its config and layers as the registry stores them.
fn image_size(doc: &ManifestDoc) -> u64 {
    doc.config.as_ref().map_or(0, |c| c.size) + doc.layers.iter().map(|l| l.size).sum::<u64>()
}

/// What a tag or a child points at, in a line: kind, size, platforms.
#[derive(Debug, Clone)]
pub struct Summary {
    pub digest: Digest,
    pub media_type: String,
    /// For an index, its images' sizes added up (what pulling every platform costs).
    pub size: u64,
    pub platforms: Vec<String>,
    pub index: bool,
    /// An artifact (signature, SBOM…) rather than a runnable image.
    pub artifact_type: Option<String>,
}

async fn summary(reg: &Registry, repo: &RepoName, d: &Digest) -> Result<Option<Summary>, Refusal> {
    let Some((media_type, doc)) = read_manifest(reg, repo, d).await? else {
        return Ok(None);
    };
    if is_index(&doc) {
        let reads: Vec<_> = doc
            .manifests
            .iter()
            .map(|c| child_size(reg, repo, c))
            .collect();
        let children = futures::future::join_all(reads).await;
        return Ok(Some(Summary {
            digest: d.clone(),
            media_type,
            size: children.iter().flatten().sum(),
            platforms: doc
                .manifests
                .iter()
                .filter_map(|m| m.platform.as_ref())
                .filter(|p| p.os != "unknown")
                .map(|p| p.to_string())
                .collect(),
            index: true,
            artifact_type: doc.artifact_type.clone(),
        }));
    }
    let config = doc.config.as_ref();
    let artifact_type = doc.artifact_type.clone().or_else(|| {
        config
            .filter(|c| !is_image_config(&c.media_type))
            .map(|c| c.media_type.clone())
    });
    let platforms = match config {
        Some(c) if artifact_type.is_none() => read_config(reg, c)
            .await
            .map(|cfg| {
                vec![Platform {
                    architecture: cfg.architecture,
                    os: cfg.os,
                    variant: cfg.variant,
                }
                .to_string()]
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok(Some(Summary {
        digest: d.clone(),
        media_type,
        size: image_size(&doc),
        platforms,
        index: false,
        artifact_type,
    }))
}

/// The size of an index's child image, when it is in the repository.
async fn child_size(reg: &Registry, repo: &RepoName, child: &Desc) -> Option<u64> {
    let d: Digest = child.digest.parse().ok()?;
    let (_, doc) = read_manifest(reg, repo, &d).await.ok()??;
    Some(image_size(&doc))
}

/// An index's child with its summary, when it is in the repository.
async fn child_summary(reg: &Registry, repo: &RepoName, child: Desc) -> (Desc, Option<Summary>) {
    let s = match child.digest.parse::<Digest>() {
        Ok(d) => summary(reg, repo, &d).await.ok().flatten(),
        Err(_) => None,
    };
    (child, s)
}

fn is_image_config(media_type: &str) -> bool {
    media_type == "application/vnd.oci.image.config.v1+json"
        || media_type == "application/vnd.docker.container.image.v1+json"
}

pub struct TagRow {
    pub tag: String,
    /// What it points at; `None` when the manifest is gone (a broken tag is shown as such).
    pub summary: Option<Summary>,
    pub pushed: Option<SystemTime>,
}

pub struct Tags {
    pub rows: Vec<TagRow>,
    pub total: usize,
    pub page: usize,
}

/// One page of a repository's tags, each with its manifest's summary.
pub async fn tags(reg: &Registry, repo: &RepoName, page: usize) -> Result<Tags, Refusal> {
    if !reg.store.repos.exists(repo).await? {
        return Err(Refusal::NotFound(format!("There is no repository {repo}.")));
    }
    let names = reg.store.repos.tags(repo, None, None).await?.items;
    let total = names.len();
    let start = (page - 1).saturating_mul(TAGS_PAGE);
    let wanted: Vec<String> = names.into_iter().skip(start).take(TAGS_PAGE).collect();
    let reads: Vec<_> = wanted
        .into_iter()
        .map(|name| tag_row(reg, repo, name))
        .collect();
    let rows = futures::future::join_all(reads)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Tags { rows, total, page })
}

async fn tag_row(reg: &Registry, repo: &RepoName, name: String) -> Result<TagRow, Refusal> {
    let tag: Tag = name
        .parse()
        .map_err(|_| Refusal::Failed(format!("stored tag {name:?}")))?;
    let digest = reg.store.repos.tag(repo, &tag).await?;
    let pushed = reg.store.repos.tag_pushed(repo, &tag).await?;
    let summary = match digest {
        Some(d) => summary(reg, repo, &d).await?,
        None => None,
    };
    Ok(TagRow {
        tag: name,
        summary,
        pushed,
    })
}

/// One step of the image's history, with the size of the layer it made (none for steps that
/// changed only the config).
pub struct Step {
    pub entry: HistoryEntry,
    pub layer_size: Option<u64>,
}

/// Referrers of one artifact type.
pub struct ReferrerGroup {
    pub artifact_type: String,
    pub referrers: Vec<Descriptor>,
}

pub struct Image {
    pub summary: Summary,
    /// The tags that point at it.
    pub tags: Vec<String>,
    /// What the visitor asked for (a tag or the digest).
    pub reference: String,
    /// For an index: its children, each summarised.
    pub children: Vec<(Desc, Option<Summary>)>,
    pub config: Option<ImageConfig>,
    pub config_desc: Option<Desc>,
    pub layers: Vec<Desc>,
    pub history: Vec<Step>,
    pub referrers: Vec<ReferrerGroup>,
    pub subject: Option<Desc>,
    pub annotations: BTreeMap<String, String>,
}

/// Everything the image view shows about `reference` (a tag or a digest) in `repo`.
pub async fn image(reg: &Registry, repo: &RepoName, reference: &str) -> Result<Image, Refusal> {
    let not_found = || Refusal::NotFound(format!("{repo} has no manifest {reference}."));
    let d = match reference.parse::<Reference>().map_err(|_| not_found())? {
        Reference::Digest(d) => d,
        Reference::Tag(t) => reg.store.repos.tag(repo, &t).await?.ok_or_else(not_found)?,
    };
    let Some((_, doc)) = read_manifest(reg, repo, &d).await? else {
        return Err(not_found());
    };
    let top = summary(reg, repo, &d).await?.ok_or_else(not_found)?;
    let tags = reg
        .store
        .repos
        .tags_of(repo, &d)
        .await?
        .into_iter()
        .map(|t| t.to_string())
        .collect();
    let reads: Vec<_> = doc
        .manifests
        .iter()
        .cloned()
        .map(|c| child_summary(reg, repo, c))
        .collect();
    let children = futures::future::join_all(reads).await;
    let config = match &doc.config {
        Some(c) if is_image_config(&c.media_type) => read_config(reg, c).await,
        _ => None,
    };
    let history = match &config {
        Some(cfg) => {
            let mut sizes = doc.layers.iter().map(|l| l.size);
            cfg.history
                .iter()
                .map(|h| Step {
                    entry: h.clone(),
                    layer_size: if h.empty_layer { None } else { sizes.next() },
                })
                .collect()
        }
        None => Vec::new(),
    };
    let mut groups: BTreeMap<String, Vec<Descriptor>> = BTreeMap::new();
    for r in reg.store.repos.referrers(repo, &d).await? {
        let kind = r
            .artifact_type
            .clone()
            .unwrap_or_else(|| r.media_type.clone());
        groups.entry(kind).or_default().push(r);
    }
    Ok(Image {
        summary: top,
        tags,
        reference: reference.to_string(),
        children,
        config,
        config_desc: doc.config.clone(),
        layers: doc.layers.clone(),
        history,
        referrers: groups
            .into_iter()
            .map(|(artifact_type, referrers)| ReferrerGroup {
                artifact_type,
                referrers,
            })
            .collect(),
        subject: doc.subject.clone(),
        annotations: doc.annotations.clone(),
    })
}

/// One upstream of the mirror and the repositories it has cached that the visitor may pull.
pub struct UpstreamView {
    pub summary: api::UpstreamSummary,
    pub cached: Vec<RepoRow>,
}

pub async fn upstreams(reg: &Registry, visit: &Visit) -> Result<Vec<UpstreamView>, Refusal> {
    let Some(front) = reg.front() else {
        return Ok(Vec::new());
    };
    let ups = front.upstreams();
    if ups.is_empty() {
        return Ok(Vec::new());
    }
    let all = reg.store.repos.catalog_pushed().await?;
    Ok(ups
        .into_iter()
        .map(|summary| {
            let prefix = format!("{}/", summary.cache_prefix);
            let cached = all
                .iter()
                .filter(|(n, _)| n.starts_with(&prefix) && visit.may(reg, n, Action::Pull))
                .map(|(name, pushed)| RepoRow {
                    name: name.clone(),
                    pushed: *pushed,
                })
                .collect();
            UpstreamView { summary, cached }
        })
        .collect())
}
