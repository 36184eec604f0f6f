//! TLS with rustls: a certificate chain and a key from PEM files, swapped in place on reload.
//!
//! [`Certificates`] is the server's certificate resolver: every handshake takes the pair that
//! is current at that moment, so [`Certificates::reload`] (on SIGHUP) changes what new
//! connections see without touching the ones already open. A reload that fails keeps the old
//! pair and says why.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

/// `[tls]` in the config.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The current certificate and key.
#[derive(Debug)]
pub struct Certificates {
    config: TlsConfig,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificates {
    fn load(config: &TlsConfig, provider: &CryptoProvider) -> Result<CertifiedKey, String> {
        let cert_path = config.cert.display();
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
            .map_err(|e| format!("tls.cert {cert_path}: {e}"))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("tls.cert {cert_path}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("tls.cert {cert_path}: no CERTIFICATE in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(&config.key)
            .map_err(|e| format!("tls.key {}: {e}", config.key.display()))?;
        CertifiedKey::from_der(certs, key, provider).map_err(|e| {
            format!(
                "tls: the key {} does not go with the certificate {cert_path}: {e}",
                config.key.display()
            )
        })
    }

    /// Reads the pair again; on failure the old one stays.
    pub fn reload(&self) -> Result<(), String> {
        let fresh = Certificates::load(&self.config, &self.provider)?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
        Ok(())
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

/// A TLS acceptor over the configured pair (HTTP/2 and HTTP/1.1 offered by ALPN) and the
/// handle that reloads it.
pub fn acceptor(
    config: &TlsConfig,
) -> Result<(tokio_rustls::TlsAcceptor, Arc<Certificates>), String> {
    // ring, named explicitly: the process links more than one rustls provider.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let pair = Certificates::load(config, &provider)?;
    let certificates = Arc::new(Certificates {
        config: config.clone(),
        provider: provider.clone(),
        current: RwLock::new(Arc::new(pair)),
    });
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(certificates.clone());
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((
        tokio_rustls::TlsAcceptor::from(Arc::new(server)),
        certificates,
    ))
}
