//! Operability basics: gRPC health per log, server reflection, and metrics that move.

mod common;

use common::*;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reflection_and_metrics_answer_and_move() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.metrics_listen = Some("127.0.0.1:0".parse().unwrap());
    let (running, mut client) = start(config).await;
    let url = format!("http://{}", running.addr);
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(health_status(&url, "").await, ServingStatus::Serving as i32);
    assert_eq!(health_status(&url, "auditum.v1.IngestService").await, ServingStatus::Serving as i32);
    assert_eq!(health_status(&url, "auditum.log.default").await, ServingStatus::Serving as i32);

    // Reflection lists the services, so grpcurl and friends need no proto files.
    let channel = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await.unwrap();
    let mut reflection = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(channel);
    let list_services = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection.server_reflection_info(tokio_stream::iter(vec![list_services])).await.unwrap().into_inner();
    let response = responses.message().await.unwrap().unwrap();
    let Some(tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) = response.message_response
    else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|service| service.name).collect();
    for expected in ["auditum.v1.IngestService", "auditum.v1.QueryService", "auditum.v1.ProofService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|name| name == expected), "{expected} in {names:?}");
    }

    let metrics_url = format!("http://{}/metrics", running.metrics_addr.unwrap());
    let value = |text: &str, series: &str| -> f64 {
        text.lines().find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok())).unwrap_or(0.0)
    };
    let before = http_get(&metrics_url).await;
    client.append(request((0..25).map(|i| event("acme", "user.login", &format!("u{i}"))).collect())).await.unwrap();
    running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    let after = http_get(&metrics_url).await;
    assert_eq!(
        value(&after, "auditum_append_events_total{log=\"default\"}") - value(&before, "auditum_append_events_total{log=\"default\"}"),
        25.0
    );
    assert!(value(&after, "auditum_sealed_batches_total{log=\"default\"}") >= 1.0, "{after}");
    assert!(value(&after, "auditum_append_latency_seconds_count{log=\"default\"}") >= 1.0, "{after}");
    assert!(after.contains("auditum_seal_duration_seconds_bucket"), "{after}");
    running.stop().await.unwrap();
}
