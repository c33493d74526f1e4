//! The bottom of the layer stack: each call goes to its service by its route.
//!
//! volo's `Router` looks the path up in a tree, clones a boxed service and boxes its
//! future on every call. The route is already known here (parsed once per call, see
//! [`crate::call`]), so a `match` picks the service and its future stays unboxed.

use volo::context::Context as _;
use volo_grpc::{Request, Response, Status, body::BoxBody, context::ServerContext};

use crate::{call::Call, layers::GrpcService, route::Route, status};

/// The services of this server, one per generated service.
pub struct Services<B, H, R1, R1a> {
    /// `basic.v1.BasicService`.
    pub basic: B,
    /// `grpc.health.v1.Health`.
    pub health: H,
    /// `grpc.reflection.v1.ServerReflection`.
    pub reflection_v1: R1,
    /// `grpc.reflection.v1alpha.ServerReflection`.
    pub reflection_v1alpha: R1a,
}

impl<B, H, R1, R1a> motore::Service<ServerContext, Request<BoxBody>> for Services<B, H, R1, R1a>
where
    B: GrpcService,
    H: GrpcService,
    R1: GrpcService,
    R1a: GrpcService,
{
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        let route = Call::route_in(req.extensions(), cx.rpc_info().method());
        match route {
            Route::Hello | Route::Talk | Route::Background => self.basic.call(cx, req).await,
            Route::HealthCheck | Route::HealthWatch => self.health.call(cx, req).await,
            Route::ReflectionV1 => self.reflection_v1.call(cx, req).await,
            Route::ReflectionV1Alpha => self.reflection_v1alpha.call(cx, req).await,
            Route::Unknown => Err(status::unknown_method(cx.rpc_info().method())),
        }
    }
}
