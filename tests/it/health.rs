use futures::StreamExt;
use volo_gen::grpc::health::v1::{
    HealthCheckRequest, HealthClientBuilder, health_check_response::ServingStatus,
};
use volo_grpc::Code;

use crate::common::{start, test_config, within};

#[tokio::test]
async fn known_services_are_serving_and_unknown_ones_not_found() {
    let server = start(test_config()).await;
    let health = HealthClientBuilder::new("health")
        .address(server.addr)
        .build();
    for service in ["", "basic.v1.BasicService"] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap();
        assert_eq!(
            reply.into_inner().status,
            ServingStatus::SERVING,
            "{service:?}"
        );
    }
    let status = health
        .check(HealthCheckRequest {
            service: "no.such.Service".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    server.stop().await;
}

#[tokio::test]
async fn watch_sees_not_serving_when_shutdown_starts() {
    let mut server = start(test_config()).await;
    let health = HealthClientBuilder::new("health")
        .address(server.addr)
        .build();
    let mut updates = health
        .watch(HealthCheckRequest {
            service: "basic.v1.BasicService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = within(updates.next()).await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::SERVING);
    server.begin_stop();
    let next = within(updates.next()).await.unwrap().unwrap();
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
    let health = HealthClientBuilder::new("health")
        .address(server.addr)
        .build();
    let mut updates = health
        .watch(HealthCheckRequest {
            service: "nope".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = within(updates.next()).await.unwrap().unwrap();
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
        let health = HealthClientBuilder::new("health")
            .address(server.addr)
            .build();
        let reply = health
            .check(HealthCheckRequest { service: "".into() })
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
