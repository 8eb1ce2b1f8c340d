//! Exclusive ownership of a directory (the data directory, each WAL directory) by one process:
//! two writers on one WAL would give two events the same seq. The lock is an advisory `flock`
//! on `<dir>/LOCK`, which the kernel releases when its holder dies, so a lock left by a crashed
//! (even `kill -9`ed) process is taken over at the next start; the file names the holder's pid.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "{dir} is in use by another auditum process ({holder}); stop it first: two writers on one write-ahead log would give two events the same seq"
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Held for as long as the value lives.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes `<dir>/LOCK` (creating `dir`), or says who holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, Error> {
        let path = dir.join("LOCK");
        let io = |source| Error::Io { path: path.clone(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.split_whitespace().next().and_then(|pid| pid.parse::<u32>().ok()) {
                    Some(pid) => format!("pid {pid}"),
                    None => "pid unknown".to_string(),
                };
                return Err(Error::Held { dir: dir.to_path_buf(), holder });
            }
            Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
        }
        // Ours now: say who we are, for the next process that finds it held.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(format!("{}\n", std::process::id()).as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(DirLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        // flock is per open file description: a second open in this process conflicts too.
        let refused = DirLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(refused.contains(&format!("pid {}", std::process::id())), "{refused}");
        drop(first);
        DirLock::acquire(dir.path()).expect("free again once the holder is gone");
    }
}
