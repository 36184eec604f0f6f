//! Garbage collection on every backend (the file system, s3s-fs, moto): what is live stays,
//! what is dead goes, rules delete what they say, and a collection beside writers loses
//! nothing.

use berth_storage::testing as common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use berth_storage::gc::{self, Options, Policy, Retention, Scope};
use berth_storage::{Digest, RepoName, Store, StoreError, Tag};
use bytes::Bytes;
use common::TestStore;
use serde_json::json;

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

fn tag(s: &str) -> Tag {
    s.parse().unwrap()
}

/// A policy that keeps nothing for its age: what a test collects is decided by links alone.
fn now_policy() -> Policy {
    Policy {
        delay: Duration::ZERO,
        ..Policy::default()
    }
}

async fn run(store: &Store, policy: &Policy) -> gc::Report {
    gc::collect(store, policy, &Options::default())
        .await
        .unwrap()
}

async fn dry(store: &Store, policy: &Policy) -> gc::Report {
    let options = Options {
        dry_run: true,
        ..Options::default()
    };
    gc::collect(store, policy, &options).await.unwrap()
}

async fn blob(store: &Store, content: &str) -> Digest {
    store
        .blobs
        .put_new(Bytes::from(content.to_string()))
        .await
        .unwrap()
}

async fn exists(store: &Store, d: &Digest) -> bool {
    store.blobs.exists(d).await.unwrap()
}

/// An image pushed the way a registry stores it: blobs, blob links, manifest, link, tag.
struct Pushed {
    manifest: Digest,
    config: Digest,
    layers: Vec<Digest>,
}

impl Pushed {
    fn all(&self) -> Vec<Digest> {
        let mut v = vec![self.manifest.clone(), self.config.clone()];
        v.extend(self.layers.iter().cloned());
        v
    }
}

fn manifest_body(config: &Digest, layers: &[Digest], subject: Option<&Digest>) -> Bytes {
    let mut m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 1},
        "layers": layers.iter().map(|l| json!({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l, "size": 1})).collect::<Vec<_>>(),
    });
    if let Some(s) = subject {
        m["subject"] = json!({"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": s, "size": 1});
    }
    Bytes::from(serde_json::to_vec(&m).unwrap())
}

async fn push(
    store: &Store,
    r: &str,
    t: Option<&str>,
    config: &str,
    layers: &[&str],
    subject: Option<&Digest>,
) -> Result<Pushed, StoreError> {
    let r = repo(r);
    let config = blob(store, config).await;
    store.repos.link_blob(&r, &config).await?;
    let mut ls = Vec::new();
    for l in layers {
        let d = blob(store, l).await;
        store.repos.link_blob(&r, &d).await?;
        ls.push(d);
    }
    let body = manifest_body(&config, &ls, subject);
    let manifest = store.blobs.put_new(body.clone()).await?;
    let missing = store
        .repos
        .link_manifest(
            &r,
            &manifest,
            "application/vnd.oci.image.manifest.v1+json",
            &body,
        )
        .await?;
    if let Some(d) = missing.into_iter().next() {
        store.repos.unlink_manifest(&r, &manifest).await?;
        return Err(StoreError::BlobUnknown(d));
    }
    if let Some(s) = subject {
        let desc = berth_storage::Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: manifest.clone(),
            size: body.len() as u64,
            artifact_type: None,
            annotations: Default::default(),
        };
        store.repos.add_referrer(&r, s, &desc).await?;
    }
    if let Some(t) = t {
        store.repos.set_tag(&r, &tag(t), &manifest).await?;
    }
    Ok(Pushed {
        manifest,
        config,
        layers: ls,
    })
}

async fn all_exist(store: &Store, ds: &[Digest]) -> bool {
    for d in ds {
        if !exists(store, d).await {
            return false;
        }
    }
    true
}

/// Live content stays, garbage goes, a dry run changes nothing, and the untagged rule takes
/// manifests with their referrers.
async fn live_stays_and_garbage_goes(t: TestStore) {
    let s = &t.store;
    let tagged = push(s, "a", Some("1"), "c1", &["l1", "l2"], None)
        .await
        .unwrap();
    let signature = push(s, "a", None, "sigc", &["sig"], Some(&tagged.manifest))
        .await
        .unwrap();
    let untagged = push(s, "b", None, "c2", &["l2", "l3"], None).await.unwrap();
    // An index tagged in c: one child linked there, one from another platform never pushed.
    let child = push(s, "c", None, "c4", &["l4"], None).await.unwrap();
    let absent = Digest::sha256_of(b"another platform");
    let index = Bytes::from(
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": child.manifest, "size": 1},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": absent, "size": 1}]}))
        .unwrap(),
    );
    let index_d = s.blobs.put_new(index.clone()).await.unwrap();
    let missing = s
        .repos
        .link_manifest(
            &repo("c"),
            &index_d,
            "application/vnd.oci.image.index.v1+json",
            &index,
        )
        .await
        .unwrap();
    assert_eq!(missing, [absent]);
    s.repos
        .set_tag(&repo("c"), &tag("multi"), &index_d)
        .await
        .unwrap();
    // Something outside the repositories holds one blob.
    let held = blob(s, "held").await;
    s.hold("client-images", &[held.clone()].into())
        .await
        .unwrap();
    // Garbage: two loose blobs and one whose only link is an upload's that never got a
    // manifest.
    let g1 = blob(s, "g1").await;
    let g2 = blob(s, "g2").await;
    let g3 = blob(s, "g3").await;
    s.repos.link_blob(&repo("a"), &g3).await.unwrap();

    let policy = now_policy();
    let plan = dry(s, &policy).await;
    assert_eq!(
        (plan.blobs, plan.blob_links, plan.bytes),
        (3, 1, 6),
        "{plan:?}"
    );
    assert!(plan.dry_run && plan.tags.is_empty() && plan.manifests.is_empty());
    assert!(all_exist(s, &[g1.clone(), g2.clone(), g3.clone()]).await);
    assert!(s.repos.has_blob(&repo("a"), &g3).await.unwrap());

    let done = run(s, &policy).await;
    assert_eq!(
        (done.blobs, done.blob_links, done.bytes),
        (3, 1, 6),
        "{done:?}"
    );
    for g in [&g1, &g2, &g3] {
        assert!(!exists(s, g).await, "{g} is garbage");
    }
    assert!(!s.repos.has_blob(&repo("a"), &g3).await.unwrap());
    let mut live = vec![held.clone(), index_d.clone()];
    for p in [&tagged, &signature, &untagged, &child] {
        live.extend(p.all());
    }
    assert!(all_exist(s, &live).await, "a live blob was deleted");
    assert_eq!(run(s, &policy).await.blobs, 0, "a second run finds nothing");
    // No collection leaves its lease or lists behind.
    assert!(berth_storage::backend::list_all(t.backend.as_ref(), "gc/")
        .await
        .unwrap()
        .is_empty());

    // Untagged manifests go by rule; a tagged subject keeps its referrer.
    let policy = Policy {
        untagged: Some(Duration::ZERO),
        ..now_policy()
    };
    let done = run(s, &policy).await;
    assert_eq!(done.manifests, [format!("b@{}", untagged.manifest)]);
    assert!(!exists(s, &untagged.manifest).await && !exists(s, &untagged.layers[1]).await);
    assert!(
        exists(s, &untagged.layers[0]).await,
        "l2 is shared with a:1"
    );
    assert!(all_exist(s, &signature.all()).await);
    assert!(
        all_exist(s, &child.all()).await,
        "an index's child is not untagged"
    );
    // The subject's tag goes: the referrer follows it.
    s.repos.delete_tag(&repo("a"), &tag("1")).await.unwrap();
    let done = run(s, &policy).await;
    let mut gone = done.manifests.clone();
    gone.sort();
    let mut want = vec![
        format!("a@{}", tagged.manifest),
        format!("a@{}", signature.manifest),
    ];
    want.sort();
    assert_eq!(gone, want);
    for d in tagged.all().iter().chain(signature.all().iter()) {
        assert!(!exists(s, d).await, "{d} went with its manifest");
    }
    assert!(s
        .repos
        .referrers(&repo("a"), &tagged.manifest)
        .await
        .unwrap()
        .is_empty());
    assert!(exists(s, &held).await, "a hold keeps its blobs");
    s.hold("client-images", &BTreeSet::new()).await.unwrap();
    assert_eq!(run(s, &policy).await.blobs, 1);
}

/// `Scope::Only`: what `rmi` asks. The named blobs go unless anything else needs them, young
/// or not.
async fn only_named_blobs(t: TestStore) {
    let s = &t.store;
    let a = push(s, "x/a", Some("1"), "ca", &["shared", "mine"], None)
        .await
        .unwrap();
    let b = push(s, "x/b", None, "cb", &["shared"], None).await.unwrap();
    let loose = blob(s, "loose").await;
    // Image a is removed from x/a: its links go first, as the client does.
    s.repos.delete_tag(&repo("x/a"), &tag("1")).await.unwrap();
    s.repos
        .unlink_manifest(&repo("x/a"), &a.manifest)
        .await
        .unwrap();
    for d in a.all() {
        s.repos.unlink_blob(&repo("x/a"), &d).await.unwrap();
    }
    let options = Options {
        scope: Scope::Only(a.all().into_iter().collect()),
        ..Options::default()
    };
    let done = gc::collect(s, &Policy::default(), &options).await.unwrap();
    assert_eq!(done.blobs, 3, "{done:?}");
    assert!(all_exist(s, &b.all()).await, "x/b needs the shared layer");
    assert!(!exists(s, &a.layers[1]).await && !exists(s, &a.manifest).await);
    assert!(exists(s, &loose).await, "not named, not touched");
}

/// Retention on a repository with 50 tags: `latest` and semantic versions are kept by
/// pattern, the five newest by count; the rest go, and their manifests with them.
async fn retention_on_fifty_tags(t: TestStore) {
    let s = &t.store;
    let mut names: Vec<String> = vec!["latest".into()];
    names.extend((0..10).map(|i| format!("v1.0.{i}")));
    names.extend((0..34).map(|i| format!("build-{i}")));
    let mut pushed = Vec::new();
    for n in &names {
        pushed.push(
            push(
                s,
                "team/app",
                Some(n),
                &format!("c-{n}"),
                &[&format!("l-{n}")],
                None,
            )
            .await
            .unwrap(),
        );
    }
    // Stores keep times to the second: the five newest are a second younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for i in 0..5 {
        let n = format!("new-{i}");
        pushed.push(
            push(
                s,
                "team/app",
                Some(&n),
                &format!("c-{n}"),
                &[&format!("l-{n}")],
                None,
            )
            .await
            .unwrap(),
        );
        names.push(n);
    }
    assert_eq!(names.len(), 50);
    let other = push(s, "other/app", Some("build-0"), "oc", &["ol"], None)
        .await
        .unwrap();
    let policy = Policy {
        retention: vec![Retention {
            repositories: vec!["team/*".into()],
            keep: vec!["latest".into(), "semver".into()],
            keep_newest: Some(5),
            delete_older_than: None,
        }],
        ..now_policy()
    };
    policy.validate().unwrap();
    let plan = dry(s, &policy).await;
    let mut want: Vec<String> = (0..34).map(|i| format!("team/app:build-{i}")).collect();
    want.sort();
    let mut got = plan.tags.clone();
    got.sort();
    assert_eq!(got, want);
    assert_eq!(plan.manifests.len(), 34);
    assert_eq!(
        s.repos
            .tags(&repo("team/app"), None, None)
            .await
            .unwrap()
            .items
            .len(),
        50
    );

    let done = run(s, &policy).await;
    assert_eq!(done.tags.len(), 34);
    assert_eq!(done.blobs, 34 * 3, "manifest, config and layer of each");
    let left = s
        .repos
        .tags(&repo("team/app"), None, None)
        .await
        .unwrap()
        .items;
    assert_eq!(left.len(), 16, "{left:?}");
    for (n, p) in names.iter().zip(&pushed) {
        let kept = !n.starts_with("build-");
        assert_eq!(all_exist(s, &p.all()).await, kept, "{n}");
    }
    assert!(all_exist(s, &other.all()).await, "other/ has no rule");
    // An age limit nothing has reached deletes nothing.
    let young = Policy {
        retention: vec![Retention {
            repositories: vec!["*".into()],
            keep: Vec::new(),
            keep_newest: None,
            delete_older_than: Some(Duration::from_secs(86400)),
        }],
        ..now_policy()
    };
    assert!(run(s, &young).await.tags.is_empty());
    // A rule without a limit is refused.
    let unlimited = Policy {
        retention: vec![Retention {
            repositories: vec!["*".into()],
            keep: Vec::new(),
            keep_newest: None,
            delete_older_than: None,
        }],
        ..now_policy()
    };
    assert!(unlimited.validate().is_err());
}

/// Upload sessions untouched for longer than the policy allows go with their chunks.
async fn expired_uploads_go(t: TestStore) {
    let s = &t.store;
    let old = s.uploads.start(&repo("u")).await.unwrap();
    s.uploads
        .append(
            &old.id,
            None,
            None,
            futures::stream::iter([Ok(Bytes::from_static(b"abc"))]),
        )
        .await
        .unwrap();
    let keep = Policy {
        uploads: Some(Duration::from_secs(3600)),
        ..now_policy()
    };
    assert_eq!(run(s, &keep).await.uploads, 0);
    assert!(s.uploads.status(&old.id).await.is_ok());
    let expire = Policy {
        uploads: Some(Duration::ZERO),
        ..now_policy()
    };
    assert_eq!(dry(s, &expire).await.uploads, 1);
    assert!(
        s.uploads.status(&old.id).await.is_ok(),
        "a dry run expires nothing"
    );
    assert_eq!(run(s, &expire).await.uploads, 1);
    assert!(s.uploads.status(&old.id).await.unwrap_err().is_not_found());
    assert!(
        berth_storage::backend::list_all(t.backend.as_ref(), "uploads/")
            .await
            .unwrap()
            .is_empty()
    );
}

/// One collector at a time over one store, whoever asks; a holder that died on this host
/// is taken over at once, an expired one anywhere.
async fn one_collector_at_a_time(t: TestStore) {
    let s = &t.store;
    let b = &t.backend;
    assert!(b
        .create_new("gc/x", Bytes::from_static(b"1"))
        .await
        .unwrap()
        .is_some());
    assert!(b
        .create_new("gc/x", Bytes::from_static(b"2"))
        .await
        .unwrap()
        .is_none());
    let v = b.read_versioned("gc/x").await.unwrap().unwrap();
    assert_eq!(v.data, &b"1"[..]);
    let next = b
        .replace("gc/x", Bytes::from_static(b"3"), &v.etag)
        .await
        .unwrap();
    assert!(next.is_some());
    assert!(b
        .replace("gc/x", Bytes::from_static(b"4"), &v.etag)
        .await
        .unwrap()
        .is_none());
    assert!(b
        .replace("gc/missing", Bytes::from_static(b"4"), &v.etag)
        .await
        .unwrap()
        .is_none());
    b.delete("gc/x").await.unwrap();

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let started: u64 = stat[stat.rfind(')').unwrap() + 1..]
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    let lease = |pid: u32, started: u64, expires: f64| {
        Bytes::from(
            serde_json::to_vec(
                &json!({"owner": "other", "host": "elsewhere", "boot": boot.trim(),
                "pid": pid, "started": started, "expires": expires}),
            )
            .unwrap(),
        )
    };
    // A live holder (this very process, as another replica would be): busy.
    b.put("gc/lease", lease(std::process::id(), started, now + 60.0))
        .await
        .unwrap();
    let second = (t.reopen)();
    match gc::collect(&second, &now_policy(), &Options::default()).await {
        Err(StoreError::CollectionBusy(holder)) => {
            assert!(holder.contains("elsewhere"), "{holder}")
        }
        other => panic!("a second collector ran: {other:?}"),
    }
    // Waiting for it: it is still there when the wait ends.
    let options = Options {
        wait: Some(Duration::from_millis(300)),
        ..Options::default()
    };
    assert!(gc::collect(s, &now_policy(), &options).await.is_err());
    assert_eq!(
        s.collecting().await.unwrap().as_deref(),
        Some("process ".to_string() + &std::process::id().to_string() + " on elsewhere").as_deref()
    );
    // Its process gone (a start time that does not match): taken over at once.
    b.put(
        "gc/lease",
        lease(std::process::id(), started + 1, now + 60.0),
    )
    .await
    .unwrap();
    assert!(s.collecting().await.unwrap().is_none());
    run(s, &now_policy()).await;
    // Expired: taken over, wherever it ran.
    b.put("gc/lease", lease(1, 0, now - 1.0)).await.unwrap();
    run(&second, &now_policy()).await;
    assert!(b.stat("gc/lease").await.unwrap().is_none(), "released");
}

/// Writers push images that reuse garbage blobs while collections run back to back: every
/// push that succeeded is whole afterwards, and a push that lost a race is told so and
/// succeeds when it tries again.
async fn collections_beside_writers(t: TestStore) {
    let s = &t.store;
    // Old garbage the writers will need again.
    for i in 0..20 {
        blob(s, &format!("layer-{i}")).await;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let collector = tokio::spawn({
        let (s, stop) = (s.clone(), stop.clone());
        async move {
            let mut runs = 0;
            let mut deleted = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) || runs < 3 {
                let r = gc::collect(&s, &now_policy(), &Options::default())
                    .await
                    .unwrap();
                runs += 1;
                deleted += r.blobs;
            }
            (runs, deleted)
        }
    });
    let mut writers = Vec::new();
    for w in 0..6 {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..5 {
                let layers = [
                    format!("layer-{}", (w * 3 + i) % 20),
                    format!("own-{w}-{i}"),
                ];
                let refs: Vec<&str> = layers.iter().map(String::as_str).collect();
                let name = format!("w{w}");
                let t = format!("t{i}");
                let mut tries = 0;
                let pushed = loop {
                    tries += 1;
                    match push(&s, &name, Some(&t), &format!("cfg-{w}-{i}"), &refs, None).await {
                        Ok(p) => break p,
                        Err(e) if e.is_not_found() && tries < 20 => continue,
                        Err(e) => panic!("push {name}:{t}: {e}"),
                    }
                };
                out.push(pushed);
            }
            out
        }));
    }
    let mut pushed = Vec::new();
    for w in writers {
        pushed.extend(w.await.unwrap());
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (runs, _) = collector.await.unwrap();
    assert!(runs >= 3);
    for p in &pushed {
        assert!(all_exist(s, &p.all()).await, "a pushed image lost a blob");
    }
    // And a last collection with nothing running keeps them all.
    run(s, &now_policy()).await;
    for p in &pushed {
        assert!(all_exist(s, &p.all()).await, "a pushed image lost a blob");
    }
}

/// The safe cut-off: a push in flight (blobs and blob links younger than the delay, no
/// manifest yet) keeps its blobs and links; once the delay is zero they are garbage.
async fn a_push_in_flight_keeps_its_blobs(t: TestStore) {
    let s = &t.store;
    let linked = blob(s, "in flight, linked").await;
    s.repos.link_blob(&repo("f"), &linked).await.unwrap();
    let loose = blob(s, "in flight, not linked yet").await;
    let hour = Policy::default();
    assert_eq!(hour.delay, Duration::from_secs(3600));
    let done = run(s, &hour).await;
    assert_eq!((done.blobs, done.blob_links), (0, 0), "{done:?}");
    assert!(all_exist(s, &[linked.clone(), loose.clone()]).await);
    assert!(s.repos.has_blob(&repo("f"), &linked).await.unwrap());
    let done = run(s, &now_policy()).await;
    assert_eq!((done.blobs, done.blob_links), (2, 1), "{done:?}");
    assert!(!exists(s, &linked).await && !exists(s, &loose).await);
}

/// Content addressed by sha512 is live or dead by the same rules as sha256: an image whose
/// layer is a sha512 blob keeps it; a loose sha512 blob goes.
async fn sha512_blobs_follow_the_same_rules(t: TestStore) {
    let s = &t.store;
    let put512 = |content: &'static [u8]| async move {
        let d = Digest::of(berth_storage::Algorithm::Sha512, content);
        s.blobs
            .put_bytes(&d, Bytes::from_static(content))
            .await
            .unwrap();
        d
    };
    let layer = put512(b"a sha512 layer").await;
    let loose = put512(b"a sha512 leftover").await;
    let r = repo("five");
    let config = blob(s, "config of five").await;
    for d in [&config, &layer] {
        s.repos.link_blob(&r, d).await.unwrap();
    }
    let body = manifest_body(&config, std::slice::from_ref(&layer), None);
    let manifest = s.blobs.put_new(body.clone()).await.unwrap();
    let missing = s
        .repos
        .link_manifest(
            &r,
            &manifest,
            "application/vnd.oci.image.manifest.v1+json",
            &body,
        )
        .await
        .unwrap();
    assert!(missing.is_empty());
    s.repos.set_tag(&r, &tag("1"), &manifest).await.unwrap();
    let done = run(s, &now_policy()).await;
    assert_eq!(done.blobs, 1, "{done:?}");
    assert!(
        all_exist(s, &[layer, config, manifest]).await,
        "a live blob was deleted"
    );
    assert!(!exists(s, &loose).await);
}

/// More keys than one listing page (S3 answers at most 1,000 a page; DeleteObjects takes at
/// most 1,000): 1,001 tags in `a/filler` put the image of `z/app` on the mark's second page
/// of `repositories/`, and 1,001 loose blobs need two pages and two batches to go. Nothing
/// live is lost, everything dead goes.
async fn a_collection_over_more_than_a_page(t: TestStore) {
    use futures::{StreamExt, TryStreamExt};
    let s = &t.store;
    let filler = push(s, "a/filler", Some("t0"), "fc", &["fl"], None)
        .await
        .unwrap();
    let (filler_repo, manifest) = (repo("a/filler"), filler.manifest.clone());
    futures::stream::iter(1..1001)
        .map(|i| {
            let (r, m) = (&filler_repo, &manifest);
            async move { s.repos.set_tag(r, &tag(&format!("t{i}")), m).await }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
    let live = push(s, "z/app", Some("1"), "zc", &["zl1", "zl2"], None)
        .await
        .unwrap();
    let garbage: Vec<Digest> = futures::stream::iter(0..1001)
        .map(|i| async move { s.blobs.put_new(Bytes::from(format!("loose {i}"))).await })
        .buffer_unordered(32)
        .try_collect()
        .await
        .unwrap();
    let done = run(s, &now_policy()).await;
    assert_eq!(done.blobs, 1001, "{done:?}");
    assert!(all_exist(s, &live.all()).await, "a live blob was deleted");
    assert!(all_exist(s, &filler.all()).await, "a live blob was deleted");
    assert!(
        !exists(s, &garbage[0]).await && !exists(s, &garbage[1000]).await,
        "garbage stayed"
    );
    assert_eq!(s.blobs.list().await.unwrap().len(), 7);
}

berth_storage::on_every_backend!(
    live_stays_and_garbage_goes,
    only_named_blobs,
    retention_on_fifty_tags,
    expired_uploads_go,
    one_collector_at_a_time,
    collections_beside_writers,
    a_push_in_flight_keeps_its_blobs,
    sha512_blobs_follow_the_same_rules,
    a_collection_over_more_than_a_page,
);
