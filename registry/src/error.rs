//! The registry's error: a spec error code, an HTTP status, and the spec's JSON body.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use berth_storage::StoreError;

/// The error codes of the distribution spec (and the auth codes docker clients know).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    DigestInvalid,
    ManifestBlobUnknown,
    ManifestInvalid,
    ManifestUnknown,
    NameInvalid,
    NameUnknown,
    SizeInvalid,
    Unauthorized,
    Denied,
    Unsupported,
    TooManyRequests,
    Unavailable,
    Internal,
}

impl Code {
    pub fn as_str(self) -> &'static str {
        match self {
            Code::BlobUnknown => "BLOB_UNKNOWN",
            Code::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Code::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Code::DigestInvalid => "DIGEST_INVALID",
            Code::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Code::ManifestInvalid => "MANIFEST_INVALID",
            Code::ManifestUnknown => "MANIFEST_UNKNOWN",
            Code::NameInvalid => "NAME_INVALID",
            Code::NameUnknown => "NAME_UNKNOWN",
            Code::SizeInvalid => "SIZE_INVALID",
            Code::Unauthorized => "UNAUTHORIZED",
            Code::Denied => "DENIED",
            Code::Unsupported => "UNSUPPORTED",
            Code::TooManyRequests => "TOOMANYREQUESTS",
            Code::Unavailable => "UNAVAILABLE",
            Code::Internal => "UNKNOWN",
        }
    }

    /// The status the spec pairs with the code.
    pub fn status(self) -> StatusCode {
        match self {
            Code::BlobUnknown
            | Code::BlobUploadUnknown
            | Code::ManifestUnknown
            | Code::NameUnknown => StatusCode::NOT_FOUND,
            Code::BlobUploadInvalid
            | Code::DigestInvalid
            | Code::ManifestBlobUnknown
            | Code::ManifestInvalid
            | Code::NameInvalid
            | Code::SizeInvalid => StatusCode::BAD_REQUEST,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Denied => StatusCode::FORBIDDEN,
            Code::Unsupported => StatusCode::METHOD_NOT_ALLOWED,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error answer: code, message, optional detail, and the status it is sent with.
#[derive(Debug, Clone)]
pub struct RegistryError {
    pub code: Code,
    pub status: StatusCode,
    pub message: String,
    pub detail: Option<serde_json::Value>,
    /// Extra headers, such as `WWW-Authenticate` or a refused chunk's `Range`.
    pub headers: Vec<(&'static str, String)>,
}

impl RegistryError {
    pub fn new(code: Code, message: impl Into<String>) -> RegistryError {
        RegistryError {
            code,
            status: code.status(),
            message: message.into(),
            detail: None,
            headers: Vec::new(),
        }
    }

    pub fn with_status(mut self, status: StatusCode) -> RegistryError {
        self.status = status;
        self
    }

    pub fn with_detail(mut self, detail: serde_json::Value) -> RegistryError {
        self.detail = Some(detail);
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> RegistryError {
        self.headers.push((name, value.into()));
        self
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let mut entry = serde_json::json!({
            "code": self.code.as_str(),
            "message": self.message,
        });
        if let Some(d) = self.detail {
            entry["detail"] = d;
        }
        let body =
            serde_json::to_vec(&serde_json::json!({ "errors": [entry] })).unwrap_or_default();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        resp
    }
}

impl From<StoreError> for RegistryError {
    fn from(e: StoreError) -> RegistryError {
        match e {
            StoreError::InvalidDigest(d) => RegistryError::new(Code::DigestInvalid, d.to_string()),
            StoreError::InvalidName(n) => RegistryError::new(Code::NameInvalid, n.to_string()),
            StoreError::DigestMismatch(m) => RegistryError::new(Code::DigestInvalid, m.to_string())
                .with_detail(serde_json::json!({
                    "expected": m.expected.to_string(),
                    "actual": m.actual.to_string(),
                })),
            StoreError::BlobUnknown(d) => {
                RegistryError::new(Code::BlobUnknown, "blob unknown to registry")
                    .with_detail(serde_json::json!({ "digest": d.to_string() }))
            }
            StoreError::UploadUnknown(id) => {
                RegistryError::new(Code::BlobUploadUnknown, "blob upload unknown to registry")
                    .with_detail(serde_json::json!({ "uuid": id }))
            }
            StoreError::UploadOffset { expected, got, .. } => RegistryError::new(
                Code::BlobUploadInvalid,
                format!("chunk starts at {got} but the upload is at {expected}"),
            )
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
            .with_header("range", format!("0-{}", expected.saturating_sub(1))),
            StoreError::SizeMismatch { declared, actual } => RegistryError::new(
                Code::SizeInvalid,
                format!("{declared} bytes were declared but {actual} arrived"),
            ),
            StoreError::Stream(e) => RegistryError::new(
                Code::BlobUploadInvalid,
                format!("reading the request body failed: {e}"),
            ),
            // A writer waited its limit for a collection's sweep: worth trying again.
            e @ StoreError::SweepStuck => RegistryError::new(Code::Unavailable, e.to_string()),
            other => {
                tracing::error!(error = %other, "storage failure");
                RegistryError::new(Code::Internal, format!("storage failure: {other}"))
            }
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
