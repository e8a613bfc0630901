//! ActorRuntime: transitions, failures, host calls, resume, snapshots and replay.

use serde_json::json;
use theater_chain::{ChainStore, Durability, Event, FileStore, MemoryStore};
use theater_core::{
    ActorError, ActorInput, ActorRuntime, Mismatch, ReplayError, RuntimeConfig, replay,
};
use theater_test_support::{Account, Counter, Dice, add, id};

fn mem(name: &str) -> Box<dyn ChainStore> {
    Box::new(MemoryStore::new(id(name)))
}

#[tokio::test]
async fn inputs_change_state_and_are_recorded() {
    let mut rt = ActorRuntime::start(Counter, mem("c"), RuntimeConfig::default())
        .await
        .unwrap();
    assert_eq!(rt.chain().len(), 1, "init is entry 0");
    let h = rt.handle(add(5), vec![]).await.unwrap();
    assert_eq!(h.seq, 1);
    assert_eq!(rt.state(), &json!({"count": 5}));
    let e = rt.chain().get(1).unwrap();
    assert_eq!(e.state_hash(), rt.state_hash());
    assert!(matches!(e.event(), Event::Input { .. }));
    rt.chain().verify().unwrap();
}

#[tokio::test]
async fn failed_and_rejected_inputs_leave_state_unchanged_and_are_recorded() {
    let mut rt = ActorRuntime::start(Account, mem("a"), RuntimeConfig::default())
        .await
        .unwrap();
    let deposit = ActorInput::request(json!({"deposit": 10}));
    rt.handle(deposit, vec![]).await.unwrap().result.unwrap();
    let before = (rt.state().clone(), rt.state_hash());

    let overdraft = rt
        .handle(ActorInput::request(json!({"withdraw": 11})), vec![])
        .await
        .unwrap();
    assert!(matches!(overdraft.result, Err(ActorError::Failed(_))));
    let garbage = rt
        .handle(ActorInput::request(json!("what")), vec![])
        .await
        .unwrap();
    assert!(garbage.result.is_err());
    assert_eq!((rt.state().clone(), rt.state_hash()), before);
    for seq in [overdraft.seq, garbage.seq] {
        let e = rt.chain().get(seq).unwrap();
        assert_eq!(e.state_hash(), before.1);
        match e.event() {
            Event::Failed { error, .. } => assert!(!error.is_empty()),
            other => panic!("expected a failed entry, got {other:?}"),
        }
    }
    let rejected = rt.chain().get(overdraft.seq).unwrap();
    assert!(
        matches!(rejected.event(), Event::Failed { error, .. } if error.contains("the new state is rejected: the balance is negative"))
    );
    // Replay reproduces the failures too.
    let report = replay(&mut Account, rt.chain()).await.unwrap();
    assert_eq!(report.state, before.0);
    assert_eq!(report.entries, 4);
}

#[tokio::test]
async fn clock_and_random_reads_are_recorded_and_replayed_exactly() {
    let mut rt = ActorRuntime::start(Dice, mem("d"), RuntimeConfig::default())
        .await
        .unwrap();
    for _ in 0..20 {
        rt.handle(ActorInput::request(json!("roll")), vec![])
            .await
            .unwrap()
            .result
            .unwrap();
    }
    let e = rt.chain().get(3).unwrap();
    let names: Vec<&str> = e.host_calls().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["theater:clock/now", "theater:random/bytes"]);
    // Another Dice, live, would roll differently; fed the recording, it rolls the same.
    let report = replay(&mut Dice, rt.chain()).await.unwrap();
    assert_eq!(&report.state, rt.state());
    assert_eq!(report.state_hash, rt.state_hash());
}

#[tokio::test]
async fn replay_of_another_actor_diverges_at_the_first_difference() {
    let mut rt = ActorRuntime::start(Counter, mem("x"), RuntimeConfig::default())
        .await
        .unwrap();
    rt.handle(add(1), vec![]).await.unwrap();
    /// A counter that adds one more than asked.
    struct OffByOne;
    #[async_trait::async_trait]
    impl theater_core::Actor for OffByOne {
        async fn init(
            &mut self,
            h: &mut theater_core::HostCalls,
        ) -> Result<serde_json::Value, ActorError> {
            theater_core::Actor::init(&mut Counter, h).await
        }
        async fn handle_input(
            &mut self,
            input: &ActorInput,
            state: &serde_json::Value,
            h: &mut theater_core::HostCalls,
        ) -> Result<(theater_core::ActorOutput, serde_json::Value), ActorError> {
            let n = input.payload().unwrap()["add"].as_i64().unwrap();
            theater_core::Actor::handle_input(&mut Counter, &add(n + 1), state, h).await
        }
    }
    match replay(&mut OffByOne, rt.chain()).await {
        Err(ReplayError::Diverged(d)) => {
            assert_eq!(d.seq, 1);
            assert!(matches!(d.what, Mismatch::Output { .. }), "{d}");
        }
        other => panic!("expected divergence, got {other:?}"),
    }
}

#[tokio::test]
async fn resumes_from_a_durable_chain_with_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Box::new(
            FileStore::open_or_create(dir.path(), id("r"), Durability::Group { max_batch: 8 })
                .unwrap(),
        ) as Box<dyn ChainStore>
    };
    let config = RuntimeConfig::default()
        .snapshot_every(Some(4))
        .snapshot_share(None);
    let mut rt = ActorRuntime::start(Counter, open(), config.clone())
        .await
        .unwrap();
    for i in 1..=10 {
        rt.handle(add(i), vec![]).await.unwrap();
    }
    rt.commit().unwrap();
    let (state, head) = (rt.state().clone(), rt.chain().head());
    assert_eq!(
        rt.chain().latest_snapshot().unwrap().map(|s| s.seq),
        Some(8)
    );
    drop(rt);

    let mut rt = ActorRuntime::start(Counter, open(), config).await.unwrap();
    assert_eq!(rt.state(), &state);
    assert_eq!(rt.chain().head(), head);
    rt.handle(add(100), vec![]).await.unwrap();
    assert_eq!(rt.state(), &json!({"count": 155}));
    rt.chain().verify().unwrap();
}

/// A counter's chain in `dir`: init, then adds 1 to 10, a snapshot every 4 entries (the
/// entries before each dropped with `prune`); opened read-only.
async fn counted_to_ten(dir: &std::path::Path, prune: bool) -> FileStore {
    let store =
        FileStore::open_or_create(dir, id("n"), Durability::Group { max_batch: 8 }).unwrap();
    let config = RuntimeConfig::default()
        .snapshot_every(Some(4))
        .snapshot_share(None)
        .prune_on_snapshot(prune);
    let mut rt = ActorRuntime::start(Counter, Box::new(store), config)
        .await
        .unwrap();
    for i in 1..=10 {
        rt.handle(add(i), vec![]).await.unwrap();
    }
    rt.commit().unwrap();
    drop(rt);
    FileStore::open_read_only(dir).unwrap()
}

/// The state after one entry, from the newest snapshot at or before it: the same state a
/// replay from genesis reaches, re-running only the entries after the snapshot.
#[tokio::test]
async fn replay_to_an_entry_starts_from_the_nearest_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = counted_to_ten(dir.path(), false).await;
    for to in 0..=10u64 {
        let mut seen = Vec::new();
        let near =
            theater_core::replay_to_nearest(&mut Counter, &store, to, to, &mut |seq, state| {
                seen.push((seq, state.clone()));
            })
            .await
            .unwrap();
        let full = theater_core::replay_to(&mut Counter, &store, to, &mut |_, _| {})
            .await
            .unwrap();
        assert_eq!(near.state.value(), full.state.value(), "to {to}");
        assert_eq!(near.head, full.head);
        // Snapshots at 4 and 8: replay starts from the newest one at or before `to`.
        let from = [8, 4, 0].into_iter().find(|s| *s <= to).unwrap();
        let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
        assert_eq!(seqs, (from..=to).collect::<Vec<_>>(), "to {to}");
        assert_eq!(near.from, from);
        let count = (1..=to as i64).sum::<i64>();
        assert_eq!(seen.last().unwrap().1, json!({"count": count}));
        // Not after `to - 1`: the state before `to` is seen, from an older snapshot.
        if to > 0 {
            let mut seqs = Vec::new();
            theater_core::replay_to_nearest(&mut Counter, &store, to, to - 1, &mut |seq, _| {
                seqs.push(seq);
            })
            .await
            .unwrap();
            let from = [8, 4, 0].into_iter().find(|s| *s < to).unwrap();
            assert_eq!(
                seqs,
                (from..=to).collect::<Vec<_>>(),
                "to {to}, not after {}",
                to - 1
            );
        }
    }
    assert!(matches!(
        theater_core::replay_to_nearest(&mut Counter, &store, 11, 11, &mut |_, _| {}).await,
        Err(ReplayError::OutOfRange { .. })
    ));

    // A pruned chain: its anchor's state is seen first, as any snapshot's.
    let dir = tempfile::tempdir().unwrap();
    let store = counted_to_ten(dir.path(), true).await;
    assert_eq!(store.start(), 8);
    let mut seen = Vec::new();
    let report = theater_core::replay_to_nearest(&mut Counter, &store, 9, 8, &mut |seq, state| {
        seen.push((seq, state.clone()));
    })
    .await
    .unwrap();
    assert_eq!(
        seen,
        vec![(8, json!({"count": 36})), (9, json!({"count": 45}))]
    );
    assert_eq!(report.from, 8);
}

#[tokio::test]
async fn pruned_chains_replay_from_their_anchor() {
    let config = RuntimeConfig::default()
        .snapshot_every(Some(5))
        .snapshot_share(None)
        .prune_on_snapshot(true);
    let mut rt = ActorRuntime::start(Counter, mem("p"), config)
        .await
        .unwrap();
    for i in 1..=12 {
        rt.handle(add(i), vec![]).await.unwrap();
    }
    assert_eq!(rt.chain().start(), 10);
    let report = replay(&mut Counter, rt.chain()).await.unwrap();
    assert_eq!((report.from, report.entries), (10, 2));
    assert_eq!(&report.state, rt.state());
}

#[tokio::test]
async fn init_failures_are_reported() {
    struct Broken;
    #[async_trait::async_trait]
    impl theater_core::Actor for Broken {
        async fn init(
            &mut self,
            _: &mut theater_core::HostCalls,
        ) -> Result<serde_json::Value, ActorError> {
            Ok(json!({"balance": -1}))
        }
        async fn handle_input(
            &mut self,
            _: &ActorInput,
            _: &serde_json::Value,
            _: &mut theater_core::HostCalls,
        ) -> Result<(theater_core::ActorOutput, serde_json::Value), ActorError> {
            unreachable!()
        }
        async fn verify_state(&mut self, s: &theater_core::State) -> Result<(), ActorError> {
            theater_core::Actor::verify_state(&mut Account, s).await
        }
    }
    let err = ActorRuntime::start(Broken, mem("b"), RuntimeConfig::default())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("the initial state is rejected"),
        "{err}"
    );
}

/// A read (an input that leaves the state unchanged) records its output's digest by
/// default, the whole output with `Reads::Full`, and always the whole answer to a request;
/// replay recomputes the output and checks it against the digest.
#[tokio::test]
async fn a_read_records_its_outputs_digest_and_replay_checks_it() {
    let mut rt = ActorRuntime::start(Counter, mem("r"), RuntimeConfig::default())
        .await
        .unwrap();
    rt.handle(ActorInput::message(json!({"add": 2})), vec![])
        .await
        .unwrap();
    let asked = ActorInput::message(json!({"add": 0}));
    let read = rt.handle(asked.clone(), vec![]).await.unwrap();
    let answered = read.result.unwrap().to_payload();
    let entry = rt.chain().get(read.seq).unwrap();
    match entry.event() {
        Event::Read { input, output } => {
            assert_eq!(*input, asked.to_payload());
            assert_eq!(*output, answered.digest());
        }
        other => panic!("expected a read entry, got {other:?}"),
    }
    assert_eq!(
        entry.state_hash(),
        rt.chain().get(read.seq - 1).unwrap().state_hash()
    );
    // A change is recorded whole, and so is a request's answer even when nothing changed.
    let changed = rt
        .handle(ActorInput::message(json!({"add": 1})), vec![])
        .await
        .unwrap();
    let request = rt.handle(add(0), vec![]).await.unwrap();
    for seq in [changed.seq, request.seq] {
        let e = rt.chain().get(seq).unwrap();
        assert!(matches!(e.event(), Event::Input { .. }), "{seq}: {e:?}");
    }
    rt.chain().verify().unwrap();
    let report = replay(&mut Counter, rt.chain()).await.unwrap();
    assert_eq!(report.state.value(), &json!({"count": 3}));

    /// A counter that answers a read with ten times the count: same states, other outputs.
    struct Loud;
    #[async_trait::async_trait]
    impl theater_core::Actor for Loud {
        async fn init(
            &mut self,
            h: &mut theater_core::HostCalls,
        ) -> Result<serde_json::Value, ActorError> {
            theater_core::Actor::init(&mut Counter, h).await
        }
        async fn handle_input(
            &mut self,
            input: &ActorInput,
            state: &serde_json::Value,
            h: &mut theater_core::HostCalls,
        ) -> Result<(theater_core::ActorOutput, serde_json::Value), ActorError> {
            let (out, next) =
                theater_core::Actor::handle_input(&mut Counter, input, state, h).await?;
            if next != *state {
                return Ok((out, next));
            }
            Ok((
                theater_core::ActorOutput::reply(json!(state["count"].as_i64().unwrap() * 10)),
                next,
            ))
        }
    }
    match replay(&mut Loud, rt.chain()).await {
        Err(ReplayError::Diverged(d)) => {
            assert_eq!(d.seq, read.seq);
            match &d.what {
                Mismatch::OutputDigest {
                    expected,
                    actual,
                    replayed,
                } => {
                    assert_eq!(*expected, answered.digest());
                    assert_eq!(*actual, replayed.digest());
                    assert_ne!(expected, actual);
                }
                other => panic!("expected an output digest mismatch, got {other:?}"),
            }
        }
        other => panic!("expected divergence, got {other:?}"),
    }

    let mut full = ActorRuntime::start(
        Counter,
        mem("f"),
        RuntimeConfig::default().reads(theater_core::Reads::Full),
    )
    .await
    .unwrap();
    let read = full.handle(asked, vec![]).await.unwrap();
    let answered = read.result.unwrap().to_payload();
    match full.chain().get(read.seq).unwrap().event() {
        Event::Input { output, .. } => assert_eq!(*output, answered),
        other => panic!("expected an input entry, got {other:?}"),
    }
    replay(&mut Counter, full.chain()).await.unwrap();
}

/// A replay longer than one chunk (entries are checked and decoded on another thread while
/// the chunk before is replayed) comes to the live state; with a record damaged in a later
/// chunk, it replays every entry before it, then reports that record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_replay_reports_a_damaged_record_after_replaying_those_before() {
    let dir = tempfile::tempdir().unwrap();
    let store = FileStore::create(dir.path(), id("long"), Durability::None).unwrap();
    let mut rt = ActorRuntime::start(Counter, Box::new(store), RuntimeConfig::default())
        .await
        .unwrap();
    for _ in 0..2600 {
        rt.handle(add(1), vec![]).await.unwrap();
    }
    rt.commit().unwrap();
    let live = rt.state().clone();
    drop(rt);

    let store = FileStore::open_read_only(dir.path()).unwrap();
    let mut seen = 0u64;
    let report = theater_core::replay_to(&mut Counter, &store, 2600, &mut |seq, _| {
        assert_eq!(seq, seen, "entries replayed in order");
        seen += 1;
    })
    .await
    .unwrap();
    assert_eq!((seen, report.state.value()), (2601, &live));

    // Damage the body of the record at seq 2100 (the third chunk).
    let mut at = None;
    store
        .for_each_record_in(2100, 2101, &mut |rec| {
            at = rec.offset.map(|o| o as usize + rec.body.len());
            Ok(())
        })
        .unwrap();
    drop(store);
    let log = dir.path().join("chain.log");
    let mut bytes = std::fs::read(&log).unwrap();
    // The body's last bytes (past the frame's 8-byte head): not its header, which opening
    // the log reads.
    bytes[at.unwrap() + 4] ^= 0x40;
    std::fs::write(&log, &bytes).unwrap();
    let store = FileStore::open_read_only(dir.path()).unwrap();
    let mut seen = 0u64;
    let err = theater_core::replay_to(&mut Counter, &store, 2600, &mut |_, _| seen += 1)
        .await
        .unwrap_err();
    assert_eq!(seen, 2100, "every entry before the damaged one is replayed");
    match err {
        ReplayError::Chain(theater_chain::ChainError::Corrupt(c)) => assert_eq!(c.seq, 2100),
        other => panic!("expected the damaged record, got {other}"),
    }
}
