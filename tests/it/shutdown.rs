use std::time::Duration;

use futures::StreamExt;
use volo_gen::basic::service::v1::State;
use volo_grpc::Code;

use crate::common::{
    background_started, exchange, expect_end, open_talk, slow_workers, start, test_config,
};

#[tokio::test]
async fn shutdown_ends_an_open_background_stream_with_unavailable() {
    let mut config = slow_workers(test_config());
    config.shutdown.grace = Duration::from_millis(200);
    let mut server = start(config).await;
    let client = server.client();
    let (mut stream, _) = background_started(&client, 10).await;
    server.begin_stop();
    expect_end(&mut stream, Code::Unavailable).await;
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
    exchange(&tx, &mut replies, "hello").await;
    server.begin_stop();
    expect_end(&mut replies, Code::Unavailable).await;
    drop(tx);
    server.stop().await;
}

#[tokio::test]
async fn a_young_connection_keeps_its_calls_through_shutdown_past_its_handshake_deadline() {
    // Shutdown begins before the connection's preface deadline has passed; a call that
    // outlives that deadline still gets the whole grace period.
    let mut config = test_config();
    config.http2.handshake_timeout = Duration::from_millis(500);
    config.sim.delay = Duration::from_millis(1200)..=Duration::from_millis(1500);
    config.shutdown.grace = Duration::from_secs(20);
    let mut server = start(config).await;
    let client = server.client();
    let (mut stream, _) = background_started(&client, 3).await;
    server.begin_stop();
    let mut last = None;
    while let Some(msg) = stream.next().await {
        last = Some(msg.expect("no error: the call finishes within the grace period"));
    }
    assert!(last.is_some(), "the final message came");
    server.stop().await;
}

#[tokio::test]
async fn calls_that_finish_within_the_grace_period_complete() {
    let mut config = test_config();
    config.sim.delay = Duration::from_millis(100)..=Duration::from_millis(300);
    config.shutdown.grace = Duration::from_secs(20);
    let mut server = start(config).await;
    let client = server.client();
    let (mut stream, _) = background_started(&client, 5).await;
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
