//! Client construction shared by the example programs and the integration tests.
//!
//! Wraps the generated volo client builder: one address, or several spread by volo's
//! static discovery and weighted-random balancing.

use std::{
    net::{SocketAddr, ToSocketAddrs},
    time::Duration,
};

use volo::{discovery::StaticDiscover, loadbalance::random::WeightedRandomBalance};
pub use volo_gen::basic::v1::BasicServiceClient;
use volo_gen::basic::v1::BasicServiceClientBuilder;

/// Why an `--addr` value was refused.
#[derive(Debug, thiserror::Error)]
pub enum AddrError {
    #[error("no address given")]
    Empty,
    #[error("cannot resolve {addr:?}: {source}")]
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
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// One or more replicas; calls are spread over them.
    pub addrs: Vec<SocketAddr>,
    /// Deadline sent as `grpc-timeout`; `None` for no deadline.
    pub timeout: Option<Duration>,
}

impl ClientOptions {
    /// Options for one address with no deadline.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addrs: vec![addr],
            timeout: None,
        }
    }
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
        };
        Ok(connect(&options))
    }
}

/// Why a client could not be built from its flags.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--addr: {0}")]
    Addr(#[from] AddrError),
    #[error("--timeout-secs must be a positive number of seconds, got {0}")]
    Timeout(f64),
}

/// A status as one readable line, with its root cause when the client made it:
/// `UNKNOWN: client error (Connect): Connection refused (os error 111)`.
pub fn describe(status: &volo_grpc::Status) -> String {
    let mut line = crate::layers::access_log::code_name(status.code()).to_owned();
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
pub fn connect(options: &ClientOptions) -> BasicServiceClient {
    let builder =
        BasicServiceClientBuilder::new("basic.v1.BasicService").rpc_timeout(options.timeout);
    match options.addrs.as_slice() {
        [one] => builder.address(*one).build(),
        many => builder
            .load_balance(WeightedRandomBalance::<()>::new())
            .discover(StaticDiscover::from(many.to_vec()))
            .build(),
    }
}
