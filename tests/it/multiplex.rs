//! Many calls on one HTTP/2 connection. While two or more are open, the server's
//! writes wait a scheduler turn so that replies finishing together share one `writev`
//! (`src/front/batch.rs`): every call must still get its own replies, whole and in
//! order, with its own trailers. A new connection's opening waits for its first reply:
//! a client that waits for the server's settings before it calls must still get them.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use volo_gen::basic::service::v1::HelloRequest;

use crate::{
    common::{exchange, open_talk, say, start, test_config, within},
    raw::{self, frames},
    wire::{WebBody, answers, frame, greeting, post},
};

/// Sends `req` on the shared connection; gives the reply messages and `grpc-status`.
async fn call(
    mut sender: SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> (Vec<Bytes>, Option<String>) {
    sender.ready().await.unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let body = resp.into_body().collect().await.unwrap();
    let status = body
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .map(|v| v.to_str().unwrap().to_owned());
    (WebBody::parse(body.to_bytes()).messages, status)
}

#[tokio::test]
async fn concurrent_calls_on_one_connection_each_get_their_own_replies() {
    let server = start(test_config()).await;
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let conversation = [
        "Men are all alike.",
        "They're always bugging us about something or other.",
        "bye",
    ]
    .map(|line| frame(&say(line)))
    .concat();
    let (mut hellos, mut talks) = (Vec::new(), Vec::new());
    for i in 0..48 {
        let hello = frame(&HelloRequest {
            message: format!("caller {i}"),
        });
        let req = post("/basic.v1.BasicService/Hello", "application/grpc", hello);
        hellos.push(tokio::spawn(call(sender.clone(), req)));
        if i % 8 == 0 {
            let req = post(
                "/basic.v1.BasicService/Talk",
                "application/grpc",
                conversation.clone(),
            );
            talks.push(tokio::spawn(call(sender.clone(), req)));
        }
    }
    for (i, hello) in hellos.into_iter().enumerate() {
        let (messages, status) = within(hello).await.unwrap();
        assert_eq!(status.as_deref(), Some("0"), "Hello {i}");
        assert_eq!(messages.len(), 1, "Hello {i}");
        assert_eq!(greeting(&messages[0]), format!("Hello, caller {i}"));
    }
    for talk in talks {
        let (messages, status) = within(talk).await.unwrap();
        assert_eq!(status.as_deref(), Some("0"));
        assert_eq!(
            answers(&messages),
            [
                "In what way?",
                "Can you think of a specific example?",
                "Goodbye. It was nice talking to you."
            ]
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_reply_is_not_held_back_by_a_quiet_stream_on_the_same_connection() {
    let server = start(test_config()).await;
    // One client, one connection: a conversation that stays open and says nothing, so
    // two calls are open whenever the other one's reply is written.
    let client = server.client();
    let quiet = open_talk(&client, 1).await;
    let (tx, mut replies) = open_talk(&client, 1).await;
    for (line, answer) in [
        ("Men are all alike.", "In what way?"),
        (
            "They're always bugging us about something or other.",
            "Can you think of a specific example?",
        ),
    ] {
        // Nothing else happens on the connection: the held-back write must go out on
        // its own turn (`next_ok` waits at most 30 s).
        assert_eq!(exchange(&tx, &mut replies, line).await.answer, answer);
    }
    drop((quiet, tx, replies));
    server.stop().await;
}

/// HTTP/2 frame types and flags, as the server sends them.
const DATA: u8 = 0x0;
const SETTINGS: u8 = 0x4;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

/// Reads the frames the server sends on `tcp` (type, flags, stream) until `enough` says
/// so; fails if they stop coming first (the server waits for something that will not
/// come).
async fn frames_until(
    tcp: &mut TcpStream,
    enough: impl Fn(&[(u8, u8, u32)]) -> bool,
) -> Vec<(u8, u8, u32)> {
    use tokio::io::AsyncReadExt;
    let mut bytes = Vec::new();
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0; 4096];
        while !enough(&seen) {
            let n = tcp.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed after {seen:?}");
            bytes.extend_from_slice(&buf[..n]);
            while bytes.len() >= 9 {
                let len = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]) as usize;
                if bytes.len() < 9 + len {
                    break;
                }
                let stream = u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
                seen.push((bytes[3], bytes[4], stream & 0x7fff_ffff));
                bytes.drain(..9 + len);
            }
        }
    };
    within(read).await;
    seen
}

#[tokio::test]
async fn a_client_that_waits_for_the_server_s_settings_gets_them_without_calling() {
    let server = start(test_config()).await;
    // The preface and the client's settings; or only the preface, which the client
    // should follow with settings but may not.
    let magic = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    for opening in [frames::preface(), magic] {
        let mut tcp = raw::tcp(server.addr).await;
        tokio::io::AsyncWriteExt::write_all(&mut tcp, &opening)
            .await
            .unwrap();
        let seen = frames_until(&mut tcp, |seen| {
            seen.iter()
                .any(|&(kind, flags, _)| kind == SETTINGS && flags & ACK == 0)
        })
        .await;
        assert_eq!(seen[0].0, SETTINGS, "the server speaks first: {seen:?}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_call_made_with_the_preface_gets_the_opening_then_its_reply() {
    let server = start(test_config()).await;
    let mut tcp = raw::tcp(server.addr).await;
    let mut bytes = frames::preface();
    let headers = frames::grpc_headers("/basic.v1.BasicService/Hello", &[]);
    bytes.extend(frames::frame(frames::HEADERS, END_HEADERS, 1, &headers));
    bytes.extend(frames::frame(
        DATA,
        END_STREAM,
        1,
        &raw::grpc_frame(b"\x0a\x03Ada"),
    ));
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &bytes)
        .await
        .unwrap();
    let seen = frames_until(&mut tcp, |seen| {
        seen.contains(&(frames::HEADERS, END_STREAM | END_HEADERS, 1))
    })
    .await;
    // The server's settings first, then the acknowledgement of the client's, before the
    // reply: headers, one message, trailers.
    assert_eq!(seen[0], (SETTINGS, 0, 0), "{seen:?}");
    let ack = seen.iter().position(|&f| f == (SETTINGS, ACK, 0));
    let reply: Vec<_> = seen.iter().filter(|f| f.2 == 1).collect();
    assert!(ack.is_some(), "no SETTINGS ACK: {seen:?}");
    assert_eq!(
        reply,
        [
            &(frames::HEADERS, END_HEADERS, 1),
            &(DATA, 0, 1),
            &(frames::HEADERS, END_STREAM | END_HEADERS, 1)
        ],
        "{seen:?}"
    );
    drop(tcp);
    server.stop().await;
}
