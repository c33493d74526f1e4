//! Prometheus metrics: the recorder and the `/metrics` endpoint on `--metrics-addr`.
//!
//! Metrics are recorded with the `metrics` facade (cheap no-ops until a recorder is
//! installed) and exposed in the Prometheus text format by
//! `metrics-exporter-prometheus`. The recorder is process-wide and installed once;
//! [`serve`] answers every HTTP request on its listener with the current exposition.
//!
//! Names (all prefixed `basic_`): `rpc_total{method,protocol,code}`,
//! `rpc_duration_seconds` (histogram, by method and protocol), `rpc_in_flight`, `streams_open`, `talk_conversations_active`,
//! `background_workers_active`.

use std::{convert::Infallible, future::Future, sync::OnceLock};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// Latency buckets (seconds): sub-millisecond unary calls up to minute-long streams.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0,
];

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder (once) and returns a handle to render it.
pub(crate) fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                // Only fails for an empty bucket list; ours is not.
                .unwrap_or_else(|_| PrometheusBuilder::new())
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may be installed (e.g. by an embedding program): then ours
            // just stays empty, which is harmless.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Serves the exposition over HTTP/1.1 on `listener` until `shutdown` completes.
pub(crate) async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (tcp, _) = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => match accepted {
                Ok(ok) => ok,
                Err(err) => {
                    tracing::warn!(%err, "metrics accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req: Request<Incoming>| {
                let body = handle.render();
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("content-type", "text/plain; version=0.0.4")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap_or_default(),
                    )
                }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service);
            if let Err(err) = conn.await {
                tracing::debug!(%err, "metrics connection error");
            }
        });
    }
}
