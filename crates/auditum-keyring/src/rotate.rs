//! KEK rotation: re-wraps every tenant secret and data key of a log; nothing else changes.

use crate::envelope;
use crate::kek::Kek;
use crate::marker::{self, KekMarker};
use crate::{Error, Result, paths};
use auditum_store::{Error as StoreError, ObjectStore};
use bytes::Bytes;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RotateReport {
    /// Objects re-wrapped from the old KEK to the new.
    pub rewrapped: u64,
    /// Objects already under the new KEK (a rerun of a rotation cut off half way).
    pub already_new: u64,
}

/// Tries per object when it changes under us (a concurrent rotation or erasure).
const ATTEMPTS: usize = 3;

/// Re-wraps every tenant secret and data key of `log` from `old` to `new` (tombstones have
/// nothing to wrap). Idempotent: objects already under `new` are skipped. Each object is
/// replaced with put_if_match on the etag it was read at; `progress(done, total)` follows each.
pub async fn rotate_kek(
    store: &dyn ObjectStore,
    log: &str,
    old: &Kek,
    new: &Kek,
    mut progress: impl FnMut(u64, u64),
) -> Result<RotateReport> {
    // The marker says a rotation is under way before any key changes, and names the new KEK
    // only once every key is under it: a start in between is refused.
    let (marker, mut etag) = match marker::read(store, log).await? {
        Some((marker, etag)) => (Some(marker), etag),
        None => (None, None),
    };
    let marker_key = paths::kek_marker(log);
    match &marker {
        Some(KekMarker { kek, rotating_to: Some(to) }) if *kek == old.fingerprint() && *to == new.fingerprint() => {}
        Some(KekMarker { kek, rotating_to: Some(to) }) => {
            return Err(Error::RotationIncomplete { key: marker_key, from: kek.clone(), to: to.clone() });
        }
        Some(KekMarker { kek, rotating_to: None }) if *kek != old.fingerprint() && *kek != new.fingerprint() => {
            return Err(Error::WrongKek { key: marker_key, wrapped: kek.clone(), configured: old.fingerprint() });
        }
        _ => {}
    }
    // Already under the new KEK (a rerun after the rotation finished): only counted.
    let finished = matches!(&marker, Some(KekMarker { kek, rotating_to: None }) if *kek == new.fingerprint());
    let rotating = KekMarker { kek: old.fingerprint(), rotating_to: Some(new.fingerprint()) };
    if !finished && marker.as_ref() != Some(&rotating) {
        etag = Some(marker::write(store, log, &rotating, etag.as_deref()).await?);
    }
    let mut objects = Vec::new();
    let tenants = paths::tenants_prefix(log);
    objects.extend(store.list(&tenants).await?.into_iter().filter(|meta| paths::child(&meta.key, &tenants).is_some()).map(|meta| meta.key));
    let keys = paths::keys_root(log);
    objects.extend(
        store
            .list(&keys)
            .await?
            .into_iter()
            .filter(|meta| {
                meta.key
                    .strip_prefix(&keys)
                    .and_then(|rest| rest.split_once('/'))
                    .is_some_and(|(tenant, kid)| paths::is_valid_tenant(tenant) && !kid.is_empty() && !kid.contains('/'))
            })
            .map(|meta| meta.key),
    );
    let total = objects.len() as u64;
    let mut report = RotateReport::default();
    for (done, object_key) in objects.iter().enumerate() {
        rotate_one(store, object_key, old, new, &mut report).await?;
        progress(done as u64 + 1, total);
    }
    marker::write(store, log, &KekMarker { kek: new.fingerprint(), rotating_to: None }, etag.as_deref()).await?;
    tracing::info!(
        log,
        rewrapped = report.rewrapped,
        already_new = report.already_new,
        kek = new.fingerprint_str(),
        "rotated the keyring's kek"
    );
    Ok(report)
}

async fn rotate_one(store: &dyn ObjectStore, object_key: &str, old: &Kek, new: &Kek, report: &mut RotateReport) -> Result<()> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        // The etag first: if the object changes before the get, the replace fails and retries.
        let etag = match store.head(object_key, None).await {
            Ok(meta) => meta.etag,
            // Erased meanwhile: nothing to re-wrap.
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let body = match store.get(object_key, None).await {
            Ok(body) => body,
            Err(StoreError::NotFound { .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        if envelope::wrapped_fingerprint(object_key, &body)? == new.fingerprint_str() {
            report.already_new += 1;
            return Ok(());
        }
        let secret = envelope::unwrap(old, object_key, &body)?;
        let rewrapped = envelope::wrap(new, object_key, &secret)?;
        match store.put_if_match(object_key, Bytes::from(rewrapped), etag.as_deref()).await {
            Ok(_) => {
                report.rewrapped += 1;
                return Ok(());
            }
            Err(StoreError::PreconditionFailed { .. }) if attempt < ATTEMPTS => continue,
            Err(error) => return Err(error.into()),
        }
    }
}
