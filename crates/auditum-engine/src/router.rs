//! Tenant routing (README, Architecture): the logs of this process, and which log each tenant's events go
//! to. Unlisted tenants go to the `default` log.

use crate::log::Log;
use std::collections::HashMap;

pub const DEFAULT_LOG: &str = "default";

/// The logs of this process and the tenant routing between them.
#[derive(Debug, Clone)]
pub struct Logs {
    by_name: HashMap<String, Log>,
    routes: HashMap<String, String>,
}

impl Logs {
    pub fn new(logs: Vec<Log>, routes: HashMap<String, String>) -> Logs {
        Logs { by_name: logs.into_iter().map(|log| (log.name().to_string(), log)).collect(), routes }
    }

    /// The log a tenant's events go to: its configured log, or `default`.
    pub fn for_tenant(&self, tenant_id: &str) -> Option<&Log> {
        let name = self.routes.get(tenant_id).map(String::as_str).unwrap_or(DEFAULT_LOG);
        self.by_name.get(name)
    }

    /// A log by name; empty means `default`.
    pub fn by_name(&self, name: &str) -> Option<&Log> {
        self.by_name.get(if name.is_empty() { DEFAULT_LOG } else { name })
    }

    pub fn all(&self) -> impl Iterator<Item = &Log> {
        self.by_name.values()
    }
}
