//! Panic recovery: a panicking handler gives INTERNAL and the server keeps serving.
//!
//! Catches panics both in the call itself (unary handlers, stream setup) and while the
//! response body is produced (stream handlers run inside the body). The panic message
//! is logged, not sent: clients see only `INTERNAL: internal error`.

use std::{
    panic::AssertUnwindSafe,
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::FutureExt;
use http_body::{Body, Frame, SizeHint};
use volo_grpc::{Request, Response, Status, body::BoxBody, context::ServerContext};

use super::GrpcService;

super::plain_layer! {
    /// Turns panics into INTERNAL.
    CatchPanicLayer => CatchPanic
}

fn internal() -> Status {
    Status::internal("internal error")
}

fn log_panic(payload: &(dyn std::any::Any + Send)) {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(non-string panic payload)");
    tracing::error!(panic = message, "handler panicked; answered INTERNAL");
}

impl<S: GrpcService> motore::Service<ServerContext, Request<BoxBody>> for CatchPanic<S> {
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        match AssertUnwindSafe(self.inner.call(cx, req))
            .catch_unwind()
            .await
        {
            Ok(result) => {
                result.map(|resp| resp.map(|inner| BoxBody::new(PanicSafe { inner: Some(inner) })))
            }
            Err(payload) => {
                log_panic(payload.as_ref());
                Err(internal())
            }
        }
    }
}

/// A body that ends with INTERNAL trailers if producing it panics.
struct PanicSafe {
    /// `None` once the inner body panicked; it is never polled again.
    inner: Option<BoxBody>,
}

impl Body for PanicSafe {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll_frame(cx))) {
            Ok(polled) => polled,
            Err(payload) => {
                log_panic(payload.as_ref());
                self.inner = None;
                Poll::Ready(Some(Ok(Frame::trailers(
                    internal().to_header_map().unwrap_or_default(),
                ))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map(|b| b.size_hint())
            .unwrap_or_default()
    }
}
