//! berth-registry: the OCI distribution-spec v1.1 registry server behind `berth serve`.
//!
//! [`config`] reads the TOML configuration; [`routes`] maps a path to an endpoint; [`range`]
//! reads byte ranges; [`api`]
//! answers each endpoint over a [`berth_storage::Store`]; [`manifest`] validates manifests;
//! [`mirror`] makes it a pull-through cache of upstream registries; [`metrics`] counts for
//! `/metrics`; [`error`] turns failures into the spec's error bodies; [`auth`] decides who may
//! do what before an endpoint runs; [`tls`] holds the certificate. [`Server`] binds, serves over
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
        let listener = TcpListener::bind(config.server.listen)
            .await
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
                let mut registry = match config.mirror {
                    Some(m) => Registry::new(store, config.server)
                        .with_front(Mirror::new(m).map_err(anyhow::Error::msg)?)
                        .with_auth(auth),
                    None => Registry::new(store, config.server).with_auth(auth),
                };
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
    /// period) before returning.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
        let mut http = ConnBuilder::new(TokioExecutor::new());
        // hyper enforces a header read timeout only with a timer; `None` turns it off.
        http.http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.header_timeout);
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let acceptor = self.tls.as_ref().map(|(a, _)| a.clone());
        let mut shutdown = std::pin::pin!(shutdown);
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
        loop {
            let (socket, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.as_mut() => break,
            };
            let _ = socket.set_nodelay(true);
            // Everything after the accept (the first byte, the handshake) happens in the
            // connection's own task, bounded in time: a slow or silent client never holds up
            // the accept loop.
            let conn = Connection {
                http: http.clone(),
                registry: self.registry.clone(),
                watcher: graceful.watcher(),
            };
            let acceptor = acceptor.clone();
            let opening = self.opening;
            tokio::spawn(conn.dispatch(socket, peer, acceptor, opening));
        }
        tracing::info!("shutting down: letting in-flight requests finish");
        tokio::select! {
            _ = graceful.shutdown() => {}
            _ = tokio::time::sleep(self.grace) => {
                tracing::warn!("in-flight requests did not finish within the grace period");
            }
        }
        Ok(())
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
    watcher: hyper_util::server::graceful::Watcher,
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
        if let Err(e) = self.watcher.watch(conn).await {
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
        if n == buf.len() || buf[..n] != H2_PREFACE[..n] {
            return Ok(Some(buf[0]));
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
