//! RPC metrics: calls by method and gRPC code, latency, in-flight calls, open streams.
//!
//! Like the access log, a call is counted when its final status is known (for streams,
//! when the stream ends). Names are listed in [`crate::metrics`].

use std::time::Instant;

use metrics::{counter, gauge, histogram};
use volo::context::Context as _;
use volo_grpc::{Request, Response, Status, body::BoxBody, context::ServerContext};

use super::{GrpcService, access_log::code_name, body::Observed};

super::plain_layer! {
    /// Records every call's outcome and duration.
    MetricsLayer => Metrics
}

/// Methods whose response is a stream.
fn is_streaming(method: &str) -> bool {
    matches!(
        method,
        "/basic.v1.BasicService/Talk"
            | "/basic.v1.BasicService/Background"
            | "/grpc.health.v1.Health/Watch"
            | "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
            | "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
    )
}

impl<S: GrpcService> motore::Service<ServerContext, Request<BoxBody>> for Metrics<S> {
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        let method = cx.rpc_info().method().clone();
        let streaming = is_streaming(&method);
        let start = Instant::now();
        gauge!("basic_rpc_in_flight").increment(1.0);
        if streaming {
            gauge!("basic_streams_open").increment(1.0);
        }
        let finish = move |code| {
            gauge!("basic_rpc_in_flight").decrement(1.0);
            if streaming {
                gauge!("basic_streams_open").decrement(1.0);
            }
            counter!("basic_rpc_total", "method" => method.to_string(), "code" => code_name(code))
                .increment(1);
            histogram!("basic_rpc_duration_seconds", "method" => method.to_string())
                .record(start.elapsed().as_secs_f64());
        };
        match self.inner.call(cx, req).await {
            Ok(resp) => Ok(resp.map(|body| Observed::boxed(body, finish))),
            Err(status) => {
                finish(status.code());
                Err(status)
            }
        }
    }
}
