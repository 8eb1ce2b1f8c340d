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
        if self.trusted_key.is_some() && !self.read_only {
            return Err(invalid("trusted_key", "pins a writer's key for a read-only node: set read_only = true (--read-only)"));
        }
        if !self.read_only {
            for (field, set) in [
                ("meta_audit_writer", self.meta_audit_writer.is_some()),
                ("meta_audit_writer_key_env", self.meta_audit_writer_key_env.is_some()),
            ] {
                if set {
                    return Err(invalid(field, "is for read-only nodes (read_only = true): a writer appends its own meta-audit records"));
                }
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
        // read is appended there.
        match &self.meta_audit_writer {
            None if self.meta_audit => {
                return Err(invalid(
                    "meta_audit_writer",
                    "a read-only node records each read on the log's writer: set meta_audit_writer (the writer's URL) and meta_audit_writer_key_env, or meta_audit = false to serve reads unrecorded",
                ));
            }
            Some(url) if !(url.starts_with("http://") || url.starts_with("https://")) => {
                return Err(invalid("meta_audit_writer", format!("{url:?} must be an http:// or https:// URL")));
            }
            _ => {}
        }
        for (field, configured) in
            [("sinks", !self.sinks.is_empty()), ("alerts", !self.alerts.is_empty()), ("streams", !self.streams.is_empty())]
        {
            if configured {
                return Err(invalid(field, "deliveries and alert rules run on the log's writer, not on a read-only node"));
            }
        }
        for (index, log) in self.resolved_logs().iter().enumerate() {
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
