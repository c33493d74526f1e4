//! Server configuration: command-line flags (each also an env var) and their validation.
//!
//! Two stages, as in ripgrep: [`Args`] mirrors the command line; [`Config`] is the
//! checked, typed result the rest of the crate uses. Nothing downstream sees a raw flag.
//! Tests build a [`Config`] directly (`Config::default()` plus the fields they need).

use std::{net::SocketAddr, ops::RangeInclusive, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};

use crate::{
    simulator::SimConfig,
    web::cors::{AllowedOrigins, BadOrigin},
};

/// The address the server listens on when none is given.
pub const DEFAULT_ADDR: &str = "127.0.0.1:50051";

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
    #[arg(long, env = "BASIC_MAX_PROCESSES", default_value_t = 1000)]
    pub max_processes: u32,

    /// Shortest simulated service call, in milliseconds.
    #[arg(long, env = "BASIC_SIM_DELAY_MIN_MS", default_value_t = 1000)]
    pub sim_delay_min_ms: u64,

    /// Longest simulated service call, in milliseconds.
    #[arg(long, env = "BASIC_SIM_DELAY_MAX_MS", default_value_t = 3000)]
    pub sim_delay_max_ms: u64,

    /// Probability (0.0 to 1.0) that a simulated service call fails.
    #[arg(long, env = "BASIC_SIM_FAILURE_RATE", default_value_t = 0.0)]
    pub sim_failure_rate: f64,

    /// Seed for the simulator's random choices, for reproducible runs.
    #[arg(long, env = "BASIC_SIM_SEED")]
    pub sim_seed: Option<u64>,

    /// Longest Talk message accepted, in bytes.
    #[arg(long, env = "BASIC_MAX_TALK_MESSAGE_BYTES", default_value_t = 4096)]
    pub max_talk_message_bytes: usize,

    /// Seconds to keep serving after SIGINT/SIGTERM while health reports NOT_SERVING, so
    /// load balancers and probes move traffic away before connections are closed.
    #[arg(long, env = "BASIC_SHUTDOWN_DRAIN_SECS", default_value_t = 0)]
    pub shutdown_drain_secs: u64,

    /// Seconds that open calls get to finish after SIGINT/SIGTERM.
    #[arg(long, env = "BASIC_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
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
        default_value_t = 10
    )]
    pub handshake_timeout_secs: u64,

    /// Connections open at once; at the cap, new ones wait in the listen backlog.
    #[arg(long, env = "BASIC_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,

    /// Require `authorization: Bearer <token>` on every call but health and reflection.
    #[arg(long, env = "BASIC_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// Largest request message accepted (after decompression), in bytes.
    #[arg(long, env = "BASIC_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// HTTP/2 streams (calls) one connection may have open at once.
    #[arg(long, env = "BASIC_MAX_CONCURRENT_STREAMS", default_value_t = 1024)]
    pub max_concurrent_streams: u32,

    /// Calls in flight across all connections; more fail fast with RESOURCE_EXHAUSTED.
    #[arg(long, env = "BASIC_MAX_IN_FLIGHT", default_value_t = 10_000)]
    pub max_in_flight: usize,

    /// Calls in flight on one connection; more fail fast with RESOURCE_EXHAUSTED, so
    /// one client cannot take the whole --max-in-flight pool.
    #[arg(
        long,
        env = "BASIC_MAX_IN_FLIGHT_PER_CONNECTION",
        default_value_t = 500
    )]
    pub max_in_flight_per_connection: usize,

    /// Seconds a unary call's request message may take to arrive; 0: no limit.
    #[arg(long, env = "BASIC_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,

    /// Seconds a client stream (Talk, reflection) may keep the server waiting for its
    /// next message; 0: no limit.
    #[arg(long, env = "BASIC_STREAM_IDLE_TIMEOUT_SECS", default_value_t = 300)]
    pub stream_idle_timeout_secs: u64,

    /// Largest header block (request metadata) accepted, in bytes.
    #[arg(long, env = "BASIC_MAX_HEADER_LIST_BYTES", default_value_t = 16 * 1024)]
    pub max_header_list_bytes: u32,

    /// Seconds between HTTP/2 keepalive pings; 0 turns them off.
    #[arg(long, env = "BASIC_KEEPALIVE_INTERVAL_SECS", default_value_t = 60)]
    pub keepalive_interval_secs: u64,

    /// Seconds to wait for a ping's answer before dropping the connection.
    #[arg(long, env = "BASIC_KEEPALIVE_TIMEOUT_SECS", default_value_t = 20)]
    pub keepalive_timeout_secs: u64,

    /// Seconds a connection may stay open with no call before it is closed; 0: never.
    #[arg(long, env = "BASIC_IDLE_TIMEOUT_SECS", default_value_t = 600)]
    pub idle_timeout_secs: u64,

    /// Serve Prometheus metrics on this address (off unless set).
    #[arg(long, env = "BASIC_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// Origins whose web pages may call the server from a browser (CORS), as
    /// scheme://host[:port], comma-separated; `*` allows any. The server's own page
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

/// A flag value that parses but makes no sense.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("--max-processes must be at least 1")]
    ZeroMaxProcesses,
    #[error("--sim-delay-min-ms ({min}) must not exceed --sim-delay-max-ms ({max})")]
    DelayRange { min: u64, max: u64 },
    #[error("--sim-failure-rate must be between 0.0 and 1.0, got {0}")]
    FailureRate(f64),
    #[error("--max-talk-message-bytes must be at least 1")]
    ZeroTalkLimit,
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

/// The validated configuration the server runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Largest `processes` a Background call may ask for.
    pub max_processes: u32,
    /// The service simulator behind Background.
    pub sim: SimConfig,
    /// Longest Talk message accepted, in bytes.
    pub max_talk_message_bytes: usize,
    /// Time open calls get to finish once shutdown starts.
    pub shutdown_grace: Duration,
    /// ELIZA script file; `None` means the built-in DOCTOR script.
    pub eliza_script: Option<PathBuf>,
    /// TLS certificate, key and optional client CA; `None` serves plaintext.
    pub tls: Option<TlsFiles>,
    /// Time a new connection gets for the TLS handshake and the HTTP/2 preface.
    pub handshake_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Bearer token every call but health and reflection must carry.
    pub auth_token: Option<String>,
    /// Largest request message accepted, after decompression.
    pub max_message_bytes: usize,
    /// HTTP/2 streams one connection may have open at once.
    pub max_concurrent_streams: u32,
    /// Calls in flight across all connections.
    pub max_in_flight: usize,
    /// Calls in flight on one connection.
    pub max_in_flight_per_connection: usize,
    /// Longest wait for a unary call's request message; `None`: no limit.
    pub request_timeout: Option<Duration>,
    /// Longest wait for a client stream's next message; `None`: no limit.
    pub stream_idle_timeout: Option<Duration>,
    /// Largest request header block, in bytes.
    pub max_header_list_bytes: u32,
    /// HTTP/2 keepalive ping interval; `None` sends none.
    pub keepalive_interval: Option<Duration>,
    /// How long a keepalive ping may go unanswered.
    pub keepalive_timeout: Duration,
    /// A connection with no call open for this long is closed; `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Where to serve Prometheus metrics; `None` serves none. (The binary binds it and
    /// hands the listener to [`crate::BasicServer::metrics_listener`].)
    pub metrics_addr: Option<SocketAddr>,
    /// Time between reporting NOT_SERVING and closing connections on shutdown.
    pub shutdown_drain: Duration,
    /// Foreign origins whose pages may call from a browser (CORS).
    pub cors_allowed_origins: AllowedOrigins,
}

/// PEM files for TLS.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// With a client CA, clients must present a certificate it signed (mTLS).
    pub client_ca: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_processes: 1000,
            sim: SimConfig::default(),
            max_talk_message_bytes: 4096,
            shutdown_grace: Duration::from_secs(10),
            eliza_script: None,
            tls: None,
            handshake_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            auth_token: None,
            max_message_bytes: 4 * 1024 * 1024,
            max_concurrent_streams: 1024,
            max_in_flight: 10_000,
            max_in_flight_per_connection: 500,
            request_timeout: Some(Duration::from_secs(10)),
            stream_idle_timeout: Some(Duration::from_secs(300)),
            max_header_list_bytes: 16 * 1024,
            keepalive_interval: Some(Duration::from_secs(60)),
            keepalive_timeout: Duration::from_secs(20),
            idle_timeout: Some(Duration::from_secs(600)),
            metrics_addr: None,
            shutdown_drain: Duration::ZERO,
            cors_allowed_origins: AllowedOrigins::SameOnly,
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
            max_processes: args.max_processes,
            sim: SimConfig {
                delay: millis(args.sim_delay_min_ms..=args.sim_delay_max_ms),
                failure_rate: args.sim_failure_rate,
                seed: args.sim_seed,
            },
            max_talk_message_bytes: args.max_talk_message_bytes,
            shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
            eliza_script: args.eliza_script.clone(),
            tls,
            handshake_timeout: Duration::from_secs(args.handshake_timeout_secs),
            max_connections: args.max_connections,
            auth_token: args.auth_token.clone(),
            max_message_bytes: args.max_message_bytes,
            max_concurrent_streams: args.max_concurrent_streams,
            max_in_flight: args.max_in_flight,
            max_in_flight_per_connection: args.max_in_flight_per_connection,
            request_timeout: secs_or_none(args.request_timeout_secs),
            stream_idle_timeout: secs_or_none(args.stream_idle_timeout_secs),
            max_header_list_bytes: args.max_header_list_bytes,
            keepalive_interval: (args.keepalive_interval_secs > 0)
                .then(|| Duration::from_secs(args.keepalive_interval_secs)),
            keepalive_timeout: Duration::from_secs(args.keepalive_timeout_secs),
            idle_timeout: (args.idle_timeout_secs > 0)
                .then(|| Duration::from_secs(args.idle_timeout_secs)),
            metrics_addr: args.metrics_addr,
            shutdown_drain: Duration::from_secs(args.shutdown_drain_secs),
            cors_allowed_origins: AllowedOrigins::parse(&args.cors_allowed_origins)?,
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
        if self.max_processes == 0 {
            return Err(ConfigError::ZeroMaxProcesses);
        }
        let (min, max) = (*self.sim.delay.start(), *self.sim.delay.end());
        if min > max {
            return Err(ConfigError::DelayRange {
                min: min.as_millis() as u64,
                max: max.as_millis() as u64,
            });
        }
        // `contains` is false for NaN too.
        if !(0.0..=1.0).contains(&self.sim.failure_rate) {
            return Err(ConfigError::FailureRate(self.sim.failure_rate));
        }
        if self.max_talk_message_bytes == 0 {
            return Err(ConfigError::ZeroTalkLimit);
        }
        for (zero, flag) in [
            (self.max_message_bytes == 0, "max-message-bytes"),
            (self.max_concurrent_streams == 0, "max-concurrent-streams"),
            (self.max_in_flight == 0, "max-in-flight"),
            (self.handshake_timeout.is_zero(), "handshake-timeout-secs"),
            (self.max_connections == 0, "max-connections"),
            (
                self.max_in_flight_per_connection == 0,
                "max-in-flight-per-connection",
            ),
            (self.keepalive_timeout.is_zero(), "keepalive-timeout-secs"),
        ] {
            if zero {
                return Err(ConfigError::Zero(flag));
            }
        }
        if self.max_in_flight > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::TooLarge("max-in-flight"));
        }
        if self.max_connections > tokio::sync::Semaphore::MAX_PERMITS {
            return Err(ConfigError::TooLarge("max-connections"));
        }
        if self.max_header_list_bytes < MIN_HEADER_LIST {
            return Err(ConfigError::TooSmall(
                "max-header-list-bytes",
                MIN_HEADER_LIST,
            ));
        }
        for (duration, flag) in [
            (Some(max), "sim-delay-max-ms"),
            (Some(self.shutdown_grace), "shutdown-grace-secs"),
            (Some(self.shutdown_drain), "shutdown-drain-secs"),
            (Some(self.handshake_timeout), "handshake-timeout-secs"),
            (self.request_timeout, "request-timeout-secs"),
            (self.stream_idle_timeout, "stream-idle-timeout-secs"),
            (self.keepalive_interval, "keepalive-interval-secs"),
            (Some(self.keepalive_timeout), "keepalive-timeout-secs"),
            (self.idle_timeout, "idle-timeout-secs"),
        ] {
            if duration.is_some_and(|d| d > MAX_DURATION) {
                return Err(ConfigError::TooLarge(flag));
            }
        }
        if self
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
        // Tests build `Config::default()`; it must not drift from the binary's defaults.
        let args = Args::try_parse_from(["basic-service"]).unwrap();
        assert_eq!(Config::try_from(&args).unwrap(), Config::default());
    }

    #[test]
    fn defaults_match_the_documented_values() {
        let args = Args::try_parse_from(["basic-service"]).unwrap();
        assert_eq!(args.addr, DEFAULT_ADDR.parse().unwrap());
        let config = Config::try_from(&args).unwrap();
        assert_eq!(config.max_processes, 1000);
        assert_eq!(
            config.sim.delay,
            Duration::from_millis(1000)..=Duration::from_millis(3000)
        );
        assert_eq!(config.max_talk_message_bytes, 4096);
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
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
            ConfigError::ZeroMaxProcesses
        );
        assert_eq!(
            parse(&["--max-talk-message-bytes", "0"]).unwrap_err(),
            ConfigError::ZeroTalkLimit
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
        let config = Config {
            max_in_flight: usize::MAX,
            ..Config::default()
        };
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
            config.cors_allowed_origins,
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
