//! What operators use: health checks, server reflection, metrics, the access log,
//! logging and the phases of a graceful shutdown.
//!
//! - [`health`]: `grpc.health.v1.Health` (SERVING until shutdown starts).
//! - [`reflection`]: gRPC server reflection (v1 and v1alpha) from the descriptors the
//!   generated code carries, so grpcurl and similar tools work without `.proto` files.
//! - [`metrics`] (the per-call handles) and [`prometheus`] (the recorder and the
//!   `/metrics` endpoint).
//! - [`access_log`]: one line per call, when it ends. [`logging`]: how the binary logs
//!   (a writer thread that batches, a cheap text line format).
//! - [`shutdown`]: drain, stop accepting, GOAWAY, grace, then end open streams.
//! - [`traces`]: OpenTelemetry spans, one per call, W3C trace context in, OTLP out.

pub(crate) mod access_log;
pub(crate) mod health;
pub mod logging;
pub(crate) mod metrics;
pub(crate) mod prometheus;
pub(crate) mod reflection;
pub(crate) mod shutdown;
pub(crate) mod traces;
