use std::time::Duration;

use futures::StreamExt;
use volo_gen::basic::service::v1::{BackgroundRequest, State};
use volo_grpc::Code;

use crate::common::{open_talk, say, slow_workers, start, test_config};

#[tokio::test]
async fn shutdown_ends_an_open_background_stream_with_unavailable() {
    let mut config = slow_workers(test_config());
    config.shutdown.grace = Duration::from_millis(200);
    let mut server = start(config).await;
    let client = server.client();
    let mut stream = client
        .background(BackgroundRequest { processes: 10 })
        .await
        .unwrap()
        .into_inner();
    stream.next().await.unwrap().unwrap();
    server.begin_stop();
    let status = stream
        .next()
        .await
        .expect("a final item")
        .expect_err("the stream is ended by the server");
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.workers_settle().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_an_open_conversation_with_unavailable() {
    let mut config = test_config();
    config.shutdown.grace = Duration::from_millis(200);
    let mut server = start(config).await;
    let client = server.client();
    let (tx, mut replies) = open_talk(&client, 1).await;
    tx.send(say("hello")).await.unwrap();
    replies.next().await.unwrap().unwrap();
    server.begin_stop();
    let status = replies
        .next()
        .await
        .expect("a final item")
        .expect_err("ended by the server");
    assert_eq!(status.code(), Code::Unavailable);
    drop(tx);
    server.stop().await;
}

#[tokio::test]
async fn calls_that_finish_within_the_grace_period_complete() {
    let mut config = test_config();
    config.sim.delay = Duration::from_millis(100)..=Duration::from_millis(300);
    config.shutdown.grace = Duration::from_secs(20);
    let mut server = start(config).await;
    let client = server.client();
    let mut stream = client
        .background(BackgroundRequest { processes: 5 })
        .await
        .unwrap()
        .into_inner();
    stream.next().await.unwrap().unwrap();
    server.begin_stop();
    let mut last = None;
    while let Some(msg) = stream.next().await {
        last = Some(msg.expect("no error: the call finishes within the grace period"));
    }
    let last = last.expect("messages after shutdown began");
    let event: volo_gen::basic::service::v1::BackgroundResponseEvent =
        basic_service::cloudevent::unpack(
            basic_service::cloudevent::proto_data(last.cloud_event.as_ref().unwrap()).unwrap(),
        )
        .unwrap();
    assert_eq!(event.state, State::STATE_COMPLETE);
    assert_eq!(event.responses.len(), 5);
    server.stop().await;
}
