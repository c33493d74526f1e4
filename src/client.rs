//! Client construction shared by the example programs and the integration tests.
//!
//! Wraps the generated volo client builder: one address, or several spread by volo's
//! static discovery and weighted-random balancing; TLS (with a client certificate for
//! mTLS), a bearer token on every call, and request compression.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    path::PathBuf,
    sync::Arc,
    time::Duration,
};

use volo::{
    discovery::StaticDiscover, loadbalance::random::WeightedRandomBalance,
    net::tls::ClientTlsConfig,
};
pub use volo_gen::basic::v1::BasicServiceClient;
use volo_gen::basic::v1::BasicServiceClientBuilder;
use volo_grpc::{
    Request,
    codec::compression::{CompressionEncoding, GzipConfig, ZstdConfig},
    context::ClientContext,
    metadata::{Ascii, MetadataValue},
};

use crate::tls::{TlsError, load_certs, load_key, load_roots, provider};

/// Why an `--addr` value was refused.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    #[error("no address given")]
    Empty,
    #[error("cannot resolve {addr:?}")]
    Resolve {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0:?} resolves to no address")]
    NoAddress(String),
}

/// Parses `host:port[,host:port...]`; host names are resolved now, once.
pub fn parse_addrs(list: &str) -> Result<Vec<SocketAddr>, AddrError> {
    let mut addrs = Vec::new();
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let mut resolved = part
            .to_socket_addrs()
            .map_err(|source| AddrError::Resolve {
                addr: part.to_owned(),
                source,
            })?;
        let first = resolved
            .next()
            .ok_or_else(|| AddrError::NoAddress(part.to_owned()))?;
        addrs.push(first);
    }
    if addrs.is_empty() {
        return Err(AddrError::Empty);
    }
    Ok(addrs)
}

/// How to reach the service.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// One or more replicas; calls are spread over them.
    pub addrs: Vec<SocketAddr>,
    /// Deadline sent as `grpc-timeout`; `None` for no deadline.
    pub timeout: Option<Duration>,
    /// TLS settings; `None` for plaintext.
    pub tls: Option<ClientTls>,
    /// Bearer token sent on every call.
    pub token: Option<String>,
    /// Request compression.
    pub compress: Option<Compression>,
}

/// Client-side TLS.
#[derive(Debug, Clone)]
pub struct ClientTls {
    /// CA certificate (PEM) the server's certificate must chain to.
    pub ca: PathBuf,
    /// Client certificate and key (PEM) for mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// Name the server certificate must carry.
    pub server_name: String,
}

impl ClientOptions {
    /// Options for one plaintext address with no deadline.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addrs: vec![addr],
            ..Self::default()
        }
    }
}

fn rustls_config(tls: &ClientTls) -> Result<rustls::ClientConfig, TlsError> {
    let roots = load_roots(&tls.ca)?;
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    let mut config = match &tls.identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?,
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Connection flags shared by the example clients (`#[command(flatten)]` them).
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Server address, or several separated by commas to spread calls over replicas.
    #[arg(long, env = "BASIC_ADDR", default_value = crate::config::DEFAULT_ADDR)]
    pub addr: String,

    /// Deadline for each call, in seconds (sent as grpc-timeout).
    #[arg(long)]
    pub timeout_secs: Option<f64>,

    /// Use TLS, trusting this CA certificate (PEM).
    #[arg(long)]
    pub tls_ca: Option<PathBuf>,

    /// Client certificate (PEM) for mutual TLS; needs --tls-key and --tls-ca.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Name to check the server certificate against.
    #[arg(long, default_value = "localhost")]
    pub tls_server_name: String,

    /// Bearer token sent on every call.
    #[arg(long, env = "BASIC_AUTH_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// Compress requests (and accept compressed replies).
    #[arg(long, value_enum)]
    pub compress: Option<Compression>,
}

/// Request compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Compression {
    Gzip,
    Zstd,
}

impl ClientArgs {
    /// Checks the flags and builds the client.
    pub fn connect(&self) -> Result<BasicServiceClient, ClientError> {
        let timeout = match self.timeout_secs {
            None => None,
            Some(secs) => Some(
                Duration::try_from_secs_f64(secs)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or(ClientError::Timeout(secs))?,
            ),
        };
        let options = ClientOptions {
            addrs: parse_addrs(&self.addr)?,
            timeout,
            tls: self.tls_ca.clone().map(|ca| ClientTls {
                ca,
                identity: self.tls_cert.clone().zip(self.tls_key.clone()),
                server_name: self.tls_server_name.clone(),
            }),
            token: self.token.clone(),
            compress: self.compress,
        };
        connect(&options)
    }
}

/// Why a client could not be built from its flags.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--addr")]
    Addr(#[from] AddrError),
    #[error("--timeout-secs must be a positive number of seconds, got {0}")]
    Timeout(f64),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("--token is not a valid header value")]
    Token,
}

/// A status as one readable line, with its root cause when the client made it:
/// `UNKNOWN: client error (Connect): Connection refused (os error 111)`.
pub fn describe(status: &volo_grpc::Status) -> String {
    let mut line = crate::status::code_name(status.code()).to_owned();
    if !status.message().is_empty() {
        line.push_str(": ");
        line.push_str(status.message());
    }
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(status);
    let mut root = None;
    while let Some(err) = cause {
        root = Some(err);
        cause = err.source();
    }
    if let Some(root) = root.map(ToString::to_string) {
        if !line.contains(&root) {
            line.push_str(": ");
            line.push_str(&root);
        }
    }
    line
}

/// Builds a client; it connects lazily, on the first call.
pub fn connect(options: &ClientOptions) -> Result<BasicServiceClient, ClientError> {
    let mut builder = BasicServiceClientBuilder::new(volo_gen::basic::v1::BASIC_SERVICE_RPCS.name)
        .rpc_timeout(options.timeout);
    if let Some(tls) = &options.tls {
        builder = builder.tls_config(ClientTlsConfig::new(
            tls.server_name.clone(),
            rustls_config(tls)?,
        ));
    }
    if let Some(compress) = options.compress {
        let encoding = match compress {
            Compression::Gzip => CompressionEncoding::Gzip(Some(GzipConfig::default())),
            Compression::Zstd => CompressionEncoding::Zstd(Some(ZstdConfig::default())),
        };
        builder = builder
            .send_compressions(vec![encoding])
            .accept_compressions(vec![
                CompressionEncoding::Gzip(Some(GzipConfig::default())),
                CompressionEncoding::Zstd(Some(ZstdConfig::default())),
            ]);
    }
    let token = match &options.token {
        None => None,
        Some(token) => Some(
            format!("Bearer {token}")
                .parse::<MetadataValue<Ascii>>()
                .map_err(|_| ClientError::Token)?,
        ),
    };
    let builder = builder.layer_outer_front(BearerLayer(token.map(Arc::new)));
    Ok(match options.addrs.as_slice() {
        [one] => builder.address(*one).build(),
        many => builder
            .load_balance(WeightedRandomBalance::<()>::new())
            .discover(StaticDiscover::from(many.to_vec()))
            .build(),
    })
}

/// Adds `authorization: Bearer <token>` to every call (nothing when there is no token).
#[derive(Debug, Clone)]
pub struct BearerLayer(Option<Arc<MetadataValue<Ascii>>>);

impl<S> motore::layer::Layer<S> for BearerLayer {
    type Service = Bearer<S>;

    fn layer(self, inner: S) -> Self::Service {
        Bearer {
            inner,
            value: self.0,
        }
    }
}

/// See [`BearerLayer`].
#[derive(Debug, Clone)]
pub struct Bearer<S> {
    inner: S,
    value: Option<Arc<MetadataValue<Ascii>>>,
}

impl<S, T> motore::Service<ClientContext, Request<T>> for Bearer<S>
where
    S: motore::Service<ClientContext, Request<T>> + Send + Sync,
    T: Send,
{
    type Response = S::Response;
    type Error = S::Error;

    async fn call(
        &self,
        cx: &mut ClientContext,
        mut req: Request<T>,
    ) -> Result<S::Response, S::Error> {
        if let Some(value) = &self.value {
            req.metadata_mut()
                .insert("authorization", MetadataValue::clone(value));
        }
        self.inner.call(cx, req).await
    }
}
