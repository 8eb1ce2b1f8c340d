//! The bytes of a spool segment (sdk/SPOOL.md): `MAGIC record*`, each record
//! `u32 len | u32 crc32(payload) | payload`, payload `0x01 AuditEvent` or `0x02 u32 count | u32 ordinal × count`.

use std::collections::HashSet;

pub const MAGIC: &[u8; 16] = b"AUDITUM-SPOOL-1\n";
pub const KIND_EVENT: u8 = 0x01;
pub const KIND_ACK: u8 = 0x02;
const HEADER: usize = 8;

pub fn segment_name(number: u64) -> String {
    format!("segment-{number:020}.spool")
}

pub fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("segment-")?.strip_suffix(".spool")?;
    if digits.len() == 20 && digits.bytes().all(|byte| byte.is_ascii_digit()) { digits.parse().ok() } else { None }
}

fn push_record(out: &mut Vec<u8>, kind: u8, body: &[&[u8]]) {
    let len = 1 + body.iter().map(|part| part.len()).sum::<usize>();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&[kind]);
    for part in body {
        crc.update(part);
    }
    out.extend_from_slice(&(len as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.push(kind);
    for part in body {
        out.extend_from_slice(part);
    }
}

/// Appends the record of one encoded `AuditEvent` to `out`.
pub fn event_record(event: &[u8], out: &mut Vec<u8>) {
    push_record(out, KIND_EVENT, &[event]);
}

/// The record acknowledging these event ordinals.
pub fn ack_record(ordinals: &[u32]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + 4 * ordinals.len());
    body.extend_from_slice(&(ordinals.len() as u32).to_le_bytes());
    for ordinal in ordinals {
        body.extend_from_slice(&ordinal.to_le_bytes());
    }
    let mut out = Vec::with_capacity(HEADER + 1 + body.len());
    push_record(&mut out, KIND_ACK, &[&body]);
    out
}

pub fn event_record_len(event_len: usize) -> u64 {
    (HEADER + 1 + event_len) as u64
}

enum Record<'a> {
    Event(&'a [u8]),
    Ack(Vec<u32>),
}

fn u32_at(data: &[u8], offset: usize) -> Option<u32> {
    Some(u32::from_le_bytes(data.get(offset..offset + 4)?.try_into().ok()?))
}

/// The valid record at `offset` and its total length, or None (SPOOL.md "valid").
fn record_at(data: &[u8], offset: usize) -> Option<(Record<'_>, usize)> {
    let len = u32_at(data, offset)? as usize;
    let crc = u32_at(data, offset + 4)?;
    let payload = data.get(offset + HEADER..(offset + HEADER).checked_add(len)?)?;
    let (&kind, body) = payload.split_first()?;
    // Structure before the CRC: a byte-by-byte scan for the next record stays cheap.
    let record = match kind {
        KIND_EVENT => Record::Event(body),
        KIND_ACK => {
            let count = u32_at(body, 0)? as usize;
            if body.len() != 4 + 4 * count {
                return None;
            }
            Record::Ack((0..count).map(|index| u32_at(body, 4 + 4 * index).unwrap_or(u32::MAX)).collect())
        }
        _ => return None,
    };
    (crc32fast::hash(payload) == crc).then_some((record, HEADER + len))
}

/// What a segment holds, read from its bytes.
#[derive(Debug, Default)]
pub struct Scan {
    /// Every readable event record: its ordinal and its encoded `AuditEvent`.
    pub events: Vec<(u32, Vec<u8>)>,
    /// Ordinals acknowledged by acks before the first damage.
    pub acked: HashSet<u32>,
    /// Where a torn tail starts (the file is to be truncated there).
    pub torn_at: Option<usize>,
    /// Whether that tail is only zeros: a preallocated segment's free space, not a torn write.
    pub zero_tail: bool,
    /// Offsets of invalid records followed by valid ones.
    pub damage: Vec<usize>,
}

impl Scan {
    /// The events no valid ack names, in order.
    pub fn unacked(self) -> Vec<(u32, Vec<u8>)> {
        let acked = self.acked;
        self.events.into_iter().filter(|(ordinal, _)| !acked.contains(ordinal)).collect()
    }
}

/// The length of `data` without its trailing zero bytes (a preallocated segment's free space).
pub fn without_zero_tail(data: &[u8]) -> usize {
    data.len() - data.iter().rev().take_while(|&&byte| byte == 0).count()
}

/// Reads a segment that starts with [`MAGIC`].
pub fn scan(data: &[u8]) -> Scan {
    let written = without_zero_tail(data);
    let mut scan = Scan::default();
    let mut offset = MAGIC.len();
    let mut ordinal = 0u32;
    while offset < data.len() {
        match record_at(data, offset) {
            Some((record, len)) => {
                match record {
                    Record::Event(event) => {
                        scan.events.push((ordinal, event.to_vec()));
                        ordinal += 1;
                    }
                    // Acks after damage may name shifted ordinals: ignored (resending costs only duplicates).
                    Record::Ack(ordinals) if scan.damage.is_empty() => scan.acked.extend(ordinals),
                    Record::Ack(_) => {}
                }
                offset += len;
            }
            // Checked first: scanning megabytes of zeros byte by byte for a record is slow.
            None if offset >= written => {
                scan.torn_at = Some(offset);
                scan.zero_tail = true;
                break;
            }
            None => match (offset + 1..data.len()).find(|&next| record_at(data, next).is_some()) {
                Some(next) => {
                    scan.damage.push(offset);
                    offset = next;
                }
                None => {
                    scan.torn_at = Some(offset);
                    break;
                }
            },
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(events: &[&[u8]], acks: &[u32]) -> Vec<u8> {
        let mut data = MAGIC.to_vec();
        for event in events {
            event_record(event, &mut data);
        }
        if !acks.is_empty() {
            data.extend(ack_record(acks));
        }
        data
    }

    #[test]
    fn records_round_trip_with_zlib_crc() {
        let mut record = Vec::new();
        event_record(b"abc", &mut record);
        // zlib.crc32(b"\x01abc") == 0x539d20a9 (checked against Python).
        assert_eq!(&record[..8], &[4, 0, 0, 0, 0xa9, 0x20, 0x9d, 0x53]);
        let scan = scan(&segment(&[b"a", b"b", b"c"], &[0, 2]));
        assert_eq!(scan.torn_at, None);
        assert!(scan.damage.is_empty());
        assert_eq!(scan.unacked(), vec![(1, b"b".to_vec())]);
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
    }

    #[test]
    fn a_torn_tail_and_damage_in_the_middle_are_told_apart() {
        let data = segment(&[b"one", b"two"], &[]);
        let cut = &data[..data.len() - 5];
        let torn = scan(cut);
        assert_eq!(torn.torn_at, Some(MAGIC.len() + 12));
        assert_eq!(torn.events.len(), 1);
        let mut damaged = segment(&[b"one", b"two", b"three"], &[]);
        damaged[MAGIC.len() + 12 + 9] ^= 0xff; // the payload of "two"
        let scan = scan(&damaged);
        assert_eq!(scan.damage, vec![MAGIC.len() + 12]);
        assert_eq!(scan.events.iter().map(|(_, event)| event.as_slice()).collect::<Vec<_>>(), [&b"one"[..], b"three"]);
        assert!(!torn.zero_tail && !scan.zero_tail);
    }

    #[test]
    fn a_preallocated_zero_tail_is_free_space_and_zeros_before_a_record_are_damage() {
        let mut preallocated = segment(&[b"one", b"two"], &[0]);
        let records_end = preallocated.len();
        preallocated.resize(records_end + 3000, 0);
        let free = scan(&preallocated);
        assert_eq!((free.torn_at, free.zero_tail, free.damage.len()), (Some(records_end), true, 0));
        assert_eq!(free.unacked(), vec![(1, b"two".to_vec())]);
        // A torn record in front of the zeros is a torn tail, reported as such.
        let mut torn = segment(&[b"one"], &[]);
        let torn_at = torn.len();
        torn.extend_from_slice(&[9, 0, 0, 0, 1, 2]);
        torn.resize(torn_at + 100, 0);
        assert_eq!((scan(&torn).torn_at, scan(&torn).zero_tail), (Some(torn_at), false));
        // Zeros with a valid record after them are damage in the middle, not free space.
        let mut middle = segment(&[b"one"], &[]);
        let zeros_at = middle.len();
        middle.resize(zeros_at + 50, 0);
        event_record(b"two", &mut middle);
        let damaged = scan(&middle);
        assert_eq!((damaged.damage, damaged.zero_tail), (vec![zeros_at], false));
    }
}
