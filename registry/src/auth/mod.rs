//! Who may pull, push and delete: basic auth from an htpasswd file, berth's own token service
//! (the docker token protocol) and access rules per user, group and repository pattern.
//!
//! [`admit`] runs before every endpoint: it answers the token service's `/token` itself,
//! otherwise it works out who is asking ([`Grant`]: a caller, and a token's access claims when
//! the request carried a token), what the endpoint needs ([`Need`]), and either lets the request
//! through with the grant in its extensions or answers 401 UNAUTHORIZED (with the challenge
//! the client must answer) or 403 DENIED. Handlers that list repositories (`_catalog`,
//! search) or mount from another repository ask [`Auth::may_pull`] about each name.
//!
//! Without a token service the challenge is Basic and the rules decide each request. With
//! one, the challenge is Bearer; the token service grants what was asked and what the rules
//! allow, and the registry checks the token's claims (Basic credentials are still accepted and
//! checked against the rules). Passwords and tokens are never logged; denials are, with the
//! user, repository and action.

mod htpasswd;
pub mod rules;
pub mod token;

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{header, Method, Request, StatusCode};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde::Deserialize;

use crate::error::{Code, RegistryError, Result};
use crate::routes::{self, Route};
pub use htpasswd::Users;
pub use rules::{Action, Caller, RuleConfig, Rules};
use token::{ResourceAccess, Tokens};
pub use token::{TokenConfig, TrustConfig};

/// `[auth]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// The users: an htpasswd file of bcrypt hashes (`htpasswd -B`).
    pub htpasswd: PathBuf,
    /// The realm of the Basic challenge.
    #[serde(default = "default_realm")]
    pub realm: String,
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
    /// Present: clients get Bearer challenges and tokens from berth's token service.
    #[serde(default)]
    pub token: Option<TokenConfig>,
    /// Who may read `/metrics`.
    #[serde(default)]
    pub metrics: MetricsAccess,
}

/// `auth.metrics`: who may read `/metrics` when access is controlled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MetricsAccess {
    /// Any user with valid credentials (a scraper given a user of its own).
    #[default]
    SignedIn,
    /// Everyone, without credentials.
    Public,
}

fn default_realm() -> String {
    "berth".into()
}

/// The path of the built-in token service.
pub const TOKEN_PATH: &str = "/token";

/// The access control of one registry.
pub struct Auth {
    users: Users,
    rules: Rules,
    realm: String,
    tokens: Option<Tokens>,
    /// Signs the web page's sessions when there is no token service (`tokens`).
    session_signer: Option<Tokens>,
    metrics: MetricsAccess,
    /// Whether the registry is served over TLS: the scheme of the default token realm when
    /// the request does not say how it came ([`crate::Transport`]).
    tls: bool,
}

/// Who a request comes from, and what its token grants.
#[derive(Debug, Clone)]
pub struct Grant {
    pub caller: Caller,
    /// The access claims of the request's token; `None` when it carried no token.
    token: Option<Vec<ResourceAccess>>,
}

/// What an endpoint requires of its caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need<'a> {
    /// Open to anyone (answers are filtered, or there is nothing to protect).
    Nothing,
    /// Any caller with valid credentials (the API base: how clients check a login).
    SignedIn,
    /// A user with valid credentials (a token must name one: an anonymous token is not
    /// enough).
    User,
    Repository(&'a str, Action),
    Catalog,
}

/// What a route needs, by method: reads pull, writes push, deletions delete.
pub fn need<'a>(route: &Route<'a>, method: &Method) -> Need<'a> {
    let read = *method == Method::GET || *method == Method::HEAD;
    match *route {
        Route::Base => Need::SignedIn,
        // `/metrics` needs a user unless `auth.metrics = "public"` (see `admit`).
        Route::Metrics => Need::User,
        Route::Catalog => Need::Catalog,
        // Orchestrators probe health without credentials.
        Route::Search | Route::NotFound | Route::Livez | Route::Readyz => Need::Nothing,
        Route::Tags(n) | Route::Referrers(n, _) => Need::Repository(n, Action::Pull),
        Route::Manifest(n, _) | Route::Blob(n, _) => Need::Repository(
            n,
            if read {
                Action::Pull
            } else if *method == Method::DELETE {
                Action::Delete
            } else {
                Action::Push
            },
        ),
        Route::UploadStart(n) | Route::Upload(n, _) => Need::Repository(n, Action::Push),
    }
}

impl Auth {
    /// Reads the htpasswd file, resolves the rules and loads (or creates) the token key.
    pub fn new(config: &AuthConfig, tls: bool) -> Result<Auth, String> {
        let users = Users::load(&config.htpasswd)?;
        let rules = Rules::new(&config.rules, &config.groups)?;
        let tokens = config.token.as_ref().map(Tokens::new).transpose()?;
        let session_signer = match tokens {
            Some(_) => None,
            None => Some(Tokens::in_memory(&config.realm)?),
        };
        Ok(Auth {
            users,
            rules,
            realm: config.realm.clone(),
            tokens,
            session_signer,
            metrics: config.metrics,
            tls,
        })
    }

    /// Who is asking: anonymous without credentials; a wrong password or a bad token is 401.
    async fn authenticate(&self, req: &Parts) -> Result<Grant> {
        let Some(value) = req.headers.get(header::AUTHORIZATION) else {
            return Ok(Grant {
                caller: Caller::Anonymous,
                token: None,
            });
        };
        let value = value.to_str().unwrap_or("").trim();
        let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => {
                let Some((user, password)) = decode_basic(rest) else {
                    return Err(self.unauthorized(req, None, "malformed Basic credentials"));
                };
                if self.users.verify(&user, &password).await {
                    Ok(Grant {
                        caller: Caller::User(user),
                        token: None,
                    })
                } else {
                    tracing::warn!(
                        user = %user,
                        status = 401,
                        code = %Code::Unauthorized.as_str(),
                        "authentication failed: wrong user name or password"
                    );
                    Err(self.unauthorized(req, None, "incorrect username or password"))
                }
            }
            "bearer" => {
                let Some(tokens) = &self.tokens else {
                    return Err(self.unauthorized(req, None, "this registry issues no tokens"));
                };
                match tokens.verify(rest.trim()) {
                    Ok(v) => Ok(Grant {
                        caller: if v.subject.is_empty() {
                            Caller::Anonymous
                        } else {
                            Caller::User(v.subject)
                        },
                        token: Some(v.access),
                    }),
                    Err(reason) => {
                        tracing::warn!(
                            %reason,
                            status = 401,
                            code = %Code::Unauthorized.as_str(),
                            "authentication failed: token refused"
                        );
                        Err(self.unauthorized(
                            req,
                            Some("invalid_token"),
                            "invalid or expired token",
                        ))
                    }
                }
            }
            _ => Err(self.unauthorized(req, None, "unsupported authorization scheme")),
        }
    }

    /// Whether the grant allows `action` on `repo`: its token's claims if it has a token,
    /// else the rules.
    fn may(&self, grant: &Grant, repo: &str, action: Action) -> bool {
        match &grant.token {
            Some(access) => access
                .iter()
                .any(|a| a.is_repository() && a.name == repo && a.grants(action.as_str())),
            None => self.rules.allows(&grant.caller, repo, action),
        }
    }

    /// Whether the caller may see `repo` in listings and mount blobs from it.
    pub fn may_pull(&self, grant: &Grant, repo: &str) -> bool {
        self.rules.allows(&grant.caller, repo, Action::Pull)
    }

    /// Whether the rules let `caller` do `action` on `repo` (the web page asks this of its
    /// signed-in user: a session carries who, never what).
    pub fn allows(&self, caller: &Caller, repo: &str, action: Action) -> bool {
        self.rules.allows(caller, repo, action)
    }

    /// The web page's sign-in: checks the password and returns a session token for `user`,
    /// signed by the token service's key (or, without one, by a key of this process), for the
    /// audience [`Auth::session_audience`] only, so the API never takes it as a bearer token.
    pub async fn sign_in(
        &self,
        user: &str,
        password: &str,
        lifetime: u64,
    ) -> Result<String, SignInError> {
        if !self.users.verify(user, password).await {
            tracing::warn!(user = %user, "web sign-in refused: wrong user name or password");
            return Err(SignInError::Refused);
        }
        let signer = self.session_signer().ok_or(SignInError::Failed(
            "no key to sign sessions with".to_string(),
        ))?;
        signer
            .issue_for(user, &[], &session_audience(signer), lifetime)
            .map(|(token, _)| token)
            .map_err(SignInError::Failed)
    }

    /// The user a session token names, if it checks out (signature, audience, expiry).
    pub fn session_user(&self, token: &str) -> Option<String> {
        let signer = self.session_signer()?;
        match signer.verify_for(token, &session_audience(signer)) {
            Ok(v) if v.own && !v.subject.is_empty() => Some(v.subject),
            _ => None,
        }
    }

    /// The token service's key, else this process's own (`Auth::new` makes one of the two).
    fn session_signer(&self) -> Option<&Tokens> {
        self.tokens.as_ref().or(self.session_signer.as_ref())
    }

    fn catalog_allowed(&self, grant: &Grant) -> bool {
        match &grant.token {
            Some(access) => access
                .iter()
                .any(|a| a.kind == "registry" && a.name == "catalog" && a.grants("*")),
            None => {
                matches!(grant.caller, Caller::User(_)) || self.rules.grants_anything(&grant.caller)
            }
        }
    }

    /// Lets the request through or says why not.
    fn check(&self, req: &Parts, grant: &Grant, need: &Need) -> Result<()> {
        match *need {
            Need::Nothing => Ok(()),
            Need::SignedIn => match (&grant.caller, &grant.token) {
                (Caller::User(_), _) | (_, Some(_)) => Ok(()),
                _ => Err(self.unauthorized(req, None, "authentication required")),
            },
            Need::User => match &grant.caller {
                Caller::User(_) => Ok(()),
                Caller::Anonymous => Err(self.unauthorized(req, None, "authentication required")),
            },
            Need::Catalog if self.catalog_allowed(grant) => Ok(()),
            Need::Catalog => {
                let scope = "registry:catalog:*".to_string();
                Err(self.refuse(req, grant, Some(scope), "catalog", "list"))
            }
            Need::Repository(repo, action) if self.may(grant, repo, action) => Ok(()),
            Need::Repository(repo, action) => {
                let actions = match action {
                    Action::Push => "pull,push",
                    a => a.as_str(),
                };
                let scope = format!("repository:{repo}:{actions}");
                // A token short of the scope, held by someone the rules would give it to:
                // the client should fetch a better token.
                if grant.token.is_some() && self.rules.allows(&grant.caller, repo, action) {
                    return Err(self.challenge(
                        req,
                        Some(&scope),
                        Some("insufficient_scope"),
                        "the token does not grant this",
                    ));
                }
                Err(self.refuse(req, grant, Some(scope), repo, action.as_str()))
            }
        }
    }

    /// 401 for a caller who has not signed in (they may have more rights once they do),
    /// 403 DENIED for one who has.
    fn refuse(
        &self,
        req: &Parts,
        grant: &Grant,
        scope: Option<String>,
        repo: &str,
        action: &str,
    ) -> RegistryError {
        let answer = match grant.caller {
            Caller::Anonymous => {
                self.challenge(req, scope.as_deref(), None, "authentication required")
            }
            Caller::User(_) => {
                RegistryError::new(Code::Denied, "requested access to the resource is denied")
                    .with_detail(serde_json::json!({"repository": repo, "action": action}))
            }
        };
        let user = grant.caller.name();
        tracing::warn!(
            %user,
            repository = %repo,
            %action,
            status = answer.status.as_u16(),
            code = %answer.code.as_str(),
            "access denied"
        );
        answer
    }

    fn unauthorized(&self, req: &Parts, error: Option<&str>, message: &str) -> RegistryError {
        self.challenge(req, None, error, message)
    }

    /// The token service's own 401: it asks for a user name and password.
    fn basic_challenge(&self, message: &str) -> RegistryError {
        RegistryError::new(Code::Unauthorized, message)
            .with_header("www-authenticate", format!("Basic realm={:?}", self.realm))
    }

    /// 401 UNAUTHORIZED with the challenge a client answers: Basic, or Bearer naming the
    /// token service, the service and the scope.
    fn challenge(
        &self,
        req: &Parts,
        scope: Option<&str>,
        error: Option<&str>,
        message: &str,
    ) -> RegistryError {
        let value = match &self.tokens {
            None => format!("Basic realm={:?}", self.realm),
            Some(t) => {
                let realm = t.realm.clone().unwrap_or_else(|| self.default_realm(req));
                let mut v = format!("Bearer realm={realm:?},service={:?}", t.service);
                if let Some(s) = scope {
                    v.push_str(&format!(",scope={s:?}"));
                }
                if let Some(e) = error {
                    v.push_str(&format!(",error={e:?}"));
                }
                v
            }
        };
        RegistryError::new(Code::Unauthorized, message).with_header("www-authenticate", value)
    }

    /// `<scheme>://<host the client used>/token`.
    fn default_realm(&self, req: &Parts) -> String {
        let host = req
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| req.uri.authority().map(|a| a.as_str()))
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .unwrap_or("localhost");
        // The scheme the client used: a loopback client may speak plain HTTP to a TLS port.
        let tls = req
            .extensions
            .get::<crate::Transport>()
            .map_or(self.tls, |t| t.tls);
        let scheme = if tls { "https" } else { "http" };
        format!("{scheme}://{host}{TOKEN_PATH}")
    }

    /// The token service: `GET /token?service=…&scope=…` with optional Basic credentials, or
    /// `POST /token` with an OAuth2 password grant (what containerd sends first).
    async fn token_endpoint(&self, tokens: &Tokens, req: Request<Body>) -> Result<Response> {
        let (parts, body) = req.into_parts();
        let mut params: Vec<(String, String)> = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let probe = parts;
        let mut credentials = None;
        if probe.method == Method::POST {
            let body = http_body_util::Limited::new(body, 64 << 10)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let form: Vec<(String, String)> = form_urlencoded::parse(&body).into_owned().collect();
            let get = |k: &str| form.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
            match get("grant_type").as_deref() {
                Some("password") => {
                    credentials = Some((
                        get("username").unwrap_or_default(),
                        get("password").unwrap_or_default(),
                    ));
                }
                other => {
                    return Ok(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "unsupported_grant_type",
                        &format!("grant_type {other:?} is not supported; use password"),
                    ))
                }
            }
            params.extend(form);
        } else if probe.method != Method::GET {
            return Err(RegistryError::new(
                Code::Unsupported,
                "the token service answers GET and POST",
            ));
        }
        let caller = match credentials {
            Some((user, password)) => {
                if self.users.verify(&user, &password).await {
                    Caller::User(user)
                } else {
                    tracing::warn!(
                        user = %user,
                        status = 401,
                        code = %Code::Unauthorized.as_str(),
                        "token refused: wrong user name or password"
                    );
                    return Err(self.basic_challenge("incorrect username or password"));
                }
            }
            None if probe.headers.contains_key(header::AUTHORIZATION) => {
                let grant = self
                    .authenticate(&probe)
                    .await
                    .map_err(|e| self.basic_challenge(&e.message))?;
                if grant.token.is_some() {
                    return Err(
                        self.basic_challenge("the token service takes a user name and password")
                    );
                }
                grant.caller
            }
            None => Caller::Anonymous,
        };
        if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
            if *service != tokens.service {
                return Ok(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("this token service is for service {:?}", tokens.service),
                ));
            }
        }
        let mut access: Vec<ResourceAccess> = Vec::new();
        for (_, scope) in params.iter().filter(|(k, _)| k == "scope") {
            for one in scope.split(' ').filter(|s| !s.is_empty()) {
                let Some(asked) = ResourceAccess::parse_scope(one) else {
                    return Ok(oauth_error(
                        StatusCode::BAD_REQUEST,
                        "invalid_scope",
                        &format!("scope {one:?} is not type:name:actions"),
                    ));
                };
                if let Some(granted) = self.grant_scope(&caller, &asked) {
                    access.push(granted);
                }
            }
        }
        let (token, issued) = tokens
            .issue(
                match &caller {
                    Caller::User(u) => u,
                    Caller::Anonymous => "",
                },
                &access,
            )
            .map_err(|e| RegistryError::new(Code::Internal, e))?;
        tracing::debug!(user = %caller.name(), granted = ?access, "token issued");
        let body = serde_json::to_vec(&serde_json::json!({
            "token": token,
            "access_token": token,
            "expires_in": tokens.lifetime,
            "issued_at": token::rfc3339(issued),
        }))
        .unwrap_or_default();
        Ok(json(StatusCode::OK, body.into()))
    }

    /// What of `asked` the rules give `caller`; `None` when nothing.
    fn grant_scope(&self, caller: &Caller, asked: &ResourceAccess) -> Option<ResourceAccess> {
        let actions: Vec<String> = if asked.is_repository() {
            let wanted: Vec<Action> = if asked.actions.iter().any(|a| a == "*") {
                Action::ALL.to_vec()
            } else {
                asked
                    .actions
                    .iter()
                    .filter_map(|a| Action::parse(a))
                    .collect()
            };
            wanted
                .into_iter()
                .filter(|a| self.rules.allows(caller, &asked.name, *a))
                .map(|a| a.as_str().to_string())
                .collect()
        } else if asked.kind == "registry" && asked.name == "catalog" {
            let probe = Grant {
                caller: caller.clone(),
                token: None,
            };
            if self.catalog_allowed(&probe) {
                vec!["*".to_string()]
            } else {
                vec![]
            }
        } else {
            vec![]
        };
        (!actions.is_empty()).then(|| ResourceAccess {
            kind: asked.kind.clone(),
            name: asked.name.clone(),
            actions,
        })
    }
}

/// The audience of the web page's session tokens: not the API's service name.
fn session_audience(signer: &Tokens) -> String {
    format!("{} web page", signer.service)
}

/// Why the web page's sign-in failed.
#[derive(Debug)]
pub enum SignInError {
    /// Wrong user name or password.
    Refused,
    /// The session could not be signed.
    Failed(String),
}

fn decode_basic(b64: &str) -> Option<(String, String)> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let raw = String::from_utf8(raw).ok()?;
    let (u, p) = raw.split_once(':')?;
    Some((u.to_string(), p.to_string()))
}

fn json(status: StatusCode, body: Bytes) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let body = serde_json::to_vec(&serde_json::json!({
        "error": error,
        "error_description": description,
    }))
    .unwrap_or_default();
    json(status, body.into())
}

/// Runs before every endpoint. `Ok(Some(_))` is the token service's own answer; `Ok(None)`
/// lets the request through, with its [`Grant`] in the request's extensions.
pub async fn admit(auth: &Auth, req: &mut Request<Body>) -> Result<Option<Response>> {
    let path = req.uri().path().to_string();
    if path == TOKEN_PATH {
        if let Some(tokens) = &auth.tokens {
            let taken = std::mem::replace(req, Request::new(Body::empty()));
            return auth.token_endpoint(tokens, taken).await.map(Some);
        }
    }
    let route = routes::parse(&path);
    // Work on the head alone: the body is not `Sync`, and the head is all that is needed.
    let (mut parts, body) = std::mem::replace(req, Request::new(Body::empty())).into_parts();
    let need = match route {
        Route::Metrics if auth.metrics == MetricsAccess::Public => Need::Nothing,
        _ => need(&route, &parts.method),
    };
    let admitted = match auth.authenticate(&parts).await {
        Ok(grant) => auth.check(&parts, &grant, &need).map(|()| grant),
        Err(e) => Err(e),
    };
    if let Ok(grant) = &admitted {
        parts.extensions.insert(grant.clone());
    }
    *req = Request::from_parts(parts, body);
    admitted.map(|_| None)
}
