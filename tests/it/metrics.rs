use basic_service::BasicServer;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use volo_gen::basic::service::v1::HelloRequest;

use crate::common::{start_server, test_config, within};

async fn scrape(addr: std::net::SocketAddr) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    within(tcp.read_to_string(&mut text)).await.unwrap();
    text
}

#[tokio::test]
async fn metrics_are_scraped_in_prometheus_format() {
    let metrics = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics_addr = metrics.local_addr().unwrap();
    let server = start_server(
        BasicServer::new(test_config())
            .unwrap()
            .metrics_listener(metrics),
    )
    .await;
    let client = server.client();
    for _ in 0..3 {
        client
            .hello(HelloRequest {
                message: "m".into(),
            })
            .await
            .unwrap();
    }
    let text = scrape(metrics_addr).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains(r#"basic_rpc_total{method="/basic.v1.BasicService/Hello",code="OK"}"#),
        "{text}"
    );
    assert!(text.contains("basic_rpc_duration_seconds_bucket"), "{text}");
    assert!(text.contains("basic_rpc_in_flight"), "{text}");
    server.stop().await;
}
