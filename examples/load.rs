//! A bounded load generator: Hello calls or Talk messages from concurrent tasks, then
//! throughput and latency percentiles.
//!
//! ```text
//! cargo run --release                                                  # the server
//! cargo run --release --example load -- --rpc hello --calls 200000 --concurrency 64
//! cargo run --release --example load -- --rpc talk --calls 200000 --concurrency 64
//! ```
//!
//! Every run stops after `--calls` calls (messages for talk) or `--max-secs`, whichever
//! comes first.

use std::{
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::anyhow;
use basic_service::client::{ClientArgs, describe};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use volo_gen::basic::service::v1::{HelloRequest, TalkRequest};

#[derive(Clone, Copy, ValueEnum)]
enum Rpc {
    /// Unary Hello calls.
    Hello,
    /// Messages on long-lived Talk streams (one per task), each awaiting its reply.
    Talk,
}

/// Load for basic.v1.BasicService.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,
    #[arg(long, value_enum, default_value = "hello")]
    rpc: Rpc,
    /// Total calls (or Talk messages).
    #[arg(long, default_value_t = 100_000)]
    calls: u64,
    /// Concurrent tasks.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
    /// Stop after this many seconds even if calls remain.
    #[arg(long, default_value_t = 60)]
    max_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("load: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = cli.client.connect()?;
    let next = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(cli.max_secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..cli.concurrency.max(1) {
        let client = client.clone();
        let next = Arc::clone(&next);
        let (calls, rpc) = (cli.calls, cli.rpc);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let take = || next.fetch_add(1, Ordering::Relaxed) < calls && Instant::now() < deadline;
            match rpc {
                Rpc::Hello => {
                    while take() {
                        let t = Instant::now();
                        client
                            .hello(HelloRequest {
                                message: "load".into(),
                            })
                            .await
                            .map_err(|s| anyhow!("{}", describe(&s)))?;
                        latencies.push(t.elapsed());
                    }
                }
                Rpc::Talk => {
                    let (tx, rx) = mpsc::channel(1);
                    let mut replies = client
                        .talk(ReceiverStream::new(rx))
                        .await
                        .map_err(|s| anyhow!("{}", describe(&s)))?
                        .into_inner();
                    while take() {
                        let t = Instant::now();
                        tx.send(TalkRequest {
                            message: "I am unhappy with my father.".into(),
                        })
                        .await
                        .map_err(|_| anyhow!("talk stream closed"))?;
                        replies
                            .next()
                            .await
                            .ok_or_else(|| anyhow!("talk stream ended"))?
                            .map_err(|s| anyhow!("{}", describe(&s)))?;
                        latencies.push(t.elapsed());
                    }
                }
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    let elapsed = start.elapsed();
    all.sort_unstable();
    let pct = |p: f64| all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)));
    println!(
        "{} calls in {:.2?}: {:.0}/s; latency p50 {:?} p99 {:?} max {:?}",
        all.len(),
        elapsed,
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50).copied().unwrap_or_default(),
        pct(0.99).copied().unwrap_or_default(),
        all.last().copied().unwrap_or_default(),
    );
    Ok(())
}
