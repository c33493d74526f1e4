//! HTTP/2 keepalive: a peer that stops answering pings is dropped.

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
