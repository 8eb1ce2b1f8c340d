//! Legal hold (DESIGN §12) on moto in governance mode: `auditum hold set` puts Object Lock legal
//! hold on exactly the batch objects (and ledger entries) whose events overlap the range, and on
//! batches sealed later in it; a held object resists even a governance bypass delete; `hold
//! clear` releases; both are recorded in the archive; only an admin key may do it.

use crate::common::s3::{Moto, governed_config, runtime};
use crate::common::*;
use auditum_engine::auth::Scope;
use auditum_format::ledger::LedgerEntry;
use auditum_format::paths;
use auditum_format::time::rfc3339_micros;
use auditum_store::{self as store, ObjectStore};

const HOUR: i64 = 3_600_000_000;

/// `auditum hold COMMAND --tenant acme` over `range` with `key`: (stdout, stderr, success).
fn acme_hold(server: &str, command: &str, range: (&str, &str), reason: &str, key: &str) -> (String, String, bool) {
    let args = ["hold", command, "--server", server, "--api-key", key, "--tenant", "acme", "--since", range.0, "--until", range.1];
    run_binary(&[&args[..], &["--reason", reason]].concat())
}

/// (batch object held, ledger entry held) for each entry.
async fn held(store: &dyn ObjectStore, entries: &[LedgerEntry]) -> Vec<(bool, bool)> {
    let mut out = Vec::new();
    for entry in entries {
        let batch = store.head(&entry.object, entry.version.as_deref()).await.unwrap().legal_hold;
        let ledger_entry = store.head(&paths::ledger_entry_key("default", entry.index), None).await.unwrap().legal_hold;
        out.push((batch, ledger_entry));
    }
    out
}

async fn bypass_delete(moto: &Moto, entry: &LedgerEntry) -> Result<(), String> {
    moto.client()
        .await
        .delete_object()
        .bucket("vault")
        .key(format!("prod/{}", entry.object))
        .version_id(entry.version.clone().unwrap())
        .bypass_governance_retention(true)
        .send()
        .await
        .map(|_| ())
        .map_err(|error| format!("{error:?}"))
}

#[test]
fn hold_set_holds_exactly_the_overlapping_batches_and_clear_releases_them() {
    runtime().block_on(async {
        let moto = Moto::start().await;
        moto.locked_bucket("vault").await;
        let dir = tempfile::tempdir().unwrap();
        let url = "s3://vault/prod";
        let mut config = governed_config(dir.path(), &moto, url);
        config.api_keys = vec![
            key_config("writer", "*", &[Scope::Append, Scope::Query]),
            key_config("legal", "*", &[Scope::Admin]),
            key_config("acme-admin", "acme", &[Scope::Admin]),
        ];
        let running = auditum_server::start(config).await.unwrap();
        let server = format!("http://{}", running.addr);
        let writer = keyed_channel(&server, "writer").await;
        let mut client = auditum_proto::pb::ingest_service_client::IngestServiceClient::new(writer);
        let log = running.logs.by_name("default").unwrap().clone();

        // Three batches, three hours apart in occurred_at.
        let now = now_micros();
        let at = |hours_ago: i64| now - hours_ago * HOUR;
        for hours_ago in [3, 2, 1] {
            let mut events = vec![event("acme", "invoice.paid", "u1"), event("globex", "invoice.paid", "u2")];
            for event in &mut events {
                event.occurred_at = Some(timestamp(at(hours_ago)));
            }
            client.append(request(events)).await.unwrap();
            log.seal_now().await.unwrap();
        }
        let store = store::open(url, &moto.options()).await.unwrap();
        let entries = ledger_entries(store.as_ref(), "default").await;
        assert_eq!(entries.len(), 3);

        // The middle batch's range, through the command line.
        let since = rfc3339_micros(at(2) - 60_000_000);
        let until = rfc3339_micros(at(2) + 60_000_000);
        let legal = secret("legal");
        let hold = |command: &str, extra: &[&str], key: &str| {
            let base = ["hold", command, "--server", &server, "--api-key", key, "--log", "default", "--since", &since, "--until", &until];
            run_binary(&[&base[..], extra].concat())
        };
        // Only an admin key may; a tenant-bound admin key only for its tenant.
        let (_, stderr, success) = hold("set", &["--reason", "case 42"], &secret("writer"));
        assert!(!success && stderr.contains("PermissionDenied"), "{stderr}");
        let (_, stderr, success) = hold("set", &["--reason", "case 42"], &secret("acme-admin"));
        assert!(!success && stderr.contains("must name it"), "{stderr}");
        let (_, stderr, success) = hold("set", &["--reason", "case 42", "--tenant", "globex"], &secret("acme-admin"));
        assert!(!success && stderr.contains("PermissionDenied"), "{stderr}");
        let (_, stderr, success) = hold("set", &["--reason", ""], &legal);
        assert!(!success && stderr.contains("reason"), "{stderr}");

        let (stdout, stderr, success) = hold("set", &["--reason", "case 42: Acme v. Globex"], &legal);
        assert!(success, "{stdout}{stderr}");
        assert!(stdout.contains("1 batch objects and their ledger entries held"), "{stdout}");
        assert_eq!(held(store.as_ref(), &entries).await, [(false, false), (true, true), (false, false)]);

        // A held version resists even the governance bypass (an unheld one does not: below).
        let refused = bypass_delete(&moto, &entries[1]).await.unwrap_err();
        assert!(refused.contains("AccessDenied"), "{refused}");

        // A late event in the held range is sealed into a batch held from its first byte.
        let mut late = event("acme", "invoice.refunded", "u3");
        late.occurred_at = Some(timestamp(at(2)));
        client.append(request(vec![late])).await.unwrap();
        log.seal_now().await.unwrap();
        let entries = ledger_entries(store.as_ref(), "default").await;
        assert_eq!(held(store.as_ref(), &entries[3..]).await, [(true, true)]);

        // Setting the same scope again changes nothing but holds again; the list shows one hold.
        let (stdout, _, success) = hold("set", &["--reason", "case 42: Acme v. Globex"], &legal);
        assert!(success && stdout.contains("already active") && stdout.contains("2 batch objects"), "{stdout}");
        let (stdout, _, success) = run_binary(&["hold", "list", "--server", &server, "--api-key", &legal]);
        assert!(success && stdout.lines().count() == 1, "{stdout}");
        assert!(
            stdout.contains("2 batch objects") && stdout.contains("case 42: Acme v. Globex") && stdout.contains("by legal"),
            "{stdout}"
        );

        // Overlapping holds: acme's own key holds acme's batches over a wider range (batches 1 to
        // 3), and the operator holds acme's part of the middle range too.
        let wide = (rfc3339_micros(at(2) - 60_000_000), rfc3339_micros(at(1) + 60_000_000));
        let (stdout, stderr, success) = acme_hold(&server, "set", (&wide.0, &wide.1), "acme's own", &secret("acme-admin"));
        assert!(success && stdout.contains("3 batch objects"), "{stdout}{stderr}");
        let (stdout, stderr, success) = acme_hold(&server, "set", (&since, &until), "regulator request", &legal);
        assert!(success && stdout.contains("2 batch objects"), "{stdout}{stderr}");
        assert_eq!(held(store.as_ref(), &entries).await, [(false, false), (true, true), (true, true), (true, true)]);
        // acme's key sees only acme's holds, and cannot clear the one the operator set on its data.
        let (stdout, _, success) = run_binary(&["hold", "list", "--server", &server, "--api-key", &secret("acme-admin")]);
        assert!(success && stdout.lines().count() == 2 && !stdout.contains("case 42"), "{stdout}");
        let (_, stderr, success) = acme_hold(&server, "clear", (&since, &until), "not yours", &secret("acme-admin"));
        assert!(!success && stderr.contains("PermissionDenied") && stderr.contains("only a platform key may clear it"), "{stderr}");

        // The hold survives a restart (its record is in the bucket) and is cleared.
        running.stop().await.unwrap();
        let mut config = governed_config(dir.path(), &moto, url);
        config.api_keys = vec![
            key_config("legal", "*", &[Scope::Admin]),
            key_config("acme-admin", "acme", &[Scope::Admin]),
            key_config("reader", "*", &[Scope::Query]),
        ];
        let running = auditum_server::start(config).await.unwrap();
        let server = format!("http://{}", running.addr);
        let hold = |command: &str, extra: &[&str]| {
            let base = ["hold", command, "--server", &server, "--api-key", &legal, "--since", &since, "--until", &until];
            run_binary(&[&base[..], extra].concat())
        };
        // The log-wide hold ends, but its batches stay held by the others.
        let (stdout, stderr, success) = hold("clear", &["--reason", "case 42 settled"]);
        assert!(success, "{stdout}{stderr}");
        assert!(stdout.contains("0 batch objects released, 2 stay held"), "{stdout}");
        assert_eq!(held(store.as_ref(), &entries).await, [(false, false), (true, true), (true, true), (true, true)]);
        let (stdout, _, success) = acme_hold(&server, "clear", (&since, &until), "regulator satisfied", &legal);
        assert!(success && stdout.contains("0 batch objects released, 2 stay held"), "{stdout}");
        let (stdout, _, success) = acme_hold(&server, "clear", (&wide.0, &wide.1), "done", &secret("acme-admin"));
        assert!(success && stdout.contains("3 batch objects released, 0 stay held"), "{stdout}");
        assert!(held(store.as_ref(), &entries).await.iter().all(|held| *held == (false, false)));
        let (_, stderr, success) = hold("clear", &["--reason", "again"]);
        assert!(!success && stderr.contains("NotFound") && stderr.contains("no active legal hold"), "{stderr}");

        // Both are on the record, with the range, the reason and the objects' count.
        let reader = keyed_channel(&server, "reader").await;
        let mut query = auditum_proto::pb::query_service_client::QueryServiceClient::new(reader);
        let holds_of = |tenant: &str| auditum_proto::pb::QueryRequest {
            filter: Some(auditum_proto::pb::EventFilter {
                tenant_id: tenant.into(),
                actions: vec!["auditum.legal_hold.*".into()],
                ..Default::default()
            }),
            page_size: 100,
            ..Default::default()
        };
        let recorded = |page: auditum_proto::pb::QueryResponse| -> Vec<(String, String, String)> {
            page.events
                .iter()
                .map(|stored| {
                    let event = stored.event.as_ref().unwrap();
                    let metadata = auditum_proto::convert::struct_to_canonical_json(event.metadata.as_ref(), |_| false).unwrap().unwrap();
                    (event.action.clone(), event.outcome.as_ref().unwrap().result().as_str_name().to_string(), metadata)
                })
                .collect()
        };
        let log_wide = recorded(query.query(holds_of("auditum")).await.unwrap().into_inner());
        let actions: Vec<&str> = log_wide.iter().map(|(action, _, _)| action.as_str()).collect();
        assert_eq!(
            actions,
            [
                "auditum.legal_hold.set",
                "auditum.legal_hold.set",
                "auditum.legal_hold.list",
                "auditum.legal_hold.cleared",
                "auditum.legal_hold.cleared"
            ],
            "{log_wide:#?}"
        );
        let outcomes: Vec<&str> = log_wide.iter().map(|(_, outcome, _)| outcome.as_str()).collect();
        // The second clear found no hold: a failure, on the record too.
        assert_eq!(outcomes[3..], ["OUTCOME_RESULT_SUCCESS", "OUTCOME_RESULT_FAILURE"]);
        assert!(outcomes[..3].iter().all(|outcome| *outcome == "OUTCOME_RESULT_SUCCESS"));
        let (set, cleared) = (&log_wide[0].2, &log_wide[3].2);
        assert!(set.contains("\"batch_objects\":1") && set.contains("case 42: Acme v. Globex"), "{set}");
        assert!(set.contains(&format!("\"since\":\"{since}\"")) && set.contains(&format!("\"until\":\"{until}\"")), "{set}");
        assert!(
            cleared.contains("\"batch_objects\":0") && cleared.contains("\"still_held\":2") && cleared.contains("case 42 settled"),
            "{cleared}"
        );
        // acme's holds, and the tenant-bound key's refused attempts, are on acme's record.
        let acme = recorded(query.query(holds_of("acme")).await.unwrap().into_inner());
        assert_eq!(acme.iter().filter(|(_, outcome, _)| outcome == "OUTCOME_RESULT_DENIED").count(), 3, "{acme:#?}");
        let acme_actions: Vec<&str> =
            acme.iter().filter(|(_, outcome, _)| outcome.ends_with("SUCCESS")).map(|(action, _, _)| action.as_str()).collect();
        assert_eq!(
            acme_actions,
            [
                "auditum.legal_hold.set",
                "auditum.legal_hold.set",
                "auditum.legal_hold.list",
                "auditum.legal_hold.cleared",
                "auditum.legal_hold.cleared"
            ]
        );
        running.stop().await.unwrap();
        // Released, the batch is as deletable as one never held (the bypass works).
        bypass_delete(&moto, &entries[0]).await.unwrap();
        bypass_delete(&moto, &entries[1]).await.unwrap();
    });
}
