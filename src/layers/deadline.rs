//! Deadlines: the caller's `grpc-timeout` bounds the whole call, streams included.
//!
//! volo's client timeout only covers the response headers, and the server has no
//! deadline for a stream's body. This layer bounds both: the handler call, and the
//! response body, which it ends with DEADLINE_EXCEEDED trailers when time is up. Ending
//! the body drops the stream, which stops the work behind it (Background's workers,
//! a Talk conversation).

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use volo_grpc::{Request, Response, Status, body::BoxBody, context::ServerContext};

use super::GrpcService;

super::plain_layer! {
    /// Enforces `grpc-timeout` on every call.
    DeadlineLayer => Deadline
}

fn expired() -> Status {
    Status::deadline_exceeded("deadline exceeded")
}

impl<S: GrpcService> motore::Service<ServerContext, Request<BoxBody>> for Deadline<S> {
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        let timeout = req
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_grpc_timeout);
        let Some(timeout) = timeout else {
            return self.inner.call(cx, req).await;
        };
        // Far-future deadlines (up to 10^8 hours) must not overflow `Instant`.
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return self.inner.call(cx, req).await;
        };
        let resp = tokio::time::timeout_at(deadline, self.inner.call(cx, req))
            .await
            .map_err(|_| expired())??;
        Ok(resp.map(|inner| {
            BoxBody::new(DeadlineBody {
                inner: Some(inner),
                sleep: Box::pin(tokio::time::sleep_until(deadline)),
            })
        }))
    }
}

/// A body that ends with DEADLINE_EXCEEDED when its deadline passes.
struct DeadlineBody {
    /// Dropped when the deadline passes, which cancels the work producing it.
    inner: Option<BoxBody>,
    sleep: Pin<Box<Sleep>>,
}

impl Body for DeadlineBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // The deadline first: a body that is always ready must not outrun it.
        if this.sleep.as_mut().poll(cx).is_ready() {
            this.inner = None;
            return Poll::Ready(Some(Ok(Frame::trailers(
                expired().to_header_map().unwrap_or_default(),
            ))));
        }
        Pin::new(inner).poll_frame(cx)
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

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits and a unit (H M S m u n).
pub fn parse_grpc_timeout(value: &str) -> Option<Duration> {
    let (digits, unit) = value.split_at_checked(value.len().checked_sub(1)?)?;
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse_grpc_timeout("2H"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Some(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("5S"), Some(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Some(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Some(Duration::from_nanos(99_999_999))
        );
    }

    #[test]
    fn malformed_values_are_ignored() {
        for bad in ["", "S", "5", "5s", "123456789S", "-5S", "5 S", "1.5S", "é"] {
            assert_eq!(parse_grpc_timeout(bad), None, "{bad:?}");
        }
    }
}
