//! What a sink receives (DESIGN §11). `json`: `{"sink": <name>, "events": [<§7 event object plus
//! "log">, …]}`, signed with `x-auditum-signature: sha256=<hex HMAC-SHA256(secret, body)>`.
//! `splunk_hec`: Splunk's HTTP Event Collector format, one JSON object per event.

use auditum_format::event::EventRecord;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The §7 event object of a record, plus the log it is in.
pub fn event_object(record: &EventRecord, log: &str) -> serde_json::Value {
    let mut object = record.to_json();
    if let Some(map) = object.as_object_mut() {
        map.insert("log".into(), log.into());
    }
    object
}

pub fn json_body(sink: &str, log: &str, records: &[std::sync::Arc<EventRecord>]) -> Vec<u8> {
    let events: Vec<serde_json::Value> = records.iter().map(|record| event_object(record, log)).collect();
    serde_json::json!({ "sink": sink, "events": events }).to_string().into_bytes()
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
    let mut body = Vec::new();
    for record in records {
        let object = serde_json::json!({
            "time": record.occurred_at as f64 / 1e6,
            "host": "auditum",
            "source": format!("auditum:{log}"),
            "sourcetype": "auditum:event",
            "event": event_object(record, log),
        });
        body.extend_from_slice(object.to_string().as_bytes());
        body.push(b'\n');
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        let signature = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(signature, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }
}
