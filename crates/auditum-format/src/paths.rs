//! Every object key of docs/FORMAT.md, Object layout is built here and nowhere else.

use chrono::{DateTime, Utc};

/// `{log}/batches/date=YYYY-MM-DD/hour=HH/{index:012}-{attempt:08x}.parquet`, dated by seal time.
pub fn batch_key(log: &str, index: u64, attempt: u32, sealed_at: DateTime<Utc>) -> String {
    format!("{log}/batches/date={}/hour={}/{index:012}-{attempt:08x}.parquet", sealed_at.format("%Y-%m-%d"), sealed_at.format("%H"))
}

/// Prefix under which every batch of a log lives.
pub fn batches_prefix(log: &str) -> String {
    format!("{log}/batches/")
}

/// `{log}/ledger/{index:012}.json`.
pub fn ledger_entry_key(log: &str, index: u64) -> String {
    format!("{log}/ledger/{index:012}.json")
}

/// Prefix under which every ledger entry of a log lives.
pub fn ledger_prefix(log: &str) -> String {
    format!("{log}/ledger/")
}

/// Index of a ledger entry from its key, if the key has the ledger entry shape.
pub fn ledger_index_from_key(log: &str, key: &str) -> Option<u64> {
    twelve_digits(key.strip_prefix(&ledger_prefix(log))?.strip_suffix(".json")?)
}

/// The number a `{n:012}` file name holds; None for any other shape.
fn twelve_digits(name: &str) -> Option<u64> {
    if name.len() != 12 || !name.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    name.parse().ok()
}

/// `{log}/checkpoints/{size:012}.note`.
pub fn checkpoint_note_key(log: &str, size: u64) -> String {
    format!("{log}/checkpoints/{size:012}.note")
}

/// Prefix under which every historical checkpoint of a log lives.
pub fn checkpoints_prefix(log: &str) -> String {
    format!("{log}/checkpoints/")
}

/// Size of a historical checkpoint from its key.
pub fn checkpoint_size_from_key(log: &str, key: &str) -> Option<u64> {
    twelve_digits(key.strip_prefix(&checkpoints_prefix(log))?.strip_suffix(".note")?)
}

/// `{log}/checkpoint`: the latest checkpoint, the only mutable object.
pub fn latest_checkpoint_key(log: &str) -> String {
    format!("{log}/checkpoint")
}

/// Prefix under which a log's legal-hold records live (docs/FORMAT.md, Legal holds).
pub fn holds_prefix(log: &str) -> String {
    format!("{log}/holds/")
}

/// `{log}/holds/{id}.json`: a legal hold as it was set.
pub fn hold_key(log: &str, id: &str) -> String {
    format!("{log}/holds/{id}.json")
}

/// `{log}/holds/{id}.cleared.json`: the record that the hold was cleared.
pub fn hold_cleared_key(log: &str, id: &str) -> String {
    format!("{log}/holds/{id}.cleared.json")
}

/// What a hold key names: `(id, cleared)`; None for any other shape.
pub fn hold_from_key<'a>(log: &str, key: &'a str) -> Option<(&'a str, bool)> {
    let name = key.strip_prefix(&holds_prefix(log))?;
    if let Some(id) = name.strip_suffix(".cleared.json") {
        return Some((id, true));
    }
    Some((name.strip_suffix(".json")?, false))
}

/// Everything of a log that lifecycle rules must never move to an archive class nor expire:
/// the server reads it at startup and a verifier needs it for as long as any batch exists.
pub fn kept_forever_prefixes(log: &str) -> Vec<String> {
    vec![ledger_prefix(log), checkpoints_prefix(log), latest_checkpoint_key(log), holds_prefix(log)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_have_the_design_shape() {
        let sealed_at = Utc.with_ymd_and_hms(2025, 11, 23, 12, 5, 0).unwrap();
        assert_eq!(batch_key("default", 0, 0x0a1b2c3d, sealed_at), "default/batches/date=2025-11-23/hour=12/000000000000-0a1b2c3d.parquet");
        assert_eq!(ledger_entry_key("default", 7), "default/ledger/000000000007.json");
        assert_eq!(ledger_index_from_key("default", "default/ledger/000000000007.json"), Some(7));
        assert_eq!(ledger_index_from_key("default", "default/ledger/7.json"), None);
        assert_eq!(checkpoint_note_key("default", 12), "default/checkpoints/000000000012.note");
        assert_eq!(checkpoint_size_from_key("default", "default/checkpoints/000000000012.note"), Some(12));
        assert_eq!(latest_checkpoint_key("default"), "default/checkpoint");
        assert_eq!(hold_key("default", "h1"), "default/holds/h1.json");
        assert_eq!(hold_from_key("default", &hold_cleared_key("default", "h1")), Some(("h1", true)));
        assert_eq!(hold_from_key("default", &hold_key("default", "h1")), Some(("h1", false)));
        assert_eq!(hold_from_key("default", "default/ledger/000000000007.json"), None);
    }
}
