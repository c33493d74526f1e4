//! RPC metrics: calls by method, protocol and gRPC code, latency by method and protocol,
//! in-flight calls, open streams.
//!
//! The call pipeline counts a call when it starts ([`RpcMetrics::begin`]) and when its
//! final status is known ([`RpcMetrics::end`]; for streams, when the stream ends). Names
//! are listed in [`super::prometheus`].
//!
//! Handles are looked up once and kept, per route, protocol and code, so a call costs a few
//! atomic updates, not a registry lookup with label allocation. Labels come from the
//! route table: a path that names no RPC is counted as `unknown`, since paths come from
//! clients and one label per path would let anyone grow the metrics without bound.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, counter, gauge, histogram};
use volo_grpc::Code;

use crate::call::{Protocol, Route, status::code_name};

/// The 17 gRPC codes, 0..=16.
const CODES: usize = 17;

/// Handles of one route and protocol, created on first use (after the recorder is
/// installed).
#[derive(Default)]
struct Handles {
    duration: OnceLock<Histogram>,
    calls: [OnceLock<Counter>; CODES],
}

/// Handles of one route, by protocol.
type RouteMetrics = [Handles; Protocol::COUNT];

/// The metric handles of one server: one set per route, and one for paths that name no
/// route (`unknown`).
pub(crate) struct RpcMetrics {
    routes: Box<[RouteMetrics]>,
    unknown: RouteMetrics,
    in_flight: OnceLock<Gauge>,
    streams_open: OnceLock<Gauge>,
}

impl Default for RpcMetrics {
    fn default() -> Self {
        Self {
            routes: Route::all()
                .iter()
                .map(|_| RouteMetrics::default())
                .collect(),
            unknown: RouteMetrics::default(),
            in_flight: OnceLock::new(),
            streams_open: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for RpcMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcMetrics").finish_non_exhaustive()
    }
}

/// Whether calls on `route` stream replies (they count as open streams).
fn streams(route: Option<Route>) -> bool {
    route.is_some_and(|route| route.method.server_streaming)
}

impl RpcMetrics {
    fn in_flight(&self) -> &Gauge {
        self.in_flight.get_or_init(|| gauge!("basic_rpc_in_flight"))
    }

    fn streams_open(&self) -> &Gauge {
        self.streams_open
            .get_or_init(|| gauge!("basic_streams_open"))
    }

    /// A call on `route` has started.
    pub(crate) fn begin(&self, route: Option<Route>) {
        self.in_flight().increment(1.0);
        if streams(route) {
            self.streams_open().increment(1.0);
        }
    }

    /// A call on `route` has ended with `code` after `seconds`.
    pub(crate) fn end(&self, route: Option<Route>, protocol: Protocol, code: Code, seconds: f64) {
        self.in_flight().decrement(1.0);
        if streams(route) {
            self.streams_open().decrement(1.0);
        }
        let (method, handles) = match route {
            Some(route) => match self.routes.get(route.id) {
                Some(handles) => (route.path(), handles),
                None => return,
            },
            None => ("unknown", &self.unknown),
        };
        let handles = &handles[protocol as usize];
        let protocol = protocol.name();
        let new_counter = || counter!("basic_rpc_total", "method" => method, "protocol" => protocol, "code" => code_name(code));
        match usize::try_from(i32::from(code))
            .ok()
            .and_then(|i| handles.calls.get(i))
        {
            Some(cell) => cell.get_or_init(new_counter).increment(1),
            None => new_counter().increment(1),
        }
        handles
            .duration
            .get_or_init(|| {
                histogram!("basic_rpc_duration_seconds", "method" => method, "protocol" => protocol)
            })
            .record(seconds);
    }
}
