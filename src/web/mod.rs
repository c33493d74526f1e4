//! The HTTP front: what each request on the port is, before any gRPC decoding.
//!
//! One port speaks HTTP/2 and HTTP/1.1 ([`crate::net`]). [`Front`] sorts requests by
//! content type, as the gRPC-over-HTTP/2 spec asks:
//!
//! - `application/grpc` (and `+proto`, ...): the gRPC stack, untouched;
//! - `application/grpc-web` (`+proto`, `-text`, `-text+proto`): translated to gRPC and
//!   back by tonic-web ([`grpc_web`]), behind CORS ([`cors`]); preflights (`OPTIONS`) too;
//! - `GET`/`HEAD` of the web page's files ([`page`]): served from the binary; other
//!   paths: 404;
//! - anything else: HTTP 415, so that no other HTTP client takes a gRPC error (HTTP 200)
//!   for success.
//!
//! Every gRPC and gRPC-Web response says which message encodings the server accepts
//! (`grpc-accept-encoding`), as the gRPC compression spec asks. Each call also gets its
//! [`Call`], with the request body watched for the client abandoning the call.

pub mod cors;
pub mod grpc_web;
pub mod page;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use tower_http::cors::CorsLayer;
use volo_grpc::{Status, body::BoxBody};

pub use cors::AllowedOrigins;

use crate::call::{Call, watch_transport};

/// `grpc-accept-encoding`: what the server decompresses (in `layers::message_size`).
const GRPC_ACCEPT_ENCODING: HeaderName = HeaderName::from_static("grpc-accept-encoding");
const ACCEPTED_ENCODINGS: HeaderValue = HeaderValue::from_static("gzip,zstd");

/// Sorts requests (see the module doc) in front of the gRPC service `S`.
#[derive(Debug, Clone)]
pub struct Front<S> {
    grpc: S,
    /// Shared: cloning the layer itself would copy its origin lists on every call.
    cors: Arc<CorsLayer>,
}

impl<S> Front<S> {
    /// A front for `grpc`; foreign pages may call from `origins`.
    pub fn new(grpc: S, origins: &AllowedOrigins) -> Self {
        Self {
            grpc,
            cors: Arc::new(cors::layer(origins)),
        }
    }

    /// The same front (CORS settings shared, not copied) for another service: the
    /// server makes one per connection.
    pub fn wrap<T>(&self, grpc: T) -> Front<T> {
        Front {
            grpc,
            cors: Arc::clone(&self.cors),
        }
    }
}

/// What a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Grpc,
    GrpcWeb,
    Preflight,
    Other,
}

impl Kind {
    fn of<B>(req: &Request<B>) -> Self {
        match req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes())
        {
            Some(
                b"application/grpc-web"
                | b"application/grpc-web+proto"
                | b"application/grpc-web-text"
                | b"application/grpc-web-text+proto",
            ) => Kind::GrpcWeb,
            Some(ct)
                if ct == b"application/grpc"
                    || ct.starts_with(b"application/grpc+")
                    || ct.starts_with(b"application/grpc;") =>
            {
                Kind::Grpc
            }
            _ if req.method() == Method::OPTIONS => Kind::Preflight,
            _ => Kind::Other,
        }
    }
}

/// Gives the call its [`Call`] and watches its body for the client leaving.
fn with_call(mut req: Request<BoxBody>) -> Request<BoxBody> {
    let call = Call::of(&mut req);
    // (In place: taking the request apart and back would copy its head twice.)
    let body = std::mem::take(req.body_mut());
    *req.body_mut() = watch_transport(body, call);
    req
}

/// The answer to a request that is neither gRPC nor gRPC-Web.
fn other(req: &Request<BoxBody>) -> Response<BoxBody> {
    if req.method() == Method::GET || req.method() == Method::HEAD {
        return page::get(req.method(), req.uri().path())
            .unwrap_or_else(|| page::text(StatusCode::NOT_FOUND, "not found\n"));
    }
    page::text(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "gRPC calls need content-type application/grpc (or a gRPC-Web type)\n",
    )
}

fn accept_encodings(resp: &mut Response<BoxBody>) {
    resp.headers_mut()
        .entry(GRPC_ACCEPT_ENCODING)
        .or_insert(ACCEPTED_ENCODINGS);
}

impl<S> tower::Service<Request<BoxBody>> for Front<S>
where
    S: tower::Service<Request<BoxBody>, Response = Response<BoxBody>, Error = Status>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<BoxBody>;
    type Error = Status;
    type Future = FrontFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.grpc.poll_ready(cx)
    }

    fn call(&mut self, req: Request<BoxBody>) -> Self::Future {
        match Kind::of(&req) {
            Kind::Grpc => FrontFuture::Grpc {
                inner: self.grpc.call(with_call(req)),
            },
            kind @ (Kind::GrpcWeb | Kind::Preflight) => {
                let req = if kind == Kind::GrpcWeb {
                    with_call(req)
                } else {
                    req
                };
                let web = tower::Layer::layer(&*self.cors, grpc_web::layer(self.grpc.clone()));
                FrontFuture::Web {
                    inner: Box::pin(async move {
                        let resp = web.oneshot(req).await?;
                        let mut resp = resp
                            .map(|body| body.map_err(grpc_web::status_from_tonic).boxed_unsync());
                        if kind == Kind::GrpcWeb {
                            accept_encodings(&mut resp);
                        }
                        Ok(resp)
                    }),
                }
            }
            Kind::Other => FrontFuture::Ready {
                resp: Some(Box::new(other(&req))),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response of [`Front`]: gRPC calls go straight through, without a box. (The
    /// others are boxed, so that the future every gRPC call waits on stays small.)
    #[project = FrontFutureProj]
    pub enum FrontFuture<F> {
        Grpc { #[pin] inner: F },
        Web { inner: BoxFuture<'static, Result<Response<BoxBody>, Status>> },
        Ready { resp: Option<Box<Response<BoxBody>>> },
    }
}

impl<F> Future for FrontFuture<F>
where
    F: Future<Output = Result<Response<BoxBody>, Status>>,
{
    type Output = Result<Response<BoxBody>, Status>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            FrontFutureProj::Grpc { inner } => inner.poll(cx).map_ok(|mut resp| {
                accept_encodings(&mut resp);
                resp
            }),
            FrontFutureProj::Web { inner } => inner.as_mut().poll(cx),
            FrontFutureProj::Ready { resp } => match resp.take() {
                Some(resp) => Poll::Ready(Ok(*resp)),
                // Polled again after completion: a caller bug, answered plainly.
                None => Poll::Ready(Err(Status::internal("response already taken"))),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: Method, content_type: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().method(method).uri("/x");
        if let Some(ct) = content_type {
            builder = builder.header(header::CONTENT_TYPE, ct);
        }
        builder.body(()).unwrap()
    }

    #[test]
    fn requests_are_sorted_by_content_type() {
        for (ct, kind) in [
            ("application/grpc", Kind::Grpc),
            ("application/grpc+proto", Kind::Grpc),
            ("application/grpc;charset=utf-8", Kind::Grpc),
            ("application/grpc-web", Kind::GrpcWeb),
            ("application/grpc-web+proto", Kind::GrpcWeb),
            ("application/grpc-web-text", Kind::GrpcWeb),
            ("application/grpc-web-text+proto", Kind::GrpcWeb),
            ("application/grpc-web+json", Kind::Other),
            ("application/grpcx", Kind::Other),
            ("application/json", Kind::Other),
            ("text/plain", Kind::Other),
        ] {
            assert_eq!(Kind::of(&request(Method::POST, Some(ct))), kind, "{ct}");
        }
        assert_eq!(Kind::of(&request(Method::POST, None)), Kind::Other);
        assert_eq!(Kind::of(&request(Method::GET, None)), Kind::Other);
        assert_eq!(Kind::of(&request(Method::OPTIONS, None)), Kind::Preflight);
    }
}
