//! Maximum connection age: GOAWAY after the (jittered) age, a grace for open calls, no
//! accepted call lost; HTTP/1.1 gets `Connection: close`. Also the HTTP/1.1 head timeout.

use std::time::Duration;

use bytes::{Buf, Bytes};
use futures::StreamExt;
use pilota::pb::{EncodeLengthContext, Message};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    task::JoinHandle,
};
use volo_gen::basic::service::v1::{HelloRequest, TalkResponse};

use std::net::SocketAddr;

use basic_service::BasicServer;
use tokio::net::TcpListener;

use crate::{
    common::{TestServer, say, scrape_metrics, start, start_server, test_config},
    raw::{grpc_frame, grpc_request},
};

/// A server whose connections go away after `age`, open calls getting `grace`; and
/// the address of its metrics.
async fn aged(age: Duration, grace: Option<Duration>) -> (TestServer, SocketAddr) {
    let mut config = test_config();
    config.http2.max_connection_age = Some(age);
    config.http2.max_connection_age_grace = grace;
    // Short, so that the tests also see a call outlive the connection's first deadline.
    config.http2.handshake_timeout = Duration::from_secs(1);
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let server = BasicServer::new(config).unwrap().metrics_listener(metrics);
    (start_server(server).await, metrics_addr)
}

/// `basic_connections_aged_total` (process-wide: other tests add to it too).
async fn connections_aged(metrics: SocketAddr) -> u64 {
    scrape_metrics(metrics)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("basic_connections_aged_total "))
        .map_or(0, |n| n.trim().parse().unwrap())
}

/// An HTTP/2 connection whose end (the server closing it) can be awaited.
struct Conn {
    send: h2::client::SendRequest<Bytes>,
    closed: JoinHandle<()>,
}

async fn connect(server: &TestServer) -> Conn {
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (send, conn) = h2::client::handshake(tcp).await.unwrap();
    let closed = tokio::spawn(async move {
        let _ = conn.await;
    });
    Conn { send, closed }
}

impl Conn {
    /// Waits (at most 30 s) until the server's GOAWAY has arrived: no new stream opens.
    async fn goaway(&self) {
        let wait = async {
            while self.send.clone().ready().await.is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("a GOAWAY within 30 s");
    }
}

/// An open Talk call: send a line, read the reply.
struct Talk {
    tx: h2::SendStream<Bytes>,
    rx: h2::RecvStream,
    buf: Vec<u8>,
}

impl Talk {
    async fn open(conn: &Conn) -> Self {
        let mut send = conn.send.clone().ready().await.unwrap();
        let (response, tx) = send
            .send_request(grpc_request("/basic.v1.BasicService/Talk", &[]), false)
            .unwrap();
        let mut talk = Talk {
            tx,
            rx: response.await.unwrap().into_body(),
            buf: Vec::new(),
        };
        talk.exchange("Men are all alike.").await.unwrap();
        talk
    }

    /// Sends `line` and reads ELIZA's reply; `Err` if the stream broke.
    async fn exchange(&mut self, line: &str) -> Result<String, String> {
        let message = say(line).encode_to_vec(&mut EncodeLengthContext::default());
        self.tx
            .send_data(Bytes::from(grpc_frame(&message)), false)
            .map_err(|e| e.to_string())?;
        loop {
            if self.buf.len() >= 5 {
                let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]])
                    as usize;
                if self.buf.len() >= 5 + len {
                    let reply = TalkResponse::decode(Bytes::copy_from_slice(&self.buf[5..5 + len]))
                        .map_err(|e| e.to_string())?;
                    self.buf.drain(..5 + len);
                    return Ok(reply.answer);
                }
            }
            let mut chunk = tokio::time::timeout(Duration::from_secs(30), self.rx.data())
                .await
                .map_err(|_| "no reply in 30 s".to_owned())?
                .ok_or("the stream ended")?
                .map_err(|e| e.to_string())?;
            let _ = self.rx.flow_control().release_capacity(chunk.remaining());
            self.buf
                .extend_from_slice(&chunk.copy_to_bytes(chunk.remaining()));
        }
    }

    /// Half-closes and returns the call's `grpc-status`.
    async fn finish(mut self) -> Result<String, String> {
        self.tx
            .send_data(Bytes::new(), true)
            .map_err(|e| e.to_string())?;
        while let Some(data) = self.rx.data().await {
            data.map_err(|e| e.to_string())?;
        }
        let trailers = self
            .rx
            .trailers()
            .await
            .map_err(|e| e.to_string())?
            .ok_or("no trailers")?;
        Ok(trailers["grpc-status"].to_str().unwrap().to_owned())
    }
}

#[tokio::test]
async fn past_its_maximum_age_a_connection_gets_goaway_and_its_open_call_finishes() {
    let (server, metrics) = aged(Duration::from_millis(500), None).await;
    let conn = connect(&server).await;
    let mut talk = Talk::open(&conn).await;
    conn.goaway().await;
    // The call opened before the GOAWAY carries on, for as long as it needs (no grace),
    // past the handshake timeout too.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let reply = talk
        .exchange("He says I'm depressed much of the time.")
        .await
        .unwrap();
    assert!(!reply.is_empty());
    assert_eq!(talk.finish().await.unwrap(), "0");
    // With no call left, the server closes the connection.
    tokio::time::timeout(Duration::from_secs(30), conn.closed)
        .await
        .expect("the connection closes once its last call ended")
        .unwrap();
    assert!(connections_aged(metrics).await >= 1);
    server.stop().await;
}

#[tokio::test]
async fn a_call_that_outlives_the_grace_is_cut_off_with_the_connection() {
    let (server, _) = aged(Duration::from_millis(300), Some(Duration::from_millis(300))).await;
    let conn = connect(&server).await;
    let mut talk = Talk::open(&conn).await;
    conn.goaway().await;
    tokio::time::timeout(Duration::from_secs(30), conn.closed)
        .await
        .expect("the connection is closed after the grace")
        .unwrap();
    assert!(talk.exchange("Are you there?").await.is_err());
    server.stop().await;
}

#[tokio::test]
async fn without_a_maximum_age_a_busy_connection_stays() {
    // The control for the tests above: the GOAWAY comes from the age.
    let server = start(test_config()).await;
    let conn = connect(&server).await;
    let talk = Talk::open(&conn).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(conn.send.clone().ready().await.is_ok(), "no GOAWAY");
    assert_eq!(talk.finish().await.unwrap(), "0");
    server.stop().await;
}

#[tokio::test]
async fn clients_move_to_new_connections_and_no_call_fails() {
    let (server, metrics) = aged(Duration::from_millis(300), Some(Duration::from_secs(5))).await;
    let aged_before = connections_aged(metrics).await;
    let client = server.client();
    // Four callers, continuously, across several ages.
    let until = tokio::time::Instant::now() + Duration::from_millis(1500);
    let callers = (0..4).map(|_| {
        let client = client.clone();
        tokio::spawn(async move {
            let (mut ok, mut failed) = (0, Vec::new());
            while tokio::time::Instant::now() < until {
                match client
                    .hello(HelloRequest {
                        message: "Ada".into(),
                    })
                    .await
                {
                    Ok(_) => ok += 1,
                    Err(status) => failed.push(status.to_string()),
                }
            }
            (ok, failed)
        })
    });
    let results = futures::stream::iter(callers)
        .then(|caller| async { caller.await.unwrap() })
        .collect::<Vec<_>>()
        .await;
    let failed: Vec<String> = results.iter().flat_map(|(_, f)| f.clone()).collect();
    let ok: u32 = results.iter().map(|(ok, _)| ok).sum();
    assert!(failed.is_empty(), "{} ok, failed: {failed:?}", ok);
    // About five ages passed: the client went through several connections.
    let aged = connections_aged(metrics).await - aged_before;
    assert!(aged >= 2, "connections aged meanwhile: {aged}");
    server.stop().await;
}

/// Sends a gRPC-Web Hello on `tcp` (HTTP/1.1 keep-alive) and reads the response head
/// and body; returns the head.
async fn h1_hello(tcp: &mut TcpStream) -> String {
    let body = grpc_frame(
        &HelloRequest {
            message: "Ada".into(),
        }
        .encode_to_vec(&mut EncodeLengthContext::default()),
    );
    let head = format!(
        "POST /basic.v1.BasicService/Hello HTTP/1.1\r\nhost: test\r\n\
         content-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&body).await.unwrap();
    // The response is small; read until its chunked body ends.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.ends_with(b"0\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(30), tcp.read(&mut buf))
            .await
            .expect("a response within 30 s")
            .unwrap();
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen).into_owned();
    text.split("\r\n\r\n").next().unwrap().to_ascii_lowercase()
}

#[tokio::test]
async fn past_its_maximum_age_http1_says_connection_close_on_its_next_response() {
    let (server, _) = aged(Duration::from_millis(300), None).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    let first = h1_hello(&mut tcp).await;
    assert!(first.starts_with("http/1.1 200"), "{first}");
    assert!(!first.contains("connection: close"), "{first}");
    tokio::time::sleep(Duration::from_millis(700)).await;
    let second = h1_hello(&mut tcp).await;
    assert!(second.starts_with("http/1.1 200"), "{second}");
    assert!(second.contains("connection: close"), "{second}");
    // And the server closes the connection after it.
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), tcp.read_to_end(&mut rest))
        .await
        .expect("closed")
        .unwrap();
    server.stop().await;
}

#[tokio::test]
async fn an_http1_request_head_that_stalls_is_dropped_after_its_timeout() {
    let mut config = test_config();
    config.http2.http1_header_read_timeout = Duration::from_millis(500);
    let server = start(config).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(b"POST /basic.v1.BasicService/Hello HTTP/1.1\r\nhost: te")
        .await
        .unwrap();
    let mut rest = Vec::new();
    // hyper answers 408 or just closes; either way the connection ends, well before
    // hyper's own default of 30 s.
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest))
        .await
        .expect("the stalled connection is closed")
        .unwrap();
    server.stop().await;
}

/// On a paused clock (time jumps whenever the runtime is idle), over real loopback
/// sockets: each connection's GOAWAY comes after its own age, within ±10 % of the flag.
#[tokio::test(start_paused = true)]
async fn each_connection_goes_away_after_its_own_jittered_age() {
    let age = Duration::from_secs(100);
    let mut config = test_config();
    config.http2.max_connection_age = Some(age);
    let server = start(config).await;
    let start = tokio::time::Instant::now();
    let mut conns = Vec::new();
    for _ in 0..8 {
        conns.push(connect(&server).await);
    }
    // Every connection watched at once, each noticing its own GOAWAY within 50 ms.
    let ages = futures::future::join_all(conns.iter().map(|conn| async move {
        let wait = async {
            while conn.send.clone().ready().await.is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        tokio::time::timeout(2 * age, wait).await.expect("a GOAWAY");
        start.elapsed()
    }))
    .await;
    let slack = Duration::from_millis(100);
    assert!(
        ages.iter()
            .all(|a| *a >= age.mul_f64(0.9) && *a <= age.mul_f64(1.1) + slack),
        "{ages:?}"
    );
    // Drawn apart: eight draws from 20 s of jitter do not all fall within a second.
    let (first, last) = (ages.iter().min().unwrap(), ages.iter().max().unwrap());
    assert!(*last - *first >= Duration::from_secs(1), "{ages:?}");
    server.stop().await;
}
