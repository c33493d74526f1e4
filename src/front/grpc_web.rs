//! gRPC-Web: tonic-web's translation, adapted to the volo stack.
//!
//! tonic-web (the implementation tonic and volo-grpc's `grpc-web` feature use) turns a
//! gRPC-Web request (`application/grpc-web`, `+proto`, `-text` in base64) into a gRPC
//! one and the response back: messages pass through as they come (a server stream
//! reaches the browser message by message), and the trailers become the last
//! length-prefixed frame of the body, flagged 0x80, as the protocol says. It works on
//! HTTP/1.1 and HTTP/2 alike.
//!
//! Only the body types differ between tonic and volo; [`ToVolo`] converts them (and
//! tonic's `Status` into volo's, code and message kept). Depending on tonic-web
//! directly, rather than through volo-grpc's feature, keeps tonic's transport and axum
//! out of the build.

use std::task::{Context, Poll};

use futures::future::BoxFuture;
use http_body_util::BodyExt as _;
use volo_grpc::{Code, Status, body::BoxBody};

/// The gRPC-Web translation around the gRPC service `S`.
pub(crate) type GrpcWeb<S> = tonic_web::GrpcWebService<ToVolo<S>>;

/// Wraps `inner` (plain gRPC) in the gRPC-Web translation.
pub(crate) fn layer<S>(inner: S) -> GrpcWeb<S> {
    tower::Layer::layer(&tonic_web::GrpcWebLayer::new(), ToVolo(inner))
}

/// tonic's `Status` as volo's.
pub(crate) fn status_from_tonic(status: tonic::Status) -> Status {
    Status::new(
        Code::from_i32(status.code() as i32),
        status.message().to_owned(),
    )
}

/// Presents the volo service `S` to tonic-web: tonic request bodies in, volo ones out.
#[derive(Debug, Clone)]
pub(crate) struct ToVolo<S>(S);

impl<S> tower::Service<http::Request<tonic::body::Body>> for ToVolo<S>
where
    S: tower::Service<http::Request<BoxBody>, Response = http::Response<BoxBody>, Error = Status>,
    S::Future: Send + 'static,
{
    type Response = http::Response<BoxBody>;
    type Error = Status;
    type Future = BoxFuture<'static, Result<http::Response<BoxBody>, Status>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<tonic::body::Body>) -> Self::Future {
        let req = req.map(|body| body.map_err(status_from_tonic).boxed_unsync());
        Box::pin(self.0.call(req))
    }
}
