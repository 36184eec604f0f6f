//! `berth serve`: the registry server.

use std::path::PathBuf;

use anyhow::Context;
use berth_registry::config::LogFormat;
use berth_registry::{Config, Server};
use berth_storage::StoreConfig;
use clap::Args;

use super::globals::Globals;

pub mod gc;
mod pages;

#[derive(Args)]
pub struct ServeArgs {
    /// Configuration file (TOML); without it berth serves on 127.0.0.1:5000 from a local directory
    #[arg(short, long, value_name = "FILE", env = "BERTH_CONFIG_FILE")]
    config: Option<PathBuf>,
    /// Address to listen on (overrides the config), e.g. 127.0.0.1:5000
    #[arg(long, value_name = "ADDR")]
    listen: Option<std::net::SocketAddr>,
}

/// The registry's configuration (`--config FILE`, else the defaults) with `--root` as its
/// storage when given: what `serve` and `gc` work on.
fn registry_config(globals: &Globals, path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    let mut config = match path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(root) = globals.root.clone() {
        config.storage = StoreConfig::Filesystem { root, sync: false };
    }
    Ok(config)
}

/// Serves the store of the config, or of `--root` (a directory, e.g. a client's root).
pub fn run(globals: &Globals, args: ServeArgs) -> anyhow::Result<i32> {
    let mut config = registry_config(globals, args.config.as_deref())?;
    if let Some(listen) = args.listen {
        config.server.listen = listen;
    }
    init_logging(config.log.format);
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let storage = describe(&config.storage);
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let server = Server::bind(config).await?;
        tracing::info!(
            "berth registry listening on {scheme}://{} with {storage}",
            server.local_addr()
        );
        if let Some(certificates) = server.certificates() {
            // SIGHUP reads the certificate and key again; open connections keep theirs.
            let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .context("installing the SIGHUP handler")?;
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    match certificates.reload() {
                        Ok(()) => tracing::info!("TLS certificate reloaded"),
                        Err(e) => tracing::error!(
                            "TLS certificate not reloaded, keeping the old one: {e}"
                        ),
                    }
                }
            });
        }
        let shutdown = shutdown_signal()?;
        // A line on stdout for scripts and tests that start berth on port 0.
        println!("listening on {}", server.local_addr());
        // Start-up is over: what it alone touched need not stay resident, nor what serving
        // touched once the server is idle again (see `pages`).
        let released = pages::release();
        tracing::debug!(
            "released the mappings of {} KiB of read-only segments",
            released >> 10
        );
        let idle = tokio::spawn(pages::when_idle(|| {
            berth_registry::metrics::REQUESTS.load(std::sync::atomic::Ordering::Relaxed)
        }));
        let served = server.run(shutdown).await;
        idle.abort();
        served?;
        tracing::info!("stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(0)
}

fn describe(storage: &StoreConfig) -> String {
    match storage {
        StoreConfig::Filesystem { root, .. } => format!("storage in {}", root.display()),
        StoreConfig::S3(s3) => format!(
            "storage in S3 bucket {} at {}",
            s3.bucket,
            s3.endpoint.as_deref().unwrap_or("AWS")
        ),
    }
}

/// A future that resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed here,
/// at once, not when the future is first polled: a signal that comes right after the server
/// said it listens is a shutdown, never the signal's default (death, the listen queue reset).
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// Sends logs to stderr, as text or one JSON object a line; `RUST_LOG` (or `BERTH_LOG`)
/// picks the level, `info` by default.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = std::env::var("BERTH_LOG")
        .ok()
        .map(EnvFilter::new)
        .unwrap_or_else(|| {
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"))
        });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, never escape codes in a journal or a file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.event_format(JsonLines).try_init(),
    };
}

/// One JSON object a line: `time` (RFC 3339, UTC), `level`, `message`, `target`, then the
/// event's own fields by name (a request's: `request_id`, `method`, `path`, `status`,
/// `bytes`, `duration_ms`, `user`).
struct JsonLines;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for JsonLines
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        use serde_json::{Map, Value};
        struct Fields<'a>(&'a mut Map<String, Value>);
        impl tracing::field::Visit for Fields<'_> {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                self.0
                    .insert(f.name().into(), Value::from(format!("{v:?}")));
            }
            fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
                self.0.insert(f.name().into(), Value::from(v));
            }
            fn record_u64(&mut self, f: &tracing::field::Field, v: u64) {
                self.0.insert(f.name().into(), Value::from(v));
            }
            fn record_i64(&mut self, f: &tracing::field::Field, v: i64) {
                self.0.insert(f.name().into(), Value::from(v));
            }
            fn record_f64(&mut self, f: &tracing::field::Field, v: f64) {
                self.0.insert(f.name().into(), Value::from(v));
            }
            fn record_bool(&mut self, f: &tracing::field::Field, v: bool) {
                self.0.insert(f.name().into(), Value::from(v));
            }
        }
        let meta = event.metadata();
        let mut map = Map::new();
        map.insert(
            "time".into(),
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        map.insert(
            "level".into(),
            Value::from(meta.level().as_str().to_ascii_lowercase()),
        );
        map.insert("target".into(), Value::from(meta.target()));
        event.record(&mut Fields(&mut map));
        writeln!(writer, "{}", Value::Object(map))
    }
}
