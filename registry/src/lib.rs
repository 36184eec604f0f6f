//! berth-registry: the OCI distribution-spec v1.1 registry server behind `berth serve`.
//!
//! [`config`] reads the TOML configuration; [`routes`] maps a path to an endpoint; [`api`]
//! answers each endpoint over a [`berth_storage::Store`]; [`manifest`] validates manifests;
//! [`mirror`] makes it a pull-through cache of upstream registries; [`metrics`] counts for
//! `/metrics`; [`error`] turns failures into the spec's error bodies; [`auth`] decides who may
//! do what before an endpoint runs; [`tls`] holds the certificate. [`Server`] binds, serves over
//! hyper (plain or TLS), and shuts down gracefully.
//!
//! The registry knows nothing of the command line, and keeps no state that matters outside the
//! store: several processes over one S3 bucket behave as one registry.

pub mod api;
pub mod auth;
pub mod config;
pub mod error;
pub mod manifest;
pub mod metrics;
pub mod mirror;
pub mod routes;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use berth_storage::Store;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tokio::net::TcpListener;

pub use api::Registry;
pub use config::{Config, ConfigError};
pub use mirror::Mirror;

/// A bound registry, ready to serve.
pub struct Server {
    listener: TcpListener,
    registry: Arc<Registry>,
    grace: Duration,
    tls: Option<(tokio_rustls::TlsAcceptor, Arc<tls::Certificates>)>,
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
        let store = Store::open(&config.storage).map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.listen))?;
        Ok(Server {
            listener,
            grace: Duration::from_secs(config.server.shutdown_grace),
            registry: Arc::new(match config.mirror {
                Some(m) => Registry::new(store, config.server)
                    .with_mirror(Mirror::new(m).map_err(anyhow::Error::msg)?)
                    .with_auth(auth),
                None => Registry::new(store, config.server).with_auth(auth),
            }),
            tls,
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
        let registry = self.registry.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let registry = registry.clone();
            async move {
                let req = req.map(Body::new);
                Ok::<_, std::convert::Infallible>(api::handle(registry, req).await)
            }
        });
        let http = ConnBuilder::new(TokioExecutor::new());
        let graceful = hyper_util::server::graceful::GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            let (socket, _) = tokio::select! {
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
            match &self.tls {
                None => {
                    let conn = http
                        .serve_connection_with_upgrades(TokioIo::new(socket), service.clone())
                        .into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
                Some((acceptor, _)) => {
                    // The handshake runs in the connection's own task, bounded in time, so a
                    // slow or silent client never holds up the accept loop.
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(10), acceptor.accept(socket));
                    let (http, service) = (http.clone(), service.clone());
                    let watcher = graceful.watcher();
                    tokio::spawn(async move {
                        let stream = match handshake.await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake timed out");
                                return;
                            }
                        };
                        let conn = http
                            .serve_connection_with_upgrades(TokioIo::new(stream), service)
                            .into_owned();
                        if let Err(e) = watcher.watch(conn).await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                }
            }
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
