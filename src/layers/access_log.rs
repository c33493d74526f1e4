//! The access log: one `tracing` event per RPC, when its final status is known.
//!
//! Fields: method, peer, request id, gRPC code, duration. For streams the event is
//! written when the response body ends (or is dropped), so the duration and code cover
//! the whole stream, not just its start; the code is the one the client saw or caused
//! ([`CallFate::resolve`]: CANCELLED for a client's reset, DEADLINE_EXCEEDED when its
//! deadline ran out), not what trailers nobody received said. Events use the target `access`, so
//! `RUST_LOG=info,access=off` silences them on their own.

use std::time::Instant;

use pilota::FastStr;
use volo::context::Context as _;
use volo_grpc::{
    Code, Request, Response, Status, body::BoxBody, context::ServerContext,
    metadata::HEADER_TRANS_REMOTE_ADDR,
};

use super::{
    GrpcService, RequestId,
    body::{CallFate, Observed, OnEnd},
};

super::plain_layer! {
    /// Logs every call once it ends.
    AccessLogLayer => AccessLog
}

/// What the log line needs, captured when the call starts.
struct Entry {
    method: FastStr,
    peer: Peer,
    request_id: FastStr,
    start: Instant,
}

impl Entry {
    fn write(self, code: Code) {
        let micros = u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        let code_name = code_name(code);
        if matches!(
            code,
            Code::Ok | Code::Cancelled | Code::InvalidArgument | Code::NotFound
        ) {
            tracing::info!(target: "access", method = %self.method, peer = %self.peer, request_id = %self.request_id, code = %code_name, duration_us = micros, "rpc");
        } else {
            tracing::warn!(target: "access", method = %self.method, peer = %self.peer, request_id = %self.request_id, code = %code_name, duration_us = micros, "rpc");
        }
    }
}

impl<S: GrpcService> motore::Service<ServerContext, Request<BoxBody>> for AccessLog<S> {
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        mut req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        // Filtered out (e.g. RUST_LOG=info,access=off): no entry, no body wrapper.
        if !tracing::enabled!(target: "access", tracing::Level::WARN) {
            return self.inner.call(cx, req).await;
        }
        let entry = Entry {
            method: cx.rpc_info().method().clone(),
            peer: peer(cx, &req),
            request_id: req
                .extensions()
                .get::<RequestId>()
                .map(|id| id.0.clone())
                .unwrap_or_else(|| FastStr::from_static_str("-")),
            start: Instant::now(),
        };
        let fate = CallFate::of(req.extensions_mut());
        let on_end = OnEnd::new(move |code| entry.write(fate.resolve(code)));
        match self.inner.call(cx, req).await {
            Ok(resp) => Ok(resp.map(|body| Observed::boxed(body, on_end))),
            Err(status) => {
                on_end.finish(status.code());
                Err(status)
            }
        }
    }
}

/// The caller's address: volo's caller address when the client is volo, else the `rip`
/// header, which [`crate::net`] sets from the socket (replacing any a client sent).
/// Kept unformatted until the line is written.
enum Peer {
    Addr(volo::net::Address),
    Header(FastStr),
    Unknown,
}

impl std::fmt::Display for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peer::Addr(addr) => addr.fmt(f),
            Peer::Header(text) => f.write_str(text),
            Peer::Unknown => f.write_str("-"),
        }
    }
}

fn peer(cx: &ServerContext, req: &Request<BoxBody>) -> Peer {
    if let Some(addr) = cx.rpc_info().caller().address() {
        return Peer::Addr(addr);
    }
    req.metadata()
        .get(HEADER_TRANS_REMOTE_ADDR)
        .and_then(|v| v.to_str().ok())
        .map_or(Peer::Unknown, |v| Peer::Header(FastStr::new(v)))
}

/// The canonical upper-case name of a gRPC code, as other gRPC stacks log it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
