//! The connection front: from a socket to a call. Accepting connections, serving HTTP on
//! them, and sorting their requests (gRPC, gRPC-Web, the web page), in place of volo's
//! `Server` loop.
//!
//! volo's accept loop does the TLS handshake inline, so one slow or stalled client
//! stops every other connection from being accepted, and a single `accept()` error (out
//! of file descriptors) ends the server. [`Acceptor`] replaces it: a task accepts TCP
//! connections (at most `max_connections` open at once; at the cap it waits, and new
//! clients wait in the listen backlog), retries after a pause when `accept` fails, and
//! runs each TLS handshake in its own task with a timeout. At shutdown it closes the
//! listener without resetting the connections the kernel had already accepted for it.
//!
//! [`serve_connections`] then runs HTTP/2 or HTTP/1.1 on each connection (hyper),
//! which lets the server own what volo's loop does not offer: a deadline for the
//! connection preface (a connection that never speaks is closed), an idle-connection
//! timeout (no call open for a while: GOAWAY, then close), a peer address taken from
//! the socket rather than from a header, a bound on request headers, and a graceful
//! shutdown that can be bounded.
//!
//! - `accept`: [`Acceptor`], the accept loop, TLS handshakes, closing the listener.
//! - `conn`: [`serve_connections`], HTTP settings, HTTP/2 or HTTP/1.1 by the first
//!   bytes, idle tracking.
//! - `batch`: a busy connection's writes wait one scheduler turn, so replies that
//!   finish together leave in one write; a new HTTP/2 connection's opening leaves with
//!   its first reply.
//! - `coalesce`: response messages that are ready together leave in one DATA frame.
//! - `requests`: what each request is ([`Front`]): a gRPC call for the pipeline
//!   ([`crate::call`]), gRPC-Web (`grpc_web`, behind `cors`), the web page (`page`), or
//!   HTTP 415.
//!
//! The rustls configuration the acceptor is given comes from [`crate::tls`];
//! [`crate::server`] wires the halves together.

mod accept;
mod batch;
mod coalesce;
mod conn;
mod connect;
mod cors;
mod grpc_web;
mod page;
mod requests;

pub(crate) use accept::Acceptor;
pub(crate) use conn::{ConnectionInfo, serve_connections};
pub use cors::{AllowedOrigins, BadOrigin};
pub(crate) use requests::Front;
