use basic_service::client::{ClientOptions, connect};
use volo_gen::grpc::health::v1::health_check_response::ServingStatus;
use volo_grpc::Code;

use crate::common::{health_of, hello_request, start, test_config};

fn with_token(addr: std::net::SocketAddr, token: Option<&str>) -> ClientOptions {
    ClientOptions {
        token: token.map(str::to_owned),
        ..ClientOptions::new(addr)
    }
}

#[tokio::test]
async fn calls_need_the_bearer_token_when_one_is_set() {
    let mut config = test_config();
    config.access.auth_token = Some("s3cret".into());
    let server = start(config).await;
    for (token, ok) in [
        (None, false),
        (Some("wrong"), false),
        (Some("s3cret"), true),
    ] {
        let client = connect(&with_token(server.addr, token)).unwrap();
        let result = client.hello(hello_request("x")).await;
        match (ok, result) {
            (true, Ok(_)) => {}
            (false, Err(status)) => assert_eq!(status.code(), Code::Unauthenticated),
            (ok, result) => panic!("token {token:?}: expected ok={ok}, got {:?}", result.err()),
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn health_needs_no_token() {
    let mut config = test_config();
    config.access.auth_token = Some("s3cret".into());
    let server = start(config).await;
    let reply = server
        .health()
        .check(health_of(""))
        .await
        .expect("health is public");
    assert_eq!(reply.into_inner().status, ServingStatus::SERVING);
    server.stop().await;
}
