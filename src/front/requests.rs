//! What each HTTP request on the port is, before any gRPC decoding.
//!
//! One port speaks HTTP/2 and HTTP/1.1 ([`super::conn`]). [`Front`] sorts requests by
//! content type, as the gRPC-over-HTTP/2 spec asks:
//!
//! - `application/grpc` (and `+proto`, `+json`): the call pipeline ([`crate::call`]),
//!   directly;
//! - `application/grpc-web` (`+proto`, `+json`, `-text`, `-text+proto`): translated to
//!   gRPC and back by tonic-web ([`super::grpc_web`]), behind CORS ([`super::cors`]);
//!   preflights (`OPTIONS`) too;
//! - Connect (`application/proto`, `application/json`, `application/connect+proto`,
//!   `+json`, and `GET` of an RPC's path): translated to gRPC and back
//!   ([`super::connect`]);
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

use super::{AllowedOrigins, ConnectionInfo, connect, cors, grpc_web, page};
use crate::call::{Codec, Handlers, Pipeline, Protocol, Wire, wire};

/// Sorts requests (see the module doc) in front of the call pipeline; one per server.
pub(crate) struct Front<H> {
    pipeline: Pipeline<H>,
    cors: CorsLayer,
}

/// What a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Grpc(Codec),
    GrpcWeb(Codec),
    Connect(connect::Shape),
    Preflight,
    Other,
}

impl Kind {
    fn of<B>(req: &Request<B>) -> Self {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes());
        if let Some(codec) = content_type.and_then(wire::grpc_codec) {
            return Kind::Grpc(codec);
        }
        if let Some(codec) = content_type.and_then(wire::grpc_web_codec) {
            return Kind::GrpcWeb(codec);
        }
        match req.method() {
            &Method::POST => match content_type.and_then(connect::Shape::of_post) {
                Some(shape) => Kind::Connect(shape),
                None => Kind::Other,
            },
            method if connect::is_get(method, req.uri().path()) => {
                Kind::Connect(connect::Shape::Get)
            }
            &Method::OPTIONS => Kind::Preflight,
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
            Kind::Grpc(Codec::Proto) => self.pipeline.call(req, conn, Wire::GRPC).await,
            // Boxed: the future every gRPC call waits on stays small (it is moved into
            // the stream's task).
            Kind::Grpc(Codec::Json) => self.json(req, conn).await,
            Kind::GrpcWeb(codec) => self.web(req, conn, codec).await,
            Kind::Preflight => self.web(req, conn, Codec::Proto).await,
            Kind::Connect(shape) => self.connect(req, conn, shape).await,
            Kind::Other => other(&req),
        }
    }

    /// gRPC with JSON messages.
    fn json(
        self: &Arc<Self>,
        req: Request<BoxBody>,
        conn: ConnectionInfo,
    ) -> BoxFuture<'static, Response<BoxBody>> {
        let front = Arc::clone(self);
        let wire = Wire::new(Protocol::Grpc, Codec::Json);
        Box::pin(async move { front.pipeline.call(req, conn, wire).await })
    }

    /// Connect, translated ([`connect`]); behind CORS when a page calls from an origin.
    fn connect(
        self: &Arc<Self>,
        req: Request<BoxBody>,
        conn: ConnectionInfo,
        shape: connect::Shape,
    ) -> BoxFuture<'static, Response<BoxBody>> {
        let front = Arc::clone(self);
        if !req.headers().contains_key(header::ORIGIN) {
            return Box::pin(
                async move { connect::answer(&front.pipeline, req, conn, shape).await },
            );
        }
        let answer = tower::service_fn(move |req| {
            let front = Arc::clone(&front);
            let conn = conn.clone();
            async move {
                Ok::<_, std::convert::Infallible>(
                    connect::answer(&front.pipeline, req, conn, shape).await,
                )
            }
        });
        let cors = tower::Layer::layer(&self.cors, answer);
        Box::pin(async move {
            match cors.oneshot(req).await {
                Ok(resp) => resp,
                Err(never) => match never {},
            }
        })
    }

    /// gRPC-Web and CORS preflights: tonic-web and CORS around the pipeline. tonic-web
    /// knows protobuf only: a JSON call is presented to it as protobuf, and its
    /// response's content type put back.
    fn web(
        self: &Arc<Self>,
        mut req: Request<BoxBody>,
        conn: ConnectionInfo,
        codec: Codec,
    ) -> BoxFuture<'static, Response<BoxBody>> {
        let pipeline = PipelineService {
            front: Arc::clone(self),
            conn,
            codec,
        };
        if codec == Codec::Json {
            req.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/grpc-web+proto"),
            );
        }
        let web = tower::Layer::layer(&self.cors, grpc_web::layer(pipeline));
        Box::pin(async move {
            // (The pipeline's response says `grpc-accept-encoding` already.)
            let mut resp = match web.oneshot(req).await {
                Ok(resp) => {
                    resp.map(|body| body.map_err(grpc_web::status_from_tonic).boxed_unsync())
                }
                Err(status) => status.to_http(),
            };
            if codec == Codec::Json {
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/grpc-web+json"),
                );
            }
            resp
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
        "calls need content-type application/grpc (or gRPC-Web's, or Connect's: \
         application/proto, application/json, application/connect+proto, ...)\n",
    )
}

/// The call pipeline as a tower service, for the tower layers of gRPC-Web.
pub(crate) struct PipelineService<H> {
    front: Arc<Front<H>>,
    conn: ConnectionInfo,
    codec: Codec,
}

impl<H> Clone for PipelineService<H> {
    fn clone(&self) -> Self {
        Self {
            front: Arc::clone(&self.front),
            conn: self.conn.clone(),
            codec: self.codec,
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
        let wire = Wire::new(Protocol::GrpcWeb, self.codec);
        Box::pin(async move { Ok(front.pipeline.call(req, conn, wire).await) })
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
        use connect::Shape;
        for (ct, kind) in [
            ("application/grpc", Kind::Grpc(Codec::Proto)),
            ("application/grpc+proto", Kind::Grpc(Codec::Proto)),
            ("application/grpc;charset=utf-8", Kind::Grpc(Codec::Proto)),
            ("application/grpc+json", Kind::Grpc(Codec::Json)),
            ("application/grpc-web", Kind::GrpcWeb(Codec::Proto)),
            ("application/grpc-web+proto", Kind::GrpcWeb(Codec::Proto)),
            ("application/grpc-web-text", Kind::GrpcWeb(Codec::Proto)),
            (
                "application/grpc-web-text+proto",
                Kind::GrpcWeb(Codec::Proto),
            ),
            ("application/grpc-web+json", Kind::GrpcWeb(Codec::Json)),
            ("application/grpc+xml", Kind::Other),
            ("application/grpcx", Kind::Other),
            ("application/json", Kind::Connect(Shape::Unary(Codec::Json))),
            (
                "application/proto",
                Kind::Connect(Shape::Unary(Codec::Proto)),
            ),
            (
                "application/connect+json",
                Kind::Connect(Shape::Stream(Codec::Json)),
            ),
            ("text/plain", Kind::Other),
        ] {
            assert_eq!(Kind::of(&request(Method::POST, Some(ct))), kind, "{ct}");
        }
        assert_eq!(Kind::of(&request(Method::POST, None)), Kind::Other);
        assert_eq!(Kind::of(&request(Method::GET, None)), Kind::Other);
        let get = Request::get("/basic.v1.BasicService/Hello?encoding=json")
            .body(())
            .unwrap();
        assert_eq!(Kind::of(&get), Kind::Connect(Shape::Get));
        assert_eq!(Kind::of(&request(Method::OPTIONS, None)), Kind::Preflight);
    }
}
