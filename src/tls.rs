//! rustls configuration, read from PEM files, for both ends of a connection.
//!
//! [`tls_config`] builds the server's configuration: ALPN `h2` (grpc-go clients insist
//! on it) and `http/1.1` (browsers without HTTP/2) and, with a client CA, required and
//! verified client certificates. The pieces the client side needs as well (the crypto
//! [`provider`], [`load_certs`], [`load_key`], and `load_roots` for the CA a peer's
//! certificate must chain to) live here too, so [`crate::client`] builds its
//! configuration from the same parts. Nothing here does I/O beyond reading the files:
//! handshakes are the job of the server's accept loop (`net`).

use std::{path::Path, sync::Arc};

use rustls::{
    RootCertStore, ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}")]
    Pem {
        path: String,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{0} holds no certificate")]
    NoCertificate(String),
    #[error("invalid TLS configuration")]
    Rustls(#[from] rustls::Error),
    #[error("invalid client CA")]
    ClientCa(#[from] rustls::server::VerifierBuilderError),
}

/// The crypto provider used everywhere (aws-lc-rs, which volo's rustls already builds).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |source| TlsError::Pem {
        path: path.display().to_string(),
        source,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(pem)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem)?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

/// Reads the first private key in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|source| TlsError::Pem {
        path: path.display().to_string(),
        source,
    })
}

/// Trust roots: every certificate in a PEM file (the CA the peer's certificate must
/// chain to: the server's for a client, the clients' for a server with mTLS).
pub(crate) fn load_roots(path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// A rustls server configuration with ALPN `h2` and `http/1.1`; with `client_ca`, client
/// certificates signed by it are required (mTLS).
pub fn tls_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let roots = load_roots(ca)?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(load_certs(cert)?, load_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// A file under the temporary directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("basic-service-tls-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            Self(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn a_missing_file_is_named_in_the_error() {
        let path = Path::new("/nonexistent/basic-service/cert.pem");
        let err = load_certs(path).unwrap_err();
        assert!(matches!(&err, TlsError::Pem { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            "cannot read /nonexistent/basic-service/cert.pem"
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let key = rcgen::KeyPair::generate().unwrap();
        let file = TempFile::new("only-key.pem", &key.serialize_pem());
        let err = load_certs(&file.0).unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate(_)), "{err:?}");
        // The same file does hold a key.
        load_key(&file.0).unwrap();
    }

    #[test]
    fn server_config_offers_h2_and_http1() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let cert_file = TempFile::new("cert.pem", &cert.cert.pem());
        let key_file = TempFile::new("key.pem", &cert.key_pair.serialize_pem());
        assert_eq!(load_roots(&cert_file.0).unwrap().len(), 1);

        let config = tls_config(&cert_file.0, &key_file.0, None).unwrap();
        assert_eq!(config.alpn_protocols, [&b"h2"[..], b"http/1.1"]);
        // A client CA (here the same self-signed certificate) is accepted as a root.
        let mtls = tls_config(&cert_file.0, &key_file.0, Some(&cert_file.0)).unwrap();
        assert_eq!(mtls.alpn_protocols, config.alpn_protocols);
    }
}
