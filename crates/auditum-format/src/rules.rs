//! The event rules every layer shares (docs/API.md, AuditEvent): size limits and the tenant id and action
//! syntax. Wire validation, query filters and the config all check against these.

pub const MAX_EVENTS_PER_APPEND: usize = 1000;
pub const MAX_APPEND_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_EVENT_BYTES: usize = 64 * 1024;
pub const MAX_ID_BYTES: usize = 128;
pub const MAX_TENANT_BYTES: usize = 128;
pub const MAX_ACTION_BYTES: usize = 128;
pub const MAX_ACTOR_ID_BYTES: usize = 256;
pub const MAX_FUTURE_MICROS: i64 = 5 * 60 * 1_000_000;
/// Nesting limit of before/after/metadata: deep enough for real diffs, shallow enough that
/// recursion over hostile input stays cheap.
pub const MAX_STRUCT_DEPTH: usize = 32;
pub const REDACTED: &str = "[REDACTED]";
pub const DEFAULT_REDACT_KEYS: [&str; 7] = ["password", "secret", "token", "api_key", "authorization", "cookie", "private_key"];

/// Actions under this namespace are written by the server only (meta-audit, alerts, legal holds,
/// erasures); clients cannot append them.
pub const RESERVED_ACTION_NAMESPACE: &str = "auditum";
pub const RESERVED_ACTION_PREFIX: &str = "auditum.";

/// Stored values beginning with this are auditum's ciphertexts (DESIGN §14); clients cannot
/// send such a value, so a read never mistakes client text for a ciphertext or the reverse.
pub const ENCRYPTED_VALUE_PREFIX: &str = "auditum:enc:";
/// At most this long: the data subject of an event (the wire `subject_id`).
pub const MAX_SUBJECT_ID_BYTES: usize = 256;

/// Stored actor types and outcomes (docs/FORMAT.md, Stored columns), lowercase.
pub const ACTOR_TYPES: [&str; 5] = ["user", "service", "api_key", "system", "anonymous"];
pub const OUTCOMES: [&str; 3] = ["success", "failure", "denied"];

pub fn is_valid_tenant_id(tenant_id: &str) -> bool {
    !tenant_id.is_empty() && tenant_id.bytes().all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'.' | b'_' | b':' | b'-'))
}

pub fn is_valid_action(action: &str) -> bool {
    action.split('.').all(|segment| {
        !segment.is_empty()
            && segment.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-')
    })
}

/// At most this many bytes of a client's value are echoed in an error message: enough to
/// recognise it, never enough to overflow a client's metadata limit.
pub const MAX_ECHO_BYTES: usize = 100;

/// A client's value quoted for an error message, cut to [`MAX_ECHO_BYTES`] (on a character
/// boundary) with its full length said when cut.
pub fn echo(value: &str) -> String {
    if value.len() <= MAX_ECHO_BYTES {
        return format!("{value:?}");
    }
    let mut end = MAX_ECHO_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}… ({} bytes)", &value[..end], value.len())
}

/// Names of logs, API keys, alert rules and sinks: 1-64 characters of `[a-z0-9_-]`.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_bounded() {
        assert_eq!(echo("acme"), "\"acme\"");
        let long = "é".repeat(10_000);
        let echoed = echo(&long);
        assert!(echoed.len() < MAX_ECHO_BYTES + 40, "{echoed}");
        assert!(echoed.ends_with("(20000 bytes)"), "{echoed}");
    }

    #[test]
    fn action_and_tenant_patterns() {
        assert!(is_valid_action("user.role.updated"));
        assert!(is_valid_action("a_b-c.d9"));
        for bad in ["", ".a", "a.", "a..b", "User.login", "a b", "a.*"] {
            assert!(!is_valid_action(bad), "{bad}");
        }
        assert!(is_valid_tenant_id("Acme.Corp:eu_1-x"));
        assert!(!is_valid_tenant_id("acme/corp"));
    }
}
