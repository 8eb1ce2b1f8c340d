//! `{log}/kek.json`: the fingerprint of the KEK every key of the keyring is wrapped under, or
//! the two of a rotation in progress. `serve` checks it at start, so a wrong KEK or a rotation
//! cut off half way stops the server before it serves a single read, whatever the keyring holds.

use crate::kek::Kek;
use crate::{Error, Result, paths};
use auditum_store::{Error as StoreError, ObjectStore, PutOptions};
use bytes::Bytes;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KekMarker {
    /// The KEK every key is wrapped under (all of them, unless `rotating_to` is set).
    pub kek: String,
    /// A rotation to this KEK has begun and not finished: keys are under one or the other.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotating_to: Option<String>,
}

/// The marker and its etag; None for a keyring written before markers (or empty).
pub async fn read(store: &dyn ObjectStore, log: &str) -> Result<Option<(KekMarker, Option<String>)>> {
    let key = paths::kek_marker(log);
    let body = match store.get(&key, None).await {
        Ok(body) => body,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.into()),
    };
    let etag = store.head(&key, None).await.ok().and_then(|meta| meta.etag);
    let marker = serde_json::from_slice(&body).map_err(|error| Error::Corrupt { key, reason: error.to_string() })?;
    Ok(Some((marker, etag)))
}

/// Writes the marker, replacing the version read at `etag` (None: creates it); the new etag.
pub async fn write(store: &dyn ObjectStore, log: &str, marker: &KekMarker, etag: Option<&str>) -> Result<String> {
    let body = serde_json::to_vec(marker).map_err(|error| Error::Corrupt { key: paths::kek_marker(log), reason: error.to_string() })?;
    Ok(store.put_if_match(&paths::kek_marker(log), Bytes::from(body), etag).await?.etag)
}

/// Creates the marker for `kek` unless one exists (a keyring's first key).
pub async fn ensure(store: &dyn ObjectStore, log: &str, kek: &Kek) -> Result<()> {
    let marker = KekMarker { kek: kek.fingerprint(), rotating_to: None };
    let body = serde_json::to_vec(&marker).map_err(|error| Error::Corrupt { key: paths::kek_marker(log), reason: error.to_string() })?;
    match store.put_create_only(&paths::kek_marker(log), Bytes::from(body), &PutOptions::default()).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(error) => Err(error.into()),
    }
}

/// Refuses a KEK the marker does not name, and a rotation that did not finish.
pub fn check(log: &str, marker: &KekMarker, kek: &Kek) -> Result<()> {
    let key = paths::kek_marker(log);
    if let Some(to) = &marker.rotating_to {
        return Err(Error::RotationIncomplete { key, from: marker.kek.clone(), to: to.clone() });
    }
    if marker.kek != kek.fingerprint() {
        return Err(Error::WrongKek { key, wrapped: marker.kek.clone(), configured: kek.fingerprint() });
    }
    Ok(())
}
