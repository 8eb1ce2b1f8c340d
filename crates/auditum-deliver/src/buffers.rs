//! Body buffers reused from one POST to the next. A full batch's body is most of a megabyte, and
//! the allocator hands such a block back to the system within milliseconds of its free: a fresh
//! buffer for every POST had the kernel fault in and zero its pages each time (a tenth of the
//! delivery thread's CPU on a busy stream).

use std::sync::{Mutex, PoisonError};

/// Buffers kept for reuse at most: each sink and log POSTs one batch at a time.
const KEPT_BUFFERS: usize = 4;
/// A larger buffer (a batch of unusually large events) is freed, not kept.
const KEPT_CAPACITY: usize = 4 << 20;

static FREE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// An empty buffer, with the capacity of an earlier body when one is free.
pub(crate) fn take() -> Vec<u8> {
    FREE.lock().unwrap_or_else(PoisonError::into_inner).pop().unwrap_or_default()
}

/// The body's bytes, for the HTTP client; its buffer comes back for reuse when the client drops
/// the last reference (after the POST, or after its retries).
pub(crate) fn into_bytes(buffer: Vec<u8>) -> bytes::Bytes {
    bytes::Bytes::from_owner(Returned(buffer))
}

struct Returned(Vec<u8>);

impl AsRef<[u8]> for Returned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Drop for Returned {
    fn drop(&mut self) {
        let mut buffer = std::mem::take(&mut self.0);
        if buffer.capacity() > KEPT_CAPACITY {
            return;
        }
        buffer.clear();
        let mut free = FREE.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < KEPT_BUFFERS {
            free.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_body_returns_its_buffer_emptied_once_every_reference_is_gone() {
        let mut buffer = super::take();
        buffer.extend_from_slice(&[7u8; 100_000]);
        let pointer = buffer.as_ptr();
        let bytes = super::into_bytes(buffer);
        let retry = bytes.clone();
        assert_eq!(bytes.len(), 100_000);
        drop(bytes);
        assert_eq!(retry[99_999], 7, "a clone still reads the body");
        drop(retry);
        // Other tests of this crate may take buffers concurrently: look for this one among all.
        let free = super::FREE.lock().unwrap();
        let returned = free.iter().find(|kept| kept.as_ptr() == pointer).expect("the buffer is kept");
        assert!(returned.is_empty() && returned.capacity() >= 100_000);
    }
}
