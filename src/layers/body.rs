//! Response-body wrappers shared by layers: seeing a call's final gRPC code.
//!
//! A unary error is visible as `Err(Status)` from the inner service, but a stream's
//! status travels in the trailers at the end of the body, long after `call` returned.
//! [`Observed`] watches the body and reports the final code exactly once through an
//! [`OnEnd`]: from the trailers, from a body error, or `CANCELLED` if the body (or,
//! earlier, the call itself) is dropped before its end (client gone, connection reset).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use volo_grpc::{Code, Status, body::BoxBody};

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
}
