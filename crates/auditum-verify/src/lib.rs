//! Offline verification of a log's archive straight from the store (docs/FORMAT.md, Proofs): needs no
//! server and trusts nothing but the pinned verifier key.

use auditum_batch as batch;
use auditum_format::checkpoint::Verifier;
use auditum_format::event::Seq;
use auditum_format::ledger::{self, LedgerEntry};
use auditum_format::merkle::{self, Hash};
use auditum_format::paths;
use auditum_store::{self as store, ObjectStore};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    Missing,
    Modified,
    Reordered,
    ExtraRows,
    MissingRows,
    Gap,
    BadSignature,
    Fork,
    Malformed,
    Replaced,
    /// Nothing to vouch for: no ledger, no checkpoint, no batch.
    Empty,
    /// An entry committed with less retention than `--require-retention-days` (or none).
    ShortRetention,
    /// A batch in an archive storage class (Glacier, Deep Archive) without a restored copy: its
    /// content cannot be checked until it is restored. Not tampering, but not verified either.
    Archived,
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ProblemKind::Missing => "missing",
            ProblemKind::Modified => "modified",
            ProblemKind::Reordered => "reordered",
            ProblemKind::ExtraRows => "extra rows",
            ProblemKind::MissingRows => "missing rows",
            ProblemKind::Gap => "gap",
            ProblemKind::BadSignature => "bad signature",
            ProblemKind::Fork => "fork",
            ProblemKind::Malformed => "malformed",
            ProblemKind::Replaced => "replaced",
            ProblemKind::Empty => "empty",
            ProblemKind::ShortRetention => "short retention",
            ProblemKind::Archived => "archived",
        };
        formatter.write_str(name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub object: String,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}: {}: {}", self.kind, self.object, self.detail)
    }
}

#[derive(Debug, Default, Clone)]
pub struct Report {
    pub log: String,
    pub entries: u64,
    pub events: u64,
    pub checkpoints: u64,
    pub problems: Vec<Problem>,
    /// Harmless findings, such as orphan batches from a crash between the two puts.
    pub warnings: Vec<String>,
    /// Batch objects gone after their entry's `retain_until`: policy, not tampering.
    pub expired: Vec<String>,
    /// Shortest and longest retention the entries record, in days (`retain_until − sealed_at`).
    pub retention_days: Option<(f64, f64)>,
    /// Entries that record no retention (version 1, or `retain_until` null).
    pub without_retention: u64,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }

    fn problem(&mut self, kind: ProblemKind, object: impl Into<String>, detail: impl Into<String>) {
        self.problems.push(Problem { kind, object: object.into(), detail: detail.into() });
    }

    pub fn summary(&self) -> String {
        let retention = match self.retention_days {
            Some((shortest, longest)) => format!("retention {shortest:.0} to {longest:.0} days"),
            None => "no retention recorded".to_string(),
        };
        format!(
            "log {}: {} ledger entries, {} events, {} checkpoints checked, {} batches expired; {retention}, {} entries without: {} ({} problems, {} warnings)",
            self.log,
            self.entries,
            self.events,
            self.checkpoints,
            self.expired.len(),
            self.without_retention,
            if self.ok() { "OK" } else { "FAILED" },
            self.problems.len(),
            self.warnings.len()
        )
    }

    /// Counts each entry's recorded retention into the summary; flags it when below `required`.
    fn count_retention(&mut self, entry: &LedgerEntry, required_days: Option<u32>) {
        let days = entry.retain_until().map(|until| (until - entry.sealed_at) as f64 / MICROS_PER_DAY);
        match days {
            Some(days) => {
                let (shortest, longest) = self.retention_days.unwrap_or((days, days));
                self.retention_days = Some((shortest.min(days), longest.max(days)));
            }
            None => self.without_retention += 1,
        }
        let Some(required) = required_days else { return };
        // A minute of slack: retain-until dates are whole seconds, taken a moment after sealed_at.
        let slack_days = 60.0 / 86_400.0;
        match days {
            Some(days) if days + slack_days >= f64::from(required) => {}
            Some(days) => self.problem(
                ProblemKind::ShortRetention,
                &entry.object,
                format!("ledger entry {} was committed with {days:.0} days of retention; {required} are required", entry.index),
            ),
            None => self.problem(
                ProblemKind::ShortRetention,
                &entry.object,
                format!(
                    "ledger entry {} records no retention (version {} entry{}); {required} days are required",
                    entry.index,
                    entry.format_version(),
                    if entry.format_version() == 2 { ", retain_until null" } else { "" }
                ),
            ),
        }
    }
}

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// A batch object that is gone is expired (not missing) when its entry recorded a retain-until
/// before the moment the archive is checked as of.
fn may_have_expired(entry: &LedgerEntry, as_of_micros: i64) -> bool {
    entry.retain_until().is_some_and(|until| until < as_of_micros)
}

/// Checks one batch object against its ledger entry.
fn check_batch(entry: &LedgerEntry, body: bytes::Bytes, report: &mut Report) -> u64 {
    const LISTED_ROWS: usize = 10;
    let object = entry.object.clone();
    if body.len() as u64 != entry.size {
        report.problem(ProblemKind::Modified, &object, format!("size is {} bytes, the ledger records {}", body.len(), entry.size));
    }
    let sha256: Hash = Sha256::digest(&body).into();
    if sha256 != entry.sha256 {
        report.problem(ProblemKind::Modified, &object, "sha256 differs from the ledger entry");
    }
    let digest = match batch::digest(body) {
        Ok(digest) => digest,
        Err(error) => {
            report.problem(ProblemKind::Modified, &object, format!("cannot be read as a batch: {error}"));
            return 0;
        }
    };
    for &position in digest.stored_leaf_mismatches.iter().take(LISTED_ROWS) {
        report.problem(
            ProblemKind::Modified,
            &object,
            format!("row {position} (seq {}): columns do not hash to its leaf_hash", digest.seqs[position]),
        );
    }
    if digest.stored_leaf_mismatches.len() > LISTED_ROWS {
        report.problem(
            ProblemKind::Modified,
            &object,
            format!("{} more rows do not hash to their leaf_hash", digest.stored_leaf_mismatches.len() - LISTED_ROWS),
        );
    }
    // Each seq of [first_seq, end) exactly once.
    let (first, end) = (entry.first_seq.0, entry.end_seq().0);
    let mut seen = vec![false; entry.count as usize];
    let mut extra = Vec::new();
    for (position, &seq) in digest.seqs.iter().enumerate() {
        match seq.checked_sub(first).filter(|_| seq < end) {
            Some(offset) if !seen[offset as usize] => seen[offset as usize] = true,
            _ => extra.push((position, seq)),
        }
    }
    for (position, seq) in extra.iter().take(LISTED_ROWS) {
        report.problem(ProblemKind::ExtraRows, &object, format!("row {position} has seq {seq}, outside [{first}, {end}) or repeated"));
    }
    let missing = seen.iter().filter(|present| !**present).count();
    if missing > 0 {
        report.problem(ProblemKind::MissingRows, &object, format!("{missing} of seqs [{first}, {end}) are missing"));
    }
    if !digest.sorted {
        report.problem(ProblemKind::Reordered, &object, "rows are not sorted by (tenant_id, occurred_at, seq)");
    }
    if let batch::IndexCheck::Differs(reason) = &digest.actor_index {
        report.problem(ProblemKind::Modified, &object, format!("actor index: {reason}"));
    }
    if merkle::root(&digest.leaves) != entry.root {
        report.problem(ProblemKind::Modified, &object, "rows do not recompute to the recorded batch root");
    }
    digest.seqs.len() as u64
}

/// Verification settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// An older checkpoint the auditor kept: the archive must extend it.
    pub since_checkpoint: Option<String>,
    /// Batches fetched and checked at once.
    pub parallelism: usize,
    /// Accept a log with nothing in it (a wrong store URL or log name looks exactly like one).
    pub allow_empty: bool,
    /// The moment the archive is checked as of (µs): batches gone after their `retain_until`
    /// and before it are expired. `None`: now.
    pub as_of_micros: Option<i64>,
    /// Flag entries committed with less retention than this (or none).
    pub require_retention_days: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            since_checkpoint: None,
            parallelism: std::thread::available_parallelism().map(|cores| cores.get() * 2).unwrap_or(4),
            allow_empty: false,
            as_of_micros: None,
            require_retention_days: None,
        }
    }
}

/// Progress, reported as batches complete.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    pub entries_total: u64,
    pub entries_checked: u64,
    pub events_checked: u64,
}

/// Verifies every ledger entry, batch and checkpoint of `log`.
pub async fn verify_log(store: &dyn ObjectStore, log: &str, verifier: &Verifier) -> Result<Report, store::Error> {
    verify_log_with(store, log, verifier, &Options::default(), |_| {}).await
}

/// The ledger entries, read and chained in index order.
/// Every problem found goes into `report`; the server's startup refuses on the first one.
pub async fn read_ledger(store: &dyn ObjectStore, log: &str, report: &mut Report) -> Result<(Vec<LedgerEntry>, Vec<Hash>), store::Error> {
    let listed = store.list(&paths::ledger_prefix(log)).await?;
    let mut entries = Vec::with_capacity(listed.len());
    let mut entry_hashes: Vec<Hash> = Vec::with_capacity(listed.len());
    for meta in &listed {
        let Some(index) = paths::ledger_index_from_key(log, &meta.key) else {
            report.problem(ProblemKind::Malformed, &meta.key, "unexpected object in the ledger prefix");
            continue;
        };
        let expected_index = entry_hashes.len() as u64;
        if index != expected_index {
            report.problem(
                ProblemKind::Missing,
                paths::ledger_entry_key(log, expected_index),
                format!("ledger entry missing (next present is {index})"),
            );
            break;
        }
        let body = store.get(&meta.key, None).await?;
        let previous = entries.last().zip(entry_hashes.last().copied());
        let Some((entry, hash)) = check_next_entry(log, &meta.key, index, &body, previous, report) else { break };
        entry_hashes.push(hash);
        entries.push(entry);
    }
    Ok((entries, entry_hashes))
}

/// Checks ledger entry `index` (stored at `key`) against the entry before it (None for the
/// first) with the chain rules: it parses, names its own index and log, links to the previous
/// entry's hash, continues its seqs, is not empty and does not go back a format version. Every
/// problem goes into `report`; None when the entry does not parse (nothing after it can chain).
pub fn check_next_entry(
    log: &str,
    key: &str,
    index: u64,
    body: &[u8],
    previous: Option<(&LedgerEntry, Hash)>,
    report: &mut Report,
) -> Option<(LedgerEntry, Hash)> {
    let parsed = std::str::from_utf8(body)
        .map_err(|error| error.to_string())
        .and_then(|text| LedgerEntry::parse(text).map_err(|error| error.to_string()));
    let entry = match parsed {
        Ok(entry) => entry,
        Err(error) => {
            report.problem(ProblemKind::Modified, key, format!("does not parse: {error}"));
            return None;
        }
    };
    let prev = previous.map(|(_, hash)| hash).unwrap_or(ledger::GENESIS_PREV);
    let expected_first = previous.map(|(entry, _)| entry.end_seq()).unwrap_or(Seq(0));
    if entry.index != index || entry.log != log {
        report.problem(ProblemKind::Reordered, key, format!("names index {} of log {:?}", entry.index, entry.log));
    }
    if entry.prev != prev {
        let detail = match index.checked_sub(1) {
            Some(previous) => {
                format!("prev does not match the hash of ledger entry {previous}: one of the two was altered, the chain is broken")
            }
            None => "prev of entry 0 is not 64 zeros: the chain is broken".to_string(),
        };
        report.problem(ProblemKind::Modified, key, detail);
    }
    if entry.first_seq != expected_first {
        report.problem(ProblemKind::Gap, key, format!("first_seq is {} where {expected_first} was expected", entry.first_seq));
    }
    if entry.count == 0 {
        report.problem(ProblemKind::Malformed, key, "count is 0: a batch is never empty");
    }
    if let Some((previous, _)) = previous.filter(|(previous, _)| previous.format_version() > entry.format_version()) {
        report.problem(
            ProblemKind::Malformed,
            key,
            format!(
                "a version {} entry after the version {} entry {}: a log never goes back",
                entry.format_version(),
                previous.format_version(),
                previous.index
            ),
        );
    }
    let hash = ledger::entry_hash(body);
    Some((entry, hash))
}

/// The command that restores a log's archived batches with events in [since, until) (µs).
pub fn restore_command(log: &str, since: i64, until: i64) -> String {
    use auditum_format::time::rfc3339_micros;
    format!("auditum restore --log {log} --since {} --until {}", rfc3339_micros(since), rfc3339_micros(until))
}

/// Fetches and checks one batch; problems go into the returned report.
async fn check_entry_batch(store: &dyn ObjectStore, entry: LedgerEntry, as_of_micros: i64) -> Result<(u64, Report), store::Error> {
    let mut batch_report = Report::default();
    let body = match store.get(&entry.object, entry.version.as_deref()).await {
        Ok(body) => Some(body),
        Err(store::Error::NotFound { .. }) => None,
        Err(store::Error::Archived { .. }) => {
            let until = entry.max_occurred_at.saturating_add(1);
            batch_report.problem(
                ProblemKind::Archived,
                &entry.object,
                format!(
                    "batch of ledger entry {} is in an archive storage class and not restored, so its content was not checked; restore it (`{}`) and verify again",
                    entry.index,
                    restore_command(&entry.log, entry.min_occurred_at, until)
                ),
            );
            return Ok((0, batch_report));
        }
        Err(error) => return Err(error),
    };
    if body.is_none() && may_have_expired(&entry, as_of_micros) {
        batch_report.expired.push(entry.object.clone());
        return Ok((0, batch_report));
    }
    // On a versioned store the batch is read at its recorded version; a different current
    // object at the key (a delete marker, or a new object put after one) is an attack worth
    // reporting even though the recorded version still verifies. After its retain_until, a
    // delete marker (and only that) is how an expiration rule begins removing it: policy.
    let expiring = may_have_expired(&entry, as_of_micros);
    if let Some(version) = &entry.version {
        match store.head(&entry.object, None).await {
            Ok(current) if current.version.as_deref() == Some(version.as_str()) => {}
            Ok(current) => batch_report.problem(
                ProblemKind::Replaced,
                &entry.object,
                format!(
                    "the current object is version {:?}, not the recorded {version}: something deleted or overwrote it",
                    current.version
                ),
            ),
            Err(store::Error::NotFound { .. }) if expiring => {}
            Err(store::Error::NotFound { .. }) => batch_report.problem(
                ProblemKind::Replaced,
                &entry.object,
                format!("the current object is deleted (delete marker); recorded version {version}"),
            ),
            Err(error) => return Err(error),
        }
    }
    let Some(body) = body else {
        let detail = match entry.retain_until() {
            Some(until) => format!(
                "batch of ledger entry {} is missing, before its retain_until {}",
                entry.index,
                auditum_format::time::rfc3339_micros(until)
            ),
            None => format!("batch of ledger entry {} is missing", entry.index),
        };
        batch_report.problem(ProblemKind::Missing, &entry.object, detail);
        return Ok((0, batch_report));
    };
    let (events, checked) = tokio::task::spawn_blocking(move || {
        let mut checked = Report::default();
        let events = check_batch(&entry, body, &mut checked);
        (events, checked)
    })
    .await
    .map_err(|error| store::Error::Task(error.to_string()))?;
    batch_report.problems.extend(checked.problems);
    Ok((events, batch_report))
}

/// Verifies every ledger entry, batch and checkpoint of `log`, checking batches in parallel and
/// calling `progress` as they complete.
pub async fn verify_log_with(
    store: &dyn ObjectStore,
    log: &str,
    verifier: &Verifier,
    options: &Options,
    progress: impl Fn(&Progress),
) -> Result<Report, store::Error> {
    use futures::StreamExt;
    let mut report = Report { log: log.to_string(), ..Default::default() };
    let (entries, entry_hashes) = read_ledger(store, log, &mut report).await?;
    let as_of_micros = options.as_of_micros.unwrap_or_else(auditum_format::time::now_micros);
    for entry in &entries {
        report.count_retention(entry, options.require_retention_days);
    }
    let referenced: HashSet<String> = entries.iter().map(|entry| entry.object.clone()).collect();
    let mut state = Progress { entries_total: entries.len() as u64, ..Default::default() };
    progress(&state);
    // `buffered` keeps ledger order, so problems are reported in index order.
    let mut checks = futures::stream::iter(entries.into_iter().map(|entry| check_entry_batch(store, entry, as_of_micros)))
        .buffered(options.parallelism.max(1));
    while let Some(result) = checks.next().await {
        let (events, batch_report) = result?;
        report.events += events;
        report.entries += 1;
        report.problems.extend(batch_report.problems);
        report.expired.extend(batch_report.expired);
        state.entries_checked = report.entries;
        state.events_checked = report.events;
        progress(&state);
    }
    drop(checks);

    // The latest checkpoint must be signed by the pinned key and cover exactly this ledger.
    let size = entry_hashes.len() as u64;
    let latest_key = paths::latest_checkpoint_key(log);
    let mut latest = None;
    let mut latest_exists = true;
    match store.get(&latest_key, None).await {
        Ok(body) => match verifier.verify_checkpoint(&String::from_utf8_lossy(&body)) {
            Ok(checkpoint) if checkpoint.size != size => report.problem(
                ProblemKind::Fork,
                &latest_key,
                format!("checkpoint covers {} entries but the ledger has {size}", checkpoint.size),
            ),
            Ok(checkpoint) if checkpoint.root != merkle::root(&entry_hashes) => {
                report.problem(ProblemKind::Fork, &latest_key, "checkpoint root differs from the ledger's root")
            }
            Ok(checkpoint) => {
                report.checkpoints += 1;
                latest = Some(checkpoint);
            }
            Err(error) => report.problem(ProblemKind::BadSignature, &latest_key, error.to_string()),
        },
        Err(store::Error::NotFound { .. }) if size == 0 => latest_exists = false,
        Err(store::Error::NotFound { .. }) => report.problem(ProblemKind::Missing, &latest_key, "no latest checkpoint"),
        Err(error) => return Err(error),
    }
    // Every historical checkpoint must be a prefix of this ledger, and there is one per size.
    let notes = store.list(&paths::checkpoints_prefix(log)).await?;
    let present: HashSet<u64> = notes.iter().filter_map(|meta| paths::checkpoint_size_from_key(log, &meta.key)).collect();
    let missing_notes: Vec<u64> = (1..=size).filter(|note_size| !present.contains(note_size)).collect();
    for &note_size in missing_notes.iter().take(10) {
        report.problem(
            ProblemKind::Missing,
            paths::checkpoint_note_key(log, note_size),
            format!("the signed checkpoint of ledger size {note_size} is missing (one is written per committed entry)"),
        );
    }
    if missing_notes.len() > 10 {
        report.problem(
            ProblemKind::Missing,
            paths::checkpoints_prefix(log),
            format!("{} more checkpoint notes are missing", missing_notes.len() - 10),
        );
    }
    for meta in notes {
        let Some(checkpoint_size) = paths::checkpoint_size_from_key(log, &meta.key) else {
            report.problem(ProblemKind::Malformed, &meta.key, "unexpected object in the checkpoints prefix");
            continue;
        };
        let body = store.get(&meta.key, None).await?;
        match verifier.verify_checkpoint(&String::from_utf8_lossy(&body)) {
            Err(error) => report.problem(ProblemKind::BadSignature, &meta.key, error.to_string()),
            Ok(checkpoint) if checkpoint.size != checkpoint_size => {
                report.problem(ProblemKind::Malformed, &meta.key, "size differs from its key")
            }
            Ok(checkpoint) if checkpoint.size > size => {
                report.problem(ProblemKind::Fork, &meta.key, format!("signed a ledger of {} entries; only {size} exist", checkpoint.size))
            }
            Ok(checkpoint) if checkpoint.root != merkle::root(&entry_hashes[..checkpoint.size as usize]) => {
                report.problem(ProblemKind::Fork, &meta.key, "root differs from the ledger's root at that size")
            }
            Ok(_) => report.checkpoints += 1,
        }
    }
    // The auditor's own older checkpoint: the archive must have only grown since.
    if let Some(note) = &options.since_checkpoint {
        check_since(note, verifier, &entry_hashes, latest.as_ref(), &mut report);
    }
    let batches = store.list(&paths::batches_prefix(log)).await?;
    let unreferenced = batches.iter().filter(|meta| !referenced.contains(&meta.key)).count();
    if size == 0 && unreferenced > 0 {
        // Batches nothing vouches for: the ledger was deleted (or the very first seal crashed
        // and the server never restarted to seal again, which a restart repairs).
        let detail = format!("no ledger entry exists, yet {unreferenced} batch objects do: the ledger was deleted or never written");
        report.problem(ProblemKind::Missing, paths::ledger_prefix(log), detail);
    }
    for meta in &batches {
        if !referenced.contains(&meta.key) {
            report.warnings.push(format!("orphan batch {} is referenced by no ledger entry (left by an interrupted seal)", meta.key));
        }
    }
    if size == 0 && batches.is_empty() && present.is_empty() && !latest_exists && !options.allow_empty {
        report.problem(
            ProblemKind::Empty,
            format!("{log}/"),
            "this log holds no ledger, no checkpoint and no batch: nothing to vouch for (a wrong --store or --log looks like this; --allow-empty accepts an empty log)",
        );
    }
    Ok(report)
}

fn check_since(
    note: &str,
    verifier: &Verifier,
    entry_hashes: &[Hash],
    latest: Option<&auditum_format::checkpoint::Checkpoint>,
    report: &mut Report,
) {
    let object = "--since-checkpoint";
    let old = match verifier.verify_checkpoint(note) {
        Ok(old) => old,
        Err(error) => return report.problem(ProblemKind::BadSignature, object, error.to_string()),
    };
    let size = entry_hashes.len() as u64;
    if old.size > size {
        return report.problem(
            ProblemKind::Fork,
            object,
            format!(
                "the trusted checkpoint covers {} ledger entries but the store has {size}: entries were removed or the log rolled back",
                old.size
            ),
        );
    }
    if old.size == 0 {
        return;
    }
    if merkle::root(&entry_hashes[..old.size as usize]) != old.root {
        return report.problem(
            ProblemKind::Fork,
            object,
            format!("the ledger's first {} entries do not match the trusted checkpoint: history was rewritten", old.size),
        );
    }
    // The same fact as an RFC 9162 consistency proof between the two signed heads.
    if let Some(latest) = latest {
        let path = merkle::consistency_path(entry_hashes, old.size as usize);
        let consistent = path.and_then(|path| merkle::verify_consistency(old.size, latest.size, &old.root, &latest.root, &path));
        if let Err(error) = consistent {
            report.problem(ProblemKind::Fork, object, format!("no consistency proof from the trusted checkpoint to the latest: {error}"));
        }
    }
}
