//! motore middleware around every RPC, one file per layer.
//!
//! Each layer is a pair: `FooLayer` (configuration) and `Foo<S>` (the service wrapping
//! `S`). They run on `Request<BoxBody>` (before decoding), so one stack serves every
//! service of the server. [`crate::server`] assembles them; the order a request passes
//! through is written there once.

pub mod access_log;
pub mod body;
pub mod catch_panic;
pub mod request_id;

pub use access_log::AccessLogLayer;
pub use catch_panic::CatchPanicLayer;
pub use request_id::{RequestId, RequestIdLayer};

use volo_grpc::{body::BoxBody, context::ServerContext};

/// What every layer here wraps: a whole-server service before message decoding.
pub trait GrpcService:
    motore::Service<
        ServerContext,
        volo_grpc::Request<BoxBody>,
        Response = volo_grpc::Response<BoxBody>,
        Error = volo_grpc::Status,
    > + Send
    + Sync
{
}

impl<S> GrpcService for S where
    S: motore::Service<
            ServerContext,
            volo_grpc::Request<BoxBody>,
            Response = volo_grpc::Response<BoxBody>,
            Error = volo_grpc::Status,
        > + Send
        + Sync
{
}
