//! A bounded soak: mixed Hello, Talk and Background calls, some of them cancelled half
//! way, for a fixed time; then the error count and the server's memory over the run.
//!
//! ```text
//! target/release/basic-service --sim-delay-min-ms 5 --sim-delay-max-ms 50 &
//! cargo run --release --example soak -- --secs 600 --server-pid $!
//! ```
//!
//! Every 10th Talk and Background call is cancelled after its first reply (the client
//! drops the stream), which is not an error. Any other failure is counted by gRPC code.
//! With `--server-pid`, the server's resident memory (VmRSS) is sampled every 10 s.

#[path = "common/rss.rs"]
mod rss;

use std::{
    collections::BTreeMap,
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use basic_service::client::ClientArgs;
use clap::Parser;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use volo_gen::basic::service::v1::{BackgroundRequest, HelloRequest, TalkRequest};
use volo_grpc::Status;

/// Mixed, bounded load with cancellations.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,
    /// How long to run, in seconds (at most an hour).
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..=3600))]
    secs: u64,
    /// Concurrent callers.
    #[arg(long, default_value_t = 16)]
    concurrency: u64,
    /// Workers per Background call.
    #[arg(long, default_value_t = 20)]
    processes: i64,
    /// The server's process id, to sample its memory.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// What the callers saw.
#[derive(Default)]
struct Tally {
    calls: AtomicU64,
    cancelled: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    fn error(&self, status: &Status) {
        let code = format!("{:?}", status.code());
        if let Ok(mut errors) = self.errors.lock() {
            *errors.entry(code).or_default() += 1;
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("soak: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    let client = cli.client.connect()?;
    let tally = Arc::new(Tally::default());
    let start = Instant::now();
    let deadline = start + Duration::from_secs(cli.secs);
    let mut tasks = Vec::new();
    for worker in 0..cli.concurrency.max(1) {
        let (client, tally) = (client.clone(), Arc::clone(&tally));
        let processes = cli.processes;
        tasks.push(tokio::spawn(async move {
            let mut n = worker;
            while Instant::now() < deadline {
                n += cli.concurrency.max(1);
                let cancel = n % 10 == 0;
                let outcome = match n % 3 {
                    0 => hello(&client).await,
                    1 => talk(&client, cancel).await,
                    _ => background(&client, processes, cancel).await,
                };
                tally.calls.fetch_add(1, Ordering::Relaxed);
                match outcome {
                    Ok(true) => {
                        tally.cancelled.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(false) => {}
                    Err(status) => tally.error(&status),
                }
            }
        }));
    }

    let mut samples = Vec::new();
    while Instant::now() < deadline {
        if let Some(kib) = cli.server_pid.and_then(rss::rss_kib) {
            samples.push((start.elapsed().as_secs(), kib));
            println!(
                "t={:>4}s server RSS {:>7} KiB, calls so far {}",
                start.elapsed().as_secs(),
                kib,
                tally.calls.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_secs(10).min(deadline - Instant::now())).await;
    }
    for task in tasks {
        task.await?;
    }
    if let Some(kib) = cli.server_pid.and_then(rss::rss_kib) {
        samples.push((start.elapsed().as_secs(), kib));
    }

    let errors = tally.errors.lock().map(|e| e.clone()).unwrap_or_default();
    let failed: u64 = errors.values().sum();
    println!(
        "{} calls in {:.0?} ({} cancelled on purpose), {} errors {:?}",
        tally.calls.load(Ordering::Relaxed),
        start.elapsed(),
        tally.cancelled.load(Ordering::Relaxed),
        failed,
        errors
    );
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let middle = samples[samples.len() / 2];
        let max = samples.iter().map(|s| s.1).max().unwrap_or_default();
        println!(
            "server RSS KiB: start {} (t={}s), middle {} (t={}s), end {} (t={}s), max {}",
            first.1, first.0, middle.1, middle.0, last.1, last.0, max
        );
    }
    Ok(failed == 0)
}

async fn hello(client: &basic_service::client::BasicServiceClient) -> Result<bool, Status> {
    client
        .hello(HelloRequest {
            message: "soak".to_owned(),
        })
        .await?;
    Ok(false)
}

/// A five-message conversation; `cancel`: drop it after the first reply.
async fn talk(
    client: &basic_service::client::BasicServiceClient,
    cancel: bool,
) -> Result<bool, Status> {
    let (tx, rx) = mpsc::channel(1);
    let mut replies = client.talk(ReceiverStream::new(rx)).await?.into_inner();
    for line in [
        "Men are all alike.",
        "They're always bugging us about something or other.",
        "Well, my boyfriend made me come here.",
        "He says I'm depressed much of the time.",
        "It's true. I am unhappy.",
    ] {
        if tx
            .send(TalkRequest {
                message: line.to_owned(),
            })
            .await
            .is_err()
        {
            return Err(Status::internal("talk stream closed early"));
        }
        match replies.next().await {
            Some(Ok(_)) if cancel => return Ok(true),
            Some(Ok(_)) => {}
            Some(Err(status)) => return Err(status),
            None => return Err(Status::internal("talk stream ended early")),
        }
    }
    drop(tx);
    match replies.next().await {
        None => Ok(false),
        Some(Err(status)) => Err(status),
        Some(Ok(_)) => Err(Status::internal("a reply nobody asked for")),
    }
}

/// One Background call read to the end; `cancel`: drop it after the first snapshot.
async fn background(
    client: &basic_service::client::BasicServiceClient,
    processes: i64,
    cancel: bool,
) -> Result<bool, Status> {
    let mut events = client
        .background(BackgroundRequest { processes })
        .await?
        .into_inner();
    let mut seen = 0;
    while let Some(event) = events.next().await {
        event?;
        seen += 1;
        if cancel {
            return Ok(true);
        }
    }
    if seen == 0 {
        return Err(Status::internal("background sent nothing"));
    }
    Ok(false)
}
