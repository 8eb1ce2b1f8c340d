//! The CPU work of deliveries and rules (encoding and signing bodies, counting events) on one
//! thread at nice 10. Append's path (gRPC workers, the WAL writer, the seal) then wins the cores
//! whenever both want them: delivery may lag under a load that saturates the machine, which its
//! cursors allow (the backlog is read back from the log), and catches up when the load eases.

use std::sync::OnceLock;
use std::sync::mpsc::{Sender, channel};

type Job = Box<dyn FnOnce() + Send>;

/// Niceness of the delivery thread (0 is the default, 19 the lowest priority).
const DELIVERY_NICENESS: libc::c_int = 10;

fn queue() -> Option<&'static Sender<Job>> {
    static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (sender, receiver) = channel::<Job>();
            let started = std::thread::Builder::new().name("auditum-deliver".into()).spawn(move || {
                lower_this_threads_priority();
                for job in receiver {
                    job();
                }
            });
            match started {
                Ok(_) => Some(sender),
                Err(error) => {
                    tracing::error!(%error, "cannot start the delivery thread; delivery work runs on the blocking pool");
                    None
                }
            }
        })
        .as_ref()
}

fn lower_this_threads_priority() {
    // On Linux a thread's nice value is its own: PRIO_PROCESS with the thread id.
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls on this thread's own id; no memory is shared.
        let outcome = unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, DELIVERY_NICENESS) };
        if outcome != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot lower the delivery thread's priority");
        }
    }
}

/// Runs `work` on the delivery thread, or on the blocking pool should that thread be gone (it
/// never unwinds: jobs catch their panics), so deliveries and rules never stop for want of it.
/// None only when the runtime is shutting down. A panic in `work` goes on as a panic of the
/// caller, as it would have inline.
pub async fn run<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (sender, receiver) = tokio::sync::oneshot::channel();
    let job: Job = Box::new(move || {
        let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        let _ = sender.send(answer);
    });
    let queued = match queue() {
        Some(queue) => queue.send(job).map_err(|refused| refused.0),
        None => Err(job),
    };
    if let Err(job) = queued {
        tracing::error!("the delivery thread is gone; delivery work runs on the blocking pool");
        // The job answers through `receiver` wherever it runs.
        drop(tokio::task::spawn_blocking(job));
    }
    match receiver.await.ok()? {
        Ok(answer) => Some(answer),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[tokio::test]
    async fn work_runs_on_the_delivery_thread_at_a_lower_priority_and_panics_reach_the_caller() {
        let (name, niceness) = super::run(|| {
            // SAFETY: reads this thread's own nice value.
            let niceness = unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) };
            (std::thread::current().name().map(str::to_string), niceness)
        })
        .await
        .unwrap();
        assert_eq!(name.as_deref(), Some("auditum-deliver"));
        assert!(niceness >= super::DELIVERY_NICENESS, "niceness {niceness}");
        let panicked = tokio::spawn(super::run(|| -> u8 { panic!("boom") })).await;
        assert!(panicked.unwrap_err().is_panic());
        assert_eq!(super::run(|| 7).await, Some(7), "the thread survives a panicking job");
    }
}
