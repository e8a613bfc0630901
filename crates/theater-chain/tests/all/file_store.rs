//! The durable store: reopening, durability modes, recovery and named errors.

use theater_chain::{
    ChainError, ChainStore, Durability, Entry, FileStore, Hash, NewEntry, Payload, Problem,
};

use crate::support::{entry, fill, hashes, id, record_spans};

fn corrupt_parts(err: ChainError) -> (u64, Option<u64>, Problem) {
    match err {
        ChainError::Corrupt(c) => (c.seq, c.offset, c.problem),
        other => panic!("expected Corrupt, got {other}"),
    }
}

#[test]
fn reopens_with_every_entry_in_every_mode() {
    for durability in [
        Durability::EveryEntry,
        Durability::Group { max_batch: 4 },
        Durability::None,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut store = FileStore::create(dir.path(), id("c"), durability).unwrap();
        fill(&mut store, 10, 50);
        let before = hashes(&store);
        let head = store.head();
        drop(store);
        let store = FileStore::open(dir.path(), durability).unwrap();
        assert_eq!(store.recovery(), None);
        assert_eq!(store.head(), head);
        assert_eq!(hashes(&store), before);
        assert_eq!(store.verify().unwrap().entries, 10);
        let e = store.get(4).unwrap();
        assert_eq!(e.seq(), 4);
        assert_eq!(e.state_hash(), Hash::of_state(&crate::support::state(4)));
        let again = Entry::new(4, e.parent(), entry(4, 50));
        assert_eq!(again.hash(), store.hash_at(4).unwrap());
    }
}

#[test]
fn group_commit_acknowledges_only_after_sync() {
    let dir = tempfile::tempdir().unwrap();
    let mut store =
        FileStore::create(dir.path(), id("g"), Durability::Group { max_batch: 3 }).unwrap();
    let a = store.append(entry(0, 10)).unwrap();
    let b = store.append(entry(1, 10)).unwrap();
    assert!(!a.durable && !b.durable);
    // Pending entries are readable and verifiable before they are durable.
    assert_eq!(store.get(1).unwrap().seq(), 1);
    assert_eq!(store.verify().unwrap().entries, 2);
    let log = dir.path().join("chain.log");
    let header_only = std::fs::metadata(&log).unwrap().len();
    // The third append fills the batch: one write, one fsync for all three.
    let c = store.append(entry(2, 10)).unwrap();
    assert!(c.durable);
    assert!(std::fs::metadata(&log).unwrap().len() > header_only);
    let d = store.append(entry(3, 10)).unwrap();
    assert!(!d.durable);
    store.sync().unwrap();
    let on_disk = std::fs::metadata(&log).unwrap().len();
    assert_eq!(record_spans(dir.path()).len(), 4);
    // Records straddling the file and the buffer stream in order.
    let _ = store.append(entry(4, 10)).unwrap();
    let mut seen = Vec::new();
    store
        .for_each_record(2, &mut |r| {
            seen.push((r.seq, r.offset.unwrap() >= on_disk));
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, vec![(2, false), (3, false), (4, true)]);
}

#[test]
fn torn_tail_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::create(dir.path(), id("t"), Durability::EveryEntry).unwrap();
    fill(&mut store, 3, 20);
    drop(store);
    let log = dir.path().join("chain.log");
    let full = std::fs::metadata(&log).unwrap().len();
    let spans = record_spans(dir.path());
    let (last_at, _) = spans[2];
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(full - 5).unwrap();
    drop(f);
    let mut store = FileStore::open(dir.path(), Durability::EveryEntry).unwrap();
    let rec = store.recovery().expect("recovery reported");
    assert_eq!(rec.cut_at, last_at as u64);
    assert_eq!(rec.bytes_cut, full - 5 - last_at as u64);
    assert_eq!(store.len(), 2);
    // Appending continues the chain where it was cut.
    let _ = store.append(entry(2, 20)).unwrap();
    assert_eq!(store.verify().unwrap().entries, 3);
}

/// Replaces the log's records with `spans` rearranged by `f`.
fn rewrite_records(dir: &std::path::Path, f: impl FnOnce(&mut Vec<Vec<u8>>)) {
    let log = dir.join("chain.log");
    let bytes = std::fs::read(&log).unwrap();
    let spans = record_spans(dir);
    let mut records: Vec<Vec<u8>> = spans
        .iter()
        .map(|&(at, len)| bytes[at..at + len].to_vec())
        .collect();
    f(&mut records);
    let mut out = bytes[..spans[0].0].to_vec();
    for r in records {
        out.extend_from_slice(&r);
    }
    std::fs::write(&log, out).unwrap();
}

fn chain_of(n: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::create(dir.path(), id("d"), Durability::None).unwrap();
    fill(&mut store, n, 30);
    dir
}

#[test]
fn missing_record_is_named() {
    let dir = chain_of(5);
    let spans = record_spans(dir.path());
    rewrite_records(dir.path(), |r| {
        r.remove(2);
    });
    let err = FileStore::open(dir.path(), Durability::None).unwrap_err();
    let msg = err.to_string();
    let (seq, offset, problem) = corrupt_parts(err);
    assert_eq!(seq, 2);
    assert_eq!(offset, Some(spans[2].0 as u64));
    assert_eq!(
        problem,
        Problem::SeqMismatch {
            expected: 2,
            found: 3
        }
    );
    assert!(
        msg.contains("seq 2") && msg.contains("byte offset"),
        "{msg}"
    );
}

#[test]
fn reordered_records_are_named() {
    let dir = chain_of(5);
    rewrite_records(dir.path(), |r| r.swap(1, 3));
    let (seq, _, problem) =
        corrupt_parts(FileStore::open(dir.path(), Durability::None).unwrap_err());
    assert_eq!(seq, 1);
    assert!(matches!(
        problem,
        Problem::SeqMismatch {
            expected: 1,
            found: 3
        }
    ));
}

#[test]
fn rehashed_record_with_wrong_parent_is_a_broken_link() {
    let dir = chain_of(4);
    rewrite_records(dir.path(), |r| {
        // A well-formed record for seq 2 whose parent is not entry 1: framing and its own
        // hash are right, only the link is wrong.
        let forged = Entry::new(2, Hash::digest(b"elsewhere"), entry(2, 30));
        let body = forged.encode();
        let mut rec = Vec::new();
        rec.extend_from_slice(&(body.len() as u32).to_le_bytes());
        rec.extend_from_slice(&(!(body.len() as u32)).to_le_bytes());
        rec.extend_from_slice(&body);
        rec.extend_from_slice(forged.hash().as_bytes());
        r[2] = rec;
    });
    let (seq, _, problem) =
        corrupt_parts(FileStore::open(dir.path(), Durability::None).unwrap_err());
    assert_eq!(seq, 2);
    assert!(matches!(problem, Problem::BrokenLink { .. }), "{problem}");
}

#[test]
fn flipped_byte_in_a_middle_body_is_found_by_verify() {
    let dir = chain_of(5);
    let spans = record_spans(dir.path());
    let log = dir.path().join("chain.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[spans[1].0 + 8 + 80] ^= 1;
    std::fs::write(&log, bytes).unwrap();
    let store = FileStore::open(dir.path(), Durability::None).unwrap();
    let (seq, offset, problem) = corrupt_parts(store.verify().unwrap_err());
    assert_eq!((seq, offset), (1, Some(spans[1].0 as u64)));
    assert!(matches!(problem, Problem::HashMismatch { .. }));
    // Reading the damaged entry fails too, rather than returning altered data.
    assert!(store.get(1).is_err());
    assert!(store.get(2).is_ok());
}

#[test]
fn damaged_header_and_foreign_files_are_refused() {
    let dir = chain_of(2);
    let log = dir.path().join("chain.log");
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[13] ^= 0xff;
    std::fs::write(&log, &bytes).unwrap();
    let err = FileStore::open(dir.path(), Durability::None).unwrap_err();
    assert!(err.to_string().contains("header is damaged"), "{err}");
    std::fs::write(&log, b"hello, I am not a chain").unwrap();
    let err = FileStore::open(dir.path(), Durability::None).unwrap_err();
    assert!(err.to_string().contains("bad magic"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = FileStore::open(empty.path(), Durability::None).unwrap_err();
    assert!(matches!(err, ChainError::Io { .. }), "{err}");
}

#[test]
fn one_store_at_a_time_and_ids_must_match() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::create(dir.path(), id("only"), Durability::None).unwrap();
    let err = FileStore::open(dir.path(), Durability::None).unwrap_err();
    assert!(err.to_string().contains("open in another store"), "{err}");
    drop(store);
    let err = FileStore::open_or_create(dir.path(), id("other"), Durability::None).unwrap_err();
    assert!(matches!(err, ChainError::WrongId { .. }), "{err}");
    assert!(FileStore::open_or_create(dir.path(), id("only"), Durability::None).is_ok());
    assert!(FileStore::create(dir.path(), id("only"), Durability::None).is_err());
}

#[test]
fn reads_outside_the_chain_are_errors() {
    let dir = chain_of(3);
    let store = FileStore::open(dir.path(), Durability::None).unwrap();
    assert!(matches!(
        store.get(3),
        Err(ChainError::NotFound { seq: 3, len: 3, .. })
    ));
    assert!(store.hash_at(99).is_err());
}

#[test]
fn binary_payloads_are_stored_as_raw_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::create(dir.path(), id("bin"), Durability::None).unwrap();
    let blob = vec![0xABu8; 64 * 1024];
    let _ = store
        .append(NewEntry::init(
            Payload::bytes(blob.clone()),
            Hash::of_state(&serde_json::Value::Null),
        ))
        .unwrap();
    store.sync().unwrap();
    let size = std::fs::metadata(dir.path().join("chain.log"))
        .unwrap()
        .len();
    // 64 KiB of payload plus framing and header: no JSON inflation.
    assert!(size < 64 * 1024 + 256, "log is {size} bytes");
    match store.get(0).unwrap().event() {
        theater_chain::Event::Init { params, .. } => assert_eq!(params.bytes, blob),
        other => panic!("unexpected event {other:?}"),
    }
}

#[test]
fn read_only_stores_change_nothing() {
    let dir = chain_of(3);
    let log = dir.path().join("chain.log");
    let last_at = record_spans(dir.path())[2].0 as u64;
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    let len = f.metadata().unwrap().len();
    f.set_len(len - 3).unwrap();
    drop(f);
    let mut ro = FileStore::open_read_only(dir.path()).unwrap();
    assert!(ro.is_read_only());
    let recovery = ro.recovery().expect("the torn tail is reported");
    assert_eq!(
        (recovery.cut_at, recovery.bytes_cut),
        (last_at, len - 3 - last_at)
    );
    assert_eq!(ro.verify().unwrap().entries, 2);
    assert!(matches!(
        ro.append(entry(2, 30)),
        Err(ChainError::ReadOnly(_))
    ));
    assert_eq!(
        std::fs::metadata(&log).unwrap().len(),
        len - 3,
        "torn tail left in place"
    );
    let rw = FileStore::open(dir.path(), Durability::None).unwrap();
    assert!(
        FileStore::open_read_only(dir.path()).is_ok(),
        "readers need no lock"
    );
    drop(rw);
}

/// The sparse index (one offset kept per 64 records) finds every record, in any order, in
/// the file and in the group-commit buffer, across a prune (which indexes the log anew) and
/// a reopen.
#[test]
fn every_record_is_found_by_seq_across_strides_prunes_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::create(
        dir.path(),
        id("sparse"),
        Durability::Group { max_batch: 1000 },
    )
    .unwrap();
    fill(&mut store, 300, 7);
    // Some still in the buffer.
    for i in 300..340 {
        store.append(entry(i, 7)).unwrap();
    }
    let check = |store: &FileStore, from: u64| {
        let all = hashes(store);
        let mut seqs: Vec<u64> = (from..store.len()).collect();
        // Backwards too: every lookup from a mark, none from the last found.
        seqs.reverse();
        for seq in seqs {
            let e = store.get(seq).unwrap();
            assert_eq!(e.seq(), seq);
            assert_eq!(e.hash(), all[(seq - from) as usize]);
        }
        let mut next = from + 70;
        store
            .for_each_record(from + 70, &mut |rec| {
                assert_eq!(rec.seq, next);
                next += 1;
                Ok(())
            })
            .unwrap();
        assert_eq!(next, store.len());
    };
    check(&store, 0);
    store.sync().unwrap();
    let snap_at = 130;
    let state = crate::support::state(snap_at);
    let hash = store.hash_at(snap_at).unwrap();
    store
        .save_snapshot(&theater_chain::Snapshot::new(snap_at, hash, state))
        .unwrap();
    store.prune_before(snap_at).unwrap();
    assert_eq!(store.start(), snap_at);
    check(&store, snap_at);
    fill(&mut store, 100, 7);
    check(&store, snap_at);
    drop(store);
    let store = FileStore::open(dir.path(), Durability::EveryEntry).unwrap();
    assert_eq!((store.start(), store.len()), (snap_at, 440));
    check(&store, snap_at);
    store.verify().unwrap();
}

/// A frame head damaged after the chain was opened (the index walks heads forward from the
/// nearest kept offset): a read past it names the damaged record and its offset; records
/// before it still read.
#[test]
fn a_head_damaged_after_open_is_named_by_the_reads_that_walk_over_it() {
    use std::os::unix::fs::FileExt;
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::create(dir.path(), id("walked"), Durability::EveryEntry).unwrap();
    fill(&mut store, 200, 5);
    let spans = record_spans(dir.path());
    let (at, _) = spans[70];
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("chain.log"))
        .unwrap();
    file.write_all_at(&[0xff, 0xff, 0xff, 0x7f], at as u64)
        .unwrap();
    let (seq, offset, problem) = corrupt_parts(store.get(100).unwrap_err());
    assert_eq!((seq, offset), (70, Some(at as u64)));
    assert_eq!(problem, Problem::BadFrame);
    assert_eq!(store.get(65).unwrap().seq(), 65);
    assert_eq!(store.get(140).unwrap().seq(), 140);
}

#[test]
fn writes_after_a_started_sync_are_not_covered_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::create(
        dir.path(),
        id("started"),
        Durability::Group { max_batch: 4 },
    )
    .unwrap();
    for i in 0..2 {
        store.append(crate::support::entry(i, 10)).unwrap();
    }
    let wait = store
        .start_sync()
        .unwrap()
        .expect("written entries wait for an fsync");
    // A full group while the sync is outstanding is written out, but not waited for.
    for i in 2..6 {
        let appended = store.append(crate::support::entry(i, 10)).unwrap();
        assert!(
            !appended.durable,
            "entry {i} claimed durable before any fsync covered it"
        );
    }
    wait().unwrap();
    store.finish_sync(Ok(())).unwrap();
    // The group written after the sync started still needs a sync of its own...
    let again = store
        .start_sync()
        .unwrap()
        .expect("the later group was left unsynced");
    again().unwrap();
    store.finish_sync(Ok(())).unwrap();
    // ...and after that one nothing is left to wait for.
    assert!(store.start_sync().unwrap().is_none());
    assert_eq!(store.verify().unwrap().entries, 6);
}

#[test]
fn a_failed_started_sync_fails_every_later_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::create(
        dir.path(),
        id("failing"),
        Durability::Group { max_batch: 64 },
    )
    .unwrap();
    store.append(crate::support::entry(0, 10)).unwrap();
    let _wait = store.start_sync().unwrap().expect("a wait");
    assert!(
        store
            .finish_sync(Err(std::io::Error::other("disk gone")))
            .is_err()
    );
    assert!(store.append(crate::support::entry(1, 10)).is_err());
    assert!(store.sync().is_err());
}
