//! Erasure by crypto-shredding (DESIGN §14), scope `admin`: deleting a subject's (or a whole
//! tenant's) keys makes its encrypted fields read "[erased]" on every read path, while the
//! archive, its hashes, proofs and checkpoints stay as they were. Each erasure is recorded as
//! `auditum.erasure` with the kids and the reason, never the subject id (whatever `meta_audit`
//! says: it is how an auditor tells an erasure from tampering).

use crate::access::{Access, Call, MetaNote, object};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::router::Logs;
use auditum_format::rules;
use std::sync::Arc;

pub const ERASURE_ACTION: &str = "auditum.erasure";

/// What an erasure did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Erased {
    pub log: String,
    /// The key ids deleted (a subject's generations); empty for a tenant erasure.
    pub kids: Vec<String>,
    pub keys_erased: u64,
}

/// Whose keys an erasure destroys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErasureScope {
    Subject(String),
    Tenant,
}

#[derive(Clone)]
pub struct Eraser {
    logs: Arc<Logs>,
    access: Arc<Access>,
}

impl Eraser {
    pub fn new(logs: Arc<Logs>, access: Arc<Access>) -> Eraser {
        Eraser { logs, access }
    }

    /// Erases a subject's keys (every generation) or the whole tenant's, then records it.
    pub async fn erase(&self, call: &Call, tenant_id: &str, scope: ErasureScope, reason: &str) -> Result<Erased> {
        if !rules::is_valid_tenant_id(tenant_id) {
            return Err(Error::bad_request("tenant_id", format!("{} is not a valid tenant id", rules::echo(tenant_id))));
        }
        if let ErasureScope::Subject(subject) = &scope {
            if subject.is_empty() {
                return Err(Error::bad_request("subject_id", "required"));
            }
            if subject.len() > rules::MAX_SUBJECT_ID_BYTES {
                return Err(Error::bad_request(
                    "subject_id",
                    format!("{} bytes exceeds the limit of {} bytes", subject.len(), rules::MAX_SUBJECT_ID_BYTES),
                ));
            }
        }
        crate::admin::check_reason(reason)?;
        let log = self.logs.for_tenant(tenant_id).ok_or_else(|| Error::NoLogForTenant { tenant: tenant_id.to_string() })?;
        log.require_writer("erasure")?;
        let mut details = object(serde_json::json!({
            "erased": match scope { ErasureScope::Subject(_) => "subject", ErasureScope::Tenant => "tenant" },
            "reason": reason,
        }));
        let note = |details| MetaNote {
            action: ERASURE_ACTION,
            tenant: tenant_id.to_string(),
            target_type: "tenant",
            target_id: tenant_id.to_string(),
            details,
        };
        let permitted = call.caller.require_tenant("tenant_id", tenant_id);
        if let Err(denied) = permitted {
            return Err(self.access.deny(call, denied, note(details)).await);
        }
        let outcome = Self::destroy(log, tenant_id, &scope).await;
        match outcome {
            Ok(erased) => {
                let kid = match scope {
                    ErasureScope::Subject(_) if erased.kids.is_empty() => "none".to_string(),
                    ErasureScope::Subject(_) => erased.kids.join(","),
                    ErasureScope::Tenant => "tenant".to_string(),
                };
                details.insert("kid".into(), kid.into());
                details.insert("kids".into(), erased.kids.clone().into());
                details.insert("keys_erased".into(), erased.keys_erased.into());
                self.access.record_always(call, note(details)).await?;
                tracing::info!(parent: &call.span(), log = %log.name(), tenant = %tenant_id, keys_erased = erased.keys_erased, "erased");
                Ok(erased)
            }
            Err(error) => {
                let code = match &error {
                    Error::FailedPrecondition(_) => "FailedPrecondition",
                    Error::Log(crate::log::Error::Keyring { source, .. }) if source.is_transient() => "Unavailable",
                    Error::Log(crate::log::Error::Keyring { source: auditum_keyring::Error::InvalidTenant { .. }, .. }) => {
                        "InvalidArgument"
                    }
                    _ => "Internal",
                };
                if let Err(recording) = self.access.record_failure(call, note(details), code, &error.to_string()).await {
                    tracing::warn!(parent: &call.span(), error = %recording, "cannot record the failed erasure");
                }
                Err(error)
            }
        }
    }

    async fn destroy(log: &Log, tenant_id: &str, scope: &ErasureScope) -> Result<Erased> {
        let Some(encryption) = log.encryption() else {
            return Err(Error::FailedPrecondition(format!(
                "log {}: nothing is encrypted, so nothing can be erased: set encrypt_fields, keyring and kek_file for it (DESIGN §14)",
                log.name()
            )));
        };
        let keyring_error = |source| crate::encryption::keyring_error(log, source);
        let (kids, keys_erased) = match scope {
            ErasureScope::Subject(subject) => {
                let kids = encryption.keyring.erase_subject(tenant_id, subject).await.map_err(keyring_error)?;
                let count = kids.len() as u64;
                (kids, count)
            }
            ErasureScope::Tenant => (Vec::new(), encryption.keyring.erase_tenant(tenant_id).await.map_err(keyring_error)?),
        };
        Ok(Erased { log: log.name().to_string(), kids, keys_erased })
    }
}
