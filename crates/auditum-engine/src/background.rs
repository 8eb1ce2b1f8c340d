//! CPU work nobody waits on interactively — sealing a batch — runs on a thread of its own at a
//! lower scheduling priority (nice 10 on Linux). On a busy machine the appends' group commits
//! and the queries get the cores first; the seal takes what they leave, and a seal that takes a
//! little longer delays nothing that was acknowledged (the events are durable in the WAL).

/// Runs `work` on a new low-priority thread named `name`; its result, or why there is none.
pub async fn run_low_priority<T: Send + 'static>(name: &str, work: impl FnOnce() -> T + Send + 'static) -> Result<T, String> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            lower_this_threads_priority();
            let _ = sender.send(work());
        })
        .map_err(|error| format!("cannot start thread {name}: {error}"))?;
    receiver.await.map_err(|_| format!("thread {name} ended without a result (it panicked)"))
}

/// Nice 10 for the calling thread only: Linux keeps a nice value per thread.
#[cfg(target_os = "linux")]
fn lower_this_threads_priority() {
    // SAFETY: gettid and setpriority take plain integers and touch no memory of ours.
    let result = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) };
    if result != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "cannot lower the seal thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_this_threads_priority() {}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn work_runs_and_answers_on_a_lower_priority_thread() {
        let (name, nice) = super::run_low_priority("auditum-test-low", || {
            #[cfg(target_os = "linux")]
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            #[cfg(not(target_os = "linux"))]
            let nice = 10;
            (std::thread::current().name().map(str::to_string), nice)
        })
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("auditum-test-low"));
        assert!(nice >= 10, "nice {nice}");
        let panicked = super::run_low_priority("auditum-test-panic", || -> u8 { panic!("boom") }).await;
        assert!(panicked.unwrap_err().contains("panicked"));
    }
}
