use futures::StreamExt;
use volo_gen::grpc::health::v1::{
    HealthCheckResponse, HealthClient, health_check_response::ServingStatus,
};
use volo_grpc::Code;

use crate::common::{Incoming, health_of, next_ok, start, test_config, within};

/// Opens a health watch on `service`; the call must be accepted.
async fn watch<'a>(health: &'a HealthClient, service: &str) -> Incoming<'a, HealthCheckResponse> {
    let updates = health
        .watch(health_of(service))
        .await
        .expect("watch opens")
        .into_inner();
    Box::pin(updates)
}

#[tokio::test]
async fn known_services_are_serving_and_unknown_ones_not_found() {
    let server = start(test_config()).await;
    let health = server.health();
    for service in ["", "basic.v1.BasicService"] {
        let reply = health.check(health_of(service)).await.unwrap();
        assert_eq!(
            reply.into_inner().status,
            ServingStatus::SERVING,
            "{service:?}"
        );
    }
    let status = health
        .check(health_of("no.such.Service"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn watch_sees_not_serving_when_shutdown_starts() {
    let mut server = start(test_config()).await;
    let health = server.health();
    let mut updates = watch(&health, "basic.v1.BasicService").await;
    let first = next_ok(&mut updates).await;
    assert_eq!(first.status, ServingStatus::SERVING);
    server.begin_stop();
    let next = next_ok(&mut updates).await;
    assert_eq!(next.status, ServingStatus::NOT_SERVING);
    // The watch then ends, so it does not hold shutdown up.
    let end = within(updates.next()).await;
    assert!(matches!(end, None | Some(Err(_))));
    drop(updates);
    server.stop().await;
}

#[tokio::test]
async fn watch_on_an_unknown_service_reports_service_unknown() {
    let server = start(test_config()).await;
    let health = server.health();
    let mut updates = watch(&health, "nope").await;
    let first = next_ok(&mut updates).await;
    assert_eq!(first.status, ServingStatus::SERVICE_UNKNOWN);
    drop(updates);
    server.stop().await;
}

#[tokio::test]
async fn during_the_drain_period_new_checks_see_not_serving() {
    let mut config = test_config();
    config.shutdown.drain = std::time::Duration::from_secs(2);
    let mut server = start(config).await;
    server.begin_stop();
    // A probe arriving on a fresh connection after shutdown began: still answered.
    let mut status = ServingStatus::SERVING;
    for _ in 0..50 {
        let reply = server
            .health()
            .check(health_of(""))
            .await
            .expect("the server still serves while draining");
        status = reply.into_inner().status;
        if status == ServingStatus::NOT_SERVING {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, ServingStatus::NOT_SERVING);
    server.stop().await;
}
