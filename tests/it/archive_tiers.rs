//! Archive tiers (DESIGN §12) on moto: a batch in the GLACIER class answers the reads that need
//! it with FAILED_PRECONDITION naming it and the restore command, reads the catalog prunes it
//! from are answered, and after `auditum restore` it is read. Lifecycle rules: `lifecycle plan`
//! for a seven-year log, `lifecycle apply` keeping other rules, and `serve` refusing a bucket
//! whose rule would expire batches before their retention ends.

use crate::common::s3::{Moto, runtime};
use crate::common::*;
use auditum_format::time::rfc3339_micros;
use auditum_proto::pb;
use auditum_server::config::LogConfig;
use auditum_store::{StorageClass, lifecycle};

#[test]
fn a_glacier_batch_is_named_until_restored_and_pruned_reads_are_unaffected() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.versioned_bucket("cold").await;
        let dir = tempfile::tempdir().unwrap();
        let url = "s3://cold/audit";
        let mut config = test_config(dir.path());
        config.store = Some(url.to_string());
        config.s3_endpoint = Some(moto.endpoint.clone());
        config.logs = vec![LogConfig { name: "default".into(), batch_storage_class: Some(StorageClass::Glacier), ..Default::default() }];
        let (running, mut client) = start(config).await;
        let server = format!("http://{}", running.addr);
        let log = running.logs.by_name("default").unwrap().clone();

        let sealed_at = now_micros();
        let appended = client
            .append(request(vec![event("acme", "user.login", "needle"), event("acme", "user.login", "hay")]))
            .await
            .unwrap()
            .into_inner();
        let needle_id = appended.results[0].id.clone();
        log.seal_now().await.unwrap();
        let entry = log.ledger_snapshot().entries[0].clone();
        let head = log.store().head(&entry.object, entry.version.as_deref()).await.unwrap();
        assert_eq!(head.storage_class, Some(StorageClass::Glacier));
        assert!(head.is_archived());
        // Unsealed events of another tenant, which the archived batch does not list.
        client.append(request(vec![event("globex", "user.login", "g1")])).await.unwrap();

        let channel = tonic::transport::Endpoint::from_shared(server.clone()).unwrap().connect().await.unwrap();
        let mut query = pb::query_service_client::QueryServiceClient::new(channel.clone());
        let needle = |tenant: &str, actor: &str, since: Option<i64>| pb::QueryRequest {
            filter: Some(pb::EventFilter {
                tenant_id: tenant.into(),
                actor_id: actor.into(),
                start_time: since.map(timestamp),
                ..Default::default()
            }),
            page_size: 10,
            ..Default::default()
        };
        let refused = query.query(needle("acme", "needle", None)).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::FailedPrecondition, "{refused:?}");
        assert!(refused.message().contains(&format!("batch 0 ({}, GLACIER)", entry.object)), "{}", refused.message());
        assert!(refused.message().contains("auditum restore --log default --since "), "{}", refused.message());

        // Reads the catalog prunes the batch from are answered: another tenant, a later range.
        let globex = query.query(needle("globex", "", None)).await.unwrap().into_inner();
        assert_eq!(globex.events.len(), 1);
        let later = query.query(needle("acme", "", Some(now_micros() + 3_600_000_000))).await.unwrap().into_inner();
        assert!(later.events.is_empty());

        // Export and proofs that need it are refused the same way.
        let mut exports = pb::query_service_client::QueryServiceClient::new(channel.clone());
        let export = pb::ExportRequest {
            filter: Some(pb::EventFilter { tenant_id: "acme".into(), ..Default::default() }),
            format: pb::ExportFormat::Jsonl as i32,
            ..Default::default()
        };
        let mut stream = exports.export(export.clone()).await.unwrap().into_inner();
        let export_error = loop {
            match stream.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("the export ended without the archived batch's error"),
                Err(status) => break status,
            }
        };
        assert_eq!(export_error.code(), tonic::Code::FailedPrecondition, "{export_error:?}");
        assert!(
            export_error.message().contains(&entry.object) && export_error.message().contains("auditum restore"),
            "{}",
            export_error.message()
        );
        let mut proofs = pb::proof_service_client::ProofServiceClient::new(channel.clone());
        let proof = pb::GetEventProofRequest { log: String::new(), key: Some(pb::get_event_proof_request::Key::Seq(0)) };
        let proof_error = proofs.get_event_proof(proof.clone()).await.unwrap_err();
        assert_eq!(proof_error.code(), tonic::Code::FailedPrecondition, "{proof_error:?}");
        let by_id =
            pb::GetEventProofRequest { log: String::new(), key: Some(pb::get_event_proof_request::Key::EventId(needle_id.clone())) };
        let by_id_error = proofs.get_event_proof(by_id).await.unwrap_err();
        assert_eq!(by_id_error.code(), tonic::Code::FailedPrecondition, "{by_id_error:?}");
        assert!(by_id_error.message().contains(&entry.object), "{}", by_id_error.message());
        // A legal hold needs Object Lock: this log has no retention, so it is refused before
        // anything is written (a held batch put on this bucket would be refused and stop sealing).
        let hold =
            ["hold", "set", "--server", &server, "--since", "2020-01-01T00:00:00Z", "--until", "2030-01-01T00:00:00Z", "--reason", "x"];
        let (_, stderr, success) = run_binary(&hold);
        assert!(!success && stderr.contains("FailedPrecondition") && stderr.contains("legal hold needs Object Lock"), "{stderr}");
        assert!(log.active_holds().is_empty());

        // The offline verifier cannot check it either, and says so (not tampering, not verified).
        let key = log.verifier_key();
        let verify = ["verify", "--store", url, "--trusted-key", &key, "--s3-endpoint", &moto.endpoint, "--quiet"];
        let (stdout, _, success) = run_binary(&verify);
        assert!(
            !success && stdout.contains(&format!("PROBLEM archived: {}", entry.object)) && stdout.contains("auditum restore --log default"),
            "{stdout}"
        );

        // The command the message names restores it (moto restores at once), then it is read.
        let since = rfc3339_micros(sealed_at - 60_000_000);
        let until = rfc3339_micros(now_micros() + 60_000_000);
        let restore = ["restore", "--server", &server, "--log", "default", "--since", &since, "--until", &until, "--days", "2"];
        let (stdout, stderr, success) = run_binary(&restore);
        assert!(success, "{stdout}{stderr}");
        assert!(stdout.contains(&format!("restore requested: {}", entry.object)), "{stdout}");
        assert!(stdout.contains("1 restores started, 0 already in progress, 0 already restored, 0 batches not archived"), "{stdout}");
        let found = query.query(needle("acme", "needle", None)).await.unwrap().into_inner();
        assert_eq!(found.events.len(), 1);
        assert!(proofs.get_event_proof(proof).await.is_ok());
        let (stdout, _, success) = run_binary(&restore);
        assert!(success && stdout.contains("0 restores started, 0 already in progress, 1 already restored"), "{stdout}");
        let (stdout, stderr, success) = run_binary(&verify);
        assert!(success, "restored, it verifies: {stdout}{stderr}");
        running.stop().await.unwrap();
    });
}

#[test]
fn lifecycle_plan_for_a_seven_year_log_and_apply_keeps_other_rules() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("vault").await;
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("auditum.toml");
        std::fs::write(
            &config,
            format!(
                "store = \"s3://vault/prod\"\ns3_endpoint = \"{}\"\n\n[[logs]]\nname = \"compliance\"\ntenants = [\"bank\"]\nretention_mode = \"compliance\"\nretention_days = 2555\narchive_after_days = 90\narchive_storage_class = \"DEEP_ARCHIVE\"\nexpire_after_days = 2557\n",
                moto.endpoint
            ),
        )
        .unwrap();
        let config = config.display().to_string();
        let (stdout, stderr, success) = run_binary(&["lifecycle", "plan", "--config", &config, "--log", "compliance"]);
        assert!(success, "{stdout}{stderr}");
        let plan: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            plan,
            serde_json::json!({"Rules": [
                {"ID": "auditum:prod/compliance/batches/:archive", "Status": "Enabled", "Filter": {"Prefix": "prod/compliance/batches/"},
                 "Transitions": [{"Days": 90, "StorageClass": "DEEP_ARCHIVE"}]},
                {"ID": "auditum:prod/compliance/batches/:expire", "Status": "Enabled", "Filter": {"Prefix": "prod/compliance/batches/"},
                 "Expiration": {"Days": 2557}, "NoncurrentVersionExpiration": {"NoncurrentDays": 1}},
            ]})
        );
        assert!(stderr.contains("retention 2555 days (compliance); archived to DEEP_ARCHIVE after 90 days; expired after 2557 days"), "{stderr}");

        // A rule of another team on the bucket is kept by apply.
        let client = moto.client().await;
        let other = aws_sdk_s3::types::LifecycleRule::builder()
            .id("other-team-tmp")
            .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
            .filter(aws_sdk_s3::types::LifecycleRuleFilter::builder().prefix("tmp/").build())
            .expiration(aws_sdk_s3::types::LifecycleExpiration::builder().days(7).build())
            .build()
            .unwrap();
        let store = auditum_store::S3Store::open("s3://vault/prod", &moto.options()).await.unwrap();
        store.put_lifecycle_rules(vec![other]).await.unwrap();
        let (stdout, stderr, success) = run_binary(&["lifecycle", "apply", "--config", &config, "--log", "compliance"]);
        assert!(success, "{stdout}{stderr}");
        assert!(stdout.contains("wrote 2 rules for log compliance (other rules kept: 1)"), "{stdout}");
        let rules = store.lifecycle_rules().await.unwrap();
        let written: Vec<serde_json::Value> = rules.iter().map(lifecycle::rule_json).collect();
        assert_eq!(written.len(), 3, "{written:#?}");
        assert!(written.iter().any(|rule| rule["ID"] == "other-team-tmp"));
        assert!(written.contains(&plan["Rules"][0]) && written.contains(&plan["Rules"][1]), "{written:#?}");
        drop(client);
    });
}

#[test]
fn serve_refuses_a_bucket_rule_that_expires_batches_before_their_retention() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("vault").await;
        let store = auditum_store::S3Store::open("s3://vault", &moto.options()).await.unwrap();
        let cleanup = aws_sdk_s3::types::LifecycleRule::builder()
            .id("cleanup-after-30-days")
            .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
            .filter(aws_sdk_s3::types::LifecycleRuleFilter::builder().prefix("").build())
            .expiration(aws_sdk_s3::types::LifecycleExpiration::builder().days(30).build())
            .build()
            .unwrap();
        store.put_lifecycle_rules(vec![cleanup]).await.unwrap();

        // The real binary, with a 365-day log on that bucket.
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().display().to_string();
        let args = [
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "",
            "--data-dir",
            &data_dir,
            "--store",
            "s3://vault/prod",
            "--s3-endpoint",
            &moto.endpoint,
            "--retention-mode",
            "governance",
            "--retention-days",
            "365",
        ];
        let output = tokio::time::timeout(
            std::time::Duration::from_secs(60),
            tokio::process::Command::new(env!("CARGO_BIN_EXE_auditum")).args(args).kill_on_drop(true).output(),
        )
        .await
        .expect("serve stops at once on a refused bucket")
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains("\"cleanup-after-30-days\" expires objects under \"\" after 30 days")
                && stderr.contains("365 days (retention_days)")
                && stderr.contains("auditum lifecycle plan --log default"),
            "{stderr}"
        );

        // Scoped to the batches and after the retention, the same bucket serves.
        let scoped = aws_sdk_s3::types::LifecycleRule::builder()
            .id("expire-after-retention")
            .status(aws_sdk_s3::types::ExpirationStatus::Enabled)
            .filter(aws_sdk_s3::types::LifecycleRuleFilter::builder().prefix("prod/default/batches/").build())
            .expiration(aws_sdk_s3::types::LifecycleExpiration::builder().days(400).build())
            .build()
            .unwrap();
        store.put_lifecycle_rules(vec![scoped]).await.unwrap();
        let mut config = test_config(dir.path());
        config.store = Some("s3://vault/prod".into());
        config.s3_endpoint = Some(moto.endpoint.clone());
        config.retention_mode = Some(auditum_store::RetentionMode::Governance);
        config.retention_days = Some(365);
        let (running, _) = start(config).await;
        running.stop().await.unwrap();
    });
}
