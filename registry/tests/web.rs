//! The web page over HTTP, driven in-process: every view and action, what is refused and why,
//! CSRF, cookies, and that the API answers the same bytes with the page on as with it off.
//! (The page in a real browser: `web_chromium.rs`.)

mod authconf;
mod webutil;

use axum::http::StatusCode;
use berth_registry::config::ServerConfig;
use webutil::*;

/// The API's answers do not change when the page is on: same status, headers and body, for
/// browsers' and clients' `Accept` alike, at `/` too when the client does not ask for HTML.
#[tokio::test]
async fn api_answers_are_unchanged() {
    let ts = store().await;
    let on = registry(&ts, Setup::default());
    let off = registry(
        &ts,
        Setup {
            web: false,
            ..Setup::default()
        },
    );
    let img = push_image(&on, "team/app", "v1", &ImageSpec::default()).await;
    let html = "text/html,application/xhtml+xml,*/*;q=0.8";
    let requests = [
        ("GET", "/".to_string(), "application/json"),
        ("GET", "/".to_string(), "*/*"),
        ("POST", "/".to_string(), html),
        ("GET", "/v2/".to_string(), html),
        ("GET", "/v2/_catalog".to_string(), html),
        ("GET", "/v2/team/app/tags/list".to_string(), html),
        ("GET", "/v2/team/app/manifests/v1".to_string(), html),
        (
            "HEAD",
            format!("/v2/team/app/manifests/{}", img.digest),
            html,
        ),
        ("GET", format!("/v2/team/app/blobs/{}", img.layers[0]), html),
        ("GET", "/v2/nope/manifests/x".to_string(), html),
        ("GET", "/v1/search?q=team".to_string(), html),
        ("GET", "/uix".to_string(), html),
        ("GET", "/elsewhere".to_string(), html),
    ];
    for (method, path, accept) in requests {
        let a = call(&on, method, &path, &[("accept", accept.to_string())], "").await;
        let b = call(&off, method, &path, &[("accept", accept.to_string())], "").await;
        assert_eq!(a.status, b.status, "{method} {path}");
        assert_eq!(a.headers, b.headers, "{method} {path}");
        assert_eq!(a.body, b.body, "{method} {path}");
        assert!(
            !a.header("content-type").starts_with("text/html"),
            "{method} {path}"
        );
    }
    // What the page answers instead.
    let page = get(&on, "/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header("content-type").starts_with("text/html"));
    let off_page = get(&off, "/ui/", None).await;
    assert_eq!(off_page.status, StatusCode::NOT_FOUND);
    assert_eq!(off_page.code(), "NAME_UNKNOWN");
}

/// Assets are in the binary, with their types, revalidated by ETag; pages allow nothing but
/// them (CSP) and are never cached.
#[tokio::test]
async fn assets_and_headers() {
    let ts = store().await;
    let reg = registry(&ts, Setup::default());
    for (file, kind, needle) in [
        ("berth.css", "text/css", "@media"),
        ("berth.js", "text/javascript", "liveSearch"),
    ] {
        let r = call(&reg, "GET", &format!("/ui/_static/{file}"), &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
        assert!(r.header("content-type").starts_with(kind));
        assert!(r.text().contains(needle));
        let etag = r.header("etag").to_string();
        assert!(etag.starts_with('"'));
        let again = call(
            &reg,
            "GET",
            &format!("/ui/_static/{file}"),
            &[("if-none-match", etag)],
            "",
        )
        .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        assert!(again.body.is_empty());
    }
    let missing = call(&reg, "GET", "/ui/_static/other.js", &[], "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let page = get(&reg, "/ui/", None).await;
    let csp = page.header("content-security-policy");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.header("cache-control"), "no-store");
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert!(page.header("server-timing").starts_with("app;dur="));
    // Everything the page loads is its own.
    let body = page.text();
    assert!(body.contains("/ui/_static/berth.css") && body.contains("/ui/_static/berth.js"));
    assert!(
        !body.contains("http://") && !body.contains("https://"),
        "{body}"
    );
    // The page's places take only their methods.
    let put = call(&reg, "PUT", "/ui/", &[], "").await;
    assert_eq!(put.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(put.header("allow"), "GET, HEAD");
    let get_delete = get(&reg, "/ui/r/team/app/_delete", None).await;
    assert_eq!(get_delete.status, StatusCode::METHOD_NOT_ALLOWED);
    let nowhere = get(&reg, "/ui/nowhere", None).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    let head = call(&reg, "HEAD", "/ui/", &[], "").await;
    assert_eq!(head.status, StatusCode::OK);
    assert!(head.body.is_empty());
}

/// The configured prefix moves the page; `/` still shows it to browsers.
#[tokio::test]
async fn prefix_is_configurable() {
    let ts = store().await;
    let reg = registry(
        &ts,
        Setup {
            prefix: "/registry/browse",
            ..Setup::default()
        },
    );
    push_image(&reg, "team/app", "v1", &ImageSpec::default()).await;
    let page = get(&reg, "/registry/browse/", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page
        .text()
        .contains(r#"href="/registry/browse/r/team/app""#));
    let root = get(&reg, "/", None).await;
    assert!(root
        .text()
        .contains(r#"href="/registry/browse/r/team/app""#));
    let old = get(&reg, "/ui/", None).await;
    assert_eq!(old.status, StatusCode::NOT_FOUND);
    assert_eq!(old.code(), "NAME_UNKNOWN");
}

/// The repository list: search, both sorts, pages; names are escaped.
#[tokio::test]
async fn repositories_view() {
    let ts = store().await;
    let reg = registry(&ts, Setup::default());
    for name in ["alpha/web", "beta/web", "gamma/db"] {
        push_image(&reg, name, "1", &ImageSpec::default()).await;
    }
    // beta is pushed again later: it sorts first by last push.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    push_image(&reg, "beta/web", "2", &ImageSpec::default()).await;

    let all = get(&reg, "/ui/", None).await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(
        all.links_to("/ui/r/"),
        ["/ui/r/alpha/web", "/ui/r/beta/web", "/ui/r/gamma/db"]
    );
    assert!(all.text().contains("3 repositories"));
    assert!(all.text().contains("<time datetime="));

    let found = get(&reg, "/ui/?q=WEB", None).await;
    assert_eq!(
        found.links_to("/ui/r/"),
        ["/ui/r/alpha/web", "/ui/r/beta/web"]
    );
    let none = get(&reg, "/ui/?q=%3Cscript%3E", None).await;
    assert!(none.text().contains("No repository matches"));
    assert!(none.text().contains("&lt;script&gt;") && !none.text().contains("<script>"));

    let by_push = get(&reg, "/ui/?sort=pushed", None).await;
    assert_eq!(by_push.links_to("/ui/r/")[0], "/ui/r/beta/web");

    let first = get(&reg, "/ui/?n=2", None).await;
    assert_eq!(
        first.links_to("/ui/r/"),
        ["/ui/r/alpha/web", "/ui/r/beta/web"]
    );
    assert!(first.text().contains("Page 1 of 2"));
    assert!(first
        .text()
        .contains(r#"rel="next" href="/ui/?n=2&amp;page=2""#));
    let second = get(&reg, "/ui/?n=2&page=2", None).await;
    assert_eq!(second.links_to("/ui/r/"), ["/ui/r/gamma/db"]);
    // Out of range or nonsense: the last page, or the first.
    let far = get(&reg, "/ui/?n=2&page=99", None).await;
    assert_eq!(far.status, StatusCode::OK);
    let junk = get(&reg, "/ui/?n=x&page=-1&sort=%00", None).await;
    assert_eq!(junk.status, StatusCode::OK);
    assert_eq!(junk.links_to("/ui/r/").len(), 3);
}

/// A repository's tags: digest, size, platforms, pushed time, pull command; an index shows
/// its platforms; unknown repositories and bad names are 404 pages.
#[tokio::test]
async fn tags_view() {
    let ts = store().await;
    let reg = registry(&ts, Setup::default());
    let img = push_image(&reg, "team/app", "v1", &ImageSpec::default()).await;
    let index = push_index(&reg, "team/app", "multi").await;
    let page = get(&reg, "/ui/r/team/app", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    assert!(text.contains("2 tags"), "{text}");
    assert!(text.contains(&img.digest.to_string()));
    assert!(text.contains(&index.to_string()));
    assert!(text.contains("linux/amd64"));
    assert!(text.contains("linux/arm64/v8"));
    assert!(
        text.contains(&pages_size(img.size)),
        "{} in {text}",
        img.size
    );
    assert!(text.contains("docker pull registry.test:5000/team/app:v1"));
    assert!(text.contains(r#"class="copy""#));
    assert!(text.contains(r#"href="/ui/r/team/app/_manifests/v1""#));
    assert!(text.contains("less than a minute ago"));

    for (path, status) in [
        ("/ui/r/team/none", StatusCode::NOT_FOUND),
        ("/ui/r/Team/App", StatusCode::NOT_FOUND),
        ("/ui/r/../etc", StatusCode::NOT_FOUND),
        ("/ui/r/team/app/_manifests/v9", StatusCode::NOT_FOUND),
        ("/ui/r/team/app/_manifests/sha256:zz", StatusCode::NOT_FOUND),
    ] {
        let r = get(&reg, path, None).await;
        assert_eq!(r.status, status, "{path}");
        assert!(r.header("content-type").starts_with("text/html"), "{path}");
    }
}

/// The image view: config (env, cmd, entrypoint, labels, ports), history with layer sizes,
/// layers, and referrers grouped by artifact type; an index lists its platforms.
#[tokio::test]
async fn image_view() {
    let ts = store().await;
    let reg = registry(&ts, Setup::default());
    let img = push_image(&reg, "team/app", "v1", &ImageSpec::default()).await;
    push_referrer(
        &reg,
        "team/app",
        &img,
        "application/vnd.dev.sigstore.bundle+json",
        1,
    )
    .await;
    push_referrer(
        &reg,
        "team/app",
        &img,
        "application/vnd.dev.sigstore.bundle+json",
        2,
    )
    .await;
    push_referrer(&reg, "team/app", &img, "application/spdx+json", 3).await;

    let page = get(&reg, "/ui/r/team/app/_manifests/v1", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    for needle in [
        "PATH=/usr/bin:/bin",
        "GREETING=hello &lt;world&gt;",
        "/bin/serve --port 8080",
        "/entry.sh",
        "8080/tcp",
        "org.opencontainers.image.source",
        "https://example.invalid/app",
        "/srv",
        "RUN make install",
        "ENV GREETING",
        "no layer",
        "application/vnd.dev.sigstore.bundle+json</code> (2)",
        "application/spdx+json</code> (1)",
        "linux/amd64",
    ] {
        assert!(text.contains(needle), "{needle:?} missing");
    }
    for (i, size) in img.layer_sizes.iter().enumerate() {
        assert!(text.contains(&pages_size(*size)), "layer {i} size {size}");
    }
    // The same view by digest, and the index's.
    let by_digest = get(
        &reg,
        &format!("/ui/r/team/app/_manifests/{}", img.digest),
        None,
    )
    .await;
    assert_eq!(by_digest.status, StatusCode::OK);
    assert!(by_digest
        .text()
        .contains("docker pull registry.test:5000/team/app@sha256:"));
    let index = push_index(&reg, "team/app", "multi").await;
    let page = get(&reg, "/ui/r/team/app/_manifests/multi", None).await;
    let text = page.text();
    assert!(text.contains("Platforms"));
    assert!(text.contains("linux/arm64/v8"));
    assert!(text.contains(&index.to_string()));
    assert_eq!(page.links_to("/ui/r/team/app/_manifests/sha256:").len(), 2);
}

/// Deleting: never without the CSRF token (missing, wrong, from another site), never without
/// confirmation; a confirmed delete goes through the API's handler and redirects back.
#[tokio::test]
async fn delete_needs_csrf_and_confirmation() {
    let ts = store().await;
    let reg = registry(&ts, Setup::default());
    let img = push_image(&reg, "team/app", "v1", &ImageSpec::default()).await;
    push_image(&reg, "team/app", "v2", &ImageSpec::default()).await;
    let mut browser = Browser::default();
    let page = browser.get(&reg, "/ui/r/team/app").await;
    let csrf = page.csrf();
    assert_eq!(csrf.len(), 48);
    let cookie = page.set_cookie("berth_csrf");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert!(page
        .text()
        .contains(r#"data-confirm="Delete the tag v1 from team/app?"#));

    let form = |csrf: &str, confirmed: bool| {
        let mut f = format!("reference=v1&csrf={csrf}");
        if confirmed {
            f.push_str("&confirmed=yes");
        }
        f
    };
    let refused = [
        (browser.clone(), form("", true), vec![]),
        (
            browser.clone(),
            "reference=v1&confirmed=yes".to_string(),
            vec![],
        ),
        (browser.clone(), form(&"0".repeat(48), true), vec![]),
        (Browser::default(), form(&csrf, true), vec![]),
        (
            browser.clone(),
            form(&csrf, true),
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            browser.clone(),
            form(&csrf, true),
            vec![("origin", "http://evil.invalid")],
        ),
    ];
    for (i, (b, body, extra)) in refused.into_iter().enumerate() {
        let r = b.post(&reg, "/ui/r/team/app/_delete", &body, &extra).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "case {i}");
        assert!(tag_exists(&reg, "team/app", "v1").await, "case {i}");
    }
    // Not confirmed: a page that asks, nothing deleted.
    let ask = browser
        .post(&reg, "/ui/r/team/app/_delete", &form(&csrf, false), &[])
        .await;
    assert_eq!(ask.status, StatusCode::OK);
    assert!(ask.text().contains("Delete tag v1?"));
    assert!(ask.text().contains(r#"name="confirmed" value="yes""#));
    assert!(tag_exists(&reg, "team/app", "v1").await);
    // Bad references are refused.
    let bad = browser
        .post(
            &reg,
            "/ui/r/team/app/_delete",
            &format!("reference=..%2Fx&csrf={csrf}&confirmed=yes"),
            &[("origin", "http://registry.test:5000")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    // Confirmed, from the page itself.
    let done = browser
        .post(
            &reg,
            "/ui/r/team/app/_delete",
            &form(&csrf, true),
            &[
                ("origin", "http://registry.test:5000"),
                ("sec-fetch-site", "same-origin"),
            ],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    assert_eq!(done.header("location"), "/ui/r/team/app?deleted=tag+v1");
    assert!(!tag_exists(&reg, "team/app", "v1").await);
    assert!(tag_exists(&reg, "team/app", "v2").await);
    let after = browser.get(&reg, "/ui/r/team/app?deleted=tag+v1").await;
    assert!(after.text().contains("Deleted tag v1."));
    // Again: it is gone.
    let again = browser
        .post(&reg, "/ui/r/team/app/_delete", &form(&csrf, true), &[])
        .await;
    assert_eq!(again.status, StatusCode::NOT_FOUND);
    // A manifest by digest takes its tags with it.
    let body = format!("reference={}&csrf={csrf}&confirmed=yes", img.digest);
    let gone = browser
        .post(&reg, "/ui/r/team/app/_delete", &body, &[])
        .await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);
    assert!(!tag_exists(&reg, "team/app", "v2").await);
    let api = call(
        &reg,
        "GET",
        &format!("/v2/team/app/manifests/{}", img.digest),
        &[],
        "",
    )
    .await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    // Not a form, or too large.
    let json = browser
        .post_typed(&reg, "/ui/r/team/app/_delete", "application/json", "{}")
        .await;
    assert_eq!(json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = browser
        .post(&reg, "/ui/r/team/app/_delete", &"a".repeat(20_000), &[])
        .await;
    assert_eq!(huge.status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// `server.delete = false`: no delete button, and a POST is refused.
#[tokio::test]
async fn no_delete_when_the_registry_forbids_it() {
    let ts = store().await;
    let reg = registry(
        &ts,
        Setup {
            server: ServerConfig {
                delete: false,
                ..ServerConfig::default()
            },
            ..Setup::default()
        },
    );
    push_image(&reg, "team/app", "v1", &ImageSpec::default()).await;
    let mut browser = Browser::default();
    let page = browser.get(&reg, "/ui/r/team/app").await;
    assert!(!page.text().contains("_delete"));
    let csrf = browser.cookies["berth_csrf"].clone();
    let r = browser
        .post(
            &reg,
            "/ui/r/team/app/_delete",
            &format!("reference=v1&csrf={csrf}&confirmed=yes"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(tag_exists(&reg, "team/app", "v1").await);
}

/// A mirror's page: each upstream with its own hits and misses and what it has cached; no
/// mirror, no mirror link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_view() {
    let upstream = serve("").await;
    push_image(&upstream.registry, "team/app", "v1", &ImageSpec::default()).await;
    let ts = store().await;
    let config = berth_registry::Config::parse(
        &format!(
            "[mirror]\ndefault = \"up.test\"\nlocal = [\"local\"]\n\
             [mirror.upstream.\"up.test\"]\nurl = \"http://{}\"\n\
             [mirror.upstream.\"other.test\"]\nurl = \"http://127.0.0.1:9\"\n",
            upstream.addr
        ),
        "test",
    )
    .unwrap();
    let mirror = berth_registry::Mirror::new(config.mirror.unwrap()).unwrap();
    let reg = std::sync::Arc::new(
        berth_registry::Registry::new(ts.store.clone(), ServerConfig::default())
            .with_front(mirror)
            .with_page(berth_registry::web::Web::new(
                berth_registry::web::WebConfig::default(),
            )),
    );
    // A miss, then a hit, for the tagged manifest.
    for _ in 0..2 {
        let r = call(&reg, "GET", "/v2/up.test/team/app/manifests/v1", &[], "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    }
    let listing = get(&reg, "/ui/", None).await;
    assert!(listing.text().contains(r#"href="/ui/_mirror""#));
    let page = get(&reg, "/ui/_mirror", None).await;
    assert_eq!(page.status, StatusCode::OK);
    let text = page.text();
    let up = text.find("up.test</h2>").expect("the upstream's section");
    let other = text
        .find("other.test</h2>")
        .expect("the other upstream's section");
    assert!(other < up, "sorted by host");
    let (other_part, up_part) = (&text[other..up], &text[up..]);
    assert!(up_part.contains("1 hits, 1 misses"), "{up_part}");
    assert!(up_part.contains(&format!("http://{}", upstream.addr)));
    assert!(up_part.contains(r#"href="/ui/r/up.test/team/app""#));
    assert!(other_part.contains("0 hits, 0 misses"));
    assert!(other_part.contains("Nothing cached yet."));
    // The cached repository is browsable like any other.
    let cached = get(&reg, "/ui/r/up.test/team/app", None).await;
    assert_eq!(cached.status, StatusCode::OK);
    assert!(cached.text().contains("v1"));

    let plain = registry(&ts, Setup::default());
    let listing = get(&plain, "/ui/", None).await;
    assert!(!listing.text().contains("_mirror"));
    let page = get(&plain, "/ui/_mirror", None).await;
    assert!(page.text().contains("This registry is not a mirror"));
}

/// With `[auth]`: each visitor sees only what they may pull, signs in with a form (Basic
/// credentials checked, or a token from the token service), gets a cookie that is HttpOnly,
/// SameSite=Strict (and Secure under TLS), may delete only where the rules say so, and signs
/// out. The session is no API token, and no API token is a session.
#[tokio::test]
async fn sign_in_and_what_each_user_sees() {
    for token_service in [false, true] {
        let ts = store().await;
        let dir = tempfile::tempdir().unwrap();
        let reg = registry(
            &ts,
            Setup {
                auth: Some(auth_config(dir.path(), token_service)),
                ..Setup::default()
            },
        );
        let fill = filler(&ts);
        for name in ["team/app", "team/web", "other/app", "public/app"] {
            push_image(&fill, name, "v1", &ImageSpec::default()).await;
        }
        let case = if token_service {
            "token service"
        } else {
            "basic"
        };

        // Anonymous: the public repository only; a team page sends to the sign-in form.
        let mut anon = Browser::default();
        let page = anon.get(&reg, "/ui/").await;
        assert_eq!(page.links_to("/ui/r/"), ["/ui/r/public/app"], "{case}");
        assert!(page.text().contains(r#"href="/ui/_signin""#));
        let team = anon.get(&reg, "/ui/r/team/app").await;
        assert_eq!(team.status, StatusCode::SEE_OTHER);
        assert_eq!(
            team.header("location"),
            "/ui/_signin?next=%2Fui%2Fr%2Fteam%2Fapp"
        );
        let public = anon.get(&reg, "/ui/r/public/app").await;
        assert_eq!(public.status, StatusCode::OK);
        assert!(!public.text().contains("_delete"));

        // Signing in: the form needs its CSRF token; a wrong password is refused.
        let mut bob = Browser::default();
        let form = bob.get(&reg, "/ui/_signin?next=/ui/r/team/app").await;
        assert!(form
            .text()
            .contains(r#"name="next" value="/ui/r/team/app""#));
        let csrf = bob.cookies["berth_csrf"].clone();
        let no_csrf = bob
            .submit(&reg, "/ui/_signin", "username=bob&password=bob-pw")
            .await;
        assert_eq!(no_csrf.status, StatusCode::FORBIDDEN, "{case}");
        assert!(!bob.cookies.contains_key("berth_session"));
        let wrong = bob
            .submit(
                &reg,
                "/ui/_signin",
                &format!("username=bob&password=nope&csrf={csrf}"),
            )
            .await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{case}");
        assert!(wrong.text().contains("Wrong user name or password."));
        assert!(!bob.cookies.contains_key("berth_session"));
        let ok = bob
            .submit(
                &reg,
                "/ui/_signin",
                &format!("username=bob&password=bob-pw&csrf={csrf}&next=%2Fui%2Fr%2Fteam%2Fapp"),
            )
            .await;
        assert_eq!(ok.status, StatusCode::SEE_OTHER, "{case}: {}", ok.text());
        assert_eq!(ok.header("location"), "/ui/r/team/app");
        let cookie = ok.set_cookie("berth_session");
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
            assert!(cookie.contains(attr), "{case}: {cookie}");
        }
        assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
        // Signing in gives a new CSRF token.
        assert_ne!(bob.cookies["berth_csrf"], csrf);

        // Bob may pull team/*: he sees it, with no delete button, and a delete is refused.
        let page = bob.get(&reg, "/ui/").await;
        assert_eq!(
            page.links_to("/ui/r/"),
            ["/ui/r/public/app", "/ui/r/team/app", "/ui/r/team/web"],
            "{case}"
        );
        assert!(page.text().contains("Signed in as <strong>bob</strong>"));
        let team = bob.get(&reg, "/ui/r/team/app").await;
        assert_eq!(team.status, StatusCode::OK);
        assert!(!team.text().contains("_delete"), "{case}");
        let image = bob.get(&reg, "/ui/r/team/app/_manifests/v1").await;
        assert_eq!(image.status, StatusCode::OK);
        assert!(!image.text().contains("_delete"));
        let other = bob.get(&reg, "/ui/r/other/app").await;
        assert_eq!(other.status, StatusCode::FORBIDDEN);
        let other_image = bob.get(&reg, "/ui/r/other/app/_manifests/v1").await;
        assert_eq!(other_image.status, StatusCode::FORBIDDEN);
        let csrf = bob.cookies["berth_csrf"].clone();
        let refused = bob
            .post(
                &reg,
                "/ui/r/team/app/_delete",
                &format!("reference=v1&csrf={csrf}&confirmed=yes"),
                &[],
            )
            .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{case}");
        assert!(tag_exists(&fill, "team/app", "v1").await);
        // An anonymous delete is sent to sign in.
        let anon_csrf = anon.cookies["berth_csrf"].clone();
        let anon_delete = anon
            .post(
                &reg,
                "/ui/r/public/app/_delete",
                &format!("reference=v1&csrf={anon_csrf}&confirmed=yes"),
                &[],
            )
            .await;
        assert_eq!(anon_delete.status, StatusCode::SEE_OTHER);
        assert!(tag_exists(&fill, "public/app", "v1").await);

        // The session is not an API token, and an API token is not a session.
        let session = bob.cookies["berth_session"].clone();
        let api = call(
            &reg,
            "GET",
            "/v2/team/app/tags/list",
            &[("authorization", format!("Bearer {session}"))],
            "",
        )
        .await;
        assert_eq!(api.status, StatusCode::UNAUTHORIZED, "{case}");
        if token_service {
            let basic = format!(
                "Basic {}",
                base64::Engine::encode(&base64::engine::general_purpose::STANDARD, "bob:bob-pw")
            );
            let t = call(
                &reg,
                "GET",
                "/token?service=registry.test&scope=repository:team/app:pull",
                &[("authorization", basic)],
                "",
            )
            .await;
            let token = serde_json::from_slice::<serde_json::Value>(&t.body).unwrap()["token"]
                .as_str()
                .unwrap()
                .to_string();
            let as_session = get(&reg, "/ui/", Some(&format!("berth_session={token}"))).await;
            assert_eq!(as_session.links_to("/ui/r/"), ["/ui/r/public/app"]);
        }
        let forged = get(&reg, "/ui/", Some("berth_session=eyJhbGciOiJub25lIn0.e30.")).await;
        assert_eq!(forged.links_to("/ui/r/"), ["/ui/r/public/app"]);

        // Alice may delete in team/*.
        let mut alice = Browser::default();
        alice.get(&reg, "/ui/_signin").await;
        let csrf = alice.cookies["berth_csrf"].clone();
        alice
            .submit(
                &reg,
                "/ui/_signin",
                &format!("username=alice&password=alice-pw&csrf={csrf}"),
            )
            .await;
        let team = alice.get(&reg, "/ui/r/team/app").await;
        assert!(team.text().contains("_delete"), "{case}");
        let csrf = team.csrf();
        let done = alice
            .post(
                &reg,
                "/ui/r/team/app/_delete",
                &format!("reference=v1&csrf={csrf}&confirmed=yes"),
                &[],
            )
            .await;
        assert_eq!(
            done.status,
            StatusCode::SEE_OTHER,
            "{case}: {}",
            done.text()
        );
        assert!(!tag_exists(&fill, "team/app", "v1").await);

        // Signing out: needs the token, clears the session.
        let no_token = alice.submit(&reg, "/ui/_signout", "").await;
        assert_eq!(no_token.status, StatusCode::FORBIDDEN);
        assert!(alice.cookies.contains_key("berth_session"));
        let csrf = alice.cookies["berth_csrf"].clone();
        let out = alice
            .submit(&reg, "/ui/_signout", &format!("csrf={csrf}"))
            .await;
        assert_eq!(out.status, StatusCode::SEE_OTHER);
        assert!(out.set_cookie("berth_session").contains("Max-Age=0"));
        assert!(!alice.cookies.contains_key("berth_session"));
        let page = alice.get(&reg, "/ui/").await;
        assert_eq!(page.links_to("/ui/r/"), ["/ui/r/public/app"]);
    }
}

/// Under TLS both cookies are Secure; the place to go after signing in is never elsewhere.
#[tokio::test]
async fn cookies_under_tls_and_no_open_redirect() {
    let ts = store().await;
    let dir = tempfile::tempdir().unwrap();
    let reg = registry(
        &ts,
        Setup {
            auth: Some(auth_config(dir.path(), true)),
            ..Setup::default()
        },
    );
    let mut b = Browser {
        tls: true,
        ..Browser::default()
    };
    let form = b.get(&reg, "/ui/_signin").await;
    assert!(form.set_cookie("berth_csrf").contains("; Secure"));
    let csrf = b.cookies["berth_csrf"].clone();
    for (next, want) in [
        ("https://evil.invalid/", "/ui"),
        ("//evil.invalid/ui", "/ui"),
        ("/ui/..//evil.invalid", "/ui"),
        ("/v2/_catalog", "/ui"),
        ("/ui/r/team/app", "/ui/r/team/app"),
    ] {
        let next_q: String = form_urlencoded::byte_serialize(next.as_bytes()).collect();
        let r = b
            .post(
                &reg,
                "/ui/_signin",
                &format!("username=bob&password=bob-pw&csrf={csrf}&next={next_q}"),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{next}");
        assert_eq!(r.header("location"), want, "{next}");
        let cookie = r.set_cookie("berth_session");
        assert!(
            cookie.contains("; Secure") && cookie.contains("HttpOnly"),
            "{cookie}"
        );
    }
    // Without [auth] there is nothing to sign in to.
    let open = registry(&ts, Setup::default());
    let mut b = Browser::default();
    let page = b.get(&open, "/ui/_signin").await;
    assert!(page.text().contains("no access control"));
    let csrf = b.cookies["berth_csrf"].clone();
    let r = b
        .post(
            &open,
            "/ui/_signin",
            &format!("username=a&password=b&csrf={csrf}"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.set_cookie("berth_session").is_empty());
}
