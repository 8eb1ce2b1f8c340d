//! The actor index: where each (`tenant_id`, `actor_id`) pair lies in a batch file, so a needle
//! ("everything this user did") opens only the row groups and pages that hold the actor's rows
//! instead of testing bloom filters and decoding the candidate pages of every row group.
//!
//! It is embedded in the batch file itself, between the last row group and the page index, and
//! located by the footer's key-value metadata (`auditum.actor_index`). Parquet readers skip bytes
//! nothing in the schema points to, so the file stays a plain Parquet file with the design's 25
//! columns; and the index is covered by the batch's SHA-256 in its ledger entry, hence by the
//! signed checkpoints, like every other byte of the file. `auditum verify` rebuilds it from the
//! rows and reports a difference. A reader checks the bucket table against the footer's SHA-256
//! and each bucket against the table's check before trusting it; a query falls back to bloom
//! filters when an index is absent (files sealed before it existed) or fails a check.
//!
//! Layout (docs/FORMAT.md, "Actor index"): the *regions*, then the *table*.
//! - key = the first 8 bytes (big-endian) of SHA-256(u32be(len(tenant_id)) ‖ tenant_id ‖
//!   u32be(len(actor_id)) ‖ actor_id);
//! - keys fall in 2^bits buckets by their top `bits` bits; a bucket's region lists its keys in
//!   ascending order, each as u64be key, varint row count, varint row deltas (rows ascending, the
//!   first delta from 0), rows counted in file order across row groups;
//! - table = "AUDAIX1\0" ‖ u32be rows ‖ u8 bits ‖ 3 zero bytes ‖ per bucket: u32be end of its
//!   region (from the start of the regions) ‖ the first 4 bytes of SHA-256(region);
//! - metadata value: `1 {regions offset} {regions length} {table length} {SHA-256(table) hex}`.

use sha2::{Digest, Sha256};
use std::ops::Range;

/// The footer key-value metadata key that locates the index.
pub const METADATA_KEY: &str = "auditum.actor_index";
const TABLE_MAGIC: &[u8; 8] = b"AUDAIX1\0";
const TABLE_HEADER_BYTES: usize = 16;
const TABLE_ENTRY_BYTES: usize = 8;
/// Keys per bucket on average: a lookup reads one region of about this many keys, and the table
/// (held in memory per batch) costs 8 bytes per bucket.
const KEYS_PER_BUCKET: usize = 8;
const MAX_BUCKET_BITS: u8 = 24;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("actor index metadata {value:?} is malformed")]
    Metadata { value: String },
    #[error("actor index table is malformed: {0}")]
    Table(String),
    #[error("actor index table does not match the SHA-256 in the footer")]
    TableChecksum,
    #[error("actor index bucket {bucket} does not match its check in the table")]
    RegionChecksum { bucket: usize },
    #[error("actor index bucket {bucket} is malformed: {reason}")]
    Region { bucket: usize, reason: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The index key of a row: a hash of its tenant and actor.
pub fn key(tenant_id: &str, actor_id: &str) -> u64 {
    let mut hasher = Sha256::new();
    hasher.update((tenant_id.len() as u32).to_be_bytes());
    hasher.update(tenant_id.as_bytes());
    hasher.update((actor_id.len() as u32).to_be_bytes());
    hasher.update(actor_id.as_bytes());
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

fn bucket_of(key: u64, bits: u8) -> usize {
    if bits == 0 { 0 } else { (key >> (64 - u32::from(bits))) as usize }
}

fn region_check(region: &[u8]) -> [u8; 4] {
    let digest = Sha256::digest(region);
    [digest[0], digest[1], digest[2], digest[3]]
}

fn put_varint(buf: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        buf.push((value as u8) | 0x80);
        value >>= 7;
    }
    buf.push(value as u8);
}

fn get_varint(bytes: &[u8], position: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*position)?;
        *position += 1;
        value |= u64::from(byte & 0x7F) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// An encoded index: the bytes written into the file, regions then table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub regions: Vec<u8>,
    pub table: Vec<u8>,
}

impl Encoded {
    /// The footer metadata value for an index whose regions start at `regions_offset`.
    pub fn metadata_value(&self, regions_offset: u64) -> String {
        format!("1 {regions_offset} {} {} {}", self.regions.len(), self.table.len(), hex::encode(Sha256::digest(&self.table)))
    }
}

/// Builds the index of a file from the key of each row, in file order.
pub fn encode(keys: &[u64]) -> Encoded {
    let mut pairs: Vec<(u64, u32)> = keys.iter().enumerate().map(|(row, key)| (*key, row as u32)).collect();
    pairs.sort_unstable();
    let distinct = pairs.chunk_by(|left, right| left.0 == right.0).count();
    let buckets_wanted = distinct.div_ceil(KEYS_PER_BUCKET).max(1);
    let bits = (buckets_wanted.next_power_of_two().trailing_zeros() as u8).min(MAX_BUCKET_BITS);
    let buckets = 1usize << bits;

    let mut regions = Vec::with_capacity(pairs.len() * 4 + distinct * 10);
    let mut table = Vec::with_capacity(TABLE_HEADER_BYTES + buckets * TABLE_ENTRY_BYTES);
    table.extend_from_slice(TABLE_MAGIC);
    table.extend_from_slice(&(keys.len() as u32).to_be_bytes());
    table.extend_from_slice(&[bits, 0, 0, 0]);
    let mut groups = pairs.chunk_by(|left, right| left.0 == right.0).peekable();
    for bucket in 0..buckets {
        let region_start = regions.len();
        while let Some(group) = groups.next_if(|group| bucket_of(group[0].0, bits) == bucket) {
            regions.extend_from_slice(&group[0].0.to_be_bytes());
            put_varint(&mut regions, group.len() as u64);
            let mut previous = 0u32;
            for &(_, row) in group {
                put_varint(&mut regions, u64::from(row - previous));
                previous = row;
            }
        }
        table.extend_from_slice(&(regions.len() as u32).to_be_bytes());
        table.extend_from_slice(&region_check(&regions[region_start..]));
    }
    Encoded { regions, table }
}

/// Where a file's index lies, from its footer metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub regions: Range<u64>,
    pub table: Range<u64>,
    pub table_sha256: [u8; 32],
}

impl Location {
    /// Parses the footer metadata value; None when the file has no index.
    pub fn from_metadata(file: &parquet::file::metadata::FileMetaData) -> Option<Result<Location>> {
        let value = file.key_value_metadata()?.iter().find(|entry| entry.key == METADATA_KEY)?.value.clone()?;
        Some(Location::parse(&value).ok_or(Error::Metadata { value }))
    }

    fn parse(value: &str) -> Option<Location> {
        let mut parts = value.split(' ');
        if parts.next()? != "1" {
            return None;
        }
        let regions_offset: u64 = parts.next()?.parse().ok()?;
        let regions_len: u64 = parts.next()?.parse().ok()?;
        let table_len: u64 = parts.next()?.parse().ok()?;
        let table_sha256: [u8; 32] = hex::decode(parts.next()?).ok()?.try_into().ok()?;
        if parts.next().is_some() {
            return None;
        }
        let table_start = regions_offset.checked_add(regions_len)?;
        Some(Location { regions: regions_offset..table_start, table: table_start..table_start.checked_add(table_len)?, table_sha256 })
    }
}

/// A checked bucket table: enough to find any key's region.
#[derive(Debug, Clone)]
pub struct Table {
    regions_offset: u64,
    regions_len: u64,
    rows: u32,
    bits: u8,
    /// End of each bucket's region and its check.
    entries: Vec<(u32, [u8; 4])>,
}

impl Table {
    /// Parses the table bytes, checking them against the footer's SHA-256.
    pub fn parse(location: &Location, bytes: &[u8]) -> Result<Table> {
        if <[u8; 32]>::from(Sha256::digest(bytes)) != location.table_sha256 {
            return Err(Error::TableChecksum);
        }
        if bytes.len() < TABLE_HEADER_BYTES || &bytes[..8] != TABLE_MAGIC {
            return Err(Error::Table("no AUDAIX1 header".into()));
        }
        let rows = u32::from_be_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        let bits = bytes[12];
        if bits > MAX_BUCKET_BITS || bytes.len() != TABLE_HEADER_BYTES + (TABLE_ENTRY_BYTES << bits) {
            return Err(Error::Table(format!("{} bytes for {bits} bucket bits", bytes.len())));
        }
        let regions_len = location.regions.end - location.regions.start;
        let mut entries = Vec::with_capacity(1 << bits);
        let mut previous_end = 0u32;
        for entry in bytes[TABLE_HEADER_BYTES..].chunks_exact(TABLE_ENTRY_BYTES) {
            let end = u32::from_be_bytes([entry[0], entry[1], entry[2], entry[3]]);
            if end < previous_end || u64::from(end) > regions_len {
                return Err(Error::Table(format!("region end {end} is out of order or past the regions")));
            }
            previous_end = end;
            entries.push((end, [entry[4], entry[5], entry[6], entry[7]]));
        }
        Ok(Table { regions_offset: location.regions.start, regions_len, rows, bits, entries })
    }

    /// Rows of the file the index covers.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Bytes this table holds in memory, about.
    pub fn memory_size(&self) -> usize {
        std::mem::size_of::<Table>() + self.entries.len() * std::mem::size_of::<(u32, [u8; 4])>()
    }

    /// The bucket of a key and the byte range of its region in the file.
    pub fn region(&self, key: u64) -> (usize, Range<u64>) {
        let bucket = bucket_of(key, self.bits);
        let start = match bucket {
            0 => 0,
            _ => self.entries.get(bucket - 1).map_or(self.regions_len, |entry| u64::from(entry.0)),
        };
        let end = self.entries.get(bucket).map_or(self.regions_len, |entry| u64::from(entry.0));
        (bucket, self.regions_offset + start..self.regions_offset + end)
    }

    /// The rows (file order, ascending) holding `key`, from its region's bytes.
    pub fn rows_of(&self, key: u64, bucket: usize, region: &[u8]) -> Result<Vec<u32>> {
        if self.entries.get(bucket).map(|entry| entry.1) != Some(region_check(region)) {
            return Err(Error::RegionChecksum { bucket });
        }
        let malformed = |reason: &str| Error::Region { bucket, reason: reason.to_string() };
        let mut position = 0;
        while position < region.len() {
            let key_bytes: [u8; 8] =
                region.get(position..position + 8).and_then(|bytes| bytes.try_into().ok()).ok_or_else(|| malformed("truncated key"))?;
            position += 8;
            let found = u64::from_be_bytes(key_bytes);
            let count = get_varint(region, &mut position).ok_or_else(|| malformed("truncated count"))?;
            // Every row takes at least a byte: a count beyond what is left is malformed (and would
            // otherwise size an allocation from hostile bytes).
            if count == 0 || count > u64::from(self.rows) || count > (region.len() - position) as u64 {
                return Err(malformed("row count out of range"));
            }
            let mut rows = Vec::with_capacity(if found == key { count as usize } else { 0 });
            let mut row = 0u64;
            for index in 0..count {
                let delta = get_varint(region, &mut position).ok_or_else(|| malformed("truncated rows"))?;
                if index > 0 && delta == 0 {
                    return Err(malformed("rows not ascending"));
                }
                row = row.checked_add(delta).filter(|row| *row < u64::from(self.rows)).ok_or_else(|| malformed("row out of range"))?;
                if found == key {
                    rows.push(row as u32);
                }
            }
            if found == key {
                return Ok(rows);
            }
            if found > key {
                break;
            }
        }
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(keys: &[u64], key: u64) -> Vec<u32> {
        let encoded = encode(keys);
        let location = Location::parse(&encoded.metadata_value(100)).unwrap();
        let table = Table::parse(&location, &encoded.table).unwrap();
        let (bucket, range) = table.region(key);
        let region = &encoded.regions[(range.start - 100) as usize..(range.end - 100) as usize];
        table.rows_of(key, bucket, region).unwrap()
    }

    #[test]
    fn every_key_finds_exactly_its_rows() {
        let keys: Vec<u64> = (0..5000u64).map(|row| key("acme", &format!("user-{}", row % 700))).collect();
        for actor in 0..700u64 {
            let expected: Vec<u32> = (0..5000u32).filter(|row| u64::from(*row) % 700 == actor).collect();
            assert_eq!(lookup(&keys, key("acme", &format!("user-{actor}"))), expected);
        }
        assert!(lookup(&keys, key("acme", "nobody")).is_empty());
        assert!(lookup(&keys, key("other", "user-1")).is_empty(), "the tenant is part of the key");
        assert!(lookup(&[key("t", "a")], key("t", "a")) == vec![0], "one row, one bucket");
    }

    #[test]
    fn the_key_separates_tenant_from_actor() {
        assert_ne!(key("ab", "c"), key("a", "bc"));
    }

    #[test]
    fn tampering_is_detected_before_use() {
        let keys: Vec<u64> = (0..2000u64).map(|row| key("acme", &format!("user-{}", row % 300))).collect();
        let encoded = encode(&keys);
        let location = Location::parse(&encoded.metadata_value(0)).unwrap();
        let mut table_bytes = encoded.table.clone();
        table_bytes[20] ^= 1;
        assert!(matches!(Table::parse(&location, &table_bytes), Err(Error::TableChecksum)));
        let table = Table::parse(&location, &encoded.table).unwrap();
        let target = key("acme", "user-7");
        let (bucket, range) = table.region(target);
        let mut region = encoded.regions[range.start as usize..range.end as usize].to_vec();
        let last = region.len() - 1;
        region[last] ^= 1;
        assert!(matches!(table.rows_of(target, bucket, &region), Err(Error::RegionChecksum { .. })));
        assert!(Location::parse("2 0 0 0 00").is_none() && Location::parse("1 0 0").is_none());
    }
}
