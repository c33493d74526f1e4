//! What each HTTP request on the port is, before any gRPC decoding.
//!
//! One port speaks HTTP/2 and HTTP/1.1 ([`super::conn`]). [`Front`] sorts requests by
//! content type, as the gRPC-over-HTTP/2 spec asks:
//!
//! - `application/grpc` (and `+proto`, ...): the call pipeline ([`crate::call`]),
//!   directly;
//! - `application/grpc-web` (`+proto`, `-text`, `-text+proto`): translated to gRPC and
//!   back by tonic-web ([`super::grpc_web`]), behind CORS ([`super::cors`]); preflights
//!   (`OPTIONS`) too;
//! - `GET`/`HEAD` of the web page's files ([`super::page`]): served from the binary;
//!   other paths: 404;
//! - anything else: HTTP 415, so that no other HTTP client takes a gRPC error (HTTP 200)
//!   for success.
//!
//! gRPC calls go from hyper to the pipeline with no service abstraction between them.
//! gRPC-Web needs two: tonic-web and tower-http's CORS are tower layers, so the pipeline
//! is presented to them as a tower service ([`PipelineService`]), for those requests only.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use tower_http::cors::CorsLayer;
use volo_grpc::{Status, body::BoxBody};

use super::{AllowedOrigins, ConnectionInfo, cors, grpc_web, page};
use crate::call::{Handlers, Pipeline, wire};

/// Sorts requests (see the module doc) in front of the call pipeline; one per server.
pub(crate) struct Front<H> {
    pipeline: Pipeline<H>,
    cors: CorsLayer,
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
            Some(ct) if wire::is_grpc_web(ct) => Kind::GrpcWeb,
            Some(ct) if wire::is_grpc(ct) => Kind::Grpc,
            _ if req.method() == Method::OPTIONS => Kind::Preflight,
            _ => Kind::Other,
        }
    }
}

impl<H: Handlers> Front<H> {
    /// A front for `pipeline`; foreign pages may call from `origins`.
    pub(crate) fn new(pipeline: Pipeline<H>, origins: &AllowedOrigins) -> Self {
        Self {
            pipeline,
            cors: cors::layer(origins),
        }
    }

    /// The answer to `req`, which came on `conn`.
    pub(crate) async fn answer(
        self: &Arc<Self>,
        req: Request<BoxBody>,
        conn: ConnectionInfo,
    ) -> Response<BoxBody> {
        match Kind::of(&req) {
            Kind::Grpc => self.pipeline.call(req, conn).await,
            // Boxed: the future every gRPC call waits on stays small (it is moved into
            // the stream's task).
            Kind::GrpcWeb | Kind::Preflight => self.web(req, conn).await,
            Kind::Other => other(&req),
        }
    }

    /// gRPC-Web and CORS preflights: tonic-web and CORS around the pipeline.
    fn web(
        self: &Arc<Self>,
        req: Request<BoxBody>,
        conn: ConnectionInfo,
    ) -> BoxFuture<'static, Response<BoxBody>> {
        let pipeline = PipelineService {
            front: Arc::clone(self),
            conn,
        };
        let web = tower::Layer::layer(&self.cors, grpc_web::layer(pipeline));
        Box::pin(async move {
            // (The pipeline's response says `grpc-accept-encoding` already.)
            match web.oneshot(req).await {
                Ok(resp) => {
                    resp.map(|body| body.map_err(grpc_web::status_from_tonic).boxed_unsync())
                }
                Err(status) => status.to_http(),
            }
        })
    }
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

/// The call pipeline as a tower service, for the tower layers of gRPC-Web.
pub(crate) struct PipelineService<H> {
    front: Arc<Front<H>>,
    conn: ConnectionInfo,
}

impl<H> Clone for PipelineService<H> {
    fn clone(&self) -> Self {
        Self {
            front: Arc::clone(&self.front),
            conn: self.conn.clone(),
        }
    }
}

impl<H: Handlers> tower::Service<Request<BoxBody>> for PipelineService<H> {
    type Response = Response<BoxBody>;
    type Error = Status;
    type Future = BoxFuture<'static, Result<Response<BoxBody>, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<BoxBody>) -> Self::Future {
        let front = Arc::clone(&self.front);
        let conn = self.conn.clone();
        Box::pin(async move { Ok(front.pipeline.call(req, conn).await) })
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
