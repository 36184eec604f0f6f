//! A writer killed with SIGKILL in the middle of a blob leaves nothing visible.
//!
//! The test re-runs its own binary as the child: `child_writer`, an ignored test that only the
//! parent runs (with `--ignored` and the environment naming a store), starts a blob put that
//! never finishes. The parent kills it half way, checks that no blob (and, on the file system,
//! nothing but a temporary file) is visible, and puts the same blob again; then the
//! collection's upload expiry removes what the dead writer left (the temporary file, the
//! incomplete multipart upload) and nothing else.

use berth_storage::testing as common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_storage::{Digest, FsBackend, S3Backend, S3Config, Store};
use bytes::Bytes;

const TOTAL: usize = 32 << 20;

fn content() -> Vec<u8> {
    (0..TOTAL).map(|i| (i % 251) as u8).collect()
}

/// The child process: writes half the blob, says so, then hangs. Not a test of its own.
#[tokio::test]
#[ignore = "the crash tests' child process; they run it"]
async fn child_writer() {
    let spec = std::env::var("BERTH_CRASH_STORE")
        .expect("run by the crash tests, which set BERTH_CRASH_STORE");
    let (store, written) = if let Some(root) = spec.strip_prefix("fs:") {
        let store = Store::new(Arc::new(FsBackend::new(root, false).unwrap()));
        (store, Written::File(Path::new(root).join(".tmp")))
    } else {
        let config: S3Config = serde_json::from_str(spec.strip_prefix("s3:").unwrap()).unwrap();
        let backend = S3Backend::new(&config).unwrap();
        let written = Written::Parts(backend.client().clone(), config.bucket.clone());
        (Store::new(Arc::new(backend)), written)
    };
    let data = content();
    let d = Digest::sha256_of(&data);
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(1);
    let put = tokio::spawn(async move {
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        store.blobs.put(&d, stream).await
    });
    for chunk in data[..TOTAL / 2].chunks(1 << 20) {
        tx.send(Ok(Bytes::copy_from_slice(chunk))).await.unwrap();
    }
    // Once the backend holds some of it, the parent may kill.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !written.some().await {
        assert!(Instant::now() < deadline, "nothing reached the backend");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!("HALFWAY");
    std::fs::write(std::env::var("BERTH_CRASH_FLAG").unwrap(), b"1").unwrap();
    tokio::time::sleep(Duration::from_secs(600)).await;
    drop(put);
}

/// Where a blob being written shows up before it is committed.
enum Written {
    /// The file backend's temporary directory.
    File(PathBuf),
    /// The S3 bucket's multipart uploads.
    Parts(aws_sdk_s3::Client, String),
}

impl Written {
    /// Whether some bytes of a blob in progress are there.
    async fn some(&self) -> bool {
        match self {
            Written::File(dir) => std::fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .any(|e| e.metadata().is_ok_and(|m| m.len() > 0))
                })
                .unwrap_or(false),
            // The upload is begun once the writer holds more than a part, and its first part
            // goes out at once. (Its parts cannot be listed: moto answers ListParts with a
            // root element the SDK refuses.)
            Written::Parts(client, bucket) => client
                .list_multipart_uploads()
                .bucket(bucket)
                .send()
                .await
                .is_ok_and(|l| !l.uploads().is_empty()),
        }
    }
}

fn kill_child_midway(spec: String) {
    let flag = tempfile::NamedTempFile::new().unwrap();
    std::fs::remove_file(flag.path()).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("BERTH_CRASH_STORE", spec)
        .env("BERTH_CRASH_FLAG", flag.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !flag.path().exists() {
        assert!(Instant::now() < deadline, "child never got half way");
        assert!(child.try_wait().unwrap().is_none(), "child exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SIGKILL: no destructor, no cleanup.
    child.kill().unwrap();
    child.wait().unwrap();
}

async fn check_after_crash(store: &Store) {
    let data = content();
    let d = Digest::sha256_of(&data);
    assert_eq!(
        store.blobs.stat(&d).await.unwrap(),
        None,
        "partial blob is visible"
    );
    assert!(store.blobs.list().await.unwrap().is_empty());
    let stream = futures::stream::iter(
        data.chunks(1 << 20)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    store.blobs.put(&d, stream).await.unwrap();
    assert_eq!(store.blobs.read(&d).await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_blob_on_filesystem() {
    let dir = tempfile::tempdir().unwrap();
    kill_child_midway(format!("fs:{}", dir.path().display()));
    let tmp: Vec<_> = std::fs::read_dir(dir.path().join(".tmp"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(
        tmp.len(),
        1,
        "the killed writer's temporary file is all that remains"
    );
    assert!(
        tmp[0].metadata().unwrap().len() > 0,
        "killed before writing"
    );
    let store = Store::new(Arc::new(FsBackend::new(dir.path(), false).unwrap()));
    check_after_crash(&store).await;
    let temporaries = || {
        std::fs::read_dir(dir.path().join(".tmp"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name() != "conditional.lock")
            .count()
    };
    assert_eq!(temporaries(), 1);
    // The collection's upload expiry takes the dead writer's file once it is old enough.
    assert_eq!(expire_abandoned(&store, Duration::from_secs(3600)).await, 0);
    assert_eq!(temporaries(), 1, "a recent temporary file is kept");
    assert_eq!(expire_abandoned(&store, Duration::ZERO).await, 1);
    assert_eq!(temporaries(), 0, "the dead writer's file leaks");
    let d = Digest::sha256_of(&content());
    assert_eq!(store.blobs.read(&d).await.unwrap(), content());
}

/// A collection that expires uploads (and what killed writers left) older than `age`; how
/// many abandoned writes it removed.
async fn expire_abandoned(store: &Store, age: Duration) -> u64 {
    let policy = berth_storage::gc::Policy {
        uploads: Some(age),
        ..Default::default()
    };
    let report = berth_storage::gc::collect(store, &policy, &Default::default())
        .await
        .unwrap();
    assert_eq!(report.blobs, 0, "{report:?}");
    report.abandoned_writes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_blob_on_s3() {
    let server = common::moto().await;
    let config = server.config("crash");
    kill_child_midway(format!(
        "s3:{}",
        serde_json::to_string(&config_json(&config)).unwrap()
    ));
    let backend = S3Backend::new(&config).unwrap();
    let written = Written::Parts(backend.client().clone(), config.bucket.clone());
    assert!(written.some().await, "the killed writer's parts remain");
    let store = Store::new(Arc::new(backend));
    check_after_crash(&store).await;
    // The parts stay until the collection's upload expiry aborts the upload. (moto reports
    // every upload as begun in 2010, so the age rule is proved on the file system only.)
    assert!(written.some().await);
    assert_eq!(expire_abandoned(&store, Duration::ZERO).await, 1);
    assert!(!written.some().await, "the dead writer's parts leak");
    let d = Digest::sha256_of(&content());
    assert_eq!(store.blobs.read(&d).await.unwrap(), content());
}

fn config_json(c: &S3Config) -> serde_json::Value {
    serde_json::json!({
        "bucket": c.bucket,
        "endpoint": c.endpoint,
        "region": c.region,
        "prefix": c.prefix,
        "path_style": c.path_style,
        "access_key_id": c.access_key_id,
        "secret_access_key": c.secret_access_key,
        "part_size": c.part_size,
    })
}
