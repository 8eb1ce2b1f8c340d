//! Security and tenancy (issue 6): API keys × RPCs × tenants, keys kept only as hashes, TLS with
//! and without client certificates, meta-audit events, per-key rate limits, hostile input.

use crate::common::*;
use auditum_client::{AuthChannel, ConnectOptions};
use auditum_engine::auth::{Scope, sha256_hex};
use auditum_proto::pb;
use auditum_server::config::{ApiKeyConfig, Config};
use std::collections::HashMap;
use std::time::Duration;
use tonic::Code;

/// Test keys: (id, tenant, scopes). Each key's secret is `<id>.secret`.
pub(crate) const KEYS: [(&str, &str, &[Scope]); 7] = [
    ("acme-writer", "acme", &[Scope::Append]),
    ("acme-reader", "acme", &[Scope::Query, Scope::Export, Scope::Proof]),
    ("acme-admin", "acme", &[Scope::Admin]),
    ("bigco-all", "bigco", &[Scope::Append, Scope::Query, Scope::Export, Scope::Proof]),
    ("platform-reader", "*", &[Scope::Query, Scope::Export, Scope::Proof]),
    ("platform-writer", "*", &[Scope::Append]),
    ("platform-admin", "*", &[Scope::Admin]),
];

/// Two logs: `default` (acme, globex) and `bigco` (bigco alone).
pub(crate) fn secured_config(dir: &std::path::Path) -> Config {
    Config {
        api_keys: KEYS.iter().map(|(id, tenant, scopes)| key_config(id, tenant, scopes)).collect(),
        logs: vec![routed_log("bigco", &["bigco"])],
        ..test_config(dir)
    }
}

async fn channel(url: &str, api_key: Option<&str>) -> AuthChannel {
    let options = ConnectOptions { api_key: api_key.map(str::to_string), ..Default::default() };
    auditum_client::channel(url, &options).await.unwrap()
}

struct Clients {
    ingest: pb::ingest_service_client::IngestServiceClient<AuthChannel>,
    query: pb::query_service_client::QueryServiceClient<AuthChannel>,
    proof: pb::proof_service_client::ProofServiceClient<AuthChannel>,
}

async fn clients(url: &str, api_key: Option<&str>) -> Clients {
    let channel = channel(url, api_key).await;
    Clients {
        ingest: pb::ingest_service_client::IngestServiceClient::new(channel.clone()),
        query: pb::query_service_client::QueryServiceClient::new(channel.clone()),
        proof: pb::proof_service_client::ProofServiceClient::new(channel),
    }
}

fn tenant_filter(tenant: &str) -> pb::EventFilter {
    pb::EventFilter { tenant_id: tenant.to_string(), ..Default::default() }
}

fn query_request(filter: pb::EventFilter) -> pb::QueryRequest {
    pb::QueryRequest { filter: Some(filter), page_size: 1000, page_token: String::new(), descending: false }
}

async fn query_all(clients: &mut Clients, filter: pb::EventFilter) -> Result<Vec<pb::StoredEvent>, tonic::Status> {
    Ok(clients.query.query(query_request(filter)).await?.into_inner().events)
}

/// The whole export as bytes, or the first error.
async fn export_all(clients: &mut Clients, tenant: &str) -> Result<(Vec<u8>, pb::ExportSummary), tonic::Status> {
    let request = pb::ExportRequest {
        filter: Some(tenant_filter(tenant)),
        format: pb::ExportFormat::Jsonl as i32,
        include_unsealed: true,
        raw: false,
    };
    let mut stream = clients.query.export(request).await?.into_inner();
    let mut bytes = Vec::new();
    while let Some(message) = stream.message().await? {
        match message.item {
            Some(pb::export_response::Item::Chunk(chunk)) => bytes.extend_from_slice(&chunk),
            Some(pb::export_response::Item::Summary(summary)) => return Ok((bytes, summary)),
            None => {}
        }
    }
    Err(tonic::Status::internal("export ended without a summary"))
}

fn code<T>(result: &Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rpc {
    Append,
    Query,
    Export,
    GetCheckpoint,
    GetEventProofBySeq,
    GetEventProofById,
    GetConsistencyProof,
    VerifyLog,
}

pub(crate) const RPCS: [Rpc; 8] = [
    Rpc::Append,
    Rpc::Query,
    Rpc::Export,
    Rpc::GetCheckpoint,
    Rpc::GetEventProofBySeq,
    Rpc::GetEventProofById,
    Rpc::GetConsistencyProof,
    Rpc::VerifyLog,
];

/// The rule, written from the issues rather than from the server: the scope the RPC needs (admin
/// grants all), and the tenant: a tenant-bound key reaches only its tenant (for log-wide calls:
/// its tenant's log); VerifyLog covers every tenant of a log, so it needs a platform key. What a
/// proof call cannot reach answers NOT_FOUND, exactly like what does not exist (it must not
/// reveal other tenants or logs); a call that names a tenant is refused as PERMISSION_DENIED.
pub(crate) fn expected(key: &(&str, &str, &[Scope]), rpc: Rpc, tenant: &str) -> Code {
    let (_, key_tenant, scopes) = key;
    let needs = match rpc {
        Rpc::Append => Scope::Append,
        Rpc::Query => Scope::Query,
        Rpc::Export => Scope::Export,
        _ => Scope::Proof,
    };
    if !scopes.contains(&needs) && !scopes.contains(&Scope::Admin) {
        return Code::PermissionDenied;
    }
    let log_of = |tenant: &str| if tenant == "bigco" { "bigco" } else { "default" };
    let reachable = match rpc {
        Rpc::VerifyLog => *key_tenant == "*",
        Rpc::GetCheckpoint | Rpc::GetConsistencyProof => *key_tenant == "*" || log_of(key_tenant) == log_of(tenant),
        _ => *key_tenant == "*" || *key_tenant == tenant,
    };
    match (reachable, rpc) {
        (true, _) => Code::Ok,
        (false, Rpc::GetCheckpoint | Rpc::GetEventProofBySeq | Rpc::GetEventProofById | Rpc::GetConsistencyProof) => Code::NotFound,
        (false, _) => Code::PermissionDenied,
    }
}

async fn call(clients: &mut Clients, rpc: Rpc, tenant: &str, known: &HashMap<String, (u64, String)>) -> Code {
    let log = if tenant == "bigco" { "bigco" } else { "" };
    let (seq, event_id) = known[tenant].clone();
    match rpc {
        Rpc::Append => code(&clients.ingest.append(request(vec![event(tenant, "matrix.append", "m")])).await),
        Rpc::Query => code(&query_all(clients, tenant_filter(tenant)).await),
        Rpc::Export => code(&export_all(clients, tenant).await),
        Rpc::GetCheckpoint => code(&clients.proof.get_checkpoint(pb::GetCheckpointRequest { log: log.into() }).await),
        Rpc::GetEventProofBySeq => code(
            &clients
                .proof
                .get_event_proof(pb::GetEventProofRequest { log: log.into(), key: Some(pb::get_event_proof_request::Key::Seq(seq)) })
                .await,
        ),
        Rpc::GetEventProofById => {
            let key = Some(pb::get_event_proof_request::Key::EventId(event_id));
            code(&clients.proof.get_event_proof(pb::GetEventProofRequest { log: log.into(), key }).await)
        }
        Rpc::GetConsistencyProof => {
            code(&clients.proof.get_consistency_proof(pb::GetConsistencyProofRequest { log: log.into(), old_size: 1, new_size: 1 }).await)
        }
        Rpc::VerifyLog => {
            let result = clients.proof.verify_log(pb::VerifyLogRequest { log: log.into() }).await;
            match result {
                Ok(response) => {
                    let mut stream = response.into_inner();
                    let mut last = None;
                    while let Some(message) = stream.message().await.unwrap() {
                        last = Some(message);
                    }
                    assert!(last.is_some_and(|message| message.done && message.ok), "verification passes");
                    Code::Ok
                }
                Err(status) => status.code(),
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_key_reaches_exactly_the_rpcs_and_tenants_it_is_configured_for() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start(secured_config(dir.path())).await;
    let url = format!("http://{}", running.addr);

    // One sealed event per tenant, each id also used by another tenant.
    let mut writer = clients(&url, Some(&secret("platform-writer"))).await;
    let mut known = HashMap::new();
    for tenant in ["acme", "globex", "bigco"] {
        let events = vec![
            with_id(event(tenant, "matrix.seed", "seed"), &format!("{tenant}-only")),
            with_id(event(tenant, "matrix.seed", "seed"), "shared-id"),
        ];
        let results = writer.ingest.append(request(events)).await.unwrap().into_inner().results;
        known.insert(tenant.to_string(), (results[0].seq, format!("{tenant}-only")));
    }
    for log in running.logs.all() {
        log.seal_now().await.unwrap();
    }

    // Unauthenticated and wrong secrets are refused on every RPC, before anything else.
    for api_key in [None, Some("acme-reader.wrong".to_string()), Some("acme-reader".to_string()), Some(String::new())] {
        let mut anonymous = clients(&url, api_key.as_deref()).await;
        for rpc in RPCS {
            assert_eq!(call(&mut anonymous, rpc, "acme", &known).await, Code::Unauthenticated, "{rpc:?} with {api_key:?}");
        }
    }

    let mut checked = 0;
    for key in &KEYS {
        let mut clients = clients(&url, Some(&secret(key.0))).await;
        for rpc in RPCS {
            for tenant in ["acme", "globex", "bigco"] {
                let got = call(&mut clients, rpc, tenant, &known).await;
                assert_eq!(got, expected(key, rpc, tenant), "key {} calling {rpc:?} for tenant {tenant}", key.0);
                checked += 1;
            }
        }
    }
    assert_eq!(checked, KEYS.len() * RPCS.len() * 3);

    // What a tenant key can read is its tenant's, whatever the filter says.
    let mut acme = clients(&url, Some(&secret("acme-reader"))).await;
    let events = query_all(&mut acme, tenant_filter("acme")).await.unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|stored| stored.event.as_ref().unwrap().tenant_id == "acme"));
    let by_foreign_id = pb::EventFilter { actor_id: "seed".into(), ..tenant_filter("acme") };
    assert!(query_all(&mut acme, by_foreign_id).await.unwrap().iter().all(|stored| stored.event.as_ref().unwrap().tenant_id == "acme"));
    let (exported, summary) = export_all(&mut acme, "acme").await.unwrap();
    let lines: Vec<serde_json::Value> =
        String::from_utf8(exported).unwrap().lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len() as u64, summary.rows);
    assert!(lines.iter().all(|line| line["tenant_id"] == "acme"), "export holds only acme rows");
    // An id both tenants used resolves to acme's event for an acme key, never "ambiguous".
    let shared = acme
        .proof
        .get_event_proof(pb::GetEventProofRequest {
            log: String::new(),
            key: Some(pb::get_event_proof_request::Key::EventId("shared-id".into())),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(auditum_format::proof::event_tenant(&shared.proof_json).unwrap(), "acme");
    // An unsealed event of another tenant: not found, exactly like a seq that does not exist.
    let unsealed = |tenant: &str| with_id(event(tenant, "matrix.unsealed", "u"), &format!("{tenant}-unsealed"));
    let results = writer.ingest.append(request(vec![unsealed("globex"), unsealed("acme")])).await.unwrap().into_inner().results;
    let proof_of = |seq: u64| pb::GetEventProofRequest { log: String::new(), key: Some(pb::get_event_proof_request::Key::Seq(seq)) };
    let foreign = acme.proof.get_event_proof(proof_of(results[0].seq)).await.unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    assert!(!foreign.message().contains("globex"), "{}", foreign.message());
    assert_eq!(
        acme.proof.get_event_proof(proof_of(results[1].seq)).await.unwrap_err().code(),
        Code::FailedPrecondition,
        "own event, not sealed yet"
    );
    // Refusals name the field and the key's tenant.
    let refused = acme.query.query(query_request(tenant_filter("globex"))).await.unwrap_err();
    assert!(refused.message().contains("filter.tenant_id") && refused.message().contains("acme"), "{}", refused.message());
    let mut acme_writer = clients(&url, Some(&secret("acme-writer"))).await;
    let mixed = request(vec![event("acme", "a.b", "x"), event("globex", "a.b", "x")]);
    let refused = acme_writer.ingest.append(mixed).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("events[1].tenant_id"), "{}", refused.message());
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_audit_records_reads_with_the_key_as_actor() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { meta_audit: true, ..secured_config(dir.path()) };
    let (running, _) = start(config).await;
    let url = format!("http://{}", running.addr);
    let mut writer = clients(&url, Some(&secret("platform-writer"))).await;
    let results = writer.ingest.append(request(vec![event("acme", "user.login", "ada")])).await.unwrap().into_inner().results;
    running.logs.by_name("default").unwrap().seal_now().await.unwrap();

    let mut reader = clients(&url, Some(&secret("acme-reader"))).await;
    let filter = pb::EventFilter { actions: vec!["user.*".into()], ..tenant_filter("acme") };
    assert_eq!(query_all(&mut reader, filter).await.unwrap().len(), 1, "a query does not see its own record");
    export_all(&mut reader, "acme").await.unwrap();
    let seq = results[0].seq;
    reader
        .proof
        .get_event_proof(pb::GetEventProofRequest { log: String::new(), key: Some(pb::get_event_proof_request::Key::Seq(seq)) })
        .await
        .unwrap();
    // A refused attempt on another tenant is recorded too, in the caller's own tenant.
    assert_eq!(query_all(&mut reader, tenant_filter("globex")).await.unwrap_err().code(), Code::PermissionDenied);

    let audit = pb::EventFilter { actions: vec!["auditum.*".into()], ..tenant_filter("acme") };
    let recorded: Vec<pb::AuditEvent> =
        query_all(&mut reader, audit).await.unwrap().into_iter().map(|stored| stored.event.unwrap()).collect();
    let actions: Vec<&str> = recorded.iter().map(|event| event.action.as_str()).collect();
    assert_eq!(actions[..4], ["auditum.query", "auditum.export", "auditum.proof", "auditum.query"], "{actions:?}");
    for event in &recorded[..4] {
        let actor = event.actor.as_ref().unwrap();
        assert_eq!(actor.id, "acme-reader");
        assert_eq!(actor.r#type, pb::ActorType::ApiKey as i32);
        assert_eq!(event.context.as_ref().unwrap().source_ip, "127.0.0.1");
        assert!(!event.context.as_ref().unwrap().request_id.is_empty());
    }
    let metadata = |event: &pb::AuditEvent| -> serde_json::Value {
        let fields = &event.metadata.as_ref().unwrap().fields;
        let filter = fields.get("filter").and_then(|value| value.kind.as_ref());
        match filter {
            Some(prost_types::value::Kind::StructValue(filter)) => serde_json::json!({
                "tenant_id": filter.fields.get("tenant_id").and_then(|value| match &value.kind {
                    Some(prost_types::value::Kind::StringValue(text)) => Some(text.clone()),
                    _ => None,
                }),
                "has_actions": filter.fields.contains_key("actions"),
            }),
            _ => serde_json::Value::Null,
        }
    };
    assert_eq!(metadata(&recorded[0]), serde_json::json!({ "tenant_id": "acme", "has_actions": true }), "the filter is the metadata");
    assert_eq!(recorded[0].outcome.as_ref().unwrap().result, pb::OutcomeResult::Success as i32);
    let denied = &recorded[3];
    assert_eq!(denied.outcome.as_ref().unwrap().result, pb::OutcomeResult::Denied as i32);
    assert_eq!(metadata(denied)["tenant_id"], "globex", "the denied filter is kept");
    assert_eq!(denied.tenant_id, "acme");

    // A platform key's read of a tenant is recorded in that tenant, where its owner can see it.
    let mut platform = clients(&url, Some(&secret("platform-reader"))).await;
    query_all(&mut platform, tenant_filter("globex")).await.unwrap();
    let globex_audit = pb::EventFilter { actions: vec!["auditum.query".into()], ..tenant_filter("globex") };
    let seen = query_all(&mut platform, globex_audit).await.unwrap();
    assert!(seen.iter().any(|stored| stored.event.as_ref().unwrap().actor.as_ref().unwrap().id == "platform-reader"));
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_above_the_rate_limit_is_refused_while_other_keys_keep_working() {
    use tonic_types::StatusExt;
    let dir = tempfile::tempdir().unwrap();
    let mut config = secured_config(dir.path());
    // Refill is slow next to the burst, so what passes is the burst.
    let flooder =
        ApiKeyConfig { rate_per_second: Some(2.0), burst: Some(10.0), ..key_config("flooder", "acme", &[Scope::Query, Scope::Append]) };
    config.api_keys.push(flooder);
    let (running, _) = start(config).await;
    let url = format!("http://{}", running.addr);

    let flood = clients(&url, Some(&secret("flooder"))).await;
    let calls = (0..60).map(|_| {
        let mut query = flood.query.clone();
        async move { query.query(query_request(tenant_filter("acme"))).await }
    });
    let outcomes = futures::future::join_all(calls).await;
    let passed = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
    let limited: Vec<&tonic::Status> =
        outcomes.iter().filter_map(|outcome| outcome.as_ref().err()).filter(|status| status.code() == Code::ResourceExhausted).collect();
    assert_eq!(passed + limited.len(), 60, "every call either passed or was rate limited");
    assert!((10..=12).contains(&passed), "the burst of 10 (plus refill while the flood runs) passed: {passed}");
    let status = limited[0];
    assert!(status.message().contains("flooder") && status.message().contains("retry after"), "{}", status.message());
    let retry = status.get_details_retry_info().and_then(|info| info.retry_delay).expect("RetryInfo detail");
    assert!(retry > Duration::ZERO && retry <= Duration::from_millis(500), "one token at 2/s: {retry:?}");
    assert!(status.metadata().get("retry-after").is_some());

    // Appends are charged per event: a 50-event call is more than the bucket holds right now.
    let mut append = flood.ingest.clone();
    let big = request((0..50).map(|i| event("acme", "flood.append", &format!("f{i}"))).collect());
    assert_eq!(append.append(big).await.unwrap_err().code(), Code::ResourceExhausted);

    // Other keys are untouched by the flood.
    let mut other = clients(&url, Some(&secret("acme-reader"))).await;
    for _ in 0..30 {
        query_all(&mut other, tenant_filter("acme")).await.unwrap();
    }
    // After the advertised delay, the flooder is served again.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let mut flood = flood;
    query_all(&mut flood, tenant_filter("acme")).await.unwrap();
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_mode_refuses_a_non_loopback_listener() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config { listen: "0.0.0.0:0".parse().unwrap(), ..test_config(dir.path()) };
    let error = auditum_server::start(config).await.err().expect("refused").to_string();
    assert!(error.contains("api_keys") && error.contains("loopback"), "{error}");
    // With a key, the same listener is allowed.
    let config =
        Config { listen: "0.0.0.0:0".parse().unwrap(), api_keys: vec![key_config("k", "*", &[Scope::Admin])], ..test_config(dir.path()) };
    let running = auditum_server::start(config).await.unwrap();
    running.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_precise_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _) = start(secured_config(dir.path())).await;
    let url = format!("http://{}", running.addr);
    let mut admin = clients(&url, Some(&secret("platform-admin"))).await;

    // A Struct nested past what protobuf decoding allows: INVALID_ARGUMENT, not INTERNAL.
    let mut value = prost_types::Value { kind: Some(prost_types::value::Kind::StringValue("deep".into())) };
    for _ in 0..200 {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("k".to_string(), value);
        value = prost_types::Value { kind: Some(prost_types::value::Kind::StructValue(prost_types::Struct { fields })) };
    }
    let mut deep = event("acme", "a.b", "x");
    deep.metadata = Some(prost_types::Struct { fields: [("k".to_string(), value)].into_iter().collect() });
    let status = admin.ingest.append(request(vec![deep])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("32 levels") && status.message().len() < 200, "{}", status.message());

    // Nested within protobuf's limit but past the Struct depth limit: the field is named.
    let mut value = prost_types::Value { kind: Some(prost_types::value::Kind::NumberValue(1.0)) };
    for _ in 0..32 {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("k".to_string(), value);
        value = prost_types::Value { kind: Some(prost_types::value::Kind::StructValue(prost_types::Struct { fields })) };
    }
    let mut nested = event("acme", "a.b", "x");
    nested.after = Some(prost_types::Struct { fields: [("k".to_string(), value)].into_iter().collect() });
    let status = admin.ingest.append(request(vec![nested])).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("events[0].after") && status.message().contains("32"), "{}", status.message());

    // Query requests are small: a huge one is refused at decoding, by size.
    let huge = pb::EventFilter { actions: vec!["x".repeat(1024); 400], ..tenant_filter("acme") };
    let status = admin.query.query(query_request(huge)).await.unwrap_err();
    assert!(matches!(status.code(), Code::ResourceExhausted | Code::OutOfRange), "{status:?}");

    // Garbage bytes as a request body: INVALID_ARGUMENT.
    let channel = tonic::transport::Endpoint::from_shared(url.clone()).unwrap().connect().await.unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let mut garbage = tonic::Request::new(bytes::Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    garbage.metadata_mut().insert("authorization", format!("Bearer {}", secret("platform-admin")).parse().unwrap());
    let status = raw
        .unary::<bytes::Bytes, pb::QueryResponse, _>(garbage, "/auditum.v1.QueryService/Query".parse().unwrap(), RawCodec)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // The server still serves.
    query_all(&mut admin, tenant_filter("acme")).await.unwrap();
    running.stop().await.unwrap();
}

/// Sends raw bytes as a request and decodes the answer with prost.
#[derive(Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = bytes::Bytes;
    type Decode = pb::QueryResponse;
    type Encoder = RawEncoder;
    type Decoder = tonic_prost::ProstDecoder<pb::QueryResponse>;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::default()
    }
}

struct RawEncoder;

impl tonic::codec::Encoder for RawEncoder {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(&mut self, item: bytes::Bytes, buf: &mut tonic::codec::EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        buf.put(item);
        Ok(())
    }
}

/// A test CA, a server certificate for 127.0.0.1 and a client certificate, as PEM files in `dir`.
pub(crate) struct Pki {
    pub(crate) ca: std::path::PathBuf,
    pub(crate) server_cert: std::path::PathBuf,
    pub(crate) server_key: std::path::PathBuf,
    pub(crate) client_cert: std::path::PathBuf,
    pub(crate) client_key: std::path::PathBuf,
}

/// [`secured_config`] serving TLS with the test PKI's server certificate, and requiring client
/// certificates signed by its CA when `client_certificates`.
pub(crate) fn tls_config(pki: &Pki, dir: &std::path::Path, client_certificates: bool) -> Config {
    Config {
        tls_cert: Some(pki.server_cert.clone()),
        tls_key: Some(pki.server_key.clone()),
        tls_client_ca: client_certificates.then(|| pki.ca.clone()),
        ..secured_config(dir)
    }
}

pub(crate) fn test_pki(dir: &std::path::Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "auditum test ca");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf = |names: Vec<String>, usage: ExtendedKeyUsagePurpose, name: &str| {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()], ExtendedKeyUsagePurpose::ServerAuth, "auditum");
    let (client_cert, client_key) = leaf(Vec::new(), ExtendedKeyUsagePurpose::ClientAuth, "billing-service");
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", &ca.pem()),
        server_cert: write("server.pem", &server_cert),
        server_key: write("server.key", &server_key),
        client_cert: write("client.pem", &client_cert),
        client_key: write("client.key", &client_key),
    }
}

async fn tls_append(url: &str, options: ConnectOptions) -> Result<(), String> {
    let channel = auditum_client::channel(url, &options).await.map_err(|error| error.to_string())?;
    let mut client = pb::ingest_service_client::IngestServiceClient::new(channel);
    client.append(request(vec![event("acme", "tls.append", "t")])).await.map(|_| ()).map_err(|status| status.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_serves_clients_that_trust_the_ca_and_can_require_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let pki = test_pki(dir.path());
    let api_key = Some(secret("platform-writer"));
    let config = tls_config(&pki, &dir.path().join("a"), false);
    let running = auditum_server::start(config).await.unwrap();
    let url = format!("https://{}", running.addr);
    let trusting = ConnectOptions { api_key: api_key.clone(), tls_ca: Some(pki.ca.clone()), ..Default::default() };
    tls_append(&url, trusting.clone()).await.unwrap();
    // Plain text to a TLS port, and TLS without trusting the CA, both fail.
    let plain = format!("http://{}", running.addr);
    assert!(tls_append(&plain, ConnectOptions { api_key: api_key.clone(), ..Default::default() }).await.is_err());
    assert!(tls_append(&url, ConnectOptions { api_key: api_key.clone(), ..Default::default() }).await.is_err(), "unknown CA");
    running.stop().await.unwrap();

    // Client certificates required: without one the handshake fails; with one signed by the CA it works.
    let config = tls_config(&pki, &dir.path().join("b"), true);
    let running = auditum_server::start(config).await.unwrap();
    let url = format!("https://{}", running.addr);
    let refused = tls_append(&url, trusting.clone()).await.unwrap_err();
    assert!(!refused.is_empty());
    let with_certificate =
        ConnectOptions { tls_client_cert: Some(pki.client_cert.clone()), tls_client_key: Some(pki.client_key.clone()), ..trusting.clone() };
    tls_append(&url, with_certificate.clone()).await.unwrap();
    // The client certificate does not replace the API key.
    let no_key = ConnectOptions { api_key: None, ..with_certificate };
    let refused = tls_append(&url, no_key).await.unwrap_err();
    assert!(refused.contains("authorization: missing"), "{refused}");
    running.stop().await.unwrap();

    // A bad certificate file stops the server at start, naming the field.
    let config =
        Config { tls_cert: Some(pki.ca.clone()), tls_key: Some(dir.path().join("missing.key")), ..secured_config(&dir.path().join("c")) };
    let error = auditum_server::start(config).await.err().expect("refused").to_string();
    assert!(error.contains("tls_key"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keygen_keys_are_kept_only_as_hashes_and_a_wrong_secret_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _, ok) = run_binary(&["keygen", "api-key", "--id", "billing", "--tenant", "acme", "--scope", "append,query"]);
    assert!(ok);
    let secret = stdout.lines().next().unwrap().trim().to_string();
    assert!(secret.starts_with("billing."));
    let config_lines = stdout.lines().skip(1).collect::<Vec<_>>().join("\n");
    assert!(!config_lines.contains(&secret) && !config_lines.contains(secret.split_once('.').unwrap().1), "the config holds no secret");
    assert!(config_lines.contains(&sha256_hex(&secret)));
    let config_path = dir.path().join("auditum.toml");
    std::fs::write(&config_path, format!("meta_audit = true\n{config_lines}\n")).unwrap();
    let (effective, _, ok) = run_binary(&["config", "check", config_path.to_str().unwrap()]);
    assert!(ok && effective.contains("[[api_keys]]") && !effective.contains(&secret));

    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let (mut child, url) = spawn_binary(&data_dir, &["--config".to_string(), config_path.display().to_string()]).await;
    let append = |api_key: String| {
        let url = url.clone();
        async move {
            let options = ConnectOptions { api_key: Some(api_key), ..Default::default() };
            let mut client = pb::ingest_service_client::IngestServiceClient::new(auditum_client::channel(&url, &options).await.unwrap());
            client.append(request(vec![event("acme", "user.login", "u")])).await.map(|_| ())
        }
    };
    append(secret.clone()).await.unwrap();
    let wrong = format!("billing.{}", "A".repeat(43));
    assert_eq!(append(wrong.clone()).await.unwrap_err().code(), Code::Unauthenticated, "right id, wrong secret");
    assert_eq!(append("billing".into()).await.unwrap_err().code(), Code::Unauthenticated);
    // Scope and tenant still hold for the right secret.
    let options = ConnectOptions { api_key: Some(secret.clone()), ..Default::default() };
    let mut proof = pb::proof_service_client::ProofServiceClient::new(auditum_client::channel(&url, &options).await.unwrap());
    assert_eq!(proof.get_checkpoint(pb::GetCheckpointRequest { log: String::new() }).await.unwrap_err().code(), Code::PermissionDenied);

    // The CLI sends the key too.
    let (_, stderr, ok) =
        run_binary(&["append", "--server", &url, "--api-key", &secret, "--tenant", "acme", "--action", "a.b", "--actor-id", "x"]);
    assert!(ok, "{stderr}");
    let (_, stderr, ok) = run_binary(&["append", "--server", &url, "--tenant", "acme", "--action", "a.b", "--actor-id", "x"]);
    assert!(!ok && stderr.contains("authorization: missing"), "{stderr}");

    child.kill().await.unwrap();
    let server_log = std::fs::read_to_string(data_dir.join("server.log")).unwrap();
    assert!(server_log.contains("wrong secret") && server_log.contains("billing"), "the refusal names the key id");
    assert!(!server_log.contains(&secret) && !server_log.contains(&wrong), "secrets are never logged");
}
