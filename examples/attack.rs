//! Bounded attacks on a running server, to measure what its limits hold (loopback only).
//!
//! ```text
//! target/release/basic-service &
//! cargo run --release --example attack -- --server-pid $! stall --connections 20 --calls 1000
//! cargo run --release --example attack -- --server-pid $! headers --connections 40
//! cargo run --release --example attack -- --server-pid $! silent --connections 200
//! ```
//!
//! - `stall`: each connection opens calls that never send their request (HEADERS only)
//!   and opens a new one whenever one is answered; meanwhile a legitimate client on its
//!   own connection calls Hello in a loop. Prints the legitimate success rate.
//! - `headers`: each connection sends a header block that never ends (CONTINUATION
//!   frames, up to 20 MiB each). Prints the server's memory before and after.
//! - `silent`: connections that never send the HTTP/2 preface. Prints how many the
//!   server still holds open after `--secs`.
//!
//! Everything stops after `--secs` seconds.

#[path = "common/rss.rs"]
mod rss;

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context as _;
use bytes::Bytes;
use clap::{Parser, Subcommand};
use futures::{StreamExt, stream::FuturesUnordered};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

#[derive(Parser)]
struct Cli {
    /// The server to attack (loopback only).
    #[arg(long, default_value = "127.0.0.1:50051")]
    addr: SocketAddr,
    /// The server's process id, to report its memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    secs: u64,
    #[command(subcommand)]
    attack: Attack,
}

#[derive(Subcommand)]
enum Attack {
    /// Calls whose request never arrives, while a legitimate client calls Hello.
    Stall {
        #[arg(long, default_value_t = 10)]
        connections: usize,
        /// Stalled calls kept open per connection.
        #[arg(long, default_value_t = 1000)]
        calls: usize,
    },
    /// Header blocks that never end.
    Headers {
        #[arg(long, default_value_t = 40)]
        connections: usize,
    },
    /// Connections that never send the HTTP/2 preface.
    Silent {
        #[arg(long, default_value_t = 200)]
        connections: usize,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.addr.ip().is_loopback(), "attacks run on loopback only");
    let until = Instant::now() + Duration::from_secs(cli.secs);
    let rss = || cli.server_pid.and_then(rss::rss_kib);
    let before = rss();
    match cli.attack {
        Attack::Stall { connections, calls } => stall(cli.addr, connections, calls, until).await?,
        Attack::Headers { connections } => headers(cli.addr, connections, until).await?,
        Attack::Silent { connections } => silent(cli.addr, connections, until).await?,
    }
    if let (Some(before), Some(after)) = (before, rss()) {
        println!("server RSS: {before} KiB before, {after} KiB at the end");
    }
    Ok(())
}

fn hello_request(addr: SocketAddr) -> http::Request<()> {
    http::Request::post(format!("http://{addr}/basic.v1.BasicService/Hello"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .expect("a valid request")
}

async fn h2_connect(addr: SocketAddr) -> anyhow::Result<h2::client::SendRequest<Bytes>> {
    let tcp = TcpStream::connect(addr).await?;
    let (send, conn) = h2::client::handshake(tcp).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

async fn stall(
    addr: SocketAddr,
    connections: usize,
    calls: usize,
    until: Instant,
) -> anyhow::Result<()> {
    let answered = Arc::new(AtomicU64::new(0));
    for _ in 0..connections {
        let send = h2_connect(addr).await.context("attacker connects")?;
        let answered = Arc::clone(&answered);
        tokio::spawn(async move {
            let mut open = FuturesUnordered::new();
            let mut held = Vec::new();
            while Instant::now() < until {
                while open.len() < calls {
                    let Ok(mut ready) = send.clone().ready().await else {
                        return;
                    };
                    let Ok((response, stream)) = ready.send_request(hello_request(addr), false)
                    else {
                        return;
                    };
                    held.push(stream);
                    open.push(response);
                }
                let wait = until.saturating_duration_since(Instant::now());
                if let Ok(Some(_)) = tokio::time::timeout(wait, open.next()).await {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    // Let the squat settle, then call as a legitimate client would.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let legit = h2_connect(addr)
        .await
        .context("legitimate client connects")?;
    let (mut ok, mut total) = (0u64, 0u64);
    while Instant::now() < until {
        total += 1;
        if legit_hello(&legit, addr).await {
            ok += 1;
        }
    }
    println!(
        "legitimate client: {ok} of {total} Hello calls OK ({:.1} %); attacker calls answered (timed out or refused): {}",
        100.0 * ok as f64 / total.max(1) as f64,
        answered.load(Ordering::Relaxed)
    );
    Ok(())
}

/// One Hello; whether it ended with grpc-status 0.
async fn legit_hello(send: &h2::client::SendRequest<Bytes>, addr: SocketAddr) -> bool {
    let call = async {
        let mut ready = send.clone().ready().await?;
        let (response, mut stream) = ready.send_request(hello_request(addr), false)?;
        stream.send_data(Bytes::from_static(b"\x00\x00\x00\x00\x04\x0a\x02ok"), true)?;
        let response = response.await?;
        let mut body = response.into_body();
        while let Some(chunk) = body.data().await {
            let chunk = chunk?;
            let _ = body.flow_control().release_capacity(chunk.len());
        }
        let trailers = body.trailers().await?.unwrap_or_default();
        Ok::<_, h2::Error>(trailers.get("grpc-status").is_some_and(|s| s == "0"))
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(5), call).await,
        Ok(Ok(true))
    )
}

async fn headers(addr: SocketAddr, connections: usize, until: Instant) -> anyhow::Result<()> {
    const PER_CONNECTION: usize = 20 << 20;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        tasks.push(tokio::spawn(async move {
            let Ok(mut tcp) = TcpStream::connect(addr).await else {
                return (0, false);
            };
            let mut sent = 0;
            let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
            out.extend(frame(0x4, 0, &[]));
            out.extend(frame(0x1, 0, b"\x82\x86\x84")); // :method POST-ish, no END_HEADERS
            if tcp.write_all(&out).await.is_err() {
                return (0, true);
            }
            let chunk = frame(0x9, 0, &[0u8; 16 * 1024]);
            while sent < PER_CONNECTION && Instant::now() < until {
                if tcp.write_all(&chunk).await.is_err() {
                    return (sent, true);
                }
                sent += chunk.len();
            }
            // Hold the connection until the end; note whether the server closed it.
            let wait = until.saturating_duration_since(Instant::now());
            let mut buf = [0u8; 1024];
            let closed = tokio::time::timeout(wait, async {
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await
            .is_ok();
            (sent, closed)
        }));
    }
    let (mut bytes, mut closed) = (0, 0);
    for task in tasks {
        let (sent, was_closed) = task.await?;
        bytes += sent;
        closed += usize::from(was_closed);
    }
    println!(
        "{connections} connections sent {} KiB of unfinished header blocks; the server closed {closed}",
        bytes / 1024
    );
    Ok(())
}

/// A frame on stream 1 (0 for SETTINGS).
fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let stream: u32 = if kind == 0x4 { 0 } else { 1 };
    let mut bytes = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    bytes.extend([kind, flags]);
    bytes.extend(stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

async fn silent(addr: SocketAddr, connections: usize, until: Instant) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for _ in 0..connections {
        tasks.push(tokio::spawn(async move {
            let Ok(mut tcp) = TcpStream::connect(addr).await else {
                return false;
            };
            let wait = until.saturating_duration_since(Instant::now());
            let mut buf = [0u8; 64];
            // Still open at the end: the read neither saw EOF nor failed.
            tokio::time::timeout(wait, async {
                loop {
                    match tcp.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await
            .is_err()
        }));
    }
    let mut open = 0;
    for task in tasks {
        open += usize::from(task.await?);
    }
    println!("{connections} silent connections; still open at the end: {open}");
    Ok(())
}
