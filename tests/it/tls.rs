//! TLS and mTLS with throwaway certificates made at test time (nothing committed).

use std::{path::PathBuf, sync::Arc, time::Duration};

use basic_service::{
    BasicServer, Config, ServerError,
    client::{ClientOptions, ClientTls, connect},
    config::TlsFiles,
};
use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};
use tokio::io::AsyncReadExt;
use volo_gen::basic::service::v1::HelloRequest;

use crate::common::{TestServer, start, test_config, within};

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, as PEM
/// files in a fresh temporary directory.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("basic-service-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let issue = |names: Vec<String>, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = issue(
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_cert, client_key) =
            issue(vec!["client".into()], ExtendedKeyUsagePurpose::ClientAuth);
        for (name, pem) in [
            ("ca.pem", ca.pem()),
            ("server.pem", server_cert),
            ("server.key", server_key),
            ("client.pem", client_cert),
            ("client.key", client_key),
        ] {
            std::fs::write(dir.join(name), pem).unwrap();
        }
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn server_config(&self, mtls: bool) -> Config {
        let mut config = test_config();
        config.tls = Some(TlsFiles {
            cert: self.path("server.pem"),
            key: self.path("server.key"),
            client_ca: mtls.then(|| self.path("ca.pem")),
        });
        config.http2.handshake_timeout = Duration::from_millis(500);
        config
    }

    fn client(&self, server: &TestServer, with_cert: bool) -> ClientOptions {
        ClientOptions {
            tls: Some(ClientTls {
                ca: self.path("ca.pem"),
                identity: with_cert.then(|| (self.path("client.pem"), self.path("client.key"))),
                server_name: "localhost".into(),
            }),
            timeout: Some(Duration::from_secs(10)),
            ..ClientOptions::new(server.addr)
        }
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn hello(options: &ClientOptions) -> Result<String, volo_grpc::Status> {
    let client = connect(options).expect("client builds");
    let reply = within(client.hello(HelloRequest {
        message: "TLS".into(),
    }))
    .await?;
    Ok(reply
        .into_inner()
        .cloud_event
        .map(|e| e.id.to_string())
        .unwrap_or_default())
}

#[tokio::test]
async fn tls_serves_clients_that_trust_the_ca() {
    let pki = Pki::new();
    let server = start(pki.server_config(false)).await;
    assert!(hello(&pki.client(&server, false)).await.is_ok());
    // A plaintext client cannot talk to a TLS server.
    assert!(hello(&ClientOptions::new(server.addr)).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn tls_negotiates_alpn_h2() {
    let pki = Pki::new();
    let server = start(pki.server_config(false)).await;
    let mut roots = rustls::RootCertStore::empty();
    for cert in basic_service::tls::load_certs(&pki.path("ca.pem")).unwrap() {
        roots.add(cert).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(basic_service::tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = within(connector.connect(name, tcp))
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(tls);
    server.stop().await;
}

#[tokio::test]
async fn mtls_requires_a_client_certificate() {
    let pki = Pki::new();
    let server = start(pki.server_config(true)).await;
    assert!(hello(&pki.client(&server, true)).await.is_ok());
    assert!(hello(&pki.client(&server, false)).await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn a_stalled_handshake_blocks_nobody_and_is_dropped() {
    let pki = Pki::new();
    let server = start(pki.server_config(false)).await;
    // Connect and say nothing: the server must keep accepting others meanwhile.
    let mut stalled = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    assert!(hello(&pki.client(&server, false)).await.is_ok());
    // After the 500 ms handshake timeout the server closes the silent connection.
    let mut buf = [0u8; 64];
    let n = within(stalled.read(&mut buf)).await.unwrap_or(0);
    assert_eq!(n, 0, "the server closed the stalled connection");
    server.stop().await;
}

#[test]
fn a_bad_certificate_is_refused_before_any_port_is_bound() {
    let pki = Pki::new();
    std::fs::write(pki.path("server.pem"), "not a certificate").unwrap();
    // `new` loads the TLS files; no listener exists yet.
    let err = BasicServer::new(pki.server_config(false))
        .err()
        .expect("a bad certificate is refused");
    assert!(matches!(err, ServerError::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("server.pem"), "{err}");
}
