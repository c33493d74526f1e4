//! Chats with ELIZA: each line from stdin (a terminal or a pipe) is one message.
//!
//! ```text
//! cargo run --release                         # the server, in another terminal
//! cargo run --example talk                    # type; say "goodbye" to leave
//! printf 'Men are all alike.\nbye\n' | cargo run --example talk
//! ```

#[path = "common/cli.rs"]
mod cli;

use std::{
    io::{IsTerminal, Write},
    process::ExitCode,
};

use anyhow::{anyhow, bail};
use basic_service::client::{ClientArgs, describe};
use clap::Parser;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use volo_gen::basic::service::v1::TalkRequest;

/// Talks to ELIZA over basic.v1.BasicService/Talk.
#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    cli::exit_code("talk", run(Cli::parse())).await
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let client = cli.client.connect()?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut replies = client
        .talk(ReceiverStream::new(rx))
        .await
        .map_err(|status| cli::call_failed(&status, &cli.client.addr))?
        .into_inner();
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        println!("ELIZA is listening. Say goodbye (or press Ctrl-D) to leave.");
    }
    let mut lines = stdin_lines();
    loop {
        if interactive {
            print!("> ");
            std::io::stdout().flush()?;
        }
        // Wait for the next line, unless the server ends the conversation meanwhile
        // (after a goodbye it does so right after the farewell).
        let line = tokio::select! {
            line = lines.recv() => line.transpose()?,
            end = replies.next() => match end {
                None => return Ok(()),
                Some(Err(status)) => bail!("{}", describe(&status)),
                Some(Ok(reply)) => bail!("unexpected reply {:?}", reply.answer),
            },
        };
        let Some(line) = line else {
            break; // end of input: half-close, the server ends the stream
        };
        if tx.send(TalkRequest { message: line }).await.is_err() {
            bail!("the server closed the conversation");
        }
        match replies.next().await {
            Some(Ok(reply)) => println!("{}", reply.answer),
            Some(Err(status)) => bail!("{}", describe(&status)),
            None => return Ok(()),
        }
    }
    drop(tx);
    while let Some(item) = replies.next().await {
        item.map_err(|status| anyhow!("{}", describe(&status)))?;
    }
    Ok(())
}

/// Lines of stdin, read on a thread of their own. (tokio's stdin reads on a thread
/// the runtime waits for at exit, so after the farewell the program would hang until
/// one more line came.) The thread ends with the process.
fn stdin_lines() -> mpsc::Receiver<std::io::Result<String>> {
    let (tx, rx) = mpsc::channel(1);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            if tx.blocking_send(line).is_err() {
                return;
            }
        }
    });
    rx
}
