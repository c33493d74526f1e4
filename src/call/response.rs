//! The one wrapper around every gRPC response body: it ends the body early with a
//! status when it must (deadline, shutdown, panic) and hands the call's final code to
//! its [`End`], once, when the body ends.
//!
//! A unary error is visible as `Err(Status)` from the handler, but a stream's status
//! travels in the trailers at the end of the body, long after the handler returned,
//! and a stream can be ended by something other than its handler. [`Tracked`] is
//! created once per call by the pipeline ([`super::Pipeline::call`]) and does both jobs,
//! so a response passes through one wrapper, not one per concern.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    pin::Pin,
    task::{Context, Poll, Waker},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::{
    sync::futures::OwnedNotified,
    time::{Instant, Sleep},
};
use volo_grpc::{Code, Status, body::BoxBody};

use super::{End, status};
use crate::ops::shutdown::StreamsEnd;

/// When a response body must end before its handler ends it.
pub(crate) struct Ends {
    /// The call's deadline (`grpc-timeout`): DEADLINE_EXCEEDED.
    pub(crate) deadline: Option<Instant>,
    /// The end of the shutdown grace period: UNAVAILABLE.
    pub(crate) streams_end: StreamsEnd,
}

/// A response body, tracked; see the module docs.
pub(crate) struct Tracked {
    /// `None` once ended early; dropping it stops the work behind it (Background's
    /// workers, a Talk conversation). It is never polled again.
    inner: Option<BoxBody>,
    /// Made on the first poll, so a call without a deadline allocates no timer.
    deadline: Option<Pin<Box<Sleep>>>,
    deadline_at: Option<Instant>,
    streams_end: StreamsEnd,
    /// Registered the first time the body waits (a unary reply never does).
    woken_at_end: Option<Pin<Box<OwnedNotified>>>,
    /// The waker `woken_at_end` was last polled with. Polling it takes the signal's
    /// lock, shared by every stream, so it is polled again only when the waker changes.
    registered: Option<Waker>,
    end: Option<End>,
}

impl Tracked {
    /// Wraps `inner`; `end` gets the final code.
    pub(crate) fn boxed(inner: BoxBody, ends: Ends, end: End) -> BoxBody {
        BoxBody::new(Tracked {
            inner: Some(inner),
            deadline: None,
            deadline_at: ends.deadline,
            streams_end: ends.streams_end,
            woken_at_end: None,
            registered: None,
            end: Some(end),
        })
    }
}

impl Tracked {
    /// Hands `code` to the call's end (once).
    fn finish(&mut self, code: Code) {
        if let Some(end) = self.end.take() {
            end.finish(code);
        }
    }

    /// Ends the body now with `status` in its trailers.
    fn end_with(&mut self, status: Status) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        self.inner = None;
        self.finish(status.code());
        Poll::Ready(Some(Ok(Frame::trailers(
            status.to_header_map().unwrap_or_default(),
        ))))
    }

    /// Whether the deadline has passed (registering the timer's wake-up if not).
    fn deadline_passed(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(at) = self.deadline_at else {
            return false;
        };
        let sleep = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        sleep.as_mut().poll(cx).is_ready()
    }

    /// Whether streams must end (registering the wake-up if not).
    fn streams_ended(&mut self, cx: &mut Context<'_>) -> bool {
        if self
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            // Registered with this waker already: the signal will wake it.
            return self.streams_end.has_come();
        }
        let streams_end = &self.streams_end;
        let wait = self
            .woken_at_end
            .get_or_insert_with(|| Box::pin(streams_end.wait()));
        if wait.as_mut().poll(cx).is_ready() {
            return true;
        }
        self.registered = Some(cx.waker().clone());
        self.streams_end.has_come()
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        // Every field is Unpin (the timer and the wait are boxed).
        let this = self.get_mut();
        if this.inner.is_none() {
            return Poll::Ready(None);
        }
        // The deadline first: a body that is always ready must not outrun it.
        if this.deadline_passed(cx) {
            return this.end_with(status::deadline_exceeded());
        }
        if this.streams_end.has_come() {
            return this.end_with(status::shutting_down());
        }
        // Stream handlers run inside the body: a panic there ends the call with
        // INTERNAL (the panic hook has logged it) and the server keeps serving.
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let polled =
            match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll_frame(cx))) {
                Ok(polled) => polled,
                Err(_) => return this.end_with(status::internal()),
            };
        let code = match &polled {
            Poll::Ready(Some(Ok(frame))) => frame.trailers_ref().map(status::code_of),
            Poll::Ready(Some(Err(status))) => Some(status.code()),
            // A body that ends without trailers sent no status: the client sees an error.
            Poll::Ready(None) => Some(Code::Unknown),
            Poll::Pending => {
                // A stream waiting for its next message: woken if the server's grace
                // period ends first.
                if this.streams_ended(cx) {
                    return this.end_with(status::shutting_down());
                }
                None
            }
        };
        if let Some(code) = code {
            this.finish(code);
        }
        polled
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

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use http::HeaderMap;
    use http_body_util::BodyExt;

    use super::*;

    use crate::call::Call;

    /// A call and its end; the call keeps the codes it was recorded with.
    fn recorder() -> (Arc<Call>, End) {
        let call = Call::for_test();
        let end = End(Some(Arc::clone(&call)));
        (call, end)
    }

    fn no_ends() -> Ends {
        Ends {
            deadline: None,
            streams_end: StreamsEnd::default(),
        }
    }

    /// A body that yields one message, then waits forever.
    fn stalled() -> BoxBody {
        let chunk = futures::stream::iter([Ok::<_, Status>(Frame::data(Bytes::from_static(b"x")))]);
        BoxBody::new(http_body_util::StreamBody::new(futures::StreamExt::chain(
            chunk,
            futures::stream::pending(),
        )))
    }

    async fn trailers_code(body: &mut BoxBody) -> Code {
        loop {
            let frame = body.frame().await.unwrap().unwrap();
            if let Some(trailers) = frame.trailers_ref() {
                return status::code_of(trailers);
            }
        }
    }

    #[test]
    fn a_finished_call_reports_its_code_once() {
        let (seen, on_end) = recorder();
        on_end.finish(Code::Ok);
        assert_eq!(seen.recorded(), vec![Code::Ok]);
    }

    #[test]
    fn a_call_dropped_before_its_end_reports_cancelled() {
        // E.g. the client resets the stream while the handler is still running.
        let (seen, on_end) = recorder();
        drop(on_end);
        assert_eq!(seen.recorded(), vec![Code::Cancelled]);
    }

    #[tokio::test]
    async fn the_trailers_decide_the_code() {
        let (seen, on_end) = recorder();
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", "5".parse().unwrap());
        let inner = BoxBody::new(http_body_util::StreamBody::new(futures::stream::iter([
            Ok::<_, Status>(Frame::data(Bytes::from_static(b"x"))),
            Ok(Frame::trailers(trailers)),
        ])));
        let body = Tracked::boxed(inner, no_ends(), on_end);
        body.collect().await.unwrap();
        assert_eq!(seen.recorded(), vec![Code::NotFound]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stream_past_its_deadline_ends_deadline_exceeded() {
        let (seen, on_end) = recorder();
        let ends = Ends {
            deadline: Some(Instant::now() + Duration::from_secs(1)),
            streams_end: StreamsEnd::default(),
        };
        let mut body = Tracked::boxed(stalled(), ends, on_end);
        assert_eq!(trailers_code(&mut body).await, Code::DeadlineExceeded);
        assert!(body.frame().await.is_none());
        assert_eq!(seen.recorded(), vec![Code::DeadlineExceeded]);
    }

    #[tokio::test]
    async fn a_waiting_stream_ends_unavailable_when_streams_end() {
        let (seen, on_end) = recorder();
        let streams_end = StreamsEnd::default();
        let ends = Ends {
            deadline: None,
            streams_end: streams_end.clone(),
        };
        let mut body = Tracked::boxed(stalled(), ends, on_end);
        assert!(body.frame().await.unwrap().unwrap().is_data());
        tokio::spawn(async move { streams_end.give() });
        assert_eq!(trailers_code(&mut body).await, Code::Unavailable);
        assert_eq!(seen.recorded(), vec![Code::Unavailable]);
    }

    #[tokio::test]
    async fn a_panicking_stream_ends_internal() {
        let (seen, on_end) = recorder();
        let inner = BoxBody::new(http_body_util::StreamBody::new(futures::stream::poll_fn(
            |_| -> Poll<Option<Result<Frame<Bytes>, Status>>> { panic!("boom") },
        )));
        let mut body = Tracked::boxed(inner, no_ends(), on_end);
        assert_eq!(trailers_code(&mut body).await, Code::Internal);
        assert_eq!(seen.recorded(), vec![Code::Internal]);
    }
}
