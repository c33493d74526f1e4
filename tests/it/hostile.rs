//! Hostile input through the real server over raw HTTP/2: what a normal gRPC client
//! cannot send. Each attack gets a clean gRPC status and the server keeps serving.

use std::time::Duration;

use futures::StreamExt;

use proptest::{
    prelude::*,
    test_runner::{Config as PropConfig, TestRunner},
};

use crate::{
    common::{start, test_config},
    raw::{self, RawConn, Until},
};

/// Every RPC of every service, with a valid request message for each.
const METHODS: &[(&str, &[u8])] = &[
    ("/basic.v1.BasicService/Hello", b"\x0a\x03Ada"),
    ("/basic.v1.BasicService/Talk", b"\x0a\x0eI am unhappy."),
    ("/basic.v1.BasicService/Background", b"\x08\x02"),
    (
        "/grpc.health.v1.Health/Check",
        b"\x0a\x16basic.v1.BasicService",
    ),
    ("/grpc.health.v1.Health/Watch", b"\x0a\x00"),
    ("/grpc.health.v1.Health/List", b""),
    (
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
        b"\x3a\x00",
    ),
    (
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        b"\x22\x15basic.v1.BasicService",
    ),
];

const INTERNAL: i32 = 13;

/// A Hello that must succeed: the server is alive and well.
async fn assert_serving(conn: &RawConn) {
    let reply = conn
        .unary("/basic.v1.BasicService/Hello", b"\x0a\x02ok")
        .await
        .expect("hello after the attack");
    assert_eq!(reply.grpc_status, Some(0), "{reply:?}");
}

/// Asserts the server closes `tcp` within 10 s; `what` names the connection.
async fn assert_closed(tcp: &mut tokio::net::TcpStream, what: &str) {
    assert!(
        raw::closed_within(tcp, Duration::from_secs(10)).await,
        "the connection is not closed ({what})"
    );
}

#[tokio::test]
async fn unknown_methods_and_services_are_unimplemented() {
    let server = start(test_config()).await;
    let conn = raw::connect(server.addr).await;
    for path in [
        "/basic.v1.BasicService/Nope",
        "/grpc.health.v1.Health/List",
        "/no.such.Service/Hello",
        "/basic.v1.BasicService/Hello/extra",
    ] {
        let reply = conn.unary(path, b"").await.expect("a reply");
        assert_eq!(reply.grpc_status, Some(12), "{path}: {reply:?}");
        assert!(reply.grpc_message.contains(path), "{path}: {reply:?}");
    }
    assert_serving(&conn).await;
    server.stop().await;
}

#[tokio::test]
async fn invalid_utf8_in_any_string_field_is_refused_and_the_server_lives() {
    let server = start(test_config()).await;
    let conn = raw::connect(server.addr).await;
    // The bytes from the report (this one used to crash the process), and two more.
    let cases: &[(&str, &[u8])] = &[
        ("/basic.v1.BasicService/Talk", b"\x0a\x02\xff\xfe"),
        ("/basic.v1.BasicService/Talk", b"\x0a\x0bI am \x80\x80 sad"),
        ("/basic.v1.BasicService/Hello", b"\x0a\x02\x41\xc3"),
        ("/grpc.health.v1.Health/Check", b"\x0a\x02\xe2\x82"),
        (
            // file_by_filename
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            b"\x1a\x02\xff\xfe",
        ),
        (
            // host
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            b"\x0a\x01\xff\x3a\x00",
        ),
    ];
    for (path, message) in cases {
        let reply = conn.unary(path, message).await.expect("a reply");
        assert_eq!(reply.grpc_status, Some(INTERNAL), "{path}: {reply:?}");
        assert!(
            reply.grpc_message.contains("UTF-8") || reply.grpc_message.contains("utf-8"),
            "{path}: the message says why: {:?}",
            reply.grpc_message
        );
        // Nothing of the bad bytes comes back as a reply message.
        assert!(reply.body.is_empty(), "{path}: {:?}", reply.body);
        assert_serving(&conn).await;
    }
    server.stop().await;
}

/// A reply is clean when it is an HTTP 200 with a gRPC status from the spec's range,
/// or (an endless stream such as Watch) a first whole message.
fn clean(reply: &raw::RawReply) -> bool {
    reply.http == 200
        && match reply.grpc_status {
            Some(code) => (0..=16).contains(&code),
            None => !reply.body.is_empty(),
        }
}

/// `valid` with a few (`edits`) of its bytes overwritten or inserted (taken from `bytes`),
/// or cut short.
pub fn mutations(
    valid: Vec<u8>,
    bytes: impl Strategy<Value = u8> + Clone,
    edits: std::ops::Range<usize>,
) -> impl Strategy<Value = Vec<u8>> {
    let len = valid.len();
    proptest::collection::vec((0..len.max(1) + 1, bytes, 0..3u8), edits).prop_map(move |edits| {
        let mut out = valid.clone();
        for (at, byte, kind) in edits {
            let at = at.min(out.len());
            match kind {
                0 if at < out.len() => out[at] = byte,
                1 => out.insert(at, byte),
                _ => out.truncate(at),
            }
        }
        out
    })
}

/// Random and mutated request messages for every RPC: always a clean status, never a
/// crash, and the server serves afterwards.
#[test]
fn random_and_mutated_messages_get_a_clean_status() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (server, conn) = runtime.block_on(async {
        let mut config = test_config();
        config.sim.delay = Duration::ZERO..=Duration::from_millis(1);
        config.limits.max_processes = 64;
        let server = start(config).await;
        let conn = raw::connect(server.addr).await;
        (server, conn)
    });

    // A valid message with a few bytes overwritten, inserted or cut; or plain noise.
    let message = (0..METHODS.len()).prop_flat_map(|method| {
        let valid = METHODS[method].1.to_vec();
        let mutated = mutations(valid, any::<u8>(), 1..4);
        let noise = proptest::collection::vec(any::<u8>(), 0..48);
        (Just(method), prop_oneof![mutated, noise])
    });

    let mut runner = TestRunner::new(PropConfig {
        cases: 400,
        failure_persistence: None,
        ..PropConfig::default()
    });
    let result = runner.run(&message, |(method, bytes)| {
        let (path, _) = METHODS[method];
        let request = raw::grpc_request(path, &[]);
        let body = raw::grpc_frame(&bytes);
        let call = conn.call_until(request, &body, Until::FirstMessage);
        let reply = runtime
            .block_on(call)
            .map_err(|err| TestCaseError::fail(format!("{path} {bytes:02x?}: {err}")))?;
        prop_assert!(clean(&reply), "{path} {bytes:02x?}: {reply:?}");
        Ok(())
    });
    runtime.block_on(async {
        assert_serving(&conn).await;
        server.stop().await;
    });
    if let Err(err) = result {
        panic!("{err}");
    }
}

#[tokio::test]
async fn binary_metadata_is_accepted() {
    let server = start(test_config()).await;
    let conn = raw::connect(server.addr).await;
    let request = raw::grpc_request(
        "/basic.v1.BasicService/Hello",
        &[("grpc-trace-bin", "AAECAw=="), ("x-custom-bin", "////")],
    );
    let reply = conn
        .call(request, &raw::grpc_frame(b"\x0a\x02ok"))
        .await
        .expect("a reply");
    assert_eq!(reply.grpc_status, Some(0), "{reply:?}");
    assert_serving(&conn).await;
    server.stop().await;
}

const DEADLINE_EXCEEDED: i32 = 4;
const RESOURCE_EXHAUSTED: i32 = 8;

#[tokio::test]
async fn a_request_that_never_arrives_times_out_and_frees_its_place() {
    let mut config = test_config();
    config.limits.request_timeout = Some(Duration::from_millis(500));
    config.limits.max_in_flight = 2;
    let server = start(config).await;
    let conn = raw::connect(server.addr).await;
    let hello = || raw::grpc_request("/basic.v1.BasicService/Hello", &[]);
    // HEADERS only; and 10 bytes of a message announced as 100.
    let (nothing, _keep1) = conn.stall(hello(), b"").await.expect("open");
    let mut partial = raw::grpc_frame(&[b'a'; 100]);
    partial.truncate(15);
    let (half, _keep2) = conn.stall(hello(), &partial).await.expect("open");
    for response in [nothing, half] {
        let reply = raw::read_reply(response, Until::End)
            .await
            .expect("a reply");
        assert_eq!(reply.grpc_status, Some(DEADLINE_EXCEEDED), "{reply:?}");
        assert!(
            reply.grpc_message.contains("not received within"),
            "{reply:?}"
        );
    }
    // Both places are free again.
    assert_serving(&conn).await;
    server.stop().await;
}

#[tokio::test]
async fn a_stream_that_stops_sending_times_out() {
    let mut config = test_config();
    config.limits.stream_idle_timeout = Some(Duration::from_millis(500));
    let server = start(config).await;
    let conn = raw::connect(server.addr).await;
    let talk = raw::grpc_request("/basic.v1.BasicService/Talk", &[]);
    let (response, _keep) = conn
        .stall(talk, &raw::grpc_frame(b"\x0a\x05Hello"))
        .await
        .expect("open");
    let reply = raw::read_reply(response, Until::End)
        .await
        .expect("a reply");
    // The first message was answered; then the stream waited in vain.
    assert!(reply.body.len() > 5, "one reply first: {reply:?}");
    assert_eq!(reply.grpc_status, Some(DEADLINE_EXCEEDED), "{reply:?}");
    assert!(reply.grpc_message.contains("no message"), "{reply:?}");
    server.stop().await;
}

/// One client squatting on stalled calls cannot lock others out: each connection gets
/// only its share of the in-flight pool.
#[tokio::test]
async fn stalled_calls_on_a_few_connections_leave_room_for_others() {
    const POOL: usize = 60;
    const SHARE: usize = 20;
    const STALLED_PER_CONN: usize = 30;
    let mut config = test_config();
    config.limits.max_in_flight = POOL;
    config.limits.max_in_flight_per_connection = SHARE;
    config.limits.request_timeout = None; // the squat lasts; only the share protects others
    let server = start(config).await;

    let mut held = Vec::new();
    let mut attackers = Vec::new();
    for _ in 0..2 {
        let attacker = raw::connect(server.addr).await;
        let mut answers = futures::stream::FuturesUnordered::new();
        for _ in 0..STALLED_PER_CONN {
            let request = raw::grpc_request("/basic.v1.BasicService/Hello", &[]);
            let (response, stream) = attacker.stall(request, b"").await.expect("open");
            held.push(stream);
            answers.push(response);
        }
        // The calls over the share are refused at once (trailers-only); the rest wait.
        for _ in 0..STALLED_PER_CONN - SHARE {
            let reply = tokio::time::timeout(Duration::from_secs(30), answers.next())
                .await
                .expect("refusals within 30 s")
                .expect("an answer")
                .expect("no transport error");
            let status = reply
                .headers()
                .get("grpc-status")
                .and_then(|s| s.to_str().ok());
            assert_eq!(status, Some("8"), "{reply:?}");
        }
        // No other call was answered: they are all held.
        assert!(
            tokio::time::timeout(Duration::from_millis(200), answers.next())
                .await
                .is_err(),
            "only the calls over the share are refused"
        );
        attackers.push(attacker);
    }

    let legit = raw::connect(server.addr).await;
    let mut ok = 0;
    for _ in 0..50 {
        let reply = legit
            .unary("/basic.v1.BasicService/Hello", b"\x0a\x02ok")
            .await
            .expect("a reply");
        if reply.grpc_status == Some(0) {
            ok += 1;
        } else {
            assert_eq!(reply.grpc_status, Some(RESOURCE_EXHAUSTED), "{reply:?}");
        }
    }
    assert!(ok >= 45, "legit client: {ok} of 50 calls succeeded");
    drop((held, attackers));
    server.stop().await;
}

#[tokio::test]
async fn metadata_over_the_header_limit_is_refused_before_any_handler() {
    let mut config = test_config();
    config.http2.max_header_list_bytes = 8 * 1024;
    let server = start(config).await;
    let conn = raw::connect(server.addr).await;
    let big = "x".repeat(16 * 1024);
    let request = raw::grpc_request("/basic.v1.BasicService/Hello", &[("x-big", &big)]);
    let reply = conn
        .call(request, &raw::grpc_frame(b"\x0a\x02ok"))
        .await
        .expect("a reply");
    // Refused by HTTP/2 itself: 431, no gRPC status, so no layer or handler ran.
    assert_eq!(reply.http, 431, "{reply:?}");
    assert!(reply.grpc_status.is_none() && reply.headers.get("x-request-id").is_none());
    // Within the limit, the same header is fine.
    let fits = "x".repeat(4 * 1024);
    let request = raw::grpc_request("/basic.v1.BasicService/Hello", &[("x-big", &fits)]);
    let reply = conn
        .call(request, &raw::grpc_frame(b"\x0a\x02ok"))
        .await
        .expect("a reply");
    assert_eq!(reply.grpc_status, Some(0), "{reply:?}");
    assert_serving(&raw::connect(server.addr).await).await;
    server.stop().await;
}

#[tokio::test]
async fn an_unfinished_header_block_cannot_grow_past_the_limit() {
    use raw::frames::{self, CONTINUATION, HEADERS};
    use tokio::io::AsyncWriteExt;

    let mut config = test_config();
    config.http2.max_header_list_bytes = 16 * 1024;
    let server = start(config).await;
    let mut tcp = raw::tcp(server.addr).await;
    tcp.write_all(&frames::preface()).await.expect("preface");
    let block = frames::grpc_headers("/basic.v1.BasicService/Hello", &[]);
    tcp.write_all(&frames::frame(HEADERS, 0, 1, &block))
        .await
        .expect("headers");
    // 4 MiB of CONTINUATION without END_HEADERS: the server must give up long before.
    let chunk = frames::frame(CONTINUATION, 0, 1, &[0x00; 16 * 1024]);
    let mut sent = 0usize;
    for _ in 0..256 {
        if tcp.write_all(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    assert_closed(&mut tcp, &format!("after {sent} bytes")).await;
    assert_serving(&raw::connect(server.addr).await).await;
    server.stop().await;
}

#[tokio::test]
async fn connections_that_never_send_the_preface_are_closed() {
    use tokio::io::AsyncWriteExt;

    let mut config = test_config();
    config.http2.handshake_timeout = Duration::from_millis(300);
    let server = start(config).await;
    let mut silent = raw::tcp(server.addr).await;
    let mut half = raw::tcp(server.addr).await;
    half.write_all(b"PRI * HTTP/2.0\r\n")
        .await
        .expect("half a preface");
    assert_closed(&mut silent, "silent").await;
    assert_closed(&mut half, "half").await;
    assert_serving(&raw::connect(server.addr).await).await;
    server.stop().await;
}

#[tokio::test]
async fn a_broken_preface_after_its_first_line_is_an_http2_connection_error() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = start(test_config()).await;
    let mut tcp = raw::tcp(server.addr).await;
    // The preface's first line, then not the rest of it (RFC 9113 §3.4).
    tcp.write_all(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        .await
        .expect("a broken preface");
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut answer))
        .await
        .expect("the server closes the connection")
        .ok();
    assert!(
        !answer.starts_with(b"HTTP/1"),
        "answered as HTTP/1.1: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // The frames sent: a GOAWAY (type 7) whose error code is PROTOCOL_ERROR (1).
    let mut rest = &answer[..];
    let mut goaway = None;
    while rest.len() >= 9 {
        let len = u32::from_be_bytes([0, rest[0], rest[1], rest[2]]) as usize;
        let payload = &rest[9..(9 + len).min(rest.len())];
        if rest[3] == 7 && payload.len() >= 8 {
            goaway = Some(u32::from_be_bytes([
                payload[4], payload[5], payload[6], payload[7],
            ]));
        }
        rest = &rest[(9 + len).min(rest.len())..];
    }
    assert_eq!(goaway, Some(1), "frames: {answer:?}");
    assert_serving(&raw::connect(server.addr).await).await;
    server.stop().await;
}

#[tokio::test]
async fn at_the_connection_cap_new_clients_wait_for_a_free_place() {
    let mut config = test_config();
    config.limits.max_connections = 2;
    config.http2.handshake_timeout = Duration::from_secs(60);
    let server = start(config).await;
    let first = raw::tcp(server.addr).await;
    let _second = raw::tcp(server.addr).await;

    // The third connects (the kernel's backlog) but is not served while both stay open.
    let addr = server.addr;
    let mut third = tokio::spawn(async move {
        let conn = raw::connect(addr).await;
        conn.unary("/basic.v1.BasicService/Hello", b"\x0a\x02ok")
            .await
    });
    assert!(
        tokio::time::timeout(Duration::from_millis(500), &mut third)
            .await
            .is_err(),
        "served beyond the cap"
    );
    drop(first);
    let reply = tokio::time::timeout(Duration::from_secs(30), third)
        .await
        .expect("served once a place is free")
        .expect("task")
        .expect("a reply");
    assert_eq!(reply.grpc_status, Some(0), "{reply:?}");
    server.stop().await;
}
