use futures::StreamExt;
use volo_gen::basic::service::v1::TalkRequest;
use volo_grpc::Code;

use crate::common::{open_talk, say, start, test_config, within};

#[tokio::test]
async fn each_message_gets_one_reply_before_the_next_is_sent() {
    let server = start(test_config()).await;
    let client = server.client();
    let (tx, mut replies) = open_talk(&client, 1).await;
    // Wait for every reply before sending the next message: the server must not batch.
    for line in ["Men are all alike.", "I feel sad.", "My mother hates me."] {
        tx.send(say(line)).await.unwrap();
        let reply = replies.next().await.expect("a reply").expect("no error");
        assert!(!reply.answer.is_empty());
    }
    drop(tx); // half-close
    assert!(
        replies.next().await.is_none(),
        "stream ends with OK after half-close"
    );
    server.stop().await;
}

#[tokio::test]
async fn pipelined_messages_get_replies_in_order_one_each() {
    let server = start(test_config()).await;
    let client = server.client();
    let lines: Vec<TalkRequest> = (0..50).map(|i| say(&format!("I am message {i}"))).collect();
    let replies: Vec<_> = client
        .talk(futures::stream::iter(lines))
        .await
        .expect("talk opens")
        .into_inner()
        .collect()
        .await;
    assert_eq!(replies.len(), 50);
    // DOCTOR echoes "message <i>" back (I AM 0 -> ... YOU ARE 4 ...): replies are in order.
    for (i, reply) in replies.iter().enumerate() {
        let answer = reply.as_ref().expect("reply is OK").answer.to_lowercase();
        assert!(
            answer.contains(&format!("message {i}")),
            "reply {i}: {answer}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn goodbye_gets_a_farewell_then_the_stream_ends() {
    let server = start(test_config()).await;
    let client = server.client();
    let (tx, mut replies) = open_talk(&client, 4).await;
    tx.send(say("Hello there.")).await.unwrap();
    replies.next().await.unwrap().unwrap();
    tx.send(say("Goodbye!")).await.unwrap();
    let farewell = replies
        .next()
        .await
        .expect("a farewell")
        .expect("farewell is OK");
    assert!(!farewell.answer.is_empty());
    // The server ends the stream itself, although our side is still open.
    assert!(within(replies.next()).await.is_none());
    drop(tx);
    server.stop().await;
}

#[tokio::test]
async fn oversized_message_ends_the_stream_with_invalid_argument() {
    let mut config = test_config();
    config.limits.max_talk_message_bytes = 64;
    let server = start(config).await;
    let client = server.client();
    let (tx, mut replies) = open_talk(&client, 4).await;
    tx.send(say("short is fine")).await.unwrap();
    replies.next().await.unwrap().unwrap();
    tx.send(say(&"x".repeat(65))).await.unwrap();
    let status = replies
        .next()
        .await
        .expect("an error")
        .expect_err("oversized is refused");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("64 bytes"),
        "{}",
        status.message()
    );
    assert!(replies.next().await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn a_message_exactly_at_the_limit_is_accepted() {
    let mut config = test_config();
    config.limits.max_talk_message_bytes = 64;
    let server = start(config).await;
    let replies: Vec<_> = server
        .client()
        .talk(futures::stream::iter([say(&"é".repeat(32))]))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert_eq!(replies.len(), 1);
    assert!(replies[0].is_ok());
    server.stop().await;
}

#[tokio::test]
async fn an_empty_conversation_ends_cleanly() {
    let server = start(test_config()).await;
    let replies: Vec<_> = server
        .client()
        .talk(futures::stream::iter(Vec::<TalkRequest>::new()))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    assert!(replies.is_empty());
    server.stop().await;
}

/// Upper case, letters, digits and single spaces only.
fn normalize(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_alphanumeric() || c.is_whitespace())
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_uppercase()
}

#[tokio::test]
async fn the_1966_conversation_over_one_stream_gives_the_1966_replies() {
    let transcript = include_str!("../../src/eliza/testdata/cacm-1966-conversation.tsv");
    let pairs: Vec<(&str, &str)> = transcript
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_once('\t').expect("user TAB reply"))
        .collect();
    assert_eq!(pairs.len(), 15);
    let server = start(test_config()).await;
    let client = server.client();
    let (tx, mut replies) = open_talk(&client, 1).await;
    for (said, expected) in pairs {
        tx.send(say(said)).await.unwrap();
        let reply = within(replies.next()).await.expect("a reply").expect("OK");
        assert_eq!(
            normalize(&reply.answer),
            normalize(expected),
            "after {said:?}"
        );
    }
    tx.send(say("Goodbye.")).await.unwrap();
    let farewell = within(replies.next()).await.expect("farewell").expect("OK");
    assert!(!farewell.answer.is_empty());
    assert!(
        within(replies.next()).await.is_none(),
        "goodbye ends the stream"
    );
    server.stop().await;
}
