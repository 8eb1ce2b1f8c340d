//! Deliveries and rules below Append's path. Their followers, timers and HTTP client run on a
//! runtime of their own (one thread at nice 10), not on the workers that answer Append. Their CPU
//! work (encoding and signing bodies, counting events) runs on one more thread, of the idle
//! policy. Append's path (gRPC workers, the WAL writer, the seal) then wins the cores whenever
//! both want them: delivery may lag under a load that saturates the machine, which its cursors
//! allow (the backlog is read back from the log), and catches up when the load eases.

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{Sender, channel};
use std::sync::{Arc, Mutex, OnceLock};

type Job = Box<dyn FnOnce() + Send>;

/// Niceness of the delivery threads (0 is the default, 19 the lowest priority).
const DELIVERY_NICENESS: libc::c_int = 10;

fn queue() -> Option<&'static Sender<Job>> {
    static QUEUE: OnceLock<Option<Sender<Job>>> = OnceLock::new();
    QUEUE
        .get_or_init(|| {
            let (sender, receiver) = channel::<Job>();
            let started = std::thread::Builder::new().name("auditum-deliver".into()).spawn(move || {
                lower_this_threads_priority();
                idle_this_thread();
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

/// Runs `workers` to their end on the delivery runtime: a current-thread runtime on a thread of
/// its own at nice 10 (its blocking threads inherit that). Should the thread or the runtime not
/// start, they run on the caller's runtime instead, so delivery never stops for want of it.
pub(crate) fn spawn_runtime(workers: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>) {
    if workers.is_empty() {
        return;
    }
    // The workers stay with the caller until the thread has its runtime, and go back to it
    // should the thread or the runtime not start.
    let slot = Arc::new(Mutex::new(Some(workers)));
    let taken = slot.clone();
    let (answer, answered) = channel::<bool>();
    let started = std::thread::Builder::new().name("deliver-runtime".into()).spawn(move || {
        lower_this_threads_priority();
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().thread_name("deliver-blocking").build() {
            Ok(runtime) => runtime,
            Err(error) => {
                tracing::error!(%error, "cannot build the delivery runtime; deliveries run on the server's runtime");
                let _ = answer.send(false);
                return;
            }
        };
        let workers = taken.lock().ok().and_then(|mut slot| slot.take());
        let _ = answer.send(true);
        let Some(workers) = workers else { return };
        runtime.block_on(async move {
            let running: Vec<_> = workers.into_iter().map(tokio::spawn).collect();
            for worker in running {
                if let Err(error) = worker.await {
                    tracing::error!(%error, "a delivery worker ended abnormally");
                }
            }
        });
    });
    let on_its_runtime = match started {
        // Waits only for the runtime's construction, once, at start.
        Ok(_) => answered.recv() == Ok(true),
        Err(error) => {
            tracing::error!(%error, "cannot start the delivery runtime's thread; deliveries run on the server's runtime");
            false
        }
    };
    if !on_its_runtime && let Some(workers) = slot.lock().ok().and_then(|mut slot| slot.take()) {
        spawn_here(workers);
    }
}

fn spawn_here(workers: Vec<Pin<Box<dyn Future<Output = ()> + Send>>>) {
    for worker in workers {
        tokio::spawn(worker);
    }
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

/// SCHED_IDLE: a waking thread of the normal policy takes the core from this one at once, where
/// a nice-10 thread keeps it to the end of its slice (EEVDF runs the current task to parity:
/// 1–3 ms that the WAL writer then waits). Only for the CPU thread, which takes none of the
/// log's locks, and whose callers free what its jobs used (the allocator's locks are the ones
/// left to hold): a thread of this policy waits long for a core when the machine is busy.
fn idle_this_thread() {
    #[cfg(target_os = "linux")]
    {
        let parameters = libc::sched_param { sched_priority: 0 };
        // SAFETY: a plain system call on the calling thread (pid 0); the parameters outlive it.
        let outcome = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &parameters) };
        if outcome != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot give the delivery thread the idle policy");
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
    fn this_threads_niceness() -> libc::c_int {
        // SAFETY: reads this thread's own nice value.
        unsafe { libc::getpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t) }
    }

    #[tokio::test]
    async fn workers_run_on_the_delivery_runtime_at_a_lower_priority_with_its_timers_and_blocking_pool() {
        let (answer, answered) = tokio::sync::oneshot::channel();
        super::spawn_runtime(vec![Box::pin(async move {
            let on = (std::thread::current().name().map(str::to_string), this_threads_niceness());
            // The runtime has a timer and a blocking pool, whose threads are as low.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            let blocking = tokio::task::spawn_blocking(this_threads_niceness).await.unwrap();
            let _ = answer.send((on, blocking));
        })]);
        let ((name, niceness), blocking_niceness) = answered.await.unwrap();
        assert_eq!(name.as_deref(), Some("deliver-runtime"));
        assert!(niceness >= super::DELIVERY_NICENESS, "niceness {niceness}");
        assert!(blocking_niceness >= super::DELIVERY_NICENESS, "blocking niceness {blocking_niceness}");
        assert!(this_threads_niceness() < super::DELIVERY_NICENESS, "the caller's priority is unchanged");
    }

    #[tokio::test]
    async fn work_runs_on_the_delivery_thread_at_the_idle_policy_and_panics_reach_the_caller() {
        let (name, niceness) = super::run(|| (std::thread::current().name().map(str::to_string), this_threads_niceness())).await.unwrap();
        assert_eq!(name.as_deref(), Some("auditum-deliver"));
        assert!(niceness >= super::DELIVERY_NICENESS, "niceness {niceness}");
        // SAFETY: reads the calling thread's policy.
        let policy = super::run(|| unsafe { libc::sched_getscheduler(0) }).await.unwrap();
        assert_eq!(policy, libc::SCHED_IDLE, "the CPU thread yields to any thread of the normal policy");
        let panicked = tokio::spawn(super::run(|| -> u8 { panic!("boom") })).await;
        assert!(panicked.unwrap_err().is_panic());
        assert_eq!(super::run(|| 7).await, Some(7), "the thread survives a panicking job");
    }
}
