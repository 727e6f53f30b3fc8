//! The HTTPS configuration: a PEM certificate chain and private key.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3) for
/// `chain` and `key`; an error names the file at fault.
pub(crate) fn config(chain: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    let fail = |path: &Path, reason: String| Error::Tls {
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(chain)
        .map_err(|e| fail(chain, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(chain, e.to_string()))?;
    if certs.is_empty() {
        return Err(fail(chain, "no certificate in the file".into()));
    }
    // The error of a key file never shows its content.
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(key, e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(chain, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| fail(key, e.to_string()))?;
    Ok(Arc::new(config))
}
