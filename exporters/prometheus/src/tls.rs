//! The HTTPS configuration: a PEM certificate chain and private key.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::Error;

/// A rustls server configuration (ring provider, TLS 1.2 and 1.3) for
/// `chain` and `key`; an error names the file at fault.
pub(crate) fn config(chain: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, Error> {
    fn fail(path: &Path, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
        Error::Tls {
            path: path.to_path_buf(),
            source: source.into(),
        }
    }
    let certs = CertificateDer::pem_file_iter(chain)
        .map_err(|e| fail(chain, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(chain, e))?;
    if certs.is_empty() {
        return Err(fail(chain, "no certificate in the file"));
    }
    // A pem error names what failed, never the key's content.
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| fail(key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail(chain, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| fail(key, e))?;
    Ok(Arc::new(config))
}
