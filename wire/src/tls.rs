//! Optional TLS (rustls on the ring provider) for the daemon's API and the
//! workers' task API, and the HTTP clients of both.
//!
//! Servers load a PEM certificate chain and key. Clients trust the public web
//! roots plus any CA files given, so a self-signed certificate works when the
//! client is handed that same certificate as its CA.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A certificate, key or CA file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS {path}: {reason}")]
pub struct TlsError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError { path: path.to_path_buf(), reason };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(format!("cannot read: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate (BEGIN CERTIFICATE) in the file".into()));
    }
    Ok(certs)
}

/// The PEM certificate blocks of `path`, without anything else the file holds
/// (a combined file's private key stays out of copies made for clients).
pub fn certificate_pem(path: &Path) -> Result<String, TlsError> {
    read_certs(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| TlsError { path: path.to_path_buf(), reason: format!("cannot read: {e}") })?;
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        inside |= line.starts_with("-----BEGIN CERTIFICATE-----");
        if inside {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        inside &= !line.starts_with("-----END CERTIFICATE-----");
    }
    Ok(out)
}

/// A server configuration serving the PEM chain `cert` (leaf first) with the
/// PEM private key `key` (PKCS#8, PKCS#1 or SEC1); HTTP/1.1 only.
pub fn server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = read_certs(cert)?;
    let key_err = |reason: String| TlsError { path: key.to_path_buf(), reason };
    let private =
        PrivateKeyDer::from_pem_file(key).map_err(|e| key_err(format!("no usable private key: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| key_err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| key_err(format!("does not fit certificate {}: {e}", cert.display())))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client configuration trusting the public web roots and every certificate
/// in the PEM files `extra_cas` (CA certificates, or a self-signed server's own).
pub fn client_config(extra_cas: &[&Path]) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    for path in extra_cas {
        for cert in read_certs(path)? {
            roots.add(cert).map_err(|e| TlsError {
                path: path.to_path_buf(),
                reason: format!("unusable as a trust anchor: {e}"),
            })?;
        }
    }
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError { path: PathBuf::new(), reason: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An HTTP(S) agent whose calls give up after `timeout`, trusting the public
/// web roots and `extra_ca` for `https://` URLs.
pub fn agent(timeout: Duration, extra_ca: Option<&Path>) -> Result<ureq::Agent, TlsError> {
    let cas: Vec<&Path> = extra_ca.into_iter().collect();
    Ok(ureq::AgentBuilder::new().timeout(timeout).tls_config(client_config(&cas)?).build())
}

/// `http` or `https`, as the server speaks.
pub fn scheme(tls: bool) -> &'static str {
    if tls {
        "https"
    } else {
        "http"
    }
}
