//! The retry policy of every object-store call a log makes: transient failures (timeouts,
//! throttling, 5xx, connection errors) are retried with exponential backoff and jitter until
//! they succeed or the shutdown deadline would pass; answers (conflicts, not found, bad
//! requests) are returned at once for the caller to decide.

use super::{Error, Log, Result, lock};
use crate::metrics::{self, METRICS};
use auditum_store as store;
use std::time::Duration;

const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(10);

/// Exponential backoff: `min`, doubling up to `max`, each wait with up to half again as jitter.
#[derive(Debug, Clone)]
pub(super) struct Backoff {
    delay: Duration,
    max: Duration,
}

impl Backoff {
    pub(super) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff { delay: min, max }
    }

    /// The delay the next wait starts from (before jitter).
    pub(super) fn delay(&self) -> Duration {
        self.delay
    }

    /// The next wait, jittered so that many writers do not retry in step; the delay then doubles.
    pub(super) fn next_wait(&mut self) -> Duration {
        let delay = self.delay;
        let jitter = Duration::from_millis(rand::random::<u64>() % (delay.as_millis() as u64 / 2 + 1));
        self.delay = (delay * 2).min(self.max);
        delay + jitter
    }
}

/// Why retrying stopped.
#[derive(Debug)]
pub(super) enum Stopped {
    /// Not a transient failure: the store answered.
    Answer(store::Error),
    /// Still failing when the next wait would pass the deadline.
    Deadline(store::Error),
}

/// Runs `operation` until it succeeds or stops (see [`Stopped`]); `on_failure` sees each
/// transient failure with its attempt number and the coming delay. Returns the value and how
/// many attempts failed before it.
pub(super) async fn retry_transient<T, F, Fut>(
    mut backoff: Backoff,
    deadline: impl Fn() -> Option<tokio::time::Instant>,
    mut operation: F,
    mut on_failure: impl FnMut(u32, &store::Error, Duration),
) -> std::result::Result<(T, u32), Stopped>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, store::Error>>,
{
    let mut attempts = 0u32;
    loop {
        match operation().await {
            Ok(value) => return Ok((value, attempts)),
            Err(error) if !error.is_transient() => return Err(Stopped::Answer(error)),
            Err(error) => {
                attempts += 1;
                let delay = backoff.delay();
                on_failure(attempts, &error, delay);
                if let Some(deadline) = deadline()
                    && tokio::time::Instant::now() + delay > deadline
                {
                    return Err(Stopped::Deadline(error));
                }
                tokio::time::sleep(backoff.next_wait()).await;
            }
        }
    }
}

impl Log {
    /// [`retry_transient`] with the log's metrics, logging and shutdown deadline.
    pub(super) async fn with_retries<T, F, Fut>(&self, what: &str, operation: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = std::result::Result<T, store::Error>>,
    {
        let label = || metrics::StoreOperation { log: self.name().to_string(), operation: what.to_string() };
        let on_failure = |attempts: u32, error: &store::Error, delay: Duration| {
            METRICS.store_errors.get_or_create(&label()).inc();
            METRICS.store_retries.get_or_create(&label()).inc();
            let backlog = lock(&self.inner.shared).open.len();
            tracing::warn!(log = %self.name(), what, attempts, backlog_events = backlog, %error, retry_in_ms = delay.as_millis() as u64, "object store call failed, retrying");
        };
        match retry_transient(Backoff::new(RETRY_MIN, RETRY_MAX), || self.stop_deadline(), operation, on_failure).await {
            Ok((value, attempts)) => {
                if attempts > 0 {
                    tracing::info!(log = %self.name(), what, attempts, "object store recovered");
                }
                Ok(value)
            }
            // Conflicts and bad requests are answers, not outages: the caller decides.
            Err(Stopped::Answer(error)) => {
                METRICS.store_errors.get_or_create(&label()).inc();
                Err(Error::Store { log: self.name().to_string(), source: error })
            }
            Err(Stopped::Deadline(error)) => Err(Error::SealAborted { log: self.name().to_string(), reason: format!("{what}: {error}") }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn unavailable() -> store::Error {
        store::Error::Backend { key: "k".into(), message: "connection refused".into(), transient: true }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_bounded_jitter() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let mut delays = Vec::new();
        for _ in 0..6 {
            let delay = backoff.delay();
            let wait = backoff.next_wait();
            assert!(wait >= delay && wait <= delay + delay / 2, "{wait:?} for {delay:?}");
            delays.push(delay.as_millis());
        }
        assert_eq!(delays, [100, 200, 400, 800, 800, 800]);
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let calls = Cell::new(0);
        let mut failures = Vec::new();
        let outcome = retry_transient(
            Backoff::new(Duration::from_millis(1), Duration::from_secs(10)),
            || None,
            || {
                calls.set(calls.get() + 1);
                let call = calls.get();
                async move { if call < 4 { Err(unavailable()) } else { Ok(call) } }
            },
            |attempt, _, delay| failures.push((attempt, delay.as_millis())),
        )
        .await;
        assert_eq!(outcome.unwrap(), (4, 3));
        assert_eq!(failures, [(1, 1), (2, 2), (3, 4)], "each failure is seen with the doubling delay");
    }

    #[tokio::test]
    async fn answers_are_not_retried() {
        let calls = Cell::new(0);
        let outcome: std::result::Result<((), u32), Stopped> = retry_transient(
            Backoff::new(Duration::from_millis(100), Duration::from_secs(10)),
            || None,
            || {
                calls.set(calls.get() + 1);
                async { Err(store::Error::AlreadyExists { key: "k".into() }) }
            },
            |_, _, _| panic!("not a transient failure"),
        )
        .await;
        assert!(matches!(outcome, Err(Stopped::Answer(store::Error::AlreadyExists { .. }))));
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test]
    async fn retrying_stops_when_the_next_wait_would_pass_the_deadline() {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(100);
        let calls = Cell::new(0);
        let outcome: std::result::Result<((), u32), Stopped> = retry_transient(
            Backoff::new(Duration::from_millis(10), Duration::from_secs(10)),
            || Some(deadline),
            || {
                calls.set(calls.get() + 1);
                async { Err(unavailable()) }
            },
            |_, _, _| {},
        )
        .await;
        assert!(matches!(outcome, Err(Stopped::Deadline(_))));
        // Waits of 10, 20 and 40 ms (plus jitter) fit before the deadline, 80 more do not.
        assert!((3..=4).contains(&calls.get()), "{} calls", calls.get());
        assert!(tokio::time::Instant::now() < deadline + Duration::from_millis(80), "gave up instead of waiting past the deadline");
    }
}
