//! The rules a configuration must satisfy (README, Configuration): every error names its field.

use super::{Config, LogConfig, Result, invalid, is_valid_log_name};
use auditum_engine::auth::check_api_key_identity;
use auditum_format::rules;
use auditum_store::{RetentionMode, StorageClass};
use std::collections::HashMap;
use std::time::Duration;

impl Config {
    pub fn validate(&self) -> Result<()> {
        if self.seal_interval < Duration::from_millis(10) {
            return Err(invalid("seal_interval", "must be at least 10ms"));
        }
        if self.batch_max_events == 0 {
            return Err(invalid("batch_max_events", "must be at least 1"));
        }
        if self.batch_max_bytes < 64 * 1024 {
            return Err(invalid("batch_max_bytes", "must be at least 65536"));
        }
        if !(128..=1_048_576).contains(&self.row_group_rows) {
            return Err(invalid("row_group_rows", "must be between 128 and 1048576"));
        }
        if !(16..=self.row_group_rows).contains(&self.page_rows) {
            return Err(invalid("page_rows", "must be between 16 and row_group_rows"));
        }
        if self.wal_segment_bytes < 64 * 1024 {
            return Err(invalid("wal_segment_bytes", "must be at least 65536"));
        }
        if self.wal_max_bytes < 2 * self.wal_segment_bytes.min(64 * 1024 * 1024) {
            return Err(invalid("wal_max_bytes", "must be at least two WAL segments"));
        }
        check_retention("retention_mode", "retention_days", self.retention_mode, self.retention_days)?;
        if self.key_cache_entries < 16 {
            return Err(invalid("key_cache_entries", "must be at least 16"));
        }
        self.validate_security()?;
        let mut names = std::collections::HashSet::new();
        let mut tenants: HashMap<&str, &str> = HashMap::new();
        for (index, log) in self.logs.iter().enumerate() {
            if !is_valid_log_name(&log.name) {
                return Err(invalid(format!("logs[{index}].name"), format!("{:?} must be 1-64 characters of [a-z0-9_-]", log.name)));
            }
            if !names.insert(log.name.as_str()) {
                return Err(invalid(format!("logs[{index}].name"), format!("log {:?} is listed twice", log.name)));
            }
            if let Some(origin) = &log.origin
                && (origin.is_empty() || origin.contains('+') || origin.chars().any(char::is_whitespace))
            {
                return Err(invalid(format!("logs[{index}].origin"), "must be non-empty with no '+' or spaces"));
            }
            check_retention(
                &format!("logs[{index}].retention_mode"),
                &format!("logs[{index}].retention_days"),
                log.retention_mode,
                log.retention_days,
            )?;
            let store = log.store.as_deref().or(self.store.as_deref()).unwrap_or_default();
            let retention_days = log.retention_days.or(if log.retention_mode.is_none() { self.retention_days } else { None });
            check_tiers(index, log, store, retention_days, self.idempotency_window)?;
            for tenant in &log.tenants {
                if !rules::is_valid_tenant_id(tenant) {
                    return Err(invalid(format!("logs[{index}].tenants"), format!("{tenant:?} is not a valid tenant id")));
                }
                if let Some(other) = tenants.insert(tenant, &log.name) {
                    return Err(invalid(format!("logs[{index}].tenants"), format!("tenant {tenant:?} is also routed to log {other:?}")));
                }
            }
        }
        auditum_deliver::config::validate(&self.sinks, &self.alerts, &self.streams, |name| std::env::var(name).ok())
            .map_err(|error| invalid(error.field, error.reason))?;
        self.check_encryption()?;
        self.check_roles()?;
        Ok(())
    }
}

impl Config {
    /// DESIGN §14, for the top-level defaults and each log as it resolves: known fields, a
    /// keyring that is not the archive store, and one source for the key-encryption key. Errors
    /// name the field where it is set.
    fn check_encryption(&self) -> Result<()> {
        // The top-level settings as such apply to `default` when it is not listed.
        if !self.logs.iter().any(|log| log.name == super::DEFAULT_LOG) {
            self.check_encryption_of(None)?;
        }
        for (index, log) in self.logs.iter().enumerate() {
            self.check_encryption_of(Some((index, log)))?;
        }
        let resolved = self.resolved_logs();
        let routes = self.tenant_routes();
        for (index, rule) in self.alerts.iter().enumerate() {
            if rule.group_by != auditum_deliver::config::GroupBy::SourceIp {
                continue;
            }
            // A rule for "*" runs on every log.
            let encrypting = resolved.iter().find(|log| {
                let routed =
                    rule.tenant == "*" || routes.get(&rule.tenant).map_or(log.name == super::DEFAULT_LOG, |name| *name == log.name);
                routed && log.encrypted_columns().is_ok_and(|columns| columns.contains("source_ip"))
            });
            if let Some(log) = encrypting {
                return Err(invalid(
                    format!("alerts[{index}].group_by"),
                    format!("source_ip is encrypted in log {:?} (encrypt_fields), so events cannot be grouped by it", log.name),
                ));
            }
        }
        Ok(())
    }

    fn check_encryption_of(&self, log: Option<(usize, &LogConfig)>) -> Result<()> {
        let field = |name: &str, set_on_log: bool| match log {
            Some((index, _)) if set_on_log => format!("logs[{index}].{name}"),
            _ => name.to_string(),
        };
        let log_config = log.map(|(_, log)| log);
        let log_fields = log_config.and_then(|log| log.encrypt_fields.as_ref());
        let fields = log_fields.unwrap_or(&self.encrypt_fields);
        let columns = auditum_keyring::EncryptedColumns::parse(fields)
            .map_err(|reason| invalid(field("encrypt_fields", log_fields.is_some()), reason))?;
        let log_keyring = log_config.and_then(|log| log.keyring.as_ref());
        let keyring = log_keyring.or(self.keyring.as_ref());
        let kek_on_log = log_config.is_some_and(|log| log.kek_file.is_some() || log.kek_env.is_some());
        let (kek_file, kek_env) = match log_config {
            Some(log) if kek_on_log => (&log.kek_file, &log.kek_env),
            _ => (&self.kek_file, &self.kek_env),
        };
        if !columns.is_empty() && keyring.is_none() {
            return Err(invalid(
                field("encrypt_fields", log_fields.is_some()),
                "needs a keyring (the store URL of the keys: file:///… or s3:// on a bucket without versioning)",
            ));
        }
        let Some(keyring) = keyring else { return Ok(()) };
        if kek_file.is_some() && kek_env.is_some() {
            return Err(invalid(field("kek_env", kek_on_log), "set kek_file or kek_env, not both"));
        }
        if kek_file.is_none() && kek_env.is_none() {
            return Err(invalid(field("keyring", log_keyring.is_some()), "needs kek_file or kek_env (the key-encryption key)"));
        }
        // Not inside (or around) any log's archive: keys must be deletable, archives are not.
        let trimmed = |url: &str| url.trim_end_matches('/').to_string();
        let keyring = trimmed(keyring);
        for log in self.resolved_logs() {
            let store = trimmed(log.store.as_deref().unwrap_or_default());
            let inside = |outer: &str, inner: &str| inner == outer || inner.starts_with(&format!("{outer}/"));
            if inside(&store, &keyring) || inside(&keyring, &store) {
                return Err(invalid(
                    field("keyring", log_keyring.is_some()),
                    format!(
                        "must not be in or around the archive store of log {:?} ({store}): keys must be deletable, and the archive is not",
                        log.name
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_security(&self) -> Result<()> {
        if !(self.key_rate_per_second.is_finite() && self.key_rate_per_second > 0.0) {
            return Err(invalid("key_rate_per_second", "must be a positive number"));
        }
        if !(self.key_rate_burst.is_finite() && self.key_rate_burst >= 1.0) {
            return Err(invalid("key_rate_burst", "must be at least 1"));
        }
        if !(1..=10_000).contains(&self.max_concurrent_requests_per_connection) {
            return Err(invalid("max_concurrent_requests_per_connection", "must be between 1 and 10000"));
        }
        if !rules::is_valid_tenant_id(&self.meta_audit_tenant) {
            return Err(invalid("meta_audit_tenant", format!("{:?} is not a valid tenant id", self.meta_audit_tenant)));
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(invalid(if self.tls_cert.is_some() { "tls_key" } else { "tls_cert" }, "tls_cert and tls_key come together"));
        }
        if self.tls_client_ca.is_some() && self.tls_cert.is_none() {
            return Err(invalid("tls_client_ca", "client certificates need TLS: set tls_cert and tls_key"));
        }
        if self.api_keys.is_empty() && !self.listen.ip().is_loopback() {
            return Err(invalid(
                "api_keys",
                format!("none configured: development mode serves only a loopback address, and listen is {}", self.listen),
            ));
        }
        if let Some(http_listen) = self.http_listen
            && self.api_keys.is_empty()
            && !http_listen.ip().is_loopback()
        {
            return Err(invalid(
                "http_listen",
                format!(
                    "{http_listen} is not a loopback address: development mode (no api_keys) serves only loopback; set http_listen = \"\" or configure api_keys"
                ),
            ));
        }
        let mut ids = std::collections::HashSet::new();
        let mut hashes = std::collections::HashSet::new();
        for (index, key) in self.api_keys.iter().enumerate() {
            let field = |name: &str| format!("api_keys[{index}].{name}");
            check_api_key_identity(&key.id, &key.tenant).map_err(|(name, reason)| invalid(field(name), reason))?;
            if !ids.insert(key.id.as_str()) {
                return Err(invalid(field("id"), format!("key {:?} is listed twice", key.id)));
            }
            if key.secret_sha256.len() != 64 || !key.secret_sha256.bytes().all(|byte| byte.is_ascii_hexdigit()) {
                return Err(invalid(field("secret_sha256"), "must be 64 hex digits (the SHA-256 of the secret, never the secret)"));
            }
            if !hashes.insert(key.secret_sha256.to_ascii_lowercase()) {
                return Err(invalid(field("secret_sha256"), "another key has the same secret"));
            }
            if key.scopes.is_empty() {
                return Err(invalid(field("scopes"), "at least one of append, query, export, proof, admin, meta_audit_forward"));
            }
            if let Some(rate) = key.rate_per_second
                && !(rate.is_finite() && rate > 0.0)
            {
                return Err(invalid(field("rate_per_second"), "must be a positive number"));
            }
            if let Some(burst) = key.burst
                && !(burst.is_finite() && burst >= 1.0)
            {
                return Err(invalid(field("burst"), "must be at least 1"));
            }
        }
        Ok(())
    }
}

/// Archive and expiry settings of `logs[index]` (DESIGN §12): S3 only, within S3's rules, and
/// never deleting a batch before its retention ends.
fn check_tiers(index: usize, log: &LogConfig, store: &str, retention_days: Option<u32>, idempotency_window: Duration) -> Result<()> {
    let field = |name: &str| format!("logs[{index}].{name}");
    let on_s3 = store.starts_with("s3://");
    for (name, set) in [
        ("archive_after_days", log.archive_after_days.is_some()),
        ("expire_after_days", log.expire_after_days.is_some()),
        ("batch_storage_class", log.batch_storage_class.is_some()),
    ] {
        if set && !on_s3 {
            return Err(invalid(field(name), format!("needs an s3:// store (the log's store is {store:?})")));
        }
    }
    for (name, days) in [("archive_after_days", log.archive_after_days), ("expire_after_days", log.expire_after_days)] {
        if let Some(days) = days
            && !(1..=36_500).contains(&days)
        {
            return Err(invalid(field(name), "must be between 1 and 36500"));
        }
    }
    // After a restart, the ids of batches sealed within the idempotency window are read back
    // from the store: an archived batch cannot be, and a retry of its events would be stored twice.
    if let Some((days, class)) = log.archive()
        && class.needs_restore()
        && Duration::from_secs(u64::from(days) * 86_400) < idempotency_window
    {
        return Err(invalid(
            field("archive_after_days"),
            format!("{days} days to {class} is shorter than idempotency_window: retries after a restart could not be recognised"),
        ));
    }
    match (log.archive_after_days, log.archive_storage_class) {
        (None, Some(_)) => return Err(invalid(field("archive_storage_class"), "needs archive_after_days")),
        (_, Some(class)) if !matches!(class, StorageClass::GlacierIr | StorageClass::Glacier | StorageClass::DeepArchive) => {
            return Err(invalid(field("archive_storage_class"), format!("{class} is not GLACIER_IR, GLACIER or DEEP_ARCHIVE")));
        }
        _ => {}
    }
    if let Some(expire) = log.expire_after_days {
        let Some(retention) = retention_days else {
            return Err(invalid(field("expire_after_days"), "needs retention_days: expiry is what happens after the retention ends"));
        };
        if expire < retention {
            return Err(invalid(
                field("expire_after_days"),
                format!("{expire} is shorter than retention_days {retention}: batches would be deleted before their retention ends"),
            ));
        }
        if let Some(archive) = log.archive_after_days
            && expire <= archive
        {
            return Err(invalid(field("expire_after_days"), format!("must be after archive_after_days ({archive})")));
        }
    }
    Ok(())
}

/// Mode and days come together; days within 1..=36500.
fn check_retention(mode_field: &str, days_field: &str, mode: Option<RetentionMode>, days: Option<u32>) -> Result<()> {
    match (mode, days) {
        (None, None) => Ok(()),
        (Some(_), None) => Err(invalid(days_field, format!("required when {mode_field} is set"))),
        (None, Some(_)) => Err(invalid(mode_field, format!("required when {days_field} is set (compliance or governance)"))),
        (Some(_), Some(days)) if !(1..=36_500).contains(&days) => Err(invalid(days_field, "must be between 1 and 36500")),
        (Some(_), Some(_)) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> std::result::Result<(), String> {
        toml::from_str::<Config>(text).unwrap().validate().map_err(|error| error.to_string())
    }

    #[test]
    fn encryption_needs_known_fields_a_keyring_that_is_not_the_archive_and_one_kek() {
        let keyring = "keyring = \"file:///var/lib/auditum-keys\"\nkek_file = \"/etc/auditum/kek\"\n";
        assert!(check(&format!("encrypt_fields = [\"actor_name\", \"before\"]\n{keyring}")).is_ok());
        let unknown = check(&format!("encrypt_fields = [\"actor_id\"]\n{keyring}")).unwrap_err();
        assert!(unknown.contains("config field encrypt_fields") && unknown.contains("actor_id"), "{unknown}");
        let without = check("encrypt_fields = [\"reason\"]\n").unwrap_err();
        assert!(without.contains("encrypt_fields") && without.contains("needs a keyring"), "{without}");
        let no_kek = check("encrypt_fields = [\"reason\"]\nkeyring = \"file:///k\"\n").unwrap_err();
        assert!(no_kek.contains("keyring") && no_kek.contains("kek_file or kek_env"), "{no_kek}");
        let both = check(&format!("{keyring}kek_env = \"KEK\"\n")).unwrap_err();
        assert!(both.contains("kek_env") && both.contains("not both"), "{both}");
        let archive = check("store = \"file:///srv/vault\"\nkeyring = \"file:///srv/vault/\"\nkek_env = \"KEK\"\n").unwrap_err();
        assert!(archive.contains("keyring") && archive.contains("archive store"), "{archive}");
        // Per log: the field is named where it is set.
        let per_log = check(&format!("{keyring}[[logs]]\nname = \"hr\"\nencrypt_fields = [\"salary\"]\n")).unwrap_err();
        assert!(per_log.contains("logs[0].encrypt_fields") && per_log.contains("salary"), "{per_log}");
        // Grouping alerts by an encrypted column cannot work.
        let sink = "[[sinks]]\nname = \"s\"\nurl = \"http://127.0.0.1:9/\"\nformat = \"json\"\nsecret_env = \"PATH\"\n";
        let rule = "[[alerts]]\nname = \"r\"\ntenant = \"acme\"\nactions = [\"user.login\"]\ngroup_by = \"source_ip\"\nwindow = \"5m\"\nthreshold = 5\nsinks = [\"s\"]\n";
        let grouped = check(&format!("encrypt_fields = [\"source_ip\"]\n{keyring}{sink}{rule}")).unwrap_err();
        assert!(grouped.contains("alerts[0].group_by") && grouped.contains("encrypted"), "{grouped}");
        assert!(check(&format!("encrypt_fields = [\"reason\"]\n{keyring}{sink}{rule}")).is_ok());
        // A rule for every tenant runs on every log: one encrypting source_ip is enough.
        let everyone = rule.replace("tenant = \"acme\"", "tenant = \"*\"");
        let hr = "[[logs]]\nname = \"hr\"\ntenants = [\"hr\"]\nencrypt_fields = [\"source_ip\"]\n";
        let star = check(&format!("{keyring}{sink}{everyone}{hr}")).unwrap_err();
        assert!(star.contains("alerts[0].group_by") && star.contains("\"hr\""), "{star}");
        // A keyring inside an archive is refused too.
        let inside = check("store = \"file:///srv/vault\"\nkeyring = \"file:///srv/vault/keys\"\nkek_env = \"KEK\"\n").unwrap_err();
        assert!(inside.contains("keyring") && inside.contains("archive store"), "{inside}");
        // Every log with its own keyring: the top-level list needs none of its own.
        let own = "[[logs]]\nname = \"default\"\nkeyring = \"file:///k\"\nkek_env = \"KEK\"\n";
        assert!(check(&format!("encrypt_fields = [\"reason\"]\n{own}")).is_ok());
    }
}
