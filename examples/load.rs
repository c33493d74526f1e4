//! A bounded load generator: Hello calls, Talk messages, or a mix of all three RPCs from
//! concurrent tasks; then throughput, latency percentiles, failures by gRPC code and the
//! largest gap between two successful calls.
//!
//! ```text
//! cargo run --release                                                  # the server
//! cargo run --release --example load -- --rpc hello --calls 200000 --concurrency 64
//! cargo run --release --example load -- --rpc talk --calls 200000 --concurrency 64
//! cargo run --release --example load -- --rpc mixed --calls 20000 --concurrency 8
//! ```
//!
//! `mixed` is the load of a rolling restart (`deploy/nginx/rollout.sh`): every task
//! cycles through `--mix` (by default a Hello call, a short Talk conversation that ends
//! with the client's half-close, and a Background call), one call at a time. Each
//! conversation or Background call counts as one call and succeeds only if its stream
//! ends with OK after every expected message.
//!
//! Every run stops after `--calls` calls (messages for talk) or `--max-secs`, whichever
//! comes first, or on SIGINT/SIGTERM: no new call starts, conversations half-close
//! after their current message, and the report is printed. A failed call is counted and the task carries on; the exit code is 1 if
//! any call failed. Failures are grouped by code; `(transport)` marks a status the client
//! made itself from a connection or HTTP/2 error, `(http N)` one it inferred from an HTTP
//! status without `grpc-status` (e.g. a proxy's HTML error page). The last line,
//! `summary key=value ...`, is for scripts.

use std::{
    collections::BTreeMap,
    process::ExitCode,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use basic_service::{
    client::{BasicServiceClient, ClientArgs},
    cloudevent::{proto_data, unpack},
    status::code_name,
};
use clap::{Parser, ValueEnum};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use volo_gen::basic::service::v1::{
    BackgroundRequest, BackgroundResponseEvent, HelloRequest, State, TalkRequest,
};
use volo_grpc::Status;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Rpc {
    /// Unary Hello calls.
    Hello,
    /// Messages on long-lived Talk streams (one per task), each awaiting its reply.
    Talk,
    /// Whole calls of the kinds in `--mix`, in turn.
    Mixed,
}

/// One kind of call in `--rpc mixed`.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Call {
    /// A unary Hello.
    Hello,
    /// A Talk conversation of `--talk-messages` messages, then the client's half-close.
    Talk,
    /// A Background call of `--background-processes`, read to its summary.
    Background,
}

impl Call {
    fn is_stream(self) -> bool {
        !matches!(self, Call::Hello)
    }
}

/// Load for basic.v1.BasicService.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,
    #[arg(long, value_enum, default_value = "hello")]
    rpc: Rpc,
    /// Total calls (or Talk messages with `--rpc talk`).
    #[arg(long, default_value_t = 100_000)]
    calls: u64,
    /// Concurrent tasks.
    #[arg(long, default_value_t = 32)]
    concurrency: u64,
    /// Clients, each with its own HTTP/2 connection; tasks take them in turn. One
    /// connection carries at most the server's --max-concurrent-streams calls at once.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    connections: u64,
    /// Stop after this many seconds even if calls remain.
    #[arg(long, default_value_t = 60)]
    max_secs: u64,
    /// With `--rpc mixed`: the calls each task makes in turn.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "hello,talk,background"
    )]
    mix: Vec<Call>,
    /// With `--rpc mixed`: messages in each Talk conversation.
    #[arg(long, default_value_t = 3)]
    talk_messages: u32,
    /// With `--rpc mixed`: pause between two Talk messages, in milliseconds (a long pause
    /// or many messages make long-lived streams).
    #[arg(long, default_value_t = 0)]
    talk_pause_ms: u64,
    /// With `--rpc mixed`: `processes` of each Background call.
    #[arg(long, default_value_t = 3)]
    background_processes: i64,
}

/// Lines from the 1966 paper's conversation; none of them is a goodbye.
const LINES: [&str; 4] = [
    "Men are all alike.",
    "They're always bugging us about something or other.",
    "Well, my boyfriend made me come here.",
    "He says I'm depressed much of the time.",
];

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("load: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// What one task saw.
#[derive(Default)]
struct Tally {
    /// Latency of every successful call.
    latencies: Vec<Duration>,
    failed_unary: u64,
    failed_stream: u64,
    /// Failures by code label (see [`label`]).
    by_code: BTreeMap<String, u64>,
}

impl Tally {
    fn record(&mut self, call: Call, started: Instant, outcome: Result<(), String>, gap: &Gap) {
        match outcome {
            Ok(()) => {
                self.latencies.push(started.elapsed());
                gap.success();
            }
            Err(code) => {
                if call.is_stream() {
                    self.failed_stream += 1;
                } else {
                    self.failed_unary += 1;
                }
                *self.by_code.entry(code).or_default() += 1;
            }
        }
    }

    fn merge(&mut self, other: Tally) {
        self.latencies.extend(other.latencies);
        self.failed_unary += other.failed_unary;
        self.failed_stream += other.failed_stream;
        for (code, n) in other.by_code {
            *self.by_code.entry(code).or_default() += n;
        }
    }
}

/// When to stop: after `calls` calls, at `deadline`, or on a signal.
struct Bounds {
    next: AtomicU64,
    calls: u64,
    deadline: Instant,
    stop: AtomicBool,
}

impl Bounds {
    /// Claims the next call; false once the run is over.
    fn take(&self) -> bool {
        !self.stopping() && self.next.fetch_add(1, Ordering::Relaxed) < self.calls
    }

    /// The deadline has passed or a signal came.
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }
}

/// Completes on the first SIGINT or SIGTERM.
async fn signalled() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    // Without a handler, only the bounds end the run.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// The longest time without a successful call, shared by all tasks (lock-free: the
/// time of the latest success, in microseconds since the start, and the largest gap).
struct Gap {
    start: Instant,
    last_ok_us: AtomicU64,
    max_us: AtomicU64,
}

impl Gap {
    fn new(start: Instant) -> Self {
        Self {
            start,
            last_ok_us: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }

    fn success(&self) {
        let now = self.start.elapsed().as_micros() as u64;
        let previous = self.last_ok_us.fetch_max(now, Ordering::AcqRel);
        self.max_us
            .fetch_max(now.saturating_sub(previous), Ordering::AcqRel);
    }

    /// The largest gap, counting the time from the start to the first success and from
    /// the last success to the end.
    fn largest(&self) -> Duration {
        let end = self.start.elapsed().as_micros() as u64;
        let tail = end.saturating_sub(self.last_ok_us.load(Ordering::Acquire));
        Duration::from_micros(self.max_us.load(Ordering::Acquire).max(tail))
    }
}

/// A failure's code, marked when the client made the status itself.
fn label(status: &Status) -> String {
    let code = code_name(status.code());
    let message = status.message();
    if let Some(http) =
        message.strip_prefix("grpc-status header missing, mapped from HTTP status code ")
    {
        format!("{code}(http {http})")
    } else if std::error::Error::source(status).is_some()
        || message.starts_with("h2 protocol error")
    {
        format!("{code}(transport)")
    } else {
        code.to_owned()
    }
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    anyhow::ensure!(!cli.mix.is_empty(), "--mix names no call");
    let clients = (0..cli.connections)
        .map(|_| cli.client.connect())
        .collect::<Result<Vec<_>, _>>()?;
    let start = Instant::now();
    let bounds = Arc::new(Bounds {
        next: AtomicU64::new(0),
        calls: cli.calls,
        deadline: start + Duration::from_secs(cli.max_secs),
        stop: AtomicBool::new(false),
    });
    {
        let bounds = Arc::clone(&bounds);
        tokio::spawn(async move {
            signalled().await;
            bounds.stop.store(true, Ordering::Relaxed);
        });
    }
    let gap = Arc::new(Gap::new(start));
    let mix = Arc::new(cli.mix.clone());
    let mut tasks = Vec::new();
    for task in 0..cli.concurrency.max(1) {
        let client = clients[(task % cli.connections) as usize].clone();
        let bounds = Arc::clone(&bounds);
        let gap = Arc::clone(&gap);
        let mix = Arc::clone(&mix);
        let rpc = cli.rpc;
        let talk = Conversation {
            messages: cli.talk_messages,
            pause: Duration::from_millis(cli.talk_pause_ms),
        };
        let processes = cli.background_processes;
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let take = || bounds.take();
            match rpc {
                Rpc::Hello => {
                    while take() {
                        let t = Instant::now();
                        let outcome = hello(&client).await;
                        tally.record(Call::Hello, t, outcome, &gap);
                    }
                }
                Rpc::Talk => talk_messages(&client, take, &mut tally, &gap).await,
                Rpc::Mixed => {
                    // Tasks start at different points of the cycle so every kind runs at once.
                    let mut turn = task as usize;
                    while take() {
                        let call = mix[turn % mix.len()];
                        turn += 1;
                        let t = Instant::now();
                        let outcome = match call {
                            Call::Hello => hello(&client).await,
                            Call::Talk => talk.run(&client, &bounds).await,
                            Call::Background => background(&client, processes).await,
                        };
                        tally.record(call, t, outcome, &gap);
                    }
                }
            }
            tally
        }));
    }
    let mut all = Tally::default();
    for task in tasks {
        all.merge(task.await?);
    }
    let elapsed = start.elapsed();
    let largest_gap = gap.largest();
    let mut latencies = all.latencies;
    latencies.sort_unstable();
    let ok = latencies.len() as u64;
    let failed = all.failed_unary + all.failed_stream;
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "{ok} calls in {elapsed:.2?}: {:.0}/s; latency p50 {:?} p99 {:?} max {:?}",
        ok as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        latencies.last().copied().unwrap_or_default(),
    );
    let codes = all
        .by_code
        .iter()
        .map(|(code, n)| format!("{code}:{n}"))
        .collect::<Vec<_>>()
        .join(",");
    if failed > 0 {
        println!(
            "{failed} failed ({} unary, {} streams): {codes}",
            all.failed_unary, all.failed_stream
        );
    }
    println!("largest gap between successful calls: {largest_gap:.2?}");
    println!(
        "summary calls={} ok={ok} failed={failed} failed_unary={} failed_stream={} \
         max_gap_ms={} codes={}",
        ok + failed,
        all.failed_unary,
        all.failed_stream,
        largest_gap.as_millis(),
        if codes.is_empty() { "-" } else { &codes },
    );
    Ok(failed == 0)
}

async fn hello(client: &BasicServiceClient) -> Result<(), String> {
    let reply = client
        .hello(HelloRequest {
            message: "load".into(),
        })
        .await
        .map_err(|s| label(&s))?;
    match reply.into_inner().cloud_event {
        Some(_) => Ok(()),
        None => Err("reply without a CloudEvent".to_owned()),
    }
}

/// `--rpc talk`: one stream per task, reopened after a failure; every message is a call.
async fn talk_messages(
    client: &BasicServiceClient,
    take: impl Fn() -> bool,
    tally: &mut Tally,
    gap: &Gap,
) {
    'streams: while take() {
        let t = Instant::now();
        let (tx, rx) = mpsc::channel(1);
        let mut replies = match client.talk(ReceiverStream::new(rx)).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                tally.record(Call::Talk, t, Err(label(&status)), gap);
                continue;
            }
        };
        let mut t = t;
        loop {
            let request = TalkRequest {
                message: "I am unhappy with my father.".into(),
            };
            let outcome = if tx.send(request).await.is_err() {
                Err(reply_status(replies.next().await, "request stream closed"))
            } else {
                match replies.next().await {
                    Some(Ok(_)) => Ok(()),
                    other => Err(reply_status(other, "stream ended before the reply")),
                }
            };
            let failed = outcome.is_err();
            tally.record(Call::Talk, t, outcome, gap);
            if failed {
                continue 'streams;
            }
            if !take() {
                break 'streams;
            }
            t = Instant::now();
        }
    }
}

/// The failure a reply stream reports where a reply was expected.
fn reply_status<T>(next: Option<Result<T, Status>>, otherwise: &str) -> String {
    match next {
        Some(Err(status)) => label(&status),
        _ => otherwise.to_owned(),
    }
}

/// A Talk conversation: some messages, each awaiting its reply, then the half-close.
#[derive(Clone, Copy)]
struct Conversation {
    messages: u32,
    pause: Duration,
}

impl Conversation {
    /// Ends early (half-close after the current message) when the run is stopping.
    async fn run(self, client: &BasicServiceClient, bounds: &Bounds) -> Result<(), String> {
        let (tx, rx) = mpsc::channel(1);
        let mut replies = client
            .talk(ReceiverStream::new(rx))
            .await
            .map_err(|s| label(&s))?
            .into_inner();
        for (i, line) in LINES
            .iter()
            .cycle()
            .take(self.messages as usize)
            .enumerate()
        {
            if i > 0 && !self.pause.is_zero() {
                tokio::time::sleep(self.pause).await;
            }
            if i > 0 && bounds.stopping() {
                break;
            }
            let request = TalkRequest {
                message: (*line).into(),
            };
            if tx.send(request).await.is_err() {
                // The call has ended; its status says why.
                return Err(reply_status(replies.next().await, "request stream closed"));
            }
            match replies.next().await {
                Some(Ok(_)) => {}
                other => return Err(reply_status(other, "stream ended before the reply")),
            }
        }
        drop(tx);
        // After the half-close the server ends the conversation with OK.
        match replies.next().await {
            None => Ok(()),
            Some(Err(status)) => Err(label(&status)),
            Some(Ok(_)) => Err("reply after the half-close".to_owned()),
        }
    }
}

/// A Background call read to the end: it must close with a summary of every process.
async fn background(client: &BasicServiceClient, processes: i64) -> Result<(), String> {
    let mut stream = client
        .background(BackgroundRequest { processes })
        .await
        .map_err(|s| label(&s))?
        .into_inner();
    let mut last = None;
    while let Some(item) = stream.next().await {
        let message = item.map_err(|s| label(&s))?;
        last = message.cloud_event;
    }
    let summary = last
        .as_ref()
        .and_then(proto_data)
        .and_then(|any| unpack::<BackgroundResponseEvent>(any).ok())
        .ok_or_else(|| "stream ended without a summary".to_owned())?;
    let complete = matches!(
        summary.state,
        State::STATE_COMPLETE | State::STATE_COMPLETE_WITH_ERROR
    );
    if complete && summary.responses.len() as i64 == processes.max(1) {
        Ok(())
    } else {
        Err("incomplete summary".to_owned())
    }
}
