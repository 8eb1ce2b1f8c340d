//! An outbox row as the relay reads it, and the event it carries.
//!
//! The row's `id` column is the event id (so a row sent twice is stored once), its `event` column
//! the event in the JSON form `auditum append --file` reads, and `created_at` the event's time when
//! the JSON has no `occurred_at`: the moment the business change committed, not the moment the
//! relay happened to move it.

use auditum_client::event_json::event_from_json;
use auditum_proto::convert::timestamp_from_micros;
use auditum_proto::pb;

/// One locked outbox row.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// The row's physical address, valid while the transaction holds its lock: how it is deleted
    /// without knowing the id column's type.
    pub ctid: String,
    pub id: Option<String>,
    /// The `event` column, or why it could not be read.
    pub event: Result<Option<serde_json::Value>, String>,
    /// `created_at` in microseconds since the epoch.
    pub created_micros: Option<i64>,
}

impl OutboxRow {
    /// The event to append, or why the row cannot be one (it then goes to the dead table).
    pub fn to_event(&self) -> Result<pb::AuditEvent, String> {
        let id = self.id.as_deref().unwrap_or_default();
        if id.is_empty() {
            return Err("id: the outbox row's id is empty".into());
        }
        let value = match &self.event {
            Ok(Some(value)) => value,
            Ok(None) => return Err("event: the outbox row's event is null".into()),
            Err(reason) => return Err(format!("event: {reason}")),
        };
        let now = timestamp_from_micros(self.created_micros.unwrap_or_default());
        let mut event = event_from_json(value, now).map_err(|reason| format!("event: {reason}"))?;
        if !event.id.is_empty() && event.id != id {
            return Err(format!("event: its id {:?} differs from the row's id {id:?}", event.id));
        }
        event.id = id.to_string();
        if self.created_micros.is_none() && value.get("occurred_at").is_none_or(serde_json::Value::is_null) {
            return Err("created_at: null, and the event has no occurred_at".into());
        }
        Ok(event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(id: Option<&str>, event: Option<serde_json::Value>) -> OutboxRow {
        OutboxRow { ctid: "(0,1)".into(), id: id.map(str::to_string), event: Ok(event), created_micros: Some(1_700_000_000_123_456) }
    }

    #[test]
    fn the_row_gives_the_id_and_the_default_time() {
        let event = json!({"tenant_id": "acme", "action": "invoice.paid", "actor": {"id": "u1", "type": "user"}});
        let built = row(Some("ev-1"), Some(event)).to_event().unwrap();
        assert_eq!(built.id, "ev-1");
        assert_eq!(built.occurred_at, Some(timestamp_from_micros(1_700_000_000_123_456)));
        assert_eq!(built.action, "invoice.paid");

        let timed = json!({"id": "ev-2", "tenant_id": "acme", "action": "a", "occurred_at": "2026-01-02T03:04:05Z"});
        let built = row(Some("ev-2"), Some(timed)).to_event().unwrap();
        assert_eq!(built.occurred_at.unwrap().seconds, 1_767_323_045);
    }

    #[test]
    fn rows_that_cannot_be_events_say_why() {
        let event = json!({"tenant_id": "acme", "action": "a"});
        assert_eq!(row(None, Some(event.clone())).to_event().unwrap_err(), "id: the outbox row's id is empty");
        assert_eq!(row(Some("x"), None).to_event().unwrap_err(), "event: the outbox row's event is null");
        assert_eq!(
            row(Some("x"), Some(json!({"id": "y", "tenant_id": "acme"}))).to_event().unwrap_err(),
            "event: its id \"y\" differs from the row's id \"x\""
        );
        assert!(row(Some("x"), Some(json!([1]))).to_event().unwrap_err().starts_with("event: event: expected a json object"));
        assert!(row(Some("x"), Some(json!({"tenant": "acme"}))).to_event().unwrap_err().starts_with("event: tenant: unknown field"));
        let mut untimed = row(Some("x"), Some(event));
        untimed.created_micros = None;
        assert_eq!(untimed.to_event().unwrap_err(), "created_at: null, and the event has no occurred_at");
    }
}
