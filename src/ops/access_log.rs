//! The access log: one `tracing` event per RPC, when its final status is known.
//!
//! Fields: method, peer, request id, gRPC code, duration. The call pipeline writes the
//! line when the call ends ([`crate::call`]): for streams, when the response body ends
//! (or is dropped), so the duration and code cover the whole stream. Events use the
//! target `access`, so `RUST_LOG=info,access=off` silences them on their own.

use std::time::Duration;

use volo_grpc::Code;

use crate::call::status::code_name;

/// Writes the line of a call to `method` from `peer` that ended with `code` after
/// `elapsed` (nothing if the `access` target is off).
pub(crate) fn write(method: &str, peer: &str, request_id: &str, code: Code, elapsed: Duration) {
    if !tracing::enabled!(target: "access", tracing::Level::WARN) {
        return;
    }
    let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
    let code_name = code_name(code);
    // Strings and an integer, not `%display` values: no `fmt` work per field.
    if matches!(
        code,
        Code::Ok | Code::Cancelled | Code::InvalidArgument | Code::NotFound
    ) {
        tracing::info!(target: "access", method, peer, request_id, code = code_name, duration_us = micros, "rpc");
    } else {
        tracing::warn!(target: "access", method, peer, request_id, code = code_name, duration_us = micros, "rpc");
    }
}
