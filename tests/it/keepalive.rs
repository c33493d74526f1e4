//! Connection hygiene: a peer that stops answering pings is dropped (keepalive), and a
//! connection with no call open for the idle timeout is closed; one with a call open is
//! not.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::common::{start, test_config};

/// Opens a raw HTTP/2 connection that never answers anything (a dead peer), and waits
/// up to `wait` for the server to close it. Returns whether it did.
async fn closed_within(addr: std::net::SocketAddr, wait: Duration) -> bool {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    // Client preface plus an empty SETTINGS frame; after that, silence.
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let read_until_eof = async {
        let mut buf = [0u8; 1024];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // SETTINGS, PINGs: read, never acknowledged
            }
        }
    };
    tokio::time::timeout(wait, read_until_eof).await.is_ok()
}

#[tokio::test]
async fn a_peer_that_ignores_pings_is_dropped() {
    let mut config = test_config();
    config.http2.keepalive_interval = Some(Duration::from_millis(300));
    config.http2.keepalive_timeout = Duration::from_millis(300);
    let server = start(config).await;
    assert!(
        closed_within(server.addr, Duration::from_secs(20)).await,
        "the silent peer was dropped"
    );
    server.stop().await;
}

#[tokio::test]
async fn without_keepalive_a_silent_peer_stays_connected() {
    // The control for the test above: the drop comes from keepalive, not from silence.
    let mut config = test_config();
    config.http2.keepalive_interval = None;
    config.shutdown.grace = Duration::from_millis(100);
    let server = start(config).await;
    assert!(!closed_within(server.addr, Duration::from_secs(2)).await);
    server.stop().await;
}

/// An HPACK "literal header field without indexing, new name" (no Huffman coding).
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0, name.len() as u8];
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
    out
}

/// A HEADERS then DATA frame on stream 1 that opens `grpc.health.v1.Health/Watch` for
/// `""`: a call that stays open (its stream only ends at shutdown).
fn watch_call() -> Vec<u8> {
    let block: Vec<u8> = [
        literal(":method", "POST"),
        literal(":scheme", "http"),
        literal(":path", "/grpc.health.v1.Health/Watch"),
        literal(":authority", "test"),
        literal("content-type", "application/grpc"),
        literal("te", "trailers"),
    ]
    .concat();
    let mut frames = Vec::new();
    let len = (block.len() as u32).to_be_bytes();
    frames.extend_from_slice(&[len[1], len[2], len[3], 0x1, 0x4, 0, 0, 0, 1]); // HEADERS, END_HEADERS
    frames.extend_from_slice(&block);
    frames.extend_from_slice(&[0, 0, 5, 0x0, 0x1, 0, 0, 0, 1]); // DATA, END_STREAM
    frames.extend_from_slice(&[0, 0, 0, 0, 0]); // empty HealthCheckRequest
    frames
}

/// Opens a raw HTTP/2 connection that answers SETTINGS and PINGs like a live client,
/// optionally opens one long call, and waits up to `wait` for the server to close the
/// connection. Returns whether it did and whether a GOAWAY came.
async fn live_peer_closed_within(addr: std::net::SocketAddr, wait: Duration) -> (bool, bool) {
    live_peer(addr, false, wait).await
}

async fn live_peer(addr: std::net::SocketAddr, open_call: bool, wait: Duration) -> (bool, bool) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    if open_call {
        tcp.write_all(&watch_call()).await.unwrap();
    }
    let mut goaway = false;
    let run = async {
        loop {
            let mut header = [0u8; 9];
            if tcp.read_exact(&mut header).await.is_err() {
                return;
            }
            let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
            let (kind, flags) = (header[3], header[4]);
            let mut payload = vec![0u8; len];
            if tcp.read_exact(&mut payload).await.is_err() {
                return;
            }
            let reply: Option<Vec<u8>> = match (kind, flags & 1) {
                (0x4, 0) => Some(vec![0, 0, 0, 0x4, 1, 0, 0, 0, 0]), // SETTINGS ACK
                (0x6, 0) => {
                    let mut ack = vec![0, 0, 8, 0x6, 1, 0, 0, 0, 0]; // PING ACK
                    ack.extend_from_slice(&payload);
                    Some(ack)
                }
                (0x7, _) => {
                    goaway = true;
                    None
                }
                _ => None,
            };
            if let Some(reply) = reply {
                if tcp.write_all(&reply).await.is_err() {
                    return;
                }
            }
        }
    };
    let closed = tokio::time::timeout(wait, run).await.is_ok();
    (closed, goaway)
}

#[tokio::test]
async fn a_connection_without_calls_is_closed_after_the_idle_timeout() {
    let mut config = test_config();
    config.http2.keepalive_interval = None; // only the idle timeout can close it
    config.http2.idle_timeout = Some(Duration::from_millis(300));
    let server = start(config).await;
    let (closed, goaway) = live_peer_closed_within(server.addr, Duration::from_secs(20)).await;
    assert!(closed, "the idle connection was closed");
    assert!(goaway, "with a GOAWAY first");
    server.stop().await;
}

#[tokio::test]
async fn without_an_idle_timeout_a_quiet_connection_stays() {
    let mut config = test_config();
    config.http2.keepalive_interval = None;
    config.http2.idle_timeout = None;
    config.shutdown.grace = Duration::from_millis(100);
    let server = start(config).await;
    let (closed, _) = live_peer_closed_within(server.addr, Duration::from_secs(2)).await;
    assert!(!closed);
    server.stop().await;
}

#[tokio::test]
async fn a_connection_with_an_open_call_is_not_idle() {
    let mut config = test_config();
    config.http2.keepalive_interval = None;
    config.http2.idle_timeout = Some(Duration::from_millis(200));
    config.shutdown.grace = Duration::from_millis(100);
    let server = start(config).await;
    // The same peer as above, but with a Watch call open: several idle timeouts pass
    // and no GOAWAY comes.
    let (closed, goaway) = live_peer(server.addr, true, Duration::from_secs(1)).await;
    assert!(!closed && !goaway, "closed={closed} goaway={goaway}");
    server.stop().await;
}
