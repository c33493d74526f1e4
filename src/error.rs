//! Errors of the library: starting and running the server.
//!
//! Per-call errors are `volo_grpc::Status` values chosen where the cause is known
//! (handlers, the call pipeline); this module is for failures that stop the server.

use std::path::PathBuf;

pub use crate::{call::json::SchemaError, ops::reflection::ReflectionError};
use crate::{config::ConfigError, eliza::ScriptError};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read ELIZA script {path}")]
    ReadScript {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid ELIZA script {path}")]
    Script {
        path: PathBuf,
        #[source]
        source: ScriptError,
    },
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Reflection(#[from] ReflectionError),
    #[error(transparent)]
    Json(#[from] SchemaError),
    #[error("cannot set up traces: {0}")]
    Traces(String),
    #[error("cannot listen")]
    Listen(#[source] std::io::Error),
}
