//! Threads that Summarize and Export start beside their own blocking-pool thread, counted
//! against one cap for the whole server: concurrent cold summaries and large exports must not
//! multiply threads against Append.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Helper threads all calls together may run at once.
const MAX_HELPER_THREADS: usize = 4;

static HELPER_THREADS_IN_USE: AtomicUsize = AtomicUsize::new(0);

/// Helper threads reserved against [`MAX_HELPER_THREADS`], given back on drop (or one by one as
/// they finish).
pub struct HelperThreads {
    count: usize,
    released: AtomicUsize,
}

impl HelperThreads {
    /// Up to `wanted` threads: fewer (possibly none) while other calls hold the rest.
    pub fn reserve(wanted: usize) -> HelperThreads {
        let mut count = 0;
        let _ = HELPER_THREADS_IN_USE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_use| {
            count = wanted.min(MAX_HELPER_THREADS.saturating_sub(in_use));
            Some(in_use + count)
        });
        HelperThreads { count, released: AtomicUsize::new(0) }
    }

    /// Threads reserved.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Gives one reserved thread back early (a thread that finished its share while the call
    /// goes on); nothing once all are back.
    pub fn release_one(&self) {
        let count = self.count;
        if self.released.fetch_update(Ordering::AcqRel, Ordering::Acquire, |released| (released < count).then_some(released + 1)).is_ok() {
            HELPER_THREADS_IN_USE.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for HelperThreads {
    fn drop(&mut self) {
        let still_held = self.count - self.released.load(Ordering::Acquire);
        HELPER_THREADS_IN_USE.fetch_sub(still_held, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_capped_and_given_back_once() {
        // The only test touching the counter: tests of one binary share it.
        let first = HelperThreads::reserve(3);
        assert_eq!(first.count(), 3);
        let second = HelperThreads::reserve(3);
        assert_eq!(second.count(), MAX_HELPER_THREADS - 3, "capped by what the first holds");
        for _ in 0..5 {
            first.release_one();
        }
        assert_eq!(HELPER_THREADS_IN_USE.load(Ordering::Acquire), second.count(), "released at most what it held");
        drop(first);
        drop(second);
        assert_eq!(HELPER_THREADS_IN_USE.load(Ordering::Acquire), 0);
    }
}
