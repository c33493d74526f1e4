//! Connection hygiene: a peer that stops answering pings is dropped (keepalive), and a
//! connection with no call open for the idle timeout is closed; one with a call open is
//! not.

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use volo_gen::basic::service::v1::TalkRequest;

use crate::common::{start, test_config, within};

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
    config.keepalive_interval = Some(Duration::from_millis(300));
    config.keepalive_timeout = Duration::from_millis(300);
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
    config.keepalive_interval = None;
    config.shutdown_grace = Duration::from_millis(100);
    let server = start(config).await;
    assert!(!closed_within(server.addr, Duration::from_secs(2)).await);
    server.stop().await;
}

/// Opens a raw HTTP/2 connection that makes no call but answers SETTINGS and PINGs like
/// a live client, and waits up to `wait` for the server to close it. Returns whether it
/// did and whether a GOAWAY came first.
async fn live_peer_closed_within(addr: std::net::SocketAddr, wait: Duration) -> (bool, bool) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
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
    config.keepalive_interval = None; // only the idle timeout can close it
    config.idle_timeout = Some(Duration::from_millis(300));
    let server = start(config).await;
    let (closed, goaway) = live_peer_closed_within(server.addr, Duration::from_secs(20)).await;
    assert!(closed, "the idle connection was closed");
    assert!(goaway, "with a GOAWAY first");
    server.stop().await;
}

#[tokio::test]
async fn without_an_idle_timeout_a_quiet_connection_stays() {
    let mut config = test_config();
    config.keepalive_interval = None;
    config.idle_timeout = None;
    config.shutdown_grace = Duration::from_millis(100);
    let server = start(config).await;
    let (closed, _) = live_peer_closed_within(server.addr, Duration::from_secs(2)).await;
    assert!(!closed);
    server.stop().await;
}

#[tokio::test]
async fn a_connection_with_an_open_call_is_not_idle() {
    let mut config = test_config();
    config.idle_timeout = Some(Duration::from_millis(200));
    let server = start(config).await;
    let client = server.client();
    let (tx, rx) = mpsc::channel(1);
    let mut replies = client
        .talk(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(TalkRequest {
        message: "hello".into(),
    })
    .await
    .unwrap();
    within(replies.next()).await.unwrap().unwrap();
    // Several idle timeouts pass while the conversation stays open.
    tokio::time::sleep(Duration::from_millis(800)).await;
    tx.send(TalkRequest {
        message: "still here".into(),
    })
    .await
    .unwrap();
    let reply = within(replies.next())
        .await
        .expect("a reply")
        .expect("the stream is alive");
    assert!(!reply.answer.is_empty());
    drop(tx);
    server.stop().await;
}
