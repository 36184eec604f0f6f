//! The registry's web page: browse, search and manage repositories in a browser.
//!
//! Served by `berth serve` itself on the API's port, as server-rendered HTML ([`pages`], maud
//! templates checked at compile time) with one small script for what HTML alone cannot do
//! (search as you type, the copy button, the confirmation dialog); both assets are compiled
//! into the binary. The page claims `/` when a browser asks for HTML and everything under its
//! prefix (`/ui` unless `[web] prefix` says otherwise); every other request is the API's and
//! never reaches this module ([`crate::api::Page`]).
//!
//! The page obeys the API's access rules: with `[auth]` it shows only what its user may pull
//! and offers deletion only where the rules allow it. A user signs in with a form; the
//! password is checked by the registry's auth and the cookie holds a session token signed by
//! its token service (a token for the page's own audience, which the API refuses). Every
//! action is a POST carrying a CSRF token that must match the `berth_csrf` cookie (and a
//! browser's `Origin`/`Sec-Fetch-Site`, when it sends them, must say same origin); deletions go
//! through the API's own handler, so the page deletes nothing the API would not.
//!
//! [`content`] reads what the views show from the store; [`pages`] renders it.

pub mod config;
mod content;
mod pages;

pub use config::WebConfig;

pub use pages::human_size;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::Response;
use berth_storage::RepoName;
use futures::FutureExt;
use http_body_util::BodyExt;
use maud::Markup;
use ring::rand::SecureRandom;

use crate::api::{self, Registry};
use crate::auth::{Action, Caller};

/// The page, as the registry's [`api::Page`]. Cheap to clone.
#[derive(Clone)]
pub struct Web {
    inner: Arc<Inner>,
}

struct Inner {
    config: WebConfig,
    rng: ring::rand::SystemRandom,
}

impl Web {
    /// The page of a checked config ([`WebConfig::validate`]).
    pub fn new(config: WebConfig) -> Web {
        Web {
            inner: Arc::new(Inner {
                config,
                rng: ring::rand::SystemRandom::new(),
            }),
        }
    }
}

impl api::Page for Web {
    fn claims(&self, req: &Request<Body>) -> bool {
        let path = req.uri().path();
        if path == "/" {
            return (req.method() == Method::GET || req.method() == Method::HEAD)
                && accepts_html(req.headers());
        }
        let prefix = &self.inner.config.prefix;
        path.strip_prefix(prefix.as_str())
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    }

    fn answer(
        &self,
        reg: Arc<Registry>,
        req: Request<Body>,
    ) -> futures::future::BoxFuture<'static, Response> {
        let web = self.clone();
        async move {
            let started = Instant::now();
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let answered = std::panic::AssertUnwindSafe(web.serve(reg, req))
                .catch_unwind()
                .await;
            let mut resp = answered.unwrap_or_else(|_| {
                tracing::error!(%method, %path, "the web page's handler panicked");
                plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
            });
            // How long the server took, for the browser's developer tools and bench/web.sh.
            let took = started.elapsed().as_secs_f64() * 1000.0;
            if let Ok(v) = HeaderValue::from_str(&format!("app;dur={took:.2}")) {
                resp.headers_mut().insert("server-timing", v);
            }
            if method == Method::HEAD {
                *resp.body_mut() = Body::empty();
            }
            resp
        }
        .boxed()
    }
}

/// Whether a request's `Accept` names `text/html` (what browsers send for a page).
fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            media.eq_ignore_ascii_case("text/html") && !refused
        })
}

/// A place on the page, from the path after the prefix.
#[derive(Debug, PartialEq, Eq)]
enum View<'a> {
    Repositories,
    Repository(&'a str),
    Image(&'a str, &'a str),
    Delete(&'a str),
    Mirror,
    SignIn,
    SignOut,
    Asset(&'a str),
    NotFound,
}

/// Repository names cannot have a component starting with `_`, so `/_…` after a name is
/// always the page's own.
fn view(sub: &str) -> View<'_> {
    match sub {
        "" | "/" => return View::Repositories,
        "/_mirror" => return View::Mirror,
        "/_signin" => return View::SignIn,
        "/_signout" => return View::SignOut,
        _ => {}
    }
    if let Some(file) = sub.strip_prefix("/_static/") {
        return View::Asset(file);
    }
    let Some(rest) = sub.strip_prefix("/r/") else {
        return View::NotFound;
    };
    if let Some((name, reference)) = rest.rsplit_once("/_manifests/") {
        return View::Image(name, reference);
    }
    if let Some(name) = rest.strip_suffix("/_delete") {
        return View::Delete(name);
    }
    if rest.is_empty() || rest.contains("/_") {
        return View::NotFound;
    }
    View::Repository(rest.trim_end_matches('/'))
}

/// Who is looking, and what the answer needs to know about the request.
pub(crate) struct Visit {
    /// The page's prefix, for links.
    pub prefix: String,
    /// `host[:port]` as the browser reached the registry: pull commands name it.
    pub host: String,
    pub tls: bool,
    /// Whether access is controlled (`[auth]`).
    pub auth_on: bool,
    /// The signed-in user.
    pub user: Option<String>,
    /// The CSRF token forms carry.
    pub csrf: String,
    /// The CSRF cookie must be (re)set.
    fresh_csrf: bool,
    /// Whether the registry has a mirror in front.
    pub mirror: bool,
}

impl Visit {
    /// Whether this visitor may do `action` on `repo` by the registry's rules.
    pub fn may(&self, reg: &Registry, repo: &str, action: Action) -> bool {
        let allowed = match reg.auth() {
            None => true,
            Some(auth) => {
                let caller = match &self.user {
                    Some(u) => Caller::User(u.clone()),
                    None => Caller::Anonymous,
                };
                auth.allows(&caller, repo, action)
            }
        };
        allowed && (action != Action::Delete || reg.config.delete)
    }

    /// A link to a place on the page.
    pub fn link(&self, sub: &str) -> String {
        format!("{}{sub}", self.prefix)
    }
}

const SESSION_COOKIE: &str = "berth_session";
const CSRF_COOKIE: &str = "berth_csrf";
/// Largest form the page accepts.
const FORM_LIMIT: usize = 16 << 10;

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Compares two secrets in time that does not depend on where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A form's fields.
type Form = Vec<(String, String)>;

fn field<'a>(form: &'a Form, name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl Web {
    fn random_token(&self) -> String {
        let mut bytes = [0u8; 24];
        // The system's randomness failing is not something a page can recover from; a fixed
        // token would be worse than none, so the answer is an error further down.
        if self.inner.rng.fill(&mut bytes).is_err() {
            return String::new();
        }
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Works out who is visiting from the request's cookies.
    fn visit(&self, reg: &Registry, req: &Request<Body>) -> Visit {
        let headers = req.headers();
        let user = match (reg.auth(), cookie(headers, SESSION_COOKIE)) {
            (Some(auth), Some(token)) => auth.session_user(token),
            _ => None,
        };
        let existing = cookie(headers, CSRF_COOKIE)
            .filter(|c| c.len() == 48 && c.bytes().all(|b| b.is_ascii_hexdigit()));
        let (csrf, fresh_csrf) = match existing {
            Some(c) => (c.to_string(), false),
            None => (self.random_token(), true),
        };
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .unwrap_or("localhost")
            .to_string();
        Visit {
            prefix: self.inner.config.prefix.clone(),
            host,
            tls: req
                .extensions()
                .get::<crate::Transport>()
                .is_some_and(|t| t.tls),
            auth_on: reg.auth().is_some(),
            user,
            csrf,
            fresh_csrf,
            mirror: reg.front().is_some_and(|f| !f.upstreams().is_empty()),
        }
    }

    async fn serve(&self, reg: Arc<Registry>, req: Request<Body>) -> Response {
        let path = req.uri().path().to_string();
        // The page is asked only for "/" and for paths under its prefix (`claims`).
        let sub = path
            .strip_prefix(self.inner.config.prefix.as_str())
            .unwrap_or("");
        let view = view(sub);
        if let View::Asset(file) = view {
            return asset(file, req.headers());
        }
        let visit = self.visit(&reg, &req);
        let query: api::Query = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let method = req.method().clone();
        let read = method == Method::GET || method == Method::HEAD;
        let answer = match view {
            View::Repositories if read => self.repositories(&reg, &visit, &query).await,
            View::Repository(name) if read => self.repository(&reg, &visit, name, &query).await,
            View::Image(name, reference) if read => self.image(&reg, &visit, name, reference).await,
            View::Mirror if read => self.mirror(&reg, &visit).await,
            View::SignIn if read => Ok(self.sign_in_form(&visit, &query, None)),
            View::Delete(_) | View::SignIn | View::SignOut if method == Method::POST => {
                let headers = req.headers().clone();
                let form = match read_form(req).await {
                    Ok(f) => f,
                    Err(resp) => return resp,
                };
                if !csrf_ok(&visit, &headers, &form) {
                    tracing::warn!(%path, "web action refused: missing or wrong CSRF token");
                    Err(Refusal::Forbidden(
                        "This form has expired or did not come from this page. Go back, reload \
                         the page and try again."
                            .into(),
                    ))
                } else {
                    match view {
                        View::Delete(name) => self.delete(&reg, &visit, name, &form).await,
                        View::SignIn => self.sign_in(&reg, &visit, &form).await,
                        _ => Ok(self.sign_out(&visit)),
                    }
                }
            }
            View::NotFound => Err(Refusal::NotFound("There is no such page.".into())),
            View::Delete(_) | View::SignOut => Err(Refusal::Method("POST")),
            _ => Err(Refusal::Method("GET, HEAD")),
        };
        let mut resp = match answer {
            Ok(resp) => resp,
            Err(refusal) => self.refusal(&visit, &path, refusal),
        };
        if visit.fresh_csrf && !visit.csrf.is_empty() {
            set_cookie(
                &mut resp,
                &cookie_line(&visit, CSRF_COOKIE, &visit.csrf, None),
            );
        }
        resp
    }

    fn refusal(&self, visit: &Visit, path: &str, refusal: Refusal) -> Response {
        let (status, title, message) = match refusal {
            Refusal::NotFound(m) => (StatusCode::NOT_FOUND, "Not found", m),
            Refusal::Forbidden(m) => (StatusCode::FORBIDDEN, "Not allowed", m),
            Refusal::BadRequest(m) => (StatusCode::BAD_REQUEST, "Bad request", m),
            Refusal::SignInFirst => {
                let next: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("next", path)
                    .finish();
                return redirect(&visit.link(&format!("/_signin?{next}")));
            }
            Refusal::Method(allow) => {
                let mut resp = html(
                    StatusCode::METHOD_NOT_ALLOWED,
                    pages::message(visit, "Not allowed", "This page does not take that method."),
                );
                if let Ok(v) = HeaderValue::from_str(allow) {
                    resp.headers_mut().insert(header::ALLOW, v);
                }
                return resp;
            }
            Refusal::Failed(m) => {
                tracing::error!(%path, error = %m, "web page failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "The registry could not read what this page shows; the server's log says \
                     why."
                        .to_string(),
                )
            }
        };
        html(status, pages::message(visit, title, &message))
    }

    /// The refusal for a repository the visitor may not pull: anonymous visitors are sent to
    /// sign in, users are told no.
    fn cannot_see(visit: &Visit) -> Refusal {
        match visit.user {
            None if visit.auth_on => Refusal::SignInFirst,
            _ => Refusal::Forbidden("You may not pull from this repository.".into()),
        }
    }

    async fn repositories(
        &self,
        reg: &Registry,
        visit: &Visit,
        query: &api::Query,
    ) -> Result<Response, Refusal> {
        let listing = content::Listing::from_query(query);
        let rows = content::repositories(reg, visit, &listing).await?;
        Ok(html(
            StatusCode::OK,
            pages::repositories(visit, &listing, &rows),
        ))
    }

    async fn repository(
        &self,
        reg: &Registry,
        visit: &Visit,
        name: &str,
        query: &api::Query,
    ) -> Result<Response, Refusal> {
        let repo = repo_name(name)?;
        if !visit.may(reg, repo.as_str(), Action::Pull) {
            return Err(Self::cannot_see(visit));
        }
        let page = query
            .get("page")
            .and_then(|p| p.parse::<usize>().ok())
            .unwrap_or(1)
            .max(1);
        let tags = content::tags(reg, &repo, page).await?;
        let notice = query.get("deleted").map(|d| format!("Deleted {d}."));
        Ok(html(
            StatusCode::OK,
            pages::repository(visit, reg, &repo, &tags, notice.as_deref()),
        ))
    }

    async fn image(
        &self,
        reg: &Registry,
        visit: &Visit,
        name: &str,
        reference: &str,
    ) -> Result<Response, Refusal> {
        let repo = repo_name(name)?;
        if !visit.may(reg, repo.as_str(), Action::Pull) {
            return Err(Self::cannot_see(visit));
        }
        let image = content::image(reg, &repo, reference).await?;
        Ok(html(
            StatusCode::OK,
            pages::image(visit, reg, &repo, &image),
        ))
    }

    async fn mirror(&self, reg: &Registry, visit: &Visit) -> Result<Response, Refusal> {
        let upstreams = content::upstreams(reg, visit).await?;
        Ok(html(StatusCode::OK, pages::mirror(visit, &upstreams)))
    }

    /// Deletes a tag or a manifest: a first POST (or one the visitor did not confirm) is
    /// answered with a confirmation page; only a confirmed one deletes, through the API's
    /// handler (the mirror's rules and `server.delete` included).
    async fn delete(
        &self,
        reg: &Registry,
        visit: &Visit,
        name: &str,
        form: &Form,
    ) -> Result<Response, Refusal> {
        let repo = repo_name(name)?;
        if !visit.may(reg, repo.as_str(), Action::Delete) {
            tracing::warn!(user = %visit.user.as_deref().unwrap_or("anonymous"),
                repository = %repo, "web deletion refused by the access rules");
            return Err(if visit.user.is_none() && visit.auth_on {
                Refusal::SignInFirst
            } else {
                Refusal::Forbidden("You may not delete from this repository.".into())
            });
        }
        let Some(reference) = field(form, "reference").filter(|r| !r.is_empty()) else {
            return Err(Refusal::BadRequest(
                "Say which tag or digest to delete.".into(),
            ));
        };
        let target = content::Target::parse(reference).ok_or_else(|| {
            Refusal::BadRequest(format!("{reference:?} is neither a tag nor a digest."))
        })?;
        if field(form, "confirmed") != Some("yes") {
            return Ok(html(
                StatusCode::OK,
                pages::confirm_delete(visit, &repo, &target),
            ));
        }
        let path = format!("/v2/{repo}/manifests/{reference}");
        let req = Request::builder()
            .method(Method::DELETE)
            .uri(&path)
            .body(Body::empty())
            .map_err(|e| Refusal::Failed(e.to_string()))?;
        match api::route(reg, &path, req).await {
            Ok(resp) if resp.status().is_success() => {
                tracing::info!(user = %visit.user.as_deref().unwrap_or("anonymous"),
                    repository = %repo, %reference, "deleted through the web page");
                let done: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair("deleted", &target.to_string())
                    .finish();
                Ok(redirect(&visit.link(&format!("/r/{repo}?{done}"))))
            }
            Ok(resp) => Err(Refusal::Failed(format!(
                "DELETE {path} answered {}",
                resp.status()
            ))),
            Err(e) if e.status == StatusCode::NOT_FOUND => Err(Refusal::NotFound(format!(
                "{target} is not in {repo} (any more)."
            ))),
            Err(e) if e.status.is_client_error() => Err(Refusal::Forbidden(format!(
                "The registry refused to delete {target}: {}",
                e.message
            ))),
            Err(e) => Err(Refusal::Failed(e.to_string())),
        }
    }

    fn sign_in_form(&self, visit: &Visit, query: &api::Query, problem: Option<&str>) -> Response {
        let next = query.get("next").map(String::as_str).unwrap_or("");
        let status = if problem.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        };
        html(
            status,
            pages::sign_in(visit, safe_next(visit, next), problem),
        )
    }

    async fn sign_in(
        &self,
        reg: &Registry,
        visit: &Visit,
        form: &Form,
    ) -> Result<Response, Refusal> {
        let Some(auth) = reg.auth() else {
            return Err(Refusal::BadRequest(
                "This registry has no access control: there is nothing to sign in to.".into(),
            ));
        };
        let user = field(form, "username").unwrap_or("");
        let password = field(form, "password").unwrap_or("");
        let next = safe_next(visit, field(form, "next").unwrap_or("")).to_string();
        let lifetime = self.inner.config.session_lifetime;
        match auth.sign_in(user, password, lifetime).await {
            Ok(token) => {
                let mut resp = redirect(&next);
                set_cookie(
                    &mut resp,
                    &cookie_line(visit, SESSION_COOKIE, &token, Some(lifetime)),
                );
                // A new CSRF token with the new session: one fixed before sign-in is dropped.
                let csrf = self.random_token();
                set_cookie(&mut resp, &cookie_line(visit, CSRF_COOKIE, &csrf, None));
                Ok(resp)
            }
            Err(crate::auth::SignInError::Refused) => {
                let query = api::Query::from([("next".to_string(), next)]);
                Ok(self.sign_in_form(visit, &query, Some("Wrong user name or password.")))
            }
            Err(crate::auth::SignInError::Failed(e)) => Err(Refusal::Failed(e)),
        }
    }

    fn sign_out(&self, visit: &Visit) -> Response {
        let mut resp = redirect(&visit.link("/"));
        set_cookie(&mut resp, &cookie_line(visit, SESSION_COOKIE, "", Some(0)));
        let csrf = self.random_token();
        set_cookie(&mut resp, &cookie_line(visit, CSRF_COOKIE, &csrf, None));
        resp
    }
}

/// Why a view was not shown.
pub(crate) enum Refusal {
    NotFound(String),
    Forbidden(String),
    BadRequest(String),
    /// Anonymous, with access controlled: the sign-in form, then back here.
    SignInFirst,
    /// The methods the place takes.
    Method(&'static str),
    Failed(String),
}

impl From<crate::error::RegistryError> for Refusal {
    fn from(e: crate::error::RegistryError) -> Refusal {
        Refusal::Failed(e.to_string())
    }
}

impl From<berth_storage::StoreError> for Refusal {
    fn from(e: berth_storage::StoreError) -> Refusal {
        Refusal::Failed(e.to_string())
    }
}

fn repo_name(raw: &str) -> Result<RepoName, Refusal> {
    raw.parse()
        .map_err(|_| Refusal::NotFound(format!("{raw:?} is not a repository name.")))
}

/// Where to go after signing in: only a place on this page (never another site).
fn safe_next<'a>(visit: &'a Visit, next: &'a str) -> &'a str {
    let ours =
        next == "/" || next == visit.prefix || next.starts_with(&format!("{}/", visit.prefix));
    if ours && !next.contains("//") && !next.contains('\\') {
        next
    } else {
        &visit.prefix
    }
}

/// Whether a POST carries the visitor's CSRF token and, as far as the browser says, comes
/// from this page.
fn csrf_ok(visit: &Visit, headers: &HeaderMap, form: &Form) -> bool {
    let Some(cookie_token) = cookie(headers, CSRF_COOKIE) else {
        return false;
    };
    let Some(form_token) = field(form, "csrf") else {
        return false;
    };
    if visit.fresh_csrf || !same_secret(cookie_token, form_token) {
        return false;
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        if site != "same-origin" && site != "none" {
            return false;
        }
    }
    if let Some(origin) = header("origin") {
        let scheme = if visit.tls { "https" } else { "http" };
        if origin != format!("{scheme}://{}", visit.host) {
            return false;
        }
    }
    true
}

async fn read_form(req: Request<Body>) -> Result<Form, Response> {
    let is_form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Err(plain(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the page's forms are application/x-www-form-urlencoded\n",
        ));
    }
    match http_body_util::Limited::new(req.into_body(), FORM_LIMIT)
        .collect()
        .await
    {
        Ok(body) => Ok(form_urlencoded::parse(&body.to_bytes())
            .into_owned()
            .collect()),
        Err(_) => Err(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "the form is larger than the page accepts\n",
        )),
    }
}

/// `Set-Cookie` for the page's cookies: HttpOnly, SameSite=Strict, Secure under TLS; without
/// `max_age` it lasts as long as the browser session.
fn cookie_line(visit: &Visit, name: &str, value: &str, max_age: Option<u64>) -> String {
    let mut line = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        line.push_str(&format!("; Max-Age={age}"));
    }
    if visit.tls {
        line.push_str("; Secure");
    }
    line
}

fn set_cookie(resp: &mut Response, line: &str) {
    if let Ok(v) = HeaderValue::from_str(line) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
}

/// What every page answer carries: no caching of pages that depend on who asks, and a
/// policy that lets the page load nothing but its own assets.
fn html(status: StatusCode, markup: Markup) -> Response {
    let body = markup.into_string();
    let mut resp = api::response(
        status,
        &[
            ("content-type", "text/html; charset=utf-8".into()),
            ("content-length", body.len().to_string()),
            ("cache-control", "no-store".into()),
            ("x-content-type-options", "nosniff".into()),
            ("referrer-policy", "same-origin".into()),
            (
                "content-security-policy",
                "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                 connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
                    .into(),
            ),
            ("x-frame-options", "DENY".into()),
        ],
        Body::from(body),
    );
    resp.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("cookie, accept"));
    resp
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    api::response(
        status,
        &[
            ("content-type", "text/plain; charset=utf-8".into()),
            ("content-length", text.len().to_string()),
        ],
        Body::from(text),
    )
}

/// 303 See Other: after a form, the browser GETs the next place.
fn redirect(to: &str) -> Response {
    api::response(
        StatusCode::SEE_OTHER,
        &[
            ("location", to.to_string()),
            ("content-length", "0".into()),
            ("cache-control", "no-store".into()),
        ],
        Body::empty(),
    )
}

/// The stylesheet and the script, compiled in. Their ETag is their content's hash, so a
/// browser revalidates cheaply and never runs a stale script after an upgrade.
fn asset(file: &str, headers: &HeaderMap) -> Response {
    static CSS: &str = include_str!("assets/berth.css");
    static JS: &str = include_str!("assets/berth.js");
    let (body, content_type) = match file {
        "berth.css" => (CSS, "text/css; charset=utf-8"),
        "berth.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return plain(StatusCode::NOT_FOUND, "no such file\n"),
    };
    let etag = format!(
        "\"{}\"",
        &berth_storage::Digest::sha256_of(body.as_bytes()).hex()[..16]
    );
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let common = [
        ("etag", etag.clone()),
        ("cache-control", "no-cache".to_string()),
        ("x-content-type-options", "nosniff".to_string()),
    ];
    if matches {
        return api::response(StatusCode::NOT_MODIFIED, &common, Body::empty());
    }
    let mut out = common.to_vec();
    out.push(("content-type", content_type.to_string()));
    out.push(("content-length", body.len().to_string()));
    api::response(StatusCode::OK, &out, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views() {
        let table = [
            ("", View::Repositories),
            ("/", View::Repositories),
            ("/r/team/app", View::Repository("team/app")),
            ("/r/team/app/", View::Repository("team/app")),
            ("/r/a/_manifests/v1", View::Image("a", "v1")),
            (
                "/r/a/b/_manifests/sha256:00",
                View::Image("a/b", "sha256:00"),
            ),
            ("/r/a/_delete", View::Delete("a")),
            ("/r/a/_other", View::NotFound),
            ("/r/", View::NotFound),
            ("/_mirror", View::Mirror),
            ("/_static/berth.js", View::Asset("berth.js")),
            ("/elsewhere", View::NotFound),
        ];
        for (sub, want) in table {
            assert_eq!(view(sub), want, "{sub}");
        }
    }

    #[test]
    fn accept_headers() {
        let table = [
            ("text/html,application/xhtml+xml,*/*;q=0.8", true),
            ("TEXT/HTML", true),
            ("application/json", false),
            ("*/*", false),
            ("text/html;q=0", false),
            ("application/json, text/html;q=0.5", true),
        ];
        for (accept, want) in table {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT, HeaderValue::from_static(accept));
            assert_eq!(accepts_html(&h), want, "{accept}");
        }
        assert!(!accepts_html(&HeaderMap::new()));
    }

    #[test]
    fn prefixes() {
        let ok = |p: &str| {
            WebConfig {
                prefix: p.into(),
                ..WebConfig::default()
            }
            .validate()
        };
        assert!(ok("/ui").is_ok());
        assert!(ok("/registry/ui").is_ok());
        for bad in [
            "/", "", "ui", "/ui/", "/v2", "/v2/ui", "/token", "/metrics", "/a//b", "/a b",
        ] {
            assert!(ok(bad).is_err(), "{bad:?} should be refused");
        }
    }
}
