//! `basic.v1.BasicService` on CloudWeGo volo-grpc: Hello (unary), Talk (bidirectional
//! stream, ELIZA) and Background (server stream of simulated calls), each reply a
//! CloudEvent where the contract says so.
//!
//! # Layout
//!
//! The public surface is what the binary, the examples and the tests use: the server
//! ([`BasicServer`], [`Config`]), the generated service's handler ([`handlers`]), the
//! plain modules ([`eliza`], [`simulator`], [`cloudevent`]), and the client helpers
//! ([`client`], [`tls`], [`status`]). The rest is internal:
//!
//! - `server`: assembles the layers and services ([`BasicServer`]) and serves them on
//!   connections from `net`; the binary and the integration tests both start the server
//!   through it.
//! - `shutdown`: the phases of a graceful shutdown, in one place.
//! - [`handlers`]: thin implementations of the generated `BasicService` trait.
//! - `layers`: middleware around every call. `track` (request id, deadline, access log,
//!   metrics, panics, the end of streams at shutdown; one response wrapper), `admit`
//!   (auth, load shedding), and `message_size` on the HTTP body.
//! - `call` and `route`: what the layers share about a call, and the route table.
//! - `dispatch`: from an HTTP request to the layer stack (replaces volo's `MetaService`);
//!   `router`: from the layer stack to the service of the call's route (replaces volo's
//!   `Router`).
//! - `net`: accepting connections (TLS handshakes off the accept path, accept retry, a
//!   connection cap) and serving HTTP/2 and HTTP/1.1 on them (preface deadline, idle
//!   timeout); `coalesce` joins ready response messages into one DATA frame.
//! - `codec`: request bodies to handler calls and replies to response bodies for
//!   `BasicService` (its own unary decoding and reply encoding; volo-grpc's `RecvStream`
//!   for Talk and its encoder for compressed replies).
//! - `web`: the HTTP front: gRPC-Web (tonic-web), CORS, the web page at `/`, and HTTP 415
//!   for requests that are not gRPC.
//! - `health`: `grpc.health.v1.Health`. `prometheus`: the `/metrics` endpoint.
//! - `reflection`: gRPC server reflection (v1 and v1alpha) from the generated
//!   descriptors, so grpcurl and similar tools work without the `.proto` files.
//! - [`tls`]: rustls configuration from PEM files, for the server and the client.
//! - [`eliza`]: the 1966 DOCTOR program, a plain synchronous engine.
//! - [`simulator`]: the simulated service calls behind Background.
//! - [`cloudevent`]: CloudEvent envelopes and the `Any`/`Timestamp` helpers.
//! - [`config`] and [`error`]: validated settings and start-up errors; [`logging`]: how
//!   the binary logs (a writer thread that batches, a cheap text line format).
//! - [`client`] and [`status`]: what the examples share (connecting, printing statuses).
//!
//! Message types and stubs come from the `volo-gen` crate, generated from `idl/`.

pub(crate) mod call;
pub mod client;
pub mod cloudevent;
pub(crate) mod coalesce;
pub(crate) mod codec;
pub mod config;
pub(crate) mod dispatch;
pub mod eliza;
pub mod error;
pub mod handlers;
pub(crate) mod health;
pub(crate) mod layers;
pub mod logging;
pub(crate) mod net;
pub(crate) mod prometheus;
pub(crate) mod reflection;
pub(crate) mod route;
pub(crate) mod router;
pub(crate) mod server;
pub(crate) mod shutdown;
pub mod simulator;
pub mod status;
pub mod tls;
pub(crate) mod web;

pub use config::{Args, Config, LogFormat};
pub use error::ServerError;
pub use handlers::BasicHandler;
pub use server::BasicServer;
pub use simulator::Simulator;
