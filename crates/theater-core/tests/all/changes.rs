//! Inputs that report their changes as patches: the runtime's state hash is always the
//! structural hash of its state; replay and resuming from snapshots agree bit for bit; a
//! patch that does not apply fails its input and changes nothing.

use async_trait::async_trait;
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use theater_chain::{ChainStore, Hash, MemoryStore};
use theater_core::{
    Actor, ActorError, ActorInput, ActorOutput, ActorRuntime, HostCalls, Patch, RuntimeConfig,
    State, StateChange, replay,
};
use theater_test_support::id;

/// Each input is `{"walk": [..], "kind": k, "key": "..", "value": ..}`: the actor walks its
/// state by `walk` and adds, inserts, removes or replaces there (kind 5: a patch naming a
/// member that does not exist, which must fail). It answers with the patch it reported.
struct Patcher;

fn resolve(state: &Value, input: &Value) -> Value {
    let mut path = String::new();
    let mut at = state;
    for w in input["walk"].as_array().into_iter().flatten() {
        let w = w.as_u64().unwrap_or(0) as usize;
        let next = match at {
            Value::Object(m) if !m.is_empty() => {
                let (k, v) = m.iter().nth(w % m.len()).unwrap();
                path.push('/');
                path.push_str(&k.replace('~', "~0").replace('/', "~1"));
                v
            }
            Value::Array(a) if !a.is_empty() => {
                path.push_str(&format!("/{}", w % a.len()));
                &a[w % a.len()]
            }
            _ => break,
        };
        at = next;
    }
    let key = input["key"].as_str().unwrap_or("k");
    let value = input["value"].clone();
    match (at, input["kind"].as_u64().unwrap_or(0)) {
        (_, 5) => json!([{"op": "remove", "path": format!("{path}/no such/{key}")}]),
        (Value::Object(_), 0 | 1) => {
            json!([{"op": "add", "path": format!("{path}/{key}"), "value": value}])
        }
        (Value::Object(m), 2) if !m.is_empty() => {
            let k = m.keys().next().unwrap();
            json!([{"op": "remove", "path": format!("{path}/{}", k.replace('~', "~0").replace('/', "~1"))}])
        }
        (Value::Array(_), 0) => json!([{"op": "add", "path": format!("{path}/-"), "value": value}]),
        (Value::Array(a), 1) => {
            json!([{"op": "add", "path": format!("{path}/{}", key.len() % (a.len() + 1)), "value": value}])
        }
        (Value::Array(a), 2) if !a.is_empty() => {
            json!([{"op": "remove", "path": format!("{path}/0")}])
        }
        _ if path.is_empty() => json!([{"op": "add", "path": format!("/{key}"), "value": value}]),
        _ => json!([{"op": "replace", "path": path, "value": value}]),
    }
}

#[async_trait]
impl Actor for Patcher {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        let items: Map<String, Value> = (0..70).map(|i| (format!("m{i}"), json!(i))).collect();
        Ok(json!({"items": items, "list": (0..40).collect::<Vec<_>>(), "n": 0}))
    }

    async fn handle_input(
        &mut self,
        _: &ActorInput,
        _: &Value,
        _: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        Err(ActorError::Failed("reports changes only".into()))
    }

    async fn handle_change(
        &mut self,
        input: &ActorInput,
        state: &State,
        _: &mut HostCalls,
    ) -> Result<(ActorOutput, StateChange), ActorError> {
        let ActorInput::Request { payload } = input else {
            return Err(ActorError::Failed("expected a request".into()));
        };
        let doc = resolve(state.value(), payload);
        let patch = Patch::from_json(&doc).map_err(ActorError::Failed)?;
        Ok((ActorOutput::reply(doc), StateChange::Patch(patch)))
    }
}

fn arb_input() -> impl Strategy<Value = ActorInput> {
    (
        prop::collection::vec(any::<u16>(), 0..4),
        0u8..6,
        "[a-z]{1,3}",
        prop_oneof![
            any::<i32>().prop_map(Value::from),
            "[a-z]{0,40}".prop_map(Value::from),
            prop::collection::vec(any::<i8>(), 0..40).prop_map(|v| json!(v)),
            prop::collection::btree_map("[a-z]{1,2}", any::<bool>(), 0..40).prop_map(|m| json!(m)),
        ],
    )
        .prop_map(|(walk, kind, key, value)| {
            ActorInput::request(json!({"walk": walk, "kind": kind, "key": key, "value": value}))
        })
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn changes_hash_structurally_and_replay_and_resume_bit_for_bit(
        inputs in prop::collection::vec(arb_input(), 1..40),
        every in 1u64..8,
    ) {
        block_on(async {
            let config = RuntimeConfig::default().snapshot_every(Some(every)).snapshot_share(None);
            let chain: Box<dyn ChainStore> = Box::new(MemoryStore::new(id("patcher")));
            let mut rt = ActorRuntime::start(Patcher, chain, config.clone()).await.unwrap();
            for input in &inputs {
                let before = (rt.state().clone(), rt.state_hash());
                let handled = rt.handle(input.clone(), vec![]).await.unwrap();
                // The incrementally kept hash is the hash of the state built from scratch.
                prop_assert_eq!(rt.state_hash(), Hash::of_state(rt.state()));
                if let Err(e) = &handled.result {
                    prop_assert!(e.to_string().contains("does not apply"), "{}", e);
                    prop_assert_eq!((rt.state().clone(), rt.state_hash()), before);
                }
            }
            let (state, hash) = (rt.state().clone(), rt.state_hash());
            let report = replay(&mut Patcher, rt.chain()).await.unwrap();
            prop_assert_eq!(&report.state, &state);
            prop_assert_eq!(report.state_hash, hash);
            // Resuming (from the newest snapshot, then the tail) reaches the same state.
            let (_, chain) = rt.into_parts();
            let resumed = ActorRuntime::start(Patcher, chain, config).await.unwrap();
            prop_assert_eq!(resumed.state(), &state);
            prop_assert_eq!(resumed.state_hash(), hash);
            Ok(())
        })?;
    }
}
