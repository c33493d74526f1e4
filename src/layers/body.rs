//! Body wrappers shared by layers: seeing a call's final gRPC code.
//!
//! A unary error is visible as `Err(Status)` from the inner service, but a stream's
//! status travels in the trailers at the end of the body, long after `call` returned.
//! [`Observed`] watches the body and reports the final code exactly once through an
//! [`OnEnd`]: from the trailers, from a body error, or `CANCELLED` if the body (or,
//! earlier, the call itself) is dropped before its end (client gone, connection reset).
//!
//! The trailers are not the whole truth: when a client resets a Talk stream, volo's
//! decoder takes the reset for a clean end of the requests, the handler finishes, and
//! the body ends with OK trailers that nobody receives. [`CallFate`] carries what only
//! the transport knows (the client abandoned the call; when its deadline falls), and
//! [`CallFate::resolve`] turns the code a layer saw into the one the client saw or
//! caused. [`watch_transport`] wraps the raw request body to notice the abandonment.

use std::{
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use tokio::time::Instant;
use volo_grpc::{Code, Status, body::BoxBody};

/// What the transport knows about one call that its response cannot tell.
///
/// Shared through the request's extensions: [`crate::web`] creates it with the call
/// and watches the request body ([`watch_transport`]); the deadline layer records the
/// deadline; the access log and metrics [`resolve`](CallFate::resolve) the final code.
#[derive(Debug, Default)]
pub struct CallFate {
    /// The client reset the stream or the connection broke: no status can reach it.
    abandoned: AtomicBool,
    /// The call's deadline and how early a client's own timer may fire before it.
    deadline: OnceLock<(Instant, Duration)>,
}

/// A client's deadline timer starts before ours (its clock runs from before the headers
/// were sent), so its reset arrives at about our deadline, sometimes a little before.
/// A reset this close to the deadline is the deadline's doing: 20 ms, or a tenth of the
/// timeout if larger.
fn slack(timeout: Duration) -> Duration {
    (timeout / 10).max(Duration::from_millis(20))
}

impl CallFate {
    /// The call's fate from `extensions`, created there if no one has yet.
    pub fn of(extensions: &mut http::Extensions) -> Arc<CallFate> {
        Arc::clone(extensions.get_or_insert_with(|| Arc::new(CallFate::default())))
    }

    /// Marks the call abandoned by its client.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }

    /// Records the deadline (`timeout` from now); the first record wins.
    pub fn set_deadline(&self, deadline: Instant, timeout: Duration) {
        let _ = self.deadline.set((deadline, slack(timeout)));
    }

    /// Whether the deadline has come (or is within the slack of a client's timer).
    fn deadline_reached(&self) -> bool {
        self.deadline
            .get()
            .is_some_and(|&(deadline, slack)| Instant::now() + slack >= deadline)
    }

    /// The code a call ends with, given the `seen` one (trailers, error, or CANCELLED
    /// for a dropped call): a call its client abandoned or dropped ends CANCELLED, or
    /// DEADLINE_EXCEEDED when that was the deadline's doing; any other code stands.
    pub fn resolve(&self, seen: Code) -> Code {
        if seen != Code::Cancelled && !self.abandoned.load(Ordering::Acquire) {
            return seen;
        }
        if self.deadline_reached() {
            Code::DeadlineExceeded
        } else {
            Code::Cancelled
        }
    }
}

/// Wraps a request body straight from the connection: a transport error in it (the
/// client reset the stream, the connection broke) marks the call abandoned.
pub fn watch_transport(inner: BoxBody, fate: Arc<CallFate>) -> BoxBody {
    BoxBody::new(Transport { inner, fate })
}

pin_project_lite::pin_project! {
    /// See [`watch_transport`].
    struct Transport {
        #[pin]
        inner: BoxBody,
        fate: Arc<CallFate>,
    }
}

impl Body for Transport {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Err(_))) = &polled {
            this.fate.abandon();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Runs a callback once with a call's final gRPC code; if dropped before that (the
/// call's future or its body was dropped: client gone, connection reset), with
/// `CANCELLED`. Create it before awaiting the inner service, so that a call cancelled
/// before its response exists is still accounted for.
pub struct OnEnd<F: FnOnce(Code)>(Option<F>);

impl<F: FnOnce(Code)> OnEnd<F> {
    /// Arms `on_end`.
    pub fn new(on_end: F) -> Self {
        Self(Some(on_end))
    }

    /// Reports `code` now (later reports and the drop do nothing).
    pub fn finish(mut self, code: Code) {
        self.fire(code);
    }

    fn fire(&mut self, code: Code) {
        if let Some(on_end) = self.0.take() {
            on_end(code);
        }
    }
}

impl<F: FnOnce(Code)> Drop for OnEnd<F> {
    fn drop(&mut self) {
        self.fire(Code::Cancelled);
    }
}

pin_project_lite::pin_project! {
    /// A body that reports the call's final gRPC code through its [`OnEnd`], once.
    pub struct Observed<F: FnOnce(Code)> {
        #[pin]
        inner: BoxBody,
        on_end: OnEnd<F>,
    }
}

impl<F: FnOnce(Code) + Send + 'static> Observed<F> {
    /// Wraps `inner`; `on_end` fires when the final status is known, or on drop.
    pub fn boxed(inner: BoxBody, on_end: OnEnd<F>) -> BoxBody {
        BoxBody::new(Observed { inner, on_end })
    }
}

impl<F: FnOnce(Code)> Body for Observed<F> {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(code_of),
            Poll::Ready(Some(Err(status))) => Some(status.code()),
            // A body that ends without trailers sent no status: the client sees an error.
            Poll::Ready(None) => Some(Code::Unknown),
            Poll::Pending => None,
        };
        if let Some(code) = code {
            this.on_end.fire(code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The gRPC code in `headers` (`grpc-status`), UNKNOWN if absent or malformed.
pub fn code_of(headers: &HeaderMap) -> Code {
    headers
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i32>().ok())
        .map(Code::from_i32)
        .unwrap_or(Code::Unknown)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    fn recorder() -> (Arc<Mutex<Vec<Code>>>, impl FnOnce(Code) + Send + 'static) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        (seen, move |code| sink.lock().unwrap().push(code))
    }

    #[test]
    fn a_finished_call_reports_its_code_once() {
        let (seen, f) = recorder();
        OnEnd::new(f).finish(Code::Ok);
        assert_eq!(*seen.lock().unwrap(), vec![Code::Ok]);
    }

    #[test]
    fn a_call_dropped_before_its_end_reports_cancelled() {
        // E.g. the client resets the stream while the handler is still running.
        let (seen, f) = recorder();
        drop(OnEnd::new(f));
        assert_eq!(*seen.lock().unwrap(), vec![Code::Cancelled]);
    }

    #[tokio::test]
    async fn the_trailers_decide_the_code() {
        use http_body_util::BodyExt;
        let (seen, f) = recorder();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "5".parse().unwrap());
        let inner = BoxBody::new(http_body_util::StreamBody::new(futures::stream::iter([
            Ok::<_, Status>(Frame::data(Bytes::from_static(b"x"))),
            Ok(Frame::trailers(trailers)),
        ])));
        let body = Observed::boxed(inner, OnEnd::new(f));
        body.collect().await.unwrap();
        assert_eq!(*seen.lock().unwrap(), vec![Code::NotFound]);
    }

    #[test]
    fn codes_of_calls_the_client_kept_stand() {
        let fate = CallFate::default();
        for code in [Code::Ok, Code::NotFound, Code::DeadlineExceeded] {
            assert_eq!(fate.resolve(code), code);
        }
        assert_eq!(fate.resolve(Code::Cancelled), Code::Cancelled);
    }

    #[test]
    fn an_abandoned_call_is_cancelled_whatever_its_trailers_said() {
        // A Talk stream reset by the client: volo ends the requests cleanly, the
        // handler finishes, and OK trailers go nowhere.
        let fate = CallFate::default();
        fate.abandon();
        assert_eq!(fate.resolve(Code::Ok), Code::Cancelled);
        assert_eq!(fate.resolve(Code::Unknown), Code::Cancelled);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_call_at_its_deadline_exceeded_it() {
        let fate = CallFate::default();
        let timeout = Duration::from_secs(1);
        fate.set_deadline(Instant::now() + timeout, timeout);
        fate.abandon();
        // Long before the deadline: the client cancelled.
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(fate.resolve(Code::Ok), Code::Cancelled);
        // Within a tenth of the timeout before it: the client's deadline timer fired.
        tokio::time::advance(Duration::from_millis(450)).await;
        assert_eq!(fate.resolve(Code::Ok), Code::DeadlineExceeded);
        // A call dropped after its deadline, without a reset seen, too.
        let dropped = CallFate::default();
        dropped.set_deadline(Instant::now(), timeout);
        assert_eq!(dropped.resolve(Code::Cancelled), Code::DeadlineExceeded);
    }

    #[tokio::test]
    async fn a_transport_error_in_the_request_marks_the_call_abandoned() {
        use http_body_util::BodyExt;
        let fate = Arc::new(CallFate::default());
        let inner = BoxBody::new(http_body_util::StreamBody::new(futures::stream::iter([
            Ok::<_, Status>(Frame::data(Bytes::from_static(b"x"))),
            Err(Status::cancelled("stream reset")),
        ])));
        let mut body = watch_transport(inner, Arc::clone(&fate));
        assert!(body.frame().await.unwrap().is_ok());
        assert_eq!(fate.resolve(Code::Ok), Code::Ok);
        assert!(body.frame().await.unwrap().is_err());
        assert_eq!(fate.resolve(Code::Ok), Code::Cancelled);
    }
}
