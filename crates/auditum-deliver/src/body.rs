//! What a sink receives (DESIGN §11). `json`: `{"sink": <name>, "events": [<§7 event object plus
//! "log">, …]}`, signed with `x-auditum-signature: sha256=<hex HMAC-SHA256(secret, body)>`.
//! `splunk_hec`: Splunk's HTTP Event Collector format, one JSON object per event.

use auditum_format::event::{COLUMN_NAMES, EventRecord, HASHED_COLUMNS};
use auditum_format::json::{self, write_string};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The §7 event object's members in the order their names sort ("log" among the stored
/// columns): [`write_event_object`] writes the object plus "log" with the bytes a
/// `serde_json::Value` of it gives (its objects sort their keys), without building a `Value` per
/// event, which the write path cannot afford for every streamed event.
struct Members {
    /// In output order: the column's index (None for "log"), and the bytes before its value
    /// (`"name":`, after a comma but for the first), rendered once.
    members: Vec<(Option<usize>, Vec<u8>)>,
}

static MEMBERS: std::sync::LazyLock<Members> = std::sync::LazyLock::new(|| {
    let mut names: Vec<(Option<usize>, &str)> = (0..HASHED_COLUMNS).map(|index| (Some(index), COLUMN_NAMES[index])).collect();
    names.push((None, "log"));
    names.sort_by_key(|(_, name)| *name);
    let members = names
        .into_iter()
        .enumerate()
        .map(|(position, (column, name))| {
            let mut prefix = if position == 0 { Vec::new() } else { vec![b','] };
            write_string(&mut prefix, name);
            prefix.push(b':');
            (column, prefix)
        })
        .collect();
    Members { members }
});

/// Appends the JSON text of the §7 event object of `record`, plus the log it is in, to `out`.
pub fn write_event_object(out: &mut Vec<u8>, record: &EventRecord, log: &str) {
    let values = record.column_values();
    out.push(b'{');
    for (column, prefix) in &MEMBERS.members {
        out.extend_from_slice(prefix);
        match column {
            Some(index) => json::write_column(out, COLUMN_NAMES[*index], &values[*index]),
            None => write_string(out, log),
        }
    }
    out.push(b'}');
}

pub fn json_body(sink: &str, log: &str, records: &[std::sync::Arc<EventRecord>]) -> Vec<u8> {
    // {"events":[…],"sink":…}: the keys in serde_json's (sorted) order, as before.
    let mut body = Vec::with_capacity(64 + records.iter().map(|record| record.encoded_len_hint() + 400).sum::<usize>());
    body.extend_from_slice(b"{\"events\":[");
    for (index, record) in records.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        write_event_object(&mut body, record, log);
    }
    body.extend_from_slice(b"],\"sink\":");
    write_string(&mut body, sink);
    body.push(b'}');
    body
}

/// `sha256=<hex>` of HMAC-SHA256(secret, body).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// HEC's event format: `time` in epoch seconds (µs precision), `source`, `sourcetype` and the
/// event; several objects per request, newline-separated (what `/services/collector/event` takes).
pub fn hec_body(log: &str, records: &[std::sync::Arc<EventRecord>]) -> Vec<u8> {
    // {"event":…,"host":…,"source":…,"sourcetype":…,"time":…}: sorted keys, as serde_json wrote them.
    let mut source = String::from("auditum:");
    source.push_str(log);
    let mut body = Vec::new();
    for record in records {
        body.extend_from_slice(b"{\"event\":");
        write_event_object(&mut body, record, log);
        body.extend_from_slice(b",\"host\":\"auditum\",\"source\":");
        write_string(&mut body, &source);
        body.extend_from_slice(b",\"sourcetype\":\"auditum:event\",\"time\":");
        let _ = serde_json::to_writer(&mut body, &(record.occurred_at as f64 / 1e6));
        body.extend_from_slice(b"}\n");
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reference form: the §7 event object plus "log", as a `Value`.
    fn event_object(record: &EventRecord, log: &str) -> serde_json::Value {
        let mut object = record.to_json();
        if let Some(map) = object.as_object_mut() {
            map.insert("log".into(), log.into());
        }
        object
    }

    fn record(seq: u64, reason: Option<&str>) -> std::sync::Arc<EventRecord> {
        std::sync::Arc::new(EventRecord {
            seq: auditum_format::event::Seq(seq),
            id: format!("e-{seq}"),
            tenant_id: "acme".into(),
            occurred_at: 1_764_000_000_123_456,
            received_at: -5,
            action: "user.login".into(),
            actor_id: "ada \"the\" \u{1F600}\n".into(),
            reason: reason.map(str::to_string),
            metadata: Some("{\"k\":[1,2]}".into()),
            ..Default::default()
        })
    }

    /// The bodies written directly are the bytes the `serde_json::Value` form gives.
    #[test]
    fn bodies_are_the_bytes_of_their_json_values() {
        let records = vec![record(0, None), record(u64::MAX, Some("\u{7}tab\there"))];
        let events: Vec<serde_json::Value> = records.iter().map(|record| event_object(record, "main-log")).collect();
        let expected = serde_json::json!({ "sink": "siem \"x\"", "events": events }).to_string();
        assert_eq!(String::from_utf8(json_body("siem \"x\"", "main-log", &records)).unwrap(), expected);
        let mut expected_hec = String::new();
        for record in &records {
            let object = serde_json::json!({
                "time": record.occurred_at as f64 / 1e6,
                "host": "auditum",
                "source": "auditum:main-log",
                "sourcetype": "auditum:event",
                "event": event_object(record, "main-log"),
            });
            expected_hec.push_str(&object.to_string());
            expected_hec.push('\n');
        }
        assert_eq!(String::from_utf8(hec_body("main-log", &records)).unwrap(), expected_hec);
        assert_eq!(String::from_utf8(json_body("s", "l", &[])).unwrap(), serde_json::json!({ "sink": "s", "events": [] }).to_string());
    }

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        let signature = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(signature, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
