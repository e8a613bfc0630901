//! Real components: state changes, bit-for-bit replay, traps.

use serde_json::json;
use theater_chain::{ChainStore, Durability, Event, FileStore};
use theater_core::{ActorConfig, ActorError, ActorInput, ActorOutput, replay, spawn};
use theater_test_support::{add, example_component, id};
use theater_wasm::Limits;

use crate::support::{actor, host, runtime};

#[tokio::test]
async fn the_counter_counts_and_replays_bit_for_bit() {
    let host = host();
    let mut rt = runtime(&host, "counter", Limits::default()).await;
    assert_eq!(rt.state(), &json!({"count": 0}));
    for n in [5, -2, 10] {
        rt.handle(add(n), vec![]).await.unwrap().result.unwrap();
    }
    let got = rt
        .handle(ActorInput::request(json!({"get": true})), vec![])
        .await
        .unwrap();
    assert_eq!(got.result.unwrap(), ActorOutput::reply(json!(13)));
    let bad = rt
        .handle(ActorInput::request(json!({"sub": 1})), vec![])
        .await
        .unwrap();
    assert!(matches!(bad.result, Err(ActorError::Failed(ref m)) if m.contains("expected")));
    assert_eq!(rt.state(), &json!({"count": 13}));
    rt.chain().verify().unwrap();
    // A fresh instance of the same component, fed the chain, reproduces every hash.
    let report = replay(&mut actor(&host, "counter", Limits::default()), rt.chain())
        .await
        .unwrap();
    assert_eq!(report.state_hash, rt.state_hash());
    assert_eq!(report.entries, 6);
}

#[tokio::test]
async fn clock_and_randomness_are_recorded_and_replayed() {
    let host = host();
    let mut rt = runtime(&host, "dice", Limits::default()).await;
    let mut rolls = Vec::new();
    for _ in 0..10 {
        let out = rt
            .handle(ActorInput::request(json!("roll")), vec![])
            .await
            .unwrap();
        rolls.push(out.result.unwrap());
    }
    let e = rt.chain().get(1).unwrap();
    let names: Vec<&str> = e.host_calls().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["theater:clock/now", "theater:random/bytes"]);
    assert_eq!(
        rt.chain().get(0).unwrap().host_calls().len(),
        1,
        "init read the clock"
    );
    let report = replay(&mut actor(&host, "dice", Limits::default()), rt.chain())
        .await
        .unwrap();
    assert_eq!(&report.state, rt.state());
    assert_eq!(report.state_hash, rt.state_hash());
}

#[tokio::test]
async fn a_trap_is_a_recorded_failure_and_the_actor_goes_on() {
    let host = host();
    let mut rt = runtime(&host, "fragile", Limits::default()).await;
    rt.handle(add(2), vec![]).await.unwrap().result.unwrap();
    let before = rt.state_hash();
    let trapped = rt
        .handle(ActorInput::request(json!("not a number")), vec![])
        .await
        .unwrap();
    match &trapped.result {
        Err(ActorError::Trap(m)) => {
            assert!(
                m.contains("fragile only understands"),
                "the guest's panic message is kept: {m}"
            );
        }
        other => panic!("expected a trap, got {other:?}"),
    }
    assert_eq!(rt.state_hash(), before);
    let entry = rt.chain().get(trapped.seq).unwrap();
    assert!(matches!(entry.event(), Event::Failed { error, .. } if error.starts_with("trap:")));
    // A fresh instance serves the next input.
    rt.handle(add(3), vec![]).await.unwrap().result.unwrap();
    assert_eq!(rt.state(), &json!({"count": 5}));
    // And replay re-runs the trap and agrees.
    let report = replay(&mut actor(&host, "fragile", Limits::default()), rt.chain())
        .await
        .unwrap();
    assert_eq!(report.state_hash, rt.state_hash());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_wasm_actor_resumes_from_its_durable_chain() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    let component = host.load_file(example_component("counter")).unwrap();
    let make = {
        let (host, component) = (host.clone(), component.clone());
        move || {
            host.actor(
                &component,
                &id("counter"),
                json!({"count": 100}),
                Limits::default(),
            )
        }
    };
    let open = || {
        Box::new(
            FileStore::open_or_create(
                dir.path(),
                id("counter"),
                Durability::Group { max_batch: 16 },
            )
            .unwrap(),
        ) as Box<dyn ChainStore>
    };
    let counter = spawn(make.clone(), open(), ActorConfig::default())
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let h = counter.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..25 {
                h.call(add(1)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    counter.stop().await.unwrap();
    drop(counter);
    let counter = spawn(make, open(), ActorConfig::default()).await.unwrap();
    assert_eq!(counter.state().await.unwrap().0, json!({"count": 200}));
}
