//! What an [`AuditClient`](crate::AuditClient) is configured with (SDK.md): batching, the spool,
//! the full-spool policy, auth and TLS, and the error handler.

use crate::ConnectOptions;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// When the spool is fsynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpoolFsync {
    /// `log()` returns after the `write()`; the worker fsyncs once per batch before sending it.
    #[default]
    Batch,
    /// Every `log()` fsyncs its record before returning.
    Always,
    /// Never fsynced: a `kill -9` loses nothing, a power loss may.
    Never,
}

/// What `log()` does when the spool (or, without one, the memory queue) is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFull {
    /// Wait up to `block_timeout` for room, then fail with [`LogError::Full`](crate::LogError::Full).
    #[default]
    Block,
    /// Fail at once with [`LogError::Full`](crate::LogError::Full).
    Raise,
    /// Drop the event: counted in `dropped` and reported to the error handler.
    Drop,
}

/// Something the delivery worker could not do, reported to [`Options::on_error`].
#[derive(Debug, Clone)]
pub enum Problem {
    /// The server rejected an event (INVALID_ARGUMENT); it went to the dead-letter file.
    Rejected { id: String, message: String },
    /// Events were dropped because the spool was full and `on_full = Drop`.
    Dropped { id: String },
    /// The server refused the key (UNAUTHENTICATED / PERMISSION_DENIED): delivery stopped,
    /// events stay spooled.
    Unauthorized { message: String },
    /// A call failed and will be retried (reported once per failure streak).
    Retrying { message: String },
    /// A spool segment was damaged in its middle; it was moved to `damaged/`.
    SpoolDamaged { file: PathBuf, detail: String },
    /// A spool or dead-letter file could not be written.
    Io { detail: String },
}

impl std::fmt::Display for Problem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Rejected { id, message } => write!(formatter, "event {id} rejected, dead-lettered: {message}"),
            Problem::Dropped { id } => write!(formatter, "event {id} dropped: the spool is full"),
            Problem::Unauthorized { message } => write!(formatter, "delivery stopped, events stay spooled: {message}"),
            Problem::Retrying { message } => write!(formatter, "append failed, retrying: {message}"),
            Problem::SpoolDamaged { file, detail } => write!(formatter, "spool damaged, {} kept aside: {detail}", file.display()),
            Problem::Io { detail } => write!(formatter, "{detail}"),
        }
    }
}

pub type ErrorHandler = Arc<dyn Fn(&Problem) + Send + Sync>;

/// The client's options; every field has the default SDK.md names.
#[derive(Clone)]
pub struct Options {
    /// API key and TLS, as the CLI takes them.
    pub connect: ConnectOptions,
    /// The spool directory; `None` keeps undelivered events in memory only.
    pub spool_dir: Option<PathBuf>,
    pub spool_fsync: SpoolFsync,
    /// Bound of the spool (or of the memory queue without a spool). Default 1 GiB.
    pub spool_max_bytes: u64,
    pub on_full: OnFull,
    /// How long `log()` waits for room under `OnFull::Block`. Default 5 s.
    pub block_timeout: Duration,
    /// Events per Append call. Default 1000 (the server's limit).
    pub batch_max_events: usize,
    /// Encoded bytes per Append call. Default 2 MiB (half the server's 4 MiB limit).
    pub batch_max_bytes: usize,
    /// How long the first event of a batch waits for company. Default 10 ms.
    pub linger: Duration,
    /// Append calls outstanding at once. Default 4.
    pub max_in_flight: usize,
    /// Retry backoff bounds (with jitter). Default 100 ms to 30 s.
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// How long `log_durable` keeps retrying transient failures before it fails. Default 60 s.
    pub durable_timeout: Duration,
    /// Check events locally with the server's rules before accepting them. Default true; turning
    /// it off only moves the rejection to the server (and the event to the dead-letter file).
    pub validate_locally: bool,
    /// Called (on the worker) for everything that goes wrong after `log()` returned.
    pub on_error: Option<ErrorHandler>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            connect: ConnectOptions::default(),
            spool_dir: None,
            spool_fsync: SpoolFsync::Batch,
            spool_max_bytes: 1 << 30,
            on_full: OnFull::Block,
            block_timeout: Duration::from_secs(5),
            batch_max_events: 1000,
            batch_max_bytes: 2 << 20,
            linger: Duration::from_millis(10),
            max_in_flight: 4,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_secs(30),
            durable_timeout: Duration::from_secs(60),
            validate_locally: true,
            on_error: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Options")
            .field("spool_dir", &self.spool_dir)
            .field("spool_fsync", &self.spool_fsync)
            .field("spool_max_bytes", &self.spool_max_bytes)
            .field("on_full", &self.on_full)
            .field("block_timeout", &self.block_timeout)
            .field("batch_max_events", &self.batch_max_events)
            .field("batch_max_bytes", &self.batch_max_bytes)
            .field("linger", &self.linger)
            .field("max_in_flight", &self.max_in_flight)
            .field("validate_locally", &self.validate_locally)
            .finish_non_exhaustive()
    }
}

impl Options {
    /// The default spool directory for a server process: `$XDG_STATE_HOME/auditum-spool/<app>`,
    /// else `~/.local/state/auditum-spool/<app>`, else `<temp dir>/auditum-spool/<app>`.
    pub fn default_spool_dir(app: &str) -> PathBuf {
        let base = std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/state")))
            .unwrap_or_else(std::env::temp_dir);
        base.join("auditum-spool").join(app)
    }

    /// Sets `spool_dir`.
    pub fn with_spool(mut self, dir: impl Into<PathBuf>) -> Options {
        self.spool_dir = Some(dir.into());
        self
    }

    /// Sets the error handler.
    pub fn on_error(mut self, handler: impl Fn(&Problem) + Send + Sync + 'static) -> Options {
        self.on_error = Some(Arc::new(handler));
        self
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        let bounds = [
            (
                self.batch_max_events >= 1 && self.batch_max_events <= auditum_format::rules::MAX_EVENTS_PER_APPEND,
                "batch_max_events: 1 to 1000",
            ),
            (
                self.batch_max_bytes >= auditum_format::rules::MAX_EVENT_BYTES + 16
                    && self.batch_max_bytes <= auditum_format::rules::MAX_APPEND_BYTES - 1024,
                "batch_max_bytes: 64 KiB to 4 MiB - 1 KiB",
            ),
            (self.max_in_flight >= 1, "max_in_flight: at least 1"),
            (self.spool_max_bytes >= 4096, "spool_max_bytes: at least 4096"),
        ];
        match bounds.iter().find(|(ok, _)| !ok) {
            Some((_, message)) => Err((*message).to_string()),
            None => Ok(()),
        }
    }
}
