//! `basic.v1.BasicService` on CloudWeGo volo-grpc: Hello (unary), Talk (bidirectional
//! stream, ELIZA) and Background (server stream of simulated calls), each reply a
//! CloudEvent where the contract says so.
//!
//! # Layout
//!
//! - [`server`]: builds the volo `Server` (layers, services) and owns graceful shutdown.
//!   The binary and the integration tests both start the server through [`BasicServer`].
//! - [`handlers`]: thin implementations of the generated `BasicService` trait.
//! - [`layers`]: middleware around every call (request ids, access log, metrics, panics,
//!   auth, load shedding, deadlines, message size).
//! - [`health`]: `grpc.health.v1.Health`. [`metrics`]: the Prometheus endpoint.
//! - [`reflection`]: gRPC server reflection (v1 and v1alpha) from the generated descriptors,
//!   so grpcurl and similar tools work without the `.proto` files.
//! - [`net`]: accepting connections (TLS handshakes off the accept path, accept retry)
//!   and serving HTTP/2 and HTTP/1.1 on them (preface deadline, idle timeout).
//! - [`tls`]: rustls configuration from PEM files, for the server and the client.
//! - [`eliza`]: the 1966 DOCTOR program, a plain synchronous engine.
//! - [`simulator`]: the simulated service calls behind Background.
//! - [`cloudevent`]: CloudEvent envelopes and the `Any`/`Timestamp` helpers.
//! - [`web`]: the HTTP front: gRPC-Web (tonic-web), CORS, the web page at `/`, and
//!   HTTP 415 for requests that are not gRPC.
//! - [`config`] and [`error`]: validated settings and start-up errors.
//!
//! Message types and stubs come from the `volo-gen` crate, generated from `idl/`.

pub mod call;
pub mod client;
pub mod cloudevent;
pub mod coalesce;
pub mod config;
pub mod dispatch;
pub mod eliza;
pub mod error;
pub mod handlers;
pub mod health;
pub mod layers;
pub mod net;
pub mod prometheus;
pub mod reflection;
pub mod route;
pub mod server;
pub mod shutdown;
pub mod simulator;
pub mod status;
pub mod tls;
pub mod web;

pub use config::{Args, Config, LogFormat};
pub use error::ServerError;
pub use handlers::BasicHandler;
pub use reflection::Reflection;
pub use server::BasicServer;
pub use simulator::Simulator;
