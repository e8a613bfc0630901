//! Helpers shared by the test modules.

use serde_json::json;
use theater_chain::{ChainId, ChainRef, ChainStore, Hash, HostCall, NewEntry, Payload};

pub(crate) fn id(s: &str) -> ChainId {
    ChainId::new(s).expect("valid test chain id")
}

/// A deterministic entry for position `i` with `size` bytes of binary payload.
pub(crate) fn entry(i: u64, size: usize) -> NewEntry {
    let state = json!({"count": i});
    let body: Vec<u8> = (0..size).map(|b| (b as u64 ^ i) as u8).collect();
    let e = NewEntry::input(
        Payload::new(json!({"add": 1, "i": i}), body),
        Payload::json(json!({"ok": true})),
        Hash::of_state(&state),
    );
    if i % 3 == 1 {
        e.with_host_calls(vec![HostCall {
            name: "theater:clock/now".into(),
            request: Payload::default(),
            result: Payload::json(json!(1_700_000_000_000u64 + i)),
        }])
    } else {
        e
    }
}

/// The state whose hash [`entry`] records.
pub(crate) fn state(i: u64) -> serde_json::Value {
    json!({"count": i})
}

/// Appends `n` entries from [`entry`] and syncs.
pub(crate) fn fill(store: &mut dyn ChainStore, n: u64, size: usize) {
    for i in store.len()..store.len() + n {
        store.append(entry(i, size)).expect("append");
    }
    store.sync().expect("sync");
}

/// Every stored hash, from start to head.
pub(crate) fn hashes(store: &dyn ChainStore) -> Vec<Hash> {
    (store.start()..store.len())
        .map(|s| store.hash_at(s).expect("hash_at"))
        .collect()
}

/// A reference to `store`'s entry at `seq`.
pub(crate) fn ref_to(store: &dyn ChainStore, seq: u64) -> ChainRef {
    ChainRef {
        chain: store.id().clone(),
        seq,
        hash: store.hash_at(seq).expect("hash_at"),
    }
}

/// Bytes where the records of `dir`'s log start and each record's (offset, length).
pub(crate) fn record_spans(dir: &std::path::Path) -> Vec<(usize, usize)> {
    let bytes = std::fs::read(dir.join("chain.log")).expect("read log");
    // Header: magic 8, version 4, start 8, id len 2, id, check 8.
    let id_len = u16::from_le_bytes([bytes[20], bytes[21]]) as usize;
    let mut at = 22 + id_len + 8;
    let mut spans = Vec::new();
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        let total = 8 + len + 32;
        if at + total > bytes.len() {
            break;
        }
        spans.push((at, total));
        at += total;
    }
    spans
}
