//! CPU work nobody waits on interactively — sealing a batch — runs on a thread of its own, off
//! the blocking pool that queries and exports use, at the normal priority. (A lower priority,
//! nice 10, was tried: under sustained ingest that saturates the cores the seal then got ~10 % of
//! a core, fell behind, and the WAL filled to `wal_max_bytes` until appends were refused. At the
//! same priority the seal competes fairly and ingest slows instead.)

/// Runs `work` on a new thread named `name`; its result, or why there is none.
pub async fn run_on_own_thread<T: Send + 'static>(name: &str, work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = sender.send(work());
        })
        .map_err(|error| format!("cannot start thread {name}: {error}"))?;
    receiver.await.map_err(|_| format!("thread {name} ended without a result (it panicked)"))
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn work_runs_and_answers_on_its_own_thread() {
        let name = super::run_on_own_thread("auditum-test-seal", || std::thread::current().name().map(str::to_string)).await.unwrap();
        assert_eq!(name.as_deref(), Some("auditum-test-seal"));
        let panicked = super::run_on_own_thread("auditum-test-panic", || -> u8 { panic!("boom") }).await;
        assert!(panicked.unwrap_err().contains("panicked"));
    }
}
