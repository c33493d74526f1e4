use basic_service::BasicServer;
use tokio::net::TcpListener;

use crate::common::{hello_request, scrape_metrics, start_server, test_config};

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
        client.hello(hello_request("m")).await.unwrap();
    }
    let text = scrape_metrics(metrics_addr).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains(
            r#"basic_rpc_total{method="/basic.v1.BasicService/Hello",protocol="grpc",code="OK"}"#
        ),
        "{text}"
    );
    assert!(text.contains("basic_rpc_duration_seconds_bucket"), "{text}");
    assert!(text.contains("basic_rpc_in_flight"), "{text}");
    server.stop().await;
}
