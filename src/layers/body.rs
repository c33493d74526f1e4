//! Response-body wrappers shared by layers: seeing a call's final gRPC code.
//!
//! A unary error is visible as `Err(Status)` from the inner service, but a stream's
//! status travels in the trailers at the end of the body, long after `call` returned.
//! [`Observed`] watches the body and reports the final code exactly once: from the
//! trailers, from a body error, or `CANCELLED` if the body is dropped before its end
//! (client gone, connection reset).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use volo_grpc::{Code, Status, body::BoxBody};

pin_project_lite::pin_project! {
    /// A body that calls `on_end` with the call's final gRPC code, once.
    pub struct Observed<F: FnOnce(Code)> {
        #[pin]
        inner: BoxBody,
        on_end: Option<F>,
    }

    impl<F: FnOnce(Code)> PinnedDrop for Observed<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some(on_end) = this.project().on_end.take() {
                on_end(Code::Cancelled);
            }
        }
    }
}

impl<F: FnOnce(Code) + Send + 'static> Observed<F> {
    /// Wraps `inner`; `on_end` runs when the final status is known.
    pub fn boxed(inner: BoxBody, on_end: F) -> BoxBody {
        BoxBody::new(Observed {
            inner,
            on_end: Some(on_end),
        })
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
            if let Some(on_end) = this.on_end.take() {
                on_end(code);
            }
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
