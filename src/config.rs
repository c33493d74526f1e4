//! Server configuration: command-line flags (each also an env var) and their validation.
//!
//! Two stages, as in ripgrep: [`Args`] mirrors the command line; [`Config`] is the
//! checked, typed result the rest of the crate uses. Nothing downstream sees a raw flag.
//! [`Config`] is grouped by concern ([`Limits`], [`Http2Settings`], [`Shutdown`],
//! [`TlsFiles`], [`Access`], [`SimConfig`]) and every default is written once, in
//! [`defaults`], which both the flags and the `Default` impls read. Tests build a
//! [`Config`] directly (`Config::default()` plus the fields they need).

use std::{net::SocketAddr, ops::RangeInclusive, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

pub use crate::front::{AllowedOrigins, BadOrigin};
pub use crate::ops::traces::TraceConfig;
use crate::service::SimConfig;

/// The address the server listens on when none is given (and where clients connect).
pub const DEFAULT_ADDR: &str = "127.0.0.1:50051";

/// The default of every flag, written once: the flags' `default_value_t` and the
/// `Default` impls of the config groups (and of [`SimConfig`]) both read these.
///
/// Durations are typed; the flags take whole seconds (or milliseconds for the
/// simulator), so keep these whole too. A timeout that a flag can turn off with 0 is
/// on by default, so its default here is the duration itself.
pub mod defaults {
    use std::time::Duration;

    /// `--max-processes`.
    pub const MAX_PROCESSES: u32 = 1000;
    /// `--max-talk-message-bytes`.
    pub const MAX_TALK_MESSAGE_BYTES: usize = 4096;
    /// `--max-message-bytes`.
    pub const MAX_MESSAGE_BYTES: usize = 4 * 1024 * 1024;
    /// `--max-in-flight`.
    pub const MAX_IN_FLIGHT: usize = 10_000;
    /// `--max-in-flight-per-connection`.
    pub const MAX_IN_FLIGHT_PER_CONNECTION: usize = 500;
    /// `--max-connections`.
    pub const MAX_CONNECTIONS: usize = 10_000;
    /// `--request-timeout-secs`.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
    /// `--stream-idle-timeout-secs`.
    pub const STREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

    /// `--max-concurrent-streams`.
    pub const MAX_CONCURRENT_STREAMS: u32 = 1024;
    /// `--keepalive-interval-secs`.
    pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(60);
    /// `--keepalive-timeout-secs`.
    pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);
    /// `--idle-timeout-secs`.
    pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
    /// `--handshake-timeout-secs`.
    pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
    /// `--max-header-list-bytes`.
    pub const MAX_HEADER_LIST_BYTES: u32 = 16 * 1024;

    /// `--shutdown-drain-secs`.
    pub const SHUTDOWN_DRAIN: Duration = Duration::ZERO;
    /// `--shutdown-grace-secs`.
    pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

    /// `--sim-delay-min-ms` (the simulator's own default).
    pub const SIM_DELAY_MIN: Duration = super::SimConfig::DELAY_MIN;
    /// `--sim-delay-max-ms`.
    pub const SIM_DELAY_MAX: Duration = super::SimConfig::DELAY_MAX;
    /// `--sim-failure-rate`.
    pub const SIM_FAILURE_RATE: f64 = super::SimConfig::FAILURE_RATE;
}

/// Command-line flags of the server binary.
#[derive(Debug, Parser)]
#[command(
    name = "basic-service",
    version,
    about = "basic.v1.BasicService on volo-grpc"
)]
pub struct Args {
    /// Address to listen on (plaintext HTTP/2 unless --tls-cert is given).
    #[arg(long, env = "BASIC_ADDR", default_value = DEFAULT_ADDR)]
    pub addr: SocketAddr,

    /// Largest `processes` a Background call may ask for.
    #[arg(long, env = "BASIC_MAX_PROCESSES", default_value_t = defaults::MAX_PROCESSES)]
    pub max_processes: u32,

    /// Shortest simulated service call, in milliseconds.
    #[arg(
        long,
        env = "BASIC_SIM_DELAY_MIN_MS",
        default_value_t = defaults::SIM_DELAY_MIN.as_millis() as u64
    )]
    pub sim_delay_min_ms: u64,

    /// Longest simulated service call, in milliseconds.
    #[arg(
        long,
        env = "BASIC_SIM_DELAY_MAX_MS",
        default_value_t = defaults::SIM_DELAY_MAX.as_millis() as u64
    )]
    pub sim_delay_max_ms: u64,

    /// Probability (0.0 to 1.0) that a simulated service call fails.
    #[arg(long, env = "BASIC_SIM_FAILURE_RATE", default_value_t = defaults::SIM_FAILURE_RATE)]
    pub sim_failure_rate: f64,

    /// Seed for the simulator's random choices, for reproducible runs.
    #[arg(long, env = "BASIC_SIM_SEED")]
    pub sim_seed: Option<u64>,

    /// Longest Talk message accepted, in bytes.
    #[arg(
        long,
        env = "BASIC_MAX_TALK_MESSAGE_BYTES",
        default_value_t = defaults::MAX_TALK_MESSAGE_BYTES
    )]
    pub max_talk_message_bytes: usize,

    /// Seconds to keep serving after SIGINT/SIGTERM while health reports NOT_SERVING, so
    /// load balancers and probes move traffic away before connections are closed.
    #[arg(
        long,
        env = "BASIC_SHUTDOWN_DRAIN_SECS",
        default_value_t = defaults::SHUTDOWN_DRAIN.as_secs()
    )]
    pub shutdown_drain_secs: u64,

    /// Seconds that open calls get to finish after SIGINT/SIGTERM.
    #[arg(
        long,
        env = "BASIC_SHUTDOWN_GRACE_SECS",
        default_value_t = defaults::SHUTDOWN_GRACE.as_secs()
    )]
    pub shutdown_grace_secs: u64,

    /// Log line format.
    #[arg(long, env = "BASIC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// An ELIZA script to use instead of the built-in 1966 DOCTOR script.
    #[arg(long, env = "BASIC_ELIZA_SCRIPT")]
    pub eliza_script: Option<PathBuf>,

    /// Serve TLS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "BASIC_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "BASIC_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Require client certificates signed by this CA (PEM): mutual TLS.
    #[arg(long, env = "BASIC_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,

    /// Seconds a new connection gets to finish the TLS handshake (with TLS) and send
    /// the HTTP/2 connection preface; slower connections are closed.
    #[arg(
        long,
        alias = "tls-handshake-timeout-secs",
        env = "BASIC_HANDSHAKE_TIMEOUT_SECS",
        default_value_t = defaults::HANDSHAKE_TIMEOUT.as_secs()
    )]
    pub handshake_timeout_secs: u64,

    /// Connections open at once; at the cap, new ones wait in the listen backlog.
    #[arg(long, env = "BASIC_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Require `authorization: Bearer <token>` on every call but health and reflection.
    #[arg(long, env = "BASIC_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// Largest request message accepted (after decompression), in bytes.
    #[arg(
        long,
        env = "BASIC_MAX_MESSAGE_BYTES",
        default_value_t = defaults::MAX_MESSAGE_BYTES
    )]
    pub max_message_bytes: usize,

    /// HTTP/2 streams (calls) one connection may have open at once.
    #[arg(
        long,
        env = "BASIC_MAX_CONCURRENT_STREAMS",
        default_value_t = defaults::MAX_CONCURRENT_STREAMS
    )]
    pub max_concurrent_streams: u32,

    /// Calls in flight across all connections; more fail fast with RESOURCE_EXHAUSTED.
    #[arg(long, env = "BASIC_MAX_IN_FLIGHT", default_value_t = defaults::MAX_IN_FLIGHT)]
    pub max_in_flight: usize,

    /// Calls in flight on one connection; more fail fast with RESOURCE_EXHAUSTED, so
    /// one client cannot take the whole --max-in-flight pool.
    #[arg(
        long,
        env = "BASIC_MAX_IN_FLIGHT_PER_CONNECTION",
        default_value_t = defaults::MAX_IN_FLIGHT_PER_CONNECTION
    )]
    pub max_in_flight_per_connection: usize,

    /// Seconds a unary call's request message may take to arrive; 0: no limit.
    #[arg(
        long,
        env = "BASIC_REQUEST_TIMEOUT_SECS",
        default_value_t = defaults::REQUEST_TIMEOUT.as_secs()
    )]
    pub request_timeout_secs: u64,

    /// Seconds a client stream (Talk, reflection) may keep the server waiting for its
    /// next message; 0: no limit.
    #[arg(
        long,
        env = "BASIC_STREAM_IDLE_TIMEOUT_SECS",
        default_value_t = defaults::STREAM_IDLE_TIMEOUT.as_secs()
    )]
    pub stream_idle_timeout_secs: u64,

    /// Largest header block (request metadata) accepted, in bytes.
    #[arg(
        long,
        env = "BASIC_MAX_HEADER_LIST_BYTES",
        default_value_t = defaults::MAX_HEADER_LIST_BYTES
    )]
    pub max_header_list_bytes: u32,

    /// Seconds between HTTP/2 keepalive pings; 0 turns them off.
    #[arg(
        long,
        env = "BASIC_KEEPALIVE_INTERVAL_SECS",
        default_value_t = defaults::KEEPALIVE_INTERVAL.as_secs()
    )]
    pub keepalive_interval_secs: u64,

    /// Seconds to wait for a ping's answer before dropping the connection.
    #[arg(
        long,
        env = "BASIC_KEEPALIVE_TIMEOUT_SECS",
        default_value_t = defaults::KEEPALIVE_TIMEOUT.as_secs()
    )]
    pub keepalive_timeout_secs: u64,

    /// Seconds a connection may stay open with no call before it is closed; 0: never.
    #[arg(
        long,
        env = "BASIC_IDLE_TIMEOUT_SECS",
        default_value_t = defaults::IDLE_TIMEOUT.as_secs()
    )]
    pub idle_timeout_secs: u64,

    /// Seconds after which a connection is told to go away (GOAWAY; HTTP/1.1:
    /// `Connection: close` on its next response), with ±10 % jitter, so clients
    /// reconnect and a layer-4 balancer spreads them over new replicas; 0: never.
    #[arg(long, env = "BASIC_MAX_CONNECTION_AGE_SECS", default_value_t = 0)]
    pub max_connection_age_secs: u64,

    /// Seconds calls still open on a connection past its maximum age may take before
    /// the connection is closed; 0: as long as they need.
    #[arg(long, env = "BASIC_MAX_CONNECTION_AGE_GRACE_SECS", default_value_t = 0)]
    pub max_connection_age_grace_secs: u64,

    /// Seconds an HTTP/1.1 client may take to send a request's head (line and
    /// headers); slower connections are closed. Default: --handshake-timeout-secs.
    #[arg(long, env = "BASIC_HTTP1_HEADER_READ_TIMEOUT_SECS")]
    pub http1_header_read_timeout_secs: Option<u64>,

    /// Serve Prometheus metrics on this address (off unless set).
    #[arg(long, env = "BASIC_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Trace health checks and reflection calls too (when traces are exported: set
    /// OTEL_EXPORTER_OTLP_ENDPOINT; see the OpenTelemetry variables in the docs).
    #[arg(long, env = "BASIC_TRACE_HEALTH_AND_REFLECTION")]
    pub trace_health_and_reflection: bool,

    /// Origins whose web pages may call the server from a browser (CORS), as
    /// `scheme://host[:port]`, comma-separated; `*` allows any. The server's own page
    /// at / needs none.
    #[arg(long, env = "BASIC_CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

/// A flag value that parses but makes no sense. Each names its flag (without `--`).
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("--sim-delay-min-ms ({min}) must not exceed --sim-delay-max-ms ({max})")]
    DelayRange { min: u64, max: u64 },
    #[error("--sim-failure-rate must be between 0.0 and 1.0, got {0}")]
    FailureRate(f64),
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    #[error("--auth-token must not be empty")]
    EmptyToken,
    #[error("--{0} is too large")]
    TooLarge(&'static str),
    #[error("--{0} must be at least {1}")]
    TooSmall(&'static str, u32),
    #[error(transparent)]
    Cors(#[from] BadOrigin),
}

/// The validated configuration the server runs with, one group per concern.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// What clients may ask for and hold: message sizes, calls, connections, waits.
    pub limits: Limits,
    /// The HTTP/2 settings of every connection, as the server's connections apply them.
    pub http2: Http2Settings,
    /// How the server stops on SIGINT/SIGTERM.
    pub shutdown: Shutdown,
    /// TLS certificate, key and optional client CA; `None` serves plaintext.
    pub tls: Option<TlsFiles>,
    /// Who may call: the bearer token and the browser origins.
    pub access: Access,
    /// The service simulator behind Background.
    pub sim: SimConfig,
    /// ELIZA script file; `None` means the built-in DOCTOR script.
    pub eliza_script: Option<PathBuf>,
    /// Where to serve Prometheus metrics; `None` serves none. (The binary binds it and
    /// hands the listener to [`crate::BasicServer::metrics_listener`].)
    pub metrics_addr: Option<SocketAddr>,
    /// OpenTelemetry traces (the `OTEL_*` variables configure the rest).
    pub traces: TraceConfig,
}

/// Bounds on what clients may ask for and hold. Refusals are per call
/// (`INVALID_ARGUMENT`, `RESOURCE_EXHAUSTED`, `DEADLINE_EXCEEDED`), except
/// `max_connections`, which makes new connections wait.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Largest `processes` a Background call may ask for.
    pub max_processes: u32,
    /// Longest Talk message accepted, in bytes.
    pub max_talk_message_bytes: usize,
    /// Largest request message accepted, after decompression.
    pub max_message_bytes: usize,
    /// Calls in flight across all connections.
    pub max_in_flight: usize,
    /// Calls in flight on one connection.
    pub max_in_flight_per_connection: usize,
    /// Connections open at once.
    pub max_connections: usize,
    /// Longest wait for a unary call's request message; `None`: no limit.
    pub request_timeout: Option<Duration>,
    /// Longest wait for a client stream's next message; `None`: no limit.
    pub stream_idle_timeout: Option<Duration>,
}

/// Graceful shutdown: first `drain`, then `grace`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shutdown {
    /// Time between reporting NOT_SERVING and closing connections.
    pub drain: Duration,
    /// Time open calls get to finish once connections are told to close.
    pub grace: Duration,
}

/// PEM files for TLS.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With a client CA, clients must present a certificate it signed (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// Who may call, beyond what TLS checks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Access {
    /// Bearer token every call but health and reflection must carry; `None`: no auth.
    pub auth_token: Option<String>,
    /// Foreign origins whose pages may call from a browser (CORS).
    pub cors_allowed_origins: AllowedOrigins,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_processes: defaults::MAX_PROCESSES,
            max_talk_message_bytes: defaults::MAX_TALK_MESSAGE_BYTES,
            max_message_bytes: defaults::MAX_MESSAGE_BYTES,
            max_in_flight: defaults::MAX_IN_FLIGHT,
            max_in_flight_per_connection: defaults::MAX_IN_FLIGHT_PER_CONNECTION,
            max_connections: defaults::MAX_CONNECTIONS,
            request_timeout: Some(defaults::REQUEST_TIMEOUT),
            stream_idle_timeout: Some(defaults::STREAM_IDLE_TIMEOUT),
        }
    }
}

/// Here rather than beside the type (in `net`), so that every default lives in this
/// module.
/// HTTP/2 settings of every connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Http2Settings {
    /// Streams (calls) one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Ping interval; `None` sends no pings.
    pub keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is dropped.
    pub keepalive_timeout: Duration,
    /// A connection with no call open for this long is closed (GOAWAY); `None`: never.
    /// (Checked in steps of this length, so closing takes up to twice as long.)
    pub idle_timeout: Option<Duration>,
    /// Time a connection gets to complete its TLS handshake (when TLS is on) and to send
    /// the HTTP/2 preface; also how long a connection told to go away for being idle may
    /// take to close before it is dropped.
    pub handshake_timeout: Duration,
    /// Largest request header block, in bytes (advertised in SETTINGS, enforced by h2).
    pub max_header_list_bytes: u32,
    /// A connection is told to go away after about this long (±10 % jitter); `None`:
    /// never.
    pub max_connection_age: Option<Duration>,
    /// How long calls still open then may take before the connection is closed;
    /// `None`: as long as they need.
    pub max_connection_age_grace: Option<Duration>,
    /// Time an HTTP/1.1 client gets to send each request's head.
    pub http1_header_read_timeout: Duration,
}

impl Default for Http2Settings {
    fn default() -> Self {
        Self {
            max_concurrent_streams: defaults::MAX_CONCURRENT_STREAMS,
            keepalive_interval: Some(defaults::KEEPALIVE_INTERVAL),
            keepalive_timeout: defaults::KEEPALIVE_TIMEOUT,
            idle_timeout: Some(defaults::IDLE_TIMEOUT),
            handshake_timeout: defaults::HANDSHAKE_TIMEOUT,
            max_header_list_bytes: defaults::MAX_HEADER_LIST_BYTES,
            max_connection_age: None,
            max_connection_age_grace: None,
            http1_header_read_timeout: defaults::HANDSHAKE_TIMEOUT,
        }
    }
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            drain: defaults::SHUTDOWN_DRAIN,
            grace: defaults::SHUTDOWN_GRACE,
        }
    }
}

impl TryFrom<&Args> for Config {
    type Error = ConfigError;

    fn try_from(args: &Args) -> Result<Self, ConfigError> {
        // clap's `requires` guarantees cert and key come together.
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                client_ca: args.tls_client_ca.clone(),
            }),
            _ => None,
        };
        let config = Self {
            limits: Limits {
                max_processes: args.max_processes,
                max_talk_message_bytes: args.max_talk_message_bytes,
                max_message_bytes: args.max_message_bytes,
                max_in_flight: args.max_in_flight,
                max_in_flight_per_connection: args.max_in_flight_per_connection,
                max_connections: args.max_connections,
                request_timeout: secs_or_none(args.request_timeout_secs),
                stream_idle_timeout: secs_or_none(args.stream_idle_timeout_secs),
            },
            http2: Http2Settings {
                max_concurrent_streams: args.max_concurrent_streams,
                keepalive_interval: secs_or_none(args.keepalive_interval_secs),
                keepalive_timeout: Duration::from_secs(args.keepalive_timeout_secs),
                idle_timeout: secs_or_none(args.idle_timeout_secs),
                handshake_timeout: Duration::from_secs(args.handshake_timeout_secs),
                max_header_list_bytes: args.max_header_list_bytes,
                max_connection_age: secs_or_none(args.max_connection_age_secs),
                max_connection_age_grace: secs_or_none(args.max_connection_age_grace_secs),
                http1_header_read_timeout: Duration::from_secs(
                    args.http1_header_read_timeout_secs
                        .unwrap_or(args.handshake_timeout_secs),
                ),
            },
            shutdown: Shutdown {
                drain: Duration::from_secs(args.shutdown_drain_secs),
                grace: Duration::from_secs(args.shutdown_grace_secs),
            },
            tls,
            access: Access {
                auth_token: args.auth_token.clone(),
                cors_allowed_origins: AllowedOrigins::parse(&args.cors_allowed_origins)?,
            },
            sim: SimConfig {
                delay: millis(args.sim_delay_min_ms..=args.sim_delay_max_ms),
                failure_rate: args.sim_failure_rate,
                seed: args.sim_seed,
            },
            eliza_script: args.eliza_script.clone(),
            metrics_addr: args.metrics_addr,
            traces: TraceConfig {
                otel_env: true,
                health_and_reflection: args.trace_health_and_reflection,
            },
        };
        config.validate()?;
        Ok(config)
    }
}

/// Smaller header limits would refuse ordinary gRPC requests (path, content type,
/// authority, user agent, deadline, a bearer token and a request id fit easily).
const MIN_HEADER_LIST: u32 = 1024;

/// Durations beyond this are refused: they are typos, and some would overflow timers.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

impl Config {
    /// Checks values that parse but make no sense. [`crate::BasicServer::new`] calls it
    /// too, so a `Config` built in code gets the same checks as one from flags.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let Self {
            limits,
            http2,
            shutdown,
            access,
            sim,
            ..
        } = self;
        if limits.max_processes == 0 {
            return Err(ConfigError::Zero("max-processes"));
        }
        let (min, max) = (*sim.delay.start(), *sim.delay.end());
        if min > max {
            return Err(ConfigError::DelayRange {
                min: min.as_millis() as u64,
                max: max.as_millis() as u64,
            });
        }
        // `contains` is false for NaN too.
        if !(0.0..=1.0).contains(&sim.failure_rate) {
            return Err(ConfigError::FailureRate(sim.failure_rate));
        }
        for (zero, flag) in [
            (limits.max_talk_message_bytes == 0, "max-talk-message-bytes"),
            (limits.max_message_bytes == 0, "max-message-bytes"),
            (http2.max_concurrent_streams == 0, "max-concurrent-streams"),
            (limits.max_in_flight == 0, "max-in-flight"),
            (http2.handshake_timeout.is_zero(), "handshake-timeout-secs"),
            (limits.max_connections == 0, "max-connections"),
            (
                limits.max_in_flight_per_connection == 0,
                "max-in-flight-per-connection",
            ),
            (http2.keepalive_timeout.is_zero(), "keepalive-timeout-secs"),
            (
                http2.http1_header_read_timeout.is_zero(),
                "http1-header-read-timeout-secs",
            ),
        ] {
            if zero {
                return Err(ConfigError::Zero(flag));
            }
        }
        if limits.max_in_flight > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::TooLarge("max-in-flight"));
        }
        if limits.max_connections > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::TooLarge("max-connections"));
        }
        if http2.max_header_list_bytes < MIN_HEADER_LIST {
            return Err(ConfigError::TooSmall(
                "max-header-list-bytes",
                MIN_HEADER_LIST,
            ));
        }
        for (duration, flag) in [
            (Some(max), "sim-delay-max-ms"),
            (Some(shutdown.grace), "shutdown-grace-secs"),
            (Some(shutdown.drain), "shutdown-drain-secs"),
            (Some(http2.handshake_timeout), "handshake-timeout-secs"),
            (limits.request_timeout, "request-timeout-secs"),
            (limits.stream_idle_timeout, "stream-idle-timeout-secs"),
            (http2.keepalive_interval, "keepalive-interval-secs"),
            (Some(http2.keepalive_timeout), "keepalive-timeout-secs"),
            (http2.idle_timeout, "idle-timeout-secs"),
            (http2.max_connection_age, "max-connection-age-secs"),
            (
                http2.max_connection_age_grace,
                "max-connection-age-grace-secs",
            ),
            (
                Some(http2.http1_header_read_timeout),
                "http1-header-read-timeout-secs",
            ),
        ] {
            if duration.is_some_and(|d| d > MAX_DURATION) {
                return Err(ConfigError::TooLarge(flag));
            }
        }
        if access
            .auth_token
            .as_deref()
            .is_some_and(|t| t.trim().is_empty())
        {
            return Err(ConfigError::EmptyToken);
        }
        Ok(())
    }
}

/// `secs` as a duration, `None` for 0 (no limit).
fn secs_or_none(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

fn millis(range: RangeInclusive<u64>) -> RangeInclusive<Duration> {
    Duration::from_millis(*range.start())..=Duration::from_millis(*range.end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(flags: &[&str]) -> Result<Config, ConfigError> {
        let args =
            Args::try_parse_from(std::iter::once("basic-service").chain(flags.iter().copied()))
                .expect("flags parse");
        Config::try_from(&args)
    }

    #[test]
    fn config_default_is_what_no_flags_give() {
        // Both sides read `defaults`, so this now guards the Args -> Config mapping: a
        // flag wired to the wrong field (or a unit mix-up) shows up here.
        let args = Args::try_parse_from(["basic-service"]).unwrap();
        // The one difference: the binary reads the OTEL_* variables, code opts in.
        let expected = Config {
            traces: TraceConfig {
                otel_env: true,
                ..TraceConfig::default()
            },
            ..Config::default()
        };
        assert_eq!(Config::try_from(&args).unwrap(), expected);
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let args = Args::try_parse_from(["basic-service"]).unwrap();
        assert_eq!(args.addr, DEFAULT_ADDR.parse().unwrap());
        let config = Config::try_from(&args).unwrap();
        assert_eq!(config.limits.max_processes, 1000);
        assert_eq!(
            config.sim.delay,
            Duration::from_millis(1000)..=Duration::from_millis(3000)
        );
        assert_eq!(config.limits.max_talk_message_bytes, 4096);
        assert_eq!(config.shutdown.grace, Duration::from_secs(10));
    }

    #[test]
    fn connection_age_is_off_and_the_http1_head_timeout_follows_the_handshake_timeout() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.http2.max_connection_age, None);
        assert_eq!(
            config.http2.http1_header_read_timeout,
            Duration::from_secs(10)
        );
        let config = parse(&["--handshake-timeout-secs", "4"]).unwrap();
        assert_eq!(
            config.http2.http1_header_read_timeout,
            Duration::from_secs(4)
        );
        let config = parse(&[
            "--handshake-timeout-secs",
            "4",
            "--http1-header-read-timeout-secs",
            "7",
            "--max-connection-age-secs",
            "300",
            "--max-connection-age-grace-secs",
            "30",
        ])
        .unwrap();
        assert_eq!(
            config.http2.http1_header_read_timeout,
            Duration::from_secs(7)
        );
        assert_eq!(
            config.http2.max_connection_age,
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            config.http2.max_connection_age_grace,
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse(&["--http1-header-read-timeout-secs", "0"]).unwrap_err(),
            ConfigError::Zero("http1-header-read-timeout-secs")
        );
    }

    #[test]
    fn inverted_delay_range_is_refused() {
        assert_eq!(
            parse(&["--sim-delay-min-ms", "10", "--sim-delay-max-ms", "5"]).unwrap_err(),
            ConfigError::DelayRange { min: 10, max: 5 }
        );
    }

    #[test]
    fn failure_rate_outside_unit_interval_is_refused() {
        assert!(matches!(
            parse(&["--sim-failure-rate", "1.5"]),
            Err(ConfigError::FailureRate(_))
        ));
        assert!(matches!(
            parse(&["--sim-failure-rate", "NaN"]),
            Err(ConfigError::FailureRate(_))
        ));
    }

    #[test]
    fn zero_limits_are_refused() {
        assert_eq!(
            parse(&["--max-processes", "0"]).unwrap_err(),
            ConfigError::Zero("max-processes")
        );
        assert_eq!(
            parse(&["--max-talk-message-bytes", "0"]).unwrap_err(),
            ConfigError::Zero("max-talk-message-bytes")
        );
        assert_eq!(
            parse(&["--max-processes", "0"]).unwrap_err().to_string(),
            "--max-processes must be at least 1"
        );
    }

    #[test]
    fn tls_key_without_cert_is_refused_by_clap() {
        assert!(Args::try_parse_from(["basic-service", "--tls-key", "k.pem"]).is_err());
        assert!(Args::try_parse_from(["basic-service", "--tls-client-ca", "ca.pem"]).is_err());
    }

    #[test]
    fn absurd_durations_and_limits_are_refused() {
        assert_eq!(
            parse(&["--keepalive-interval-secs", "99999999999"]).unwrap_err(),
            ConfigError::TooLarge("keepalive-interval-secs")
        );
        let mut config = Config::default();
        config.limits.max_in_flight = usize::MAX;
        assert_eq!(
            config.validate().unwrap_err(),
            ConfigError::TooLarge("max-in-flight")
        );
    }

    #[test]
    fn a_config_built_in_code_is_checked_too() {
        let config = Config {
            sim: SimConfig {
                failure_rate: f64::NAN,
                ..SimConfig::default()
            },
            ..Config::default()
        };
        assert!(matches!(
            config.validate(),
            Err(ConfigError::FailureRate(_))
        ));
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn empty_auth_token_is_refused() {
        assert_eq!(
            parse(&["--auth-token", " "]).unwrap_err(),
            ConfigError::EmptyToken
        );
    }

    #[test]
    fn cors_origins_are_checked() {
        let config = parse(&[
            "--cors-allowed-origins",
            "http://localhost:5173,https://a.example",
        ])
        .unwrap();
        assert!(matches!(
            config.access.cors_allowed_origins,
            AllowedOrigins::List(ref list) if list.len() == 2
        ));
        assert!(matches!(
            parse(&["--cors-allowed-origins", "localhost:5173"]),
            Err(ConfigError::Cors(_))
        ));
    }

    #[test]
    fn unparsable_values_are_refused_by_clap() {
        let err = Args::try_parse_from(["basic-service", "--addr", "not-an-address"]).unwrap_err();
        assert!(err.to_string().contains("--addr"), "{err}");
    }
}
