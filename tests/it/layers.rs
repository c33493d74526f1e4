use basic_service::BasicServer;
use volo_gen::basic::service::v1::{BackgroundRequest, HelloRequest};
use volo_grpc::{Code, Request, Response};

use crate::common::{
    Hooked, Seen, TestServer, hello_request, say, start, start_server, talk_all, test_config,
};

fn hello_with_id(id: Option<&str>) -> Request<HelloRequest> {
    let mut req = Request::new(hello_request("id"));
    if let Some(id) = id {
        req.metadata_mut()
            .insert("x-request-id", id.parse().unwrap());
    }
    req
}

/// The `x-request-id` a reply came back with.
fn request_id<T>(resp: &Response<T>) -> String {
    let id = resp.metadata().get("x-request-id").expect("x-request-id");
    id.to_str().expect("an ASCII id").to_owned()
}

#[tokio::test]
async fn a_callers_request_id_is_echoed() {
    let server = start(test_config()).await;
    let resp = server
        .client()
        .hello(hello_with_id(Some("req-123")))
        .await
        .unwrap();
    assert_eq!(request_id(&resp), "req-123");
    server.stop().await;
}

#[tokio::test]
async fn a_request_id_is_made_when_none_is_sent() {
    let server = start(test_config()).await;
    let client = server.client();
    let a = request_id(&client.hello(hello_with_id(None)).await.unwrap());
    let b = request_id(&client.hello(hello_with_id(None)).await.unwrap());
    assert!(uuid::Uuid::parse_str(&a).is_ok(), "{a}");
    assert_ne!(a, b);
    server.stop().await;
}

#[tokio::test]
async fn the_request_id_comes_back_on_errors_too() {
    let mut config = test_config();
    config.limits.max_processes = 1;
    let server = start(config).await;
    let mut req = Request::new(BackgroundRequest { processes: 2 });
    req.metadata_mut()
        .insert("x-request-id", "bad-call".parse().unwrap());
    let status = match server.client().background(req).await {
        Err(status) => status,
        Ok(_) => panic!("processes above the maximum must fail"),
    };
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.metadata().get("x-request-id").unwrap(), "bad-call");
    server.stop().await;
}

/// The real server, except that its handler panics on the Hello "panic" and on any
/// Talk reply that mentions a panic.
async fn start_panicky() -> TestServer {
    let panicky = |handler| {
        Hooked::new(handler, |seen: Seen| match seen {
            Seen::Hello(req) if req.message == "panic" => panic!("injected panic in hello"),
            Seen::TalkReply(r) if r.answer.to_lowercase().contains("panic") => {
                panic!("injected panic in talk")
            }
            _ => {}
        })
    };
    start_server(
        BasicServer::new(test_config())
            .unwrap()
            .map_service(panicky),
    )
    .await
}

#[tokio::test]
async fn a_panicking_handler_gives_internal_and_the_server_keeps_serving() {
    let server = start_panicky().await;
    let client = server.client();
    let status = client
        .hello(hello_request("panic"))
        .await
        .expect_err("panic becomes an error");
    assert_eq!(status.code(), Code::Internal);
    let ok = client.hello(hello_request("after")).await;
    assert!(ok.is_ok(), "server still serves after a panic");
    server.stop().await;
}

#[tokio::test]
async fn a_panic_inside_a_stream_ends_it_with_internal() {
    let server = start_panicky().await;
    let client = server.client();
    // ELIZA echoes part of the input back, so its reply contains "panic" and trips the wrapper.
    let items = talk_all(&client, [say("I am PANIC")]).await;
    let status = items
        .into_iter()
        .find_map(Result::err)
        .expect("stream ends with an error");
    assert_eq!(status.code(), Code::Internal);
    assert!(client.hello(hello_request("after")).await.is_ok());
    server.stop().await;
}
