//! Timers with the ticker example: firings are recorded inputs, replay needs no timers, and
//! timers survive a restart of the host (firing late, once). On tokio's paused clock.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use theater_chain::{ChainStore, Durability, Event, FileStore};
use theater_core::{ActorConfig, ActorHandle, ActorInput, ActorOutput, replay, spawn};
use theater_test_support::id;
use theater_timers::{Scheduled, TimerGrant, Timers, TokioClock, pending_timers};
use theater_wasm::{Capabilities, Limits, WasmActor, WasmConfig, WasmHost};

fn host() -> WasmHost {
    WasmHost::new(
        WasmConfig::default()
            .pooling(Some(64))
            .capabilities(Capabilities::new().with(Timers::system())),
    )
    .unwrap()
}

fn actor(host: &WasmHost, example: &str, limits: Limits) -> WasmActor {
    let component = host
        .load_file(theater_test_support::example_component(example))
        .unwrap();
    host.actor(&component, &id(example), Value::Null, limits)
}

async fn ask(h: &ActorHandle, v: Value) -> Value {
    match h.call(ActorInput::request(v)).await.unwrap().output {
        ActorOutput::Reply { payload } => payload,
        other => panic!("{other:?}"),
    }
}

async fn ticker(
    host: &WasmHost,
    chain: Box<dyn ChainStore>,
    base_ms: u64,
    pending: Vec<Scheduled>,
) -> ActorHandle {
    let grant = Arc::new(TimerGrant::new(
        Arc::new(TokioClock::starting_at(base_ms)),
        pending,
    ));
    let host = host.clone();
    let handle = spawn(
        {
            let grant = Arc::clone(&grant);
            move || actor(&host, "ticker", Limits::default()).with_grant("timers", grant.clone())
        },
        chain,
        ActorConfig::default(),
    )
    .await
    .unwrap();
    theater_wasm::Grant::start(&*grant, &handle);
    handle
}

fn timer_inputs(chain: &dyn ChainStore) -> Vec<(String, u64)> {
    (0..chain.len())
        .filter_map(|s| match chain.get(s).unwrap().event() {
            Event::Input { input, .. } if input.json["type"] == "timer" => Some((
                input.json["name"].as_str().unwrap().to_string(),
                input.json["due_ms"].as_u64().unwrap(),
            )),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn periodic_and_one_shot_timers_fire_as_recorded_inputs_and_replay() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    let chain = Box::new(FileStore::create(dir.path(), id("ticker"), Durability::None).unwrap());
    let t = ticker(&host, chain, 1_000_000, vec![]).await;
    let r = ask(&t, json!({"every_ms": 100})).await;
    assert_eq!(r["first_due_ms"], 1_000_100);
    ask(&t, json!({"remind": "tea", "in_ms": 250})).await;
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let s = ask(&t, json!({"get": true})).await;
    assert_eq!(s["runs"], 10);
    assert_eq!(s["last_due_ms"], 1_001_000);
    assert_eq!(s["reminded"], json!(["tea"]));
    assert_eq!(s["pending"], json!([]));
    // Cancelled: no more runs.
    ask(&t, json!({"stop": true})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(ask(&t, json!({"get": true})).await["runs"], 10);
    t.stop().await.unwrap();

    let chain = FileStore::open_read_only(dir.path()).unwrap();
    let fired = timer_inputs(&chain);
    assert_eq!(fired.len(), 11, "{fired:?}");
    assert!(fired.contains(&("reminder-0".into(), 1_000_250)));
    assert_eq!(pending_timers(&chain).unwrap(), vec![]);
    // Replay needs no timer service: sets and cancels come from the recording.
    let mut fresh = actor(&host, "ticker", Limits::default());
    let report = replay(&mut fresh, &chain).await.unwrap();
    assert_eq!(report.state["runs"], 10);
}

#[tokio::test(start_paused = true)]
async fn timers_survive_a_restart_and_fire_late_once() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    let open = || -> Box<dyn ChainStore> {
        Box::new(
            FileStore::open_or_create(dir.path(), id("ticker"), Durability::EveryEntry).unwrap(),
        )
    };
    let t = ticker(&host, open(), 1_000_000, vec![]).await;
    ask(&t, json!({"every_ms": 1000})).await;
    ask(&t, json!({"remind": "call back", "in_ms": 5000})).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(ask(&t, json!({"get": true})).await["runs"], 2);
    t.stop().await.unwrap();

    // The chain alone says what is still scheduled.
    let pending = pending_timers(&FileStore::open_read_only(dir.path()).unwrap()).unwrap();
    assert_eq!(
        pending,
        vec![
            Scheduled {
                name: "job".into(),
                due_ms: 1_003_000,
                every_ms: Some(1000)
            },
            Scheduled {
                name: "reminder-0".into(),
                due_ms: 1_005_000,
                every_ms: None
            },
        ]
    );
    // The host was down for 10 s: both are overdue when it comes back.
    let t = ticker(&host, open(), 1_012_500, pending).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    let s = ask(&t, json!({"get": true})).await;
    assert_eq!(
        s["runs"], 3,
        "the job fires once, late, not once per missed period"
    );
    assert_eq!(s["last_due_ms"], 1_003_000);
    assert_eq!(s["reminded"], json!(["call back"]));
    // Then it keeps its period from now.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let s = ask(&t, json!({"get": true})).await;
    assert_eq!(s["runs"], 4);
    assert_eq!(s["last_due_ms"], 1_013_000);
    t.stop().await.unwrap();
    let chain = FileStore::open_read_only(dir.path()).unwrap();
    chain.verify().unwrap();
    let mut fresh = actor(&host, "ticker", Limits::default());
    assert_eq!(replay(&mut fresh, &chain).await.unwrap().state["runs"], 4);
}

#[tokio::test]
async fn timers_that_were_not_granted_are_an_error_to_the_guest() {
    let host = host();
    let chain: Box<dyn ChainStore> = Box::new(theater_chain::MemoryStore::new(id("ticker")));
    let mut rt = theater_core::ActorRuntime::start(
        actor(&host, "ticker", Limits::default()),
        chain,
        theater_core::RuntimeConfig::default(),
    )
    .await
    .unwrap();
    for request in [json!({"every_ms": 10}), json!({"stop": true})] {
        let h = rt
            .handle(ActorInput::request(request), vec![])
            .await
            .unwrap();
        let err = h.result.unwrap_err().to_string();
        assert!(err.contains("timers are not granted"), "{err}");
    }
    // The refusal is recorded, so the chain replays as it ran.
    let mut fresh = actor(&host, "ticker", Limits::default());
    let report = replay(&mut fresh, rt.chain()).await.unwrap();
    assert_eq!(report.state, *rt.state());
    assert_eq!(report.entries, 3);
}

#[tokio::test(start_paused = true)]
async fn timers_set_before_a_pruned_chains_anchor_are_still_pending() {
    let host = host();
    let dir = tempfile::tempdir().unwrap();
    let grant = Arc::new(TimerGrant::new(
        Arc::new(TokioClock::starting_at(2_000_000)),
        vec![],
    ));
    let mut config = ActorConfig::default();
    config.runtime = theater_core::RuntimeConfig::default()
        .snapshot_every(Some(3))
        .snapshot_share(None)
        .prune_on_snapshot(true);
    let chain =
        Box::new(FileStore::create(dir.path(), id("ticker"), Durability::EveryEntry).unwrap());
    let h = {
        let host = host.clone();
        let grant = Arc::clone(&grant);
        spawn(
            move || actor(&host, "ticker", Limits::default()).with_grant("timers", grant.clone()),
            chain,
            config,
        )
        .await
        .unwrap()
    };
    theater_wasm::Grant::start(&*grant, &h);
    ask(&h, json!({"every_ms": 1000})).await;
    ask(&h, json!({"remind": "renew", "in_ms": 60_000})).await;
    tokio::time::sleep(Duration::from_millis(3500)).await; // three runs
    for _ in 0..8 {
        ask(&h, json!({"get": true})).await;
    }
    h.stop().await.unwrap();

    let chain = FileStore::open_read_only(dir.path()).unwrap();
    assert!(
        chain.start() > 3,
        "the entries that set the timers were pruned"
    );
    assert_eq!(
        pending_timers(&chain).unwrap(),
        vec![
            Scheduled {
                name: "job".into(),
                due_ms: 2_004_000,
                every_ms: Some(1000)
            },
            Scheduled {
                name: "reminder-0".into(),
                due_ms: 2_060_000,
                every_ms: None
            },
        ]
    );
}
