//! Runs N simulated service calls with a live progress bar, then prints a summary.
//!
//! ```text
//! cargo run --release                                   # the server, in another terminal
//! cargo run --example background -- --processes 200
//! ```
//!
//! The summary also says how many messages and bytes the stream took. There is no
//! receive limit to raise for large `--processes`: volo's client has none (grpc-go,
//! grpcio and grpc-js stop at 4 MiB by default, about 54 000 workers).

#[path = "common/cli.rs"]
mod cli;

use std::{collections::BTreeMap, process::ExitCode, time::Instant};

use anyhow::{Context as _, anyhow};
use basic_service::{
    client::{ClientArgs, describe},
    cloudevent::{proto_data, unpack},
};
use clap::Parser;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use pilota::pb::{EncodeLengthContext, Message};
use volo_gen::basic::service::v1::{BackgroundRequest, BackgroundResponseEvent, State};

/// Calls basic.v1.BasicService/Background.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,
    /// How many simulated service calls to run.
    #[arg(long, default_value_t = 10)]
    processes: i64,
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::exit_code("background", run(Cli::parse())).await
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = cli.client.connect()?;
    let start = Instant::now();
    let mut stream = client
        .background(BackgroundRequest {
            processes: cli.processes,
        })
        .await
        .map_err(|status| cli::call_failed(&status, &cli.client.addr))?
        .into_inner();
    let total = u64::try_from(cli.processes.max(1)).unwrap_or(1);
    let bar = ProgressBar::new(total).with_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} calls")
            .context("progress bar template")?,
    );
    let mut last: Option<BackgroundResponseEvent> = None;
    let (mut messages, mut bytes, mut final_bytes) = (0usize, 0usize, 0usize);
    while let Some(item) = stream.next().await {
        let message = item.map_err(|status| {
            bar.abandon();
            anyhow!("{}", describe(&status))
        })?;
        // Bytes on the wire: the message and its 5-byte gRPC prefix.
        final_bytes = 5 + message.encoded_len(&mut EncodeLengthContext::default());
        bytes += final_bytes;
        messages += 1;
        let event = message.cloud_event.context("message has no CloudEvent")?;
        let payload: BackgroundResponseEvent =
            unpack(proto_data(&event).context("CloudEvent has no proto_data")?)?;
        bar.set_position(payload.responses.len() as u64);
        last = Some(payload);
    }
    bar.finish();
    let last = last.context("the stream ended without a message")?;
    if !matches!(
        last.state,
        State::STATE_COMPLETE | State::STATE_COMPLETE_WITH_ERROR
    ) {
        anyhow::bail!(
            "the stream ended before the summary (state {})",
            last.state.to_string()
        );
    }
    let mut by_protocol: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for r in &last.responses {
        match r.data.as_ref() {
            Some(d) if d.r#type == "protocol" => {
                *by_protocol.entry(d.value.as_str()).or_default() += 1
            }
            Some(d) => failures.push(d.value.as_str()),
            None => failures.push("(no data)"),
        }
    }
    println!(
        "{} calls in {:.2?} ({})",
        last.responses.len(),
        start.elapsed(),
        last.state.to_string()
    );
    println!(
        "  {messages} messages, {:.1} MB ({:.1}x the final one)",
        bytes as f64 / 1e6,
        bytes as f64 / final_bytes as f64
    );
    for (protocol, count) in &by_protocol {
        println!("  {protocol:<8} {count}");
    }
    println!("  failures {}", failures.len());
    for failure in failures {
        println!("    {failure}");
    }
    Ok(())
}
