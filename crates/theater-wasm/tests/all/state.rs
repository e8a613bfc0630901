//! World `actor`: the guest keeps its state, reports what changed, and is caught when what it
//! reports is not what it did.

use serde_json::{Value, json};
use theater_chain::{ChainStore, MemoryStore};
use theater_core::{
    Actor, ActorError, ActorInput, ActorOutput, ActorRuntime, HostCalls, RuntimeConfig, State,
    StateChange, replay,
};
use theater_test_support::{example_component, id};
use theater_wasm::{Limits, WasmHost};

use crate::support::{actor, host, runtime};

fn audit_every(n: u32) -> Limits {
    Limits {
        audit_every: n,
        ..Limits::default()
    }
}

fn lie(add: i64, how: Option<&str>) -> ActorInput {
    match how {
        Some(how) => ActorInput::request(json!({"add": add, "lie": how})),
        None => ActorInput::request(json!({"add": add})),
    }
}

#[tokio::test]
async fn every_kind_of_lie_fails_its_input_and_leaves_the_state() {
    let host = host();
    let chain: Box<dyn ChainStore> = Box::new(MemoryStore::new(id("liar")));
    let mut rt = ActorRuntime::start(
        actor(&host, "liar", audit_every(1)),
        chain,
        RuntimeConfig::default(),
    )
    .await
    .unwrap();
    let honest = rt.handle(lie(1, None), vec![]).await.unwrap();
    assert_eq!(honest.result.unwrap(), ActorOutput::reply(json!(1)));
    for (how, says) in [
        ("omit", "reported no change, but its own state changed"),
        (
            "wrong",
            "the new state is rejected: the actor's own state is not the state its reported change gives",
        ),
        ("bad-path", "does not apply"),
        ("not-a-patch", "not a valid JSON Patch"),
    ] {
        let before = (rt.state().clone(), rt.state_hash());
        let handled = rt.handle(lie(10, Some(how)), vec![]).await.unwrap();
        let err = handled.result.unwrap_err().to_string();
        assert!(err.contains(says), "{how}: {err}");
        assert_eq!((rt.state().clone(), rt.state_hash()), before, "{how}");
        // The guest's copy is sent again: the next honest input counts from the host's state.
        let next = rt.handle(lie(1, None), vec![]).await.unwrap();
        let expected = before.0["count"].as_i64().unwrap() + 1;
        assert_eq!(
            next.result.unwrap(),
            ActorOutput::reply(json!(expected)),
            "after {how}"
        );
    }
    assert_eq!(rt.state(), &json!({"count": 5}));
    // The same audits happen in replay, so the chain replays bit for bit.
    let report = replay(&mut actor(&host, "liar", audit_every(1)), rt.chain())
        .await
        .unwrap();
    assert_eq!(report.state_hash, rt.state_hash());
    assert_eq!(report.entries, rt.chain().len());
}

#[tokio::test]
async fn unaudited_lies_are_kept_out_of_the_hosts_state() {
    // With audits off an omission goes unnoticed by the guest's own answers, but the host's
    // state (what the chain hashes) never takes it.
    let host = host();
    let chain: Box<dyn ChainStore> = Box::new(MemoryStore::new(id("liar")));
    let mut rt = ActorRuntime::start(
        actor(&host, "liar", audit_every(0)),
        chain,
        RuntimeConfig::default(),
    )
    .await
    .unwrap();
    rt.handle(lie(1, None), vec![])
        .await
        .unwrap()
        .result
        .unwrap();
    rt.handle(lie(10, Some("omit")), vec![])
        .await
        .unwrap()
        .result
        .unwrap();
    assert_eq!(rt.state(), &json!({"count": 1}));
}

/// Drives the todo example through `handle_change` directly: reads report no change, writes
/// report one-member patches, and the guest's copy is only sent when it is not current.
#[tokio::test]
async fn the_todo_example_reports_small_changes_and_keeps_its_copy() {
    let host: WasmHost = host();
    let component = host.load_file(example_component("todo")).unwrap();
    assert_eq!(component.world(), "actor");
    let mut todo = host.actor(
        &component,
        &id("todo"),
        json!({"seed": 2000}),
        audit_every(1),
    );
    let mut state = State::new(todo.init(&mut HostCalls::live()).await.unwrap());
    todo.verify_state(&state).await.unwrap();
    assert_eq!(state["todos"].as_object().unwrap().len(), 2000);
    let http = |method: &str, path: &str, body: &str| {
        ActorInput::from_payload(&theater_chain::Payload {
            json: json!({"type": "http_request", "method": method, "path": path,
                         "query": null, "headers": []}),
            bytes: body.as_bytes().to_vec(),
        })
        .unwrap()
    };
    let (out, change) = todo
        .handle_change(&http("GET", "/todos/7", ""), &state, &mut HostCalls::live())
        .await
        .unwrap();
    assert_eq!(change, StateChange::Unchanged);
    assert!(format!("{out:?}").contains("200"), "{out:?}");
    let (_, change) = todo
        .handle_change(
            &http("POST", "/todos", r#"{"title": "new"}"#),
            &state,
            &mut HostCalls::live(),
        )
        .await
        .unwrap();
    let StateChange::Patch(patch) = change else {
        panic!("a POST reports a patch, not {change:?}");
    };
    let paths: Vec<String> = patch
        .to_json()
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(paths.contains(&"/todos/2001".to_string()), "{paths:?}");
    assert!(paths.contains(&"/next_id".to_string()), "{paths:?}");
    let _undo = state.apply(&patch).unwrap();
    todo.verify_state(&state).await.expect("the audit agrees");
    assert_eq!(state["next_id"], 2002);
    // A state the guest does not hold (here: an older one) is sent to it first.
    let older =
        State::new(json!({"next_id": 2, "todos": {"1": {"id": 1, "title": "a", "done": false}}}));
    let (out, _) = todo
        .handle_change(&http("GET", "/todos/1", ""), &older, &mut HostCalls::live())
        .await
        .unwrap();
    let ActorOutput::HttpResponse(r) = out else {
        panic!("{out:?}");
    };
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["title"], "a");
}

#[tokio::test]
async fn a_trap_drops_the_copy_and_the_next_input_loads_the_state_again() {
    let host = host();
    let mut rt = crate::support::runtime(&host, "fragile", audit_every(1)).await;
    rt.handle(theater_test_support::add(2), vec![])
        .await
        .unwrap()
        .result
        .unwrap();
    let trapped = rt
        .handle(ActorInput::request(json!("boom")), vec![])
        .await
        .unwrap();
    assert!(matches!(trapped.result, Err(ActorError::Trap(_))));
    let next = rt
        .handle(theater_test_support::add(3), vec![])
        .await
        .unwrap();
    assert_eq!(next.result.unwrap(), ActorOutput::reply(json!(5)));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Random runs of honest and lying inputs: every lie fails its input and leaves the state
    /// (the sum of the honest inputs so far); the chain replays bit for bit.
    #[test]
    fn lies_anywhere_in_a_run_are_caught_and_replay_agrees(
        inputs in proptest::collection::vec(
            (1i64..50, proptest::option::of(proptest::sample::select(
                vec!["omit", "wrong", "bad-path", "not-a-patch"],
            ))),
            1..16,
        ),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let host = host();
            let chain: Box<dyn ChainStore> = Box::new(MemoryStore::new(id("liar")));
            let mut rt = ActorRuntime::start(
                actor(&host, "liar", audit_every(1)),
                chain,
                RuntimeConfig::default(),
            )
            .await
            .unwrap();
            let mut honest = 0;
            for (add, how) in &inputs {
                let handled = rt.handle(lie(*add, *how), vec![]).await.unwrap();
                match how {
                    None => {
                        honest += add;
                        proptest::prop_assert_eq!(handled.result.unwrap(), ActorOutput::reply(json!(honest)));
                    }
                    Some(how) => proptest::prop_assert!(handled.result.is_err(), "{} was not caught", how),
                }
                proptest::prop_assert_eq!(rt.state(), &json!({"count": honest}));
            }
            let report = replay(&mut actor(&host, "liar", audit_every(1)), rt.chain())
                .await
                .unwrap();
            proptest::prop_assert_eq!(report.state_hash, rt.state_hash());
            Ok(())
        })?;
    }
}

/// counter-v2 refuses a negative count. Built for 0.1.5, it handles and verifies in one call:
/// the refusal comes back with the change, the input fails with the state as it was, and the
/// guest, which kept the refused state, is sent the host's again before the next input.
#[tokio::test]
async fn a_state_refused_in_the_same_call_is_never_adopted() {
    let host = host();
    let component = host.load_file(example_component("counter-v2")).unwrap();
    assert!(component.handles_verified());
    for audit in [0, 1] {
        let mut rt = runtime(&host, "counter-v2", audit_every(audit)).await;
        let add = |n: i64| ActorInput::request(json!({"add": n}));
        rt.handle(add(2), vec![]).await.unwrap().result.unwrap();
        let before = (rt.state().clone(), rt.state_hash());
        let refused = rt.handle(add(-5), vec![]).await.unwrap();
        let err = refused.result.unwrap_err().to_string();
        assert!(
            err.contains("the new state is rejected: the actor's verify said no"),
            "{err}"
        );
        assert_eq!((rt.state().clone(), rt.state_hash()), before);
        let next = rt.handle(add(1), vec![]).await.unwrap().result.unwrap();
        assert_eq!(
            next,
            ActorOutput::reply(json!({"count": 3, "version": 2})),
            "audit_every {audit}"
        );
        assert_eq!(rt.state()["count"], 3);
        // Replay makes the same calls and comes to the same state.
        let mut fresh = actor(&host, "counter-v2", audit_every(audit));
        let report = replay(&mut fresh, rt.chain()).await.unwrap();
        assert_eq!(report.state.value(), rt.state());
    }
}

/// A counter built for 0.1.4 (the golden chains' build) has no `handle-verified`: it still
/// runs, with `handle` and `verify` as two calls, and counts as today's build does.
#[tokio::test]
async fn a_component_built_before_handle_verified_runs_with_two_calls() {
    let host = host();
    let old = host
        .load_file(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../theater/tests/golden/v2/counter.wasm"),
        )
        .unwrap();
    assert_eq!(old.world(), "actor");
    assert!(!old.handles_verified());
    let new = host.load_file(example_component("counter")).unwrap();
    assert!(new.handles_verified());
    let mut states = Vec::new();
    for component in [&old, &new] {
        let chain: Box<dyn ChainStore> = Box::new(MemoryStore::new(id("counter")));
        let mut rt = ActorRuntime::start(
            host.actor(component, &id("counter"), Value::Null, audit_every(1)),
            chain,
            RuntimeConfig::default(),
        )
        .await
        .unwrap();
        for n in [1, 2, -4, 10] {
            rt.handle(ActorInput::request(json!({"add": n})), vec![])
                .await
                .unwrap()
                .result
                .unwrap();
        }
        states.push((rt.state().clone(), rt.state_hash()));
    }
    assert_eq!(states[0], states[1]);
    assert_eq!(states[0].0["count"], 9);
}
