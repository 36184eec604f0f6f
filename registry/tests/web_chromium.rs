//! The web page in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! Debian's chromedriver (`chromium` and `chromium-driver`, which scripts/test.sh installs).
//! A `berth serve` (the real server, on a loopback port of its own) holds a few images; the
//! test searches as it types, follows a repository to a tag and an image, copies a pull
//! command, deletes a tag after confirming, signs in and out of a registry with access control,
//! is refused a delete whose form lost its CSRF token or came from another site, shows a
//! mirror's upstreams, and checks each view with axe-core (no serious or critical finding) and
//! at a phone's width (nothing wider than the window; the repository list with a long name;
//! the sign-in form, its refusal of a wrong password, a signed-in user's page). Screenshots go to `$BERTH_SCREENSHOTS`, else
//! `<target tmp>/web-screenshots/`, for a person to look at.
//!
//! Nothing is skipped: a missing browser, driver or axe-core fails the test.

mod authconf;
mod webutil;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_registry::Registry;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use webutil::*;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Where scripts/test.sh puts axe-core (npm's `axe-core`); `$BERTH_AXE_JS` overrides it.
const AXE_JS: &str = "/usr/local/lib/berth-test/node_modules/axe-core/axe.min.js";

/// chromedriver on a port of its own, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn start_driver() -> Driver {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists() && std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} and {CHROMEDRIVER} are needed: apt-get install chromium chromium-driver"
    );
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    driver
}

async fn browser(driver: &Driver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,900", "--no-first-run", "--disable-extensions"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let client = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a Chromium session");
    client.set_window_size(1280, 900).await.unwrap();
    client
}

fn screenshot_dir() -> PathBuf {
    let dir = std::env::var_os("BERTH_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("web-screenshots"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn shot(c: &Client, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshot_dir().join(format!("{name}.png")), png).unwrap();
}

async fn click(c: &Client, what: Locator<'_>) {
    c.find(what).await.unwrap().click().await.unwrap();
}

/// Clicks, then waits until `script` is true.
async fn click_and_wait(c: &Client, what: Locator<'_>, until: &str, script: &str) {
    click(c, what).await;
    wait_for(c, until, script).await;
}

/// Runs `script` (an expression) until it is true, for at most 30 s (three browsers share
/// CI's two cores).
async fn wait_for(c: &Client, what: &str, script: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = c
            .execute(&format!("return !!({script});"), vec![])
            .await
            .unwrap();
        if v == Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            let body = c
                .execute("return document.body.innerText;", vec![])
                .await
                .unwrap_or_default();
            panic!("waited 30 s for {what} ({script}); the page says: {body}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn texts(c: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for e in c.find_all(Locator::Css(css)).await.unwrap() {
        out.push(e.text().await.unwrap());
    }
    out
}

/// axe-core over the page as it is: no serious or critical violation.
async fn accessible(c: &Client, view: &str) {
    let serious = serious_findings(c).await;
    assert!(serious.is_empty(), "{view}: axe-core finds {serious:#?}");
}

/// What axe-core finds serious or critical on the page.
async fn serious_findings(c: &Client) -> Vec<Value> {
    let path = std::env::var("BERTH_AXE_JS").unwrap_or_else(|_| AXE_JS.to_string());
    let axe = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("axe-core at {path}: {e} (scripts/test.sh installs it with npm)")
    });
    c.execute(&axe, vec![]).await.unwrap();
    let found = c
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
                .then(r => done(r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                    nodes: v.nodes.map(n => n.target.join(' ')) }))))
                .catch(e => done([{ id: 'axe failed', impact: 'critical', help: String(e), nodes: [] }]));",
            vec![],
        )
        .await
        .unwrap();
    found
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["impact"] == "serious" || v["impact"] == "critical")
        .cloned()
        .collect()
}

/// Nothing on the page is wider than a phone's window.
async fn fits_a_phone(c: &Client, view: &str) {
    c.set_window_size(390, 844).await.unwrap();
    c.refresh().await.unwrap();
    phone_width(c, view).await;
}

/// The page as it is (the answer to a form, which a reload would post again) at a phone's
/// width: nothing wider than the window.
async fn phone_as_is(c: &Client, view: &str) {
    c.set_window_size(390, 844).await.unwrap();
    phone_width(c, view).await;
}

async fn phone_width(c: &Client, view: &str) {
    let (page, window) = widths(c).await;
    assert!(
        page <= window,
        "{view}: {page} px wide in a {window} px window"
    );
    shot(c, &format!("phone-{view}")).await;
    c.set_window_size(1280, 900).await.unwrap();
}

/// The page's width and the window's, in CSS pixels.
async fn widths(c: &Client) -> (u64, u64) {
    let w = c
        .execute(
            "return [document.documentElement.scrollWidth, window.innerWidth];",
            vec![],
        )
        .await
        .unwrap();
    (w[0].as_u64().unwrap(), w[1].as_u64().unwrap())
}

const TAB: &str = "\u{E004}";
const ENTER: &str = "\u{E007}";

async fn press(c: &Client, key: &str) {
    c.active_element()
        .await
        .unwrap()
        .send_keys(key)
        .await
        .unwrap();
}

/// Tabs (at most 40 times) until the focused element matches `css`.
async fn tab_to(c: &Client, css: &str) {
    let check = format!("return document.activeElement.matches({css:?});");
    for _ in 0..40 {
        if c.execute(&check, vec![]).await.unwrap() == Value::Bool(true) {
            return;
        }
        press(c, TAB).await;
    }
    panic!("40 tabs did not reach {css}");
}

async fn keyboard_delete(c: &Client, base: &str) {
    c.goto(&format!("{base}/ui/")).await.unwrap();
    c.execute("document.activeElement.blur();", vec![])
        .await
        .unwrap();
    press(c, TAB).await;
    tab_to(c, "a.skip").await;
    press(c, ENTER).await;
    wait_for(
        c,
        "the main content focused",
        "document.activeElement.id === 'main'",
    )
    .await;
    tab_to(c, "#results a[href$='/r/team/app']").await;
    press(c, ENTER).await;
    wait_for(c, "the repository", "document.querySelector('table.tags')").await;
    tab_to(c, "form.delete:has(input[value=v2]) button").await;
    press(c, ENTER).await;
    wait_for(
        c,
        "the dialog, Cancel focused",
        "document.activeElement.textContent === 'Cancel'",
    )
    .await;
    press(c, TAB).await;
    wait_for(
        c,
        "Delete focused",
        "document.activeElement.textContent === 'Delete'",
    )
    .await;
    press(c, ENTER).await;
    wait_for(c, "the notice", "document.querySelector('.notice') && document.querySelector('.notice').textContent === 'Deleted tag v2.'").await;
}

/// The refusal a delete without the visitor's CSRF token gets.
const EXPIRED: &str = "This form has expired or did not come from this page";

/// Signed in as a user who may delete `team/app:v1`, deleting it is refused when the page's
/// form carries a wrong token or none, and when another site's page posts the form (its
/// token right, even: the cookies stay home, `SameSite=Strict`, and the browser says where
/// the form came from). The tag survives each.
async fn refused_without_the_csrf_token(c: &Client, base: &str, reg: &Arc<Registry>) {
    for (what, tamper) in [
        ("a wrong token", "i.value = 'forged-' + i.value.slice(7);"),
        ("no token", "i.remove();"),
    ] {
        c.goto(&format!("{base}/ui/r/team/app")).await.unwrap();
        wait_for(
            c,
            "the delete button",
            "document.querySelector('form.delete')",
        )
        .await;
        c.execute(
            &format!("const i = document.querySelector('form.delete input[name=csrf]'); {tamper}"),
            vec![],
        )
        .await
        .unwrap();
        click_and_wait(
            c,
            Locator::Css("form.delete button"),
            "the dialog",
            "document.querySelector('dialog[open]')",
        )
        .await;
        click_and_wait(
            c,
            Locator::XPath("//dialog//button[text()='Delete']"),
            &format!("the refusal of {what}"),
            &format!("document.body.innerText.includes({EXPIRED:?})"),
        )
        .await;
        assert!(
            tag_exists(reg, "team/app", "v1").await,
            "deleted with {what}"
        );
    }
    shot(c, "csrf-refused").await;

    // Another site (`localhost` is not `127.0.0.1`) serves a form that posts itself here.
    c.goto(&format!("{base}/ui/r/team/app")).await.unwrap();
    let token = c
        .execute(
            "return document.querySelector('form.delete input[name=csrf]').value;",
            vec![],
        )
        .await
        .unwrap();
    let page = format!(
        "<!doctype html><title>elsewhere</title><form method=post action=\"{base}/ui/r/team/app/_delete\">\
         <input type=hidden name=csrf value=\"{}\"><input type=hidden name=reference value=v1>\
         <input type=hidden name=confirmed value=yes></form><script>document.forms[0].submit()</script>",
        token.as_str().unwrap()
    );
    let elsewhere = serve_once(page);
    c.goto(&format!("http://localhost:{}/", elsewhere.port()))
        .await
        .unwrap();
    wait_for(
        c,
        "the cross-site refusal",
        &format!("document.body.innerText.includes({EXPIRED:?})"),
    )
    .await;
    assert!(
        tag_exists(reg, "team/app", "v1").await,
        "deleted from another site"
    );
    shot(c, "csrf-cross-site-refused").await;
}

/// A one-page HTTP server on a loopback port: answers every request with `page`, until the
/// test ends.
fn serve_once(page: String) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(8) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    addr
}

/// Browse, search as you type, copy, delete after confirming: the open registry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browse_search_copy_and_delete_in_chromium() {
    let serving = serve("").await;
    let reg = &serving.registry;
    push_image(reg, "team/app", "v1", &ImageSpec::default()).await;
    push_image(
        reg,
        "team/app",
        "v2",
        &ImageSpec {
            seed: 5,
            ..ImageSpec::default()
        },
    )
    .await;
    push_index(reg, "team/app", "multi").await;
    for name in ["team/web", "tools/db"] {
        push_image(reg, name, "latest", &ImageSpec::default()).await;
    }
    let base = format!("http://{}", serving.addr);
    let driver = start_driver().await;
    let c = browser(&driver).await;

    // `/` is the page for a browser.
    c.goto(&format!("{base}/")).await.unwrap();
    assert!(c.title().await.unwrap().starts_with("Repositories"));
    assert_eq!(
        texts(&c, "#results tbody a").await,
        ["team/app", "team/web", "tools/db"]
    );
    accessible(&c, "repositories").await;
    shot(&c, "1-repositories").await;

    // Search as you type: the list follows each key, without a submit.
    let q = c.find(Locator::Id("q")).await.unwrap();
    q.send_keys("we").await.unwrap();
    wait_for(
        &c,
        "the results for \"we\"",
        "document.querySelectorAll('#results tbody a').length === 1",
    )
    .await;
    assert_eq!(texts(&c, "#results tbody a").await, ["team/web"]);
    assert!(c.current_url().await.unwrap().as_str().ends_with("?q=we"));
    q.clear().await.unwrap();
    q.send_keys("app").await.unwrap();
    wait_for(&c, "the results for \"app\"", "document.querySelector('#results tbody a') && document.querySelector('#results tbody a').textContent === 'team/app' && document.querySelectorAll('#results tbody a').length === 1").await;
    shot(&c, "2-search").await;

    // A repository: its tags.
    click_and_wait(
        &c,
        Locator::LinkText("team/app"),
        "the repository",
        "document.querySelector('h1') && document.querySelector('h1').textContent === 'team/app'",
    )
    .await;
    let tags = texts(&c, "table.tags tbody th a").await;
    assert_eq!(tags, ["multi", "v1", "v2"]);
    let page = c.source().await.unwrap();
    assert!(page.contains("linux/arm64/v8"), "{page}");
    accessible(&c, "tags").await;

    // The copy button copies the pull command.
    let copy = c
        .find(Locator::Css(
            "button.copy[aria-label='Copy the pull command for tag v1']",
        ))
        .await
        .unwrap();
    copy.click().await.unwrap();
    wait_for(
        &c,
        "the copy button's answer",
        "[...document.querySelectorAll('button.copy')].some(b => b.textContent === 'Copied')",
    )
    .await;
    shot(&c, "3-tags").await;
    fits_a_phone(&c, "tags").await;

    // A tag: its image.
    click_and_wait(
        &c,
        Locator::LinkText("v1"),
        "the image",
        "document.getElementById('config')",
    )
    .await;
    let page = c.source().await.unwrap();
    for needle in [
        "GREETING=hello &lt;world&gt;",
        "8080/tcp",
        "RUN make install",
        "/entry.sh",
    ] {
        assert!(page.contains(needle), "{needle} on the image page");
    }
    accessible(&c, "image").await;
    shot(&c, "4-image").await;
    fits_a_phone(&c, "image").await;

    // Delete v1: the dialog asks first; Cancel keeps it, Delete deletes it.
    click_and_wait(
        &c,
        Locator::LinkText("team/app"),
        "the repository again",
        "document.querySelector('table.tags')",
    )
    .await;
    let delete_v1 = "form.delete:has(input[name=reference][value=v1]) button";
    click_and_wait(
        &c,
        Locator::Css(delete_v1),
        "the confirmation dialog",
        "document.querySelector('dialog[open]')",
    )
    .await;
    let question = c
        .find(Locator::Css("dialog[open] p"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        question.starts_with("Delete the tag v1 from team/app?"),
        "{question}"
    );
    accessible(&c, "confirmation dialog").await;
    shot(&c, "5-confirm").await;
    click_and_wait(
        &c,
        Locator::XPath("//dialog//button[text()='Cancel']"),
        "the dialog to close",
        "!document.querySelector('dialog')",
    )
    .await;
    assert!(tag_exists(reg, "team/app", "v1").await);
    click_and_wait(
        &c,
        Locator::Css(delete_v1),
        "the confirmation dialog",
        "document.querySelector('dialog[open]')",
    )
    .await;
    click_and_wait(&c, Locator::XPath("//dialog//button[text()='Delete']"), "the notice", "document.querySelector('.notice') && document.querySelector('.notice').textContent === 'Deleted tag v1.'").await;
    assert_eq!(texts(&c, "table.tags tbody th a").await, ["multi", "v2"]);
    assert!(!tag_exists(reg, "team/app", "v1").await);
    assert!(tag_exists(reg, "team/app", "v2").await);
    shot(&c, "6-deleted").await;

    // The keyboard alone: the skip link, a repository, and deleting v2 through the dialog.
    keyboard_delete(&c, &base).await;
    assert!(!tag_exists(reg, "team/app", "v2").await);

    // The repository list at a phone's width, a long name among the repositories.
    let long = format!("team/{}x", "very-long-repository-name-".repeat(6));
    push_image(reg, &long, "latest", &ImageSpec::default()).await;
    c.goto(&format!("{base}/ui/")).await.unwrap();
    wait_for(
        &c,
        "the long name listed",
        &format!("document.body.innerText.includes({long:?})"),
    )
    .await;
    fits_a_phone(&c, "repositories").await;

    // The check can fail: an unlabelled field and an image without text are found.
    c.execute(
        "document.querySelector('main').insertAdjacentHTML('beforeend', '<input id=bad><img src=x>');",
        vec![],
    )
    .await
    .unwrap();
    let found = serious_findings(&c).await;
    let ids: Vec<&str> = found.iter().filter_map(|v| v["id"].as_str()).collect();
    assert!(
        ids.contains(&"label") && ids.contains(&"image-alt"),
        "{found:#?}"
    );

    c.close().await.unwrap();
}

/// With access control: the sign-in form, what a reader sees (no delete button), signing out,
/// and a user who may delete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_and_out_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let auth = auth_config(dir.path(), true);
    let text = format!(
        "[auth]\nhtpasswd = {:?}\n\
         [[auth.rules]]\nusers = [\"alice\", \"bob\"]\nrepositories = [\"team/*\"]\nactions = [\"pull\"]\n\
         [[auth.rules]]\nusers = [\"alice\"]\nrepositories = [\"team/*\"]\nactions = [\"delete\"]\n\
         [[auth.rules]]\nanonymous = true\nusers = [\"*\"]\nrepositories = [\"public/*\"]\nactions = [\"pull\"]\n\
         [auth.token]\nkey = {:?}\n",
        auth.htpasswd,
        dir.path().join("token.pem"),
    );
    let serving = serve(&text).await;
    let fill = filler_of(&serving);
    for name in ["team/app", "public/app"] {
        push_image(&fill, name, "v1", &ImageSpec::default()).await;
    }
    let base = format!("http://{}", serving.addr);
    let driver = start_driver().await;
    let c = browser(&driver).await;

    c.goto(&format!("{base}/ui/")).await.unwrap();
    assert_eq!(texts(&c, "#results tbody a").await, ["public/app"]);
    // A team page asks to sign in first, then comes back.
    c.goto(&format!("{base}/ui/r/team/app")).await.unwrap();
    wait_for(
        &c,
        "the sign-in form",
        "document.getElementById('username')",
    )
    .await;
    accessible(&c, "sign-in").await;
    shot(&c, "7-sign-in").await;
    fits_a_phone(&c, "sign-in").await;
    let sign_in = |user: &'static str| {
        let c = c.clone();
        async move {
            c.find(Locator::Id("username"))
                .await
                .unwrap()
                .send_keys(user)
                .await
                .unwrap();
            c.find(Locator::Id("password"))
                .await
                .unwrap()
                .send_keys(&format!("{user}-pw\n"))
                .await
                .unwrap();
        }
    };
    c.find(Locator::Id("username"))
        .await
        .unwrap()
        .send_keys("bob")
        .await
        .unwrap();
    c.find(Locator::Id("password"))
        .await
        .unwrap()
        .send_keys("wrong\n")
        .await
        .unwrap();
    wait_for(&c, "the refusal", "document.querySelector('.error')").await;
    accessible(&c, "sign-in refused").await;
    phone_as_is(&c, "sign-in-refused").await;
    // The width check can fail: a block wider than a phone is seen.
    c.set_window_size(390, 844).await.unwrap();
    c.execute(
        // Through the CSSOM: the page's Content-Security-Policy refuses inline style attributes.
        "const d = document.createElement('div'); d.style.width = '600px'; d.textContent = 'wide'; document.body.append(d);",
        vec![],
    )
    .await
    .unwrap();
    let (page, window) = widths(&c).await;
    assert!(page > window, "{page} px in {window} px");
    c.set_window_size(1280, 900).await.unwrap();
    sign_in("bob").await;
    wait_for(
        &c,
        "team/app for bob",
        "document.querySelector('h1') && document.querySelector('h1').textContent === 'team/app'",
    )
    .await;
    assert!(c
        .find_all(Locator::Css("form.delete"))
        .await
        .unwrap()
        .is_empty());
    let who = c
        .find(Locator::Css(".who"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(who.contains("Signed in as bob"), "{who}");
    shot(&c, "8-reader").await;
    fits_a_phone(&c, "signed-in").await;
    // The session cookie is out of the page's reach.
    let visible = c.execute("return document.cookie;", vec![]).await.unwrap();
    assert_eq!(visible, Value::String(String::new()));

    click_and_wait(
        &c,
        Locator::XPath("//button[text()='Sign out']"),
        "signed out",
        "document.querySelector('.who a')",
    )
    .await;
    assert_eq!(texts(&c, "#results tbody a").await, ["public/app"]);

    c.goto(&format!("{base}/ui/_signin?next=/ui/r/team/app"))
        .await
        .unwrap();
    sign_in("alice").await;
    wait_for(
        &c,
        "the delete buttons",
        "document.querySelector('form.delete')",
    )
    .await;
    refused_without_the_csrf_token(&c, &base, &fill).await;
    c.goto(&format!("{base}/ui/r/team/app")).await.unwrap();
    wait_for(
        &c,
        "the delete buttons",
        "document.querySelector('form.delete')",
    )
    .await;
    click_and_wait(
        &c,
        Locator::Css("form.delete button"),
        "the dialog",
        "document.querySelector('dialog[open]')",
    )
    .await;
    click_and_wait(
        &c,
        Locator::XPath("//dialog//button[text()='Delete']"),
        "the notice",
        "document.querySelector('.notice')",
    )
    .await;
    assert!(!tag_exists(&fill, "team/app", "v1").await);
    shot(&c, "9-deleted-by-alice").await;
    c.close().await.unwrap();
}

/// The mirror's view in the browser: its upstreams with hits and misses, accessible, and
/// usable at a phone's width.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirror_view_in_chromium() {
    let upstream = serve("").await;
    push_image(&upstream.registry, "team/app", "v1", &ImageSpec::default()).await;
    let serving = serve(&format!(
        "[mirror]\ndefault = \"up.test\"\nlocal = [\"local\"]\n\
         [mirror.upstream.\"up.test\"]\nurl = \"http://{}\"\n",
        upstream.addr
    ))
    .await;
    for _ in 0..2 {
        let r = call(
            &serving.registry,
            "GET",
            "/v2/up.test/team/app/manifests/v1",
            &[],
            "",
        )
        .await;
        assert!(r.status.is_success(), "{}", r.text());
    }
    let base = format!("http://{}", serving.addr);
    let driver = start_driver().await;
    let c = browser(&driver).await;
    c.goto(&format!("{base}/ui/")).await.unwrap();
    click_and_wait(
        &c,
        Locator::Css("a[href$='/_mirror']"),
        "the mirror's page",
        "document.body.innerText.includes('1 hits, 1 misses')",
    )
    .await;
    assert!(c
        .source()
        .await
        .unwrap()
        .contains(&format!("http://{}", upstream.addr)));
    accessible(&c, "mirror").await;
    shot(&c, "10-mirror").await;
    fits_a_phone(&c, "mirror").await;
    c.close().await.unwrap();
}
