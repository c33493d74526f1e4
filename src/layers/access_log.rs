//! The access log: one `tracing` event per RPC, when its final status is known.
//!
//! Fields: method, peer, request id, gRPC code, duration. The tracking layer
//! ([`super::track`]) captures an [`Entry`] when a call starts and writes it when the
//! call ends: for streams, when the response body ends (or is dropped), so the duration
//! and code cover the whole stream. Events use the target `access`, so
//! `RUST_LOG=info,access=off` silences them on their own (and then no entry is made).

use std::time::Duration;

use pilota::FastStr;
use volo::net::Address;
use volo_grpc::Code;

use crate::status::code_name;

/// Whether access log events would be written at all.
pub fn enabled() -> bool {
    tracing::enabled!(target: "access", tracing::Level::WARN)
}

/// What the log line needs, captured when the call starts.
pub struct Entry {
    pub method: FastStr,
    /// From the socket (never from a header); `None` on a Unix socket without a name.
    pub peer: Option<Address>,
    pub request_id: FastStr,
}

impl Entry {
    /// Writes the line of a call that ended with `code` after `elapsed`.
    pub fn write(self, code: Code, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let code_name = code_name(code);
        let peer = Peer(self.peer.as_ref());
        if matches!(
            code,
            Code::Ok | Code::Cancelled | Code::InvalidArgument | Code::NotFound
        ) {
            tracing::info!(target: "access", method = %self.method, %peer, request_id = %self.request_id, code = %code_name, duration_us = micros, "rpc");
        } else {
            tracing::warn!(target: "access", method = %self.method, %peer, request_id = %self.request_id, code = %code_name, duration_us = micros, "rpc");
        }
    }
}

/// The peer address, `-` when unknown; formatted only when the line is written.
struct Peer<'a>(Option<&'a Address>);

impl std::fmt::Display for Peer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(addr) => addr.fmt(f),
            None => f.write_str("-"),
        }
    }
}
