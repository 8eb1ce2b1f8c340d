//! WAL files: replay restores exactly what was synced; a torn tail is truncated; corruption of
//! acknowledged records is detected and refused.

use auditum_engine::log::wal::{self, WalFiles};
use auditum_format::event::{EventRecord, Seq};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::Path;

fn record(seq: u64) -> EventRecord {
    EventRecord {
        seq: Seq(seq),
        id: format!("id-{seq}"),
        tenant_id: "acme".into(),
        occurred_at: 1_700_000_000_000_000 + seq as i64,
        received_at: 1_700_000_000_000_500 + seq as i64,
        action: "user.login".into(),
        actor_id: format!("u{}", seq % 7),
        outcome: "success".into(),
        metadata: seq.is_multiple_of(2).then(|| format!("{{\"n\":{seq}}}")),
        ..Default::default()
    }
}

/// Appends records `range` in groups of `group` with one sync each, as the writer thread does.
fn write_records(wal: &mut WalFiles, range: std::ops::Range<u64>, group: usize) {
    let seqs: Vec<u64> = range.collect();
    for chunk in seqs.chunks(group) {
        let mut framed = Vec::new();
        for seq in chunk {
            auditum_format::wal::encode_record(&record(*seq), &mut framed);
        }
        wal.append_synced(&framed, chunk.len() as u64).unwrap();
    }
}

fn open_fresh(dir: &Path, segment_bytes: u64) -> WalFiles {
    let replay = wal::replay(dir).unwrap();
    WalFiles::open(dir, &replay, Seq(0), segment_bytes).unwrap()
}

fn segments(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    paths.sort();
    paths
}

#[test]
fn replay_restores_exactly_the_synced_records_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open_fresh(dir.path(), 64 * 1024);
    write_records(&mut wal, 0..2000, 37);
    assert!(wal.segment_count() > 2, "small segments rotate");
    drop(wal);
    let replay = wal::replay(dir.path()).unwrap();
    assert_eq!(replay.records, (0..2000).map(record).collect::<Vec<_>>());
    assert_eq!(replay.end_seq, Some(Seq(2000)));
    assert_eq!(replay.truncated_bytes, 0);
    // Appending continues the sequence in the reopened WAL.
    let mut wal = WalFiles::open(dir.path(), &replay, Seq(0), 64 * 1024).unwrap();
    assert_eq!(wal.next_seq(), Seq(2000));
    write_records(&mut wal, 2000..2010, 10);
    assert_eq!(wal::replay(dir.path()).unwrap().records.len(), 2010);
}

#[test]
fn a_torn_tail_is_truncated_at_every_cut_point_and_appends_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open_fresh(dir.path(), 1 << 30);
    write_records(&mut wal, 0..5, 5);
    drop(wal);
    let path = segments(dir.path()).pop().unwrap();
    let synced = fs::read(&path).unwrap();
    let mut torn_record = Vec::new();
    auditum_format::wal::encode_record(&record(5), &mut torn_record);
    for cut in 1..torn_record.len() {
        fs::write(&path, [&synced[..], &torn_record[..cut]].concat()).unwrap();
        let replay = wal::replay(dir.path()).unwrap();
        assert_eq!(replay.records.len(), 5, "cut {cut}: only the synced records");
        assert_eq!(replay.truncated_bytes, cut as u64);
        assert_eq!(fs::read(&path).unwrap(), synced, "cut {cut}: file truncated back to the synced bytes");
    }
    // A torn record whose length is whole but whose bytes are not (crc mismatch) is also a torn tail.
    let mut garbled = torn_record.clone();
    let last = garbled.len() - 1;
    garbled[last] ^= 0xFF;
    fs::write(&path, [&synced[..], &garbled[..]].concat()).unwrap();
    let replay = wal::replay(dir.path()).unwrap();
    assert_eq!(replay.records.len(), 5);
    let mut wal = WalFiles::open(dir.path(), &replay, Seq(0), 1 << 30).unwrap();
    write_records(&mut wal, 5..8, 3);
    assert_eq!(wal::replay(dir.path()).unwrap().records, (0..8).map(record).collect::<Vec<_>>());
}

#[test]
fn crc_corruption_of_acknowledged_records_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open_fresh(dir.path(), 1 << 30);
    write_records(&mut wal, 0..10, 1);
    drop(wal);
    let path = segments(dir.path()).pop().unwrap();
    let mut bytes = fs::read(&path).unwrap();
    // Flip one byte inside record 3's payload: valid records follow, so this is not a torn tail.
    let offset = auditum_format::wal::HEADER_LEN + 3 * (bytes.len() - auditum_format::wal::HEADER_LEN) / 10 + 20;
    bytes[offset] ^= 0x01;
    fs::write(&path, &bytes).unwrap();
    let error = wal::replay(dir.path()).unwrap_err();
    assert!(matches!(error, wal::Error::Corrupt { .. }), "{error}");
    assert!(error.to_string().contains("checksum"), "{error}");
    assert_eq!(fs::read(&path).unwrap(), bytes, "nothing truncated");
}

#[test]
fn damage_in_an_older_segment_is_refused_even_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open_fresh(dir.path(), 64 * 1024);
    write_records(&mut wal, 0..1000, 50);
    drop(wal);
    let first = segments(dir.path()).remove(0);
    let mut file = OpenOptions::new().append(true).open(&first).unwrap();
    file.write_all(&[0, 0, 0, 9, 1, 2]).unwrap();
    assert!(matches!(wal::replay(dir.path()), Err(wal::Error::Corrupt { .. })));

    let dir = tempfile::tempdir().unwrap();
    let mut wal = open_fresh(dir.path(), 64 * 1024);
    write_records(&mut wal, 0..1000, 50);
    drop(wal);
    let first = segments(dir.path()).remove(0);
    fs::write(&first, b"not a wal").unwrap();
    let error = wal::replay(dir.path()).unwrap_err();
    assert!(error.to_string().contains("header"), "{error}");
}

#[test]
fn a_torn_segment_header_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open_fresh(dir.path(), 1 << 30);
    write_records(&mut wal, 0..3, 3);
    drop(wal);
    fs::write(wal::segment_path(dir.path(), Seq(3)), b"AUDIT").unwrap();
    let replay = wal::replay(dir.path()).unwrap();
    assert_eq!(replay.records.len(), 3);
    assert_eq!(segments(dir.path()).len(), 1);
}

#[test]
fn committed_segments_are_deleted_and_gaps_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut wal = open_fresh(dir.path(), 64 * 1024);
    write_records(&mut wal, 0..3000, 50);
    let before = wal.segment_count();
    assert!(before >= 3);
    // Nothing is deleted while its seqs are uncommitted.
    assert_eq!(wal.delete_committed(Seq(0), 0).unwrap(), 0);
    let deleted = wal.delete_committed(Seq(1500), 1 << 40).unwrap();
    assert!(deleted >= 1);
    let replay = wal::replay(dir.path()).unwrap();
    assert!(replay.records.first().unwrap().seq <= Seq(1500), "every uncommitted seq is kept");
    assert_eq!(replay.records.last().unwrap().seq, Seq(2999));
    // Fully committed: everything but a fresh active segment goes.
    wal.delete_committed(Seq(3000), 0).unwrap();
    assert_eq!(wal.segment_count(), 1);
    drop(wal);
    let replay = wal::replay(dir.path()).unwrap();
    assert!(replay.records.is_empty());
    assert_eq!(replay.end_seq, Some(Seq(3000)));
    // A WAL that starts after the ledger's next seq has lost acknowledged events.
    assert!(matches!(WalFiles::open(dir.path(), &replay, Seq(2900), 1 << 20), Err(wal::Error::Gap { .. })));
    // A WAL behind the ledger (all committed) continues at the ledger's seq.
    let wal = WalFiles::open(dir.path(), &replay, Seq(3200), 1 << 20).unwrap();
    assert_eq!(wal.next_seq(), Seq(3200));
}
