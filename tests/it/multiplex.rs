//! Many calls on one HTTP/2 connection. While two or more are open, the server's
//! writes wait a scheduler turn so that replies finishing together share one `writev`
//! (`src/front/batch.rs`): every call must still get its own replies, whole and in
//! order, with its own trailers.

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;
use volo_gen::basic::service::v1::HelloRequest;

use crate::{
    common::{exchange, open_talk, say, start, test_config, within},
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
