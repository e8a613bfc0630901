//! Cross-chain references: a check over several chains finds every one that does not resolve.

use serde_json::json;
use theater_chain::{ChainStore, Hash, MemoryStore, NewEntry, Payload, RefProblem, check_refs};

use crate::support::{id, ref_to};

/// Chain `a` sends payloads; chain `b` records receiving each, referring to the send.
fn linked(payloads: &[&str]) -> (MemoryStore, MemoryStore) {
    let mut a = MemoryStore::new(id("a"));
    let mut b = MemoryStore::new(id("b"));
    for (i, p) in payloads.iter().enumerate() {
        let _ = a
            .append(NewEntry::input(
                Payload::json(json!({"send": p})),
                Payload::default(),
                Hash::of_state(&json!(i)),
            ))
            .unwrap();
        let sent = ref_to(&a, i as u64);
        let _ = b
            .append(
                NewEntry::input(
                    Payload::json(json!({"received": p})),
                    Payload::default(),
                    Hash::of_state(&json!(i)),
                )
                .with_refs(vec![sent]),
            )
            .unwrap();
    }
    (a, b)
}

#[test]
fn resolved_references_pass() {
    let (a, b) = linked(&["x", "y", "z"]);
    assert_eq!(check_refs(&[&a, &b]).unwrap(), vec![]);
}

#[test]
fn a_rebuilt_sender_chain_that_verifies_alone_is_still_caught() {
    let (_, b) = linked(&["x", "y", "z"]);
    // The sender's chain rewritten with one payload changed and every hash recomputed:
    // it verifies on its own, but no longer matches what b recorded.
    let (forged_a, _) = linked(&["x", "Y", "z"]);
    assert!(forged_a.verify().is_ok());
    let broken = check_refs(&[&forged_a, &b]).unwrap();
    // Entry 1 differs, and so does every later hash (they chain on it).
    assert_eq!(broken.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(matches!(broken[0].problem, RefProblem::HashMismatch { .. }));
    let msg = broken[0].to_string();
    assert!(msg.contains("\"b\" seq 1 refers to \"a\" seq 1"), "{msg}");
}

#[test]
fn unknown_chains_and_missing_entries_are_reported() {
    let (a, b) = linked(&["x", "y"]);
    assert!(matches!(
        check_refs(&[&b]).unwrap()[0].problem,
        RefProblem::UnknownChain
    ));
    let mut short_a = MemoryStore::new(id("a"));
    let _ = short_a
        .append(NewEntry::input(
            Payload::json(json!({"send": "x"})),
            Payload::default(),
            Hash::of_state(&json!(0)),
        ))
        .unwrap();
    let broken = check_refs(&[&short_a, &b]).unwrap();
    assert_eq!(broken.len(), 1);
    assert_eq!(broken[0].problem, RefProblem::Missing { len: 1 });
    drop(a);
}
