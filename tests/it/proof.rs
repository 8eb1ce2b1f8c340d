//! Event and consistency proofs through the real ProofService, checked offline; every
//! corruption of a proof is rejected.

use crate::common::*;
use auditum_format::checkpoint::{Checkpoint, Signer, Verifier};
use auditum_format::merkle;
use auditum_format::proof;
use auditum_proto::pb;
use auditum_proto::pb::proof_service_client::ProofServiceClient;
use serde_json::Value;
use tonic::transport::Channel;

async fn proof_client(url: &str) -> ProofServiceClient<Channel> {
    ProofServiceClient::new(tonic::transport::Endpoint::from_shared(url.to_string()).unwrap().connect().await.unwrap())
}

async fn event_proof(client: &mut ProofServiceClient<Channel>, key: pb::get_event_proof_request::Key) -> Result<String, tonic::Status> {
    client
        .get_event_proof(pb::GetEventProofRequest { log: String::new(), key: Some(key) })
        .await
        .map(|response| response.into_inner().proof_json)
}

/// Applies `edit` to the parsed proof and returns it re-serialised.
fn edited(proof: &str, edit: impl FnOnce(&mut Value)) -> String {
    let mut value: Value = serde_json::from_str(proof).unwrap();
    edit(&mut value);
    serde_json::to_string(&value).unwrap()
}

fn flip_hex(hex_text: &str) -> String {
    let mut bytes = hex::decode(hex_text).unwrap();
    bytes[0] ^= 1;
    hex::encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_proofs_verify_offline_and_every_corruption_is_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let (running, mut client) = start(test_config(dir.path())).await;
    let url = format!("http://{}", running.addr);
    for round in 0..3 {
        let events = (0..(20 + round * 7))
            .map(|i| with_id(event(["acme", "globex"][i % 2], "user.login", "u"), &format!("id-{round}-{i}")))
            .collect();
        client.append(request(events)).await.unwrap();
        running.logs.by_name("default").unwrap().seal_now().await.unwrap();
    }
    let unsealed = client.append(request(vec![event("acme", "a", "u")])).await.unwrap().into_inner().results[0].seq;
    let verifier = running.logs.by_name("default").unwrap().verifier();
    let mut proofs = proof_client(&url).await;

    // Every sealed event's proof verifies, by seq.
    for seq in 0..unsealed {
        let text = event_proof(&mut proofs, pb::get_event_proof_request::Key::Seq(seq)).await.unwrap();
        let verified = proof::verify(&text, &verifier).unwrap_or_else(|error| panic!("seq {seq}: {error}"));
        assert_eq!(verified.event.seq.0, seq);
        assert_eq!(verified.checkpoint.size, 3);
    }
    // By id, the same document byte for byte.
    let by_seq = event_proof(&mut proofs, pb::get_event_proof_request::Key::Seq(25)).await.unwrap();
    let id = proof::verify(&by_seq, &verifier).unwrap().event.id;
    let by_id = event_proof(&mut proofs, pb::get_event_proof_request::Key::EventId(id)).await.unwrap();
    assert_eq!(by_id, by_seq);
    let document: Value = serde_json::from_str(&by_seq).unwrap();
    // Exactly the §7 fields (serde_json lists them sorted).
    let keys: Vec<&str> = document.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["batch", "checkpoint", "event", "leaf_hash", "ledger", "ledger_entry"]);

    // Errors: not sealed, unknown, ambiguous-free id not found.
    let status = event_proof(&mut proofs, pb::get_event_proof_request::Key::Seq(unsealed)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{}", status.message());
    assert!(status.message().contains("not sealed yet"));
    let status = event_proof(&mut proofs, pb::get_event_proof_request::Key::Seq(10_000)).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status = event_proof(&mut proofs, pb::get_event_proof_request::Key::EventId("nope".into())).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);

    // Every corruption is rejected.
    let text = by_seq.clone();
    let doc: Value = serde_json::from_str(&text).unwrap();
    let batch_path_len = doc["batch"]["path"].as_array().unwrap().len();
    let ledger_path_len = doc["ledger"]["path"].as_array().unwrap().len();
    assert!(batch_path_len >= 4 && ledger_path_len >= 1);
    let mut corruptions: Vec<(String, String)> = Vec::new();
    for i in 0..batch_path_len {
        corruptions.push((
            format!("batch path hash {i}"),
            edited(&text, |doc| doc["batch"]["path"][i] = Value::String(flip_hex(doc["batch"]["path"][i].as_str().unwrap()))),
        ));
    }
    for i in 0..ledger_path_len {
        corruptions.push((
            format!("ledger path hash {i}"),
            edited(&text, |doc| doc["ledger"]["path"][i] = Value::String(flip_hex(doc["ledger"]["path"][i].as_str().unwrap()))),
        ));
    }
    corruptions.push((
        "extra batch path hash".into(),
        edited(&text, |doc| doc["batch"]["path"].as_array_mut().unwrap().push(Value::String(hex::encode([7u8; 32])))),
    ));
    corruptions.push(("missing batch path hash".into(), edited(&text, |doc| drop(doc["batch"]["path"].as_array_mut().unwrap().pop()))));
    corruptions.push(("missing ledger path hash".into(), edited(&text, |doc| drop(doc["ledger"]["path"].as_array_mut().unwrap().pop()))));
    corruptions.push((
        "leaf index".into(),
        edited(&text, |doc| doc["batch"]["leaf_index"] = (doc["batch"]["leaf_index"].as_u64().unwrap() + 1).into()),
    ));
    corruptions.push(("out-of-range leaf index".into(), edited(&text, |doc| doc["batch"]["leaf_index"] = doc["batch"]["size"].clone())));
    corruptions
        .push(("batch size".into(), edited(&text, |doc| doc["batch"]["size"] = (doc["batch"]["size"].as_u64().unwrap() + 1).into())));
    corruptions.push(("batch index".into(), edited(&text, |doc| doc["batch"]["index"] = 0.into())));
    corruptions.push(("ledger size".into(), edited(&text, |doc| doc["ledger"]["size"] = 4.into())));
    corruptions.push((
        "ledger entry".into(),
        edited(&text, |doc| {
            doc["ledger_entry"] =
                Value::String(doc["ledger_entry"].as_str().unwrap().replace("\"tenants\":[\"acme\"", "\"tenants\":[\"acmf\""))
        }),
    ));
    corruptions.push((
        "ledger entry root".into(),
        edited(&text, |doc| {
            let entry = doc["ledger_entry"].as_str().unwrap().to_string();
            let root = entry.split("\"root\":\"").nth(1).unwrap()[..64].to_string();
            doc["ledger_entry"] = Value::String(entry.replace(&root, &flip_hex(&root)));
        }),
    ));
    corruptions.push((
        "checkpoint note".into(),
        edited(&text, |doc| doc["checkpoint"] = Value::String(doc["checkpoint"].as_str().unwrap().replacen("\n3\n", "\n4\n", 1))),
    ));
    let forged = {
        let note = Checkpoint::parse(doc["checkpoint"].as_str().unwrap()).unwrap();
        Signer::generate("auditum/default").unwrap().sign_checkpoint(note.size, &note.root)
    };
    corruptions.push(("checkpoint signed by another key".into(), edited(&text, |doc| doc["checkpoint"] = Value::String(forged.clone()))));
    corruptions.push(("event column".into(), edited(&text, |doc| doc["event"]["actor_id"] = Value::String("someone-else".into()))));
    corruptions.push((
        "event column and its leaf hash".into(),
        edited(&text, |doc| {
            doc["event"]["action"] = Value::String("user.logout".into());
            let record = auditum_format::event::EventRecord::from_json(&doc["event"]).unwrap();
            doc["leaf_hash"] = Value::String(hex::encode(record.leaf_hash()));
        }),
    ));
    corruptions
        .push(("leaf hash".into(), edited(&text, |doc| doc["leaf_hash"] = Value::String(flip_hex(doc["leaf_hash"].as_str().unwrap())))));
    corruptions.push(("unknown field".into(), edited(&text, |doc| doc["extra"] = Value::Bool(true))));
    for (what, corrupted) in &corruptions {
        assert!(proof::verify(corrupted, &verifier).is_err(), "corruption of the {what} must be rejected");
    }
    let other_key = Signer::generate("auditum/default").unwrap().verifier();
    assert!(proof::verify(&text, &other_key).is_err(), "a proof is only accepted under its pinned key");

    // The CLI saves exactly the document and verifies it offline.
    let saved = dir.path().join("proof.json");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
        .args(["proof", "--server", &url, "--seq", "25", "--out"])
        .arg(&saved)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), by_seq, "proof_json is byte for byte what `auditum proof` saves");
    let verifier_key = running.logs.by_name("default").unwrap().verifier_key();
    let verify_proof = |path: &std::path::Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_auditum"))
            .arg("verify-proof")
            .arg(path)
            .args(["--trusted-key", &verifier_key])
            .output()
            .unwrap()
    };
    let ok = verify_proof(&saved);
    assert!(
        ok.status.success() && String::from_utf8_lossy(&ok.stdout).starts_with("OK: event seq 25"),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let corrupted = dir.path().join("corrupted.json");
    std::fs::write(&corrupted, &corruptions[0].1).unwrap();
    let rejected = verify_proof(&corrupted);
    assert!(!rejected.status.success());
    assert!(String::from_utf8_lossy(&rejected.stdout).starts_with("REJECTED: batch path"), "{}", String::from_utf8_lossy(&rejected.stdout));

    // Consistency proofs between every pair of ledger sizes verify against the signed notes.
    let store = running.logs.by_name("default").unwrap().store().clone();
    let root_at = |size: u64| {
        let store = store.clone();
        let verifier = verifier.clone();
        async move {
            let note = store.get(&auditum_format::paths::checkpoint_note_key("default", size), None).await.unwrap();
            verifier.verify_checkpoint(std::str::from_utf8(&note).unwrap()).unwrap().root
        }
    };
    for old in 1..=3u64 {
        for new in old..=3u64 {
            let path: Vec<[u8; 32]> = proofs
                .get_consistency_proof(pb::GetConsistencyProofRequest { log: String::new(), old_size: old, new_size: new })
                .await
                .unwrap()
                .into_inner()
                .path
                .into_iter()
                .map(|hash| hash.try_into().unwrap())
                .collect();
            merkle::verify_consistency(old, new, &root_at(old).await, &root_at(new).await, &path).unwrap();
        }
    }
    let status =
        proofs.get_consistency_proof(pb::GetConsistencyProofRequest { log: String::new(), old_size: 0, new_size: 2 }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status.message().starts_with("old_size"), "{}", status.message());
    let status =
        proofs.get_consistency_proof(pb::GetConsistencyProofRequest { log: String::new(), old_size: 1, new_size: 9 }).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::OutOfRange);

    // VerifyLog streams progress and ends with a verdict.
    let mut stream = proofs.verify_log(pb::VerifyLogRequest { log: String::new() }).await.unwrap().into_inner();
    let mut last = None;
    while let Some(message) = stream.message().await.unwrap() {
        last = Some(message);
    }
    let last = last.unwrap();
    assert!(last.done && last.ok, "{last:?}");
    assert_eq!((last.entries_checked, last.events_checked), (3, unsealed));
    let checkpoint = proofs.get_checkpoint(pb::GetCheckpointRequest { log: String::new() }).await.unwrap().into_inner().checkpoint;
    assert_eq!(Verifier::parse(&verifier_key).unwrap().verify_checkpoint(&checkpoint).unwrap().size, 3);
    running.stop().await.unwrap();
}
