//! The access log: one `tracing` event per RPC, when its final status is known.
//!
//! Fields: method, peer, request id, gRPC code, duration. The tracking layer
//! ([`super::track`]) captures an [`Entry`] when a call starts and writes it when the
//! call ends: for streams, when the response body ends (or is dropped), so the duration
//! and code cover the whole stream. Events use the target `access`, so
//! `RUST_LOG=info,access=off` silences them on their own (and then no entry is made).

use std::time::Duration;

use pilota::FastStr;
use volo_grpc::Code;

use crate::status::code_name;

/// Whether access log events would be written at all.
pub fn enabled() -> bool {
    tracing::enabled!(target: "access", tracing::Level::WARN)
}

/// What the log line needs, captured when the call starts.
pub struct Entry {
    pub method: FastStr,
    /// From the socket (never from a header), formatted once per connection.
    pub peer: FastStr,
    pub request_id: FastStr,
}

impl Entry {
    /// Writes the line of a call that ended with `code` after `elapsed`.
    pub fn write(self, code: Code, elapsed: Duration) {
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        let code_name = code_name(code);
        // Strings and an integer, not `%display` values: no `fmt` work per field.
        let (method, peer, request_id) = (
            self.method.as_str(),
            self.peer.as_str(),
            self.request_id.as_str(),
        );
        if matches!(
            code,
            Code::Ok | Code::Cancelled | Code::InvalidArgument | Code::NotFound
        ) {
            tracing::info!(target: "access", method, peer, request_id, code = code_name, duration_us = micros, "rpc");
        } else {
            tracing::warn!(target: "access", method, peer, request_id, code = code_name, duration_us = micros, "rpc");
        }
    }
}
