//! Who may make a call, and the record of it: authentication, scopes, tenant binding, rate
//! limits, and the meta-audit event (docs/API.md) that every Query, Export and proof call appends
//! before it runs — refused attempts included.

use crate::auth::{ApiKeySpec, Authenticator, Caller, Denied, Scope};
pub use crate::error::ForwardError;
use crate::error::{Error, Result};
use crate::log::Log;
use crate::metrics::{AuthFailure, METRICS, log_label};
use crate::router::Logs;
use auditum_format::event::{EventRecord, Seq};
use auditum_format::rules::MAX_EVENT_BYTES;
use auditum_format::time::now_micros;
use std::sync::Arc;

/// What the transport knows about a call before it is authenticated.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta<'a> {
    /// The `authorization` header; "" when present but not text.
    pub authorization: Option<&'a str>,
    /// The client's `x-request-id`, if any.
    pub request_id: Option<&'a str>,
    pub source_ip: String,
    pub user_agent: Option<&'a str>,
}

/// One call: who made it, from where, under which request id.
#[derive(Debug, Clone)]
pub struct Call {
    pub caller: Caller,
    pub method: &'static str,
    pub request_id: String,
    source_ip: String,
    user_agent: String,
}

impl Call {
    /// A call made inside this process (tools and tests): anonymous, recorded like any other.
    pub fn internal(method: &'static str) -> Call {
        Call {
            caller: Caller::anonymous(),
            method,
            request_id: uuid::Uuid::now_v7().to_string(),
            source_ip: String::new(),
            user_agent: String::new(),
        }
    }

    /// The span every log line of the call is in.
    pub fn span(&self) -> tracing::Span {
        tracing::info_span!("rpc", method = self.method, request_id = %self.request_id, key = %self.caller.key_id())
    }
}

/// A client-chosen request id when sane, else a new one.
fn request_id(chosen: Option<&str>) -> String {
    chosen
        .filter(|id| !id.is_empty() && id.len() <= 128 && id.bytes().all(|byte| byte.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

/// What a meta-audit event says about a call (docs/API.md).
pub struct MetaNote {
    pub action: &'static str,
    pub tenant: String,
    pub target_type: &'static str,
    pub target_id: String,
    pub details: serde_json::Map<String, serde_json::Value>,
}

/// A JSON object's fields (meta-audit details); empty for anything else.
pub fn object(value: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
    match value {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    }
}

/// Counts a refusal, by its code, and hands it back as the call's error.
fn refused(denied: Denied) -> Error {
    METRICS.auth_refused.get_or_create(&AuthFailure { code: denied.code_name().to_string() }).inc();
    Error::Denied(denied)
}

/// Where a read-only node sends the meta-audit records of its reads: the log's writer, which
/// appends them (DESIGN §13). The transport is the server's business.
pub trait RecordForwarder: Send + Sync + std::fmt::Debug {
    /// Appends `record` on the writer of `log`; Err says why it was not.
    fn forward<'a>(&'a self, log: &'a str, record: EventRecord) -> futures::future::BoxFuture<'a, Result<(), ForwardError>>;
}

/// Authentication, authorization and meta-audit, shared by every service.
#[derive(Debug)]
pub struct Access {
    authenticator: Authenticator,
    logs: Arc<Logs>,
    meta_audit: bool,
    meta_audit_tenant: String,
    /// On a read-only node: the writer its meta-audit records go to, and this node's name.
    forwarding: Option<(Arc<dyn RecordForwarder>, String)>,
}

impl Access {
    pub fn new(keys: &[ApiKeySpec], logs: Arc<Logs>, meta_audit: bool, meta_audit_tenant: String) -> Access {
        Access { authenticator: Authenticator::new(keys), logs, meta_audit, meta_audit_tenant, forwarding: None }
    }

    /// A read-only node: meta-audit records of reads on a read-only log go to `forwarder`,
    /// naming `node` (`served_by` in their details).
    pub fn forwarding_to(self, forwarder: Arc<dyn RecordForwarder>, node: String) -> Access {
        Access { forwarding: Some((forwarder, node)), ..self }
    }

    pub fn development_mode(&self) -> bool {
        self.authenticator.development_mode()
    }

    /// Who a bearer secret names, with no scope check and no charge (the console's sign-in).
    pub fn identify(&self, authorization: Option<&str>) -> Result<Caller, Denied> {
        self.authenticator.authenticate(authorization)
    }

    /// Authenticates a call and checks its scope; the key's rate limit is charged `cost`.
    pub fn open(&self, method: &'static str, scope: Scope, cost: usize, request: RequestMeta<'_>) -> Result<Call> {
        let caller = self.authenticator.authenticate(request.authorization).map_err(refused)?;
        let call = Call {
            caller,
            method,
            request_id: request_id(request.request_id),
            source_ip: request.source_ip,
            user_agent: request.user_agent.map(|agent| agent.chars().take(256).collect()).unwrap_or_default(),
        };
        if let Err(denied) = call.caller.require_scope(scope) {
            tracing::warn!(parent: &call.span(), scope = scope.as_str(), "call refused: missing scope");
            return Err(refused(denied));
        }
        call.caller.charge(cost)?;
        Ok(call)
    }

    /// A refused call is itself recorded (outcome DENIED) in the caller's tenant, so attempts to
    /// reach another tenant leave a trace; returns the error to answer with.
    pub async fn deny(&self, call: &Call, denied: Denied, mut note: MetaNote) -> Error {
        tracing::warn!(parent: &call.span(), reason = %denied, "call refused");
        if let Some(own) = call.caller.tenant() {
            note.tenant = own.to_string();
        }
        if let Err(error) = self.write(call, note, Outcome::Denied(&denied)).await {
            tracing::warn!(parent: &call.span(), %error, "cannot record the refused call");
        }
        refused(denied)
    }

    /// Records the call, before it runs when `permitted`, or as refused (see [`Access::deny`]).
    pub async fn admit(&self, call: &Call, permitted: Result<(), Denied>, note: MetaNote) -> Result<()> {
        match permitted {
            Ok(()) => self.record(call, note).await,
            Err(denied) => Err(self.deny(call, denied, note).await),
        }
    }

    /// Records a permitted Query, Export or proof call before it is served (a Query reads while
    /// its record is written): a read that cannot be recorded is not served.
    pub async fn record(&self, call: &Call, note: MetaNote) -> Result<()> {
        self.write(call, note, Outcome::Success).await
    }

    /// Records a call that ended in `code` (e.g. `NotFound`) with `message`.
    pub async fn record_failure(&self, call: &Call, note: MetaNote, code: &str, message: &str) -> Result<()> {
        self.write(call, note, Outcome::Failed { code, message }).await
    }

    /// Refuses an Append event of a tenant the key is not bound to (not meta-audited: the
    /// caller's own append is the record).
    pub fn require_append_tenant(&self, call: &Call, field: &str, tenant: &str) -> Result<()> {
        call.caller.require_tenant(field, tenant).map_err(|denied| {
            tracing::warn!(reason = %denied, "append refused");
            refused(denied)
        })
    }

    /// The tenant of meta-audit events for calls that name no tenant.
    pub fn log_wide_tenant(&self, call: &Call) -> String {
        call.caller.tenant().unwrap_or(&self.meta_audit_tenant).to_string()
    }

    /// Refuses a tenant-bound key any log but its tenant's.
    pub fn require_log(&self, call: &Call, log: &Log) -> Result<(), Denied> {
        let Some(own) = call.caller.tenant() else { return Ok(()) };
        match self.logs.for_tenant(own) {
            Some(own_log) if own_log.name() == log.name() => Ok(()),
            _ => Err(Denied::PermissionDenied(format!(
                "log: api key {:?} is bound to tenant {own:?}, whose events are not in log {:?}",
                call.caller.key_id(),
                log.name()
            ))),
        }
    }

    /// Records an operation the archive must show whatever `meta_audit` says: an erasure
    /// (DESIGN §14) is how an auditor tells policy from tampering.
    pub async fn record_always(&self, call: &Call, note: MetaNote) -> Result<()> {
        self.append_record(call, note, Outcome::Success).await
    }

    async fn write(&self, call: &Call, note: MetaNote, outcome: Outcome<'_>) -> Result<()> {
        if !self.meta_audit {
            return Ok(());
        }
        self.append_record(call, note, outcome).await
    }

    async fn append_record(&self, call: &Call, mut note: MetaNote, outcome: Outcome<'_>) -> Result<()> {
        let log = self.logs.for_tenant(&note.tenant).ok_or_else(|| Error::NoLogForTenant { tenant: note.tenant.clone() })?;
        if log.is_read_only() {
            // A read that cannot be recorded is not served, here as on the writer.
            let Some((forwarder, node)) = &self.forwarding else {
                return Err(Error::MetaAudit("this read-only node has no meta_audit_writer to record the call on".into()));
            };
            note.details.insert("served_by".into(), node.clone().into());
            let record = meta_audit_record(call, note, outcome, now_micros())?;
            forwarder.forward(log.name(), record).await.map_err(Error::MetaAuditForward)?;
        } else {
            log.append(vec![meta_audit_record(call, note, outcome, now_micros())?]).await?;
        }
        METRICS.meta_audit_events.get_or_create(&log_label(log.name())).inc();
        Ok(())
    }
}

/// How a recorded call ended.
#[derive(Debug, Clone, Copy)]
enum Outcome<'a> {
    Success,
    Denied(&'a Denied),
    Failed { code: &'a str, message: &'a str },
}

fn non_empty(value: String) -> Option<String> {
    if value.is_empty() { None } else { Some(value) }
}

/// The stored record of a meta-audit event, built directly in its stored form.
fn meta_audit_record(call: &Call, note: MetaNote, outcome: Outcome<'_>, now: i64) -> Result<EventRecord> {
    let (outcome, error_code, reason) = match outcome {
        Outcome::Denied(denied) => ("denied", denied.code_name().to_string(), denied.to_string().chars().take(1000).collect()),
        Outcome::Failed { code, message } => ("failure", code.to_string(), message.chars().take(1000).collect()),
        Outcome::Success => ("success", String::new(), String::new()),
    };
    let mut details = note.details;
    details.insert("rpc".into(), call.method.into());
    let record = EventRecord {
        seq: Seq(0),
        id: uuid::Uuid::now_v7().to_string(),
        tenant_id: note.tenant,
        occurred_at: now,
        received_at: 0,
        action: note.action.to_string(),
        actor_id: call.caller.key_id().to_string(),
        actor_type: Some(if call.caller.is_anonymous() { "anonymous" } else { "api_key" }.to_string()),
        actor_name: None,
        target_type: non_empty(note.target_type.to_string()),
        target_id: non_empty(note.target_id),
        target_name: None,
        outcome: outcome.to_string(),
        error_code: non_empty(error_code),
        reason: non_empty(reason),
        request_id: non_empty(call.request_id.clone()),
        correlation_id: None,
        session_id: None,
        source_ip: non_empty(call.source_ip.clone()),
        // As sent, unless it poses as a ciphertext (DESIGN §14): reads must never take it for one.
        user_agent: non_empty(call.user_agent.clone()).map(|agent| {
            if agent.starts_with(auditum_format::rules::ENCRYPTED_VALUE_PREFIX) { format!("[as sent] {agent}") } else { agent }
        }),
        service: Some("auditum".to_string()),
        before: None,
        after: None,
        metadata: Some(auditum_format::json::canonical(&serde_json::Value::Object(details))),
    };
    // Values echoed from a request are bounded before they get here; this keeps the rule anyway.
    if record.encoded_len_hint() > MAX_EVENT_BYTES {
        return Err(Error::MetaAudit(format!("the record of {} exceeds {MAX_EVENT_BYTES} bytes", call.method)));
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_audit_records_are_canonical_and_name_the_refusal() {
        let call = Call::internal("Query");
        let mut details = serde_json::Map::new();
        details.insert("page_size".into(), 100.into());
        details.insert("filter".into(), serde_json::json!({"tenant_id": "acme"}));
        let note = MetaNote { action: "auditum.query", tenant: "acme".into(), target_type: "tenant", target_id: "acme".into(), details };
        let denied = Denied::PermissionDenied("filter.tenant_id: no".into());
        let record = meta_audit_record(&call, note, Outcome::Denied(&denied), 5).unwrap();
        assert_eq!(record.metadata.as_deref(), Some(r#"{"filter":{"tenant_id":"acme"},"page_size":100,"rpc":"Query"}"#));
        assert_eq!((record.outcome.as_str(), record.error_code.as_deref()), ("denied", Some("PermissionDenied")));
        assert_eq!(record.actor_type.as_deref(), Some("anonymous"));
        assert_eq!(record.service.as_deref(), Some("auditum"));
        assert_eq!(record.source_ip, None, "an in-process call has no address");
    }
}
