//! Load shedding: a global limit on calls in flight, and a share of it per connection;
//! over either a call fails fast with RESOURCE_EXHAUSTED instead of queueing without
//! bound. The share keeps one client (one connection) from taking the whole pool.
//!
//! A call holds its permit until its response body ends (for streams, the whole stream),
//! so the limit counts open streams too. Health checks are never shed: a probe failing
//! under load would get a busy replica restarted, which makes the overload worse.

use std::sync::Arc;

use tokio::sync::Semaphore;
use volo::context::Context as _;
use volo_grpc::{Request, Response, Status, body::BoxBody, context::ServerContext};

use super::{
    GrpcService,
    body::{Observed, OnEnd},
};
use crate::net::ConnectionLoad;

/// Admits at most `max` calls at once, and at most `per_connection` from one connection.
#[derive(Debug, Clone)]
pub struct LoadShedLayer {
    permits: Arc<Semaphore>,
    max: usize,
    per_connection: usize,
}

impl LoadShedLayer {
    /// A limit of `max` calls in flight, `per_connection` of them on one connection.
    pub fn new(max: usize, per_connection: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
            per_connection,
        }
    }
}

impl<S> motore::layer::Layer<S> for LoadShedLayer {
    type Service = LoadShed<S>;

    fn layer(self, inner: S) -> Self::Service {
        LoadShed {
            inner,
            permits: self.permits,
            max: self.max,
            per_connection: self.per_connection,
        }
    }
}

/// See [`LoadShedLayer`].
#[derive(Debug, Clone)]
pub struct LoadShed<S> {
    inner: S,
    permits: Arc<Semaphore>,
    max: usize,
    per_connection: usize,
}

impl<S: GrpcService> motore::Service<ServerContext, Request<BoxBody>> for LoadShed<S> {
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        if cx
            .rpc_info()
            .method()
            .starts_with("/grpc.health.v1.Health/")
        {
            return self.inner.call(cx, req).await;
        }
        // Counted by the connection (crate::net), this call included.
        let open = req
            .extensions()
            .get::<ConnectionLoad>()
            .map_or(0, |load| load.0);
        if open > self.per_connection {
            return Err(Status::resource_exhausted(format!(
                "this connection is at its limit of {} calls in flight; retry later",
                self.per_connection
            )));
        }
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            return Err(Status::resource_exhausted(format!(
                "server is at its limit of {} calls in flight; retry later",
                self.max
            )));
        };
        let resp = self.inner.call(cx, req).await?;
        // The permit goes with the body and is released when the body ends or is dropped.
        Ok(resp.map(|body| Observed::boxed(body, OnEnd::new(move |_| drop(permit)))))
    }
}
