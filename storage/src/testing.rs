//! Test support (feature `test-support`): real S3 protocol servers for the S3 backend to talk to.
//!
//! - s3s-fs, the Rust S3 server over a directory, run in-process on a loopback port;
//! - moto's server (`moto_server`, from PyPI's `moto[server]`), run as a child process.
//!
//! Both are reached over HTTP on 127.0.0.1 exactly as an S3 service would be.

use std::net::TcpListener as StdListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::{Backend, FsBackend, S3Backend, S3Config, Store};

pub const ACCESS_KEY: &str = "berthtest";
pub const SECRET_KEY: &str = "berthtestsecret";

/// An S3 server that lives as long as this value.
pub struct S3Server {
    pub endpoint: String,
    pub bucket: String,
    dir: Option<tempfile::TempDir>,
    child: Option<Child>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(t) = &self.task {
            t.abort();
        }
    }
}

impl S3Server {
    /// The directory s3s-fs keeps the bucket's objects in (their files' modification times are
    /// the objects' `LastModified`); none for moto, which keeps them in memory.
    pub fn dir(&self) -> Option<&std::path::Path> {
        self.dir.as_ref().map(|d| d.path())
    }

    /// A config for this server's bucket, with keys under `prefix`.
    pub fn config(&self, prefix: &str) -> S3Config {
        S3Config {
            bucket: self.bucket.clone(),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            prefix: prefix.into(),
            path_style: true,
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            session_token: None,
            part_size: Some(5 << 20),
        }
    }

    async fn create_bucket(&self) {
        let backend = S3Backend::new(&self.config("")).expect("s3 config");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match backend
                .client()
                .create_bucket()
                .bucket(&self.bucket)
                .send()
                .await
            {
                Ok(_) => return,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!(
                    "creating bucket at {}: {}",
                    self.endpoint,
                    aws_sdk_s3::error::DisplayErrorContext(&e)
                ),
            }
        }
    }
}

/// s3s-fs serving a fresh directory on a loopback port, in this process.
pub async fn s3s() -> S3Server {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto::Builder as ConnBuilder;

    let dir = tempfile::tempdir().unwrap();
    let fs = s3s_fs::FileSystem::new(dir.path()).unwrap();
    let mut b = s3s::service::S3ServiceBuilder::new(fs);
    b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
    let service = b.build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let http = ConnBuilder::new(TokioExecutor::new());
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                continue;
            };
            let conn = http
                .serve_connection(TokioIo::new(socket), service.clone())
                .into_owned();
            tokio::spawn(async move {
                let _ = conn.await;
            });
        }
    });
    let server = S3Server {
        endpoint: format!("http://{addr}"),
        bucket: "berth".into(),
        dir: Some(dir),
        child: None,
        task: Some(task),
    };
    server.create_bucket().await;
    server
}

/// moto's S3 server as a child process on a free loopback port. Fails (never skips) when
/// `moto_server` is missing: the test command installs it.
pub async fn moto() -> S3Server {
    let port = StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server must be installed (pip install 'moto[server]'); run the README's test command");
    let server = S3Server {
        endpoint: format!("http://127.0.0.1:{port}"),
        bucket: format!("berth-{}", uuid::Uuid::new_v4().simple()),
        dir: None,
        child: Some(child),
        task: None,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "moto_server did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.create_bucket().await;
    server
}

/// A store under test, with whatever keeps its backend alive.
pub struct TestStore {
    pub store: Store,
    pub backend: Arc<dyn Backend>,
    /// Opens a second store over the same data, as a restarted or second process would.
    pub reopen: Box<dyn Fn() -> Store + Send + Sync>,
    pub s3: Option<S3Server>,
    pub dir: Option<tempfile::TempDir>,
}

pub fn fs_store() -> TestStore {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let backend: Arc<dyn Backend> = Arc::new(FsBackend::new(&root, false).unwrap());
    TestStore {
        store: Store::new(backend.clone()),
        backend,
        reopen: Box::new(move || Store::new(Arc::new(FsBackend::new(&root, false).unwrap()))),
        s3: None,
        dir: Some(dir),
    }
}

pub fn s3_store(server: S3Server, prefix: &str) -> TestStore {
    let config = server.config(prefix);
    let backend: Arc<dyn Backend> = Arc::new(S3Backend::new(&config).unwrap());
    TestStore {
        store: Store::new(backend.clone()),
        backend,
        reopen: Box::new(move || Store::new(Arc::new(S3Backend::new(&config).unwrap()))),
        s3: Some(server),
        dir: None,
    }
}

/// Builds the store a test asks for by name: `fs`, `s3s` or `moto`.
pub async fn store(kind: &str) -> TestStore {
    match kind {
        "fs" => fs_store(),
        // s3s-fs turns each key into a file name of about 1.4 times its length, so keep its
        // keys short: no prefix.
        "s3s" => s3_store(s3s().await, ""),
        "moto" => s3_store(moto().await, "store"),
        other => panic!("unknown backend {other}"),
    }
}

/// A backend that hands every call to another and notes what it was and on which key, so a
/// test can see what a request cost the store: a `get` is a GetObject on S3 (an open on disk),
/// a `stat` a HeadObject.
/// With [`Recording::panic_on`] it also stands in for a bug: a panic in the middle of a request.
pub struct Recording {
    inner: Arc<dyn Backend>,
    calls: std::sync::Mutex<Vec<(&'static str, String)>>,
    panic_on: Option<String>,
}

impl Recording {
    pub fn new(inner: Arc<dyn Backend>) -> Recording {
        Recording {
            inner,
            calls: std::sync::Mutex::new(Vec::new()),
            panic_on: None,
        }
    }

    /// Panics on every call whose key contains `part`.
    pub fn panic_on(mut self, part: &str) -> Recording {
        self.panic_on = Some(part.to_string());
        self
    }

    /// The calls so far, in order, and forgets them.
    pub fn take(&self) -> Vec<(&'static str, String)> {
        std::mem::take(
            &mut *self
                .calls
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    fn note(&self, op: &'static str, key: &str) {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((op, key.to_string()));
        if let Some(part) = self.panic_on.as_deref().filter(|p| key.contains(p)) {
            panic!("injected: {op} {key} contains {part}");
        }
    }
}

#[async_trait::async_trait]
impl Backend for Recording {
    async fn get(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> crate::backend::Result<crate::ByteStream> {
        self.note("get", key);
        self.inner.get(key, range).await
    }

    async fn read(&self, key: &str) -> crate::backend::Result<bytes::Bytes> {
        self.note("read", key);
        self.inner.read(key).await
    }

    async fn writer(
        &self,
        key: &str,
    ) -> crate::backend::Result<Box<dyn crate::backend::ObjectWriter>> {
        self.note("writer", key);
        self.inner.writer(key).await
    }

    async fn put(&self, key: &str, data: bytes::Bytes) -> crate::backend::Result<()> {
        self.note("put", key);
        self.inner.put(key, data).await
    }

    async fn stat(&self, key: &str) -> crate::backend::Result<Option<crate::backend::ObjectMeta>> {
        self.note("stat", key);
        self.inner.stat(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> crate::backend::Result<crate::backend::ListPage> {
        self.note("list", prefix);
        self.inner.list(prefix, start_after, limit).await
    }

    async fn delete(&self, key: &str) -> crate::backend::Result<()> {
        self.note("delete", key);
        self.inner.delete(key).await
    }

    async fn copy(&self, from: &str, to: &str) -> crate::backend::Result<()> {
        self.note("copy", to);
        self.inner.copy(from, to).await
    }

    async fn rename(&self, from: &str, to: &str) -> crate::backend::Result<()> {
        self.note("rename", to);
        self.inner.rename(from, to).await
    }

    fn scan(&self, prefix: &str) -> crate::backend::EntryStream {
        self.note("scan", prefix);
        self.inner.scan(prefix)
    }

    async fn delete_many(&self, keys: &[String]) -> crate::backend::Result<()> {
        for k in keys {
            self.note("delete", k);
        }
        self.inner.delete_many(keys).await
    }

    async fn create_new(
        &self,
        key: &str,
        data: bytes::Bytes,
    ) -> crate::backend::Result<Option<String>> {
        self.note("create_new", key);
        self.inner.create_new(key, data).await
    }

    async fn read_versioned(
        &self,
        key: &str,
    ) -> crate::backend::Result<Option<crate::backend::Versioned>> {
        self.note("read", key);
        self.inner.read_versioned(key).await
    }

    async fn replace(
        &self,
        key: &str,
        data: bytes::Bytes,
        etag: &str,
    ) -> crate::backend::Result<Option<String>> {
        self.note("replace", key);
        self.inner.replace(key, data, etag).await
    }

    async fn reachable(&self) -> crate::backend::Result<()> {
        self.inner.reachable().await
    }

    async fn listing_stamp(&self, prefix: &str) -> crate::backend::Result<Option<String>> {
        self.note("listing_stamp", prefix);
        self.inner.listing_stamp(prefix).await
    }

    fn local_path(&self, key: &str) -> Option<std::path::PathBuf> {
        self.inner.local_path(key)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// `on_every_backend!(a, b, …)`: each `async fn a(TestStore)` of the calling module becomes a
/// test on each backend (modules `fs`, `s3s` and `moto`), on a multi-threaded runtime.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name($crate::testing::store("fs").await).await })*
        }
        mod s3s {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name($crate::testing::store("s3s").await).await })*
        }
        mod moto {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name($crate::testing::store("moto").await).await })*
        }
    };
}
