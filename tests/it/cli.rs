//! The `auditum` binary's client commands, run for real: append (flags and JSON lines on
//! stdin), keygen and demo.

use crate::common::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn auditum() -> Command {
    Command::new(env!("CARGO_BIN_EXE_auditum"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn append_from_flags_and_from_json_lines_on_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let (running, _client) = start(test_config(dir.path())).await;
    let server = format!("http://{}", running.addr);

    let output = tokio::task::spawn_blocking({
        let server = server.clone();
        move || {
            auditum()
                .args([
                    "append",
                    "--server",
                    &server,
                    "--tenant",
                    "acme",
                    "--action",
                    "user.login",
                    "--actor-id",
                    "u1",
                    "--actor-type",
                    "user",
                ])
                .args(["--id", "cli-1", "--metadata", r#"{"api_token":"abc","n":1}"#])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "seq=0 id=cli-1 log=default duplicate=false");

    let lines = concat!(
        r#"{"id":"cli-1","tenant_id":"acme","action":"user.login","actor":{"id":"u1"},"outcome":{"result":"success"}}"#,
        "\n",
        r#"{"tenant_id":"globex","occurred_at":"2026-01-02T03:04:05.123456Z","action":"invoice.paid","actor":{"id":"svc","type":"service"},"outcome":"denied","context":{"source_ip":"10.0.0.1"}}"#,
        "\n\n"
    );
    let output = tokio::task::spawn_blocking(move || {
        let mut child =
            auditum().args(["append", "--server", &server, "--file", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(lines.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let results: Vec<&str> = stdout.lines().collect();
    assert_eq!(results[0], "seq=0 id=cli-1 log=default duplicate=true");
    assert!(results[1].starts_with("seq=1 id=") && results[1].ends_with("duplicate=false"), "{stdout}");

    let stored = running.logs.by_name("default").unwrap().unsealed_events();
    assert_eq!(stored.len(), 2);
    assert_eq!(stored[0].metadata.as_deref(), Some(r#"{"api_token":"[REDACTED]","n":1}"#));
    assert_eq!(stored[1].occurred_at, 1_767_323_045_123_456);
    assert_eq!((stored[1].actor_type.as_deref(), stored[1].outcome.as_str()), (Some("service"), "denied"));
    running.stop().await.unwrap();
}

#[test]
fn append_reports_bad_json_with_its_line_number() {
    let mut child = auditum()
        .args(["append", "--server", "http://127.0.0.1:9", "--file", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"{\"tenant_id\":\"a\"}\n{\"tenant\":\"typo\"}\n").unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("-:2: tenant: unknown field"), "{stderr}");
}

#[test]
fn keygen_writes_a_private_key_0600_and_its_verifier_key() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("log.key");
    let output = auditum().args(["keygen", "--origin", "auditum/test", "--out"]).arg(&key).output().unwrap();
    assert!(output.status.success());
    assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
    let printed = String::from_utf8_lossy(&output.stdout).trim().to_string();
    assert_eq!(std::fs::read_to_string(dir.path().join("log.vkey")).unwrap().trim(), printed);
    auditum_format::checkpoint::Verifier::parse(&printed).unwrap();
    assert!(!String::from_utf8_lossy(&output.stdout).contains("PRIVATE"), "the private key is not printed when written to a file");
}

#[test]
fn demo_seals_signs_and_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let output = auditum().args(["demo", "--events", "2000", "--data-dir"]).arg(dir.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("ledger head (1 entries)"), "{stdout}");
    assert!(stdout.contains("\"count\":2000"), "{stdout}");
    assert!(stdout.contains("\n\u{2014} auditum/default "), "{stdout}");
    assert!(stdout.contains("offline verification: log default: 1 ledger entries, 2000 events"), "{stdout}");
    assert!(stdout.contains(": OK"), "{stdout}");
    // The printed verify command works on its own.
    let verifier_key = std::fs::read_to_string(dir.path().join("keys/default.vkey")).unwrap();
    let verify = auditum()
        .args(["verify", "--store", &format!("file://{}", dir.path().join("store").display()), "--trusted-key", verifier_key.trim()])
        .output()
        .unwrap();
    assert!(verify.status.success(), "{}", String::from_utf8_lossy(&verify.stdout));
}

#[test]
fn config_check_prints_the_effective_config_and_names_a_bad_field() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, "seal_interval = \"5s\"\n[[logs]]\nname = \"bigco\"\ntenants = [\"bigco\"]\n").unwrap();
    let output = auditum().args(["config", "check"]).arg(&good).env("AUDITUM_BATCH_MAX_EVENTS", "777").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("seal_interval = \"5000ms\""), "{stdout}");
    assert!(stdout.contains("batch_max_events = 777"), "environment overrides apply: {stdout}");
    assert!(stdout.contains("name = \"bigco\"") && stdout.contains("name = \"default\""), "{stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[logs]]\nname = \"Big Co\"\n").unwrap();
    let output = auditum().args(["config", "check"]).arg(&bad).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("logs[0].name"), "{}", String::from_utf8_lossy(&output.stderr));
    let unknown = dir.path().join("unknown.toml");
    std::fs::write(&unknown, "seal_intervall = \"5s\"\n").unwrap();
    let output = auditum().args(["config", "check"]).arg(&unknown).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("seal_intervall"), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn config_check_validates_sinks_alerts_and_streams_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let check = |text: &str, secret: Option<&str>| {
        let path = dir.path().join("delivery.toml");
        std::fs::write(&path, text).unwrap();
        let mut command = auditum();
        command.args(["config", "check"]).arg(&path).env_remove("AUDITUM_TEST_SECRET");
        if let Some(secret) = secret {
            command.env("AUDITUM_TEST_SECRET", secret);
        }
        let output = command.output().unwrap();
        (String::from_utf8_lossy(&output.stdout).to_string(), String::from_utf8_lossy(&output.stderr).to_string(), output.status.success())
    };
    let sink =
        "[[sinks]]\nname = \"secops\"\nurl = \"https://siem.example/hook\"\nformat = \"json\"\nsecret_env = \"AUDITUM_TEST_SECRET\"\n";
    let rule = "[[alerts]]\nname = \"brute-force\"\ntenant = \"*\"\nactions = [\"user.login\"]\noutcome = \"failure\"\ngroup_by = \"actor_id\"\nwindow = \"5m\"\nthreshold = 5\nsinks = [\"secops\"]\n";
    let stream = "[[streams]]\nname = \"siem\"\ntenant = \"*\"\nsink = \"secops\"\n";
    let (stdout, stderr, success) = check(&format!("{sink}{rule}{stream}"), Some("s3cr3t"));
    assert!(success, "{stderr}");
    assert!(
        stdout.contains("[[alerts]]") && stdout.contains("window = \"300000ms\"") && stdout.contains("cooldown = \"300000ms\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("secret_env = \"AUDITUM_TEST_SECRET\"") && !stdout.contains("s3cr3t"),
        "the secret is named, never shown: {stdout}"
    );
    let (_, stderr, success) = check(&format!("{sink}{rule}"), None);
    assert!(!success && stderr.contains("sinks[0].secret_env") && stderr.contains("AUDITUM_TEST_SECRET is not set"), "{stderr}");
    let (_, stderr, success) = check(&format!("{sink}{}", rule.replace("[\"secops\"]", "[\"nowhere\"]")), Some("x"));
    assert!(!success && stderr.contains("alerts[0].sinks[0]: no sink named \"nowhere\""), "{stderr}");
    let (_, stderr, success) = check(&format!("{sink}{}", rule.replace("\"5m\"", "\"soon\"")), Some("x"));
    assert!(!success && stderr.contains("soon"), "{stderr}");
    let (_, stderr, success) = check(&format!("{sink}{}", rule.replace("\"5m\"", "\"100ms\"")), Some("x"));
    assert!(!success && stderr.contains("alerts[0].window"), "{stderr}");
    let (_, stderr, success) = check(&format!("{}{stream}", sink.replace("https://siem.example", "http://siem.example")), Some("x"));
    assert!(!success && stderr.contains("sinks[0].url: plain http is allowed only to a loopback address"), "{stderr}");
}

#[test]
fn config_check_shows_each_tenants_effective_retention() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("retention.toml");
    std::fs::write(
        &config,
        concat!(
            "store = \"s3://audit/prod\"\nretention_mode = \"governance\"\nretention_days = 365\n",
            "[[logs]]\nname = \"hipaa\"\ntenants = [\"clinic-a\", \"clinic-b\"]\nretention_mode = \"compliance\"\nretention_days = 2190\n",
            "[[logs]]\nname = \"smb\"\ntenants = [\"shop\"]\n",
        ),
    )
    .unwrap();
    let output = auditum().args(["config", "check"]).arg(&config).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for line in [
        "#   clinic-a            log hipaa: compliance, 2190 days",
        "#   clinic-b            log hipaa: compliance, 2190 days",
        "#   shop                log smb: governance, 365 days",
        "#   every other tenant  log default: governance, 365 days",
    ] {
        assert!(stdout.contains(line), "{line:?} in:\n{stdout}");
    }
    // The output is still a config file that checks.
    let again = dir.path().join("again.toml");
    std::fs::write(&again, stdout.as_bytes()).unwrap();
    assert!(auditum().args(["config", "check"]).arg(&again).output().unwrap().status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_and_export_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut client) = start(test_config(dir.path())).await;
    let server = format!("http://{}", running.addr);
    let mut events: Vec<auditum_proto::pb::AuditEvent> = (0..30).map(|i| event("acme", "user.login", &format!("user-{}", i % 3))).collect();
    events.push(event("globex", "user.login", "user-0"));
    client.append(request(events)).await.unwrap();
    running.logs.by_name("default").unwrap().seal_now().await.unwrap();

    let out = dir.path().join("acme.csv");
    let output = tokio::task::spawn_blocking({
        let (server, out) = (server.clone(), out.clone());
        move || {
            let query = auditum()
                .args(["query", "--server", &server, "--tenant", "acme", "--actor", "user-1", "--json", "--limit", "5"])
                .output()
                .unwrap();
            let table =
                auditum().args(["query", "--server", &server, "--tenant", "acme", "--action", "user.*", "--desc"]).output().unwrap();
            let export =
                auditum().args(["export", "--server", &server, "--tenant", "acme", "--format", "csv", "--out"]).arg(&out).output().unwrap();
            let bad = auditum().args(["query", "--server", &server, "--tenant", "acme", "--since", "yesterday"]).output().unwrap();
            (query, table, export, bad)
        }
    })
    .await
    .unwrap();
    let (query, table, export, bad) = output;
    assert!(query.status.success(), "{}", String::from_utf8_lossy(&query.stderr));
    let lines: Vec<serde_json::Value> =
        String::from_utf8_lossy(&query.stdout).lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(lines.len(), 5, "--limit stops after 5 of the 10 matching events");
    assert!(lines.iter().all(|line| line["actor_id"] == "user-1" && line["tenant_id"] == "acme" && line["sealed"] == true));
    assert!(table.status.success());
    let table = String::from_utf8_lossy(&table.stdout);
    assert_eq!(table.lines().count(), 31, "a header and the 30 acme events:\n{table}");
    assert!(table.lines().nth(1).unwrap().contains("user.login") && table.contains("batch 0"));

    assert!(export.status.success(), "{}", String::from_utf8_lossy(&export.stderr));
    let csv = std::fs::read(&out).unwrap();
    assert_eq!(String::from_utf8_lossy(&csv).lines().count(), 31, "a header row and 30 rows");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{}.summary.json", out.display())).unwrap()).unwrap();
    assert_eq!(summary["rows"], 30);
    assert_eq!(summary["sha256"], hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&csv)));
    assert!(summary["checkpoint"].as_str().unwrap().starts_with("auditum/default\n1\n"));
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--since"));
    running.stop().await.unwrap();
}
