//! The tracking layer: sees every call from start to end, refusals included.
//!
//! When a call starts it takes the request id ([`super::request_id`]), the deadline
//! (`grpc-timeout`, [`super::deadline`]) and the access log entry
//! ([`super::access_log`]), and counts the call in the metrics
//! ([`super::rpc_metrics`]). Its response body is wrapped once ([`Tracked`]), which ends
//! it early when it must: at the deadline (DEADLINE_EXCEEDED), at the end of the
//! shutdown grace period (UNAVAILABLE), or when the handler panics (INTERNAL). When the
//! call ends, with the code the client saw or caused ([`final_code`]), it writes the log
//! line, records the metrics and gives back the call's place under the in-flight limit.
//!
//! The handler call itself is bounded by the deadline too, and a panic in it (a unary
//! handler, or a stream's setup) is answered INTERNAL; the panic hook logs it.

use std::{panic::AssertUnwindSafe, sync::Arc, time::Duration};

use futures::FutureExt;
use pilota::FastStr;
use tokio::time::Instant;
use volo::context::Context as _;
use volo_grpc::{Code, Request, Response, Status, body::BoxBody, context::ServerContext};

use super::{
    GrpcService,
    access_log::{self, Entry},
    body::{Ends, OnEnd, Tracked},
    deadline,
    request_id::{self, RequestId},
    rpc_metrics::RpcMetrics,
};
use crate::{call::Call, net::ConnectionInfo, route::Route, shutdown::StreamsEnd, status};

/// Tracks every call; see the module docs.
#[derive(Clone)]
pub struct TrackLayer {
    metrics: Arc<RpcMetrics>,
    streams_end: StreamsEnd,
}

impl TrackLayer {
    /// Tracking with its own metric handles; open streams end when `streams_end` comes.
    pub fn new(streams_end: StreamsEnd) -> Self {
        Self {
            metrics: Arc::default(),
            streams_end,
        }
    }
}

impl<S> motore::layer::Layer<S> for TrackLayer {
    type Service = Track<S>;

    fn layer(self, inner: S) -> Self::Service {
        Track {
            inner,
            metrics: self.metrics,
            streams_end: self.streams_end,
        }
    }
}

/// See [`TrackLayer`].
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    metrics: Arc<RpcMetrics>,
    streams_end: StreamsEnd,
}

/// What is done when a call ends.
struct Ending {
    call: Arc<Call>,
    start: Instant,
    deadline: Option<(Instant, Duration)>,
    log: Option<Entry>,
    metrics: Arc<RpcMetrics>,
}

impl Ending {
    fn finish(self, seen: Code) {
        let code = final_code(seen, self.call.abandoned(), self.deadline);
        let elapsed = self.start.elapsed();
        self.call.end();
        self.metrics
            .end(self.call.route(), code, elapsed.as_secs_f64());
        if let Some(entry) = self.log {
            entry.write(code, elapsed);
        }
    }
}

impl<S: GrpcService> motore::Service<ServerContext, Request<BoxBody>> for Track<S> {
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        mut req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        let start = Instant::now();
        let call = match req.extensions().get::<Arc<Call>>() {
            Some(call) => Arc::clone(call),
            None => {
                // Made by the HTTP front; here only if something else feeds this stack.
                let call = Arc::new(Call::new(Route::of_path(cx.rpc_info().method())));
                req.extensions_mut().insert(Arc::clone(&call));
                call
            }
        };
        let RequestId { id, value: echo } = RequestId::of(req.metadata());
        let deadline = deadline::of(req.metadata(), start);
        let deadline_at = deadline.as_ref().ok().copied().flatten().map(|(at, _)| at);
        self.metrics.begin(call.route());
        let ending = Ending {
            call,
            start,
            deadline: deadline.as_ref().ok().copied().flatten(),
            log: access_log::enabled().then(|| Entry {
                method: cx.rpc_info().method().clone(),
                peer: req
                    .extensions()
                    .get::<ConnectionInfo>()
                    .map_or(FastStr::from_static_str("-"), |c| c.peer.clone()),
                request_id: id,
            }),
            metrics: Arc::clone(&self.metrics),
        };
        let on_end = OnEnd::new(move |code| ending.finish(code));
        let result = match deadline {
            Err(status) => Err(status),
            Ok(deadline) => {
                let calling = AssertUnwindSafe(self.inner.call(cx, req)).catch_unwind();
                let outcome = match deadline {
                    None => calling.await,
                    Some((at, _)) => tokio::time::timeout_at(at, calling)
                        .await
                        .unwrap_or_else(|_| Ok(Err(status::deadline_exceeded()))),
                };
                // A panic: the hook has logged it; the client gets INTERNAL.
                outcome.unwrap_or_else(|_| Err(status::internal()))
            }
        };
        match result {
            Ok(mut resp) => {
                resp.metadata_mut().insert(request_id::HEADER, echo);
                let ends = Ends {
                    deadline: deadline_at,
                    streams_end: self.streams_end.clone(),
                };
                Ok(resp.map(|body| Tracked::boxed(body, ends, on_end)))
            }
            Err(mut status) => {
                on_end.finish(status.code());
                status.metadata_mut().insert(request_id::HEADER, echo);
                Err(status)
            }
        }
    }
}

/// The code a call ends with, given the `seen` one (trailers, error, or CANCELLED for a
/// dropped call), whether its client `abandoned` it, and its `deadline` (with how early
/// a client's own timer may fire before it): a call its client abandoned or dropped
/// ends CANCELLED, or DEADLINE_EXCEEDED when that was the deadline's doing; any other
/// code stands.
///
/// The trailers are not the whole truth: when a client resets a Talk stream, volo's
/// decoder takes the reset for a clean end of the requests, the handler finishes, and
/// the body ends with OK trailers that nobody receives ([`Call::abandoned`]).
pub fn final_code(seen: Code, abandoned: bool, deadline: Option<(Instant, Duration)>) -> Code {
    if seen != Code::Cancelled && !abandoned {
        return seen;
    }
    match deadline {
        Some((at, slack)) if Instant::now() + slack >= at => Code::DeadlineExceeded,
        _ => Code::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_of_calls_the_client_kept_stand() {
        for code in [Code::Ok, Code::NotFound, Code::DeadlineExceeded] {
            assert_eq!(final_code(code, false, None), code);
        }
        assert_eq!(final_code(Code::Cancelled, false, None), Code::Cancelled);
    }

    #[test]
    fn an_abandoned_call_is_cancelled_whatever_its_trailers_said() {
        // A Talk stream reset by the client: volo ends the requests cleanly, the
        // handler finishes, and OK trailers go nowhere.
        assert_eq!(final_code(Code::Ok, true, None), Code::Cancelled);
        assert_eq!(final_code(Code::Unknown, true, None), Code::Cancelled);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_call_at_its_deadline_exceeded_it() {
        let timeout = Duration::from_secs(1);
        let deadline = Some((Instant::now() + timeout, deadline::slack(timeout)));
        // Long before the deadline: the client cancelled.
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(final_code(Code::Ok, true, deadline), Code::Cancelled);
        // Within a tenth of the timeout before it: the client's deadline timer fired.
        tokio::time::advance(Duration::from_millis(450)).await;
        assert_eq!(final_code(Code::Ok, true, deadline), Code::DeadlineExceeded);
        // A call dropped after its deadline, without a reset seen, too.
        let past = Some((Instant::now(), deadline::slack(timeout)));
        assert_eq!(
            final_code(Code::Cancelled, false, past),
            Code::DeadlineExceeded
        );
    }
}
