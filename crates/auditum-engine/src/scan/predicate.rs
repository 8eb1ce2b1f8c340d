//! What a query asks of stored rows, and the tests the pruning chain derives from it.

use super::column_index;
use arrow::array::{Array, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt64Array};
use auditum_format::ledger::LedgerEntry;
use parquet::file::metadata::RowGroupMetaData;
use parquet::file::statistics::Statistics;
use std::sync::Arc;

/// A test on one text column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TextTest {
    Equals(String),
    /// Any of the exact values, or any value starting with one of the prefixes.
    OneOf {
        exact: Vec<String>,
        prefixes: Vec<String>,
    },
}

impl TextTest {
    pub fn matches(&self, value: &str) -> bool {
        match self {
            TextTest::Equals(expected) => value == expected,
            TextTest::OneOf { exact, prefixes } => {
                exact.iter().any(|candidate| candidate == value) || prefixes.iter().any(|prefix| value.starts_with(prefix.as_str()))
            }
        }
    }

    /// Whether a value in [min, max] may pass (bounds inclusive; None is unbounded).
    pub(super) fn may_match_range(&self, min: Option<&[u8]>, max: Option<&[u8]>) -> bool {
        let within = |value: &[u8]| min.is_none_or(|min| min <= value) && max.is_none_or(|max| value <= max);
        match self {
            TextTest::Equals(expected) => within(expected.as_bytes()),
            TextTest::OneOf { exact, prefixes } => {
                exact.iter().any(|value| within(value.as_bytes()))
                    || prefixes.iter().any(|prefix| {
                        // Values starting with the prefix form one contiguous range from the prefix.
                        let prefix = prefix.as_bytes();
                        max.is_none_or(|max| max >= prefix) && min.is_none_or(|min| min <= prefix || min.starts_with(prefix))
                    })
            }
        }
    }
}

/// The exact predicate over stored columns: text tests, a time range on `occurred_at`, and the
/// keyset bound of pagination on (`occurred_at`, `seq`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Predicate {
    /// (column name, test); `tenant_id` is always one of them.
    pub texts: Vec<(&'static str, TextTest)>,
    /// occurred_at in [start, end).
    pub start: Option<i64>,
    pub end: Option<i64>,
    /// Rows strictly after (ascending) or before (descending) this (occurred_at, seq).
    pub cursor: Option<(i64, u64)>,
    pub descending: bool,
}

impl Predicate {
    /// Passes every row (internal followers filter on their own); use with the tenant "".
    pub fn match_all() -> Predicate {
        Predicate { texts: Vec::new(), start: None, end: None, cursor: None, descending: false }
    }

    /// The occurred_at range [low, high) that can hold a passing row.
    pub fn time_bounds(&self) -> (i64, i64) {
        let mut low = self.start.unwrap_or(i64::MIN);
        let mut high = self.end.unwrap_or(i64::MAX);
        if let Some((occurred_at, _)) = self.cursor {
            if self.descending {
                high = high.min(occurred_at.saturating_add(1));
            } else {
                low = low.max(occurred_at);
            }
        }
        (low, high)
    }

    pub(super) fn time_may_overlap(&self, min: Option<i64>, max: Option<i64>) -> bool {
        let (low, high) = self.time_bounds();
        low < high && max.is_none_or(|max| max >= low) && min.is_none_or(|min| min < high)
    }

    /// Whether a row with these values passes.
    pub fn matches_key(&self, occurred_at: i64, seq: u64) -> bool {
        let (low, high) = self.time_bounds();
        if occurred_at < low || occurred_at >= high {
            return false;
        }
        match self.cursor {
            None => true,
            Some(cursor) if self.descending => (occurred_at, seq) < cursor,
            Some(cursor) => (occurred_at, seq) > cursor,
        }
    }

    /// Whether a ledger entry's batch may hold a passing row. A `tenant_id` of "" (never a valid
    /// tenant id) stands for every tenant: internal followers (deliveries) read them all.
    pub fn entry_may_match(&self, tenant_id: &str, entry: &LedgerEntry) -> bool {
        let tenant_listed = tenant_id.is_empty()
            || entry.tenants.as_ref().is_none_or(|tenants| tenants.binary_search_by(|t| t.as_str().cmp(tenant_id)).is_ok());
        tenant_listed && self.time_may_overlap(Some(entry.min_occurred_at), Some(entry.max_occurred_at))
    }

    /// The batches a read may need: those the catalog does not prune.
    pub fn candidates(&self, tenant_id: &str, entries: &[Arc<LedgerEntry>]) -> Vec<Arc<LedgerEntry>> {
        entries.iter().filter(|entry| self.entry_may_match(tenant_id, entry)).cloned().collect()
    }

    pub(super) fn row_group_may_match(&self, row_group: &RowGroupMetaData) -> bool {
        let rows = row_group.num_rows() as u64;
        let occurred_at = row_group.column(column_index("occurred_at")).statistics();
        let (min, max) = match occurred_at {
            Some(Statistics::Int64(stats)) => (stats.min_opt().copied(), stats.max_opt().copied()),
            _ => (None, None),
        };
        if !self.time_may_overlap(min, max) {
            return false;
        }
        self.texts.iter().all(|(name, test)| match row_group.column(column_index(name)).statistics() {
            Some(Statistics::ByteArray(stats)) => {
                if stats.null_count_opt() == Some(rows) {
                    return false;
                }
                test.may_match_range(stats.min_opt().map(|value| value.data()), stats.max_opt().map(|value| value.data()))
            }
            _ => true,
        })
    }

    /// Which columns the predicate is evaluated on.
    pub(super) fn predicate_columns(&self) -> Vec<usize> {
        let mut columns: Vec<usize> = self.texts.iter().map(|(name, _)| column_index(name)).collect();
        columns.push(column_index("occurred_at"));
        if self.cursor.is_some() {
            columns.push(column_index("seq"));
        }
        columns.sort_unstable();
        columns.dedup();
        columns
    }

    /// Evaluates the predicate over the decoded predicate columns.
    pub(super) fn evaluate(&self, batch: &RecordBatch) -> std::result::Result<BooleanArray, arrow::error::ArrowError> {
        let missing = |name: &str| arrow::error::ArrowError::SchemaError(format!("column {name} is missing or mistyped"));
        let occurred_at = batch
            .column_by_name("occurred_at")
            .and_then(|array| array.as_any().downcast_ref::<TimestampMicrosecondArray>())
            .ok_or_else(|| missing("occurred_at"))?;
        let seq = match self.cursor {
            Some(_) => Some(
                batch.column_by_name("seq").and_then(|array| array.as_any().downcast_ref::<UInt64Array>()).ok_or_else(|| missing("seq"))?,
            ),
            None => None,
        };
        let texts = self
            .texts
            .iter()
            .map(|(name, test)| {
                let array = batch
                    .column_by_name(name)
                    .and_then(|array| array.as_any().downcast_ref::<StringArray>())
                    .ok_or_else(|| missing(name))?;
                Ok((array, test))
            })
            .collect::<std::result::Result<Vec<_>, arrow::error::ArrowError>>()?;
        let passing = (0..batch.num_rows()).map(|row| {
            let key_ok = self.matches_key(occurred_at.value(row), seq.map_or(0, |seq| seq.value(row)));
            Some(key_ok && texts.iter().all(|(array, test)| array.is_valid(row) && test.matches(array.value(row))))
        });
        Ok(passing.collect())
    }
}
