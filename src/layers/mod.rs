//! Middleware around every RPC.
//!
//! Two motore layers run on `Request<BoxBody>` (before decoding), so one stack serves
//! every service of the server:
//!
//! - [`track`]: sees each call from start to end: request id, deadline, access log,
//!   metrics, panics, and the end of open streams at shutdown. Its concerns live in
//!   their own modules ([`request_id`], [`deadline`], [`access_log`], [`rpc_metrics`]),
//!   and its one response wrapper in [`body`].
//! - [`admit`]: auth (bearer token) and load shedding.
//!
//! [`message_size`] sits lower, on the HTTP body (a tower layer). [`crate::server`]
//! assembles them; the order a request passes through is written there once.

pub mod access_log;
pub mod admit;
pub mod body;
pub mod deadline;
pub mod message_size;
pub mod request_id;
pub mod rpc_metrics;
pub mod track;

pub use admit::AdmitLayer;
pub use message_size::MessageSizeLayer;
pub use track::TrackLayer;

use volo_grpc::{body::BoxBody, context::ServerContext};

/// What every motore layer here wraps: a whole-server service before message decoding.
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
