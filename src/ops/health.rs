//! `grpc.health.v1.Health`: Check and Watch for load balancers and Kubernetes probes.
//!
//! The server knows two names, `""` (the whole server) and `basic.v1.BasicService` (its
//! generated name); both
//! are SERVING while the server is up and NOT_SERVING from the moment shutdown starts, so
//! balancers stop sending new calls while open ones drain. Check on any other name is
//! NOT_FOUND; Watch on it reports SERVICE_UNKNOWN, as the health-checking spec says.
//!
//! [`HealthReporter`] flips the state; [`HealthHandler`] serves it. Watch streams end
//! (UNAVAILABLE) right after reporting NOT_SERVING, so they never hold shutdown up.

use futures::StreamExt;
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use volo_gen::{
    basic::v1::BASIC_SERVICE_RPCS,
    grpc::health::v1::{
        Health, HealthCheckRequest, HealthCheckResponse, health_check_response::ServingStatus,
    },
};
use volo_grpc::{BoxStream, Request, Response, Status};

/// Service names the health service answers for.
const KNOWN_SERVICES: [&str; 2] = ["", BASIC_SERVICE_RPCS.name];

/// Sets the serving state the health service reports.
#[derive(Debug, Clone)]
pub(crate) struct HealthReporter {
    serving: std::sync::Arc<watch::Sender<bool>>,
}

impl HealthReporter {
    /// A reporter in the SERVING state, and the service reading it.
    pub(crate) fn new() -> (Self, HealthHandler) {
        let (tx, rx) = watch::channel(true);
        (
            Self {
                serving: std::sync::Arc::new(tx),
            },
            HealthHandler { serving: rx },
        )
    }

    /// Reports NOT_SERVING from now on (shutdown has started).
    pub(crate) fn set_not_serving(&self) {
        self.serving.send_replace(false);
    }
}

/// The `grpc.health.v1.Health` implementation.
#[derive(Debug, Clone)]
pub(crate) struct HealthHandler {
    serving: watch::Receiver<bool>,
}

fn status_of(serving: bool) -> HealthCheckResponse {
    HealthCheckResponse {
        status: if serving {
            ServingStatus::SERVING
        } else {
            ServingStatus::NOT_SERVING
        },
    }
}

impl Health for HealthHandler {
    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let service = req.get_ref().service.as_str();
        if !KNOWN_SERVICES.contains(&service) {
            return Err(Status::not_found(format!("unknown service {service:?}")));
        }
        Ok(Response::new(status_of(*self.serving.borrow())))
    }

    async fn watch(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<BoxStream<'static, Result<HealthCheckResponse, Status>>>, Status> {
        // The spec: an unknown name gets SERVICE_UNKNOWN once and the stream stays open
        // (the service could appear later; here it never does).
        let known = KNOWN_SERVICES.contains(&req.get_ref().service.as_str());
        let mut changes = WatchStream::new(self.serving.clone());
        Ok(Response::new(Box::pin(async_stream::stream! {
            // WatchStream yields the current value first, then each change.
            let mut first = true;
            while let Some(serving) = changes.next().await {
                if known {
                    yield Ok(status_of(serving));
                } else if first {
                    yield Ok(HealthCheckResponse { status: ServingStatus::SERVICE_UNKNOWN });
                }
                first = false;
                if !serving {
                    yield Err(Status::unavailable("server is shutting down"));
                    break;
                }
            }
        })))
    }
}
