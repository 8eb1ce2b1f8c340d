//! Sealed batches: events sorted by (tenant_id, occurred_at, seq), encoded as Parquet with the
//! columns of docs/FORMAT.md, Stored columns, their leaf hashes and the batch Merkle root.
//!
//! CPU-heavy: callers run these functions on the blocking pool, never on the async runtime.

use arrow::array::{Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use auditum_format::event::{COLUMN_NAMES, ColumnBytes, EventRecord, HASHED_COLUMNS, LeafHash, Seq};
use auditum_format::ledger;
use auditum_format::merkle::{self, Hash};
use bytes::Bytes;
use encoded::EncodedRecords;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use rows::{RowColumns, TextSizes};
use sha2::{Digest, Sha256};
use std::sync::{Arc, LazyLock};

pub mod actor_index;
mod columns;
mod encoded;
mod rows;

pub use columns::EventColumns;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How rows are grouped in a batch file: the granularity of row-group statistics, bloom filters
/// and the page index, which queries prune by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLayout {
    /// Rows per row group: small enough that statistics prune needle queries, large enough that
    /// dictionaries and zstd compress well.
    pub row_group_rows: usize,
    /// Rows per data page at most: the granularity of the page index.
    pub page_rows: usize,
}

impl Default for BatchLayout {
    fn default() -> Self {
        BatchLayout { row_group_rows: 65_536, page_rows: 1_024 }
    }
}
const ZSTD_LEVEL: i32 = 1;
const ENCODE_CHUNK_ROWS: usize = 16_384;

/// Columns that answer equality lookups ("everything this request did").
pub const BLOOM_FILTER_COLUMNS: [&str; 7] = ["id", "actor_id", "target_id", "request_id", "correlation_id", "session_id", "source_ip"];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("batch schema mismatch: {0}")]
    Schema(String),
    #[error("cannot seal an empty batch")]
    Empty,
    #[error("writing the actor index: {0}")]
    Io(#[from] std::io::Error),
}

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let required = ["seq", "id", "tenant_id", "occurred_at", "received_at", "action", "actor_id", "outcome", "leaf_hash"];
    let fields: Vec<Field> = COLUMN_NAMES
        .iter()
        .map(|&name| {
            let data_type = match name {
                "seq" => DataType::UInt64,
                "occurred_at" | "received_at" => timestamp.clone(),
                "leaf_hash" => DataType::FixedSizeBinary(32),
                _ => DataType::Utf8,
            };
            Field::new(name, data_type, !required.contains(&name))
        })
        .collect();
    Arc::new(Schema::new(fields))
});

/// The Arrow schema of a batch file (docs/FORMAT.md, Stored columns).
pub fn schema() -> SchemaRef {
    SCHEMA.clone()
}

/// A column chunk's dictionary stays this small; past it the chunk's later pages are plain (and
/// zstd still compresses repeats). A reader decodes a chunk's whole dictionary to return any row
/// of it, so a needle touching a chunk of near-unique values (request ids, IPs, JSON) paid for
/// decoding up to 1 MiB per column with parquet's default; low-cardinality columns (tenants,
/// actions, outcomes) keep theirs whole.
const DICTIONARY_PAGE_BYTES: usize = 32 * 1024;

pub fn writer_properties(rows: usize, layout: BatchLayout) -> Result<WriterProperties> {
    let column_index = |name: &str| COLUMN_NAMES.iter().position(|column| *column == name).unwrap_or(0) as i32;
    let sorting = ["tenant_id", "occurred_at", "seq"]
        .iter()
        .map(|name| SortingColumn { column_idx: column_index(name), descending: false, nulls_first: false })
        .collect();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_sorting_columns(Some(sorting))
        .set_max_row_group_row_count(Some(layout.row_group_rows.max(1)))
        .set_data_page_row_count_limit(layout.page_rows.max(1))
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        // The page row limit is checked once per write batch: keep a write batch within a page.
        .set_write_batch_size(layout.page_rows.clamp(1, 1024))
        .set_created_by(format!("auditum {}", env!("CARGO_PKG_VERSION")));
    // Page statistics (the column index) only for columns queries filter or sort on: on long
    // free-text and JSON columns they would cost bytes and footer reads for nothing.
    for name in ["actor_name", "target_name", "error_code", "reason", "user_agent", "service", "before", "after", "metadata", "leaf_hash"] {
        builder = builder.set_column_statistics_enabled(ColumnPath::from(name), EnabledStatistics::Chunk);
    }
    // Unique or random columns gain nothing from a dictionary.
    for name in ["seq", "id", "leaf_hash", "occurred_at", "received_at"] {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    for name in ["seq", "occurred_at", "received_at"] {
        builder = builder.set_column_encoding(ColumnPath::from(name), Encoding::DELTA_BINARY_PACKED);
    }
    // Columns zstd cannot shrink: a SHA-256 per row, consecutive seqs (delta-packed), the sorted
    // tenant (a few runs), the two enums and the low-cardinality columns (dictionary indexes,
    // bit-packed: action, target_type, error_code, service). Stored plain they cost a reader no
    // decompressor, whose creation (cpu feature probes, a context allocated) is a needle's largest
    // fixed cost per column chunk on virtual machines.
    for name in ["seq", "tenant_id", "actor_type", "outcome", "leaf_hash", "action", "target_type", "error_code", "service"] {
        builder = builder.set_column_compression(ColumnPath::from(name), Compression::UNCOMPRESSED);
    }
    let ndv = rows.clamp(1, layout.row_group_rows.max(1)) as u64;
    for name in BLOOM_FILTER_COLUMNS {
        builder = builder
            .set_column_bloom_filter_enabled(ColumnPath::from(name), true)
            .set_column_bloom_filter_fpp(ColumnPath::from(name), 0.01)
            .set_column_bloom_filter_max_ndv(ColumnPath::from(name), ndv);
    }
    Ok(builder.build())
}

/// A batch encoded and hashed, ready to be put and committed.
#[derive(Debug, Clone)]
pub struct BuiltBatch {
    pub bytes: Bytes,
    pub sha256: Hash,
    pub root: Hash,
    pub first_seq: Seq,
    pub count: u64,
    pub min_occurred_at: i64,
    pub max_occurred_at: i64,
    pub min_received_at: i64,
    pub max_received_at: i64,
    pub tenants: Option<Vec<String>>,
}

pub fn record_batch(rows: &[(&EventRecord, LeafHash)]) -> Result<RecordBatch> {
    let mut columns = RowColumns::with_capacity(rows.len(), TextSizes::default());
    for (record, leaf_hash) in rows {
        columns.push(&record.column_values(), leaf_hash)?;
    }
    Ok(columns.finish()?.0)
}

/// Encodes rows into a batch file in the order given, with the leaf hashes given.
pub fn encode_rows(rows: &[(&EventRecord, LeafHash)], layout: BatchLayout) -> Result<Vec<u8>> {
    Ok(encode_records(rows.len(), layout, |index| Ok((rows[index].0.column_values(), rows[index].1)))?.0)
}

/// A text column's value, "" when null.
fn text(value: ColumnBytes<'_>) -> &str {
    match value {
        ColumnBytes::Text(text) => text,
        _ => "",
    }
}

/// Encodes `count` rows into a batch file, `row(index)` giving each row's canonical columns and
/// leaf hash in file order; returns the file and the leaf hashes in that order.
fn encode_records<'a>(
    count: usize,
    layout: BatchLayout,
    mut row: impl FnMut(usize) -> Result<([ColumnBytes<'a>; HASHED_COLUMNS], LeafHash)>,
) -> Result<(Vec<u8>, Vec<LeafHash>)> {
    let mut bytes = Vec::with_capacity(count * 128);
    let mut writer = ArrowWriter::try_new(&mut bytes, schema(), Some(writer_properties(count, layout)?))?;
    let mut leaves = Vec::with_capacity(count);
    let mut keys = Vec::with_capacity(count);
    let mut sizes = TextSizes::default();
    for chunk_start in (0..count).step_by(ENCODE_CHUNK_ROWS) {
        let chunk_end = (chunk_start + ENCODE_CHUNK_ROWS).min(count);
        let mut columns = RowColumns::with_capacity(chunk_end - chunk_start, sizes);
        for index in chunk_start..chunk_end {
            let (values, leaf) = row(index)?;
            // tenant_id and actor_id.
            keys.push(actor_index::key(text(values[2]), text(values[6])));
            columns.push(&values, &leaf)?;
            leaves.push(leaf);
        }
        let (batch, chunk_sizes) = columns.finish()?;
        sizes = chunk_sizes;
        writer.write(&batch)?;
    }
    // The actor index goes after the last row group, before the page index and footer.
    writer.flush()?;
    let index = actor_index::encode(&keys);
    let regions_offset = writer.bytes_written() as u64;
    writer.write_all(&index.regions)?;
    writer.write_all(&index.table)?;
    writer.append_key_value_metadata(parquet::file::metadata::KeyValue::new(
        actor_index::METADATA_KEY.to_string(),
        index.metadata_value(regions_offset),
    ));
    writer.close()?;
    Ok((bytes, leaves))
}

/// Sorts, hashes and encodes a batch. `records` must hold contiguous seqs.
pub fn build_batch(records: &[Arc<EventRecord>], layout: BatchLayout) -> Result<BuiltBatch> {
    let first = records.first().ok_or(Error::Empty)?;
    let BatchOrder { order, tenant_ranks, tenants } = sort_for_batch(records);
    // Encoded and hashed in seq order into one run of memory per tenant (see `encoded`), then read
    // back in the batch's order.
    let encoded = EncodedRecords::new(records, &tenant_ranks, tenants.len());
    let (bytes, leaves) = encode_records(order.len(), layout, |index| encoded.row(order[index] as usize))?;
    let root = merkle::root(&leaves);
    let sha256: Hash = Sha256::digest(&bytes).into();

    let min_max = |get: fn(&EventRecord) -> i64| {
        let values = records.iter().map(|record| get(record));
        (values.clone().min().unwrap_or_default(), values.max().unwrap_or_default())
    };
    let (min_occurred_at, max_occurred_at) = min_max(|record| record.occurred_at);
    let (min_received_at, max_received_at) = min_max(|record| record.received_at);
    Ok(BuiltBatch {
        bytes: Bytes::from(bytes),
        sha256,
        root,
        first_seq: first.seq,
        count: records.len() as u64,
        min_occurred_at,
        max_occurred_at,
        min_received_at,
        max_received_at,
        tenants: ledger::tenant_list(tenants.into_iter()),
    })
}

/// A batch's order (`batch_order`: tenant_id, occurred_at, seq).
struct BatchOrder<'a> {
    /// The records' positions in batch order.
    order: Vec<u32>,
    /// Each record's tenant's rank among the batch's tenants, by position.
    tenant_ranks: Vec<u32>,
    /// The batch's distinct tenants, in order.
    tenants: Vec<&'a str>,
}

/// The records' batch order. Sorting compares integer keys: each tenant's rank among the
/// batch's few tenants, then the two integers. Comparing the records themselves followed two
/// pointers and compared tenant strings some 18 times per record (a tenth of a seal's time).
fn sort_for_batch(records: &[Arc<EventRecord>]) -> BatchOrder<'_> {
    // Each record's tenant as an id in order of first appearance, then those ids re-ranked by name.
    let mut first_seen: std::collections::HashMap<&str, u32> = std::collections::HashMap::new();
    let seen_ids: Vec<u32> = records
        .iter()
        .map(|record| {
            let next = first_seen.len() as u32;
            *first_seen.entry(record.tenant_id.as_str()).or_insert(next)
        })
        .collect();
    let mut tenants: Vec<(&str, u32)> = first_seen.into_iter().collect();
    tenants.sort_unstable();
    let mut rank_of_seen = vec![0u32; tenants.len()];
    for (rank, (_, seen_id)) in tenants.iter().enumerate() {
        rank_of_seen[*seen_id as usize] = rank as u32;
    }
    let tenant_ranks: Vec<u32> = seen_ids.iter().map(|seen_id| rank_of_seen[*seen_id as usize]).collect();
    let mut keys: Vec<(u32, i64, Seq, u32)> = records
        .iter()
        .zip(&tenant_ranks)
        .enumerate()
        .map(|(index, (record, rank))| (*rank, record.occurred_at, record.seq, index as u32))
        .collect();
    keys.sort_unstable();
    let order = keys.iter().map(|&(_, _, _, index)| index).collect();
    let tenants = tenants.into_iter().map(|(tenant, _)| tenant).collect();
    BatchOrder { order, tenant_ranks, tenants }
}

/// One row read back from a batch file, with the leaf hash it stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRow {
    pub record: EventRecord,
    pub stored_leaf_hash: LeafHash,
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .ok_or_else(|| Error::Schema(format!("missing column {name}")))?
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| Error::Schema(format!("column {name} has type other than the design's")))
}

fn text_at(array: &StringArray, row: usize) -> Option<String> {
    if array.is_null(row) { None } else { Some(array.value(row).to_string()) }
}

fn required_text_at(array: &StringArray, row: usize, name: &str) -> Result<String> {
    text_at(array, row).ok_or_else(|| Error::Schema(format!("row {row}: required column {name} is null")))
}

/// The columns that identify an event for Append idempotency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyColumns {
    pub seq: Seq,
    pub tenant_id: String,
    pub id: String,
    pub received_at: i64,
}

/// Reads only `seq`, `id`, `tenant_id` and `received_at` of a batch file.
pub fn read_idempotency_columns(bytes: Bytes) -> Result<Vec<IdempotencyColumns>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let mask = parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), ["seq", "id", "tenant_id", "received_at"]);
    let reader = builder.with_projection(mask).with_batch_size(ENCODE_CHUNK_ROWS).build()?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch?;
        let seq = column::<UInt64Array>(&batch, "seq")?;
        let id = column::<StringArray>(&batch, "id")?;
        let tenant_id = column::<StringArray>(&batch, "tenant_id")?;
        let received_at = column::<TimestampMicrosecondArray>(&batch, "received_at")?;
        for row in 0..batch.num_rows() {
            rows.push(IdempotencyColumns {
                seq: Seq(seq.value(row)),
                tenant_id: required_text_at(tenant_id, row, "tenant_id")?,
                id: required_text_at(id, row, "id")?,
                received_at: received_at.value(row),
            });
        }
    }
    Ok(rows)
}

/// The rows of one decoded record batch holding every column of the design.
pub fn stored_rows(batch: &RecordBatch) -> Result<Vec<StoredRow>> {
    let arrays = EventColumns::new(batch)?;
    (0..batch.num_rows()).map(|row| Ok(StoredRow { record: arrays.record(row)?, stored_leaf_hash: arrays.stored_leaf(row)? })).collect()
}

/// Decodes every row of a batch file, checking it has exactly the design's columns in order.
pub fn read_batch(bytes: Bytes) -> Result<Vec<StoredRow>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(ENCODE_CHUNK_ROWS).build()?;
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch?;
        let arrays = EventColumns::new(&batch)?;
        for row in 0..batch.num_rows() {
            rows.push(StoredRow { record: arrays.record(row)?, stored_leaf_hash: arrays.stored_leaf(row)? });
        }
    }
    Ok(rows)
}

/// Parsed footer of a batch file, reusable across reads of the same bytes.
pub type FileMetadata = parquet::arrow::arrow_reader::ArrowReaderMetadata;

pub fn file_metadata(bytes: &Bytes) -> Result<FileMetadata> {
    Ok(FileMetadata::load(bytes, Default::default())?)
}

/// Decodes the single row at `position` (file order), reading only the pages that hold it.
pub fn read_row(bytes: Bytes, metadata: FileMetadata, position: usize) -> Result<EventRecord> {
    use parquet::arrow::arrow_reader::{RowSelection, RowSelector};
    let selection = RowSelection::from(vec![RowSelector::skip(position), RowSelector::select(1)]);
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(bytes, metadata).with_row_selection(selection).build()?;
    for batch in reader {
        let batch = batch?;
        if batch.num_rows() > 0 {
            return EventColumns::new(&batch)?.record(0);
        }
    }
    Err(Error::Schema(format!("no row at position {position}")))
}

/// What verification needs of a batch file, computed without building records.
#[derive(Debug, Clone, Default)]
pub struct BatchDigest {
    /// Recomputed leaf hashes, in file order.
    pub leaves: Vec<LeafHash>,
    /// Seqs, in file order.
    pub seqs: Vec<u64>,
    /// Positions whose stored `leaf_hash` differs from the recomputed one.
    pub stored_leaf_mismatches: Vec<usize>,
    /// Whether rows are strictly sorted by (tenant_id, occurred_at, seq).
    pub sorted: bool,
    /// Whether the embedded actor index is the one the rows give.
    pub actor_index: IndexCheck,
}

/// What verification found of a file's actor index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum IndexCheck {
    /// No index: a file sealed before indexes existed.
    #[default]
    Absent,
    Matches,
    /// The stored index differs from the one rebuilt from the rows: why.
    Differs(String),
}

fn check_actor_index(bytes: &Bytes, file: &parquet::file::metadata::FileMetaData, keys: &[u64]) -> IndexCheck {
    let location = match actor_index::Location::from_metadata(file) {
        None => return IndexCheck::Absent,
        Some(Err(error)) => return IndexCheck::Differs(error.to_string()),
        Some(Ok(location)) => location,
    };
    let stored = |range: &std::ops::Range<u64>| bytes.get(usize::try_from(range.start).ok()?..usize::try_from(range.end).ok()?);
    let (Some(regions), Some(table)) = (stored(&location.regions), stored(&location.table)) else {
        return IndexCheck::Differs("its location lies outside the file".into());
    };
    let rebuilt = actor_index::encode(keys);
    if <[u8; 32]>::from(Sha256::digest(table)) != location.table_sha256 {
        return IndexCheck::Differs("its table does not match the SHA-256 in the footer".into());
    }
    if rebuilt.regions != regions || rebuilt.table != table {
        return IndexCheck::Differs("it does not list the rows' (tenant_id, actor_id) where they are".into());
    }
    IndexCheck::Matches
}

/// Recomputes every leaf of a batch file straight from its columns.
pub fn digest(bytes: Bytes) -> Result<BatchDigest> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone())?;
    let file_metadata = builder.metadata().file_metadata().clone();
    let reader = builder.with_batch_size(ENCODE_CHUNK_ROWS).build()?;
    let mut digest = BatchDigest { sorted: true, ..Default::default() };
    let mut index_keys = Vec::new();
    let mut buf = Vec::with_capacity(4096);
    let mut previous: Option<(String, i64, u64)> = None;
    for batch in reader {
        let batch = batch?;
        let arrays = EventColumns::new(&batch)?;
        for row in 0..batch.num_rows() {
            buf.clear();
            arrays.encode_row(row, &mut buf);
            let leaf = auditum_format::event::leaf_hash_of_encoded_columns(&buf);
            if arrays.stored_leaf(row)? != leaf {
                digest.stored_leaf_mismatches.push(digest.leaves.len());
            }
            digest.leaves.push(leaf);
            let key = arrays.sort_key(row);
            digest.seqs.push(key.2);
            let ordered = match row {
                0 => previous.as_ref().is_none_or(|(tenant, occurred_at, seq)| (tenant.as_str(), *occurred_at, *seq) < key),
                _ => arrays.sort_key(row - 1) < key,
            };
            digest.sorted &= ordered;
            index_keys.push(actor_index::key(key.0, arrays.actor_id(row)));
        }
        // Carried across record-batch boundaries.
        if let Some(last) = batch.num_rows().checked_sub(1) {
            let (tenant, occurred_at, seq) = arrays.sort_key(last);
            previous = Some((tenant.to_string(), occurred_at, seq));
        }
    }
    digest.actor_index = check_actor_index(&bytes, &file_metadata, &index_keys);
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditum_format::event::batch_order;
    use rand::{Rng, SeedableRng};

    #[test]
    fn the_batch_sort_is_batch_order_and_lists_each_tenant_once_in_order() {
        // Tenants that share prefixes, differ in case and hold multi-byte text; times that tie.
        let tenants = ["b", "a", "ab", "a:b", "A", "zé", "z", "aa"];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let records: Vec<Arc<EventRecord>> = (0..5_000u64)
            .map(|n| {
                Arc::new(EventRecord {
                    seq: Seq(1_000 + n),
                    tenant_id: tenants[rng.gen_range(0..tenants.len())].to_string(),
                    occurred_at: rng.gen_range(-25..25),
                    ..Default::default()
                })
            })
            .collect();
        let BatchOrder { order, tenant_ranks, tenants: listed } = sort_for_batch(&records);
        let sorted: Vec<&EventRecord> = order.iter().map(|position| records[*position as usize].as_ref()).collect();
        let mut expected: Vec<&EventRecord> = records.iter().map(|record| record.as_ref()).collect();
        expected.sort_by(|left, right| batch_order(left, right));
        let seqs = |rows: &[&EventRecord]| rows.iter().map(|record| record.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&sorted), seqs(&expected));
        for (record, rank) in records.iter().zip(&tenant_ranks) {
            assert_eq!(listed[*rank as usize], record.tenant_id);
        }
        let mut distinct: Vec<&str> = tenants.to_vec();
        distinct.sort();
        assert_eq!(listed, distinct);
    }

    /// Rows encoded with the leaf hashes given keep them, each on its own row, across chunks.
    #[test]
    fn encoded_rows_keep_the_leaf_hashes_given_in_order() {
        let records = rows::tests::random_records(ENCODE_CHUNK_ROWS + 300, 9);
        // Leaves that are not the records' own: each row's index, so a shifted one shows.
        let given: Vec<LeafHash> = (0..records.len())
            .map(|index| {
                let mut leaf = [0u8; 32];
                leaf[..8].copy_from_slice(&(index as u64).to_be_bytes());
                leaf
            })
            .collect();
        let rows: Vec<(&EventRecord, LeafHash)> = records.iter().zip(&given).map(|(record, leaf)| (record, *leaf)).collect();
        let stored = read_batch(Bytes::from(encode_rows(&rows, BatchLayout::default()).unwrap())).unwrap();
        assert_eq!(stored.iter().map(|row| row.stored_leaf_hash).collect::<Vec<_>>(), given);
        assert!(stored.iter().zip(&records).all(|(row, record)| row.record == *record));
    }

    /// Over several encoding chunks (each sized from the one before), every row reads back as its
    /// record with the record's own leaf hash, the root is over those leaves in batch order, and
    /// the file passes its own digest (leaves, order, actor index).
    #[test]
    fn a_built_batch_reads_back_as_its_records_with_their_leaves_and_root() {
        let records: Vec<Arc<EventRecord>> = rows::tests::random_records(ENCODE_CHUNK_ROWS * 2 + 777, 5)
            .into_iter()
            .enumerate()
            .map(|(index, record)| Arc::new(EventRecord { seq: Seq(100 + index as u64), ..record }))
            .collect();
        let built = build_batch(&records, BatchLayout::default()).unwrap();
        let stored = read_batch(built.bytes.clone()).unwrap();
        let mut expected: Vec<&EventRecord> = records.iter().map(|record| record.as_ref()).collect();
        expected.sort_by(|left, right| batch_order(left, right));
        assert_eq!(stored.len(), expected.len());
        for (row, record) in stored.iter().zip(&expected) {
            assert_eq!(&row.record, *record);
            assert_eq!(row.stored_leaf_hash, record.leaf_hash());
        }
        let leaves: Vec<Hash> = expected.iter().map(|record| record.leaf_hash()).collect();
        assert_eq!(built.root, merkle::root(&leaves));
        let digest = digest(built.bytes.clone()).unwrap();
        assert!(digest.sorted && digest.stored_leaf_mismatches.is_empty());
        assert_eq!(digest.leaves, leaves);
        assert!(matches!(digest.actor_index, IndexCheck::Matches), "{:?}", digest.actor_index);
    }

    /// The seal's path (records encoded per tenant in seq order, then read back sorted) writes
    /// the very bytes of the plain path (records sorted, then encoded with their own leaves), over
    /// many tenants, records as large as an event may be (larger than a tenant's first block) and
    /// occurred_at out of seq order.
    #[test]
    fn a_built_batch_is_byte_for_byte_the_sorted_records_encoded_with_their_leaves() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(21);
        let large = "x".repeat(auditum_format::rules::MAX_EVENT_BYTES - 1_000);
        let records: Vec<Arc<EventRecord>> = rows::tests::random_records(5_000, 8)
            .into_iter()
            .enumerate()
            .map(|(index, record)| {
                Arc::new(EventRecord {
                    seq: Seq(7 + index as u64),
                    tenant_id: format!("tenant-{:02}", rng.gen_range(0..37)),
                    metadata: if rng.gen_bool(0.01) { Some(large.clone()) } else { record.metadata.clone() },
                    ..record
                })
            })
            .collect();
        let built = build_batch(&records, BatchLayout::default()).unwrap();
        let mut sorted: Vec<&EventRecord> = records.iter().map(|record| record.as_ref()).collect();
        sorted.sort_by(|left, right| batch_order(left, right));
        let rows: Vec<(&EventRecord, LeafHash)> = sorted.iter().map(|record| (*record, record.leaf_hash())).collect();
        assert!(built.bytes == encode_rows(&rows, BatchLayout::default()).unwrap(), "the seal's bytes differ from the plain path's");
    }
}
