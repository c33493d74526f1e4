//! The call pipeline: from a gRPC request to its handler and back, in one place.
//!
//! [`Pipeline::call`] is the whole life of a call, in the order it happens:
//!
//! 1. **Resolve** ([`Call`]): the route (from the generated route table, [`routes`]),
//!    the peer (from the connection), the request id ([`request_id`]), the deadline
//!    ([`deadline`]) and the trace (the caller's trace context and the call's span,
//!    [`crate::ops::traces`]), once, carried from here as one value.
//! 2. **Admit** ([`admit`]): the bearer token and load shedding.
//! 3. **Read** ([`request`]): the request body, checked message by message as it
//!    streams in (size, decompression, waits, a client that resets the call).
//! 4. **Run** ([`codec`]): the handler of the route, through the `serve_*` function
//!    volo-gen generated for its service, which picks the stream shape; the codec
//!    decodes the request and encodes the replies. Bounded by the deadline; a panic is
//!    INTERNAL.
//! 5. **Answer** ([`response`]): the response body, ended early at the deadline, at the
//!    end of the shutdown grace period or on a panic in a stream.
//! 6. **End** ([`End`]): the one end-of-call observer. It gets the code the call ended
//!    with, once (or CANCELLED if the call is dropped first), and records it: metrics, the
//!    access log line, the call's span ended, the place under the in-flight limit given
//!    back.
//!
//! Nothing here knows an RPC by name: the route table and the `serve_*` functions come
//! from `idl/`, and the server binds each generated service to its handler
//! ([`Handlers`]).

mod admit;
mod codec;
mod deadline;
pub(crate) mod json;
mod request;
mod request_id;
mod response;
mod routes;
pub mod status;
pub(crate) mod wire;

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use futures::FutureExt as _;
use pilota::FastStr;
use tokio::time::Instant;
use volo_grpc::{Code, Response, Status, body::BoxBody};

pub(crate) use admit::Admission;
pub(crate) use codec::Incoming;
pub(crate) use request::Waits;
pub(crate) use routes::Route;
pub(crate) use wire::{Codec, Protocol, Wire};

use crate::{
    front::ConnectionInfo,
    ops::{
        access_log,
        metrics::RpcMetrics,
        shutdown::StreamsEnd,
        traces::{CallTrace, Traces},
    },
};

/// The handlers of the server's services: runs a call of `route` on its service's
/// handler, through the generated `serve_*` function of that service.
pub(crate) trait Handlers: Send + Sync + 'static {
    fn serve(
        &self,
        route: Route,
        calls: Incoming,
    ) -> impl Future<Output = Result<Response<BoxBody>, Status>> + Send;
}

/// Everything a call passes through; one per server, shared by every connection.
pub(crate) struct Pipeline<H> {
    pub(crate) handlers: H,
    pub(crate) admission: Admission,
    /// Largest request message, after decompression.
    pub(crate) max_message_bytes: usize,
    pub(crate) waits: Waits,
    pub(crate) metrics: Arc<RpcMetrics>,
    pub(crate) streams_end: StreamsEnd,
    pub(crate) traces: Traces,
    /// Message types, for calls in JSON.
    pub(crate) json: json::Schema,
}

impl<H: Handlers> Pipeline<H> {
    /// Runs one gRPC call from `conn`, which arrived as `wire` (gRPC-Web and Connect
    /// arrive here translated to gRPC; their messages may be JSON).
    pub(crate) async fn call(
        &self,
        req: http::Request<BoxBody>,
        conn: ConnectionInfo,
        wire: Wire,
    ) -> http::Response<BoxBody> {
        let (mut head, body) = req.into_parts();
        // 1. Resolve.
        let start = Instant::now();
        let route = Route::of_path(head.uri.path());
        let request_id = request_id::RequestId::of(&head.headers);
        let deadline = deadline::of(&head.headers, start);
        let trace = self
            .traces
            .start(&head.headers, route, conn.peer_addr, &conn.peer);
        let call = Arc::new(Call {
            route,
            path: match route {
                Some(route) => FastStr::from_static_str(route.path()),
                None => FastStr::new(head.uri.path()),
            },
            peer: conn.peer,
            protocol: wire.protocol,
            request_id: request_id.id,
            start,
            deadline: deadline.as_ref().ok().copied().flatten(),
            abandoned: AtomicBool::new(false),
            place: OnceLock::new(),
            metrics: Arc::clone(&self.metrics),
            trace,
            #[cfg(test)]
            recorded: std::sync::Mutex::default(),
        });
        self.metrics.begin(route);
        let end = End(Some(Arc::clone(&call)));
        let json = match (wire.codec, route) {
            (Codec::Json, Some(route)) => self.json.method(route),
            _ => None,
        };
        let result = match self.run(
            &call,
            &mut head,
            body,
            deadline,
            conn.open_calls,
            wire,
            json,
        ) {
            Err(status) => Err(status),
            Ok(running) => running.await,
        };
        // 5. Answer (6. End, for a call that ends here).
        let mut resp = match result {
            Ok(resp) => {
                let mut resp = resp.into_http();
                let content_type = match json {
                    None => wire::CONTENT_TYPE_GRPC,
                    Some(_) => wire::CONTENT_TYPE_GRPC_JSON,
                };
                resp.headers_mut()
                    .insert(http::header::CONTENT_TYPE, content_type);
                let ends = response::Ends {
                    deadline: call.deadline.map(|(at, _)| at),
                    streams_end: self.streams_end.clone(),
                };
                let resp = resp.map(|body| response::Tracked::boxed(body, ends, end));
                match json {
                    None => resp,
                    Some(types) => {
                        resp.map(|body| json::JsonOut::boxed(body, types.output.clone()))
                    }
                }
            }
            Err(status) => {
                end.finish(status.code());
                status.to_http()
            }
        };
        let headers = resp.headers_mut();
        headers.insert(wire::REQUEST_ID, request_id.value);
        // (Connect says what it accepts in its own headers, per call.)
        if wire.protocol != Protocol::Connect {
            headers.insert(wire::ACCEPT_ENCODING, wire::ACCEPTED);
        }
        resp
    }

    /// Steps 2 to 4: admits the call and starts its handler; the future ends with the
    /// handler's response, bounded by the deadline, a panic answered INTERNAL. `json`: the
    /// RPC's types, when its messages are JSON.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        call: &Arc<Call>,
        head: &mut http::request::Parts,
        body: BoxBody,
        deadline: Result<Option<(Instant, Duration)>, Status>,
        open_calls: usize,
        wire: Wire,
        json: Option<&json::Method>,
    ) -> Result<impl Future<Output = Result<Response<BoxBody>, Status>> + Send + '_, Status> {
        deadline?;
        // 2. Admit.
        self.admission.admit(call, &head.headers, open_calls)?;
        let Some(route) = call.route else {
            return Err(status::unknown_method(&call.path));
        };
        // 3. Read.
        let encoding = wire::request_encoding(&mut head.headers)?;
        // Replies are compressed as the request was, as grpc-go does: a client that
        // only lists what it could decompress (every grpcio client does) is not sent
        // compressed replies it did not ask for, which would cost CPU on both ends.
        // JSON replies are not compressed (they are written after the codec).
        let reply_encoding = encoding.filter(|_| wire.compressed_replies && json.is_none());
        let wait = if route.method.client_streaming {
            self.waits
                .stream_idle
                .map(|after| request::Wait::new(after, request::WaitFor::NextMessage))
        } else {
            self.waits
                .request
                .map(|after| request::Wait::new(after, request::WaitFor::Request))
        };
        let body = request::Limited::boxed(
            body,
            self.max_message_bytes,
            encoding,
            wait,
            Arc::clone(call),
        );
        let body = match json {
            None => body,
            Some(types) => json::JsonIn::boxed(body, types.input.clone()),
        };
        // 4. Run.
        let calls = Incoming::new(
            std::mem::take(&mut head.headers),
            std::mem::take(&mut head.extensions),
            body,
            reply_encoding,
            // Only streams' handlers outlive their call's setup and add to its span.
            call.trace
                .recording()
                .filter(|_| route.method.server_streaming)
                .cloned(),
        );
        let serving = AssertUnwindSafe(self.handlers.serve(route, calls)).catch_unwind();
        let deadline = call.deadline.map(|(at, _)| at);
        Ok(async move {
            let outcome = match deadline {
                None => serving.await,
                // The timer is boxed, so that calls without a deadline carry none.
                Some(at) => Box::pin(tokio::time::timeout_at(at, serving))
                    .await
                    .unwrap_or_else(|_| Ok(Err(status::deadline_exceeded()))),
            };
            // A panic: the hook has logged it; the client gets INTERNAL.
            outcome.unwrap_or_else(|_| Err(status::internal()))
        })
    }
}

/// One call, as resolved when its request arrived; shared by its request body (which
/// notes a client that resets it) and its end ([`End`]).
#[derive(Debug)]
pub(crate) struct Call {
    /// `None`: the path names no RPC of this server.
    route: Option<Route>,
    /// The request path (the route's, or the unknown path as sent).
    path: FastStr,
    /// The connection's peer, from the socket.
    peer: FastStr,
    protocol: Protocol,
    request_id: FastStr,
    start: Instant,
    /// `grpc-timeout`: when, and how early a client's own timer may fire before it.
    deadline: Option<(Instant, Duration)>,
    /// The client reset the call or its connection broke: no status can reach it.
    abandoned: AtomicBool,
    /// The place this call holds under the in-flight limit, once admitted.
    place: OnceLock<Arc<admit::Places>>,
    metrics: Arc<RpcMetrics>,
    trace: CallTrace,
    /// The codes the call was recorded with, for unit tests.
    #[cfg(test)]
    recorded: std::sync::Mutex<Vec<Code>>,
}

impl Call {
    /// Marks the call abandoned by its client.
    fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }

    /// Records the end of the call, `seen` being the code its response carried.
    fn record(&self, seen: Code) {
        let code = final_code(seen, self.abandoned.load(Ordering::Acquire), self.deadline);
        let elapsed = self.start.elapsed();
        if let Some(places) = self.place.get() {
            places.give_back();
        }
        self.metrics
            .end(self.route, self.protocol, code, elapsed.as_secs_f64());
        self.trace.end(code, elapsed);
        access_log::write(
            &self.path,
            &self.peer,
            &self.request_id,
            code,
            elapsed,
            self.trace.ids(),
        );
        #[cfg(test)]
        self.recorded.lock().unwrap().push(code);
    }
}

#[cfg(test)]
impl Call {
    /// A call on no route, with no deadline, that records into [`Call::recorded`].
    pub(crate) fn for_test() -> Arc<Call> {
        Arc::new(Call {
            route: None,
            path: FastStr::from_static_str("/test/Call"),
            peer: FastStr::from_static_str("-"),
            protocol: Protocol::Grpc,
            request_id: FastStr::from_static_str("test"),
            start: Instant::now(),
            deadline: None,
            abandoned: AtomicBool::new(false),
            place: OnceLock::new(),
            metrics: Arc::default(),
            trace: CallTrace::Off,
            recorded: std::sync::Mutex::default(),
        })
    }

    /// The codes recorded so far.
    pub(crate) fn recorded(&self) -> Vec<Code> {
        self.recorded.lock().unwrap().clone()
    }

    pub(crate) fn is_abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }
}

/// The end-of-call observer: records the call once, with the code it ended with, or
/// with CANCELLED when dropped first (the client left, the connection broke).
pub(crate) struct End(Option<Arc<Call>>);

impl End {
    /// Records `code` now (later reports and the drop do nothing).
    pub(crate) fn finish(mut self, code: Code) {
        self.fire(code);
    }

    fn fire(&mut self, code: Code) {
        if let Some(call) = self.0.take() {
            call.record(code);
        }
    }
}

impl Drop for End {
    fn drop(&mut self) {
        self.fire(Code::Cancelled);
    }
}

/// The code a call ends with, given the `seen` one (trailers, error, or CANCELLED for a
/// dropped call), whether its client `abandoned` it, and its `deadline` (with how early
/// a client's own timer may fire before it): a call its client abandoned or dropped
/// ends CANCELLED, or DEADLINE_EXCEEDED when that was the deadline's doing; any other
/// code stands.
fn final_code(seen: Code, abandoned: bool, deadline: Option<(Instant, Duration)>) -> Code {
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
        // A Talk stream reset by the client: the requests end, the handler finishes,
        // and OK trailers go nowhere.
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
