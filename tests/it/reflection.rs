//! Server reflection through the real server, with the generated volo clients of
//! `grpc.reflection.v1` and `v1alpha`.

use std::{net::SocketAddr, time::Duration};

use futures::StreamExt;
use pilota::pb::{PbMessage, descriptor::FileDescriptorProto};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use volo_gen::grpc::reflection::{
    v1::{
        ServerReflectionClient, ServerReflectionClientBuilder, ServerReflectionRequest,
        ServerReflectionResponse, server_reflection_response::MessageResponse,
    },
    v1alpha,
};
use volo_grpc::Code;

use crate::common::{expect_end, next_ok, start, test_config, within};

fn request() -> ServerReflectionRequest {
    ServerReflectionRequest {
        host: "localhost".into(),
        ..Default::default()
    }
}

fn symbol(name: &str) -> ServerReflectionRequest {
    ServerReflectionRequest {
        file_containing_symbol: Some(name.to_owned()),
        ..request()
    }
}

/// grpcurl sends `"*"`. An empty string would not reach the server from this client:
/// pilota leaves empty strings out even inside a oneof (the server does decode it; see
/// the unit test in `src/ops/reflection/service.rs`).
fn list_services() -> ServerReflectionRequest {
    ServerReflectionRequest {
        list_services: Some("*".into()),
        ..request()
    }
}

/// A `grpc.reflection.v1` client for the server at `addr`.
fn reflection_client(addr: SocketAddr) -> ServerReflectionClient {
    ServerReflectionClientBuilder::new("reflection")
        .address(addr)
        .build()
}

/// Sends `requests` on one v1 stream, half-closes, and collects every response.
async fn ask(
    addr: SocketAddr,
    requests: Vec<ServerReflectionRequest>,
) -> Vec<ServerReflectionResponse> {
    let client = reflection_client(addr);
    let replies = within(client.server_reflection_info(futures::stream::iter(requests)))
        .await
        .expect("reflection stream opens")
        .into_inner();
    within(replies.collect::<Vec<_>>())
        .await
        .into_iter()
        .map(|reply| reply.expect("no stream error"))
        .collect()
}

/// The decoded files of a `file_descriptor_response`.
fn files(response: &ServerReflectionResponse) -> Vec<FileDescriptorProto> {
    match &response.message_response {
        Some(MessageResponse::FileDescriptorResponse(files)) => files
            .file_descriptor_proto
            .iter()
            .map(|bytes| {
                FileDescriptorProto::parse_from_bytes(bytes).expect("a FileDescriptorProto")
            })
            .collect(),
        other => panic!("expected files, got {other:?}"),
    }
}

fn file_names(response: &ServerReflectionResponse) -> Vec<String> {
    files(response)
        .iter()
        .map(|f| f.name().to_owned())
        .collect()
}

#[tokio::test]
async fn list_services_names_all_four() {
    let server = start(test_config()).await;
    let replies = ask(server.addr, vec![list_services()]).await;
    assert_eq!(replies.len(), 1);
    let Some(MessageResponse::ListServicesResponse(list)) = &replies[0].message_response else {
        panic!(
            "expected a service list, got {:?}",
            replies[0].message_response
        );
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "basic.v1.BasicService",
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn the_service_symbol_brings_its_file_and_every_import() {
    let server = start(test_config()).await;
    let replies = ask(server.addr, vec![symbol("basic.v1.BasicService")]).await;
    let files = files(&replies[0]);
    let mut names: Vec<&str> = files.iter().map(|f| f.name()).collect();
    assert_eq!(
        names[0], "basic/v1/basic.proto",
        "the requested file comes first"
    );
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "basic/service/v1/service.proto",
            "basic/v1/basic.proto",
            "cloudevents/v1/cloudevents.proto",
            "google/protobuf/any.proto",
            "google/protobuf/timestamp.proto",
        ]
    );
    let service = &files[0].service;
    assert_eq!(service.len(), 1);
    assert_eq!(service[0].name(), "BasicService");
    let methods: Vec<&str> = service[0].method.iter().map(|m| m.name()).collect();
    assert_eq!(methods, ["Hello", "Talk", "Background"]);
    server.stop().await;
}

#[tokio::test]
async fn requests_on_one_stream_are_answered_in_order() {
    let server = start(test_config()).await;
    let requests = vec![
        symbol("basic.v1.BasicService.Hello"),
        symbol("cloudevents.v1.CloudEvent.CloudEventAttributeValue"),
        symbol("basic.v1.NoSuchThing"),
        ServerReflectionRequest {
            file_by_filename: Some("google/protobuf/timestamp.proto".into()),
            ..request()
        },
        request(),
        list_services(),
    ];
    let replies = ask(server.addr, requests.clone()).await;
    assert_eq!(replies.len(), requests.len(), "one answer per request");
    for (reply, request) in replies.iter().zip(&requests) {
        assert_eq!(reply.valid_host, "localhost");
        assert_eq!(
            reply.original_request.as_ref(),
            Some(request),
            "echoes its request"
        );
    }
    assert_eq!(file_names(&replies[0])[0], "basic/v1/basic.proto");
    assert_eq!(
        file_names(&replies[1])[0],
        "cloudevents/v1/cloudevents.proto"
    );
    let Some(MessageResponse::ErrorResponse(error)) = &replies[2].message_response else {
        panic!("expected an error, got {:?}", replies[2].message_response);
    };
    assert_eq!(error.error_code, 5, "NOT_FOUND");
    assert!(
        error.error_message.contains("basic.v1.NoSuchThing"),
        "{}",
        error.error_message
    );
    assert_eq!(file_names(&replies[3]), ["google/protobuf/timestamp.proto"]);
    let Some(MessageResponse::ErrorResponse(error)) = &replies[4].message_response else {
        panic!("expected an error, got {:?}", replies[4].message_response);
    };
    assert_eq!(error.error_code, 3, "INVALID_ARGUMENT");
    assert!(matches!(
        replies[5].message_response,
        Some(MessageResponse::ListServicesResponse(_))
    ));
    server.stop().await;
}

#[tokio::test]
async fn v1alpha_answers_like_v1() {
    use v1alpha::{
        ServerReflectionRequest as AlphaRequest,
        server_reflection_response::MessageResponse as AlphaResponse,
    };

    let server = start(test_config()).await;
    let v1_files = match &ask(server.addr, vec![symbol("basic.v1.BasicService")]).await[0]
        .message_response
    {
        Some(MessageResponse::FileDescriptorResponse(files)) => files.file_descriptor_proto.clone(),
        other => panic!("expected files, got {other:?}"),
    };

    let client = v1alpha::ServerReflectionClientBuilder::new("reflection")
        .address(server.addr)
        .build();
    let requests = [
        AlphaRequest {
            list_services: Some("*".into()),
            ..Default::default()
        },
        AlphaRequest {
            file_containing_symbol: Some("basic.v1.BasicService".into()),
            ..Default::default()
        },
        AlphaRequest {
            file_containing_symbol: Some("basic.v1.NoSuchThing".into()),
            ..Default::default()
        },
    ];
    let replies: Vec<_> = within(client.server_reflection_info(futures::stream::iter(requests)))
        .await
        .expect("v1alpha stream opens")
        .into_inner()
        .collect()
        .await;
    let replies: Vec<_> = replies
        .into_iter()
        .map(|reply| reply.expect("no stream error").message_response)
        .collect();
    let [
        Some(AlphaResponse::ListServicesResponse(list)),
        Some(AlphaResponse::FileDescriptorResponse(files)),
        Some(AlphaResponse::ErrorResponse(error)),
    ] = replies.as_slice()
    else {
        panic!("unexpected v1alpha answers: {replies:?}");
    };
    assert_eq!(list.service.len(), 4);
    assert_eq!(files.file_descriptor_proto, v1_files, "same files as v1");
    assert_eq!(error.error_code, 5);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_an_open_reflection_stream_with_unavailable() {
    let mut config = test_config();
    config.shutdown.grace = Duration::from_millis(200);
    let mut server = start(config).await;
    let client = reflection_client(server.addr);
    let (tx, rx) = mpsc::channel(1);
    let mut replies = within(client.server_reflection_info(ReceiverStream::new(rx)))
        .await
        .expect("reflection stream opens")
        .into_inner();
    tx.send(list_services()).await.expect("stream open");
    next_ok(&mut replies).await;
    server.begin_stop();
    expect_end(&mut replies, Code::Unavailable).await;
    drop(tx);
    server.stop().await;
}
