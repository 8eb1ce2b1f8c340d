//! How long the WAL writer can stall while the Append idempotency index grows: inserts 5,000,000
//! random ids (what 50 s of ingest at 100,000 events/s adds with the default 1 h window) in
//! groups of 10,000, as group commits do, and prints the slowest group against the median.
//! `cargo run --release -p auditum-engine --example idempotency_growth`. Results: BENCHMARKS.md.

use auditum_engine::log::idempotency::IdempotencyIndex;
use auditum_format::event::Seq;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

fn main() {
    const IDS: u64 = 5_000_000;
    const GROUP: u64 = 10_000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let mut index = IdempotencyIndex::new(Duration::from_secs(3600), IDS as usize);
    let mut groups_ms = Vec::new();
    let started = Instant::now();
    for group in 0..IDS / GROUP {
        let group_started = Instant::now();
        for seq in group * GROUP..(group + 1) * GROUP {
            let key: u128 = rng.r#gen();
            if index.get(key).is_none() {
                index.insert(key, Seq(seq), 0);
            }
        }
        groups_ms.push(group_started.elapsed().as_secs_f64() * 1e3);
    }
    let total = started.elapsed().as_secs_f64();
    let mut sorted = groups_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let slowest =
        groups_ms.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(at, ms)| (at as u64 * GROUP, *ms)).unwrap_or_default();
    println!(
        "{IDS} ids in {total:.2} s; groups of {GROUP}: median {:.2} ms, p99 {:.2} ms, slowest {:.1} ms (at {} ids)",
        sorted[sorted.len() / 2],
        sorted[sorted.len() * 99 / 100],
        slowest.1,
        slowest.0
    );
}
