//! What interop clients saw: a call ends, in the access log and the metrics, with the
//! code its client saw or caused (CANCELLED for a reset or a dropped connection,
//! DEADLINE_EXCEEDED for a deadline its own timer enforced), and the `talk` example
//! exits right after the farewell.
//!
//! Each test runs the server binary (its own log and metrics registry) and speaks raw
//! HTTP/2 (the h2 crate), which can reset a stream the way grpc-go and grpc-js do.

use std::{
    io::{BufRead, BufReader, Write},
    net::SocketAddr,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::Duration,
};

use bytes::Bytes;
use tokio::{net::TcpStream, time::Instant};

use crate::{
    common::{say, scrape_metrics, within},
    wire::frame,
};

const BIN: &str = env!("CARGO_BIN_EXE_basic-service");
const TALK: &str = "/basic.v1.BasicService/Talk";

/// The server binary with JSON logs kept for inspection; killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    metrics: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

fn addr_in(line: &str) -> SocketAddr {
    let start = line.find("\"addr\":\"").expect("addr field") + 8;
    let end = start + line[start..].find('"').expect("addr end");
    line[start..end].parse().expect("addr parses")
}

impl Server {
    fn start() -> Self {
        let mut child = Command::new(BIN)
            .args(["--addr", "127.0.0.1:0", "--metrics-addr", "127.0.0.1:0"])
            .args(["--log-format", "json"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn server binary");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let (mut addr, mut metrics) = (None, None);
        while addr.is_none() || metrics.is_none() {
            let line = lines.next().expect("server exited early").expect("log");
            if line.contains("BasicService listening") {
                addr = Some(addr_in(&line));
            } else if line.contains("Prometheus metrics") {
                metrics = Some(addr_in(&line));
            }
        }
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            addr: addr.unwrap(),
            metrics: metrics.unwrap(),
            log,
        }
    }

    /// The codes of the access-log lines for `method`, once there are `n` of them.
    async fn codes(&self, method: &str, n: usize) -> Vec<String> {
        let field = format!("\"method\":\"{method}\"");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let codes: Vec<String> = self
                .log
                .lock()
                .unwrap()
                .iter()
                .filter(|l| l.contains("\"target\":\"access\"") && l.contains(&field))
                .map(|l| {
                    let start = l.find("\"code\":\"").expect("code field") + 8;
                    l[start..start + l[start..].find('"').unwrap()].to_owned()
                })
                .collect();
            if codes.len() >= n || Instant::now() > deadline {
                return codes;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The Prometheus text of the metrics endpoint.
    async fn scrape(&self) -> String {
        scrape_metrics(self.metrics).await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP/2 connection to `addr`, with its driver spawned.
async fn h2_client(
    addr: SocketAddr,
) -> (h2::client::SendRequest<Bytes>, tokio::task::JoinHandle<()>) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.unwrap();
    let driver = tokio::spawn(async move {
        let _ = conn.await;
    });
    (client, driver)
}

/// Opens a Talk stream, says one line and reads ELIZA's answer; returns the stream.
async fn talk_once(
    client: &h2::client::SendRequest<Bytes>,
    timeout: Option<&str>,
) -> (h2::SendStream<Bytes>, h2::RecvStream) {
    let mut req = http::Request::post(format!("http://localhost{TALK}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    if let Some(timeout) = timeout {
        req = req.header("grpc-timeout", timeout);
    }
    let mut client = client.clone().ready().await.unwrap();
    let (resp, mut send) = client.send_request(req.body(()).unwrap(), false).unwrap();
    send.send_data(Bytes::from(frame(&say("Men are all alike."))), false)
        .unwrap();
    let mut body = within(resp).await.unwrap().into_body();
    let reply = within(body.data()).await.expect("a reply").unwrap();
    let _ = body.flow_control().release_capacity(reply.len());
    assert!(reply.len() > 5, "one framed reply");
    (send, body)
}

#[tokio::test]
async fn talk_streams_the_client_resets_are_cancelled() {
    let server = Server::start();
    let (client, _driver) = h2_client(server.addr).await;
    const N: usize = 20;
    for _ in 0..N {
        let (mut send, _body) = talk_once(&client, None).await;
        // What grpc-go and grpc-js do when a call is cancelled.
        send.send_reset(h2::Reason::CANCEL);
    }
    let codes = server.codes(TALK, N).await;
    assert_eq!(codes, vec!["CANCELLED"; N]);
    let metrics = server.scrape().await;
    assert!(
        metrics.contains(&format!(
            "basic_rpc_total{{method=\"{TALK}\",protocol=\"grpc\",code=\"CANCELLED\"}} {N}"
        )),
        "{metrics}"
    );
    assert!(
        !metrics.contains(&format!("method=\"{TALK}\",code=\"OK\"")),
        "{metrics}"
    );
    assert!(metrics.contains("basic_streams_open 0"), "{metrics}");
}

#[tokio::test]
async fn talk_streams_whose_connection_drops_are_cancelled() {
    let server = Server::start();
    const N: usize = 5;
    for _ in 0..N {
        let (client, driver) = h2_client(server.addr).await;
        let stream = talk_once(&client, None).await;
        // The client process dies: no reset, the connection just goes.
        driver.abort();
        drop((client, stream));
    }
    assert_eq!(server.codes(TALK, N).await, vec!["CANCELLED"; N]);
}

#[tokio::test]
async fn talk_streams_reset_by_the_clients_deadline_exceeded_it() {
    let server = Server::start();
    let (client, _driver) = h2_client(server.addr).await;
    const N: usize = 10;
    let timeout = Duration::from_millis(1000);
    let calls = (0..N).map(|_| {
        let client = client.clone();
        async move {
            // Like a gRPC client: its deadline timer starts before the headers leave
            // and resets the stream when it fires, racing the server's own timer.
            let started = Instant::now();
            let (mut send, _body) = talk_once(&client, Some("1000m")).await;
            tokio::time::sleep_until(started + timeout).await;
            send.send_reset(h2::Reason::CANCEL);
            // Keep the stream's receiving half until the reset has gone out.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    within(futures::future::join_all(calls)).await;
    assert_eq!(server.codes(TALK, N).await, vec!["DEADLINE_EXCEEDED"; N]);
}

#[tokio::test]
async fn the_talk_example_exits_right_after_the_farewell() {
    // Examples are built next to the test binary's directory (`cargo test` builds them).
    let talk = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("examples").join("talk"))
        .filter(|path| path.exists())
        .expect(
            "examples/talk is built by `cargo test`; build it with `cargo build --example talk`",
        );
    let server = Server::start();
    let mut child = Command::new(talk)
        .args(["--addr", &server.addr.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // stdin stays open: the example must not wait for another line.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"Men are all alike.\nbye\n").unwrap();
    stdin.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the talk example still runs 30 s after the farewell");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    drop(stdin);
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    assert!(status.success(), "{status}: {out}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["In what way?", "Goodbye. It was nice talking to you."]
    );
}
