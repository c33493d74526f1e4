//! Says hello: prints the greeting and its CloudEvent envelope.
//!
//! ```text
//! cargo run --release                         # the server, in another terminal
//! cargo run --example hello -- Ada            # Hello, Ada
//! ```

#[path = "common/cli.rs"]
mod cli;

use std::process::ExitCode;

use anyhow::Context as _;
use basic_service::{
    client::ClientArgs,
    cloudevent::{event_time, proto_data, system_time, unpack},
};
use clap::Parser;
use volo_gen::basic::service::v1::{HelloRequest, HelloResponseEvent};

/// Calls basic.v1.BasicService/Hello.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,
    /// Who to greet.
    #[arg(default_value = "World")]
    name: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::exit_code("hello", run(Cli::parse())).await
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = cli.client.connect()?;
    let reply = client
        .hello(HelloRequest { message: cli.name })
        .await
        .map_err(|status| cli::call_failed(&status, &cli.client.addr))?
        .into_inner();
    let event = reply.cloud_event.context("reply has no CloudEvent")?;
    let payload: HelloResponseEvent =
        unpack(proto_data(&event).context("CloudEvent has no proto_data")?)?;
    let time = event_time(&event)
        .and_then(system_time)
        .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339())
        .unwrap_or_else(|| "-".to_owned());
    println!("{}", payload.greeting);
    println!("  id:     {}", event.id);
    println!("  source: {}", event.source);
    println!("  type:   {}", event.r#type);
    println!("  time:   {time}");
    Ok(())
}
