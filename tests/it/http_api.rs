//! The JSON HTTP API (issue 16): the same answers as gRPC for random filters, every key × RPC ×
//! tenant case of the security matrix, exports with their summary, precise JSON errors, the
//! embedded console, and the gRPC listener's TLS settings.

use crate::common::*;
use crate::security::{KEYS, RPCS, Rpc, expected, secured_config, test_pki, tls_config};
use auditum_engine::auth::Scope;
use auditum_proto::pb;
use auditum_server::config::Config;
use base64::Engine;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::collections::HashMap;
use tonic::Code;

fn http_client() -> reqwest::Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

fn base_url(running: &auditum_server::RunningServer) -> String {
    let (scheme, addr) = running.http_addr.expect("the test config serves http");
    format!("{scheme}://{addr}")
}

struct Http {
    base: String,
    client: reqwest::Client,
    key: Option<String>,
}

impl Http {
    fn new(base: &str, key: Option<String>) -> Http {
        Http { base: base.to_string(), client: http_client(), key }
    }

    async fn send(&self, path: &str, body: &Value) -> reqwest::Response {
        let mut request =
            self.client.post(format!("{}/api/v1/{path}", self.base)).header("content-type", "application/json").body(body.to_string());
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        request.send().await.unwrap()
    }

    /// The HTTP status and the JSON body (for NDJSON, an array of its lines).
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.send(path, &body).await;
        let status = response.status().as_u16();
        let ndjson = response.headers().get("content-type").is_some_and(|value| value == "application/x-ndjson");
        let text = response.text().await.unwrap();
        let body = if ndjson {
            Value::Array(text.lines().map(|line| serde_json::from_str(line).unwrap()).collect())
        } else {
            serde_json::from_str(&text).unwrap_or_else(|error| panic!("{path}: not JSON ({error}): {text}"))
        };
        (status, body)
    }
}

fn code_named(name: &str) -> Code {
    match name {
        "INVALID_ARGUMENT" => Code::InvalidArgument,
        "UNAUTHENTICATED" => Code::Unauthenticated,
        "PERMISSION_DENIED" => Code::PermissionDenied,
        "NOT_FOUND" => Code::NotFound,
        "FAILED_PRECONDITION" => Code::FailedPrecondition,
        "RESOURCE_EXHAUSTED" => Code::ResourceExhausted,
        "OUT_OF_RANGE" => Code::OutOfRange,
        "UNAVAILABLE" => Code::Unavailable,
        "INTERNAL" => Code::Internal,
        "UNIMPLEMENTED" => Code::Unimplemented,
        other => panic!("unexpected code name {other}"),
    }
}

/// The gRPC code an HTTP answer carries, checking that the HTTP status agrees with it.
fn code_of(status: u16, body: &Value) -> Code {
    if status == 200 {
        return Code::Ok;
    }
    let code = code_named(body["code"].as_str().unwrap_or_else(|| panic!("error body names its code: {body}")));
    let want = match code {
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => 400,
        Code::Unauthenticated => 401,
        Code::PermissionDenied => 403,
        Code::NotFound => 404,
        Code::ResourceExhausted => 429,
        Code::Unavailable => 503,
        _ => 500,
    };
    assert_eq!(status, want, "http status of {code:?}: {body}");
    assert!(body["message"].as_str().is_some_and(|message| !message.is_empty()), "{body}");
    code
}

fn rfc3339(timestamp: &prost_types::Timestamp) -> String {
    chrono::DateTime::from_timestamp(timestamp.seconds, timestamp.nanos as u32)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// An EventFilter in the protobuf JSON mapping, written out by hand (not by the server's library).
fn filter_json(filter: &pb::EventFilter) -> Value {
    let mut json = json!({ "tenantId": filter.tenant_id });
    let mut text = |name: &str, value: &str| {
        if !value.is_empty() {
            json[name] = Value::String(value.to_string());
        }
    };
    text("actorId", &filter.actor_id);
    text("targetType", &filter.target_type);
    text("targetId", &filter.target_id);
    text("requestId", &filter.request_id);
    text("correlationId", &filter.correlation_id);
    text("sessionId", &filter.session_id);
    text("sourceIp", &filter.source_ip);
    if filter.actor_type != 0 {
        json["actorType"] = json!(pb::ActorType::try_from(filter.actor_type).unwrap().as_str_name());
    }
    if filter.outcome != 0 {
        json["outcome"] = json!(pb::OutcomeResult::try_from(filter.outcome).unwrap().as_str_name());
    }
    if !filter.actions.is_empty() {
        json["actions"] = json!(filter.actions);
    }
    if let Some(start) = &filter.start_time {
        json["startTime"] = json!(rfc3339(start));
    }
    if let Some(end) = &filter.end_time {
        json["endTime"] = json!(rfc3339(end));
    }
    json
}

/// What identifies a returned event: seq, leaf hash, and a few columns as the JSON mapping spells them.
type Row = (String, String, String, String, String);

fn grpc_row(stored: &pb::StoredEvent) -> Row {
    let event = stored.event.as_ref().unwrap();
    (
        stored.seq.to_string(),
        base64::engine::general_purpose::STANDARD.encode(&stored.leaf_hash),
        event.action.clone(),
        event.actor.as_ref().map(|actor| actor.id.clone()).unwrap_or_default(),
        rfc3339(event.occurred_at.as_ref().unwrap()),
    )
}

fn json_row(stored: &Value) -> Row {
    let text = |value: &Value| value.as_str().unwrap_or_default().to_string();
    (
        text(&stored["seq"]),
        text(&stored["leafHash"]),
        text(&stored["event"]["action"]),
        text(&stored["event"]["actor"]["id"]),
        text(&stored["event"]["occurredAt"]),
    )
}

async fn http_query_all(http: &Http, filter: Value, descending: bool, page_size: u32) -> Vec<Row> {
    let (mut rows, mut token) = (Vec::new(), String::new());
    loop {
        let (status, body) = http
            .post("QueryService/Query", json!({ "filter": filter, "pageSize": page_size, "pageToken": token, "descending": descending }))
            .await;
        assert_eq!(status, 200, "{body}");
        let events = body["events"].as_array().cloned().unwrap_or_default();
        assert!(events.len() <= page_size as usize);
        rows.extend(events.iter().map(json_row));
        match body["nextPageToken"].as_str() {
            Some(next) if !next.is_empty() => token = next.to_string(),
            _ => return rows,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_queries_return_what_grpc_returns_for_random_filters() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { row_group_rows: 500, page_rows: 50, meta_audit: false, ..test_config(dir.path()) };
    let (running, mut ingest) = start(config).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1616);
    archive::build(&running, &mut ingest, &mut rng, 3, 1500).await;
    let (events, _) = archive::all_events(&running).await;
    assert!(events.iter().any(|(_, batch)| batch.is_none()), "unsealed events are part of the comparison");
    let mut grpc = pb::query_service_client::QueryServiceClient::connect(format!("http://{}", running.addr)).await.unwrap();
    let http = Http::new(&base_url(&running), None);
    let mut non_empty = 0;
    for round in 0..60 {
        let filter = archive::random_filter(&mut rng, &events);
        let page_size = rng.gen_range(1..=40);
        for descending in [false, true] {
            let (want, _) = query_all(&mut grpc, &filter, descending, 500).await;
            let want: Vec<Row> = want.iter().map(grpc_row).collect();
            let got = http_query_all(&http, filter_json(&filter), descending, page_size).await;
            assert_eq!(got, want, "round {round}, descending {descending}, page size {page_size}: {filter:?}");
            non_empty += usize::from(!want.is_empty());
        }
    }
    assert!(non_empty >= 40, "most random filters match something ({non_empty} of 120)");
    running.stop().await.unwrap();
}

fn event_json(tenant: &str, action: &str, actor: &str) -> Value {
    json!({
        "tenantId": tenant,
        "action": action,
        "occurredAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "actor": { "id": actor, "type": "ACTOR_TYPE_USER" },
        "outcome": { "result": "OUTCOME_RESULT_SUCCESS" },
    })
}

/// One RPC of the security matrix over HTTP; the gRPC code its answer carries.
async fn call(http: &Http, rpc: Rpc, tenant: &str, known: &HashMap<String, (u64, String)>) -> Code {
    let log = if tenant == "bigco" { "bigco" } else { "" };
    let (seq, event_id) = known[tenant].clone();
    let (status, body) = match rpc {
        Rpc::Append => http.post("IngestService/Append", json!({ "events": [event_json(tenant, "matrix.append", "m")] })).await,
        Rpc::Query => http.post("QueryService/Query", json!({ "filter": { "tenantId": tenant }, "pageSize": 1000 })).await,
        Rpc::Export => {
            let request = json!({ "filter": { "tenantId": tenant }, "format": "EXPORT_FORMAT_JSONL", "includeUnsealed": true });
            let response = http.send("QueryService/Export", &request).await;
            let status = response.status().as_u16();
            if status != 200 {
                let body: Value = response.json_value().await;
                return code_of(status, &body);
            }
            let id = response.headers()["auditum-export-id"].to_str().unwrap().to_string();
            let bytes = response.bytes().await.unwrap();
            let (status, summary) = get(http, &format!("exports/{id}/summary")).await;
            assert_eq!(status, 200, "{summary}");
            assert_eq!(
                summary["rows"].as_str().unwrap().parse::<usize>().unwrap(),
                bytes.split(|byte| *byte == b'\n').filter(|line| !line.is_empty()).count()
            );
            (200, summary)
        }
        Rpc::GetCheckpoint => http.post("ProofService/GetCheckpoint", json!({ "log": log })).await,
        Rpc::GetEventProofBySeq => http.post("ProofService/GetEventProof", json!({ "log": log, "seq": seq.to_string() })).await,
        Rpc::GetEventProofById => http.post("ProofService/GetEventProof", json!({ "log": log, "eventId": event_id })).await,
        Rpc::GetConsistencyProof => {
            http.post("ProofService/GetConsistencyProof", json!({ "log": log, "oldSize": "1", "newSize": "1" })).await
        }
        Rpc::VerifyLog => {
            let (status, lines) = http.post("ProofService/VerifyLog", json!({ "log": log })).await;
            if status == 200 {
                let last = lines.as_array().and_then(|lines| lines.last()).cloned().unwrap_or_default();
                if let Some(error) = last.get("error") {
                    return code_named(error["code"].as_str().unwrap());
                }
                assert_eq!((last["done"].as_bool(), last["ok"].as_bool()), (Some(true), Some(true)), "verification passes: {last}");
            }
            (status, lines)
        }
    };
    code_of(status, &body)
}

trait JsonValue {
    async fn json_value(self) -> Value;
}

impl JsonValue for reqwest::Response {
    async fn json_value(self) -> Value {
        let text = self.text().await.unwrap();
        serde_json::from_str(&text).unwrap_or_else(|error| panic!("not JSON ({error}): {text}"))
    }
}

async fn get(http: &Http, path: &str) -> (u16, Value) {
    let mut request = http.client.get(format!("{}/api/v1/{path}", http.base));
    if let Some(key) = &http.key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json_value().await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_reaches_exactly_the_rpcs_and_tenants_it_is_configured_for_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start(secured_config(dir.path())).await;
    let base = base_url(&running);

    let writer = Http::new(&base, Some(secret("platform-writer")));
    let mut known = HashMap::new();
    for tenant in ["acme", "globex", "bigco"] {
        let mut own = event_json(tenant, "matrix.seed", "seed");
        own["id"] = json!(format!("{tenant}-only"));
        let mut shared = event_json(tenant, "matrix.seed", "seed");
        shared["id"] = json!("shared-id");
        let (status, body) = writer.post("IngestService/Append", json!({ "events": [own, shared] })).await;
        assert_eq!(status, 200, "{body}");
        let seq = body["results"][0]["seq"].as_str().unwrap().parse().unwrap();
        known.insert(tenant.to_string(), (seq, format!("{tenant}-only")));
    }
    for log in running.logs.all() {
        log.seal_now().await.unwrap();
    }

    // Unauthenticated and wrong secrets are refused on every RPC.
    for api_key in [None, Some("acme-reader.wrong".to_string()), Some("acme-reader".to_string())] {
        let anonymous = Http::new(&base, api_key.clone());
        for rpc in RPCS {
            assert_eq!(call(&anonymous, rpc, "acme", &known).await, Code::Unauthenticated, "{rpc:?} with {api_key:?}");
        }
    }
    let mut checked = 0;
    for key in &KEYS {
        let http = Http::new(&base, Some(secret(key.0)));
        for rpc in RPCS {
            for tenant in ["acme", "globex", "bigco"] {
                assert_eq!(
                    call(&http, rpc, tenant, &known).await,
                    expected(key, rpc, tenant),
                    "key {} calling {rpc:?} for {tenant}",
                    key.0
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, KEYS.len() * RPCS.len() * 3);

    // The methods beyond the security matrix's: Summarize like Query, the admin calls for admin keys.
    let summarize = json!({ "filter": { "tenantId": "acme" }, "groupBy": ["SUMMARY_DIMENSION_ACTION"], "bucket": "TIME_BUCKET_DAY" });
    for (key, want) in [("acme-reader", 200), ("bigco-all", 403), ("platform-reader", 200), ("acme-writer", 403)] {
        let (status, body) = Http::new(&base, Some(secret(key))).post("QueryService/Summarize", summarize.clone()).await;
        assert_eq!(status, want, "{key}: {body}");
        if status == 200 {
            assert!(body["rows"].as_array().unwrap().iter().any(|row| row["keys"] == json!(["matrix.seed"])), "{body}");
        }
    }
    for (key, want) in [("platform-admin", 200), ("acme-reader", 403), ("platform-reader", 403)] {
        let (status, body) = Http::new(&base, Some(secret(key))).post("AdminService/ListLegalHolds", json!({ "log": "" })).await;
        assert_eq!(status, want, "{key}: {body}");
    }

    // A refusal names the field and the key's tenant, in the JSON error.
    let acme = Http::new(&base, Some(secret("acme-reader")));
    let (status, body) = acme.post("QueryService/Query", json!({ "filter": { "tenantId": "globex" } })).await;
    assert_eq!(status, 403);
    assert!(body["message"].as_str().unwrap().contains("filter.tenant_id") && body["message"].as_str().unwrap().contains("acme"), "{body}");
    // `info` names the key, its tenant and scopes; a wrong secret is 401.
    let (status, info) = get(&acme, "info").await;
    assert_eq!(status, 200);
    assert_eq!(
        (info["developmentMode"].as_bool(), info["key"]["id"].as_str(), info["key"]["tenant"].as_str()),
        (Some(false), Some("acme-reader"), Some("acme"))
    );
    assert_eq!(info["key"]["scopes"], json!(["query", "export", "proof"]));
    let (status, body) = get(&Http::new(&base, Some("nope".into())), "info").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("UNAUTHENTICATED")));

    // Reads over HTTP are meta-audited like gRPC's: the key is the actor, the caller's address the source.
    let audit = json!({ "filter": { "tenantId": "acme", "actions": ["auditum.query"] }, "pageSize": 1000 });
    let (_, recorded) = acme.post("QueryService/Query", audit).await;
    let recorded = recorded["events"].as_array().unwrap().clone();
    assert!(
        recorded
            .iter()
            .any(|stored| stored["event"]["actor"]["id"] == "acme-reader" && stored["event"]["context"]["sourceIp"] == "127.0.0.1"),
        "{recorded:?}"
    );
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_over_http_is_rate_limited_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = secured_config(dir.path());
    let flooder = auditum_server::config::ApiKeyConfig {
        rate_per_second: Some(2.0),
        burst: Some(5.0),
        ..key_config("flooder", "acme", &[Scope::Query])
    };
    config.api_keys.push(flooder);
    let (running, _) = start(config).await;
    let http = Http::new(&base_url(&running), Some(secret("flooder")));
    let mut limited = None;
    for _ in 0..20 {
        let response = http.send("QueryService/Query", &json!({ "filter": { "tenantId": "acme" } })).await;
        if response.status().as_u16() == 429 {
            limited = Some(response);
            break;
        }
    }
    let limited = limited.expect("the flood is refused");
    assert!(limited.headers().get("retry-after").is_some(), "{:?}", limited.headers());
    let body = limited.json_value().await;
    assert_eq!(body["code"], "RESOURCE_EXHAUSTED");
    assert!(body["message"].as_str().unwrap().contains("flooder"), "{body}");
    running.stop().await.unwrap();
}

/// An export over gRPC: its bytes and summary.
async fn grpc_export(url: &str, key: &str, format: pb::ExportFormat) -> (Vec<u8>, pb::ExportSummary) {
    let channel = auditum_client::channel(url, &auditum_client::ConnectOptions { api_key: Some(key.to_string()), ..Default::default() })
        .await
        .unwrap();
    let mut client = pb::query_service_client::QueryServiceClient::new(channel);
    let request = pb::ExportRequest {
        filter: Some(pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }),
        format: format as i32,
        include_unsealed: false,
        raw: false,
    };
    let mut stream = client.export(request).await.unwrap().into_inner();
    let mut bytes = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        match message.item {
            Some(pb::export_response::Item::Chunk(chunk)) => bytes.extend_from_slice(&chunk),
            Some(pb::export_response::Item::Summary(summary)) => return (bytes, summary),
            None => {}
        }
    }
    panic!("export ended without a summary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_stream_the_same_file_as_grpc_with_the_summary_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { meta_audit: false, ..secured_config(dir.path()) };
    let (running, _) = start(config).await;
    let base = base_url(&running);
    let writer = Http::new(&base, Some(secret("platform-writer")));
    for round in 0..3 {
        let events: Vec<Value> = (0..400).map(|i| event_json("acme", "doc.update", &format!("user-{}", (i * 7 + round) % 13))).collect();
        assert_eq!(writer.post("IngestService/Append", json!({ "events": events })).await.0, 200);
        running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    }
    let reader = Http::new(&base, Some(secret("acme-reader")));
    for (format, name) in [
        (pb::ExportFormat::Csv, "EXPORT_FORMAT_CSV"),
        (pb::ExportFormat::Jsonl, "EXPORT_FORMAT_JSONL"),
        (pb::ExportFormat::Parquet, "EXPORT_FORMAT_PARQUET"),
    ] {
        let (want, want_summary) = grpc_export(&format!("http://{}", running.addr), &secret("acme-reader"), format).await;
        let response = reader.send("QueryService/Export", &json!({ "filter": { "tenantId": "acme" }, "format": name })).await;
        assert_eq!(response.status().as_u16(), 200);
        let disposition = response.headers()["content-disposition"].to_str().unwrap().to_string();
        assert!(disposition.starts_with("attachment; filename=\"auditum-export-acme."), "{disposition}");
        let id = response.headers()["auditum-export-id"].to_str().unwrap().to_string();
        let got = response.bytes().await.unwrap();
        if format == pb::ExportFormat::Parquet {
            // Parquet files made twice may differ in their metadata; their rows must agree.
            assert_eq!(parquet_rows(&got), parquet_rows(&want), "{name}: the same rows as gRPC's file");
        } else {
            assert!(got[..] == want[..], "{name}: the HTTP file is byte for byte the gRPC one");
        }
        let (status, summary) = get(&reader, &format!("exports/{id}/summary")).await;
        assert_eq!(status, 200, "{summary}");
        assert_eq!(summary["rows"], json!(want_summary.rows.to_string()));
        assert_eq!(summary["rows"], json!("1200"));
        assert_eq!(
            summary["sha256"].as_str().unwrap(),
            hex::encode(sha2::Digest::finalize(sha2::Digest::chain_update(sha2::Sha256::default(), &got)))
        );
        assert!(summary["checkpoint"].as_str().unwrap().starts_with("auditum/default\n"));
        // The summary is the exporting key's alone.
        let other = Http::new(&base, Some(secret("platform-reader")));
        assert_eq!(get(&other, &format!("exports/{id}/summary")).await.0, 404);
    }

    // HTTP/1.1 clients that ask for trailers get the summary there too.
    let trailers = raw_http(
        running.http_addr.unwrap().1,
        &format!(
            "POST /api/v1/QueryService/Export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\nTE: trailers\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
            secret("acme-reader"),
            r#"{"filter":{"tenantId":"acme"},"format":"EXPORT_FORMAT_CSV"}"#.len(),
            r#"{"filter":{"tenantId":"acme"},"format":"EXPORT_FORMAT_CSV"}"#
        ),
    )
    .await;
    assert!(trailers.contains("auditum-export-rows: 1200"), "{}", &trailers[trailers.len().saturating_sub(600)..]);
    assert!(trailers.contains("auditum-export-sha256: "));

    // An export refused before its first byte is a JSON error, not a cut file.
    let response = reader.send("QueryService/Export", &json!({ "filter": { "tenantId": "globex" }, "format": "EXPORT_FORMAT_CSV" })).await;
    assert_eq!(response.status().as_u16(), 403);
    assert_eq!(response.json_value().await["code"], "PERMISSION_DENIED");
    running.stop().await.unwrap();
}

fn parquet_rows(file: &[u8]) -> Vec<arrow::array::RecordBatch> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(file))
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<arrow::array::RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|batch| batch.num_rows()).sum::<usize>(), 1200);
    batches
}

async fn raw_http(addr: std::net::SocketAddr, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_that_name_the_field_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start(test_config(dir.path())).await;
    let http = Http::new(&base_url(&running), None);
    let cases =
        [(json!({ "filter": {} }), "filter.tenant_id"), (json!({ "filter": { "tenantId": "acme" }, "pageSize": 100000 }), "page_size")];
    for (request, field) in cases {
        let (status, body) = http.post("QueryService/Query", request.clone()).await;
        assert_eq!(
            (status, body["code"].as_str(), body["field"].as_str()),
            (400, Some("INVALID_ARGUMENT"), Some(field)),
            "{request}: {body}"
        );
    }
    // A misspelt field is refused rather than ignored: it must not widen a search.
    let (status, body) = http.post("QueryService/Query", json!({ "filter": { "tenant": "acme" } })).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_ARGUMENT")));
    assert!(body["message"].as_str().unwrap().contains("tenant"), "{body}");
    let (status, body) = http.post("QueryService/Query", json!({ "filter": { "tenantId": "acme", "outcome": "OUTCOME_MAYBE" } })).await;
    assert_eq!((status, body["code"].as_str()), (400, Some("INVALID_ARGUMENT")), "{body}");
    // Validation of appended events names the event and the field, as over gRPC.
    let mut bad = event_json("acme", "User.Login", "ada");
    bad["metadata"] = json!({ "blob": "x".repeat(70 * 1024) });
    let (status, body) = http.post("IngestService/Append", json!({ "events": [event_json("acme", "a.b", "x"), bad] })).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["field"].as_str().unwrap().starts_with("events[1]"), "{body}");
    // Not JSON; too large; no such method.
    let post = |body: &'static str| {
        http.client.post(format!("{}/api/v1/QueryService/Query", http.base)).header("content-type", "application/json").body(body)
    };
    let response = post("{not json").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let huge = json!({ "filter": { "tenantId": "acme", "actorId": "x".repeat(2 * 1024 * 1024) } });
    let (status, body) = http.post("QueryService/Query", huge).await;
    assert_eq!(status, 413, "{body}");
    assert!(body["message"].as_str().unwrap().contains("1048576 bytes"), "{body}");
    let (status, body) = http.post("QueryService/Delete", json!({})).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("UNIMPLEMENTED")), "{body}");
    let response = http.client.get(format!("{}/api/v1/QueryService/Query", http.base)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert_eq!(response.json_value().await["code"], "UNIMPLEMENTED", "errors are JSON, wrong methods too");

    // Another site cannot use a visitor's browser against the API: a simple (text/plain) POST,
    // a foreign Origin, and in development mode a name that is not loopback (DNS rebinding) are refused.
    let addr = running.http_addr.unwrap().1;
    let append = r#"{"events":[{"tenantId":"acme","action":"a.b","occurredAt":"2026-11-30T00:00:00Z","actor":{"id":"x"}}]}"#;
    let simple = http.client.post(format!("{}/api/v1/IngestService/Append", http.base)).header("content-type", "text/plain").body(append);
    let response = simple.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 415);
    assert!(response.json_value().await["message"].as_str().unwrap().contains("application/json"));
    let foreign = post(r#"{"filter":{"tenantId":"acme"}}"#).header("origin", "https://evil.example").send().await.unwrap();
    assert_eq!(foreign.status().as_u16(), 403);
    let own = post(r#"{"filter":{"tenantId":"acme"}}"#).header("origin", format!("http://{addr}")).send().await.unwrap();
    assert_eq!(own.status().as_u16(), 200, "the console's own origin");
    let rebound =
        raw_http(addr, &format!("GET /api/v1/info HTTP/1.1\r\nHost: evil.example:{}\r\nConnection: close\r\n\r\n", addr.port())).await;
    assert!(rebound.starts_with("HTTP/1.1 403") && rebound.contains("development mode"), "{rebound}");
    let localhost =
        raw_http(addr, &format!("GET /api/v1/info HTTP/1.1\r\nHost: localhost:{}\r\nConnection: close\r\n\r\n", addr.port())).await;
    assert!(localhost.starts_with("HTTP/1.1 200"), "{localhost}");
    let nothing_appended = http.post("QueryService/Query", json!({ "filter": { "tenantId": "acme", "actions": ["a.b"] } })).await.1;
    assert_eq!(nothing_appended["events"], json!([]), "none of the refused appends landed");
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_embedded_and_served_with_a_strict_policy() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start(test_config(dir.path())).await;
    let base = base_url(&running);
    let client = http_client();
    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    let etag = page.headers()["etag"].to_str().unwrap().to_string();
    let html = page.text().await.unwrap();
    assert!(html.contains("auditum") && html.contains("/assets/"), "{html}");
    // Every embedded file is served; gzip when asked; a reload with the ETag is a 304.
    assert!(auditum_server::http::ASSETS.len() >= 3, "index, script and style at least");
    for asset in auditum_server::http::ASSETS.iter() {
        let path = if asset.name == "index.html" { "/".to_string() } else { format!("/assets/{}", asset.name) };
        let response = client.get(format!("{base}{path}")).header("accept-encoding", "gzip").send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{path}");
        assert_eq!(response.headers()["content-encoding"], "gzip", "{path}");
        assert_eq!(response.bytes().await.unwrap().len(), asset.gzipped.len(), "{path}");
    }
    let again = client.get(format!("{base}/")).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 304);
    assert_eq!(client.get(format!("{base}/assets/nope.js")).send().await.unwrap().status().as_u16(), 404);
    // Development mode: the console skips sign-in.
    let (status, info) = get(&Http::new(&base, None), "info").await;
    assert_eq!((status, info["developmentMode"].as_bool(), info["readOnly"].as_bool()), (200, Some(true), Some(false)));
    running.stop().await.unwrap();

    // Development mode serves the console on loopback only.
    let config = Config { http_listen: Some("0.0.0.0:0".parse().unwrap()), ..test_config(&dir.path().join("public")) };
    let error = auditum_server::start(config).await.err().expect("refused").to_string();
    assert!(error.contains("http_listen") && error.contains("loopback"), "{error}");
    // On by default at 127.0.0.1:8080; "" in the file or the variable turns it off.
    let parse = |text: &str, env: Vec<(String, String)>| Config::from_toml_with_env(text, "test", env.into_iter()).unwrap().http_listen;
    assert_eq!(parse("", vec![]), Some("127.0.0.1:8080".parse().unwrap()));
    assert_eq!(parse("http_listen = \"\"\n", vec![]), None);
    assert_eq!(parse("", vec![("AUDITUM_HTTP_LISTEN".into(), String::new())]), None);
    assert_eq!(parse("", vec![("AUDITUM_HTTP_LISTEN".into(), "127.0.0.1:9999".into())]), Some("127.0.0.1:9999".parse().unwrap()));
    // An empty http_listen turns the listener off.
    let config = Config { http_listen: None, ..test_config(&dir.path().join("off")) };
    let running = auditum_server::start(config).await.unwrap();
    assert!(running.http_addr.is_none());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_listener_uses_the_grpc_tls_settings() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki(dir.path());
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&pki.ca).unwrap()).unwrap();
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let config = tls_config(&pki, &dir.path().join("a"), false);
    let running = auditum_server::start(config).await.unwrap();
    let (scheme, addr) = running.http_addr.unwrap();
    assert_eq!(scheme, "https");
    let trusting = reqwest::Client::builder().add_root_certificate(ca.clone()).build().unwrap();
    let info = trusting.get(format!("https://localhost:{}/api/v1/info", addr.port())).send().await.unwrap();
    assert_eq!(info.status().as_u16(), 200);
    // Plain text to the TLS port fails; so does TLS without trusting the CA.
    let plain = http_client().get(format!("http://{addr}/api/v1/info")).send().await;
    assert!(!plain.is_ok_and(|response| response.status().is_success()), "plain text to the TLS port");
    assert!(http_client().get(format!("https://localhost:{}/api/v1/info", addr.port())).send().await.is_err());
    running.stop().await.unwrap();

    // Client certificates required: refused without one, served with one the CA signed.
    let config = tls_config(&pki, &dir.path().join("b"), true);
    let running = auditum_server::start(config).await.unwrap();
    let port = running.http_addr.unwrap().1.port();
    assert!(trusting.get(format!("https://localhost:{port}/api/v1/info")).send().await.is_err(), "no client certificate");
    let mut identity = std::fs::read(&pki.client_cert).unwrap();
    identity.extend(std::fs::read(&pki.client_key).unwrap());
    let with_certificate =
        reqwest::Client::builder().add_root_certificate(ca).identity(reqwest::Identity::from_pem(&identity).unwrap()).build().unwrap();
    let info = with_certificate.get(format!("https://localhost:{port}/api/v1/info")).send().await.unwrap();
    assert_eq!(info.status().as_u16(), 200);
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_streams_ndjson_lines_and_ends_with_an_error_line_when_the_server_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start(Config { meta_audit: false, ..secured_config(dir.path()) }).await;
    let base = base_url(&running);
    let writer = Http::new(&base, Some(secret("platform-writer")));
    let events: Vec<Value> = (0..5).map(|i| event_json("acme", "doc.view", &format!("u{i}"))).collect();
    assert_eq!(writer.post("IngestService/Append", json!({ "events": events })).await.0, 200);

    // Another tenant's key is refused before the stream starts, as a JSON error.
    let foreign = Http::new(&base, Some(secret("bigco-all")));
    let (status, body) = foreign.post("QueryService/Subscribe", json!({ "filter": { "tenantId": "acme" }, "fromBeginning": true })).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("PERMISSION_DENIED")), "{body}");

    let reader = Http::new(&base, Some(secret("acme-reader")));
    let response = reader.send("QueryService/Subscribe", &json!({ "filter": { "tenantId": "acme" }, "fromBeginning": true })).await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let mut body = response;
    let mut text = String::new();
    let mut lines: Vec<Value> = Vec::new();
    let next_lines = |text: &mut String, lines: &mut Vec<Value>| {
        while let Some(end) = text.find('\n') {
            lines.push(serde_json::from_str(&text[..end]).unwrap());
            text.drain(..=end);
        }
    };
    // The five events arrive, one message per line, in seq order.
    while lines.iter().filter(|line| line.get("event").is_some()).count() < 5 {
        let chunk = tokio::time::timeout(std::time::Duration::from_secs(10), body.chunk()).await.expect("events arrive").unwrap().unwrap();
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        next_lines(&mut text, &mut lines);
    }
    let seqs: Vec<u64> =
        lines.iter().filter_map(|line| line.get("event")).map(|event| event["seq"].as_str().unwrap().parse().unwrap()).collect();
    assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
    assert!(lines.iter().filter_map(|line| line.get("event")).all(|event| event["event"]["tenantId"] == "acme"));

    // The server stops: the stream ends with one error line naming where to resume, as gRPC ends it with a status.
    let stopping = tokio::spawn(running.stop());
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout(std::time::Duration::from_secs(15), body.chunk()).await {
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        next_lines(&mut text, &mut lines);
    }
    let last = lines.last().unwrap();
    assert_eq!(last["error"]["code"], "UNAVAILABLE", "{last}");
    assert!(last["error"]["message"].as_str().unwrap().contains("after_seq = 4"), "the cursor to resume from: {last}");
    stopping.await.unwrap().unwrap();
}
