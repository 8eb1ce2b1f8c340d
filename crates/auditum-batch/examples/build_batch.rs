//! Times a seal's CPU work, `build_batch` (sort, leaf hashes, Merkle root, Parquet), on 200,000
//! events of 20 tenants, six times, each on a fresh thread as the server's sealer does:
//! `cargo run --release -p auditum-batch --example build_batch [plain|encrypted]`. `encrypted`
//! (the default) fills the 7 fields a keyring encrypts with ciphertext-like text; `plain` with
//! short repeated values. Prints each run's milliseconds and the batch's SHA-256 (which must not
//! change when only the speed should). Results: BENCHMARKS.md, "Erasure".

use auditum_batch::{BatchLayout, build_batch};
use auditum_format::event::{EventRecord, Seq};
use rand::{Rng, SeedableRng};
use std::sync::Arc;
fn main() {
    let encrypted = match std::env::args().nth(1).as_deref() {
        None | Some("encrypted") => true,
        Some("plain") => false,
        Some(other) => {
            eprintln!("unknown mode {other:?}: plain or encrypted");
            std::process::exit(2);
        }
    };
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut field = |len: usize, plain: &str| -> Option<String> {
        if !encrypted {
            return Some(plain.to_string());
        }
        let mut text = String::from("auditum:enc:v1:0123456789abcdef0123456789abcdef:");
        for _ in 0..len {
            text.push(B64[rng.gen_range(0..B64.len())] as char);
        }
        Some(text)
    };
    let records: Vec<Arc<EventRecord>> = (0..200_000u64)
        .map(|n| {
            Arc::new(EventRecord {
                seq: Seq(n),
                id: format!("0190b3c4-{n:08x}-7000-8000-000000000000"),
                tenant_id: format!("tenant-{}", n % 20),
                occurred_at: 1_700_000_000_000_000 + n as i64 * 1000 - (n as i64 % 7) * 5_000,
                received_at: 1_700_000_000_000_000 + n as i64 * 1000,
                action: format!("document.action{}", n % 30),
                actor_id: format!("user-{}", n % 2000),
                actor_type: Some("user".into()),
                actor_name: field(40, "Ada Lovelace"),
                target_type: Some("document".into()),
                target_id: Some(format!("doc-{}", n % 5000)),
                target_name: field(40, "Quarterly plan.xlsx"),
                outcome: "success".into(),
                reason: field(40, "quarterly access review"),
                request_id: Some(format!("req-{n}")),
                user_agent: field(120, "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120"),
                service: Some("docs".into()),
                before: field(100, "{\"role\":\"viewer\"}"),
                after: field(100, "{\"role\":\"admin\"}"),
                metadata: field(80, "{\"ticket\":4411}"),
                ..Default::default()
            })
        })
        .collect();
    for _ in 0..6 {
        let records = records.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let built = build_batch(&records, BatchLayout::default()).unwrap();
            println!("{:.0} ms, batch sha256 {}…", started.elapsed().as_secs_f64() * 1e3, &hex::encode(built.sha256)[..12]);
        })
        .join()
        .unwrap();
    }
}
