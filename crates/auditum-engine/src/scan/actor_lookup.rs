//! Needles by actor through the actor index embedded in batch files (`auditum_batch::actor_index`):
//! the rows of one (tenant, actor) in a batch, read from one small region of the file, in place
//! of bloom filters and the candidate pages of every row group.

use super::footers::IndexUnavailable;
use super::{FooterCache, Predicate, RangeReader, Result, TextTest};
use auditum_batch::actor_index;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;
use std::ops::Range;

/// The (tenant, actor) a predicate pins down, if it does.
pub(super) fn actor_needle(predicate: &Predicate) -> Option<(&str, &str)> {
    let equals = |column: &str| {
        predicate.texts.iter().find_map(|(name, test)| match test {
            TextTest::Equals(value) if *name == column => Some(value.as_str()),
            _ => None,
        })
    };
    Some((equals("tenant_id")?, equals("actor_id")?))
}

/// The rows of the batch (file order, ascending) holding the actor, by the batch's actor index.
/// None when the batch has no index or its index fails a check: the caller then scans with bloom
/// filters, so a damaged index costs time, never rows. A failed read is an error, as for any page.
pub(super) fn indexed_rows(
    reader: &RangeReader,
    footers: &FooterCache,
    metadata: &ArrowReaderMetadata,
    tenant_id: &str,
    actor_id: &str,
) -> Result<Option<Vec<u32>>> {
    let unusable = |error: actor_index::Error| {
        tracing::warn!(object = reader.object(), %error, "actor index not used; falling back to bloom filters");
        None
    };
    let table = match footers.load_index_table(reader, metadata) {
        Ok(Some(table)) => table,
        Ok(None) => return Ok(None),
        Err(IndexUnavailable::Read(error)) => return Err(error),
        Err(IndexUnavailable::Index(error)) => return Ok(unusable(error)),
    };
    let key = actor_index::key(tenant_id, actor_id);
    let (bucket, range) = table.region(key);
    if range.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let region = reader.fetch(range).map_err(|error| reader.error(error))?;
    match table.rows_of(key, bucket, &region) {
        Ok(rows) => Ok(Some(rows)),
        Err(error) => Ok(unusable(error)),
    }
}

/// The runs of `rows` (file order, ascending) that fall in `group` (file rows), relative to the
/// row group's start.
pub(super) fn runs_in_row_group(rows: &[u32], group: Range<usize>) -> Vec<Range<usize>> {
    let first = rows.partition_point(|row| (*row as usize) < group.start);
    let mut runs: Vec<Range<usize>> = Vec::new();
    for &row in rows[first..].iter().take_while(|row| (**row as usize) < group.end) {
        let relative = row as usize - group.start;
        match runs.last_mut() {
            Some(last) if last.end == relative => last.end = relative + 1,
            _ => runs.push(relative..relative + 1),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_split_into_runs_per_row_group() {
        let rows = [1, 2, 3, 7, 10, 11, 25];
        assert_eq!(runs_in_row_group(&rows, 0..10), vec![1..4, 7..8]);
        assert_eq!(runs_in_row_group(&rows, 10..20), vec![0..2]);
        assert_eq!(runs_in_row_group(&rows, 20..30), vec![5..6]);
        assert!(runs_in_row_group(&rows, 30..40).is_empty());
    }
}
