//! The S3 backend: each key is an object in a bucket, under an optional key prefix.
//!
//! Works with AWS and with S3-compatible servers: the endpoint, region, path-style addressing
//! and credentials come from the config (or the standard `AWS_*` environment variables and
//! profile file; instance metadata is never probed), and checksums are only sent where S3
//! requires them, because many compatible servers reject the newer checksum headers.
//! A write is buffered up to one part; a larger one becomes a multipart upload whose parts are
//! sent while the next one fills, and which is completed, and so made visible, only on commit.

use std::ops::Range;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use aws_sdk_s3::config::{
    BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation,
};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_sdk_s3::Client;
use bytes::{Bytes, BytesMut};
use serde::Deserialize;
use tokio::task::JoinSet;

use super::{
    check_key, Backend, BackendError, ByteStream, Entry, EntryStream, ListPage, ObjectMeta,
    ObjectWriter, Result, Versioned,
};

/// S3's smallest part (but the last) of a multipart upload.
pub const MIN_PART_SIZE: usize = 5 << 20;
const DEFAULT_PART_SIZE: usize = 16 << 20;
/// The largest object a single CopyObject may copy.
const MAX_COPY_SIZE: u64 = 5 << 30;
const PARTS_IN_FLIGHT: usize = 4;
/// The most keys one DeleteObjects request may name.
const DELETE_BATCH: usize = 1000;

/// How to reach a bucket.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Config {
    pub bucket: String,
    /// `https://s3.example.com` or `http://127.0.0.1:9000`; AWS when absent.
    pub endpoint: Option<String>,
    /// Defaults to `AWS_REGION`, else `us-east-1`.
    pub region: Option<String>,
    /// Keys are stored under this prefix (`berth/` puts everything below `berth/`).
    #[serde(default)]
    pub prefix: String,
    /// `http://host/bucket/key` rather than `http://bucket.host/key`; most S3-compatible
    /// servers need it.
    #[serde(default)]
    pub path_style: bool,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    /// Size of multipart parts in bytes (at least 5 MiB).
    pub part_size: Option<usize>,
}

/// Objects in one S3 bucket.
#[derive(Clone)]
pub struct S3Backend {
    client: Client,
    bucket: String,
    prefix: String,
    part_size: usize,
}

impl std::fmt::Debug for S3Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

fn s3_err<E, R>(op: &'static str, key: &str, e: SdkError<E, R>) -> BackendError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    let status = match &e {
        SdkError::ServiceError(se) => Some(format!("{:?}", se.raw())),
        _ => None,
    };
    let not_found = status
        .as_deref()
        .is_some_and(|s| s.contains("StatusCode(404)") || s.contains("status: 404"));
    let text = format!("{}", DisplayErrorContext(&e));
    if not_found || text.contains("NoSuchKey") || text.contains("NotFound") {
        return BackendError::NotFound(key.to_string());
    }
    if text.contains("PreconditionFailed")
        || text.contains("ConditionalRequestConflict")
        || status
            .as_deref()
            .is_some_and(|s| s.contains("StatusCode(412)") || s.contains("status: 412"))
    {
        return BackendError::Precondition(key.to_string());
    }
    if text.contains("InvalidRange") {
        return BackendError::RangeNotSatisfiable {
            start: 0,
            end: 0,
            size: 0,
        };
    }
    BackendError::S3 {
        op,
        key: key.to_string(),
        message: text,
    }
}

impl S3Backend {
    /// Builds a client from the config. Credentials: the config's, else `AWS_ACCESS_KEY_ID` /
    /// `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`, else the shared profile file.
    pub fn new(config: &S3Config) -> Result<S3Backend, String> {
        if config.bucket.is_empty() {
            return Err("s3.bucket must not be empty".into());
        }
        let part_size = config.part_size.unwrap_or(DEFAULT_PART_SIZE);
        if part_size < MIN_PART_SIZE {
            return Err(format!(
                "s3.part_size is {part_size}; S3 needs at least {MIN_PART_SIZE} bytes"
            ));
        }
        let region = config
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_string());
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .force_path_style(config.path_style)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        match (&config.access_key_id, &config.secret_access_key) {
            (Some(id), Some(secret)) => {
                builder = builder.credentials_provider(Credentials::new(
                    id,
                    secret,
                    config.session_token.clone(),
                    None,
                    "berth-config",
                ));
            }
            (None, None) => {
                let chain = aws_config::meta::credentials::CredentialsProviderChain::first_try(
                    "environment",
                    aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
                )
                .or_else(
                    "profile",
                    aws_config::profile::ProfileFileCredentialsProvider::builder().build(),
                );
                builder = builder.credentials_provider(chain);
            }
            _ => {
                return Err(
                    "s3.access_key_id and s3.secret_access_key must be given together".into(),
                )
            }
        }
        if let Some(endpoint) = &config.endpoint {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(format!(
                    "s3.endpoint {endpoint:?} must start with http:// or https://"
                ));
            }
            builder = builder.endpoint_url(endpoint);
        }
        let prefix = config.prefix.trim_matches('/');
        Ok(S3Backend {
            client: Client::from_conf(builder.build()),
            bucket: config.bucket.clone(),
            prefix: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            part_size,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn full(&self, key: &str) -> Result<String> {
        check_key(key)?;
        Ok(format!("{}{}", self.prefix, key))
    }

    async fn size_of(&self, key: &str) -> Result<u64> {
        self.stat(key)
            .await?
            .map(|m| m.size)
            .ok_or_else(|| BackendError::NotFound(key.to_string()))
    }

    fn copy_source(&self, full: &str) -> String {
        // Keys are built from validated names and digests; only these characters need escaping.
        let escaped: String = full
            .chars()
            .map(|c| match c {
                ':' => "%3A".to_string(),
                '+' => "%2B".to_string(),
                ' ' => "%20".to_string(),
                c => c.to_string(),
            })
            .collect();
        format!("{}/{}", self.bucket, escaped)
    }
}

#[async_trait]
impl Backend for S3Backend {
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<ByteStream> {
        let full = self.full(key)?;
        let mut req = self.client.get_object().bucket(&self.bucket).key(&full);
        if let Some(r) = &range {
            if r.start > r.end {
                return Err(BackendError::RangeNotSatisfiable {
                    start: r.start,
                    end: r.end,
                    size: 0,
                });
            }
            if r.start == r.end {
                // An empty range has no HTTP form; answer it without a request.
                self.size_of(key).await?;
                return Ok(Box::pin(futures::stream::empty()));
            }
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = req.send().await.map_err(|e| s3_err("GetObject", key, e))?;
        let body = out.body;
        let stream = futures::stream::unfold(body, |mut body| async move {
            match body.next().await {
                Some(Ok(b)) => Some((Ok(b), body)),
                Some(Err(e)) => Some((Err(std::io::Error::other(e)), body)),
                None => None,
            }
        });
        Ok(Box::pin(stream))
    }

    async fn read(&self, key: &str) -> Result<Bytes> {
        let full = self.full(key)?;
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
            .map_err(|e| s3_err("GetObject", key, e))?;
        let data = out.body.collect().await.map_err(|e| BackendError::S3 {
            op: "GetObject",
            key: key.to_string(),
            message: e.to_string(),
        })?;
        Ok(data.into_bytes())
    }

    async fn writer(&self, key: &str) -> Result<Box<dyn ObjectWriter>> {
        let full = self.full(key)?;
        Ok(Box::new(S3Writer {
            backend: self.clone(),
            key: key.to_string(),
            full,
            buf: BytesMut::new(),
            written: 0,
            upload_id: None,
            next_part: 1,
            parts: Vec::new(),
            in_flight: JoinSet::new(),
        }))
    }

    async fn put(&self, key: &str, data: Bytes) -> Result<()> {
        if data.len() > self.part_size {
            let mut w = self.writer(key).await?;
            w.write(data).await?;
            return w.commit().await.map(|_| ());
        }
        let full = self.full(key)?;
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .body(S3Body::from(data))
            .send()
            .await
            .map_err(|e| s3_err("PutObject", key, e))?;
        Ok(())
    }

    async fn stat(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let full = self.full(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(out) => Ok(Some(ObjectMeta {
                size: out.content_length().unwrap_or(0).max(0) as u64,
                modified: out
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok()),
            })),
            Err(e) => match s3_err("HeadObject", key, e) {
                BackendError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage> {
        let full_prefix = format!("{}{}", self.prefix, prefix);
        let mut keys = Vec::new();
        let mut after = start_after.map(|a| format!("{}{}", self.prefix, a));
        let mut token: Option<String> = None;
        loop {
            let want = limit.saturating_add(1).saturating_sub(keys.len()).min(1000) as i32;
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_start_after(if token.is_none() { after.take() } else { None })
                .set_continuation_token(token.take())
                .max_keys(want)
                .send()
                .await
                .map_err(|e| s3_err("ListObjectsV2", prefix, e))?;
            for obj in out.contents() {
                if let Some(k) = obj.key() {
                    if let Some(rel) = k.strip_prefix(&self.prefix) {
                        keys.push(rel.to_string());
                    }
                }
            }
            if keys.len() > limit {
                keys.truncate(limit);
                return Ok(ListPage {
                    keys,
                    truncated: true,
                });
            }
            match out.next_continuation_token() {
                Some(t) if out.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => {
                    return Ok(ListPage {
                        keys,
                        truncated: false,
                    })
                }
            }
        }
    }

    async fn list_meta(&self, prefix: &str) -> Result<Vec<(String, ObjectMeta)>> {
        let full_prefix = format!("{}{}", self.prefix, prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_err("ListObjectsV2", prefix, e))?;
            for obj in page.contents() {
                let Some(rel) = obj.key().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                let meta = ObjectMeta {
                    size: obj.size().unwrap_or(0).max(0) as u64,
                    modified: obj
                        .last_modified()
                        .and_then(|t| SystemTime::try_from(*t).ok()),
                };
                out.push((rel.to_string(), meta));
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated().unwrap_or(false) => token = Some(t.to_string()),
                _ => return Ok(out),
            }
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let full = self.full(key)?;
        match self
            .client
            .delete_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match s3_err("DeleteObject", key, e) {
                BackendError::NotFound(_) => Ok(()),
                other => Err(other),
            },
        }
    }

    fn scan(&self, prefix: &str) -> EntryStream {
        struct Pager {
            backend: S3Backend,
            prefix: String,
            full_prefix: String,
            token: Option<String>,
            done: bool,
        }
        let pager = Pager {
            backend: self.clone(),
            prefix: prefix.to_string(),
            full_prefix: format!("{}{}", self.prefix, prefix),
            token: None,
            done: false,
        };
        Box::pin(futures::stream::unfold(pager, |mut p| async move {
            if p.done {
                return None;
            }
            let out = p
                .backend
                .client
                .list_objects_v2()
                .bucket(&p.backend.bucket)
                .prefix(&p.full_prefix)
                .set_continuation_token(p.token.take())
                .send()
                .await;
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    p.done = true;
                    return Some((Err(s3_err("ListObjectsV2", &p.prefix, e)), p));
                }
            };
            let entries = out
                .contents()
                .iter()
                .filter_map(|o| {
                    let rel = o.key()?.strip_prefix(&p.backend.prefix)?;
                    Some(Entry {
                        key: rel.to_string(),
                        size: o.size().unwrap_or(0).max(0) as u64,
                        modified: o
                            .last_modified()
                            .and_then(|t| SystemTime::try_from(*t).ok()),
                    })
                })
                .collect();
            match out.next_continuation_token() {
                Some(t) if out.is_truncated().unwrap_or(false) => p.token = Some(t.to_string()),
                _ => p.done = true,
            }
            Some((Ok(entries), p))
        }))
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        for batch in keys.chunks(DELETE_BATCH) {
            let mut objects = Vec::with_capacity(batch.len());
            for k in batch {
                let id = ObjectIdentifier::builder()
                    .key(self.full(k)?)
                    .build()
                    .map_err(|e| BackendError::S3 {
                        op: "DeleteObjects",
                        key: k.clone(),
                        message: e.to_string(),
                    })?;
                objects.push(id);
            }
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| BackendError::S3 {
                    op: "DeleteObjects",
                    key: batch[0].clone(),
                    message: e.to_string(),
                })?;
            let out = self
                .client
                .delete_objects()
                .bucket(&self.bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| s3_err("DeleteObjects", &batch[0], e))?;
            // Quiet mode lists only the keys that could not be deleted.
            if let Some(err) = out.errors().iter().find(|e| e.code() != Some("NoSuchKey")) {
                return Err(BackendError::S3 {
                    op: "DeleteObjects",
                    key: err.key().unwrap_or_default().to_string(),
                    message: format!(
                        "{}: {}",
                        err.code().unwrap_or("error"),
                        err.message().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }

    async fn create_new(&self, key: &str, data: Bytes) -> Result<Option<String>> {
        let full = self.full(key)?;
        match self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .if_none_match("*")
            .body(S3Body::from(data))
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            Err(e) => match s3_err("PutObject", key, e) {
                BackendError::Precondition(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn read_versioned(&self, key: &str) -> Result<Option<Versioned>> {
        let full = self.full(key)?;
        let out = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                return match s3_err("GetObject", key, e) {
                    BackendError::NotFound(_) => Ok(None),
                    other => Err(other),
                }
            }
        };
        let etag = out.e_tag().unwrap_or_default().to_string();
        let data = out.body.collect().await.map_err(|e| BackendError::S3 {
            op: "GetObject",
            key: key.to_string(),
            message: e.to_string(),
        })?;
        Ok(Some(Versioned {
            data: data.into_bytes(),
            etag,
        }))
    }

    async fn replace(&self, key: &str, data: Bytes, etag: &str) -> Result<Option<String>> {
        let full = self.full(key)?;
        match self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .if_match(etag)
            .body(S3Body::from(data))
            .send()
            .await
        {
            Ok(out) => Ok(Some(out.e_tag().unwrap_or_default().to_string())),
            Err(e) => match s3_err("PutObject", key, e) {
                // Gone since it was read (some servers answer 404 rather than 412).
                BackendError::Precondition(_) | BackendError::NotFound(_) => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn copy(&self, from: &str, to: &str) -> Result<()> {
        let src = self.full(from)?;
        let dest = self.full(to)?;
        let size = self.size_of(from).await?;
        if size <= MAX_COPY_SIZE {
            self.client
                .copy_object()
                .bucket(&self.bucket)
                .key(&dest)
                .copy_source(self.copy_source(&src))
                .send()
                .await
                .map_err(|e| s3_err("CopyObject", from, e))?;
            return Ok(());
        }
        // Past 5 GiB S3 only copies part by part.
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&dest)
            .send()
            .await
            .map_err(|e| s3_err("CreateMultipartUpload", to, e))?;
        let id = upload.upload_id().unwrap_or_default().to_string();
        let step: u64 = 1 << 30;
        let mut parts = Vec::new();
        let mut start = 0;
        let mut n = 1;
        while start < size {
            let end = (start + step).min(size) - 1;
            let out = self
                .client
                .upload_part_copy()
                .bucket(&self.bucket)
                .key(&dest)
                .upload_id(&id)
                .part_number(n)
                .copy_source(self.copy_source(&src))
                .copy_source_range(format!("bytes={start}-{end}"))
                .send()
                .await;
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    let _ = self.abort_upload(&dest, &id).await;
                    return Err(s3_err("UploadPartCopy", from, e));
                }
            };
            let etag = out
                .copy_part_result()
                .and_then(|r| r.e_tag())
                .unwrap_or_default()
                .to_string();
            parts.push(CompletedPart::builder().e_tag(etag).part_number(n).build());
            start = end + 1;
            n += 1;
        }
        self.complete_upload(to, &dest, &id, parts).await
    }

    async fn reachable(&self) -> Result<()> {
        self.client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .map_err(|e| s3_err("HeadBucket", &self.bucket, e))?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!("s3 bucket {} prefix {:?}", self.bucket, self.prefix)
    }

    /// Incomplete multipart uploads of blobs and upload chunks (a writer killed after its first
    /// part leaves one; its parts cost storage until aborted) begun more than `age` ago. A
    /// server without ListMultipartUploads (s3s-fs) has none to list: 0, and a warning.
    async fn expire_abandoned_writes(
        &self,
        age: std::time::Duration,
        now: std::time::SystemTime,
        dry_run: bool,
    ) -> Result<u64> {
        let mut count = 0;
        for dir in ["blobs/", "uploads/"] {
            let full_prefix = format!("{}{dir}", self.prefix);
            let (mut key_marker, mut id_marker) = (None::<String>, None::<String>);
            loop {
                let out = match self
                    .client
                    .list_multipart_uploads()
                    .bucket(&self.bucket)
                    .prefix(&full_prefix)
                    .set_key_marker(key_marker.take())
                    .set_upload_id_marker(id_marker.take())
                    .send()
                    .await
                {
                    Ok(out) => out,
                    Err(e)
                        if e.as_service_error().and_then(|s| s.code())
                            == Some("NotImplemented") =>
                    {
                        tracing::warn!(
                            "{}: the S3 server cannot list multipart uploads; abandoned ones \
                             stay until a lifecycle rule aborts them",
                            self.bucket
                        );
                        return Ok(count);
                    }
                    Err(e) => return Err(s3_err("ListMultipartUploads", dir, e)),
                };
                for u in out.uploads() {
                    let begun = u
                        .initiated()
                        .and_then(|t| std::time::SystemTime::try_from(*t).ok());
                    let stale = begun
                        .and_then(|b| now.duration_since(b).ok())
                        .is_some_and(|a| a >= age);
                    let (Some(key), Some(id)) = (u.key(), u.upload_id()) else {
                        continue;
                    };
                    if !stale {
                        continue;
                    }
                    if !dry_run {
                        match self.abort_upload(key, id).await {
                            Ok(()) | Err(BackendError::NotFound(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    count += 1;
                }
                match (
                    out.is_truncated(),
                    out.next_key_marker(),
                    out.next_upload_id_marker(),
                ) {
                    (Some(true), Some(k), id) => {
                        key_marker = Some(k.to_string());
                        id_marker = id.map(str::to_string);
                    }
                    _ => break,
                }
            }
        }
        Ok(count)
    }
}

impl S3Backend {
    async fn abort_upload(&self, full: &str, id: &str) -> Result<()> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(id)
            .send()
            .await
            .map_err(|e| s3_err("AbortMultipartUpload", full, e))?;
        Ok(())
    }

    async fn complete_upload(
        &self,
        key: &str,
        full: &str,
        id: &str,
        mut parts: Vec<CompletedPart>,
    ) -> Result<()> {
        parts.sort_by_key(|p| p.part_number());
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        if let Err(e) = done {
            let _ = self.abort_upload(full, id).await;
            return Err(s3_err("CompleteMultipartUpload", key, e));
        }
        Ok(())
    }
}

/// A write in progress: one buffer, then a multipart upload once the buffer passes a part.
struct S3Writer {
    backend: S3Backend,
    key: String,
    full: String,
    buf: BytesMut,
    written: u64,
    upload_id: Option<String>,
    next_part: i32,
    parts: Vec<CompletedPart>,
    in_flight: JoinSet<Result<CompletedPart>>,
}

impl S3Writer {
    async fn ensure_upload(&mut self) -> Result<String> {
        if let Some(id) = &self.upload_id {
            return Ok(id.clone());
        }
        let out = self
            .backend
            .client
            .create_multipart_upload()
            .bucket(&self.backend.bucket)
            .key(&self.full)
            .send()
            .await
            .map_err(|e| s3_err("CreateMultipartUpload", &self.key, e))?;
        let id = out.upload_id().unwrap_or_default().to_string();
        self.upload_id = Some(id.clone());
        Ok(id)
    }

    async fn send_part(&mut self, data: Bytes) -> Result<()> {
        let id = self.ensure_upload().await?;
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.reap_one().await?;
        }
        let n = self.next_part;
        self.next_part += 1;
        let client = self.backend.client.clone();
        let bucket = self.backend.bucket.clone();
        let full = self.full.clone();
        let key = self.key.clone();
        self.in_flight.spawn(async move {
            let out = client
                .upload_part()
                .bucket(bucket)
                .key(full)
                .upload_id(id)
                .part_number(n)
                .body(S3Body::from(data))
                .send()
                .await
                .map_err(|e| s3_err("UploadPart", &key, e))?;
            Ok(CompletedPart::builder()
                .set_e_tag(out.e_tag().map(str::to_string))
                .part_number(n)
                .build())
        });
        Ok(())
    }

    async fn reap_one(&mut self) -> Result<()> {
        if let Some(joined) = self.in_flight.join_next().await {
            let part = joined.map_err(|e| BackendError::S3 {
                op: "UploadPart",
                key: self.key.clone(),
                message: e.to_string(),
            })??;
            self.parts.push(part);
        }
        Ok(())
    }

    async fn discard(&mut self) {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        if let Some(id) = self.upload_id.take() {
            let _ = self.backend.abort_upload(&self.full, &id).await;
        }
    }
}

#[async_trait]
impl ObjectWriter for S3Writer {
    async fn write(&mut self, chunk: Bytes) -> Result<()> {
        self.written += chunk.len() as u64;
        self.buf.extend_from_slice(&chunk);
        while self.buf.len() >= self.backend.part_size {
            let part = self.buf.split_to(self.backend.part_size).freeze();
            if let Err(e) = self.send_part(part).await {
                self.discard().await;
                return Err(e);
            }
        }
        Ok(())
    }

    fn written(&self) -> u64 {
        self.written
    }

    async fn commit(mut self: Box<Self>) -> Result<u64> {
        let rest = std::mem::take(&mut self.buf).freeze();
        if self.upload_id.is_none() {
            self.backend
                .client
                .put_object()
                .bucket(&self.backend.bucket)
                .key(&self.full)
                .body(S3Body::from(rest))
                .send()
                .await
                .map_err(|e| s3_err("PutObject", &self.key, e))?;
            return Ok(self.written);
        }
        let result = async {
            if !rest.is_empty() {
                self.send_part(rest).await?;
            }
            while !self.in_flight.is_empty() {
                self.reap_one().await?;
            }
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.discard().await;
            return Err(e);
        }
        let id = self.upload_id.take().unwrap_or_default();
        let parts = std::mem::take(&mut self.parts);
        self.backend
            .complete_upload(&self.key, &self.full, &id, parts)
            .await?;
        Ok(self.written)
    }

    async fn abort(mut self: Box<Self>) -> Result<()> {
        self.discard().await;
        Ok(())
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // A writer dropped mid-upload (a cancelled request) must not leave parts billed forever.
        if let Some(id) = self.upload_id.take() {
            self.in_flight.abort_all();
            let backend = self.backend.clone();
            let full = self.full.clone();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(30),
                        backend.abort_upload(&full, &id),
                    )
                    .await;
                });
            }
        }
    }
}
