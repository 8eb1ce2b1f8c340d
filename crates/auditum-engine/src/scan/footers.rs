//! Parsed footers of recently read batch files, shared by every query of a server.

use super::{Error, RangeReader, Result, TAIL_PREFETCH_BYTES};
use auditum_batch::actor_index;
use auditum_format::event::COLUMN_NAMES;
use auditum_format::ledger::LedgerEntry;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions};
use parquet::file::metadata::PageIndexPolicy;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Parsed footers (with page index) of recently read batches and the bucket tables of their actor
/// indexes, bounded by their size in memory.
pub struct FooterCache {
    budget_bytes: usize,
    state: Mutex<FooterState>,
}

#[derive(Default)]
struct FooterState {
    footers: HashMap<FooterKey, (ArrowReaderMetadata, usize)>,
    /// Actor index tables of batches whose footer is held: checked, or None for one that failed
    /// a check (not fetched, nor warned about, again).
    index_tables: HashMap<FooterKey, (Option<Arc<actor_index::Table>>, usize)>,
    order: VecDeque<FooterKey>,
    bytes: usize,
}

type FooterKey = (String, Option<String>);

impl FooterCache {
    pub fn new(budget_bytes: usize) -> FooterCache {
        FooterCache { budget_bytes, state: Mutex::default() }
    }

    /// Whether the footer of `entry`'s batch is held.
    pub fn contains(&self, entry: &LedgerEntry) -> bool {
        let key = (entry.object.clone(), entry.version.clone());
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).footers.contains_key(&key)
    }

    fn get(&self, key: &FooterKey) -> Option<ArrowReaderMetadata> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).footers.get(key).map(|(metadata, _)| metadata.clone())
    }

    fn insert(&self, key: FooterKey, metadata: ArrowReaderMetadata) {
        let size = metadata.metadata().memory_size();
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if state.footers.insert(key.clone(), (metadata, size)).is_none() {
            state.order.push_back(key);
            state.bytes += size;
        }
        Self::evict(&mut state, self.budget_bytes);
    }

    /// Drops the oldest footers (and their index tables) until the cache fits its budget.
    fn evict(state: &mut FooterState, budget_bytes: usize) {
        while state.bytes > budget_bytes {
            let Some(oldest) = state.order.pop_front() else { break };
            if let Some((_, evicted)) = state.footers.remove(&oldest) {
                state.bytes -= evicted;
            }
            if let Some((_, evicted)) = state.index_tables.remove(&oldest) {
                state.bytes -= evicted;
            }
        }
    }

    fn index_table(&self, key: &FooterKey) -> Option<Option<Arc<actor_index::Table>>> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).index_tables.get(key).map(|(table, _)| table.clone())
    }

    fn insert_index_table(&self, key: FooterKey, table: Option<Arc<actor_index::Table>>) {
        let size = table.as_ref().map_or(std::mem::size_of::<FooterKey>(), |table| table.memory_size());
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // Held only beside its footer, so eviction drops both.
        if state.footers.contains_key(&key) && state.index_tables.insert(key, (table, size)).is_none() {
            state.bytes += size;
            Self::evict(&mut state, self.budget_bytes);
        }
    }

    /// The checked bucket table of a batch's actor index, from the cache or read; None when the
    /// file has no index, or one that failed a check before. An index failing a check now is an
    /// error the caller falls back from (and warns about, once: it is remembered as unusable).
    pub(super) fn load_index_table(
        &self,
        reader: &RangeReader,
        metadata: &ArrowReaderMetadata,
    ) -> Result<Option<Arc<actor_index::Table>>, IndexUnavailable> {
        let key = (reader.inner.object.clone(), reader.inner.version.clone());
        if let Some(found) = self.index_table(&key) {
            return Ok(found);
        }
        match read_index_table(reader, metadata) {
            Ok(table) => {
                if let Some(table) = &table {
                    self.insert_index_table(key, Some(table.clone()));
                }
                Ok(table)
            }
            Err(IndexUnavailable::Index(error)) => {
                self.insert_index_table(key, None);
                Err(IndexUnavailable::Index(error))
            }
            Err(read_failed) => Err(read_failed),
        }
    }

    /// The footer of a batch, from the cache or read with ranged requests.
    pub fn load(&self, reader: &RangeReader) -> Result<ArrowReaderMetadata> {
        let key = (reader.inner.object.clone(), reader.inner.version.clone());
        if let Some(found) = self.get(&key) {
            return Ok(found);
        }
        let size = reader.inner.size;
        reader.fetch(size.saturating_sub(TAIL_PREFETCH_BYTES)..size).map_err(|error| reader.error(error))?;
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata = ArrowReaderMetadata::load(reader, options).map_err(|error| reader.error(error))?;
        let names: Vec<&str> = metadata.schema().fields().iter().map(|field| field.name().as_str()).collect();
        if names != COLUMN_NAMES {
            return Err(Error::Archive {
                object: reader.object().to_string(),
                reason: format!("columns are {names:?}, not docs/FORMAT.md, Stored columns's"),
            });
        }
        self.insert(key, metadata.clone());
        Ok(metadata)
    }
}

/// Reads and checks a batch's actor index table; None when the file has no index.
fn read_index_table(reader: &RangeReader, metadata: &ArrowReaderMetadata) -> Result<Option<Arc<actor_index::Table>>, IndexUnavailable> {
    let parquet = metadata.metadata();
    let location = match actor_index::Location::from_metadata(parquet.file_metadata()) {
        None => return Ok(None),
        Some(location) => location.map_err(IndexUnavailable::Index)?,
    };
    if location.table.end > reader.inner.size {
        return Err(IndexUnavailable::Index(actor_index::Error::Table(format!(
            "it ends at byte {}, past the {}-byte file",
            location.table.end, reader.inner.size
        ))));
    }
    let bytes = reader.fetch(location.table.clone()).map_err(|error| IndexUnavailable::Read(reader.error(error)))?;
    let table = actor_index::Table::parse(&location, &bytes).map_err(IndexUnavailable::Index)?;
    if i64::from(table.rows()) != parquet.file_metadata().num_rows() {
        return Err(IndexUnavailable::Index(actor_index::Error::Table(format!(
            "it covers {} rows, the file holds {}",
            table.rows(),
            parquet.file_metadata().num_rows()
        ))));
    }
    Ok(Some(Arc::new(table)))
}

/// Why an actor index cannot be used: the store failed (the query fails, as for any read), or the
/// index failed a check (the query falls back to bloom filters).
#[derive(Debug)]
pub(super) enum IndexUnavailable {
    Read(Error),
    Index(actor_index::Error),
}
