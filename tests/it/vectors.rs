//! The test vectors (`testdata/vectors/`, explained in docs/FORMAT.md): RFC 6962 roots and
//! auditum's own event leaves, batch root, ledger entry hashes and signed checkpoint, reproduced
//! byte for byte. `scripts/check-vectors` keeps them equal to the project's shared copy.

use auditum_format::checkpoint::{Signer, Verifier};
use auditum_format::event::EventRecord;
use auditum_format::ledger::{self, LedgerEntry};
use auditum_format::merkle;
use serde_json::Value;
use std::path::PathBuf;

fn vectors(name: &str) -> Value {
    let dir = std::env::var("AUDITUM_TESTVECTORS")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/vectors"));
    let path = dir.join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    serde_json::from_str(&text).expect("vector file is json")
}

/// Leaf hashes of the RFC 6962 vector inputs.
fn rfc_leaves(vectors: &Value) -> Vec<[u8; 32]> {
    vectors["leaf_inputs_hex"]
        .as_array()
        .unwrap()
        .iter()
        .map(|input| merkle::leaf_hash(&hex::decode(input.as_str().unwrap()).unwrap()))
        .collect()
}

fn hex32(value: &Value) -> [u8; 32] {
    hex::decode(value.as_str().expect("hex string")).expect("hex").try_into().expect("32 bytes")
}

#[test]
fn rfc6962_roots_match_with_rs_merkle_and_the_recursive_reference() {
    let vectors = vectors("rfc6962.json");
    let leaves = rfc_leaves(&vectors);
    assert_eq!(merkle::root(&[]), hex32(&vectors["empty_root_hex"]));
    assert_eq!(merkle::root_recursive(&[]), hex32(&vectors["empty_root_hex"]));
    let roots = vectors["roots_by_size_hex"].as_object().unwrap();
    assert_eq!(roots.len(), 8);
    for (size, root) in roots {
        let size: usize = size.parse().unwrap();
        assert_eq!(merkle::root(&leaves[..size]), hex32(root), "rs_merkle root at size {size}");
        assert_eq!(merkle::root_recursive(&leaves[..size]), hex32(root), "recursive root at size {size}");
    }
}

#[test]
fn rfc6962_inclusion_and_consistency_proofs_match_the_vectors() {
    let vectors = vectors("rfc6962.json");
    let leaves = rfc_leaves(&vectors);
    let path_of = |value: &Value| value.as_array().unwrap().iter().map(hex32).collect::<Vec<_>>();
    let proofs = vectors["inclusion_proofs"].as_array().unwrap();
    assert!(!proofs.is_empty());
    for proof in proofs {
        let (index, size) = (proof["leaf_index"].as_u64().unwrap(), proof["tree_size"].as_u64().unwrap());
        let path = path_of(&proof["path_hex"]);
        assert_eq!(merkle::inclusion_path(&leaves[..size as usize], index as usize).unwrap(), path, "inclusion {index} of {size}");
        let root = merkle::root(&leaves[..size as usize]);
        merkle::verify_inclusion(&leaves[index as usize], index, size, &path, &root).unwrap();
    }
    let proofs = vectors["consistency_proofs"].as_array().unwrap();
    assert!(!proofs.is_empty());
    for proof in proofs {
        let (old, new) = (proof["size1"].as_u64().unwrap(), proof["size2"].as_u64().unwrap());
        let path = path_of(&proof["path_hex"]);
        assert_eq!(merkle::consistency_path(&leaves[..new as usize], old as usize).unwrap(), path, "consistency {old} -> {new}");
        let (old_root, new_root) = (merkle::root(&leaves[..old as usize]), merkle::root(&leaves[..new as usize]));
        merkle::verify_consistency(old, new, &old_root, &new_root, &path).unwrap();
    }
}

#[test]
fn auditum_event_leaves_batch_root_ledger_entry_and_checkpoint() {
    let vectors = vectors("auditum.json");
    let mut leaves = Vec::new();
    for event in vectors["events"].as_array().unwrap() {
        let record = EventRecord::from_json(&event["columns"]).expect("columns parse");
        assert_eq!(hex::encode(record.canonical_bytes()), event["canonical_hex"].as_str().unwrap());
        assert_eq!(record.leaf_hash(), hex32(&event["leaf_hash_hex"]));
        assert_eq!(record.to_json(), event["columns"], "to_json inverts from_json");
        leaves.push(record.leaf_hash());
    }
    let root = merkle::root(&leaves);
    assert_eq!(root, hex32(&vectors["batch_root_hex_of_both_events_in_order"]));

    let entry_text = vectors["ledger_entry_text"].as_str().unwrap();
    let entry = LedgerEntry::parse(entry_text).expect("entry parses");
    assert_eq!(entry.to_json_text(), entry_text);
    assert_eq!(entry.root, root);
    let entry_hash = ledger::entry_hash(entry_text.as_bytes());
    assert_eq!(entry_hash, hex32(&vectors["ledger_entry_hash_hex"]));
    // Version 2 adds retain_until; its hash is computed the same way over its body, and the
    // writer reproduces its bytes from the parsed entry.
    let v2_text = vectors["ledger_entry_v2_text"].as_str().unwrap();
    let v2 = LedgerEntry::parse(v2_text).expect("v2 entry parses");
    assert_eq!((v2.format_version(), v2.retain_until()), (2, Some(1_984_652_060_000_000)));
    assert_eq!(v2.to_json_text(), v2_text);
    assert_eq!(
        LedgerEntry { retention: ledger::Retention::RetainUntil(Some(1_984_652_060_000_000)), ..entry.clone() }.to_json_text(),
        v2_text
    );
    assert_eq!(ledger::entry_hash(v2_text.as_bytes()), hex32(&vectors["ledger_entry_v2_hash_hex"]));

    let checkpoint = &vectors["checkpoint"];
    let seed = hex32(&checkpoint["ed25519_private_seed_hex"]);
    let signer = Signer::from_seed("auditum/default", seed).unwrap();
    assert_eq!(signer.verifier_key(), checkpoint["verifier_key"].as_str().unwrap());
    let ledger_root = merkle::root(&[entry_hash]);
    let note = signer.sign_checkpoint(1, &ledger_root);
    assert_eq!(note, checkpoint["note"].as_str().unwrap());
    let verifier = Verifier::parse(checkpoint["verifier_key"].as_str().unwrap()).unwrap();
    let parsed = verifier.verify_checkpoint(&note).unwrap();
    assert_eq!((parsed.size, parsed.root), (1, ledger_root));
}

/// The proof document worked through in docs/FORMAT.md (built from the vectors alone) verifies
/// with the library, and fails when one number in it is changed.
#[test]
fn the_event_proof_worked_in_format_md_verifies() {
    let vectors = vectors("auditum.json");
    let events = vectors["events"].as_array().unwrap();
    let document = |size: u64| {
        serde_json::json!({
            "event": events[1]["columns"], "leaf_hash": events[1]["leaf_hash_hex"],
            "batch": {"index": 0, "leaf_index": 1, "size": size, "path": [events[0]["leaf_hash_hex"]]},
            "ledger_entry": vectors["ledger_entry_text"], "ledger": {"size": 1, "path": []},
            "checkpoint": vectors["checkpoint"]["note"],
        })
        .to_string()
    };
    let verifier = Verifier::parse(vectors["checkpoint"]["verifier_key"].as_str().unwrap()).unwrap();
    let verified = auditum_format::proof::verify(&document(2), &verifier).expect("FORMAT.md's proof verifies");
    assert_eq!(verified.event.seq.0, 0);
    assert!(auditum_format::proof::verify(&document(3), &verifier).is_err(), "a changed batch size is rejected");
}
