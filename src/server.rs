//! Builds and runs the server: layers, services, and graceful shutdown.
//!
//! [`BasicServer::serve`] takes an already bound listener and a shutdown future, like
//! mini-redis's `server::run`: the binary passes SIGINT/SIGTERM, tests pass a oneshot.
//! It assembles volo-grpc's router and our layers itself and runs them on connections
//! from [`crate::net`] through [`crate::dispatch`], rather than through volo's `Server`,
//! whose accept loop has no idle timeout, blocks on TLS handshakes and cannot bound
//! shutdown.
//!
//! Shutdown, when the future completes, goes through the phases of [`crate::shutdown`]:
//! drain, stop accepting, GOAWAY and a grace period for open calls, then UNAVAILABLE for
//! the streams still open. volo's own graceful shutdown would wait forever on a stream
//! that never ends.

use std::{future::Future, sync::Arc};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use volo_gen::{
    basic::v1::BasicService,
    grpc::{
        health::v1::HealthServer,
        reflection::{v1, v1alpha},
    },
};
use volo_grpc::{
    codec::compression::{CompressionEncoding, GzipConfig, ZstdConfig},
    server::ServiceBuilder,
};

use crate::{
    codec::BasicCodec,
    config::Config,
    dispatch::Dispatch,
    eliza::Script,
    error::ServerError,
    handlers::BasicHandler,
    health::HealthReporter,
    layers::{AdmitLayer, MessageSizeLayer, TrackLayer, message_size::Timeouts},
    net::{Acceptor, serve_connections},
    reflection::Reflection,
    router::Services,
    shutdown::{Shutdown, StreamsEnd},
    simulator::Simulator,
    tls::tls_config,
    web::Front,
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
            metrics_listener: None,
        })
    }
}

impl<S> BasicServer<S>
where
    S: BasicService + Send + Sync + 'static,
{
    /// Replaces the service implementation, keeping everything else.
    pub fn map_service<T>(self, f: impl FnOnce(S) -> T) -> BasicServer<T> {
        BasicServer {
            config: self.config,
            tls: self.tls,
            service: f(self.service),
            simulator: self.simulator,
            reflection: self.reflection,
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
                let handle = crate::prometheus::install();
                let local = listener.local_addr().map_err(ServerError::Listen)?;
                tracing::info!(addr = %local, "Prometheus metrics on http://{local}/metrics");
                let stop = CancellationToken::new();
                let stopped = stop.clone();
                tokio::spawn(crate::prometheus::serve(listener, handle, async move {
                    stopped.cancelled().await
                }));
                Some(stop.drop_guard())
            }
        };
        let (health_reporter, health) = HealthReporter::new();
        let compressions = || {
            vec![
                CompressionEncoding::Gzip(Some(GzipConfig::default())),
                CompressionEncoding::Zstd(Some(ZstdConfig::default())),
            ]
        };

        // Every service accepts what MessageSize decompresses, so an unknown
        // `grpc-encoding` is UNIMPLEMENTED everywhere (not INTERNAL on some).
        let router = Services {
            basic: BasicCodec::new(self.service, compressions(), compressions()),
            health: ServiceBuilder::new(HealthServer::new(health))
                .accept_compressions(compressions())
                .build(),
            reflection_v1: ServiceBuilder::new(v1::ServerReflectionServer::new(
                self.reflection.clone(),
            ))
            .accept_compressions(compressions())
            .build(),
            reflection_v1alpha: ServiceBuilder::new(v1alpha::ServerReflectionServer::new(
                self.reflection,
            ))
            .accept_compressions(compressions())
            .build(),
        };
        // A request passes the layers in this order:
        // Front (HTTP: gRPC-Web, CORS, the page, 415) -> MessageSize (HTTP body)
        //   -> Dispatch -> Track -> Admit -> Services (by route) -> decode -> handler.
        // Tracking comes first so it sees every outcome, refusals included.
        let streams_end = StreamsEnd::default();
        let layers = motore::builder::ServiceBuilder::new()
            .layer(TrackLayer::new(streams_end.clone()))
            .layer(AdmitLayer::new(
                config.access.auth_token.as_deref(),
                config.limits.max_in_flight,
                config.limits.max_in_flight_per_connection,
            ))
            .service(router);
        // One stack for all connections; each connection gets a cheap handle to it.
        let layers = Arc::new(layers);
        let message_size = MessageSizeLayer::new(
            config.limits.max_message_bytes,
            Timeouts {
                request: config.limits.request_timeout,
                stream_idle: config.limits.stream_idle_timeout,
            },
        );
        let front = Front::new((), &config.access.cors_allowed_origins);
        let make_service = move |peer| {
            front.wrap(tower::Layer::layer(
                &message_size,
                Dispatch::new(Arc::clone(&layers), peer),
            ))
        };

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
            make_service,
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
        drop(metrics);
        tracing::info!("server stopped");
        Ok(())
    }
}
