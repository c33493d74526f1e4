use std::time::Duration;

use basic_service::client::{ClientOptions, Compression, connect};
use volo_gen::basic::service::v1::HelloRequest;
use volo_grpc::Code;

use crate::common::{
    assert_status, background_started, exchange, expect_end, open_talk, slow_workers, start,
    test_config,
};

fn hello(size: usize) -> HelloRequest {
    HelloRequest {
        message: "a".repeat(size),
    }
}

/// Whether a Hello succeeds within about 2 s (capacity is released asynchronously).
async fn hello_soon_ok(client: &basic_service::client::BasicServiceClient) -> bool {
    for _ in 0..100 {
        if client.hello(hello(1)).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test]
async fn messages_over_the_limit_are_resource_exhausted() {
    let mut config = test_config();
    config.limits.max_message_bytes = 1024;
    let server = start(config).await;
    let client = server.client();
    assert!(client.hello(hello(1000)).await.is_ok());
    let status = client.hello(hello(2000)).await.unwrap_err();
    assert_status(&status, Code::ResourceExhausted, "limit of 1024 bytes");
    // The server is fine afterwards.
    assert!(client.hello(hello(10)).await.is_ok());
    server.stop().await;
}

#[tokio::test]
async fn compressed_requests_work_with_gzip_and_zstd() {
    let server = start(test_config()).await;
    for compress in [Compression::Gzip, Compression::Zstd] {
        let client = connect(&ClientOptions {
            compress: Some(compress),
            ..ClientOptions::new(server.addr)
        })
        .unwrap();
        let reply = client.hello(hello(5000)).await.expect("compressed hello");
        let event = reply.into_inner().cloud_event.unwrap();
        let payload: volo_gen::basic::service::v1::HelloResponseEvent =
            basic_service::cloudevent::unpack(
                basic_service::cloudevent::proto_data(&event).unwrap(),
            )
            .unwrap();
        assert_eq!(
            payload.greeting.len(),
            "Hello, ".len() + 5000,
            "{compress:?}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn a_compression_bomb_is_refused_after_decompression() {
    let mut config = test_config();
    config.limits.max_message_bytes = 64 * 1024;
    let server = start(config).await;
    let client = connect(&ClientOptions {
        compress: Some(Compression::Gzip),
        ..ClientOptions::new(server.addr)
    })
    .unwrap();
    // 1 MiB of one letter compresses to about 1 KiB: small on the wire, large decoded.
    let status = client.hello(hello(1 << 20)).await.unwrap_err();
    assert_status(&status, Code::ResourceExhausted, "decompressed");
    server.stop().await;
}

#[tokio::test]
async fn over_the_in_flight_limit_calls_fail_fast() {
    let mut config = slow_workers(test_config());
    config.limits.max_in_flight = 2;
    let server = start(config).await;
    let client = server.client();
    let mut open = Vec::new();
    for _ in 0..2 {
        let (stream, _) = background_started(&client, 1).await;
        open.push(stream);
    }
    let status = client.hello(hello(1)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    drop(open);
    assert_eq!(server.workers_settle().await, 0);
    // Permits come back when streams end.
    assert!(
        hello_soon_ok(&client).await,
        "calls are admitted again once the streams are gone"
    );
    server.stop().await;
}

#[tokio::test]
async fn over_the_stream_limit_a_connection_waits_for_a_free_stream() {
    let mut config = slow_workers(test_config());
    config.http2.max_concurrent_streams = 1;
    let server = start(config).await;
    let client = server.client(); // no deadline: only our own timeout below
    let (stream, _) = background_started(&client, 1).await;
    // The only stream of this connection is taken: a second call waits for it.
    let waited = tokio::time::timeout(Duration::from_millis(500), client.hello(hello(1))).await;
    assert!(
        waited.is_err(),
        "the call waited instead of running: {waited:?}"
    );
    drop(stream);
    assert!(hello_soon_ok(&client).await, "the stream is free again");
    server.stop().await;
}

#[tokio::test]
async fn a_deadline_ends_background_and_stops_its_workers() {
    let config = slow_workers(test_config());
    let server = start(config).await;
    let client = connect(&ClientOptions {
        timeout: Some(Duration::from_secs(1)),
        ..ClientOptions::new(server.addr)
    })
    .unwrap();
    let (mut stream, _) = background_started(&client, 10).await;
    expect_end(&mut stream, Code::DeadlineExceeded).await;
    assert_eq!(server.workers_settle().await, 0);
    server.stop().await;
}

#[tokio::test]
async fn a_deadline_ends_a_conversation() {
    let server = start(test_config()).await;
    let client = connect(&ClientOptions {
        timeout: Some(Duration::from_secs(1)),
        ..ClientOptions::new(server.addr)
    })
    .unwrap();
    let (tx, mut replies) = open_talk(&client, 1).await;
    exchange(&tx, &mut replies, "hello").await;
    expect_end(&mut replies, Code::DeadlineExceeded).await;
    drop(tx);
    server.stop().await;
}

#[tokio::test]
async fn replies_are_compressed_only_when_the_request_was() {
    use std::io::{Read, Write};

    use pilota::pb::{EncodeLengthContext, Message};

    use crate::wire::{frame, greeting, h2c, post};

    let server = start(test_config()).await;
    let path = "/basic.v1.BasicService/Hello";
    let grpc = |body: Vec<u8>, encoding: Option<&'static str>| {
        let mut req = post(path, "application/grpc", body);
        // What every grpcio client sends: it could decompress gzip.
        req.headers_mut().insert(
            "grpc-accept-encoding",
            "identity, deflate, gzip".parse().unwrap(),
        );
        if let Some(encoding) = encoding {
            req.headers_mut()
                .insert("grpc-encoding", encoding.parse().unwrap());
        }
        req
    };

    // An uncompressed request gets an uncompressed reply.
    let resp = h2c(server.addr, grpc(frame(&hello(3000)), None)).await;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("grpc-encoding").is_none(), "{resp:?}");
    assert_eq!(resp.body()[0], 0, "compressed flag");
    assert_eq!(
        greeting(&resp.body().slice(5..)).len(),
        "Hello, ".len() + 3000
    );

    // A gzip request gets a gzip reply.
    let plain = hello(3000).encode_to_vec(&mut EncodeLengthContext::default());
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let packed = gz.finish().unwrap();
    let mut body = vec![1];
    body.extend_from_slice(&(packed.len() as u32).to_be_bytes());
    body.extend_from_slice(&packed);
    let resp = h2c(server.addr, grpc(body, Some("gzip"))).await;
    assert_eq!(resp.headers()["grpc-encoding"], "gzip", "{resp:?}");
    assert_eq!(resp.body()[0], 1, "compressed flag");
    let mut reply = Vec::new();
    flate2::read::GzDecoder::new(&resp.body()[5..])
        .read_to_end(&mut reply)
        .unwrap();
    assert_eq!(greeting(&reply.into()).len(), "Hello, ".len() + 3000);
    server.stop().await;
}
