//! Turning a request path into a route of the distribution spec.
//!
//! Repository names contain slashes, so the path is read from its end: the last
//! `/manifests/`, `/blobs/uploads/`, `/blobs/`, `/referrers/` or `/tags/list` decides the
//! endpoint, and what stands before it is the name (validated later, never trusted).

/// An endpoint and the raw path parts it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Base,
    Catalog,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
    Search,
    /// `/metrics`: counters in Prometheus' text format.
    Metrics,
    /// `/livez`: the process serves.
    Livez,
    /// `/readyz`: the process serves and its store answers.
    Readyz,
    NotFound,
}

pub fn parse(path: &str) -> Route<'_> {
    if path == "/v1/search" {
        return Route::Search;
    }
    match path {
        "/metrics" => return Route::Metrics,
        "/livez" => return Route::Livez,
        "/readyz" => return Route::Readyz,
        _ => {}
    }
    let Some(rest) = path.strip_prefix("/v2/") else {
        return if path == "/v2" {
            Route::Base
        } else {
            Route::NotFound
        };
    };
    if rest.is_empty() {
        return Route::Base;
    }
    if rest == "_catalog" {
        return Route::Catalog;
    }
    if let Some(name) = rest.strip_suffix("/tags/list") {
        return Route::Tags(name);
    }
    if let Some((name, id)) = rest.rsplit_once("/blobs/uploads/") {
        return if id.is_empty() {
            Route::UploadStart(name)
        } else if id.contains('/') {
            Route::NotFound
        } else {
            Route::Upload(name, id)
        };
    }
    if let Some(name) = rest.strip_suffix("/blobs/uploads") {
        return Route::UploadStart(name);
    }
    let split = |marker: &str| {
        rest.rsplit_once(marker)
            .filter(|(_, r)| !r.is_empty() && !r.contains('/'))
    };
    if rest.contains("/manifests/") {
        return split("/manifests/").map_or(Route::NotFound, |(n, r)| Route::Manifest(n, r));
    }
    if rest.contains("/blobs/") {
        return split("/blobs/").map_or(Route::NotFound, |(n, r)| Route::Blob(n, r));
    }
    if rest.contains("/referrers/") {
        return split("/referrers/").map_or(Route::NotFound, |(n, r)| Route::Referrers(n, r));
    }
    Route::NotFound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let table = [
            ("/v2/", Route::Base),
            ("/v2", Route::Base),
            ("/v2/_catalog", Route::Catalog),
            ("/v2/a/b/tags/list", Route::Tags("a/b")),
            ("/v2/a/manifests/latest", Route::Manifest("a", "latest")),
            (
                "/v2/a/manifests/b/manifests/x",
                Route::Manifest("a/manifests/b", "x"),
            ),
            ("/v2/a/b/blobs/sha256:00", Route::Blob("a/b", "sha256:00")),
            ("/v2/a/blobs/uploads/", Route::UploadStart("a")),
            ("/v2/a/blobs/uploads", Route::UploadStart("a")),
            ("/v2/a/blobs/uploads/u-1", Route::Upload("a", "u-1")),
            (
                "/v2/a/referrers/sha256:00",
                Route::Referrers("a", "sha256:00"),
            ),
            ("/v1/search", Route::Search),
            ("/metrics", Route::Metrics),
            ("/v2/a/manifests/", Route::NotFound),
            ("/v2/a/blobs/x/y", Route::NotFound),
            ("/other", Route::NotFound),
        ];
        for (path, want) in table {
            assert_eq!(parse(path), want, "{path}");
        }
    }
}
