//! Builds and runs the server: layers, services, and graceful shutdown.
//!
//! [`BasicServer::serve`] takes an already bound listener and a shutdown future, like
//! mini-redis's `server::run`: the binary passes SIGINT/SIGTERM, tests pass a oneshot.
//!
//! Shutdown: when the future completes the server stops accepting, tells clients to go
//! away (HTTP/2 GOAWAY) and lets open calls finish for the grace period. Then it tells
//! the streams still open to end (they finish with UNAVAILABLE), allows a moment for
//! those statuses to be written, and returns. volo's own graceful shutdown would wait
//! forever on a stream that never ends.

use std::{future::Future, sync::Arc, time::Duration};

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use volo_gen::basic::v1::{BasicService, BasicServiceServer};
use volo_grpc::server::{Server, ServiceBuilder};

use crate::{
    config::Config,
    eliza::Script,
    error::ServerError,
    handlers::BasicHandler,
    layers::{AccessLogLayer, CatchPanicLayer, RequestIdLayer},
    simulator::Simulator,
};

/// How long streams get to write their final status after being told to end.
const FINAL_FLUSH: Duration = Duration::from_secs(1);

/// A configured server, ready to [`serve`](BasicServer::serve).
///
/// `S` is the `BasicService` implementation: [`BasicHandler`] in production; tests may
/// wrap it (e.g. to inject a panic) with [`map_service`](BasicServer::map_service).
pub struct BasicServer<S = BasicHandler> {
    config: Config,
    service: S,
    simulator: Simulator,
    streams_end: CancellationToken,
}

impl BasicServer<BasicHandler> {
    /// Prepares a server: loads the ELIZA script and the simulator.
    pub fn new(config: Config) -> Result<Self, ServerError> {
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
        let streams_end = CancellationToken::new();
        let service = BasicHandler {
            simulator: simulator.clone(),
            script,
            max_processes: config.max_processes,
            max_talk_message_bytes: config.max_talk_message_bytes,
            streams_end: streams_end.clone(),
        };
        Ok(Self {
            config,
            service,
            simulator,
            streams_end,
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
            service: f(self.service),
            simulator: self.simulator,
            streams_end: self.streams_end,
        }
    }

    /// The simulator behind Background (its active-worker count shows running work).
    pub fn simulator(&self) -> &Simulator {
        &self.simulator
    }

    /// Serves on `listener` until `shutdown` completes, then shuts down gracefully.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()>,
    ) -> Result<(), ServerError> {
        let addr = listener.local_addr().map_err(ServerError::Listen)?;
        let grace = self.config.shutdown_grace;

        // A request passes the layers in this order:
        // RequestId -> AccessLog -> CatchPanic -> router -> decode -> handler.
        let server = Server::new()
            .layer(RequestIdLayer)
            .layer(AccessLogLayer)
            .layer(CatchPanicLayer)
            .add_service(ServiceBuilder::new(BasicServiceServer::new(self.service)).build());

        let (stop_accepting, accepting_stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = server.run_with_shutdown(
            volo::net::incoming::DefaultIncoming::from(listener),
            async move {
                // A dropped sender means the same as a send: stop.
                let _ = accepting_stopped.await;
                Ok(())
            },
        );
        tokio::pin!(serving);
        tracing::info!(%addr, "basic.v1.BasicService listening");

        tokio::select! {
            result = &mut serving => return result.map_err(ServerError::Serve),
            () = shutdown => {}
        }
        tracing::info!(
            grace_secs = grace.as_secs_f64(),
            "shutting down: letting open calls finish"
        );
        // The receiver lives inside `serving`, which is still alive here.
        let _ = stop_accepting.send(());
        match tokio::time::timeout(grace, &mut serving).await {
            Ok(result) => result.map_err(ServerError::Serve)?,
            Err(_) => {
                tracing::warn!("grace period over: ending open streams with UNAVAILABLE");
                self.streams_end.cancel();
                if tokio::time::timeout(FINAL_FLUSH, &mut serving)
                    .await
                    .is_err()
                {
                    tracing::warn!("some connections did not close in time; stopping anyway");
                }
            }
        }
        tracing::info!("server stopped");
        Ok(())
    }
}
