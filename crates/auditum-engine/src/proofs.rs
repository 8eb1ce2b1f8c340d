//! Checkpoints, event proofs, consistency proofs and server-side verification (docs/FORMAT.md, Proofs), each
//! recorded as an `auditum.proof` meta-audit event before it runs.

use crate::access::{Access, Call, MetaNote, object};
use crate::error::{Error, Result};
use crate::log::Log;
use crate::proof::{self, BatchCache, ProofBasis};
use crate::router::Logs;
use auditum_format::merkle::{self, Hash};
use auditum_format::rules::MAX_ID_BYTES;
use std::sync::Arc;

/// Which event a proof is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKey {
    Seq(u64),
    Id(String),
}

/// One message of a server-side verification: progress, a problem, or the end.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyUpdate {
    pub entries_checked: u64,
    pub events_checked: u64,
    /// `kind: detail` of a problem, or the summary of a failed verification at the end.
    pub problem: String,
    pub object: String,
    pub done: bool,
    pub ok: bool,
}

#[derive(Clone)]
pub struct Prover {
    logs: Arc<Logs>,
    cache: Arc<BatchCache>,
    access: Arc<Access>,
}

impl Prover {
    pub fn new(logs: Arc<Logs>, access: Arc<Access>) -> Prover {
        Prover { logs, cache: Arc::default(), access }
    }

    /// The log a caller may see by this name. For a tenant-bound key every other log, existing
    /// or not, is not found: the answer must not reveal which logs (and so which customers)
    /// exist.
    fn log(&self, call: &Call, name: &str) -> Result<&Log> {
        match self.logs.by_name(name) {
            Some(log) if self.access.require_log(call, log).is_ok() => Ok(log),
            _ => Err(Error::NoSuchLog { name: name.to_string() }),
        }
    }

    fn basis(&self, log: &Log) -> Result<ProofBasis> {
        log.require_store()?;
        log.proof_basis().ok_or_else(|| Error::NoCheckpoint { log: log.name().to_string() })
    }

    /// A tenant-bound caller's "not found" is recorded whatever its cause (nothing there, or
    /// another tenant's), so the two cannot be told apart, not even by their timing.
    async fn not_found(
        &self,
        call: &Call,
        error: Error,
        target_type: &'static str,
        target_id: String,
        details: serde_json::Value,
    ) -> Error {
        if call.caller.tenant().is_some() {
            let note = MetaNote {
                action: "auditum.proof",
                tenant: self.access.log_wide_tenant(call),
                target_type,
                target_id,
                details: object(details),
            };
            if let Err(record_error) = self.access.record_failure(call, note, "NotFound", &error.to_string()).await {
                tracing::warn!(parent: &call.span(), error = %record_error, "cannot record the refused call");
            }
        }
        error
    }

    /// The log named in a log-wide call, or a recorded not-found.
    async fn visible_log(&self, call: &Call, name: &str, details: &serde_json::Value) -> Result<&Log> {
        match self.log(call, name) {
            Ok(log) => Ok(log),
            Err(error) => Err(self.not_found(call, error, "log", auditum_format::rules::echo(name), details.clone()).await),
        }
    }

    /// A log-wide proof call, recorded as `auditum.proof` before it runs.
    async fn admit_log(&self, call: &Call, log: &Log, details: serde_json::Value) -> Result<()> {
        let note = MetaNote {
            action: "auditum.proof",
            tenant: self.access.log_wide_tenant(call),
            target_type: "log",
            target_id: log.name().to_string(),
            details: object(details),
        };
        self.access.record(call, note).await
    }

    /// The latest signed checkpoint of a log (empty name: `default`).
    pub async fn checkpoint(&self, call: &Call, log_name: &str) -> Result<String> {
        let details = serde_json::json!({ "log": auditum_format::rules::echo(log_name) });
        let log = self.visible_log(call, log_name, &details).await?;
        let checkpoint = self.basis(log)?.checkpoint;
        self.admit_log(call, log, serde_json::json!({ "log": log.name() })).await?;
        Ok(checkpoint)
    }

    /// The §7 proof document of one sealed event. A seq or id the caller may not see answers
    /// exactly like one that does not exist.
    pub async fn event_proof(&self, call: &Call, log_name: &str, key: Option<EventKey>) -> Result<String> {
        let details = match &key {
            Some(EventKey::Seq(seq)) => serde_json::json!({ "log": auditum_format::rules::echo(log_name), "seq": seq }),
            Some(EventKey::Id(id)) => {
                serde_json::json!({ "log": auditum_format::rules::echo(log_name), "event_id": auditum_format::rules::echo(id) })
            }
            None => serde_json::json!({ "log": auditum_format::rules::echo(log_name) }),
        };
        let log = self.visible_log(call, log_name, &details).await?;
        let basis = self.basis(log)?;
        let store = log.store().as_ref();
        let no_such_seq = |seq: u64| Error::Proof(proof::Error::NoSuchSeq { log: log.name().to_string(), seq });
        let seq = match key {
            Some(EventKey::Seq(seq)) => {
                let target = format!("{}/{seq}", log.name());
                // A tenant's key asking for a seq in a batch that holds none of its tenant's
                // events gets "not found" before anything is read (or named, if archived).
                if let Some(own) = call.caller.tenant()
                    && let Ok(entry) = basis.entry_for_seq(seq)
                    && entry.tenants.as_ref().is_some_and(|tenants| !tenants.iter().any(|tenant| tenant == own))
                {
                    return Err(self.not_found(call, no_such_seq(seq), "event", target, details).await);
                }
                if seq >= log.committed_next().0 {
                    // Not sealed yet: say so only to a caller who may see the event.
                    let unsealed = log.unsealed_events();
                    let visible = unsealed
                        .iter()
                        .find(|event| event.seq.0 == seq)
                        .is_some_and(|event| call.caller.require_tenant("seq", &event.tenant_id).is_ok());
                    if !visible {
                        return Err(self.not_found(call, no_such_seq(seq), "event", target, details).await);
                    }
                }
                seq
            }
            Some(EventKey::Id(id)) => {
                if id.is_empty() || id.len() > MAX_ID_BYTES {
                    return Err(Error::bad_request("event_id", format!("must be 1 to {MAX_ID_BYTES} bytes")));
                }
                // A tenant key looks only among its tenant's events: another tenant's ids stay invisible.
                let found = proof::find_by_id(store, &basis, &id, call.caller.tenant()).await?;
                let seqs = found.seqs;
                match seqs.as_slice() {
                    // Not among the readable batches, but some could not be read: say which.
                    [] if !found.archived.is_empty() => {
                        return Err(Error::Archived(crate::archive::name_archived(log.name(), log.store(), &found.archived).await));
                    }
                    [] => {
                        let error = Error::Proof(proof::Error::NoSuchId { log: log.name().to_string(), id });
                        return Err(self.not_found(call, error, "event", log.name().to_string(), details).await);
                    }
                    [seq] => *seq,
                    _ => return Err(proof::Error::AmbiguousId { id, count: seqs.len(), seqs }.into()),
                }
            }
            None => return Err(Error::bad_request("key", "set seq or event_id")),
        };
        let proof_json = archived_named(log, &basis, proof::build(store, &self.cache, &basis, seq).await).await?;
        // The proof carries the whole event: only its tenant's keys may have it.
        let tenant =
            auditum_format::proof::event_tenant(&proof_json).map_err(|error| Error::Incomplete(format!("proof document: {error}")))?;
        let target = format!("{}/{seq}", log.name());
        if call.caller.require_tenant("seq", &tenant).is_err() {
            return Err(self.not_found(call, no_such_seq(seq), "event", target, details).await);
        }
        let note = MetaNote { action: "auditum.proof", tenant, target_type: "event", target_id: target, details: object(details) };
        self.access.record(call, note).await?;
        Ok(proof_json)
    }

    /// The RFC 9162 consistency path between two ledger sizes.
    pub async fn consistency_proof(&self, call: &Call, log_name: &str, old_size: u64, new_size: u64) -> Result<Vec<Hash>> {
        let requested = serde_json::json!({ "log": auditum_format::rules::echo(log_name), "old_size": old_size, "new_size": new_size });
        let log = self.visible_log(call, log_name, &requested).await?;
        let basis = self.basis(log)?;
        if old_size == 0 || old_size > new_size {
            return Err(Error::bad_request("old_size", format!("must be between 1 and new_size ({new_size}), got {old_size}")));
        }
        if new_size > basis.checkpoint_size {
            return Err(Error::BeyondCheckpoint { new_size, checkpoint_size: basis.checkpoint_size });
        }
        let details = serde_json::json!({ "log": log.name(), "old_size": old_size, "new_size": new_size });
        self.admit_log(call, log, details).await?;
        merkle::consistency_path(&basis.entry_hashes[..new_size as usize], old_size as usize)
            .map_err(|error| Error::Incomplete(error.to_string()))
    }

    /// Verifies a whole log from its store, platform keys only; updates arrive on the channel.
    pub async fn verify_log(&self, call: &Call, log_name: &str) -> Result<tokio::sync::mpsc::Receiver<Result<VerifyUpdate>>> {
        let note = |target_id: String| MetaNote {
            action: "auditum.proof",
            tenant: self.access.log_wide_tenant(call),
            target_type: "log",
            target_id: target_id.clone(),
            details: object(serde_json::json!({ "log": target_id, "verify": true })),
        };
        // Verification reads every tenant's events of the log: platform keys only, refused
        // before the log is looked up, so the refusal says nothing about which logs exist.
        if let Err(denied) = call.caller.require_platform("VerifyLog") {
            return Err(self.access.deny(call, denied, note(auditum_format::rules::echo(log_name))).await);
        }
        let log = self.logs.by_name(log_name).ok_or_else(|| Error::NoSuchLog { name: log_name.to_string() })?.clone();
        self.access.record(call, note(log.name().to_string())).await?;
        Ok(start_verification(log))
    }
}

fn start_verification(log: Log) -> tokio::sync::mpsc::Receiver<Result<VerifyUpdate>> {
    use tracing::Instrument;
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<VerifyUpdate>>(64);
    tokio::spawn(
        async move {
            let progress_sender = sender.clone();
            let progress = move |progress: &auditum_verify::Progress| {
                let _ = progress_sender.try_send(Ok(VerifyUpdate {
                    entries_checked: progress.entries_checked,
                    events_checked: progress.events_checked,
                    ..Default::default()
                }));
            };
            // The server knows its log: one with nothing sealed yet is simply empty.
            let options = auditum_verify::Options { allow_empty: true, ..Default::default() };
            match auditum_verify::verify_log_with(log.store().as_ref(), log.name(), &log.verifier(), &options, progress).await {
                Ok(report) => {
                    for problem in &report.problems {
                        let update = VerifyUpdate {
                            entries_checked: report.entries,
                            events_checked: report.events,
                            problem: format!("{}: {}", problem.kind, problem.detail),
                            object: problem.object.clone(),
                            ..Default::default()
                        };
                        if sender.send(Ok(update)).await.is_err() {
                            return;
                        }
                    }
                    let _ = sender
                        .send(Ok(VerifyUpdate {
                            entries_checked: report.entries,
                            events_checked: report.events,
                            done: true,
                            ok: report.ok(),
                            problem: if report.ok() { String::new() } else { report.summary() },
                            ..Default::default()
                        }))
                        .await;
                }
                Err(error) => {
                    let _ = sender.send(Err(Error::Unreachable(format!("verification could not read the store: {error}")))).await;
                }
            }
        }
        .in_current_span(),
    );
    receiver
}

/// A proof that needs an archived batch answers with the batch named (DESIGN §12).
async fn archived_named<T>(log: &Log, basis: &ProofBasis, result: Result<T, proof::Error>) -> Result<T> {
    match result {
        Err(proof::Error::Store(auditum_store::Error::Archived { key })) => {
            let entries: Vec<_> = basis.entries.iter().filter(|entry| entry.object == key).cloned().collect();
            Err(Error::Archived(crate::archive::name_archived(log.name(), log.store(), &entries).await))
        }
        other => Ok(other?),
    }
}
