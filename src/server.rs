//! Builds and runs the server: the handlers, the call pipeline, the connection front,
//! and graceful shutdown.
//!
//! [`BasicServer::serve`] takes an already bound listener and a shutdown future, like
//! mini-redis's `server::run`: the binary passes SIGINT/SIGTERM, tests pass a oneshot.
//! It binds each service generated from `idl/` to its handler ([`Services`]), puts the
//! call pipeline ([`crate::call`]) behind the connection front ([`crate::front`]), and
//! serves connections itself rather than through volo's `Server`, whose accept loop has
//! no idle timeout, blocks on TLS handshakes and cannot bound shutdown.
//!
//! Shutdown, when the future completes, goes through the phases of [`crate::ops::shutdown`]:
//! drain, stop accepting, GOAWAY and a grace period for open calls, then UNAVAILABLE for
//! the streams still open. volo's own graceful shutdown would wait forever on a stream
//! that never ends. Spans still queued for export are flushed last.

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use volo_gen::{
    basic::v1::{BASIC_SERVICE_RPCS, BasicService, serve_basic_service},
    grpc::{
        health::v1::{HEALTH_RPCS, serve_health},
        reflection::{v1, v1alpha},
    },
};
use volo_grpc::{Response, Status, body::BoxBody};

use crate::{
    call::{Admission, Handlers, Incoming, Pipeline, Route, Waits, json::Schema, status},
    config::Config,
    error::ServerError,
    front::{Acceptor, Front, serve_connections},
    ops::{
        health::{HealthHandler, HealthReporter},
        reflection::Reflection,
        shutdown::{Shutdown, StreamsEnd},
        traces::Traces,
    },
    service::{BasicHandler, Simulator, eliza::Script},
    tls::tls_config,
};

/// A configured server, ready to [`serve`](BasicServer::serve).
///
/// `S` is the `BasicService` implementation: [`BasicHandler`] in production; tests may
/// wrap it (e.g. to inject a panic) with [`map_service`](BasicServer::map_service).
pub struct BasicServer<S = BasicHandler> {
    config: Config,
    /// The loaded TLS certificate and key (and client CA); `None` serves plaintext.
    tls: Option<Arc<rustls::ServerConfig>>,
    service: S,
    simulator: Simulator,
    reflection: Reflection,
    /// Message types for JSON, from the same descriptors as reflection.
    json: Schema,
    metrics_listener: Option<TcpListener>,
}

impl BasicServer<BasicHandler> {
    /// Prepares a server: loads the TLS files, the ELIZA script, the simulator and the
    /// reflection index, so that bad files fail here, before the caller binds a port.
    pub fn new(config: Config) -> Result<Self, ServerError> {
        config.validate()?;
        let tls = match &config.tls {
            None => None,
            Some(files) => Some(tls_config(
                &files.cert,
                &files.key,
                files.client_ca.as_deref(),
            )?),
        };
        let script = match &config.eliza_script {
            None => Script::doctor(),
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| ServerError::ReadScript {
                        path: path.clone(),
                        source,
                    })?;
                Arc::new(Script::parse(&text).map_err(|source| ServerError::Script {
                    path: path.clone(),
                    source,
                })?)
            }
        };
        let simulator = Simulator::new(config.sim.clone());
        let reflection = Reflection::for_basic_server()?;
        let json = Schema::new(reflection.files())?;
        let service = BasicHandler {
            simulator: simulator.clone(),
            script,
            max_processes: config.limits.max_processes,
            max_talk_message_bytes: config.limits.max_talk_message_bytes,
        };
        Ok(Self {
            config,
            tls,
            service,
            simulator,
            reflection,
            json,
            metrics_listener: None,
        })
    }
}

impl<S> BasicServer<S>
where
    S: BasicService + Send + Sync + 'static,
{
    /// The service implementation, to call its methods in-process (benchmarks).
    pub fn handler(&self) -> &S {
        &self.service
    }

    /// Replaces the service implementation, keeping everything else.
    pub fn map_service<T>(self, f: impl FnOnce(S) -> T) -> BasicServer<T> {
        BasicServer {
            config: self.config,
            tls: self.tls,
            service: f(self.service),
            simulator: self.simulator,
            reflection: self.reflection,
            json: self.json,
            metrics_listener: self.metrics_listener,
        }
    }

    /// Serves Prometheus metrics on `listener` (bound by the caller, like the main one).
    pub fn metrics_listener(mut self, listener: TcpListener) -> Self {
        self.metrics_listener = Some(listener);
        self
    }

    /// The simulator behind Background (its active-worker count shows running work).
    pub fn simulator(&self) -> &Simulator {
        &self.simulator
    }

    /// Serves on `listener` until `shutdown` completes, then shuts down gracefully.
    ///
    /// With [`metrics_listener`](BasicServer::metrics_listener), the metrics endpoint
    /// lives as long as the server.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let config = self.config;
        let addr = listener.local_addr().map_err(ServerError::Listen)?;
        let grace = config.shutdown.grace;
        let tls = self.tls;
        let metrics = match self.metrics_listener {
            None => None,
            Some(listener) => {
                let handle = crate::ops::prometheus::install();
                let local = listener.local_addr().map_err(ServerError::Listen)?;
                tracing::info!(addr = %local, "Prometheus metrics on http://{local}/metrics");
                let stop = CancellationToken::new();
                let stopped = stop.clone();
                tokio::spawn(crate::ops::prometheus::serve(
                    listener,
                    handle,
                    async move { stopped.cancelled().await },
                ));
                Some(stop.drop_guard())
            }
        };
        let (health_reporter, health) = HealthReporter::new();
        let (traces, flush_traces) = Traces::new(&config.traces, addr)?;

        let streams_end = StreamsEnd::default();
        let pipeline = Pipeline {
            handlers: Services {
                basic: self.service,
                health,
                reflection: self.reflection,
            },
            admission: Admission::new(
                config.access.auth_token.as_deref(),
                config.limits.max_in_flight,
                config.limits.max_in_flight_per_connection,
            ),
            max_message_bytes: config.limits.max_message_bytes,
            waits: Waits {
                request: config.limits.request_timeout,
                stream_idle: config.limits.stream_idle_timeout,
            },
            metrics: Arc::default(),
            streams_end: streams_end.clone(),
            traces,
            json: self.json,
        };
        let front = Arc::new(Front::new(pipeline, &config.access.cors_allowed_origins));

        let stop_accepting = CancellationToken::new();
        let (incoming, accepting) = Acceptor::new(
            listener,
            tls.clone(),
            config.http2.handshake_timeout,
            config.limits.max_connections,
            stop_accepting.clone(),
        );
        let connections = TaskTracker::new();
        let go_away = CancellationToken::new();
        // Tracked with the connections: it ends once the listener is closed and has
        // handed over its last connection, and the grace period bounds that too.
        connections.spawn(serve_connections(
            incoming,
            front,
            config.http2,
            connections.clone(),
            go_away.clone(),
        ));
        tracing::info!(
            %addr,
            tls = tls.is_some(),
            mtls = config.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
            auth = config.access.auth_token.is_some(),
            "basic.v1.BasicService listening"
        );

        shutdown.await;
        // Spans still queued get what is left of the drain and grace periods (at least
        // a second) once the calls are done.
        let flush_by = tokio::time::Instant::now() + config.shutdown.drain + grace;
        Shutdown {
            health: health_reporter,
            drain: config.shutdown.drain,
            stop_accepting,
            accepting,
            go_away,
            connections,
            grace,
            streams_end,
        }
        .run()
        .await;
        let flush_within = flush_by
            .saturating_duration_since(tokio::time::Instant::now())
            .max(std::time::Duration::from_secs(1));
        flush_traces.run(flush_within).await;
        drop(metrics);
        crate::ops::access_log::flush_suppressed();
        tracing::info!("server stopped");
        Ok(())
    }
}

/// The handler of each service generated from `idl/`: the one place where a service
/// meets its implementation. Each call goes to its service's generated `serve_*`
/// function, which picks the RPC and its stream shape.
struct Services<S> {
    /// `basic.v1.BasicService`.
    basic: S,
    /// `grpc.health.v1.Health`.
    health: HealthHandler,
    /// `grpc.reflection.v1.ServerReflection` and `v1alpha`.
    reflection: Reflection,
}

impl<S> Handlers for Services<S>
where
    S: BasicService + Send + Sync + 'static,
{
    async fn serve(&self, route: Route, calls: Incoming) -> Result<Response<BoxBody>, Status> {
        let index = route.method.index;
        if route.is_of(&BASIC_SERVICE_RPCS) {
            serve_basic_service(&self.basic, index, calls).await
        } else if route.is_of(&HEALTH_RPCS) {
            serve_health(&self.health, index, calls).await
        } else if route.is_of(&v1::SERVER_REFLECTION_RPCS) {
            v1::serve_server_reflection(&self.reflection, index, calls).await
        } else if route.is_of(&v1alpha::SERVER_REFLECTION_RPCS) {
            v1alpha::serve_server_reflection(&self.reflection, index, calls).await
        } else {
            Err(status::unknown_method(route.path()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_generated_rpc_has_a_handler() {
        let server = BasicServer::new(Config::default()).expect("default config");
        let (_, health) = HealthReporter::new();
        let services = Services {
            basic: server.service,
            health,
            reflection: server.reflection,
        };
        for &route in Route::all() {
            let calls = Incoming::new(
                http::HeaderMap::new(),
                http::Extensions::new(),
                BoxBody::default(),
                None,
                None,
            );
            // An empty body: one-message RPCs fail to read it, streams start; no RPC
            // is unknown.
            if let Err(status) = services.serve(route, calls).await {
                assert_ne!(
                    status.code(),
                    volo_grpc::Code::Unimplemented,
                    "{}: {status:?}",
                    route.path()
                );
            }
        }
    }
}
