//! What the layers of one call share: its route, whether its client abandoned it, and
//! the place it holds under the in-flight limit.
//!
//! A [`Call`] is made when a gRPC (or gRPC-Web) request arrives ([`crate::web`]) and
//! travels in the request's extensions. Most of what a call's outcome depends on is in
//! its response, which the tracking layer ([`crate::layers::track`]) watches; this is
//! the rest, which only the transport or another layer knows:
//!
//! - a client that resets a Talk stream makes volo's decoder see a clean end of the
//!   requests, the handler finish, and OK trailers go out that nobody receives. The
//!   request body is watched ([`watch_transport`]) so the call is logged CANCELLED;
//! - load shedding admits a call by giving it a place ([`Places`]), which the call gives
//!   back when its response ends.

use std::{
    pin::Pin,
    sync::{
        Arc, OnceLock,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use volo_grpc::{Status, body::BoxBody};

use crate::route::Route;

/// The shared state of one call; see the module docs.
#[derive(Debug)]
pub struct Call {
    route: Route,
    /// The client reset the stream or the connection broke: no status can reach it.
    abandoned: AtomicBool,
    /// The place this call holds under the in-flight limit, once admitted.
    place: OnceLock<Arc<Places>>,
}

impl Call {
    /// The call of `req`, made (and stored in its extensions) if it has none yet.
    pub fn of<B>(req: &mut http::Request<B>) -> Arc<Call> {
        if let Some(call) = req.extensions().get::<Arc<Call>>() {
            return Arc::clone(call);
        }
        let call = Arc::new(Call::new(Route::of_path(req.uri().path())));
        req.extensions_mut().insert(Arc::clone(&call));
        call
    }

    /// The route of `req`: its call's, or parsed from its path if it has no call yet.
    pub fn route_of<B>(req: &http::Request<B>) -> Route {
        req.extensions()
            .get::<Arc<Call>>()
            .map_or_else(|| Route::of_path(req.uri().path()), |call| call.route)
    }

    /// The route of a call in the layer stack: its [`Call`]'s (the tracking layer makes
    /// sure there is one), else parsed from `method`.
    pub fn route_in(extensions: &http::Extensions, method: &str) -> Route {
        extensions
            .get::<Arc<Call>>()
            .map_or_else(|| Route::of_path(method), |call| call.route)
    }

    /// A call on `route`.
    pub fn new(route: Route) -> Self {
        Self {
            route,
            abandoned: AtomicBool::new(false),
            place: OnceLock::new(),
        }
    }

    /// The RPC called.
    pub fn route(&self) -> Route {
        self.route
    }

    /// Marks the call abandoned by its client.
    pub fn abandon(&self) {
        self.abandoned.store(true, Ordering::Release);
    }

    /// Whether the client reset the call (or its connection broke).
    pub fn abandoned(&self) -> bool {
        self.abandoned.load(Ordering::Acquire)
    }

    /// Takes a place in `places`; false (and nothing held) when they are all taken.
    pub fn take_place(&self, places: &Arc<Places>) -> bool {
        if !places.take() {
            return false;
        }
        if let Err(places) = self.place.set(Arc::clone(places)) {
            // Already holding one (a layer asked twice): keep just that one.
            places.give_back();
        }
        true
    }

    /// Gives back the call's place, if it holds one. Called once, when the call ends.
    pub fn end(&self) {
        if let Some(places) = self.place.get() {
            places.give_back();
        }
    }
}

/// A number of places for calls in flight: taken and given back without a lock.
#[derive(Debug)]
pub struct Places {
    taken: AtomicUsize,
    max: usize,
}

impl Places {
    /// `max` places.
    pub fn new(max: usize) -> Self {
        Self {
            taken: AtomicUsize::new(0),
            max,
        }
    }

    /// How many places there are.
    pub fn max(&self) -> usize {
        self.max
    }

    fn take(&self) -> bool {
        self.taken
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok()
    }

    fn give_back(&self) {
        self.taken.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Wraps a request body straight from the connection: a transport error in it (the
/// client reset the stream, the connection broke) marks the call abandoned.
pub fn watch_transport(inner: BoxBody, call: Arc<Call>) -> BoxBody {
    BoxBody::new(Transport { inner, call })
}

pin_project_lite::pin_project! {
    /// See [`watch_transport`].
    struct Transport {
        #[pin]
        inner: BoxBody,
        call: Arc<Call>,
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
            this.call.abandon();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_run_out_and_come_back_when_calls_end() {
        let places = Arc::new(Places::new(2));
        let calls: Vec<Call> = (0..3).map(|_| Call::new(Route::Hello)).collect();
        assert!(calls[0].take_place(&places));
        assert!(calls[1].take_place(&places));
        assert!(!calls[2].take_place(&places), "a third place");
        calls[2].end(); // holds none: gives none back
        assert!(!calls[2].take_place(&places));
        calls[0].end();
        assert!(calls[2].take_place(&places));
    }

    #[test]
    fn a_call_holds_one_place_at_most() {
        let places = Arc::new(Places::new(2));
        let call = Call::new(Route::Talk);
        assert!(call.take_place(&places));
        assert!(call.take_place(&places));
        call.end();
        let other = Call::new(Route::Talk);
        assert!(other.take_place(&places) && Call::new(Route::Hello).take_place(&places));
    }

    #[tokio::test]
    async fn a_transport_error_in_the_request_marks_the_call_abandoned() {
        use http_body_util::BodyExt;
        let call = Arc::new(Call::new(Route::Talk));
        let inner = BoxBody::new(http_body_util::StreamBody::new(futures::stream::iter([
            Ok::<_, Status>(Frame::data(Bytes::from_static(b"x"))),
            Err(Status::cancelled("stream reset")),
        ])));
        let mut body = watch_transport(inner, Arc::clone(&call));
        assert!(body.frame().await.unwrap().is_ok());
        assert!(!call.abandoned());
        assert!(body.frame().await.unwrap().is_err());
        assert!(call.abandoned());
    }
}
