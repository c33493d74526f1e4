//! From an HTTP request to the layer stack: the glue between hyper and volo's services.
//!
//! This replaces volo-grpc's `MetaService`, which does the same conversion but also
//! copies every metadata entry into a task-local map for volo's own RPC framework and
//! enters a tracing span per call; on metadata it cannot handle, a `-bin` key such as
//! `grpc-trace-bin`, it hits `unreachable!()` and the call dies with a panic. Here a call
//! gets its [`ServerContext`] (method, and the peer address from the socket) and
//! nothing else: binary metadata is passed on like any other.

use std::{
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use pilota::FastStr;
use volo::{context::Context as _, net::Address};
use volo_grpc::{Request, Status, body::BoxBody, context::ServerContext};

use crate::{call::Call, layers::GrpcService, route::Route};

/// Runs the layer stack `S` for each HTTP request of one connection.
pub struct Dispatch<S> {
    stack: Arc<S>,
    /// The connection's peer, as the socket reports it (never from a header).
    peer: Option<Address>,
}

impl<S> Dispatch<S> {
    /// The stack for a connection from `peer`.
    pub fn new(stack: Arc<S>, peer: Option<Address>) -> Self {
        Self { stack, peer }
    }
}

impl<S> Clone for Dispatch<S> {
    fn clone(&self) -> Self {
        Self {
            stack: Arc::clone(&self.stack),
            peer: self.peer.clone(),
        }
    }
}

impl<S: GrpcService + 'static> tower::Service<http::Request<BoxBody>> for Dispatch<S> {
    type Response = http::Response<BoxBody>;
    type Error = Status;
    type Future = BoxFuture<'static, Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<BoxBody>) -> Self::Future {
        let stack = Arc::clone(&self.stack);
        let mut cx = ServerContext::default();
        // The route table's path when it is one of ours: no copy of the path per call.
        let method = match Call::route_of(&req) {
            Route::Unknown => FastStr::new(req.uri().path()),
            route => FastStr::from_static_str(route.path()),
        };
        cx.rpc_info_mut().set_method(method);
        if let Some(peer) = &self.peer {
            cx.rpc_info_mut().caller_mut().set_address(peer.clone());
        }
        Box::pin(async move {
            match stack.call(&mut cx, Request::from_http(req)).await {
                Ok(resp) => {
                    let mut resp = resp.into_http();
                    resp.headers_mut().insert(
                        http::header::CONTENT_TYPE,
                        http::HeaderValue::from_static("application/grpc"),
                    );
                    Ok(resp)
                }
                Err(status) => Ok(status.to_http()),
            }
        })
    }
}
