//! Snapshots and pruning: a pruned chain verifies from its snapshot anchor.

use serde_json::json;
use theater_chain::{
    ChainError, ChainStore, Durability, FileStore, MemoryStore, Problem, Snapshot,
};

use crate::support::{fill, hashes, id, record_spans, state};

fn snapshot_of(store: &dyn ChainStore, seq: u64) -> Snapshot {
    Snapshot::new(seq, store.hash_at(seq).unwrap(), state(seq))
}

fn check_pruning(store: &mut dyn ChainStore) {
    fill(store, 10, 40);
    let all = hashes(store);
    let snap = snapshot_of(store, 6);
    store.save_snapshot(&snap).unwrap();
    assert_eq!(store.latest_snapshot().unwrap(), Some(snap.clone()));
    store.prune_before(6).unwrap();
    assert_eq!(store.start(), 6);
    assert_eq!(hashes(store), all[6..]);
    assert!(matches!(
        store.get(5),
        Err(ChainError::Pruned {
            seq: 5,
            start: 6,
            ..
        })
    ));
    let report = store.verify().unwrap();
    assert_eq!((report.start, report.entries), (6, 4));
    assert_eq!(report.anchor.map(|a| a.seq), Some(6));
    assert!(
        report.to_string().contains("snapshot anchor at seq 6"),
        "{report}"
    );
    // The chain keeps growing after a prune.
    fill(store, 2, 40);
    assert_eq!(store.verify().unwrap().entries, 6);
}

#[test]
fn pruned_memory_chain_verifies_from_its_anchor() {
    check_pruning(&mut MemoryStore::new(id("m")));
}

#[test]
fn pruned_file_chain_verifies_from_its_anchor_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::create(dir.path(), id("f"), Durability::EveryEntry).unwrap();
    check_pruning(&mut store);
    let head = store.head();
    drop(store);
    let store = FileStore::open(dir.path(), Durability::EveryEntry).unwrap();
    assert_eq!((store.start(), store.head()), (6, head));
    assert_eq!(store.verify().unwrap().entries, 6);
}

#[test]
fn snapshots_that_do_not_match_are_rejected() {
    let mut store = MemoryStore::new(id("s"));
    fill(&mut store, 3, 0);
    let mut wrong_state = snapshot_of(&store, 1);
    wrong_state.state = json!({"count": 99});
    let err = store.save_snapshot(&wrong_state).unwrap_err();
    assert!(err.to_string().contains("state hashes to"), "{err}");
    let mut wrong_entry = snapshot_of(&store, 1);
    wrong_entry.entry_hash = store.hash_at(2).unwrap();
    assert!(store.save_snapshot(&wrong_entry).is_err());
    assert!(store.save_snapshot(&snapshot_of(&store, 2)).is_ok());
    let mut future = snapshot_of(&store, 2);
    future.seq = 7;
    assert!(store.save_snapshot(&future).is_err());
    assert!(store.prune_before(1).is_err(), "no snapshot at seq 1");
}

#[test]
fn tampering_with_the_anchor_entry_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::create(dir.path(), id("a"), Durability::None).unwrap();
    fill(&mut store, 5, 40);
    store.save_snapshot(&snapshot_of(&store, 2)).unwrap();
    store.prune_before(2).unwrap();
    drop(store);
    let log = dir.path().join("chain.log");
    let spans = record_spans(dir.path());
    let mut bytes = std::fs::read(&log).unwrap();
    bytes[spans[0].0 + 8 + 90] ^= 4;
    std::fs::write(&log, bytes).unwrap();
    let err = FileStore::open(dir.path(), Durability::None)
        .and_then(|s| s.verify().map(|_| ()))
        .unwrap_err();
    match err {
        ChainError::Corrupt(c) => {
            assert_eq!(c.seq, 2);
            assert!(
                matches!(c.problem, Problem::HashMismatch { .. }),
                "{}",
                c.problem
            );
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_log_cut_before_a_snapshot_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::create(dir.path(), id("cut"), Durability::None).unwrap();
    fill(&mut store, 6, 40);
    store.save_snapshot(&snapshot_of(&store, 4)).unwrap();
    drop(store);
    // Lose the last three records (a cut at a record boundary, undetectable from the log alone).
    let spans = record_spans(dir.path());
    let log = dir.path().join("chain.log");
    let f = std::fs::OpenOptions::new().write(true).open(&log).unwrap();
    f.set_len(spans[3].0 as u64).unwrap();
    drop(f);
    let err = FileStore::open(dir.path(), Durability::None).unwrap_err();
    assert!(err.to_string().contains("entries are missing"), "{err}");
}

#[test]
fn a_missing_anchor_snapshot_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = FileStore::create(dir.path(), id("gone"), Durability::None).unwrap();
    fill(&mut store, 4, 10);
    store.save_snapshot(&snapshot_of(&store, 3)).unwrap();
    store.prune_before(3).unwrap();
    drop(store);
    std::fs::remove_file(dir.path().join("snapshots").join(format!("{:020}.snap", 3))).unwrap();
    let err = FileStore::open(dir.path(), Durability::None).unwrap_err();
    assert!(err.to_string().contains(".snap"), "{err}");
}

#[test]
fn a_reader_stays_consistent_while_the_writer_prunes() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = FileStore::create(dir.path(), id("live"), Durability::None).unwrap();
    fill(&mut writer, 10, 40);
    let reader = FileStore::open_read_only(dir.path()).unwrap();
    writer.save_snapshot(&snapshot_of(&writer, 6)).unwrap();
    writer.prune_before(6).unwrap();
    fill(&mut writer, 3, 40);
    // The reader keeps the log it opened, whatever the writer renamed into place since.
    assert_eq!(reader.verify().unwrap().entries, 10);
    assert_eq!(reader.get(2).unwrap().seq(), 2);
    // A new reader sees the pruned chain.
    let fresh = FileStore::open_read_only(dir.path()).unwrap();
    let report = fresh.verify().unwrap();
    assert_eq!((report.start, report.entries), (6, 7));
}

#[test]
fn a_chain_created_at_a_snapshot_verifies_from_it_and_refuses_what_does_not_match() {
    let dir = tempfile::tempdir().unwrap();
    let mut source = MemoryStore::new(id("copied"));
    fill(&mut source, 12, 20);
    let snap = snapshot_of(&source, 7);
    let mut body = Vec::new();
    source
        .for_each_record(7, &mut |r| {
            if r.seq == 7 {
                body = r.body.to_vec();
            }
            Ok(())
        })
        .unwrap();
    let hash = source.hash_at(7).unwrap();
    let group = Durability::Group { max_batch: 8 };
    // The entry given must be the one the snapshot names, with a state that matches.
    let wrong = source.hash_at(6).unwrap();
    assert!(matches!(
        FileStore::create_at(
            dir.path().join("a"),
            id("copied"),
            &snap,
            &body,
            wrong,
            group
        ),
        Err(ChainError::Snapshot { seq: 7, .. })
    ));
    let mut other = snap.clone();
    other.state = json!({"count": 99});
    assert!(matches!(
        FileStore::create_at(
            dir.path().join("b"),
            id("copied"),
            &other,
            &body,
            hash,
            group
        ),
        Err(ChainError::Snapshot { seq: 7, .. })
    ));
    let mut copy = FileStore::create_at(
        dir.path().join("c"),
        id("copied"),
        &snap,
        &body,
        hash,
        group,
    )
    .unwrap();
    for seq in 8..12 {
        copy.append(source.get(seq).unwrap().into()).unwrap();
    }
    copy.sync().unwrap();
    assert_eq!((copy.start(), copy.len()), (7, 12));
    assert_eq!(hashes(&copy), hashes(&source)[7..].to_vec());
    drop(copy);
    // It reopens as a pruned chain does, and verifies from its anchor.
    let copy = FileStore::open_read_only(dir.path().join("c")).unwrap();
    assert_eq!(copy.anchor().map(|a| a.seq), Some(7));
    assert_eq!(copy.verify().unwrap().entries, 5);
    // Never over an existing chain.
    assert!(
        FileStore::create_at(
            dir.path().join("c"),
            id("copied"),
            &snap,
            &body,
            hash,
            group
        )
        .is_err()
    );
}
