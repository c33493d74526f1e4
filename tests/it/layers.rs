use basic_service::{BasicHandler, BasicServer, handlers::ReplyStream};
use futures::StreamExt;
use volo_gen::basic::{
    service::v1::{
        BackgroundRequest, BackgroundResponse, HelloRequest, HelloResponse, TalkRequest,
        TalkResponse,
    },
    v1::BasicService,
};
use volo_grpc::{Code, RecvStream, Request, Response, Status};

use crate::common::{start, start_server, test_config};

fn hello_with_id(id: Option<&str>) -> Request<HelloRequest> {
    let mut req = Request::new(HelloRequest {
        message: "id".into(),
    });
    if let Some(id) = id {
        req.metadata_mut()
            .insert("x-request-id", id.parse().unwrap());
    }
    req
}

#[tokio::test]
async fn a_callers_request_id_is_echoed() {
    let server = start(test_config()).await;
    let resp = server
        .client()
        .hello(hello_with_id(Some("req-123")))
        .await
        .unwrap();
    assert_eq!(resp.metadata().get("x-request-id").unwrap(), "req-123");
    server.stop().await;
}

#[tokio::test]
async fn a_request_id_is_made_when_none_is_sent() {
    let server = start(test_config()).await;
    let client = server.client();
    let a = client.hello(hello_with_id(None)).await.unwrap();
    let b = client.hello(hello_with_id(None)).await.unwrap();
    let a = a
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    let b = b
        .metadata()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
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

/// The real handler, except that it panics on the message "panic".
struct Panicky(BasicHandler);

impl BasicService for Panicky {
    async fn hello(&self, req: Request<HelloRequest>) -> Result<Response<HelloResponse>, Status> {
        if req.get_ref().message == "panic" {
            panic!("injected panic in hello");
        }
        self.0.hello(req).await
    }

    async fn talk(
        &self,
        req: Request<RecvStream<TalkRequest>>,
    ) -> Result<Response<ReplyStream<TalkResponse>>, Status> {
        let replies = self.0.talk(req).await?.into_inner();
        let panicking = replies.map(|reply| match reply {
            Ok(r) if r.answer.to_lowercase().contains("panic") => panic!("injected panic in talk"),
            other => other,
        });
        Ok(Response::new(Box::pin(panicking)))
    }

    async fn background(
        &self,
        req: Request<BackgroundRequest>,
    ) -> Result<Response<ReplyStream<BackgroundResponse>>, Status> {
        self.0.background(req).await
    }
}

#[tokio::test]
async fn a_panicking_handler_gives_internal_and_the_server_keeps_serving() {
    let server = start_server(
        BasicServer::new(test_config())
            .unwrap()
            .map_service(Panicky),
    )
    .await;
    let client = server.client();
    let status = client
        .hello(HelloRequest {
            message: "panic".into(),
        })
        .await
        .expect_err("panic becomes an error");
    assert_eq!(status.code(), Code::Internal);
    let ok = client
        .hello(HelloRequest {
            message: "after".into(),
        })
        .await;
    assert!(ok.is_ok(), "server still serves after a panic");
    server.stop().await;
}

#[tokio::test]
async fn a_panic_inside_a_stream_ends_it_with_internal() {
    let server = start_server(
        BasicServer::new(test_config())
            .unwrap()
            .map_service(Panicky),
    )
    .await;
    let client = server.client();
    // ELIZA echoes part of the input back, so its reply contains "panic" and trips the wrapper.
    let items: Vec<_> = client
        .talk(futures::stream::iter([TalkRequest {
            message: "I am PANIC".into(),
        }]))
        .await
        .unwrap()
        .into_inner()
        .collect()
        .await;
    let status = items
        .into_iter()
        .find_map(Result::err)
        .expect("stream ends with an error");
    assert_eq!(status.code(), Code::Internal);
    assert!(
        client
            .hello(HelloRequest {
                message: "after".into()
            })
            .await
            .is_ok()
    );
    server.stop().await;
}
