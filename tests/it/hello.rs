use std::time::{Duration, SystemTime};

use basic_service::cloudevent::{event_time, proto_data, system_time, unpack};
use volo_gen::basic::service::v1::HelloResponseEvent;

use crate::common::{hello_request, start, test_config};

async fn greet(message: &str) -> (volo_gen::cloudevents::v1::CloudEvent, HelloResponseEvent) {
    let server = start(test_config()).await;
    let reply = server
        .client()
        .hello(hello_request(message))
        .await
        .expect("hello succeeds")
        .into_inner();
    server.stop().await;
    let event = reply.cloud_event.expect("reply carries a CloudEvent");
    let payload =
        unpack::<HelloResponseEvent>(proto_data(&event).expect("proto_data")).expect("unpacks");
    (event, payload)
}

#[tokio::test]
async fn hello_greets_inside_a_cloudevent() {
    let before = SystemTime::now() - Duration::from_secs(1);
    let (event, payload) = greet("World").await;
    assert_eq!(payload.greeting, "Hello, World");
    assert_eq!(event.source, "basic.v1.BasicService/Hello");
    assert_eq!(event.spec_version, "1.0");
    assert_eq!(event.r#type, "basic.service.v1.HelloResponse");
    let id = uuid::Uuid::parse_str(&event.id).expect("id is a UUID");
    assert_eq!(id.get_version_num(), 4);
    let time = system_time(event_time(&event).expect("time attribute")).expect("valid time");
    assert!(time >= before && time <= SystemTime::now() + Duration::from_secs(1));
    let any = proto_data(&event).unwrap();
    assert_eq!(
        any.type_url,
        "type.googleapis.com/basic.service.v1.HelloResponseEvent"
    );
}

#[tokio::test]
async fn hello_with_empty_message_greets_nobody() {
    let (_, payload) = greet("").await;
    assert_eq!(payload.greeting, "Hello, ");
}

#[tokio::test]
async fn hello_keeps_any_utf8() {
    let (_, payload) = greet("Grüße, 世界 🎉").await;
    assert_eq!(payload.greeting, "Hello, Grüße, 世界 🎉");
}

#[tokio::test]
async fn every_hello_gets_a_fresh_event_id() {
    let server = start(test_config()).await;
    let client = server.client();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..20 {
        let reply = client.hello(hello_request("x")).await.unwrap().into_inner();
        ids.insert(reply.cloud_event.unwrap().id);
    }
    assert_eq!(ids.len(), 20);
    server.stop().await;
}
