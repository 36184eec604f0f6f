//! The page's HTML, as maud templates: every value is escaped by maud, every view is one
//! function of what [`super::content`] read. Markup is plain and semantic (headings in order,
//! labelled controls, tables with header cells, landmarks, a skip link), so it works with a
//! keyboard, a screen reader and without the script.

use std::time::SystemTime;

use berth_storage::{Digest, RepoName};
use maud::{html, Markup, DOCTYPE};

use super::content::{
    Desc, Image, Listing, Repositories, Summary, Tags, Target, UpstreamView, TAGS_PAGE,
};
use super::Visit;
use crate::api::Registry;
use crate::auth::Action;

fn layout(visit: &Visit, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · berth" }
                link rel="stylesheet" href=(visit.link("/_static/berth.css"));
                script src=(visit.link("/_static/berth.js")) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    nav aria-label="Site" {
                        a.brand href=(visit.link("/")) { "berth" }
                        a href=(visit.link("/")) { "Repositories" }
                        @if visit.mirror {
                            a href=(visit.link("/_mirror")) { "Mirror" }
                        }
                    }
                    @if visit.auth_on {
                        div.who {
                            @if let Some(user) = &visit.user {
                                span { "Signed in as " strong { (user) } }
                                form method="post" action=(visit.link("/_signout")) {
                                    (csrf(visit))
                                    button type="submit" { "Sign out" }
                                }
                            } @else {
                                a href=(visit.link("/_signin")) { "Sign in" }
                            }
                        }
                    }
                }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

fn csrf(visit: &Visit) -> Markup {
    html! { input type="hidden" name="csrf" value=(visit.csrf); }
}

/// A page with a heading and one message (errors, refusals).
pub fn message(visit: &Visit, title: &str, text: &str) -> Markup {
    layout(
        visit,
        title,
        html! {
            h1 { (title) }
            p { (text) }
            p { a href=(visit.link("/")) { "Back to the repositories" } }
        },
    )
}

/// Sizes as docker prints them: decimal units, three significant digits.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value < 10.0 {
        format!("{value:.2} {}", UNITS[unit])
    } else if value < 100.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// "3 minutes ago", as docker's CREATED column says it, in a `<time>` with the exact instant.
fn when(t: Option<SystemTime>) -> Markup {
    let Some(t) = t else {
        return html! { span.muted { "unknown" } };
    };
    let secs = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let exact = crate::auth::token::rfc3339(secs);
    let ago = SystemTime::now()
        .duration_since(t)
        .map_or(0, |d| d.as_secs());
    let text = match ago {
        0..=59 => "less than a minute ago".to_string(),
        60..=119 => "a minute ago".to_string(),
        120..=3599 => format!("{} minutes ago", ago / 60),
        3600..=7199 => "an hour ago".to_string(),
        7200..=86_399 => format!("{} hours ago", ago / 3600),
        86_400..=172_799 => "a day ago".to_string(),
        172_800..=1_209_599 => format!("{} days ago", ago / 86_400),
        _ => exact.get(..10).unwrap_or(&exact).to_string(),
    };
    html! { time datetime=(exact) title=(exact) { (text) } }
}

fn short(d: &Digest) -> String {
    let s = d.to_string();
    match s.split_once(':') {
        Some((alg, hex)) => format!("{alg}:{}", hex.get(..12).unwrap_or(hex)),
        None => s,
    }
}

fn digest_code(d: &Digest) -> Markup {
    html! { code.digest title=(d.to_string()) { (short(d)) } }
}

/// A pull command with a copy button; `id` ties the button to its text.
fn pull_command(id: &str, command: &str, what: &str) -> Markup {
    html! {
        span.pull {
            code id=(id) { (command) }
            button.copy type="button" data-copy=(id) aria-label=(format!("Copy the pull command for {what}")) { "Copy" }
        }
    }
}

fn pull_text(visit: &Visit, repo: &RepoName, reference: &str) -> String {
    let sep = if reference.contains(':') { "@" } else { ":" };
    format!("docker pull {}/{repo}{sep}{reference}", visit.host)
}

fn image_link(visit: &Visit, repo: &RepoName, reference: &str) -> String {
    visit.link(&format!("/r/{repo}/_manifests/{reference}"))
}

fn delete_form(visit: &Visit, repo: &RepoName, target: &Target) -> Markup {
    let question = match target {
        Target::Tag(t) => format!(
            "Delete the tag {t} from {repo}? The manifest it points at stays, by digest and under its other tags."
        ),
        Target::Manifest(d) => format!(
            "Delete the manifest {d} from {repo}? Every tag that points at it goes with it."
        ),
    };
    html! {
        form.delete method="post" action=(visit.link(&format!("/r/{repo}/_delete"))) data-confirm=(question) {
            (csrf(visit))
            input type="hidden" name="reference" value=(target.reference());
            button.danger type="submit" {
                @match target {
                    Target::Tag(t) => { "Delete" span.visually-hidden { " tag " (t) } },
                    Target::Manifest(d) => { "Delete this manifest" span.visually-hidden { " " (d) } },
                }
            }
        }
    }
}

fn platforms(list: &[String]) -> Markup {
    html! {
        @if list.is_empty() { span.muted { "—" } }
        @else { (list.join(", ")) }
    }
}

fn kind(s: &Summary) -> &'static str {
    match (s.index, &s.artifact_type) {
        (true, _) => "index",
        (false, Some(_)) => "artifact",
        (false, None) => "image",
    }
}

/// Page links: previous, where we are, next.
fn pager(visit: &Visit, page: usize, pages: usize, href: impl Fn(usize) -> String) -> Markup {
    let _ = visit;
    html! {
        @if pages > 1 {
            nav.pager aria-label="Pages" {
                @if page > 1 { a rel="prev" href=(href(page - 1)) { "← Previous" } }
                span { "Page " (page) " of " (pages) }
                @if page < pages { a rel="next" href=(href(page + 1)) { "Next →" } }
            }
        }
    }
}

pub fn repositories(visit: &Visit, listing: &Listing, found: &Repositories) -> Markup {
    let pages = found.matched.div_ceil(listing.per_page).max(1);
    let href = |page: usize| {
        let mut q = form_urlencoded::Serializer::new(String::new());
        if !listing.search.is_empty() {
            q.append_pair("q", &listing.search);
        }
        if listing.by_push {
            q.append_pair("sort", "pushed");
        }
        if listing.per_page != super::content::PAGE {
            q.append_pair("n", &listing.per_page.to_string());
        }
        q.append_pair("page", &page.to_string());
        format!("{}/?{}", visit.prefix, q.finish())
    };
    layout(
        visit,
        "Repositories",
        html! {
            h1 { "Repositories" }
            form.search role="search" method="get" action=(visit.link("/")) {
                div.field {
                    label for="q" { "Search repositories" }
                    input #q type="search" name="q" value=(listing.search) autocomplete="off"
                        spellcheck="false" data-live="results";
                }
                div.field {
                    label for="sort" { "Sort by" }
                    select #sort name="sort" data-live="results" {
                        option value="name" selected[!listing.by_push] { "Name" }
                        option value="pushed" selected[listing.by_push] { "Last push" }
                    }
                }
                button type="submit" { "Search" }
            }
            section #results aria-live="polite" aria-label="Results" {
                p.count {
                    @match found.matched {
                        0 => { "No repository" @if !listing.search.is_empty() { " matches " q { (listing.search) } } "." },
                        1 => "1 repository",
                        n => { (n) " repositories" },
                    }
                }
                @if !found.rows.is_empty() {
                    table.list {
                        thead { tr { th scope="col" { "Repository" } th scope="col" { "Last push" } } }
                        tbody {
                            @for row in &found.rows {
                                tr {
                                    td { a href=(visit.link(&format!("/r/{}", row.name))) { (row.name) } }
                                    td { (when(row.pushed)) }
                                }
                            }
                        }
                    }
                }
                (pager(visit, listing.page.min(pages), pages, href))
            }
        },
    )
}

fn breadcrumb(visit: &Visit, repo: Option<&RepoName>, here: &str) -> Markup {
    html! {
        nav.crumbs aria-label="Breadcrumb" {
            ol {
                li { a href=(visit.link("/")) { "Repositories" } }
                @if let Some(repo) = repo {
                    li { a href=(visit.link(&format!("/r/{repo}"))) { (repo) } }
                }
                li aria-current="page" { (here) }
            }
        }
    }
}

pub fn repository(
    visit: &Visit,
    reg: &Registry,
    repo: &RepoName,
    tags: &Tags,
    notice: Option<&str>,
) -> Markup {
    let may_delete = visit.may(reg, repo.as_str(), Action::Delete);
    let pages = tags.total.div_ceil(TAGS_PAGE).max(1);
    layout(
        visit,
        repo.as_str(),
        html! {
            (breadcrumb(visit, None, repo.as_str()))
            h1 { (repo) }
            @if let Some(n) = notice { p.notice role="status" { (n) } }
            p.count { @match tags.total { 0 => "No tags.", 1 => "1 tag", n => { (n) " tags" } } }
            @if !tags.rows.is_empty() {
                div.scroll {
                    table.list.tags {
                        thead {
                            tr {
                                th scope="col" { "Tag" }
                                th scope="col" { "Digest" }
                                th scope="col" { "Size" }
                                th scope="col" { "Platforms" }
                                th scope="col" { "Pushed" }
                                th scope="col" { "Pull" }
                                @if may_delete { th scope="col" { span.visually-hidden { "Actions" } } }
                            }
                        }
                        tbody {
                            @for (i, row) in tags.rows.iter().enumerate() {
                                tr {
                                    th scope="row" { a href=(image_link(visit, repo, &row.tag)) { (row.tag) } }
                                    @match &row.summary {
                                        Some(s) => {
                                            td data-label="Digest" { (digest_code(&s.digest)) " " span.kind { (kind(s)) } }
                                            td data-label="Size" { (human_size(s.size)) }
                                            td data-label="Platforms" { (platforms(&s.platforms)) }
                                        }
                                        None => { td colspan="3" { span.muted { "the manifest is missing" } } }
                                    }
                                    td data-label="Pushed" { (when(row.pushed)) }
                                    td data-label="Pull" { (pull_command(&format!("pull-{i}"), &pull_text(visit, repo, &row.tag), &format!("tag {}", row.tag))) }
                                    @if may_delete {
                                        td { @if let Ok(t) = row.tag.parse() { (delete_form(visit, repo, &Target::Tag(t))) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (pager(visit, tags.page.min(pages), pages, |p| visit.link(&format!("/r/{repo}?page={p}"))))
        },
    )
}

fn list_or_dash(items: &Option<Vec<String>>) -> Markup {
    html! {
        @match items {
            Some(v) if !v.is_empty() => { code { (v.join(" ")) } },
            _ => { span.muted { "—" } },
        }
    }
}

fn descriptor_row(visit: &Visit, repo: &RepoName, d: &Desc, extra: Markup) -> Markup {
    let link = d
        .digest
        .parse::<Digest>()
        .ok()
        .map(|dg| (image_link(visit, repo, &dg.to_string()), dg));
    html! {
        tr {
            td {
                @match &link {
                    Some((href, dg)) => a href=(href) { (digest_code(dg)) },
                    None => code { (d.digest) },
                }
            }
            td data-label="Size" { (human_size(d.size)) }
            (extra)
        }
    }
}

pub fn image(visit: &Visit, reg: &Registry, repo: &RepoName, img: &Image) -> Markup {
    let s = &img.summary;
    let digest = s.digest.to_string();
    let title = format!("{repo} {}", img.reference);
    layout(
        visit,
        &title,
        html! {
            (breadcrumb(visit, Some(repo), &img.reference))
            h1 { (repo) span.ref { (if img.reference.contains(':') { "@" } else { ":" }) (img.reference) } }
            section aria-labelledby="overview" {
                h2 #overview { "Overview" }
                dl.facts {
                    dt { "Digest" } dd { code.digest { (digest) } }
                    dt { "Kind" } dd { (kind(s)) @if let Some(a) = &s.artifact_type { " (" code { (a) } ")" } }
                    dt { "Media type" } dd { code { (s.media_type) } }
                    dt { "Size" } dd { (human_size(s.size)) }
                    dt { "Platforms" } dd { (platforms(&s.platforms)) }
                    dt { "Tags" } dd {
                        @if img.tags.is_empty() { span.muted { "none" } }
                        @for (i, t) in img.tags.iter().enumerate() {
                            @if i > 0 { ", " }
                            a href=(image_link(visit, repo, t)) { (t) }
                        }
                    }
                    @if let Some(subj) = &img.subject {
                        dt { "Refers to" } dd {
                            @match subj.digest.parse::<Digest>() {
                                Ok(d) => a href=(image_link(visit, repo, &d.to_string())) { (digest_code(&d)) },
                                Err(_) => code { (subj.digest) },
                            }
                        }
                    }
                    dt { "Pull" } dd { (pull_command("pull-image", &pull_text(visit, repo, &digest), "this manifest")) }
                }
                @if visit.may(reg, repo.as_str(), Action::Delete) {
                    (delete_form(visit, repo, &Target::Manifest(s.digest.clone())))
                }
            }
            @if !img.children.is_empty() {
                section aria-labelledby="platforms" {
                    h2 #platforms { "Platforms" }
                    div.scroll { table.list {
                        thead { tr { th scope="col" { "Manifest" } th scope="col" { "Size" } th scope="col" { "Platform" } } }
                        tbody {
                            @for (child, sum) in &img.children {
                                (descriptor_row(visit, repo, &Desc {
                                    size: sum.as_ref().map_or(child.size, |s| s.size),
                                    ..child.clone()
                                }, html! {
                                    td data-label="Platform" { @match &child.platform { Some(p) => (p.to_string()), None => span.muted { "—" } } }
                                }))
                            }
                        }
                    } }
                }
            }
            @if let Some(cfg) = &img.config {
                section aria-labelledby="config" {
                    h2 #config { "Config" }
                    dl.facts {
                        dt { "Entrypoint" } dd { (list_or_dash(&cfg.config.entrypoint)) }
                        dt { "Command" } dd { (list_or_dash(&cfg.config.cmd)) }
                        dt { "Working directory" } dd { @match &cfg.config.working_dir { Some(w) if !w.is_empty() => code { (w) }, _ => span.muted { "—" } } }
                        dt { "User" } dd { @match &cfg.config.user { Some(u) if !u.is_empty() => code { (u) }, _ => span.muted { "—" } } }
                        dt { "Exposed ports" } dd {
                            @match &cfg.config.exposed_ports {
                                Some(p) if !p.is_empty() => { @for (i, port) in p.keys().enumerate() { @if i > 0 { ", " } code { (port) } } },
                                _ => span.muted { "—" },
                            }
                        }
                        dt { "Volumes" } dd {
                            @match &cfg.config.volumes {
                                Some(v) if !v.is_empty() => { @for (i, vol) in v.keys().enumerate() { @if i > 0 { ", " } code { (vol) } } },
                                _ => span.muted { "—" },
                            }
                        }
                        @if let Some(created) = &cfg.created { dt { "Created" } dd { (created) } }
                        @if let Some(c) = &img.config_desc { dt { "Config blob" } dd { code.digest { (c.digest) } " (" (human_size(c.size)) ")" } }
                    }
                    h3 { "Environment" }
                    @match &cfg.config.env {
                        Some(env) if !env.is_empty() => ul.env { @for e in env { li { code { (e) } } } },
                        _ => p.muted { "None." },
                    }
                    h3 { "Labels" }
                    @match &cfg.config.labels {
                        Some(labels) if !labels.is_empty() => {
                            div.scroll { table.list {
                                thead { tr { th scope="col" { "Label" } th scope="col" { "Value" } } }
                                tbody { @for (k, v) in labels { tr { th scope="row" { code { (k) } } td { (v) } } } }
                            } }
                        },
                        _ => p.muted { "None." },
                    }
                }
            }
            @if !img.history.is_empty() {
                section aria-labelledby="history" {
                    h2 #history { "History" }
                    div.scroll { table.list.history {
                        thead { tr { th scope="col" { "Step" } th scope="col" { "Layer size" } th scope="col" { "Created" } } }
                        tbody {
                            @for step in &img.history {
                                tr {
                                    td { code { (step.entry.created_by.as_deref().or(step.entry.comment.as_deref()).unwrap_or("")) } }
                                    td data-label="Layer size" { @match step.layer_size { Some(n) => (human_size(n)), None => span.muted { "no layer" } } }
                                    td data-label="Created" { (step.entry.created.as_deref().unwrap_or("")) }
                                }
                            }
                        }
                    } }
                }
            }
            @if !img.layers.is_empty() {
                section aria-labelledby="layers" {
                    h2 #layers { "Layers" }
                    div.scroll { table.list {
                        thead { tr { th scope="col" { "Layer" } th scope="col" { "Size" } th scope="col" { "Media type" } } }
                        tbody {
                            @for l in &img.layers {
                                tr {
                                    td { @match l.digest.parse::<Digest>() { Ok(d) => (digest_code(&d)), Err(_) => code { (l.digest) } } }
                                    td data-label="Size" { (human_size(l.size)) }
                                    td data-label="Media type" { code { (l.media_type) } }
                                }
                            }
                        }
                    } }
                }
            }
            section aria-labelledby="referrers" {
                h2 #referrers { "Referrers" }
                @if img.referrers.is_empty() { p.muted { "No signature, SBOM or other artifact refers to this manifest." } }
                @for group in &img.referrers {
                    h3 { code { (group.artifact_type) } " (" (group.referrers.len()) ")" }
                    div.scroll { table.list {
                        thead { tr { th scope="col" { "Manifest" } th scope="col" { "Size" } th scope="col" { "Created" } } }
                        tbody {
                            @for r in &group.referrers {
                                tr {
                                    td { a href=(image_link(visit, repo, &r.digest.to_string())) { (digest_code(&r.digest)) } }
                                    td data-label="Size" { (human_size(r.size)) }
                                    td data-label="Created" { (r.annotations.get("org.opencontainers.image.created").map(String::as_str).unwrap_or("")) }
                                }
                            }
                        }
                    } }
                }
            }
            @if !img.annotations.is_empty() {
                section aria-labelledby="annotations" {
                    h2 #annotations { "Annotations" }
                    div.scroll { table.list {
                        thead { tr { th scope="col" { "Key" } th scope="col" { "Value" } } }
                        tbody { @for (k, v) in &img.annotations { tr { th scope="row" { code { (k) } } td { (v) } } } }
                    } }
                }
            }
        },
    )
}

pub fn confirm_delete(visit: &Visit, repo: &RepoName, target: &Target) -> Markup {
    let title = format!("Delete {target}?");
    layout(
        visit,
        &title,
        html! {
            (breadcrumb(visit, Some(repo), "Delete"))
            h1 { (title) }
            p {
                @match target {
                    Target::Tag(_) => "The manifest it points at stays, by digest and under its other tags.",
                    Target::Manifest(_) => "Every tag that points at it goes with it.",
                }
            }
            form method="post" action=(visit.link(&format!("/r/{repo}/_delete"))) {
                (csrf(visit))
                input type="hidden" name="reference" value=(target.reference());
                input type="hidden" name="confirmed" value="yes";
                button.danger type="submit" { "Delete" }
                " "
                a href=(visit.link(&format!("/r/{repo}"))) { "Cancel" }
            }
        },
    )
}

pub fn sign_in(visit: &Visit, next: &str, problem: Option<&str>) -> Markup {
    layout(
        visit,
        "Sign in",
        html! {
            h1 { "Sign in" }
            @if !visit.auth_on {
                p { "This registry has no access control: everyone may see and do everything." }
            } @else {
                @if let Some(p) = problem { p.error role="alert" { (p) } }
                form.signin method="post" action=(visit.link("/_signin")) {
                    (csrf(visit))
                    input type="hidden" name="next" value=(next);
                    div.field {
                        label for="username" { "User name" }
                        input #username name="username" autocomplete="username" required autofocus;
                    }
                    div.field {
                        label for="password" { "Password" }
                        input #password type="password" name="password" autocomplete="current-password" required;
                    }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

pub fn mirror(visit: &Visit, upstreams: &[UpstreamView]) -> Markup {
    layout(
        visit,
        "Mirror",
        html! {
            h1 { "Mirror" }
            @if upstreams.is_empty() {
                p { "This registry is not a mirror: it caches no upstream registry." }
            }
            @for up in upstreams {
                @let s = &up.summary;
                @let id = format!("up-{}", s.cache_prefix.replace(|c: char| !c.is_ascii_alphanumeric(), "-"));
                section aria-labelledby=(id) {
                    h2 id=(id) { (s.host) }
                    dl.facts {
                        dt { "Upstream" } dd { code { (s.url) } }
                        dt { "Manifests" } dd { (s.manifest_hits) " hits, " (s.manifest_misses) " misses" }
                        dt { "Blobs" } dd { (s.blob_hits) " hits, " (s.blob_misses) " misses" }
                        dt { "Upstream errors" } dd { (s.errors) }
                    }
                    h3 { "Cached repositories (" (up.cached.len()) ")" }
                    @if up.cached.is_empty() { p.muted { "Nothing cached yet." } }
                    @else {
                        table.list {
                            thead { tr { th scope="col" { "Repository" } th scope="col" { "Last fetched" } } }
                            tbody {
                                @for r in &up.cached {
                                    tr {
                                        td { a href=(visit.link(&format!("/r/{}", r.name))) { (r.name) } }
                                        td { (when(r.pushed)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            p.muted { "Counts are since this process started." }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes() {
        for (n, want) in [
            (0, "0 B"),
            (999, "999 B"),
            (1000, "1.00 kB"),
            (12_345, "12.3 kB"),
            (123_456_789, "123 MB"),
            (1_500_000_000, "1.50 GB"),
        ] {
            assert_eq!(human_size(n), want);
        }
    }
}
