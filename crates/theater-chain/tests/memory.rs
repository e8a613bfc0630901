//! A long chain opens and serves reads by seq without memory proportional to its length:
//! every allocation of this process is counted while it opens and reads (its own test
//! binary, so nothing else allocates meanwhile).

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

use std::alloc::System;

use serde_json::json;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use theater_chain::{ChainId, ChainStore, Durability, FileStore, Hash, NewEntry, Payload};

/// The system allocator, counting (stats_alloc: no unsafe code here).
#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn a_chain_of_a_million_entries_opens_and_reads_in_memory_independent_of_its_length() {
    const N: u64 = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let id = ChainId::new("long").unwrap();
    {
        let mut chain =
            FileStore::create(dir.path(), id, Durability::Group { max_batch: 4096 }).unwrap();
        for i in 0..N {
            let state = json!(i);
            chain
                .append(NewEntry::input(
                    Payload::json(json!({"n": i})),
                    Payload::json(json!(null)),
                    Hash::of_state(&state),
                ))
                .unwrap();
        }
        chain.sync().unwrap();
    }
    let region = Region::new(GLOBAL);
    let chain = FileStore::open(dir.path(), Durability::None).unwrap();
    assert_eq!(chain.len(), N);
    // Reads by seq: first, last, scattered, and a run in order.
    for seq in [0, N - 1, N / 2, 12_345, 999_937, 64, 63, 65] {
        assert_eq!(chain.get(seq).unwrap().seq(), seq);
    }
    for seq in 500_000..500_200 {
        let entry = chain.get(seq).unwrap();
        assert_eq!(entry.seq(), seq);
        assert_eq!(chain.hash_at(seq).unwrap(), entry.hash());
    }
    let mut seen = 0;
    chain
        .for_each_record(N - 1000, &mut |_| {
            seen += 1;
            Ok(())
        })
        .unwrap();
    assert_eq!(seen, 1000);
    let stats = region.change();
    let held = stats
        .bytes_allocated
        .saturating_sub(stats.bytes_deallocated);
    // An offset per entry would be 8 MB; one per 64 entries is 125 KB.
    assert!(chain.index_bytes() <= 256 * 1024, "{}", chain.index_bytes());
    assert!(held <= 512 * 1024, "the open chain holds {held} bytes");
    println!(
        "a chain of {N} entries: {held} bytes held open, {} allocated in all while opening and reading",
        stats.bytes_allocated
    );
}
