//! Deadlines: the caller's `grpc-timeout` bounds the whole call, streams included.
//!
//! volo's client timeout only covers the response headers, and the server has no
//! deadline for a stream's body. This layer bounds both: the handler call, and the
//! response body, which it ends with DEADLINE_EXCEEDED trailers when time is up. Ending
//! the body drops the stream, which stops the work behind it (Background's workers,
//! a Talk conversation). The deadline is also recorded in the call's [`CallFate`], so
//! a client whose own timer reset the stream first is still logged DEADLINE_EXCEEDED.
//!
//! A malformed `grpc-timeout` is refused with INTERNAL "malformed grpc-timeout: ...",
//! as grpc-go does, rather than ignored (which would run the call with no deadline).

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};
use volo_grpc::{Request, Response, Status, body::BoxBody, context::ServerContext};

use super::{GrpcService, body::CallFate};

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
        let Some(value) = req.metadata().get("grpc-timeout") else {
            return self.inner.call(cx, req).await;
        };
        let timeout = value
            .to_str()
            .map_err(|_| BadTimeout::NotAscii)
            .and_then(parse_grpc_timeout)
            .map_err(|err| Status::internal(format!("malformed grpc-timeout: {err}")))?;
        // Far-future deadlines (up to 10^8 hours) must not overflow `Instant`.
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            return self.inner.call(cx, req).await;
        };
        if let Some(fate) = req.extensions().get::<std::sync::Arc<CallFate>>() {
            fate.set_deadline(deadline, timeout);
        }
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

/// Why a `grpc-timeout` value is malformed (the wording follows grpc-go's).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadTimeout {
    #[error("timeout string is too short: {0:?}")]
    TooShort(String),
    #[error("timeout string is too long: {0:?}")]
    TooLong(String),
    #[error("timeout unit is not recognized: {0:?}")]
    Unit(String),
    #[error("timeout value is not a number: {0:?}")]
    Digits(String),
    #[error("timeout value is not ASCII")]
    NotAscii,
}

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits and a unit (H M S m u n).
pub fn parse_grpc_timeout(value: &str) -> Result<Duration, BadTimeout> {
    let (digits, unit) = match value.char_indices().last() {
        Some((i, _)) => value.split_at(i),
        None => ("", ""),
    };
    if digits.is_empty() {
        return Err(BadTimeout::TooShort(value.to_owned()));
    }
    if digits.len() > 8 {
        return Err(BadTimeout::TooLong(value.to_owned()));
    }
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BadTimeout::Digits(value.to_owned()));
    }
    // At most 8 digits: fits in a u64, and no unit below can overflow it.
    let n: u64 = digits
        .parse()
        .map_err(|_| BadTimeout::Digits(value.to_owned()))?;
    Ok(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return Err(BadTimeout::Unit(value.to_owned())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses() {
        assert_eq!(parse_grpc_timeout("2H"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_grpc_timeout("3M"), Ok(Duration::from_secs(180)));
        assert_eq!(parse_grpc_timeout("5S"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_grpc_timeout("250m"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_grpc_timeout("7u"), Ok(Duration::from_micros(7)));
        assert_eq!(
            parse_grpc_timeout("99999999n"),
            Ok(Duration::from_nanos(99_999_999))
        );
    }

    #[test]
    fn malformed_values_are_errors_that_say_why() {
        for (bad, why) in [
            ("", "too short"),
            ("S", "too short"),
            ("123456789S", "too long"),
            ("5s", "unit"),
            ("5", "too short"),
            ("55", "unit"),
            ("-5S", "not a number"),
            ("5 S", "not a number"),
            ("1.5S", "not a number"),
            ("é", "too short"),
            ("1é", "unit"),
        ] {
            let err = parse_grpc_timeout(bad).unwrap_err();
            assert!(err.to_string().contains(why), "{bad:?}: {err}");
        }
    }
}
