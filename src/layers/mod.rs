//! motore middleware around every RPC, one file per layer.
//!
//! Each layer is a pair: `FooLayer` (configuration) and `Foo<S>` (the service wrapping
//! `S`). They run on `Request<BoxBody>` (before decoding), so one stack serves every
//! service of the server; `message_size` sits lower, on the HTTP body (a tower layer).
//! [`crate::server`] assembles them; the order a request passes through is written
//! there once.

/// Declares a layer with no configuration: the unit struct `$layer`, which wraps a
/// service `S` in `$service { inner: S }`. The file then implements the service.
macro_rules! plain_layer {
    ($(#[$doc:meta])* $layer:ident => $service:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $layer;

        impl<S> motore::layer::Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(self, inner: S) -> Self::Service {
                $service { inner }
            }
        }

        #[doc = concat!("The service [`", stringify!($layer), "`] wraps around `S`.")]
        #[derive(Debug, Clone)]
        pub struct $service<S> {
            inner: S,
        }
    };
}
use plain_layer;

pub mod access_log;
pub mod auth;
pub mod body;
pub mod catch_panic;
pub mod deadline;
pub mod load_shed;
pub mod message_size;
pub mod metrics;
pub mod request_id;

pub use access_log::AccessLogLayer;
pub use auth::AuthLayer;
pub use catch_panic::CatchPanicLayer;
pub use deadline::DeadlineLayer;
pub use load_shed::LoadShedLayer;
pub use message_size::MessageSizeLayer;
pub use metrics::MetricsLayer;
pub use request_id::{RequestId, RequestIdLayer};

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
