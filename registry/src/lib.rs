//! berth-registry: the OCI distribution-spec v1.1 registry server behind `berth serve`.
//!
//! [`config`] reads the TOML configuration; [`routes`] maps a path to an endpoint; [`range`]
//! reads byte ranges; [`api`]
//! answers each endpoint over a [`berth_storage::Store`]; [`manifest`] validates manifests;
//! [`mirror`] makes it a pull-through cache of upstream registries; [`metrics`] counts for
//! `/metrics`; [`error`] turns failures into the spec's error bodies; [`auth`] decides who may
//! do what before an endpoint runs; [`tls`] holds the certificate; [`web`] is the web page
//! served beside the API. [`Server`] binds, serves over
//! hyper (plain, or TLS with plain HTTP kept for loopback peers on the same port), and shuts
//! down gracefully.
//!
//! The registry knows nothing of the command line, and keeps no state that matters outside the
//! store: several processes over one S3 bucket behave as one registry.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod gc;
pub mod manifest;
pub mod metrics;
pub mod mirror;
pub mod notify;
pub mod range;
pub mod routes;
pub mod tls;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use berth_storage::Store;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::{TcpListener, TcpStream};

pub use api::Registry;
pub use config::{Config, ConfigError};
pub use mirror::Mirror;

/// Locks a mutex even when a holder panicked. A handler's panic is answered 500 and the server
/// goes on (`api::handle`), so a lock it held must stay usable: every critical section in this
/// crate leaves its data consistent at each step (inserts, removals, counters).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A bound registry, ready to serve.
pub struct Server {
    listener: TcpListener,
    registry: Arc<Registry>,
    grace: Duration,
    header_timeout: Option<Duration>,
    /// How long a new connection has to say which protocol it speaks (and finish a TLS
    /// handshake) before it is closed.
    opening: Duration,
    tls: Option<(tokio_rustls::TlsAcceptor, Arc<tls::Certificates>)>,
    gc: berth_storage::gc::Policy,
}

impl Server {
    /// Opens the store and binds the listening socket.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let tls = config
            .tls
            .as_ref()
            .map(tls::acceptor)
            .transpose()
            .map_err(anyhow::Error::msg)?;
        let auth = config
            .auth
            .as_ref()
            .map(|a| auth::Auth::new(a, tls.is_some()))
            .transpose()
            .map_err(anyhow::Error::msg)?;
        if auth.is_some() && tls.is_none() && !config.server.listen.ip().is_loopback() {
            tracing::warn!(
                "[auth] is configured without [tls] and {} is not a loopback address: \
                 passwords and tokens will cross the network in clear; configure [tls]",
                config.server.listen
            );
        }
        let store = Store::open(&config.storage).map_err(anyhow::Error::msg)?;
        let gc = config.gc.clone();
        let log_requests = config.log.requests;
        let listener = listen(config.server.listen)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.listen))?;
        let notifier = match &config.notifications {
            Some(n) => {
                let queue = n.queue.clone().unwrap_or_else(config::default_queue_dir);
                let addr = listener.local_addr().unwrap_or(config.server.listen);
                Some(notify::Notifier::new(n, &queue, addr).map_err(anyhow::Error::msg)?)
            }
            None => None,
        };
        Ok(Server {
            listener,
            grace: Duration::from_secs(config.server.shutdown_grace),
            header_timeout: match config.server.header_timeout {
                0 => None,
                s => Some(Duration::from_secs(s)),
            },
            opening: match config.server.header_timeout {
                0 => OPENING_TIMEOUT,
                s => OPENING_TIMEOUT.min(Duration::from_secs(s)),
            },
            registry: Arc::new({
                let mut registry = Registry::new(store, config.server).with_auth(auth);
                if let Some(m) = config.mirror {
                    registry = registry.with_front(Mirror::new(m).map_err(anyhow::Error::msg)?);
                }
                if config.web.enabled {
                    registry = registry.with_page(web::Web::new(config.web));
                }
                registry.notifier = notifier;
                registry.log_requests = log_requests;
                registry
            }),
            tls,
            gc,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound socket has an address")
    }

    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    /// The certificate holder when serving TLS: `reload()` it to pick up new files.
    pub fn certificates(&self) -> Option<Arc<tls::Certificates>> {
        self.tls.as_ref().map(|(_, c)| c.clone())
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish (up to the grace
    /// period) before returning. A request is in flight once its client has sent it: the
    /// connections waiting in the listen queue and those whose request the server has not
    /// read yet are answered too (then closed); only connections with nothing sent are closed
    /// at once.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let mut http = ConnBuilder::new(TokioExecutor::new());
        // hyper enforces a header read timeout only with a timer; `None` turns it off.
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        // Every connection holds a receiver: shutdown is over when the last one is dropped.
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let acceptor = self.tls.as_ref().map(|(a, _)| a.clone());
        // The background collection; aborted when the server stops (a collection killed half
        // way leaves a consistent store, and the next one finishes the job).
        let collector = (!self.gc.interval.is_zero()).then(|| {
            tokio::spawn(gc::schedule(
                self.registry.store.clone(),
                self.gc.clone(),
                self.gc.interval,
                self.registry.collections.clone(),
            ))
        });
        let _stop_collector = collector.map(|t| t.abort_handle()).map(AbortOnDrop);
        if let Some(n) = &self.registry.notifier {
            n.start();
        }
        let workers = Workers::start()?;
        let spawn = |socket: TcpStream, peer: SocketAddr| {
            let _ = socket.set_nodelay(true);
            // Everything after the accept (the first byte, the handshake) happens in the
            // connection's own task, bounded in time: a slow or silent client never holds up
            // the accept loop.
            let conn = Connection {
                http: http.clone(),
                registry: self.registry.clone(),
                stopping: stopping.clone(),
            };
            let (acceptor, opening) = (acceptor.clone(), self.opening);
            workers.spawn(socket, move |socket| {
                conn.dispatch(socket, peer, acceptor, opening)
            });
        };
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((socket, peer)) => spawn(socket, peer),
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                _ = shutdown.as_mut() => break,
            }
        }
        tracing::info!("shutting down: letting in-flight requests finish");
        let _ = stop.send(true);
        // Clients in the listen queue have connected and may have sent their request. They are
        // taken from the kernel's queue directly: the reactor may not have seen them yet (a
        // server stopped or starved while they connected learns of them and of the signal in
        // one turn), and an accept through it would then find nothing.
        match self.listener.into_std() {
            Ok(listener) => {
                while let Ok((socket, peer)) = listener.accept() {
                    let socket = socket
                        .set_nonblocking(true)
                        .and_then(|()| TcpStream::from_std(socket));
                    match socket {
                        Ok(socket) => spawn(socket, peer),
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "a queued connection could not be served")
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "the listen queue could not be read at shutdown"),
        }
        drop(stopping);
        tokio::select! {
            _ = stop.closed() => {}
            _ = tokio::time::sleep(self.grace) => {
                tracing::warn!("in-flight requests did not finish within the grace period");
            }
        }
        Ok(())
    }
}

/// The listen backlog asked for: the kernel takes the smaller of this and `net.core.somaxconn`
/// (4096 by default since Linux 5.4), as Go's servers (distribution) get. tokio's own `bind`
/// asks for 128, and 500 clients connecting at one instant then overflow the accept queue: the
/// kernel drops the SYNs past it and each such client waits a second for its retry.
const LISTEN_BACKLOG: u32 = 65_535;

/// Binds `addr` (with `SO_REUSEADDR`, as tokio's `bind` does) and listens with
/// [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = match addr {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The threads that serve connections: one per core the process may use, each running its
/// own single-threaded runtime. A connection lives on one thread from its accept to its close,
/// as a request's tasks do: no request is handed between threads, so serving one costs no
/// cross-thread wake-ups, no work-stealing queues and no contended timer (a multi-threaded
/// runtime spent a sixth of a cached manifest GET's user time on those). The accept loop, the
/// collector and the other background work stay on the caller's runtime. Each new connection
/// goes to the thread serving the fewest.
struct Workers {
    workers: Vec<Worker>,
}

struct Worker {
    runtime: tokio::runtime::Handle,
    /// Connections it serves now.
    serving: Arc<std::sync::atomic::AtomicUsize>,
    /// Dropped to end the thread: its runtime then drops what it still runs.
    _stop: tokio::sync::oneshot::Sender<()>,
}

/// How long a serving thread's runtime waits for its blocking tasks (a file read or write
/// under way) when the server stops, before it leaves them behind.
const WORKER_SHUTDOWN: Duration = Duration::from_secs(1);

impl Workers {
    fn start() -> std::io::Result<Workers> {
        let n = std::thread::available_parallelism().map_or(1, |n| n.get());
        let workers = (0..n)
            .map(|i| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                let handle = runtime.handle().clone();
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                std::thread::Builder::new()
                    .name(format!("berth-serve-{i}"))
                    .spawn(move || {
                        runtime.block_on(async {
                            let _ = stopped.await;
                        });
                        runtime.shutdown_timeout(WORKER_SHUTDOWN);
                    })?;
                Ok(Worker {
                    runtime: handle,
                    serving: Arc::default(),
                    _stop: stop,
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Workers { workers })
    }

    /// Moves an accepted socket to the least busy thread and serves it there with `serve`.
    fn spawn<F, Fut>(&self, socket: TcpStream, serve: F)
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        use std::sync::atomic::Ordering::Relaxed;
        let Some(worker) = self.workers.iter().min_by_key(|w| w.serving.load(Relaxed)) else {
            return;
        };
        // Out of this runtime's poller, into the worker's (from_std must run on it).
        let socket = match socket.into_std() {
            Ok(socket) => socket,
            Err(e) => {
                tracing::debug!(error = %e, "an accepted connection could not be handed over");
                return;
            }
        };
        worker.serving.fetch_add(1, Relaxed);
        let serving = Counted(worker.serving.clone());
        worker.runtime.spawn(async move {
            let _serving = serving;
            match TcpStream::from_std(socket) {
                Ok(socket) => serve(socket).await,
                Err(e) => tracing::debug!(error = %e, "an accepted connection could not be served"),
            }
        });
    }
}

/// Counts one connection of a worker while it lives.
struct Counted(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The address of the peer that sent a request (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// How a request reached the server; handlers find it in the request's extensions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transport {
    /// Over TLS (else plain HTTP).
    pub tls: bool,
}

/// The longest a new connection may take to send the bytes that tell its protocol (a TLS
/// handshake record, the HTTP/2 preface, an HTTP/1 request line) and finish a TLS handshake;
/// `[server] header_timeout` shortens it.
const OPENING_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a connection accepted during shutdown may take to show the request its client
/// had already sent (the reactor's turn, not the client's).
const SHUTDOWN_OPENING: Duration = Duration::from_millis(200);

/// What an HTTP/2 client without TLS sends first.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The first byte of every TLS connection: a handshake record.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// What a non-loopback client that speaks plain HTTP to a TLS port is told (the words of
/// distribution and nginx) before the connection is closed.
const USE_HTTPS: &str = "Client sent an HTTP request to an HTTPS server.\n";

/// What serving one accepted connection needs.
struct Connection {
    http: ConnBuilder<TokioExecutor>,
    registry: Arc<Registry>,
    /// Turns true when the server shuts down; shutdown waits until every connection's copy
    /// is dropped.
    stopping: tokio::sync::watch::Receiver<bool>,
}

impl Connection {
    /// Waits (at most `opening`) for the bytes that tell how the connection speaks, then
    /// serves it. With TLS configured, one port speaks both: a connection whose first byte
    /// opens a TLS handshake is served over TLS; any other is plain HTTP, served only to
    /// loopback peers (127.0.0.0/8, ::1) and answered 400 elsewhere, so that credentials never
    /// cross a network in clear. Past this point hyper's header read timeout bounds each
    /// request's head.
    async fn dispatch(
        self,
        socket: TcpStream,
        peer: SocketAddr,
        acceptor: Option<tokio_rustls::TlsAcceptor>,
        opening: Duration,
    ) {
        let deadline = tokio::time::Instant::now() + opening;
        if *self.stopping.borrow() {
            // Accepted during shutdown: answered only if its request is already here. A
            // socket just handed to this thread has no readiness yet (tokio learns it at the
            // reactor's next turn), so "here" is: readable within a moment, not at once.
            match tokio::time::timeout(SHUTDOWN_OPENING, opening_bytes(&socket)).await {
                Ok(Ok(Some(_))) => {}
                _ => return,
            }
        }
        let first = match tokio::time::timeout_at(deadline, opening_bytes(&socket)).await {
            Ok(Ok(Some(first))) => first,
            Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "connection failed before its first request");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "connection did not open a request within {opening:?}");
                return;
            }
        };
        let Some(acceptor) = acceptor else {
            return self.serve(socket, Transport { tls: false }, peer).await;
        };
        if first == TLS_HANDSHAKE_RECORD {
            match tokio::time::timeout_at(deadline, acceptor.accept(socket)).await {
                Ok(Ok(stream)) => self.serve(stream, Transport { tls: true }, peer).await,
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        } else if peer.ip().to_canonical().is_loopback() {
            self.serve(socket, Transport { tls: false }, peer).await
        } else {
            tracing::debug!(%peer, "plain HTTP from a non-loopback peer refused: TLS only");
            refuse_plain_http(socket).await;
        }
    }

    /// Serves HTTP/1.1 or HTTP/2 on `io` until the client leaves or shutdown ends it.
    async fn serve<I>(self, io: I, transport: Transport, peer: SocketAddr)
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let registry = self.registry;
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let registry = registry.clone();
            async move {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(transport);
                req.extensions_mut().insert(Peer(peer));
                Ok::<_, std::convert::Infallible>(api::handle(registry, req).await)
            }
        });
        let conn = self
            .http
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        let mut conn = std::pin::pin!(conn);
        let mut stopping = self.stopping;
        // The connection is polled before the shutdown signal, so a request the client has
        // already sent is read first: a graceful shutdown then lets it finish instead of
        // closing the connection as idle.
        let ended = tokio::select! {
            biased;
            ended = conn.as_mut() => Some(ended),
            _ = stopping.wait_for(|stop| *stop) => None,
        };
        let ended = match ended {
            Some(ended) => ended,
            None => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    }
}

/// Peeks at a new connection until its opening bytes tell the protocol: a TLS record, or
/// anything that is not the start of the HTTP/2 preface, decides at the first byte; a client
/// sending the preface has to send all of it (hyper would otherwise wait for the rest with no
/// limit). Returns the first byte, or `None` when the peer closed without sending one.
async fn opening_bytes(socket: &TcpStream) -> std::io::Result<Option<u8>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    loop {
        let n = socket.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        let (Some(seen), Some(first)) = (buf.get(..n), buf.first()) else {
            return Ok(None);
        };
        if n == buf.len() || !H2_PREFACE.starts_with(seen) {
            return Ok(Some(*first));
        }
        // A partial preface: peek returns at once while those bytes wait unread, so poll.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Answers 400 with [`USE_HTTPS`] and closes. What the client sent is read and dropped for a
/// moment after the answer, so that closing with unread bytes does not reset the connection
/// before the client has read the answer.
async fn refuse_plain_http(mut socket: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{USE_HTTPS}",
        USE_HTTPS.len()
    );
    let drain = async {
        socket.write_all(answer.as_bytes()).await?;
        socket.shutdown().await?;
        let mut sink = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 {
            let n = socket.read(&mut sink).await?;
            if n == 0 {
                break;
            }
            left = left.saturating_sub(n);
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}
