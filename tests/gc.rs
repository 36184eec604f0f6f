//! The store's lifecycle end to end: what `rmi`, `image prune` and the registry's garbage
//! collection may delete on one store shared by `berth serve` and the client.

use std::path::Path;

use berth_storage::Digest;

use crate::util::{build_image, skopeo_push, Berth, Registry, TestImage};

fn blob_path(root: &Path, d: &Digest) -> std::path::PathBuf {
    root.join("blobs/sha256").join(d.hex())
}

/// Every blob of `image` under `repo` answers 200 with its bytes, and so does the manifest.
fn assert_served(server: &Registry, repo: &str, image: &TestImage) {
    let manifest = server.request(
        "GET",
        &format!("/v2/{repo}/manifests/{}", image.manifest),
        &[("Accept", "application/vnd.oci.image.manifest.v1+json")],
        b"",
    );
    assert_eq!(manifest.status, 200, "{repo}@{} is gone", image.manifest);
    assert_eq!(Digest::sha256_of(&manifest.body), image.manifest);
    for d in image.layers.iter().chain([&image.config]) {
        let blob = server.request("GET", &format!("/v2/{repo}/blobs/{d}"), &[], b"");
        assert_eq!(blob.status, 200, "{repo} lost blob {d}");
        assert_eq!(
            &Digest::sha256_of(&blob.body),
            d,
            "{repo}: blob {d} changed"
        );
    }
}

/// Puts `image`'s manifest into `to` by digest only (no tag), its blobs mounted from `from`:
/// a repository that needs the content without any client image naming it.
fn push_by_digest(server: &Registry, from: &str, to: &str, image: &TestImage) {
    for d in image.layers.iter().chain([&image.config]) {
        let r = server.request(
            "POST",
            &format!("/v2/{to}/blobs/uploads/?mount={d}&from={from}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 201, "mount {d} into {to}");
    }
    let body = std::fs::read(image.layout.join("blobs/sha256").join(image.manifest.hex())).unwrap();
    let r = server.request(
        "PUT",
        &format!("/v2/{to}/manifests/{}", image.manifest),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        &body,
    );
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));
}

/// The data-loss scenario of a shared store: an image pushed to `team/a` and, by digest, to
/// `team/b`; `berth rmi localhost/team/a:1` removes the client's image, and `team/b` keeps
/// every byte, because rmi asks the store's one notion of what is live.
#[test]
fn rmi_on_a_served_root_keeps_what_a_registry_repository_references() {
    let work = tempfile::tempdir().unwrap();
    let image = build_image(work.path(), 1, 50_000, 31);
    let served = Berth::new();
    let server = Registry::serve_root(&served.root);
    skopeo_push(&image, &format!("{}/team/a:1", server.addr));
    push_by_digest(&server, "team/a", "team/b", &image);
    assert_served(&server, "team/b", &image);

    let out = served.ok(&["rmi", "localhost/team/a:1"]);
    assert!(out.contains("Untagged: localhost/team/a:1"), "{out}");
    assert!(out.contains(&format!("Deleted: {}", image.config)), "{out}");
    assert_served(&server, "team/b", &image);
    for d in image.layers.iter().chain([&image.config, &image.manifest]) {
        assert!(blob_path(&served.root, d).is_file(), "blob {d} was deleted");
    }
    let tags = server.request("GET", "/v2/team/a/tags/list", &[], b"");
    assert!(
        !String::from_utf8_lossy(&tags.body).contains("\"1\""),
        "the tag went with the client's name"
    );

    // With team/b's manifest deleted too, nothing needs the content: image prune (which
    // asks the same question) finds it unreferenced; the registry's own collection frees it.
    let r = server.request(
        "DELETE",
        &format!("/v2/team/b/manifests/{}", image.manifest),
        &[],
        b"",
    );
    assert_eq!(r.status, 202);
}
