//! Every object key of a keyring, built here and nowhere else (DESIGN §14).

/// `{log}/tenants/`: the tenant secrets.
pub fn tenants_prefix(log: &str) -> String {
    format!("{log}/tenants/")
}

/// `{log}/tenants/{tenant}`: a tenant's secret, wrapped.
pub fn tenant_secret(log: &str, tenant: &str) -> String {
    format!("{log}/tenants/{tenant}")
}

/// `{log}/kek.json`: which KEK the keyring is wrapped under, and a rotation in progress.
pub fn kek_marker(log: &str) -> String {
    format!("{log}/kek.json")
}

/// `{log}/keys/`: every data key of the log.
pub fn keys_root(log: &str) -> String {
    format!("{log}/keys/")
}

/// `{log}/keys/{tenant}/`: a tenant's data keys.
pub fn tenant_keys_prefix(log: &str, tenant: &str) -> String {
    format!("{log}/keys/{tenant}/")
}

/// `{log}/keys/{tenant}/{kid}`: one data key, wrapped.
pub fn data_key(log: &str, tenant: &str, kid: &str) -> String {
    format!("{log}/keys/{tenant}/{kid}")
}

/// `{log}/erased/{tenant}/{kid}`: the empty tombstone of an erased key.
pub fn tombstone(log: &str, tenant: &str, kid: &str) -> String {
    format!("{log}/erased/{tenant}/{kid}")
}

/// The last segment of a listed key under `prefix`, when it is a direct child (no deeper '/').
pub fn child<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    key.strip_prefix(prefix).filter(|rest| !rest.is_empty() && !rest.contains('/'))
}

/// A tenant id usable as one key segment: what the ingest validator accepts (letters, digits,
/// `. _ : -`), and not `.` or `..`. Anything else could reach another tenant's keys.
pub fn is_valid_tenant(tenant: &str) -> bool {
    auditum_format::rules::is_valid_tenant_id(tenant) && tenant != "." && tenant != ".." && !tenant.starts_with(".tmp-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_as_designed() {
        assert_eq!(tenant_secret("default", "acme"), "default/tenants/acme");
        assert_eq!(data_key("default", "acme", "0123"), "default/keys/acme/0123");
        assert_eq!(tombstone("default", "acme", "0123"), "default/erased/acme/0123");
        assert_eq!(child("default/keys/acme/0123", &tenant_keys_prefix("default", "acme")), Some("0123"));
        assert_eq!(child("default/keys/acme/x/0123", &tenant_keys_prefix("default", "acme")), None);
        assert!(is_valid_tenant("acme:eu-1") && !is_valid_tenant("a/b") && !is_valid_tenant("..") && !is_valid_tenant(""));
    }
}
