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
