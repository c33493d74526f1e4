use futures::StreamExt;
use volo_grpc::Code;

use crate::common::{
    assert_status, exchange, expect_end, open_talk, say, start, talk_all, test_config, within,
};

#[tokio::test]
async fn each_message_gets_one_reply_before_the_next_is_sent() {
    let server = start(test_config()).await;
    let client = server.client();
    let (tx, mut replies) = open_talk(&client, 1).await;
    // Wait for every reply before sending the next message: the server must not batch.
    for line in ["Men are all alike.", "I feel sad.", "My mother hates me."] {
        let reply = exchange(&tx, &mut replies, line).await;
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
    let replies = talk_all(&client, (0..50).map(|i| say(&format!("I am message {i}")))).await;
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
    exchange(&tx, &mut replies, "Hello there.").await;
    let farewell = exchange(&tx, &mut replies, "Goodbye!").await;
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
    exchange(&tx, &mut replies, "short is fine").await;
    tx.send(say(&"x".repeat(65))).await.unwrap();
    let status = expect_end(&mut replies, Code::InvalidArgument).await;
    assert_status(&status, Code::InvalidArgument, "64 bytes");
    assert!(replies.next().await.is_none());
    server.stop().await;
}

#[tokio::test]
async fn a_message_exactly_at_the_limit_is_accepted() {
    let mut config = test_config();
    config.limits.max_talk_message_bytes = 64;
    let server = start(config).await;
    let replies = talk_all(&server.client(), [say(&"é".repeat(32))]).await;
    assert_eq!(replies.len(), 1);
    assert!(replies[0].is_ok());
    server.stop().await;
}

#[tokio::test]
async fn an_empty_conversation_ends_cleanly() {
    let server = start(test_config()).await;
    let replies = talk_all(&server.client(), []).await;
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
    let transcript = include_str!("../../src/service/eliza/testdata/cacm-1966-conversation.tsv");
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
        let reply = exchange(&tx, &mut replies, said).await;
        assert_eq!(
            normalize(&reply.answer),
            normalize(expected),
            "after {said:?}"
        );
    }
    let farewell = exchange(&tx, &mut replies, "Goodbye.").await;
    assert!(!farewell.answer.is_empty());
    assert!(
        within(replies.next()).await.is_none(),
        "goodbye ends the stream"
    );
    server.stop().await;
}
