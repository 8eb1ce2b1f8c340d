//! The spool's ownership lock (sdk/SPOOL.md): `spool_dir/lock` holding `<pid> <hostname>\n`.
//! A live owner on this host, an owner on another host, or another client of this process refuse
//! the directory; a dead owner's lock (kill -9) is taken over atomically.

use super::SpoolError;
use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Directories owned by clients of this process (the lock file cannot tell them apart).
static OWNED: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

#[derive(Debug)]
pub struct SpoolLock {
    dir: PathBuf,
    path: PathBuf,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether `pid` is a running (not zombie) process on this host.
fn is_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the parenthesised command name, which may itself hold ')'.
            Ok(stat) => stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).is_some_and(|state| state != "Z"),
            Err(_) => false,
        }
    } else {
        std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    }
}

fn write_synced(path: &Path, text: &str, create_new: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

impl SpoolLock {
    pub fn acquire(dir: &Path) -> Result<SpoolLock, SpoolError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SpoolError::Io { path, source }
        };
        let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
        let mut owned = OWNED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if owned.contains(&dir) {
            return Err(SpoolError::InUse { dir, owner: "another client of this process".to_string() });
        }
        let pid = std::process::id();
        let host = hostname();
        let mine = format!("{pid} {host}\n");
        let path = dir.join("lock");
        for _ in 0..10 {
            match write_synced(&path, &mine, true) {
                Ok(()) => {
                    owned.insert(dir.clone());
                    return Ok(SpoolLock { dir, path });
                }
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(error) => return Err(io(&path)(error)),
            }
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
                Err(error) => return Err(io(&path)(error)),
            };
            let mut parts = text.split_whitespace();
            let owner_pid = parts.next().and_then(|pid| pid.parse::<u32>().ok());
            let owner_host = parts.next().unwrap_or_default();
            if let Some(owner_pid) = owner_pid {
                if !owner_host.is_empty() && owner_host != host {
                    return Err(SpoolError::InUse {
                        dir,
                        owner: format!("pid {owner_pid} on host {owner_host} (delete {} if that host no longer uses it)", path.display()),
                    });
                }
                // Our own pid with no client of ours owning it: a restarted container reusing pids.
                if owner_pid != pid && is_alive(owner_pid) {
                    return Err(SpoolError::InUse { dir, owner: format!("pid {owner_pid}") });
                }
            }
            // Stale: take it over atomically, then check that we, not a racing opener, won.
            let temp = dir.join(format!("lock.{pid}.tmp"));
            write_synced(&temp, &mine, false).map_err(io(&temp))?;
            std::fs::rename(&temp, &path).map_err(io(&path))?;
            tracing::info!(dir = %dir.display(), previous = text.trim(), "took over a stale spool lock");
            if std::fs::read_to_string(&path).map_err(io(&path))? == mine {
                owned.insert(dir.clone());
                return Ok(SpoolLock { dir, path });
            }
        }
        Err(SpoolError::InUse { dir, owner: "other openers racing for its lock".to_string() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for SpoolLock {
    fn drop(&mut self) {
        let mine = format!("{} {}\n", std::process::id(), hostname());
        if std::fs::read_to_string(&self.path).is_ok_and(|text| text == mine) {
            let _ = std::fs::remove_file(&self.path);
        }
        OWNED.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_owner_is_refused_and_a_dead_owners_lock_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let first = SpoolLock::acquire(dir.path()).unwrap();
        let error = SpoolLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(error.contains("another client of this process"), "{error}");
        drop(first);
        assert!(!dir.path().join("lock").exists(), "released on drop");
        // pid 1 is alive (init); a pid beyond pid_max is not.
        std::fs::write(dir.path().join("lock"), format!("1 {}\n", hostname())).unwrap();
        let error = SpoolLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(error.contains("pid 1") && error.contains(&dir.path().canonicalize().unwrap().display().to_string()), "{error}");
        std::fs::write(dir.path().join("lock"), format!("99999999 {}\n", hostname())).unwrap();
        let _lock = SpoolLock::acquire(dir.path()).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("lock")).unwrap(), format!("{} {}\n", std::process::id(), hostname()));
    }
}
