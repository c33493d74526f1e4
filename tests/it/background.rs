use std::{collections::HashSet, time::Duration};

use basic_service::cloudevent::{event_time, proto_data, unpack};
use futures::StreamExt;
use volo_gen::basic::service::v1::{
    BackgroundRequest, BackgroundResponse, BackgroundResponseEvent, State,
};
use volo_grpc::{Code, Status};

use crate::common::{
    TestServer, assert_status, background_started, expect_end, slow_workers, start, test_config,
};

fn event_of(msg: &BackgroundResponse) -> BackgroundResponseEvent {
    let ce = msg
        .cloud_event
        .as_ref()
        .expect("message carries a CloudEvent");
    assert_eq!(ce.source, "urn:service:basic");
    assert_eq!(ce.spec_version, "1.0");
    assert_eq!(ce.r#type, "basic.service.v1.BackgroundResponseEvent");
    assert!(event_time(ce).is_some(), "time attribute");
    assert_eq!(uuid::Uuid::parse_str(&ce.id).unwrap().get_version_num(), 4);
    unpack(proto_data(ce).expect("proto_data")).expect("payload unpacks")
}

async fn run(server: &TestServer, processes: i64) -> Result<Vec<BackgroundResponseEvent>, Status> {
    let client = server.client();
    let stream = client
        .background(BackgroundRequest { processes })
        .await?
        .into_inner();
    let messages: Vec<Result<BackgroundResponse, Status>> = stream.collect().await;
    messages
        .into_iter()
        .map(|m| m.map(|m| event_of(&m)))
        .collect()
}

/// Checks every rule of a finished stream; returns the final event.
fn check_stream(events: &[BackgroundResponseEvent], n: usize) -> &BackgroundResponseEvent {
    let (first, rest) = events.split_first().expect("at least one message");
    let (last, middle) = rest.split_last().expect("at least two messages");
    assert_eq!(first.state, State::STATE_PROCESS);
    assert!(first.responses.is_empty(), "first event has no responses");
    assert!(first.completed_at.is_none());
    let started_at = first.started_at.clone().expect("started_at");
    let mut previous: Vec<_> = Vec::new();
    for e in middle {
        assert_eq!(e.state, State::STATE_PROCESS);
        assert_eq!(e.started_at.as_ref(), Some(&started_at));
        assert!(e.completed_at.is_none());
        assert!(e.responses.len() > previous.len(), "snapshots grow");
        assert_eq!(
            &e.responses[..previous.len()],
            &previous[..],
            "snapshots are cumulative"
        );
        previous = e.responses.clone();
    }
    assert!(middle.len() <= n, "at most one snapshot per completion");
    assert_eq!(last.started_at.as_ref(), Some(&started_at));
    assert!(last.completed_at.is_some(), "final event has completed_at");
    assert_eq!(last.responses.len(), n);
    assert_eq!(&last.responses[..previous.len()], &previous[..]);
    let ids: HashSet<_> = last.responses.iter().map(|r| r.id.clone()).collect();
    assert_eq!(ids.len(), n, "ids are unique");
    last
}

#[tokio::test]
async fn background_streams_progress_then_a_complete_summary() {
    let server = start(test_config()).await;
    let events = run(&server, 5).await.expect("stream is OK");
    let last = check_stream(&events, 5);
    assert_eq!(last.state, State::STATE_COMPLETE);
    let names: HashSet<String> = last.responses.iter().map(|r| r.name.to_string()).collect();
    let expected: HashSet<String> = (1..=5).map(|i| format!("service-{i}")).collect();
    assert_eq!(names, expected);
    for r in &last.responses {
        assert_eq!(r.version, "v1");
        let data = r.data.as_ref().expect("data");
        assert_eq!(data.r#type, "protocol");
        assert!(
            [
                "rest", "grpc", "rpc", "ws", "mqtt", "amqp", "graphql", "sql", "file"
            ]
            .contains(&data.value.as_str())
        );
        assert_eq!(uuid::Uuid::parse_str(&r.id).unwrap().get_version_num(), 4);
    }
    server.stop().await;
}

#[tokio::test]
async fn zero_or_negative_processes_run_one() {
    let server = start(test_config()).await;
    for processes in [0, -3] {
        let events = run(&server, processes).await.unwrap();
        assert_eq!(check_stream(&events, 1).responses.len(), 1);
    }
    server.stop().await;
}

#[tokio::test]
async fn processes_above_the_maximum_are_refused_before_any_message() {
    let mut config = test_config();
    config.limits.max_processes = 10;
    let server = start(config).await;
    let client = server.client();
    let result = client.background(BackgroundRequest { processes: 11 }).await;
    let status = match result {
        Err(status) => status,
        // Refused before any message: the first item is the error.
        Ok(resp) => expect_end(&mut resp.into_inner(), Code::InvalidArgument).await,
    };
    assert_status(&status, Code::InvalidArgument, "maximum is 10");
    // The limit itself is fine.
    assert_eq!(
        check_stream(&run(&server, 10).await.unwrap(), 10)
            .responses
            .len(),
        10
    );
    server.stop().await;
}

#[tokio::test]
async fn failed_workers_make_complete_with_error() {
    let mut config = test_config();
    config.sim.failure_rate = 1.0;
    let server = start(config).await;
    let events = run(&server, 4).await.unwrap();
    let last = check_stream(&events, 4);
    assert_eq!(last.state, State::STATE_COMPLETE_WITH_ERROR);
    for r in &last.responses {
        assert_eq!(r.name, "background-error");
        let data = r.data.as_ref().unwrap();
        assert_eq!(data.r#type, "error");
        assert!(data.value.contains("simulated failure"), "{}", data.value);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_slow_reader_gets_fewer_fuller_snapshots_and_loses_nothing() {
    let mut config = test_config();
    config.limits.max_processes = 1000;
    let server = start(config).await;
    let client = server.client();
    let (mut stream, first) = background_started(&client, 1000).await;
    let first = event_of(&first);
    // Every worker is done long before we read on.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut events = vec![first];
    while let Some(msg) = stream.next().await {
        events.push(event_of(&msg.expect("stream is OK")));
    }
    let last = check_stream(&events, 1000);
    assert_eq!(last.state, State::STATE_COMPLETE);
    assert!(
        events.len() < 1002,
        "snapshots were folded together ({} messages)",
        events.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn dropping_the_stream_stops_every_worker() {
    let config = slow_workers(test_config());
    let server = start(config).await;
    let client = server.client();
    let (stream, first) = background_started(&client, 50).await;
    let first = event_of(&first);
    assert_eq!(first.state, State::STATE_PROCESS);
    assert_eq!(server.simulator.active_workers(), 50);
    drop(stream);
    assert_eq!(
        server.workers_settle().await,
        0,
        "workers stop once the client cancels"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_disconnected_client_stops_every_worker() {
    let config = slow_workers(test_config());
    let server = start(config).await;
    let client = server.client();
    let (stream, _) = background_started(&client, 20).await;
    assert_eq!(server.simulator.active_workers(), 20);
    drop(stream);
    drop(client); // closes the connection
    assert_eq!(server.workers_settle().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn the_same_seed_gives_the_same_first_run() {
    let mut names = Vec::new();
    for _ in 0..2 {
        let server = start(test_config()).await;
        let events = run(&server, 8).await.unwrap();
        let last = check_stream(&events, 8);
        names.push(
            last.responses
                .iter()
                .map(|r| (r.id.to_string(), r.data.as_ref().unwrap().value.to_string()))
                .collect::<HashSet<_>>(),
        );
        server.stop().await;
    }
    assert_eq!(names[0], names[1]);
}

/// Results spread over 1.2 s: paced snapshots, on gRPC and on gRPC-Web alike.
#[tokio::test]
async fn snapshots_are_paced_and_bytes_bounded_on_grpc_and_grpc_web() {
    use pilota::pb::{EncodeLengthContext, Message};

    use crate::wire::{WebBody, grpc_web, h1};

    let mut config = test_config();
    config.sim.delay = Duration::ZERO..=Duration::from_millis(1200);
    config.limits.max_processes = 5000;
    let server = start(config).await;
    // (message sizes on the wire with their 5-byte prefix, events)
    let check = |sizes: Vec<usize>, events: Vec<BackgroundResponseEvent>, protocol: &str| {
        check_stream(&events, 5000);
        // At most one intermediate snapshot per 200 ms: no more than 6 in 1.2 s, and at
        // least one unless the machine stalled for the whole run.
        assert!(
            (3..=10).contains(&events.len()),
            "{protocol}: {} messages",
            events.len()
        );
        let total: usize = sizes.iter().sum();
        let last = *sizes.last().unwrap();
        assert!(
            total <= 20 * last,
            "{protocol}: {total} bytes, final {last}"
        );
    };

    let client = server.client();
    let stream = client
        .background(BackgroundRequest { processes: 5000 })
        .await
        .unwrap()
        .into_inner();
    let messages: Vec<BackgroundResponse> = stream.map(|m| m.unwrap()).collect().await;
    let sizes = messages
        .iter()
        .map(|m| 5 + m.encoded_len(&mut EncodeLengthContext::default()))
        .collect();
    check(sizes, messages.iter().map(event_of).collect(), "gRPC");

    let resp = h1(
        server.addr,
        grpc_web(
            "/basic.v1.BasicService/Background",
            &[crate::wire::frame(&BackgroundRequest { processes: 5000 })],
        ),
    )
    .await;
    let body = WebBody::parse(resp.into_body());
    assert_eq!(body.status(), Some("0"));
    let sizes = body.messages.iter().map(|m| 5 + m.len()).collect();
    let events = body
        .messages
        .into_iter()
        .map(|m| event_of(&BackgroundResponse::decode(m).unwrap()))
        .collect();
    check(sizes, events, "gRPC-Web");
    server.stop().await;
}
