//! RPC metrics: calls by method and gRPC code, latency, in-flight calls, open streams.
//!
//! Like the access log, a call is counted when its final status is known (for streams,
//! when the stream ends), with the code the client saw or caused ([`CallFate::resolve`]).
//! Names are listed in [`crate::metrics`].
//!
//! Metric handles are looked up once per layer and kept, so a call costs a few atomic
//! updates, not a registry lookup with label allocation.

use std::{
    sync::{Arc, OnceLock},
    time::Instant,
};

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use volo::context::Context as _;
use volo_grpc::{Code, Request, Response, Status, body::BoxBody, context::ServerContext};

use super::{
    GrpcService,
    access_log::code_name,
    body::{CallFate, Observed, OnEnd},
};

/// Methods served here, and whether their response is a stream. Any other path is
/// counted under the last entry, `unknown`: paths come from clients, and one label per
/// path would let anyone grow the metrics without bound.
const METHODS: [(&str, bool); 8] = [
    ("/basic.v1.BasicService/Hello", false),
    ("/basic.v1.BasicService/Talk", true),
    ("/basic.v1.BasicService/Background", true),
    ("/grpc.health.v1.Health/Check", false),
    ("/grpc.health.v1.Health/Watch", true),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        true,
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        true,
    ),
    ("unknown", false),
];

/// The 17 gRPC codes, 0..=16.
const CODES: usize = 17;

/// Handles of one method, created on first use (after the recorder is installed).
struct MethodMetrics {
    method: &'static str,
    streaming: bool,
    duration: OnceLock<Histogram>,
    calls: [OnceLock<Counter>; CODES],
}

impl MethodMetrics {
    fn record(&self, code: Code, seconds: f64) {
        let index = i32::from(code);
        let counter = usize::try_from(index)
            .ok()
            .and_then(|i| self.calls.get(i))
            .map(|cell| {
                cell.get_or_init(|| {
                    counter!("basic_rpc_total", "method" => self.method, "code" => code_name(code))
                })
            });
        match counter {
            Some(counter) => counter.increment(1),
            None => counter!("basic_rpc_total", "method" => self.method, "code" => code_name(code))
                .increment(1),
        }
        self.duration
            .get_or_init(|| histogram!("basic_rpc_duration_seconds", "method" => self.method))
            .record(seconds);
    }
}

struct Handles {
    methods: Vec<MethodMetrics>,
    in_flight: OnceLock<Gauge>,
    streams_open: OnceLock<Gauge>,
}

impl Handles {
    fn in_flight(&self) -> &Gauge {
        self.in_flight.get_or_init(|| gauge!("basic_rpc_in_flight"))
    }

    fn streams_open(&self) -> &Gauge {
        self.streams_open
            .get_or_init(|| gauge!("basic_streams_open"))
    }
}

/// Records every call's outcome and duration.
#[derive(Clone)]
pub struct MetricsLayer {
    handles: Arc<Handles>,
}

impl Default for MetricsLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl MetricsLayer {
    /// A layer with its own handle cache.
    pub fn new() -> Self {
        let methods = METHODS
            .iter()
            .map(|&(method, streaming)| MethodMetrics {
                method,
                streaming,
                duration: OnceLock::new(),
                calls: std::array::from_fn(|_| OnceLock::new()),
            })
            .collect();
        Self {
            handles: Arc::new(Handles {
                methods,
                in_flight: OnceLock::new(),
                streams_open: OnceLock::new(),
            }),
        }
    }
}

impl<S> motore::layer::Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(self, inner: S) -> Self::Service {
        Metrics {
            inner,
            handles: self.handles,
        }
    }
}

/// See [`MetricsLayer`].
#[derive(Clone)]
pub struct Metrics<S> {
    inner: S,
    handles: Arc<Handles>,
}

impl<S: GrpcService> motore::Service<ServerContext, Request<BoxBody>> for Metrics<S> {
    type Response = Response<BoxBody>;
    type Error = Status;

    async fn call(
        &self,
        cx: &mut ServerContext,
        mut req: Request<BoxBody>,
    ) -> Result<Response<BoxBody>, Status> {
        let start = Instant::now();
        let path = cx.rpc_info().method();
        let methods = &self.handles.methods;
        let index = methods
            .iter()
            .position(|m| m.method == path.as_str())
            .unwrap_or(methods.len() - 1);
        let streaming = methods[index].streaming;
        let handles = Arc::clone(&self.handles);
        handles.in_flight().increment(1.0);
        if streaming {
            handles.streams_open().increment(1.0);
        }
        let fate = CallFate::of(req.extensions_mut());
        let on_end = OnEnd::new(move |code: Code| {
            let code = fate.resolve(code);
            handles.in_flight().decrement(1.0);
            if streaming {
                handles.streams_open().decrement(1.0);
            }
            handles.methods[index].record(code, start.elapsed().as_secs_f64());
        });
        match self.inner.call(cx, req).await {
            Ok(resp) => Ok(resp.map(|body| Observed::boxed(body, on_end))),
            Err(status) => {
                on_end.finish(status.code());
                Err(status)
            }
        }
    }
}
