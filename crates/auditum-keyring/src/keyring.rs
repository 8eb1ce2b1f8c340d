//! One log's keyring: keys loaded, created and destroyed in the store, cached unwrapped.

use crate::cache::{Fifo, pair_key, pair_prefix};
use crate::envelope::{self, VALUE_PREFIX};
use crate::kek::Kek;
use crate::{ENCRYPTABLE_COLUMNS, ERASED, EncryptedColumns, Error, Result, UNDECRYPTABLE, column, column_mut, paths};
use auditum_format::event::EventRecord;
use auditum_store::{Error as StoreError, ObjectStore, PutOptions};
use aws_lc_rs::aead::LessSafeKey;
use aws_lc_rs::hmac;
use bytes::Bytes;
use std::sync::{Arc, Mutex, MutexGuard};

/// The key a subject's events are encrypted under now.
#[derive(Clone)]
struct SubjectKey {
    kid: Arc<str>,
    key: Arc<LessSafeKey>,
}

/// One log's keyring: wraps and unwraps keys under the KEK, caches unwrapped keys (bounded),
/// encrypts and decrypts records.
pub struct Keyring {
    store: Arc<dyn ObjectStore>,
    log: String,
    kek: Kek,
    /// Encryption (until its events are durable: [`KeysInUse`]) and cache fills read, erasure
    /// writes: nothing acknowledged after an erase returns uses an erased key, and no fill puts
    /// an erased key back in a cache.
    erase_lock: Arc<tokio::sync::RwLock<()>>,
    /// One key creation at a time per (tenant, subject) shard in this process.
    create_locks: [tokio::sync::Mutex<()>; CREATE_SHARDS],
    /// tenant → secret (as its HMAC key).
    tenants: Mutex<Fifo<Arc<hmac::Key>>>,
    /// pair_key(tenant, subject) → the subject's current key.
    subjects: Mutex<Fifo<SubjectKey>>,
    /// pair_key(tenant, kid) → data key, None when gone.
    kids: Mutex<Fifo<Option<Arc<LessSafeKey>>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Keyring").field("store", &self.store.url()).field("log", &self.log).field("kek", &self.kek).finish()
    }
}

/// Key creations that may run at once (different subjects), each a few store round trips.
const CREATE_SHARDS: usize = 64;

/// Held by an append from the encryption of its events until they are durable: an erasure
/// waits for it, so no event acknowledged after an erasure returns carries an erased key.
#[must_use = "hold it until the encrypted events are durable"]
pub struct KeysInUse(#[allow(dead_code)] tokio::sync::OwnedRwLockReadGuard<()>);

/// A poisoned cache is still a valid cache (every update is a single map operation).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn check_tenant(tenant: &str) -> Result<()> {
    if paths::is_valid_tenant(tenant) { Ok(()) } else { Err(Error::InvalidTenant { tenant: tenant.to_string() }) }
}

impl Keyring {
    /// Opens the keyring of `log` in `store`: the store must be fit for a keyring, and the first
    /// tenant secret (if any) must unwrap under `kek`. Writes nothing.
    pub async fn open(store: Arc<dyn ObjectStore>, log: &str, kek: Kek, cache_capacity: usize) -> Result<Keyring> {
        store.check_keyring_ready().await?;
        let keyring = Keyring {
            store,
            log: log.to_string(),
            kek,
            erase_lock: Arc::new(tokio::sync::RwLock::new(())),
            create_locks: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            tenants: Mutex::new(Fifo::new(cache_capacity)),
            subjects: Mutex::new(Fifo::new(cache_capacity)),
            kids: Mutex::new(Fifo::new(cache_capacity)),
        };
        match crate::marker::read(keyring.store.as_ref(), log).await? {
            Some((marker, _)) => crate::marker::check(log, &marker, &keyring.kek)?,
            // No marker yet (an empty keyring): a tenant secret, if any, must open.
            None => {
                let prefix = paths::tenants_prefix(log);
                let listed = keyring.store.list(&prefix).await?;
                if let Some(tenant) = listed.iter().find_map(|meta| paths::child(&meta.key, &prefix)) {
                    keyring.tenant_secret(tenant, false).await?;
                }
            }
        }
        Ok(keyring)
    }

    /// Encrypts the `columns` of each record in place under its subject's key (`subjects[i]`,
    /// or `records[i].actor_id` when None), creating keys on first use. Every value is
    /// encrypted, one that looks like a ciphertext too. Hold the returned guard until the
    /// records are durable.
    pub async fn encrypt_records(
        &self,
        records: &mut [EventRecord],
        subjects: &[Option<String>],
        columns: EncryptedColumns,
    ) -> Result<KeysInUse> {
        let reading = KeysInUse(self.erase_lock.clone().read_owned().await);
        if columns.is_empty() || records.is_empty() {
            return Ok(reading);
        }
        let values = records
            .iter()
            .map(|record| (0..ENCRYPTABLE_COLUMNS.len()).filter(|index| columns.has(*index) && column(record, *index).is_some()).count())
            .sum();
        let (mut cache_key, mut aad, mut scratch, mut nonces) = (String::new(), Vec::new(), Vec::new(), envelope::Nonces::new(values));
        for (index, record) in records.iter_mut().enumerate() {
            check_tenant(&record.tenant_id)?;
            let subject = subjects.get(index).and_then(Option::as_deref).unwrap_or(&record.actor_id);
            let cached = lock(&self.subjects).get(pair_key(&mut cache_key, &record.tenant_id, subject)).cloned();
            let current = match cached {
                Some(current) => current,
                None => self.resolve_subject(&record.tenant_id, subject).await?,
            };
            for (column_index, name) in ENCRYPTABLE_COLUMNS.iter().enumerate() {
                if !columns.has(column_index) {
                    continue;
                }
                // Every value is encrypted, even one that looks like a ciphertext (a request's
                // user agent reaches meta-audit records as sent): nothing plain is left behind.
                let Some(plaintext) = column(record, column_index) else { continue };
                envelope::field_aad(&mut aad, &record.tenant_id, &record.id, name);
                let sealed = envelope::seal_value(&current.key, &current.kid, &aad, plaintext, nonces.next()?, &mut scratch)?;
                if let Some(slot) = column_mut(record, column_index) {
                    *slot = Some(sealed);
                }
            }
        }
        Ok(reading)
    }

    /// Decrypts in place every encryptable column holding an `auditum:enc:v1:` value: the
    /// plaintext, ERASED when its key is gone, UNDECRYPTABLE when it is malformed, fails
    /// authentication or its key cannot be read (logged). Only an unreachable keyring is Err.
    pub async fn decrypt_records(&self, records: &mut [EventRecord]) -> Result<()> {
        self.decrypt_each(records.iter_mut()).await
    }

    /// [`Keyring::decrypt_records`] over records wherever they are (rows of a read): one call
    /// for a whole page or export chunk, reusing its buffers.
    pub async fn decrypt_each<'a>(&self, records: impl IntoIterator<Item = &'a mut EventRecord> + Send) -> Result<()> {
        let (mut cache_key, mut aad, mut sealed) = (String::new(), Vec::new(), Vec::new());
        for record in records {
            for (column_index, name) in ENCRYPTABLE_COLUMNS.iter().enumerate() {
                let Some(value) = column(record, column_index) else { continue };
                if !value.starts_with(VALUE_PREFIX) {
                    continue;
                }
                let plaintext = match envelope::parse_value(value, &mut sealed) {
                    Err(reason) => {
                        tracing::warn!(log = %self.log, event = %record.id, column = name, reason, "encrypted value is malformed: shown as {UNDECRYPTABLE}");
                        UNDECRYPTABLE.to_string()
                    }
                    Ok(kid) => match self.key_for_read(&record.tenant_id, kid, &mut cache_key).await {
                        // An unreachable keyring is the caller's to retry; a damaged key is one
                        // value's problem, not the whole read's.
                        Err(error) if error.is_transient() => return Err(error),
                        Err(error) => {
                            tracing::error!(log = %self.log, event = %record.id, column = name, kid, %error, "cannot read the data key: shown as {UNDECRYPTABLE}");
                            UNDECRYPTABLE.to_string()
                        }
                        Ok(None) => ERASED.to_string(),
                        Ok(Some(key)) => {
                            envelope::field_aad(&mut aad, &record.tenant_id, &record.id, name);
                            envelope::open_value(&key, &aad, &mut sealed).unwrap_or_else(|| {
                                tracing::warn!(log = %self.log, event = %record.id, column = name, kid, "encrypted value fails authentication (altered, or moved from another event or column): shown as {UNDECRYPTABLE}");
                                UNDECRYPTABLE.to_string()
                            })
                        }
                    },
                };
                if let Some(slot) = column_mut(record, column_index) {
                    *slot = Some(plaintext);
                }
            }
        }
        Ok(())
    }

    /// `decrypt_records` for one shared record, cloning it only when something is encrypted.
    pub async fn decrypt_shared(&self, record: &Arc<EventRecord>) -> Result<Arc<EventRecord>> {
        let encrypted =
            (0..ENCRYPTABLE_COLUMNS.len()).any(|index| column(record, index).is_some_and(|value| value.starts_with(VALUE_PREFIX)));
        if !encrypted {
            return Ok(Arc::clone(record));
        }
        let mut copy = EventRecord::clone(record);
        self.decrypt_records(std::slice::from_mut(&mut copy)).await?;
        Ok(Arc::new(copy))
    }

    /// Erases every generation of a subject: for each, the tombstone first, then the key.
    /// Returns the kids whose key was destroyed (empty when the subject never had one).
    pub async fn erase_subject(&self, tenant_id: &str, subject_id: &str) -> Result<Vec<String>> {
        check_tenant(tenant_id)?;
        let _erasing = self.erase_lock.write().await;
        let mut erased = Vec::new();
        let mut cache_key = String::new();
        // Forgotten before anything is deleted: an erasure cut off half way never leaves a
        // destroyed key in use from the cache.
        lock(&self.subjects).remove(pair_key(&mut cache_key, tenant_id, subject_id));
        let Some(secret) = self.tenant_secret(tenant_id, false).await? else { return Ok(erased) };
        for generation in 0u64.. {
            let kid = envelope::derive_kid(&secret, subject_id, generation);
            lock(&self.kids).insert(pair_key(&mut cache_key, tenant_id, &kid).to_string(), None);
            let key_path = paths::data_key(&self.log, tenant_id, &kid);
            let has_key = self.exists(&key_path).await?;
            if has_key {
                self.write_tombstone(tenant_id, &kid).await?;
                self.store.delete(&key_path).await?;
                tracing::info!(log = %self.log, tenant = tenant_id, kid, "erased a subject's data key");
            } else if !self.exists(&paths::tombstone(&self.log, tenant_id, &kid)).await? {
                // The first generation never created: forget the guess.
                lock(&self.kids).remove(pair_key(&mut cache_key, tenant_id, &kid));
                break;
            }
            if has_key {
                erased.push(kid);
            }
        }
        Ok(erased)
    }

    /// Forgets every cached key: a read-only node calls it every follow interval, so an erasure
    /// made by the writer takes effect there within that interval (reads refill from the store,
    /// where tombstones say what is gone).
    pub fn forget_cached(&self) {
        lock(&self.tenants).retain(|_| false);
        lock(&self.subjects).retain(|_| false);
        lock(&self.kids).retain(|_| false);
    }

    /// Erases a tenant: a tombstone and deletion for each of its data keys, then its secret.
    /// Returns the number of keys erased. The tenant's next event gets a new secret.
    pub async fn erase_tenant(&self, tenant_id: &str) -> Result<u64> {
        check_tenant(tenant_id)?;
        let _erasing = self.erase_lock.write().await;
        // Forgotten before anything is deleted (see erase_subject); reads fill the cache again
        // from the store, where tombstones say what is gone.
        let tenant_prefix = pair_prefix(tenant_id);
        lock(&self.tenants).remove(tenant_id);
        lock(&self.subjects).retain(|key| !key.starts_with(&tenant_prefix));
        lock(&self.kids).retain(|key| !key.starts_with(&tenant_prefix));
        let prefix = paths::tenant_keys_prefix(&self.log, tenant_id);
        let listed = self.store.list(&prefix).await?;
        let mut count = 0u64;
        for kid in listed.iter().filter_map(|meta| paths::child(&meta.key, &prefix)) {
            self.write_tombstone(tenant_id, kid).await?;
            self.store.delete(&paths::data_key(&self.log, tenant_id, kid)).await?;
            count += 1;
        }
        self.store.delete(&paths::tenant_secret(&self.log, tenant_id)).await?;
        tracing::info!(log = %self.log, tenant = tenant_id, keys = count, "erased a tenant's keyring");
        Ok(count)
    }

    /// The kid a subject's next event would use; None when the tenant has no secret yet.
    pub async fn current_kid(&self, tenant_id: &str, subject_id: &str) -> Result<Option<String>> {
        check_tenant(tenant_id)?;
        let _reading = self.erase_lock.read().await;
        if let Some(current) = lock(&self.subjects).get(pair_key(&mut String::new(), tenant_id, subject_id)) {
            return Ok(Some(current.kid.to_string()));
        }
        let Some(secret) = self.tenant_secret(tenant_id, false).await? else { return Ok(None) };
        for generation in 0u64.. {
            let kid = envelope::derive_kid(&secret, subject_id, generation);
            if !self.exists(&paths::tombstone(&self.log, tenant_id, &kid)).await? {
                return Ok(Some(kid));
            }
        }
        Ok(None)
    }

    /// The subject's current key, loaded or created (caller holds the erase lock for reading).
    async fn resolve_subject(&self, tenant: &str, subject: &str) -> Result<SubjectKey> {
        let mut cache_key = String::new();
        let shard = {
            use std::hash::{Hash, Hasher};
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            pair_key(&mut cache_key, tenant, subject).hash(&mut hasher);
            hasher.finish() as usize % CREATE_SHARDS
        };
        let _creating = self.create_locks[shard].lock().await;
        if let Some(current) = lock(&self.subjects).get(pair_key(&mut cache_key, tenant, subject)) {
            return Ok(current.clone());
        }
        let Some(secret) = self.tenant_secret(tenant, true).await? else {
            return Err(Error::Corrupt { key: paths::tenant_secret(&self.log, tenant), reason: "created but not readable".into() });
        };
        for generation in 0u64.. {
            let kid = envelope::derive_kid(&secret, subject, generation);
            // An erased kid is never recreated, even if its key survived a cut-off erasure.
            if self.exists(&paths::tombstone(&self.log, tenant, &kid)).await? {
                continue;
            }
            let key = match self.load_key(tenant, &kid).await? {
                Some(key) => key,
                None => self.create_key(tenant, &kid).await?,
            };
            lock(&self.kids).insert(pair_key(&mut cache_key, tenant, &kid).to_string(), Some(key.clone()));
            let current = SubjectKey { kid: Arc::from(kid), key };
            lock(&self.subjects).insert(pair_key(&mut cache_key, tenant, subject).to_string(), current.clone());
            return Ok(current);
        }
        Err(Error::Corrupt { key: paths::tenant_keys_prefix(&self.log, tenant), reason: "every generation is erased".into() })
    }

    /// The data key of a kid for reading: None when gone. Fills the cache under the erase lock.
    async fn key_for_read(&self, tenant: &str, kid: &str, cache_key: &mut String) -> Result<Option<Arc<LessSafeKey>>> {
        if let Some(cached) = lock(&self.kids).get(pair_key(cache_key, tenant, kid)) {
            return Ok(cached.clone());
        }
        let _reading = self.erase_lock.read().await;
        if let Some(cached) = lock(&self.kids).get(pair_key(cache_key, tenant, kid)) {
            return Ok(cached.clone());
        }
        // The tombstone first: an erasure cut off between it and the key's deletion is still an
        // erasure.
        let key = if !paths::is_valid_tenant(tenant) || self.exists(&paths::tombstone(&self.log, tenant, kid)).await? {
            None
        } else {
            let key = self.load_key(tenant, kid).await?;
            if key.is_none() {
                tracing::warn!(log = %self.log, tenant, kid, "data key is missing and has no tombstone: its values read as {ERASED}");
            }
            key
        };
        lock(&self.kids).insert(pair_key(cache_key, tenant, kid).to_string(), key.clone());
        Ok(key)
    }

    /// Reads and unwraps a data key; None when its object does not exist.
    async fn load_key(&self, tenant: &str, kid: &str) -> Result<Option<Arc<LessSafeKey>>> {
        let object_key = paths::data_key(&self.log, tenant, kid);
        match self.store.get(&object_key, None).await {
            Ok(body) => Ok(Some(Arc::new(envelope::aead_key(&envelope::unwrap(&self.kek, &object_key, &body)?)))),
            Err(StoreError::NotFound { .. }) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Creates a data key (create-only); one created meanwhile elsewhere wins and is used.
    async fn create_key(&self, tenant: &str, kid: &str) -> Result<Arc<LessSafeKey>> {
        let object_key = paths::data_key(&self.log, tenant, kid);
        let bytes = crate::kek::random_32();
        let body = envelope::wrap(&self.kek, &object_key, &bytes)?;
        match self.store.put_create_only(&object_key, Bytes::from(body), &PutOptions::default()).await {
            Ok(_) => Ok(Arc::new(envelope::aead_key(&bytes))),
            Err(StoreError::AlreadyExists { .. }) => self
                .load_key(tenant, kid)
                .await?
                .ok_or_else(|| Error::Corrupt { key: object_key, reason: "exists and then does not (deleted meanwhile?)".into() }),
            Err(error) => Err(error.into()),
        }
    }

    /// A tenant's secret, from the cache or the store; created when `create` and absent.
    async fn tenant_secret(&self, tenant: &str, create: bool) -> Result<Option<Arc<hmac::Key>>> {
        if let Some(secret) = lock(&self.tenants).get(tenant) {
            return Ok(Some(secret.clone()));
        }
        let object_key = paths::tenant_secret(&self.log, tenant);
        let bytes = match self.store.get(&object_key, None).await {
            Ok(body) => envelope::unwrap(&self.kek, &object_key, &body)?,
            Err(StoreError::NotFound { .. }) if create => {
                // The keyring's first key names its KEK (checked at every start).
                crate::marker::ensure(self.store.as_ref(), &self.log, &self.kek).await?;
                let bytes = crate::kek::random_32();
                let body = envelope::wrap(&self.kek, &object_key, &bytes)?;
                match self.store.put_create_only(&object_key, Bytes::from(body), &PutOptions::default()).await {
                    Ok(_) => bytes,
                    Err(StoreError::AlreadyExists { .. }) => {
                        envelope::unwrap(&self.kek, &object_key, &self.store.get(&object_key, None).await?)?
                    }
                    Err(error) => return Err(error.into()),
                }
            }
            Err(StoreError::NotFound { .. }) => return Ok(None),
            Err(error) => return Err(error.into()),
        };
        let secret = Arc::new(envelope::secret_key(&bytes));
        lock(&self.tenants).insert(tenant.to_string(), secret.clone());
        Ok(Some(secret))
    }

    async fn write_tombstone(&self, tenant: &str, kid: &str) -> Result<()> {
        let object_key = paths::tombstone(&self.log, tenant, kid);
        match self.store.put_create_only(&object_key, Bytes::new(), &PutOptions::default()).await {
            Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    async fn exists(&self, object_key: &str) -> Result<bool> {
        match self.store.head(object_key, None).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound { .. }) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }
}
