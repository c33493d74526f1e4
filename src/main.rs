//! The `basic-service` binary: flags, logging, bind, serve until SIGINT/SIGTERM.

use std::{io::IsTerminal, process::ExitCode};

use anyhow::Context as _;
use basic_service::{Args, BasicServer, Config, LogFormat};
use clap::Parser;
use tracing_appender::non_blocking::{ErrorCounter, NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;

/// mimalloc: a gRPC server allocates small buffers per call on every worker thread;
/// glibc's malloc serialises them on arena locks (seen in profiles), mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = Args::parse();
    let (log_writer, dropped) = init_tracing(args.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!(%err, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!("{err:#}");
            // Also on stderr: logs may be filtered out or collected elsewhere.
            eprintln!("basic-service: {err:#}");
            ExitCode::from(2)
        }
    };
    if dropped.dropped_lines() > 0 {
        tracing::warn!(
            lines = dropped.dropped_lines(),
            "log lines dropped: stdout could not keep up"
        );
    }
    // Flushes the log lines still queued.
    drop(log_writer);
    code
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::try_from(&args)?;
    let config_metrics_addr = config.metrics_addr;
    let mut server = BasicServer::new(config)?;
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    if let Some(addr) = config_metrics_addr {
        let metrics = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics"))?;
        server = server.metrics_listener(metrics);
    }
    server
        .serve(listener, async {
            shutdown_signal().await;
            // A second signal during the graceful shutdown means: stop now.
            tokio::spawn(async {
                shutdown_signal().await;
                tracing::warn!("second signal: exiting without waiting for open calls");
                std::process::exit(130);
            });
        })
        .await?;
    Ok(())
}

/// Lines the log writer may hold while stdout is slow; beyond, new lines are dropped
/// (and counted) rather than making calls wait.
const LOG_BUFFER_LINES: usize = 64 * 1024;

/// Logs to stdout; `RUST_LOG` filters (default `info`). Panics are logged too.
///
/// Lines are formatted on the calling thread and written by a dedicated thread, so a
/// call never waits on a `write` to stdout (the access log writes one line per call).
/// Colours only on a terminal. Returns the writer's guard (dropping it flushes) and
/// its count of dropped lines.
fn init_tracing(format: LogFormat) -> (WorkerGuard, ErrorCounter) {
    let (writer, guard) = NonBlockingBuilder::default()
        .buffered_lines_limit(LOG_BUFFER_LINES)
        .lossy(true)
        .finish(std::io::stdout());
    let dropped = writer.error_counter();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(std::io::stdout().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    // The one place panics are logged: the tracking layer answers a panicking call
    // INTERNAL without logging it again.
    std::panic::set_hook(Box::new(|info| tracing::error!(%info, "panic")));
    (guard, dropped)
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(err) => {
                tracing::warn!(%err, "cannot watch SIGTERM; only SIGINT stops the server");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("signal received");
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
