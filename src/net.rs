//! Accepting connections: plaintext or TLS, with handshakes off the accept path.
//!
//! volo's accept loop does the TLS handshake inline, so one slow or stalled client
//! stops every other connection from being accepted, and a single `accept()` error (out
//! of file descriptors) ends the server. [`Acceptor`] replaces it: a task accepts TCP
//! connections, retries after a pause when `accept` fails, and runs each TLS handshake
//! in its own task with a timeout; finished connections reach volo through a bounded
//! channel.
//!
//! [`tls_config`] builds the rustls server configuration: ALPN `h2` (grpc-go clients
//! insist on it) and, with a client CA, required and verified client certificates.

use std::{fmt, io, net::SocketAddr, path::Path, sync::Arc, time::Duration};

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio::{net::TcpListener, sync::mpsc};
use tokio_rustls::TlsAcceptor;
use volo::net::{
    Address,
    conn::{Conn, ConnInfo, ConnStream},
    incoming::{Incoming, MakeIncoming},
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

/// A rustls server configuration with ALPN `h2`; with `client_ca`, client
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
            let mut roots = rustls::RootCertStore::empty();
            for cert in load_certs(ca)? {
                roots.add(cert)?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build()?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(load_certs(cert)?, load_key(key)?)?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// Connections ready for volo: accepted, and TLS-established when TLS is on.
pub struct Acceptor {
    local_addr: SocketAddr,
    ready: mpsc::Receiver<Conn>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("local_addr", &self.local_addr)
            .finish()
    }
}

/// Pause after a failed `accept` (e.g. EMFILE), doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Acceptor {
    /// Starts accepting on `listener`; the task stops when the acceptor is dropped.
    pub fn new(
        listener: TcpListener,
        tls: Option<Arc<ServerConfig>>,
        handshake_timeout: Duration,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        // Small: connections wait here only while volo is busy spawning the previous one.
        let (tx, ready) = mpsc::channel(64);
        let tls = tls.map(TlsAcceptor::from);
        tokio::spawn(accept_loop(listener, tx, tls, handshake_timeout));
        Ok(Self { local_addr, ready })
    }
}

async fn accept_loop(
    listener: TcpListener,
    tx: mpsc::Sender<Conn>,
    tls: Option<TlsAcceptor>,
    handshake_timeout: Duration,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = tx.closed() => return,
        };
        let (tcp, peer) = match accepted {
            Ok(ok) => {
                backoff = FIRST_BACKOFF;
                ok
            }
            Err(err) => {
                tracing::error!(%err, retry_in_ms = backoff.as_millis() as u64, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        // gRPC is latency-sensitive and its frames are small: no Nagle delay.
        let _ = tcp.set_nodelay(true);
        let info = ConnInfo {
            peer_addr: Some(Address::from(peer)),
        };
        match &tls {
            None => {
                let conn = Conn {
                    stream: ConnStream::Tcp(tcp),
                    info,
                };
                if tx.send(conn).await.is_err() {
                    return;
                }
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let stream = tokio_rustls::TlsStream::Server(stream);
                            let conn = Conn {
                                stream: ConnStream::Tls(stream.into()),
                                info,
                            };
                            // Fails only when the server is shutting down.
                            let _ = tx.send(conn).await;
                        }
                        Ok(Err(err)) => tracing::debug!(%peer, %err, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        }
    }
}

impl Incoming for Acceptor {
    async fn accept(&mut self) -> io::Result<Option<Conn>> {
        Ok(self.ready.recv().await)
    }
}

impl MakeIncoming for Acceptor {
    type Incoming = Acceptor;

    async fn make_incoming(self) -> io::Result<Self::Incoming> {
        Ok(self)
    }
}
