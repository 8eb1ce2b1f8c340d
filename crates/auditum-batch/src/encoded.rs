//! A batch's records encoded once, in seq order, into contiguous memory per tenant.
//!
//! A batch is written sorted by tenant, but its records were allocated in seq order, each with a
//! dozen strings of its own, and by the time a batch seals most of them are out of cache. Read in
//! the batch's order, every string is a cache miss; the copy that first touched them was a fifth
//! of a loaded server's CPU. Read in seq order, neighbouring records' strings lie side by side
//! and the hardware prefetches them. So each record's canonical columns are written here in seq
//! order (and hashed for its leaf while hot), and the sorted pass reads them back from here.

use crate::{Error, Result};
use auditum_format::event::{ColumnBytes, EventRecord, HASHED_COLUMNS, LeafHash, encoded_column_values, leaf_hash_of_encoded_columns};
use std::sync::Arc;

/// A tenant's first block; each next one is twice the size, up to [`MAX_BLOCK_BYTES`]. Small, so
/// a batch of thousands of tenants with a few events each reserves little: a tenant's blocks hold
/// at most about twice its bytes.
const FIRST_BLOCK_BYTES: usize = 4 << 10;
const MAX_BLOCK_BYTES: usize = 4 << 20;

/// Where one record's encoded columns are: its block and the byte range in it.
#[derive(Debug, Clone, Copy)]
struct Span {
    block: u32,
    start: u32,
    end: u32,
}

/// The records' canonical columns and leaf hashes, by position in the slice they came from.
pub(crate) struct EncodedRecords {
    blocks: Vec<Vec<u8>>,
    spans: Vec<Span>,
    leaves: Vec<LeafHash>,
}

impl EncodedRecords {
    /// Encodes and hashes every record in the order given, each tenant's (`tenant_ranks`, by
    /// position, below `tenant_count`) into blocks of its own, so that reading a tenant's records
    /// in the batch's order reads its blocks nearly front to back.
    pub(crate) fn new(records: &[Arc<EventRecord>], tenant_ranks: &[u32], tenant_count: usize) -> EncodedRecords {
        let mut blocks: Vec<Vec<u8>> = Vec::new();
        // Each tenant's current block, once it has one.
        let mut current: Vec<Option<usize>> = vec![None; tenant_count];
        let mut spans = Vec::with_capacity(records.len());
        let mut leaves = Vec::with_capacity(records.len());
        for (record, rank) in records.iter().zip(tenant_ranks) {
            let needed = record.encoded_len_hint();
            let slot = current.get_mut(*rank as usize);
            let block_index = match slot {
                Some(Some(index)) if blocks[*index].capacity() - blocks[*index].len() >= needed => *index,
                Some(slot) => {
                    let size = slot.map_or(FIRST_BLOCK_BYTES, |index| (blocks[index].capacity() * 2).min(MAX_BLOCK_BYTES));
                    blocks.push(Vec::with_capacity(size.max(needed)));
                    *slot = Some(blocks.len() - 1);
                    blocks.len() - 1
                }
                // A rank beyond the count: a block of its own (never the case; `sort_for_batch`).
                None => {
                    blocks.push(Vec::with_capacity(needed));
                    blocks.len() - 1
                }
            };
            let block = &mut blocks[block_index];
            let start = block.len();
            record.encode_columns(block);
            leaves.push(leaf_hash_of_encoded_columns(&block[start..]));
            spans.push(Span { block: block_index as u32, start: start as u32, end: block.len() as u32 });
        }
        EncodedRecords { blocks, spans, leaves }
    }

    /// The columns and leaf hash of the record at `position`.
    pub(crate) fn row(&self, position: usize) -> Result<([ColumnBytes<'_>; HASHED_COLUMNS], LeafHash)> {
        let (Some(span), Some(leaf)) = (self.spans.get(position), self.leaves.get(position)) else {
            return Err(Error::Schema(format!("no encoded record at {position}")));
        };
        let bytes = self
            .blocks
            .get(span.block as usize)
            .and_then(|block| block.get(span.start as usize..span.end as usize))
            .ok_or_else(|| Error::Schema(format!("encoded record {position} is out of its block")))?;
        let values = encoded_column_values(bytes).map_err(|error| Error::Schema(format!("encoded record {position}: {error}")))?;
        Ok((values, *leaf))
    }
}
