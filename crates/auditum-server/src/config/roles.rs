//! The rules of a process's role (README, Scaling): a read-only node (DESIGN §13), and writers
//! sharded by log, each owning only the logs it lists.

use super::{Config, DEFAULT_LOG, Result, invalid};
use std::time::Duration;

impl Config {
    pub(super) fn check_roles(&self) -> Result<()> {
        if !self.default_log {
            if self.logs.is_empty() {
                return Err(invalid("default_log", "false needs at least one [[logs]] entry: this process would own no log"));
            }
            let routed = self.logs.iter().any(|log| log.name == DEFAULT_LOG || log.tenants.contains(&self.meta_audit_tenant));
            if self.meta_audit && !routed {
                return Err(invalid(
                    "meta_audit_tenant",
                    format!(
                        "{:?} is routed to no log of this process (default_log = false): list it in one [[logs]] tenants, or set meta_audit = false",
                        self.meta_audit_tenant
                    ),
                ));
            }
        }
        let logs = self.resolved_logs();
        if self.trusted_key.is_some() && !logs.iter().any(|log| log.name == DEFAULT_LOG && log.verifier_key == self.trusted_key) {
            return Err(invalid(
                "trusted_key",
                "is the default log's key, and this process serves no default log (default_log = false) or gives it its own verifier_key",
            ));
        }
        if self.trusted_key.is_some() && !self.read_only {
            return Err(invalid("trusted_key", "pins a writer's key for a read-only node: set read_only = true (--read-only)"));
        }
        if !self.read_only {
            for (field, set) in [
                ("meta_audit_writer", self.meta_audit_writer.is_some()),
                ("meta_audit_writer_key_env", self.meta_audit_writer_key_env.is_some()),
                ("meta_audit_writer_tls_ca", self.meta_audit_writer_tls_ca.is_some()),
            ] {
                if set {
                    return Err(invalid(field, "is for read-only nodes (read_only = true): a writer appends its own meta-audit records"));
                }
            }
            if let Some(index) = self.logs.iter().position(|log| log.meta_audit_writer.is_some() || log.meta_audit_writer_key_env.is_some())
            {
                return Err(invalid(
                    format!("logs[{index}].meta_audit_writer"),
                    "is for read-only nodes (read_only = true): a writer appends its own meta-audit records",
                ));
            }
            if let Some(index) = self.logs.iter().position(|log| log.verifier_key.is_some()) {
                return Err(invalid(
                    format!("logs[{index}].verifier_key"),
                    "pins a writer's key for a read-only node: set read_only = true (--read-only); a writer uses its own signing key",
                ));
            }
            return Ok(());
        }
        if self.follow_interval < Duration::from_millis(10) {
            return Err(invalid("follow_interval", "must be at least 10ms"));
        }
        // Everything a read-only node would write belongs to the writer: the record of each
        // read is appended on the writer of the log it read.
        for log in &logs {
            let field = match self.logs.iter().position(|listed| listed.name == log.name && listed.meta_audit_writer.is_some()) {
                Some(listed) => format!("logs[{listed}].meta_audit_writer"),
                None => "meta_audit_writer".to_string(),
            };
            match &log.meta_audit_writer {
                None if self.meta_audit => {
                    return Err(invalid(
                        field,
                        format!(
                            "a read-only node records each read on the log's writer: set meta_audit_writer (the writer's URL; per [[logs]] entry when log {:?} has another writer) and meta_audit_writer_key_env, or meta_audit = false to serve reads unrecorded",
                            log.name
                        ),
                    ));
                }
                Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                    return Err(invalid(field, format!("{url:?} must be an http:// or https:// URL")));
                }
                // This build trusts no system roots: an https writer's CA must be given.
                Some(url) if url.starts_with("https://") && self.meta_audit_writer_tls_ca.is_none() => {
                    return Err(invalid(
                        "meta_audit_writer_tls_ca",
                        format!("{url:?} is https: give the PEM CA that signed the writer's certificate"),
                    ));
                }
                _ => {}
            }
        }
        for (field, configured) in
            [("sinks", !self.sinks.is_empty()), ("alerts", !self.alerts.is_empty()), ("streams", !self.streams.is_empty())]
        {
            if configured {
                return Err(invalid(field, "deliveries and alert rules run on the log's writer, not on a read-only node"));
            }
        }
        for (index, log) in logs.iter().enumerate() {
            let field = if log.name == DEFAULT_LOG && self.logs.iter().all(|listed| listed.name != DEFAULT_LOG) {
                "trusted_key".to_string()
            } else {
                format!("logs[{}].verifier_key", self.logs.iter().position(|listed| listed.name == log.name).unwrap_or(index))
            };
            match log.verifier() {
                None => {
                    return Err(invalid(
                        field,
                        format!(
                            "a read-only node serves log {:?} only under its writer's pinned verifier key (the writer's keys/{}.vkey)",
                            log.name, log.name
                        ),
                    ));
                }
                Some(Err(reason)) => return Err(invalid(field, reason)),
                Some(Ok(verifier)) => {
                    if log.origin.as_deref().is_some_and(|origin| origin != verifier.name) {
                        return Err(invalid(
                            field,
                            format!(
                                "the key is named {:?} but log {:?} has origin {:?}: it is another log's key",
                                verifier.name,
                                log.name,
                                log.origin.as_deref().unwrap_or_default()
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> std::result::Result<Config, String> {
        Config::from_toml_with_env(text, "test", std::iter::empty()).map_err(|error| error.to_string())
    }

    fn key() -> String {
        auditum_format::checkpoint::Signer::generate("auditum/default").unwrap().verifier_key()
    }

    #[test]
    fn a_read_only_node_needs_a_pinned_key_for_every_log_and_a_writer_to_record_reads_on() {
        let error = load("read_only = true\nmeta_audit = false\n").unwrap_err();
        assert!(error.contains("trusted_key") && error.contains("default"), "{error}");
        let error =
            load(&format!("read_only = true\nmeta_audit = false\ntrusted_key = {:?}\n[[logs]]\nname = \"eu\"\n", key())).unwrap_err();
        assert!(error.contains("logs[0].verifier_key") && error.contains("\"eu\""), "{error}");
        let error = load(&format!("read_only = true\ntrusted_key = {:?}\n", key())).unwrap_err();
        assert!(error.contains("config field meta_audit_writer"), "{error}");
        let error = load(&format!("read_only = true\ntrusted_key = {:?}\nmeta_audit_writer = \"writer:50051\"\n", key())).unwrap_err();
        assert!(error.contains("meta_audit_writer") && error.contains("http://"), "{error}");
        let error = load("read_only = true\nmeta_audit = false\ntrusted_key = \"auditum/default+00000000+AAAA\"\n").unwrap_err();
        assert!(error.contains("config field trusted_key"), "{error}");
        let eu = auditum_format::checkpoint::Signer::generate("auditum/eu").unwrap().verifier_key();
        let error = load(&format!("read_only = true\nmeta_audit = false\ntrusted_key = {eu:?}\n")).unwrap_err();
        assert!(error.contains("another log's key"), "{error}");
    }

    #[test]
    fn each_log_of_a_read_only_node_records_its_reads_on_its_own_writer() {
        let eu = auditum_format::checkpoint::Signer::generate("auditum/eu").unwrap().verifier_key();
        let text = format!(
            "read_only = true\ntrusted_key = {:?}\nmeta_audit_writer = \"http://writer:50051\"\nmeta_audit_writer_key_env = \"KEY\"\nmeta_audit_writer_tls_ca = \"ca.pem\"\n\n[[logs]]\nname = \"eu\"\nverifier_key = {eu:?}\nmeta_audit_writer = \"https://writer-eu:50051\"\n",
            key()
        );
        let config = load(&text).unwrap();
        let writers: Vec<(String, Option<String>, Option<String>)> =
            config.resolved_logs().into_iter().map(|log| (log.name, log.meta_audit_writer, log.meta_audit_writer_key_env)).collect();
        assert_eq!(
            writers,
            [
                ("default".to_string(), Some("http://writer:50051".to_string()), Some("KEY".to_string())),
                ("eu".to_string(), Some("https://writer-eu:50051".to_string()), Some("KEY".to_string())),
            ]
        );
        // And the effective configuration shows it, and reads back the same.
        assert_eq!(load(&config.to_toml()).unwrap().resolved_logs(), config.resolved_logs());
    }

    #[test]
    fn writes_belong_to_writers_and_reader_settings_to_readers() {
        let reader = format!("read_only = true\nmeta_audit = false\ntrusted_key = {:?}\n", key());
        for (extra, field) in [
            ("[[sinks]]\nname = \"s\"\nurl = \"http://127.0.0.1:1/\"\nformat = \"json\"\nsecret_env = \"PATH\"\n", "sinks"),
            ("follow_interval = \"1ms\"\n", "follow_interval"),
        ] {
            let error = load(&format!("{reader}{extra}")).unwrap_err();
            assert!(error.contains(&format!("config field {field}")), "{field}: {error}");
        }
        for (text, field) in [
            (format!("trusted_key = {:?}\n", key()), "trusted_key"),
            ("meta_audit_writer = \"http://writer:50051\"\n".to_string(), "meta_audit_writer"),
            (format!("[[logs]]\nname = \"eu\"\nverifier_key = {:?}\n", key()), "logs[0].verifier_key"),
        ] {
            let error = load(&text).unwrap_err();
            assert!(error.contains(&format!("config field {field}")) && error.contains("read-only"), "{field}: {error}");
        }
    }

    #[test]
    fn a_writer_that_owns_only_its_listed_logs_routes_its_own_records_to_one() {
        let error = load("default_log = false\n").unwrap_err();
        assert!(error.contains("config field default_log"), "{error}");
        let error = load("default_log = false\n[[logs]]\nname = \"eu\"\ntenants = [\"acme\"]\n").unwrap_err();
        assert!(error.contains("config field meta_audit_tenant") && error.contains("\"auditum\""), "{error}");
        let config = load("default_log = false\n[[logs]]\nname = \"eu\"\ntenants = [\"acme\", \"auditum\"]\n").unwrap();
        let names: Vec<String> = config.resolved_logs().into_iter().map(|log| log.name).collect();
        assert_eq!(names, ["eu"], "no default log");
        load("default_log = false\nmeta_audit = false\n[[logs]]\nname = \"eu\"\ntenants = [\"acme\"]\n").unwrap();
    }
}
