//! Checkpoints (docs/FORMAT.md, Checkpoints and keys): one signed note per committed ledger size, written create-only, and
//! `{log}/checkpoint` moved to it with If-Match; repaired at start after a crash between the
//! ledger put and the checkpoint puts.

use super::{Error, Log, Result, lock};
use auditum_format::checkpoint;
use auditum_format::merkle;
use auditum_format::paths;
use auditum_store as store;

impl Log {
    pub(super) fn sign_checkpoint_at(&self, size: u64) -> Result<String> {
        let super::CheckpointKey::Signing(signer) = &self.inner.key else {
            return Err(Error::ReadOnly { log: self.name().to_string(), operation: "signing a checkpoint" });
        };
        let shared = lock(&self.inner.shared);
        let size = (size as usize).min(shared.entry_hashes.len());
        Ok(signer.sign_checkpoint(size as u64, &merkle::root(&shared.entry_hashes[..size])))
    }

    /// Writes the immutable note for `size`, then moves `{log}/checkpoint` to it with If-Match.
    pub(super) async fn write_checkpoint(&self, size: u64) -> Result<()> {
        let log = self.name().to_string();
        let store = self.inner.settings.store.clone();
        let note = self.sign_checkpoint_at(size)?;
        let note_key = paths::checkpoint_note_key(&log, size);
        let body = bytes::Bytes::from(note.clone());
        self.put_owned_object("checkpoint", &note_key, body.clone()).await?;
        let latest_key = paths::latest_checkpoint_key(&log);
        loop {
            let expected = lock(&self.inner.shared).checkpoint_etag.clone();
            let replaced =
                self.with_retries("replace latest checkpoint", || store.put_if_match(&latest_key, body.clone(), expected.as_deref())).await;
            match replaced {
                Ok(put) => {
                    let mut shared = lock(&self.inner.shared);
                    shared.checkpoint_etag = Some(put.etag);
                    shared.latest_checkpoint = Some(note);
                    shared.checkpoint_size = size;
                    return Ok(());
                }
                Err(Error::Store { source: store::Error::PreconditionFailed { .. }, .. }) => {
                    // Our previous answer may have been lost: re-read, and only move forward.
                    let (current, current_size) = self.read_latest_checkpoint().await?;
                    if current_size > size {
                        return Err(self.fence(format!("{latest_key} is at size {current_size}, beyond this writer's {size}")));
                    }
                    lock(&self.inner.shared).checkpoint_etag = current;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// (etag, size) of `{log}/checkpoint`, or (None, 0) when absent.
    pub(super) async fn read_latest_checkpoint(&self) -> Result<(Option<String>, u64)> {
        let (etag, checkpoint) = self.read_latest_checkpoint_note().await?;
        Ok((etag, checkpoint.map(|checkpoint| checkpoint.size).unwrap_or(0)))
    }

    /// `{log}/checkpoint` with its etag, its signature checked against this log's key.
    pub(super) async fn read_latest_checkpoint_note(&self) -> Result<(Option<String>, Option<checkpoint::Checkpoint>)> {
        let log = self.name().to_string();
        let store = self.inner.settings.store.clone();
        let key = paths::latest_checkpoint_key(&log);
        let fetched = self
            .with_retries("read latest checkpoint", || async {
                match store.get(&key, None).await {
                    Ok(body) => Ok(Some((body, store.head(&key, None).await?))),
                    Err(store::Error::NotFound { .. }) => Ok(None),
                    Err(error) => Err(error),
                }
            })
            .await?;
        let Some((body, meta)) = fetched else { return Ok((None, None)) };
        let text =
            String::from_utf8(body.to_vec()).map_err(|_| Error::Archive { log: log.clone(), reason: format!("{key} is not utf-8") })?;
        let checkpoint = self
            .verifier()
            .verify_checkpoint(&text)
            .map_err(|error| Error::Archive { log: log.clone(), reason: format!("{key}: {error} (was the signing key replaced?)") })?;
        Ok((meta.etag, Some(checkpoint)))
    }

    /// After a crash between the ledger put and the checkpoint puts, writes what is missing.
    pub(super) async fn repair_checkpoints(&self) -> Result<()> {
        let log = self.name().to_string();
        let (etag, stored) = self.read_latest_checkpoint_note().await?;
        let size = stored.as_ref().map(|checkpoint| checkpoint.size).unwrap_or(0);
        let ledger_size = lock(&self.inner.shared).entries.len() as u64;
        if size > ledger_size {
            // Another writer may have sealed between our ledger listing and this read: if the
            // store's ledger now reaches the checkpoint, that writer owns the log and this one is
            // fenced before it acknowledges anything it could never seal.
            let store = self.inner.settings.store.clone();
            let current_size = self
                .with_retries("list the ledger again", || async {
                    let mut report = auditum_verify::Report::default();
                    auditum_verify::read_ledger(store.as_ref(), &log, &mut report).await.map(|(entries, _)| entries.len() as u64)
                })
                .await?;
            if current_size >= size {
                let _ = self.fence(format!("the ledger grew from {ledger_size} to {current_size} entries while this process started"));
                return Ok(());
            }
            return Err(Error::Archive {
                log,
                reason: format!(
                    "the latest checkpoint covers {size} ledger entries but only {ledger_size} exist: the ledger was truncated; run `auditum verify`"
                ),
            });
        }
        // The stored head must sign the ledger we loaded before either is trusted.
        if let Some(checkpoint) = &stored {
            let root = merkle::root(&lock(&self.inner.shared).entry_hashes[..size as usize]);
            if checkpoint.root != root {
                let key = paths::latest_checkpoint_key(&log);
                return Err(Error::Archive {
                    log,
                    reason: format!("{key} signs a root other than the ledger's at size {size}; run `auditum verify`"),
                });
            }
        }
        {
            let mut shared = lock(&self.inner.shared);
            shared.checkpoint_etag = etag;
            shared.checkpoint_size = size;
        }
        for missing in (size + 1)..=ledger_size {
            tracing::info!(log = %log, size = missing, "writing missing checkpoint");
            self.write_checkpoint(missing).await?;
        }
        if size == ledger_size && size > 0 {
            let note = self.sign_checkpoint_at(size)?;
            lock(&self.inner.shared).latest_checkpoint = Some(note);
        }
        Ok(())
    }
}
