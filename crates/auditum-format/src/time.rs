//! Time as auditum stores it: microseconds since the Unix epoch, UTC.

/// The server clock, in microseconds.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// RFC 3339 UTC with microseconds, e.g. `2026-11-23T12:00:00.000001Z`; the bare number when the
/// value is outside chrono's range (never for a validated timestamp).
pub fn rfc3339_micros(micros: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(micros) {
        Some(time) => time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        None => micros.to_string(),
    }
}
