//! berth-registry: the OCI distribution-spec v1.1 registry server behind `berth serve`.
//!
//! [`config`] reads the TOML configuration; [`routes`] maps a path to an endpoint; [`api`]
//! answers each endpoint over a [`berth_storage::Store`]; [`manifest`] validates manifests;
//! [`mirror`] makes it a pull-through cache of upstream registries; [`metrics`] counts for
//! `/metrics`; [`error`] turns failures into the spec's error bodies. [`Server`] binds, serves over hyper,
//! and shuts down gracefully.
//!
//! The registry knows nothing of the command line, and keeps no state that matters outside the
//! store: several processes over one S3 bucket behave as one registry.

pub mod api;
pub mod config;
pub mod error;
pub mod manifest;
pub mod metrics;
pub mod mirror;
pub mod routes;

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
}

impl Server {
    /// Opens the store and binds the listening socket.
    pub async fn bind(config: Config) -> anyhow::Result<Server> {
        let store = Store::open(&config.storage).map_err(anyhow::Error::msg)?;
        let listener = TcpListener::bind(config.server.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.server.listen))?;
        Ok(Server {
            listener,
            grace: Duration::from_secs(config.server.shutdown_grace),
            registry: Arc::new(match config.mirror {
                Some(m) => Registry::new(store, config.server).with_mirror(Mirror::new(m)),
                None => Registry::new(store, config.server),
            }),
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
