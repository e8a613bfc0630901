//! Property tests of the runtime: replay, failures, resume and tampering.

use proptest::prelude::*;
use serde_json::{Value, json};
use theater_chain::{ChainStore, Durability, Event, FileStore, MemoryStore, NewEntry, Payload};
use theater_core::{ActorInput, ActorRuntime, ReplayError, RuntimeConfig, replay};
use theater_test_support::{Account, Counter, id};

/// An account operation, some of them invalid or overdrafts.
fn arb_op() -> impl Strategy<Value = ActorInput> {
    prop_oneof![
        (0i64..100).prop_map(|n| ActorInput::request(json!({"deposit": n}))),
        (0i64..150).prop_map(|n| ActorInput::request(json!({"withdraw": n}))),
        Just(ActorInput::request(json!({"nonsense": 1}))),
        Just(ActorInput::message(json!(null))),
    ]
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn mem() -> Box<dyn ChainStore> {
    Box::new(MemoryStore::new(id("prop")))
}

/// Runs `ops` on a fresh in-memory runtime; returns the final state and every entry hash.
async fn run_all(ops: &[ActorInput], config: RuntimeConfig) -> (Value, Vec<theater_chain::Hash>) {
    let mut rt = ActorRuntime::start(Account, mem(), config).await.unwrap();
    for op in ops {
        rt.handle(op.clone(), vec![]).await.unwrap();
    }
    let chain = rt.chain();
    let hashes = (0..chain.len())
        .map(|s| chain.hash_at(s).unwrap())
        .collect();
    (rt.state().clone(), hashes)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn replay_reproduces_every_state_hash(ops in prop::collection::vec(arb_op(), 0..40)) {
        block_on(async {
            let mut rt = ActorRuntime::start(Account, mem(), RuntimeConfig::default()).await.unwrap();
            for op in &ops {
                rt.handle(op.clone(), vec![]).await.unwrap();
            }
            let report = replay(&mut Account, rt.chain()).await.unwrap();
            prop_assert_eq!(report.entries, ops.len() as u64 + 1);
            prop_assert_eq!(&report.state, rt.state());
            prop_assert_eq!(report.state_hash, rt.state_hash());
            Ok(())
        })?;
    }

    #[test]
    fn failing_or_rejected_inputs_never_change_the_state(ops in prop::collection::vec(arb_op(), 1..40)) {
        block_on(async {
            let mut rt = ActorRuntime::start(Account, mem(), RuntimeConfig::default()).await.unwrap();
            for op in ops {
                let before = (rt.state().clone(), rt.state_hash());
                let handled = rt.handle(op, vec![]).await.unwrap();
                if handled.result.is_err() {
                    prop_assert_eq!(&(rt.state().clone(), rt.state_hash()), &before);
                }
                prop_assert!(rt.state()["balance"].as_i64().unwrap() >= 0);
            }
            Ok(())
        })?;
    }

    #[test]
    fn stopping_and_resuming_anywhere_matches_an_uninterrupted_run(
        ops in prop::collection::vec(arb_op(), 0..30),
        split in any::<prop::sample::Index>(),
        every in 1u64..6,
    ) {
        block_on(async {
            let config = RuntimeConfig::default().snapshot_every(Some(every)).snapshot_share(None);
            let (state, hashes) = run_all(&ops, config.clone()).await;
            let split = split.index(ops.len() + 1);
            let dir = tempfile::tempdir().unwrap();
            let open = || Box::new(FileStore::open_or_create(dir.path(), id("prop"), Durability::Group { max_batch: 4 }).unwrap()) as Box<dyn ChainStore>;
            let mut rt = ActorRuntime::start(Account, open(), config.clone()).await.unwrap();
            for op in &ops[..split] {
                rt.handle(op.clone(), vec![]).await.unwrap();
            }
            rt.commit().unwrap();
            drop(rt);
            let mut rt = ActorRuntime::start(Account, open(), config).await.unwrap();
            for op in &ops[split..] {
                rt.handle(op.clone(), vec![]).await.unwrap();
            }
            prop_assert_eq!(rt.state(), &state);
            let chain = rt.chain();
            let resumed: Vec<_> = (0..chain.len()).map(|s| chain.hash_at(s).unwrap()).collect();
            prop_assert_eq!(resumed, hashes);
            Ok(())
        })?;
    }

    #[test]
    fn a_tampered_input_diverges_at_exactly_its_seq(
        adds in prop::collection::vec(1i64..50, 1..30),
        at in any::<prop::sample::Index>(),
        delta in 1i64..10,
    ) {
        block_on(async {
            let mut rt = ActorRuntime::start(Counter, mem(), RuntimeConfig::default()).await.unwrap();
            for n in &adds {
                rt.handle(theater_test_support::add(*n), vec![]).await.unwrap();
            }
            let target = 1 + at.index(adds.len()) as u64;
            // Rebuild the chain with one input changed and every hash recomputed, so it
            // verifies on its own: only replay can tell.
            let mut forged = MemoryStore::new(id("prop"));
            for seq in 0..rt.chain().len() {
                let entry = rt.chain().get(seq).unwrap();
                let new = if seq == target {
                    let Event::Input { output, .. } = entry.event() else { unreachable!() };
                    let input = theater_test_support::add(adds[seq as usize - 1] + delta);
                    NewEntry::input(input.to_payload(), output.clone(), entry.state_hash())
                } else {
                    NewEntry::from(entry)
                };
                let _ = forged.append(new).unwrap();
            }
            prop_assert!(forged.verify().is_ok());
            match replay(&mut Counter, &forged).await {
                Err(ReplayError::Diverged(d)) => prop_assert_eq!(d.seq, target, "{}", d),
                other => prop_assert!(false, "expected divergence at {}, got {:?}", target, other),
            }
            Ok(())
        })?;
    }
}

#[test]
fn payload_of_a_message_is_plain_json() {
    let p = ActorInput::message(json!({"a": 1})).to_payload();
    assert_eq!(
        p,
        Payload::json(json!({"type": "message", "payload": {"a": 1}}))
    );
}
