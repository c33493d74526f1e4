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
