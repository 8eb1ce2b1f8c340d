//! The embedded file store: one file per object under a root directory.
//!
//! Create-only puts write a temporary file, fsync it, make it read-only and hard-link it to the
//! final name: `link` fails if the name exists (the `O_EXCL` guarantee) and, unlike writing the
//! final file in place, a crash never leaves a half-written object at a committed key.

use super::{Error, ObjectMeta, ObjectStore, PutOptions, PutResult, Result, validate_key};
use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub(crate) const TEMP_PREFIX: &str = ".tmp-";

#[derive(Debug, Clone)]
pub struct FileStore {
    url: String,
    root: Arc<PathBuf>,
    /// Serialises put_if_match within the process (one writer per log is fenced elsewhere).
    replace_lock: Arc<std::sync::Mutex<()>>,
}

fn io_error(key: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| {
        if source.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound { key: key.to_string() }
        } else {
            Error::Io { key: key.to_string(), source }
        }
    }
}

fn etag_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

/// Creates every missing directory down to `dir`, fsyncing each parent so the new entries survive a crash.
fn create_dir_all_durable(root: &Path, dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && parent != root
        && parent.starts_with(root)
    {
        create_dir_all_durable(root, parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(error) => return Err(error),
    }
    if let Some(parent) = dir.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

fn temp_path(final_path: &Path) -> PathBuf {
    let name = final_path.file_name().and_then(|name| name.to_str()).unwrap_or("object");
    final_path.with_file_name(format!("{TEMP_PREFIX}{name}-{:016x}", rand::random::<u64>()))
}

fn write_durable_temp(path: &Path, body: &[u8], read_only: bool) -> std::io::Result<()> {
    let mut file = OpenOptions::new().write(true).create_new(true).open(path)?;
    file.write_all(body)?;
    file.sync_all()?;
    if read_only {
        file.set_permissions(fs::Permissions::from_mode(0o444))?;
    }
    Ok(())
}

impl FileStore {
    pub fn open(url: &str, path: &str) -> Result<FileStore> {
        if path.is_empty() {
            return Err(Error::InvalidUrl { url: url.to_string(), reason: "empty path".into() });
        }
        let root = PathBuf::from(path);
        fs::create_dir_all(&root).map_err(io_error(path))?;
        Ok(FileStore { url: url.to_string(), root: Arc::new(root), replace_lock: Arc::new(std::sync::Mutex::new(())) })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf> {
        validate_key(key)?;
        Ok(self.root.join(key))
    }

    async fn blocking<T: Send + 'static>(&self, work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        tokio::task::spawn_blocking(work).await.map_err(|error| Error::Task(error.to_string()))?
    }

    fn put_create_only_blocking(root: &Path, path: &Path, key: &str, body: &[u8]) -> Result<PutResult> {
        let dir = path.parent().ok_or_else(|| Error::InvalidKey { key: key.to_string(), reason: "no parent" })?;
        create_dir_all_durable(root, dir).map_err(io_error(key))?;
        let temp = temp_path(path);
        let result = write_durable_temp(&temp, body, true).and_then(|()| fs::hard_link(&temp, path));
        let _ = fs::remove_file(&temp);
        match result {
            Ok(()) => {}
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists { key: key.to_string() });
            }
            Err(error) => return Err(io_error(key)(error)),
        }
        sync_dir(dir).map_err(io_error(key))?;
        Ok(PutResult { version: None, etag: etag_of(body) })
    }
}

#[async_trait]
impl ObjectStore for FileStore {
    fn url(&self) -> &str {
        &self.url
    }

    async fn put_create_only(&self, key: &str, body: Bytes, _options: &PutOptions) -> Result<PutResult> {
        // Retention has no file-system equivalent beyond the read-only mode set on every object.
        let path = self.path_of(key)?;
        let root = self.root.clone();
        let key = key.to_string();
        self.blocking(move || Self::put_create_only_blocking(&root, &path, &key, &body)).await
    }

    async fn put_if_match(&self, key: &str, body: Bytes, expected_etag: Option<&str>) -> Result<PutResult> {
        let path = self.path_of(key)?;
        let root = self.root.clone();
        let key = key.to_string();
        let expected = expected_etag.map(str::to_string);
        let lock = self.replace_lock.clone();
        self.blocking(move || {
            let _guard = lock.lock().map_err(|_| Error::Task("file store lock poisoned".into()))?;
            let current = match fs::read(&path) {
                Ok(bytes) => Some(etag_of(&bytes)),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => None,
                Err(error) => return Err(io_error(&key)(error)),
            };
            if current != expected {
                return Err(Error::PreconditionFailed { key });
            }
            let dir = path.parent().ok_or_else(|| Error::InvalidKey { key: key.clone(), reason: "no parent" })?;
            create_dir_all_durable(&root, dir).map_err(io_error(&key))?;
            let temp = temp_path(&path);
            let result = write_durable_temp(&temp, &body, false).and_then(|()| fs::rename(&temp, &path));
            if result.is_err() {
                let _ = fs::remove_file(&temp);
            }
            result.map_err(io_error(&key))?;
            sync_dir(dir).map_err(io_error(&key))?;
            Ok(PutResult { version: None, etag: etag_of(&body) })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        let lock = self.replace_lock.clone();
        self.blocking(move || {
            // Under the replace lock: a put_if_match never sees the object vanish between its check and its rename.
            let _guard = lock.lock().map_err(|_| Error::Task("file store lock poisoned".into()))?;
            // A read-only file goes too: removal needs only the directory writable.
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(error) => return Err(Error::Io { key, source: error }),
            }
            let dir = path.parent().ok_or_else(|| Error::InvalidKey { key: key.clone(), reason: "no parent" })?;
            sync_dir(dir).map_err(|source| Error::Io { key, source })
        })
        .await
    }

    async fn get(&self, key: &str, _version: Option<&str>) -> Result<Bytes> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        self.blocking(move || fs::read(&path).map(Bytes::from).map_err(io_error(&key))).await
    }

    async fn get_range(&self, key: &str, _version: Option<&str>, range: Range<u64>) -> Result<Bytes> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        self.blocking(move || {
            let mut file = File::open(&path).map_err(io_error(&key))?;
            let size = file.metadata().map_err(io_error(&key))?.len();
            let end = range.end.min(size);
            let start = range.start.min(end);
            let mut buf = vec![0u8; (end - start) as usize];
            file.seek(SeekFrom::Start(start)).map_err(io_error(&key))?;
            file.read_exact(&mut buf).map_err(io_error(&key))?;
            Ok(Bytes::from(buf))
        })
        .await
    }

    fn local_path(&self, key: &str) -> Option<PathBuf> {
        self.path_of(key).ok()
    }

    async fn head(&self, key: &str, _version: Option<&str>) -> Result<ObjectMeta> {
        let path = self.path_of(key)?;
        let key = key.to_string();
        self.blocking(move || {
            let bytes = fs::read(&path).map_err(io_error(&key))?;
            Ok(ObjectMeta { key, size: bytes.len() as u64, etag: Some(etag_of(&bytes)), ..ObjectMeta::default() })
        })
        .await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        self.blocking(move || {
            // Walk only from the deepest directory the prefix names.
            let start_dir = match prefix.rfind('/') {
                Some(slash) => root.join(&prefix[..slash]),
                None => root.to_path_buf(),
            };
            let mut found = Vec::new();
            let mut pending = vec![start_dir];
            while let Some(dir) = pending.pop() {
                let entries = match fs::read_dir(&dir) {
                    Ok(entries) => entries,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(error) => return Err(io_error(&prefix)(error)),
                };
                for entry in entries {
                    let entry = entry.map_err(io_error(&prefix))?;
                    let name = entry.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if name.starts_with(TEMP_PREFIX) {
                        continue;
                    }
                    let file_type = entry.file_type().map_err(io_error(&prefix))?;
                    let path = entry.path();
                    if file_type.is_dir() {
                        pending.push(path);
                        continue;
                    }
                    let Ok(relative) = path.strip_prefix(root.as_path()) else { continue };
                    let Some(key) = relative.to_str() else { continue };
                    if !key.starts_with(&prefix) {
                        continue;
                    }
                    let size = entry.metadata().map_err(io_error(key))?.len();
                    found.push(ObjectMeta { key: key.to_string(), size, ..ObjectMeta::default() });
                }
            }
            found.sort_by(|left, right| left.key.cmp(&right.key));
            Ok(found)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn conforms_and_deletes_read_only_objects() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let store = FileStore::open(&format!("file://{path}"), path).unwrap();
        crate::conformance::run(&store).await;
        // Immutable objects are read-only files; deleting one needs only the directory.
        store.put_create_only("keyring/erased/t/k", Bytes::new(), &PutOptions::default()).await.unwrap();
        let file = dir.path().join("keyring/erased/t/k");
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o444);
        store.delete("keyring/erased/t/k").await.unwrap();
        assert!(!file.exists());
        store.check_keyring_ready().await.unwrap();
    }
}
