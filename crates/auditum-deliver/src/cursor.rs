//! Durable cursors under the data directory: the next seq a sink or the alert rules of a log
//! will consider. Written to a temporary file, fsynced and renamed, so a crash leaves the old
//! cursor or the new one, never a torn one; a restart resumes from it.

use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Cursor {
    path: PathBuf,
}

impl Cursor {
    /// `<dir>/<name>.cursor`.
    pub fn new(dir: &Path, name: &str) -> Cursor {
        Cursor { path: dir.join(format!("{name}.cursor")) }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The stored next seq; None when never stored.
    pub fn load(&self) -> std::io::Result<Option<u64>> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => text.trim().parse().map(Some).map_err(|error| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {text:?} is not a seq: {error}", self.path.display()))
            }),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Stores `next` durably (blocking: call it off the async runtime).
    pub fn store(&self, next: u64) -> std::io::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let temporary = self.path.with_extension("cursor.tmp");
        let mut file = std::fs::File::create(&temporary)?;
        writeln!(file, "{next}")?;
        file.sync_all()?;
        std::fs::rename(&temporary, &self.path)?;
        std::fs::File::open(dir)?.sync_all()
    }

    /// [`Cursor::store`] on the blocking pool.
    pub async fn store_async(&self, next: u64) -> std::io::Result<()> {
        let cursor = self.clone();
        tokio::task::spawn_blocking(move || cursor.store(next)).await.map_err(std::io::Error::other)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_starts_empty() {
        let dir = tempfile::tempdir().unwrap();
        let cursor = Cursor::new(&dir.path().join("sinks/secops"), "default");
        assert_eq!(cursor.load().unwrap(), None);
        cursor.store(42).unwrap();
        cursor.store(43).unwrap();
        assert_eq!(cursor.load().unwrap(), Some(43));
        std::fs::write(cursor.path(), "x").unwrap();
        assert!(cursor.load().is_err(), "a damaged cursor is an error, not a silent restart");
    }
}
