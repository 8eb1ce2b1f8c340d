//! deploy/aws/athena.yaml and deploy/aws/queries/ stay true to the archive: the four auditor
//! questions, run by DuckDB over a real sealed archive, return exactly the events they should
//! (and not another tenant's, an older one, a successful login, an address outside the range, a
//! service's export…); the template's saved queries are the `.athena.sql` files; and the Glue
//! table's columns are a sealed batch's Parquet columns, in order, with `date` and `hour` as the
//! partitions of the batch keys. `cfn-lint` checks the template itself (scripts/test).

use crate::common::*;
use auditum_proto::pb;
use serde_yaml::Value;
use std::path::{Path, PathBuf};

/// Each question: its file name in deploy/aws/queries/ and its NamedQuery in the template.
const QUESTIONS: [(&str, &str); 4] = [
    ("account-changes", "AccountChangesQuery"),
    ("setting-changes", "SettingChangesQuery"),
    ("failed-logins", "FailedLoginsQuery"),
    ("employee-exports", "EmployeeExportsQuery"),
];

/// The batches directory the README's DuckDB queries read (a local server's default data dir).
const README_BATCHES: &str = "auditum-data/store/default/batches";

const DAY: i64 = 86_400_000_000;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn queries_dir() -> PathBuf {
    repo().join("deploy/aws/queries")
}

fn query_file(name: &str, dialect: &str) -> String {
    let path = queries_dir().join(format!("{name}.{dialect}.sql"));
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

fn template() -> Value {
    let path = repo().join("deploy/aws/athena.yaml");
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Whitespace runs collapsed to one space: the layout of a query carries no meaning.
fn normalized(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A query without its leading `--` comment lines (the README shows the query under its own prose).
fn body(query: &str) -> String {
    query.lines().skip_while(|line| line.starts_with("--")).collect::<Vec<_>>().join("\n")
}

fn micros(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_micros()
}

/// An event of actor `usr_1` (a user) with a fixed id and occurred_at.
fn at(id: &str, tenant: &str, action: &str, occurred_at: i64) -> pb::AuditEvent {
    let mut event = with_id(event(tenant, action, "usr_1"), id);
    event.occurred_at = Some(timestamp(occurred_at));
    event
}

fn on(mut event: pb::AuditEvent, target_type: &str, target_id: &str) -> pb::AuditEvent {
    event.target = Some(pb::Target { r#type: target_type.into(), id: target_id.into(), name: String::new() });
    event
}

fn ended(mut event: pb::AuditEvent, result: pb::OutcomeResult) -> pb::AuditEvent {
    event.outcome.as_mut().unwrap().result = result as i32;
    event
}

fn from_ip(mut event: pb::AuditEvent, ip: &str) -> pb::AuditEvent {
    event.context = Some(pb::Context { source_ip: ip.into(), user_agent: "Mozilla/5.0".into(), ..Default::default() });
    event
}

fn by(mut event: pb::AuditEvent, actor_type: pb::ActorType) -> pb::AuditEvent {
    event.actor.as_mut().unwrap().r#type = actor_type as i32;
    event
}

fn changed(mut event: pb::AuditEvent, key: &str, before: &str, after: &str) -> pb::AuditEvent {
    let object = |text: &str| prost_types::Struct {
        fields: [(key.to_string(), prost_types::Value { kind: Some(prost_types::value::Kind::StringValue(text.into())) })]
            .into_iter()
            .collect(),
    };
    event.before = Some(object(before));
    event.after = Some(object(after));
    event
}

/// The events each question is tried on, and the ids each must return, oldest first. Every
/// other event is there to be left out.
fn archive_events(now: i64) -> (Vec<pb::AuditEvent>, [Vec<&'static str>; 4]) {
    use pb::ActorType::{ApiKey, Service, Unspecified};
    use pb::OutcomeResult::{Denied, Failure};
    let events = vec![
        // All changes to account acct-123 of tenant acme in the last 30 days.
        changed(on(at("acct-plan", "acme", "account.plan.changed", now - 2 * DAY), "account", "acct-123"), "plan", "team", "enterprise"),
        ended(on(at("acct-owner-denied", "acme", "account.owner.transferred", now - 29 * DAY), "account", "acct-123"), Denied),
        on(at("acct-too-old", "acme", "account.plan.changed", now - 45 * DAY), "account", "acct-123"),
        on(at("acct-other-tenant", "globex", "account.plan.changed", now - DAY), "account", "acct-123"),
        on(at("acct-other-account", "acme", "account.plan.changed", now - DAY), "account", "acct-999"),
        on(at("acct-not-an-account", "acme", "user.updated", now - DAY), "user", "acct-123"),
        // Who changed a setting in the last 90 days.
        changed(on(at("set-mfa", "acme", "settings.mfa.updated", now - 3 * DAY), "setting", "mfa.required"), "required", "no", "yes"),
        changed(
            on(at("set-by-target", "acme", "tenant.config.changed", now - 10 * DAY), "setting", "session.timeout"),
            "minutes",
            "30",
            "15",
        ),
        ended(on(at("set-denied", "acme", "settings.mfa.updated", now - DAY), "setting", "mfa.required"), Denied),
        on(at("set-other-tenant", "globex", "settings.mfa.updated", now - DAY), "setting", "mfa.required"),
        on(at("set-too-old", "acme", "settings.mfa.updated", now - 100 * DAY), "setting", "mfa.required"),
        on(at("set-lookalike", "acme", "user.settings.viewed", now - DAY), "user", "usr_2"),
        // Failed logins from 10.0.0.0/8 in the last 30 days.
        ended(from_ip(at("login-failed-in-range", "acme", "user.login", now - 3_600_000_000), "10.1.2.3"), Failure),
        ended(from_ip(at("login-denied-range-end", "acme", "user.login", now - 20 * DAY), "10.255.255.255"), Denied),
        from_ip(at("login-succeeded", "acme", "user.login", now - DAY), "10.1.2.4"),
        ended(from_ip(at("login-above-range", "acme", "user.login", now - DAY), "11.0.0.0"), Failure),
        ended(from_ip(at("login-below-range", "acme", "user.login", now - DAY), "9.255.255.255"), Failure),
        ended(from_ip(at("login-prefix-lookalike", "acme", "user.login", now - DAY), "100.64.0.1"), Failure),
        ended(from_ip(at("login-ipv6", "acme", "user.login", now - DAY), "2001:db8::a"), Failure),
        ended(at("login-no-address", "acme", "user.login", now - DAY), Failure),
        ended(from_ip(at("login-other-tenant", "globex", "user.login", now - DAY), "10.0.0.1"), Failure),
        ended(from_ip(at("login-too-old", "acme", "user.login", now - 40 * DAY), "10.0.0.2"), Failure),
        ended(from_ip(at("login-other-action", "acme", "user.login.mfa", now - DAY), "10.0.0.3"), Failure),
        // Exports by employees (actor type user) in Q4 2026, every outcome.
        on(at("export-quarter-start", "acme", "report.exported", micros("2026-10-01T00:00:00Z")), "report", "rep-1"),
        ended(at("export-denied", "acme", "data.export.requested", micros("2026-11-15T12:00:00Z")), Denied),
        by(at("export-by-service", "acme", "report.exported", micros("2026-10-10T00:00:00Z")), Service),
        by(at("export-by-api-key", "acme", "report.exported", micros("2026-10-11T00:00:00Z")), ApiKey),
        by(at("export-no-actor-type", "acme", "report.exported", micros("2026-10-12T00:00:00Z")), Unspecified),
        at("export-previous-quarter", "acme", "report.exported", micros("2026-09-30T23:59:59.999999Z")),
        at("export-other-tenant", "globex", "report.exported", micros("2026-10-13T00:00:00Z")),
    ];
    let expected = [
        vec!["acct-owner-denied", "acct-plan"],
        vec!["set-by-target", "set-mfa"],
        vec!["login-denied-range-end", "login-failed-in-range"],
        vec!["export-quarter-start", "export-denied"],
    ];
    (events, expected)
}

/// Runs each SQL text with DuckDB (python3 -m pip install duckdb); returns the `id` column of each.
fn duckdb_ids(queries: &[String]) -> Vec<Vec<String>> {
    let script = r#"
import duckdb, json, sys
results = []
for sql in sys.argv[1:]:
    rel = duckdb.sql(sql)
    column = rel.columns.index("id")
    results.append([row[column] for row in rel.fetchall()])
print(json.dumps(results))
"#;
    let output = std::process::Command::new("python3").arg("-c").arg(script).args(queries).output().expect("python3 runs");
    assert!(output.status.success(), "duckdb (pip install duckdb) failed: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The Glue type a Parquet column read as `data_type` must be declared as.
fn glue_type(name: &str, data_type: &arrow::datatypes::DataType) -> &'static str {
    use arrow::datatypes::{DataType, TimeUnit};
    match data_type {
        DataType::UInt64 | DataType::Int64 => "bigint",
        DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => "timestamp",
        DataType::FixedSizeBinary(_) | DataType::Binary => "binary",
        DataType::Utf8 => "string",
        other => panic!("column {name}: no Glue type chosen for {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditor_queries_return_exactly_their_events_and_the_glue_table_matches_a_sealed_batch() {
    let dir = tempfile::tempdir().unwrap();
    let config = auditum_server::config::Config { meta_audit: false, ..test_config(dir.path()) };
    let (running, mut ingest) = start(config).await;
    let (events, expected) = archive_events(now_micros());
    // Two batches, so the queries read more than one file.
    let (first, second) = events.split_at(events.len() / 2);
    let log = running.logs.by_name("default").unwrap().clone();
    for half in [first, second] {
        ingest.append(request(half.to_vec())).await.unwrap();
        log.seal_now().await.unwrap();
    }
    running.stop().await.unwrap();

    // The DuckDB queries, over the batches as the server wrote them.
    let store = dir.path().join("store");
    let batches = store.join("default/batches");
    let queries: Vec<String> =
        QUESTIONS.iter().map(|(name, _)| query_file(name, "duckdb").replace("{batches}", batches.to_str().unwrap())).collect();
    let got = duckdb_ids(&queries);
    for ((name, _), (got, expected)) in QUESTIONS.iter().zip(got.iter().zip(&expected)) {
        assert_eq!(got, expected, "{name}.duckdb.sql");
    }

    // The Glue table's columns are a sealed batch's, in file order, with Glue's types for them.
    let batch_files: Vec<PathBuf> =
        files_under(&batches).into_iter().filter(|path| path.extension().is_some_and(|extension| extension == "parquet")).collect();
    assert_eq!(batch_files.len(), 2, "{batch_files:?}");
    let bytes = bytes::Bytes::from(std::fs::read(&batch_files[0]).unwrap());
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
    let file_columns: Vec<(String, String)> = reader
        .schema()
        .fields()
        .iter()
        .map(|field| (field.name().clone(), glue_type(field.name(), field.data_type()).to_string()))
        .collect();
    let names: Vec<&str> = file_columns.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names, auditum_format::event::COLUMN_NAMES, "docs/FORMAT.md, Stored columns");

    let template = template();
    let table = &template["Resources"]["Table"];
    assert_eq!(table["Type"].as_str(), Some("AWS::Glue::Table"));
    let input = &table["Properties"]["TableInput"];
    let declared = |list: &Value| -> Vec<(String, String)> {
        list.as_sequence()
            .unwrap()
            .iter()
            .map(|column| (column["Name"].as_str().unwrap().to_string(), column["Type"].as_str().unwrap().to_string()))
            .collect()
    };
    assert_eq!(declared(&input["StorageDescriptor"]["Columns"]), file_columns, "the Glue columns are the batch's, in order");
    let partitions = declared(&input["PartitionKeys"]);
    assert_eq!(partitions, [("date".to_string(), "string".to_string()), ("hour".to_string(), "string".to_string())]);

    // The projected location of a batch's partition is where the server put it: the key is
    // <log>/batches/date=YYYY-MM-DD/hour=HH/<file>, under the store's prefix when there is one.
    let key = batch_files[0].strip_prefix(&store).unwrap().to_str().unwrap().to_string();
    let partition_dir = &key[..key.rfind('/').unwrap() + 1];
    let value = |segment: &str| partition_dir.split('/').find_map(|part| part.strip_prefix(&format!("{segment}="))).unwrap().to_string();
    let (date, hour) = (value("date"), value("hour"));
    assert!(chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_ok() && date.len() == 10, "{key}");
    assert!(hour.len() == 2 && hour.parse::<u32>().is_ok_and(|hour| hour < 24), "{key}");
    let parameters = &input["Parameters"];
    let parameter = |name: &str| parameters[name].as_str().unwrap_or_else(|| panic!("table parameter {name}")).to_string();
    assert_eq!(parameter("projection.enabled"), "true");
    assert_eq!(parameter("projection.date.type"), "date");
    assert_eq!(parameter("projection.date.format"), "yyyy-MM-dd", "Java's pattern for {date}");
    assert_eq!(parameter("projection.date.range"), "${ProjectionStartDate},NOW");
    assert_eq!(parameter("projection.date.interval"), "1");
    assert_eq!(parameter("projection.date.interval.unit"), "DAYS");
    assert_eq!(parameter("projection.hour.type"), "integer");
    assert_eq!(parameter("projection.hour.range"), "0,23");
    assert_eq!(parameter("projection.hour.digits"), "2", "hours are two digits: {hour}");
    let location = |branch: &Value, prefix: &str| {
        branch
            .as_str()
            .unwrap()
            .replace("${ArchiveBucket}", "archive")
            .replace("${StorePrefix}", prefix)
            .replace("${LogName}", "default")
            .replace("${!date}", &date)
            .replace("${!hour}", &hour)
    };
    let template_location = &parameters["storage.location.template"];
    let base = &input["StorageDescriptor"]["Location"];
    for (branch, prefix) in [(1usize, "prod/"), (2, "")] {
        let condition = template_location[0].as_str();
        assert_eq!(condition, Some("HasStorePrefix"));
        let store_prefix = prefix.trim_end_matches('/');
        assert_eq!(location(&template_location[branch], store_prefix), format!("s3://archive/{prefix}{partition_dir}"));
        assert_eq!(location(&base[branch], store_prefix), format!("s3://archive/{prefix}default/batches/"));
    }
}

#[test]
fn the_saved_queries_are_the_athena_files_and_every_query_prunes_by_date_and_tenant() {
    let template = template();
    let resources = template["Resources"].as_mapping().unwrap();
    let named: Vec<&str> = resources
        .iter()
        .filter(|(_, resource)| resource["Type"].as_str() == Some("AWS::Athena::NamedQuery"))
        .map(|(name, _)| name.as_str().unwrap())
        .collect();
    assert_eq!(named, QUESTIONS.map(|(_, resource)| resource), "one saved query per question");
    // Defaults, so that the files run as they are against a stack deployed with defaults.
    let default = |parameter: &str| template["Parameters"][parameter]["Default"].as_str().unwrap().to_string();
    let table = format!("{}.{}", default("DatabaseName"), default("TableName"));
    assert_eq!(table, "auditum.events");
    let readme = normalized(&std::fs::read_to_string(repo().join("README.md")).unwrap());
    for (name, resource) in QUESTIONS {
        let properties = &template["Resources"][resource]["Properties"];
        assert_eq!(properties["Database"].as_str(), Some("Database"), "{resource} runs against the stack's database");
        assert_eq!(properties["WorkGroup"].as_str(), Some("WorkGroup"), "{resource} is saved in the stack's workgroup");
        let saved = properties["QueryString"].as_str().unwrap().replace("${DatabaseName}.${TableName}", &table);
        let athena = query_file(name, "athena");
        assert_eq!(normalized(&saved), normalized(&athena), "{resource}'s QueryString is {name}.athena.sql");
        let duckdb = query_file(name, "duckdb");
        assert!(duckdb.contains("read_parquet('{batches}/**/*.parquet', hive_partitioning = true, hive_types_autocast = false)"));
        for (dialect, query) in [("athena", &athena), ("duckdb", &duckdb)] {
            // date is the partition: a bound on it is what lets Athena's projection (and DuckDB's
            // Hive pruning) skip the other days; every question is one tenant's.
            assert!(query.contains("WHERE \"date\" >= "), "{name}.{dialect}.sql prunes by date");
            assert!(query.contains("AND tenant_id = 'acme'"), "{name}.{dialect}.sql is one tenant's");
        }
        // The README shows both, copy-paste ready (DuckDB on a local server's archive).
        assert!(readme.contains(&normalized(&body(&athena))), "README.md shows {name}.athena.sql");
        assert!(readme.contains(&normalized(&body(&duckdb).replace("{batches}", README_BATCHES))), "README.md shows {name}.duckdb.sql");
    }
    let mut files: Vec<String> =
        std::fs::read_dir(queries_dir()).unwrap().map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect();
    files.sort();
    let mut expected: Vec<String> =
        QUESTIONS.iter().flat_map(|(name, _)| [format!("{name}.athena.sql"), format!("{name}.duckdb.sql")]).collect();
    expected.sort();
    assert_eq!(files, expected, "deploy/aws/queries/ holds the four questions in two dialects");
}
