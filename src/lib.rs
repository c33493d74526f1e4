//! `basic.v1.BasicService` on CloudWeGo volo: Hello (unary), Talk (bidirectional stream,
//! ELIZA) and Background (server stream of simulated calls), each reply a CloudEvent
//! where the contract says so.
//!
//! # Layout
//!
//! A request goes through four parts, each a folder:
//!
//! - `front`: the connection front. Accepting connections (TLS handshakes off the accept
//!   path, a connection cap), serving HTTP/2 and HTTP/1.1 on them (preface deadline,
//!   idle timeout, write batching), and sorting each request: a gRPC call, gRPC-Web
//!   (tonic-web, CORS), the web page, or HTTP 415.
//! - `call`: the call pipeline. Resolves a call once (route, peer, deadline, request id),
//!   admits it (auth, load shedding), reads its request body under the limits, runs its
//!   handler through the code generated from `idl/`, and records its end once (metrics,
//!   access log). Also the wire constants and the statuses the server ends calls with.
//! - `service`: the service itself. The `BasicService` handler ([`BasicHandler`])
//!   (thin: one file per RPC), and the plain modules it calls: [`eliza`] (the 1966
//!   DOCTOR program), [`simulator`] (the simulated calls behind Background) and
//!   [`cloudevent`] (envelopes and the `Any`/`Timestamp` helpers).
//! - `ops`: what operators use. Health, server reflection, Prometheus metrics, the
//!   access log, logging ([`logging`]) and the phases of a graceful shutdown.
//!
//! `server` binds each generated service to its handler and starts the parts
//! ([`BasicServer`]); the binary and the integration tests both start the server through
//! it. [`config`] and [`error`] hold the validated settings and start-up errors; [`tls`]
//! the rustls configuration; [`client`] and [`status`] what the examples share.
//!
//! Message types, service traits and the per-RPC tables (names, paths, stream shapes)
//! come from the `volo-gen` crate, generated from `idl/`: no RPC is named by hand here.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

mod call;
pub mod client;
pub mod config;
pub mod error;
mod front;
mod ops;
mod server;
mod service;
pub mod tls;

pub use call::status;
pub use config::{Args, Config, LogFormat};
pub use error::ServerError;
pub use ops::logging;
pub use server::BasicServer;
pub use service::{BasicHandler, ReplyStream, Simulator, cloudevent, eliza, simulator};
