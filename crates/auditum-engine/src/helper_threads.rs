//! Threads that Summarize and Export start beside their own blocking-pool thread, counted
//! against one cap for the whole server: concurrent cold summaries and large exports must not
//! multiply threads against Append.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Helper threads all calls together may run at once.
const MAX_HELPER_THREADS: usize = 4;

static HELPER_THREADS_IN_USE: AtomicUsize = AtomicUsize::new(0);

/// Helper threads reserved against [`MAX_HELPER_THREADS`], given back on drop.
pub struct HelperThreads {
    count: usize,
}

impl HelperThreads {
    /// Up to `wanted` threads: fewer (possibly none) while other calls hold the rest.
    pub fn reserve(wanted: usize) -> HelperThreads {
        let mut count = 0;
        let _ = HELPER_THREADS_IN_USE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |in_use| {
            count = wanted.min(MAX_HELPER_THREADS.saturating_sub(in_use));
            Some(in_use + count)
        });
        HelperThreads { count }
    }

    pub fn count(&self) -> usize {
        self.count
    }
}

impl Drop for HelperThreads {
    fn drop(&mut self) {
        HELPER_THREADS_IN_USE.fetch_sub(self.count, Ordering::AcqRel);
    }
}
