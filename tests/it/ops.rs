//! Operability basics: gRPC health per log, server reflection, and metrics that move.

use crate::common::*;
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
    assert!(value(&after, "auditum_batch_events_count{log=\"default\"}") >= 1.0, "{after}");
    assert!(after.contains("auditum_wal_bytes{log=\"default\"}") && after.contains("auditum_unsealed_events{log=\"default\"}"), "{after}");

    // Query and export latency, rows scanned and exported, and their meta-audit records.
    let channel = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await.unwrap();
    let mut query = auditum_proto::pb::query_service_client::QueryServiceClient::new(channel);
    let filter = auditum_proto::pb::EventFilter { tenant_id: "acme".into(), ..Default::default() };
    let page = query
        .query(auditum_proto::pb::QueryRequest {
            filter: Some(filter.clone()),
            page_size: 100,
            page_token: String::new(),
            descending: false,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.events.len(), 25);
    let export = auditum_proto::pb::ExportRequest {
        filter: Some(filter),
        format: auditum_proto::pb::ExportFormat::Csv as i32,
        include_unsealed: false,
        raw: false,
    };
    let mut stream = query.export(export).await.unwrap().into_inner();
    while stream.message().await.unwrap().is_some() {}
    let read = http_get(&metrics_url).await;
    let moved = |series: &str| value(&read, series) - value(&after, series);
    assert_eq!(moved("auditum_query_latency_seconds_count{log=\"default\"}"), 1.0);
    assert_eq!(moved("auditum_export_duration_seconds_count{log=\"default\"}"), 1.0);
    assert_eq!(moved("auditum_export_rows_total{log=\"default\"}"), 25.0);
    assert!(moved("auditum_rows_scanned_total{log=\"default\"}") >= 50.0, "{read}");
    assert!(moved("auditum_query_bytes_read_total{log=\"default\"}") > 0.0, "{read}");
    assert_eq!(moved("auditum_meta_audit_events_total{log=\"default\"}"), 2.0, "one record per read");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_request_id_of_each_call() {
    let dir = tempfile::tempdir().unwrap();
    let secret = "appender.0123456789abcdefghijklmnopqrstuvwxyzABCDEFG";
    let mut args = key_config_args(dir.path(), "appender", secret, "acme", &["append"]);
    args.extend(["--log-format".to_string(), "json".to_string()]);
    let (mut child, url) = spawn_binary(dir.path(), &args).await;
    let channel = tonic::transport::Endpoint::from_shared(url).unwrap().connect().await.unwrap();
    let mut proof = auditum_proto::pb::proof_service_client::ProofServiceClient::new(channel);
    let mut request = tonic::Request::new(auditum_proto::pb::GetCheckpointRequest { log: String::new() });
    request.metadata_mut().insert("authorization", format!("Bearer {secret}").parse().unwrap());
    request.metadata_mut().insert("x-request-id", "trace-me-42".parse().unwrap());
    assert_eq!(proof.get_checkpoint(request).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    child.kill().await.unwrap();
    let log = std::fs::read_to_string(dir.path().join("server.log")).unwrap();
    let line = log.lines().find(|line| line.contains("trace-me-42")).unwrap_or_else(|| panic!("no line with the request id:\n{log}"));
    let entry: serde_json::Value = serde_json::from_str(line).expect("a json log line");
    assert_eq!(entry["span"]["request_id"], "trace-me-42", "{entry}");
    assert_eq!(entry["span"]["method"], "GetCheckpoint");
    assert_eq!(entry["span"]["key"], "appender");
    assert_eq!(entry["level"], "WARN");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_family_has_its_series_at_zero_from_the_start() {
    // A process of its own: the in-process tests share one registry.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("auditum.toml");
    std::fs::write(
        &config,
        format!(
            "[[logs]]\nname = \"bigco\"\ntenants = [\"bigco\"]\n\n[[api_keys]]\nid = \"ops\"\nsecret_sha256 = \"{}\"\ntenant = \"*\"\nscopes = [\"admin\"]\n",
            auditum_engine::auth::sha256_hex(&secret("ops"))
        ),
    )
    .unwrap();
    let args = vec!["--config".to_string(), config.display().to_string()];
    let (mut child, _, metrics) = spawn_binary_with_metrics(dir.path(), &args).await;
    let text = http_get(&metrics.unwrap()).await;
    for log in ["default", "bigco"] {
        for series in [
            format!("auditum_append_events_total{{log=\"{log}\"}} 0"),
            format!("auditum_sealed_batches_total{{log=\"{log}\"}} 0"),
            format!("auditum_append_rejected_total{{log=\"{log}\",reason=\"wal_full\"}} 0"),
            format!("auditum_object_store_errors_total{{log=\"{log}\",operation=\"put batch\"}} 0"),
            format!("auditum_query_latency_seconds_count{{log=\"{log}\"}} 0"),
            format!("auditum_log_fenced{{log=\"{log}\"}} 0"),
            format!("auditum_meta_audit_events_total{{log=\"{log}\"}} 0"),
        ] {
            assert!(text.lines().any(|line| line == series), "{series} in:\n{text}");
        }
    }
    assert!(text.lines().any(|line| line == "auditum_rate_limited_total{key=\"ops\"} 0"), "{text}");
    assert!(text.lines().any(|line| line == "auditum_auth_refused_total{code=\"Unauthenticated\"} 0"), "{text}");
    // Every family has series, but those of things this process does not have (sinks, alert
    // rules, a read-only node's follower).
    let unconfigured = ["auditum_delivery", "auditum_delivered", "auditum_alert", "auditum_replica"];
    for family in text.lines().filter_map(|line| line.strip_prefix("# TYPE ")).filter_map(|rest| rest.split_whitespace().next()) {
        if unconfigured.iter().any(|prefix| family.starts_with(prefix)) {
            continue;
        }
        assert!(text.lines().any(|line| !line.starts_with('#') && line.starts_with(family)), "family {family} has no series:\n{text}");
    }
    assert!(terminate(&mut child).await.success());
}
