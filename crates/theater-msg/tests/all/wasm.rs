//! Messaging between real wasm components (the `pingpong`, `account` and `hog` examples),
//! and between wasm and native actors.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use theater_chain::{ChainStore, Durability, Event, FileStore, MemoryStore, NewEntry, Payload};
use theater_core::{ActorConfig, ActorHandle, ActorInput, ActorOutput, CallError, replay, spawn};
use theater_msg::{Messenger, Msg, MsgGrant, Registry, pending_sends, verify_links};
use theater_test_support::{example_component, id};
use theater_wasm::{Capabilities, Limits, WasmActor, WasmConfig, WasmHost};

use crate::relay::{Relay, dyns, stored_chains, wait_received};

/// One host: a wasm engine, a registry, and a directory for the chains.
struct Stage {
    host: WasmHost,
    registry: Registry,
    dir: PathBuf,
}

impl Stage {
    fn new(dir: &Path) -> Self {
        Stage {
            host: WasmHost::new(
                WasmConfig::default()
                    .pooling(Some(64))
                    .capabilities(Capabilities::new().with(Msg::new(Registry::new()))),
            )
            .unwrap(),
            registry: Registry::new(),
            dir: dir.to_path_buf(),
        }
    }

    /// A fresh actor of `example` named `name`, sending through `messenger`.
    fn actor(
        &self,
        example: &str,
        name: &str,
        init: Value,
        limits: Limits,
        messenger: Messenger,
    ) -> WasmActor {
        let component = self.host.load_file(example_component(example)).unwrap();
        self.host
            .actor(&component, &id(name), init, limits)
            .with_grant(
                "msg",
                Arc::new(MsgGrant {
                    outbox: Arc::new(messenger),
                }),
            )
    }

    /// Spawns and registers `name` running `example`, its chain under the stage's directory
    /// (resumed if it exists).
    async fn spawn(
        &self,
        example: &str,
        name: &str,
        init: Value,
        limits: Limits,
        config: ActorConfig,
        durability: Durability,
    ) -> ActorHandle {
        let messenger = self.registry.messenger(id(name));
        let actor = {
            let component = self.host.load_file(example_component(example)).unwrap();
            let host = self.host.clone();
            let name = id(name);
            move || {
                host.actor(&component, &name, init.clone(), limits)
                    .with_grant(
                        "msg",
                        Arc::new(MsgGrant {
                            outbox: Arc::new(messenger.clone()),
                        }),
                    )
            }
        };
        let chain: Box<dyn ChainStore> =
            Box::new(FileStore::open_or_create(self.dir.join(name), id(name), durability).unwrap());
        let handle = spawn(actor, chain, config).await.unwrap();
        self.registry.register(handle.clone()).unwrap();
        handle
    }

    async fn pingpongs(&self, names: &[&str]) -> Vec<ActorHandle> {
        let mut handles = Vec::new();
        for name in names {
            handles.push(
                self.spawn(
                    "pingpong",
                    name,
                    Value::Null,
                    Limits::default(),
                    ActorConfig::default(),
                    Durability::None,
                )
                .await,
            );
        }
        handles
    }
}

async fn ask(handle: &ActorHandle, request: Value) -> Result<Value, CallError> {
    handle
        .call(ActorInput::request(request))
        .await
        .map(|o| match o.output {
            ActorOutput::Reply { payload } => payload,
            other => panic!("expected a reply, got {other:?}"),
        })
}

/// Replays each chain alone, in a fresh instance connected to no other actor, and returns
/// the final states.
async fn replay_alone(stage: &Stage, example: &str, chains: &[FileStore]) -> Vec<Value> {
    let mut states = Vec::new();
    for c in chains {
        let mut actor = stage.actor(
            example,
            c.id().as_str(),
            Value::Null,
            Limits::default(),
            Messenger::detached(c.id().clone()),
        );
        states.push(replay(&mut actor, c).await.unwrap().state.into_value());
    }
    states
}

/// A small deterministic generator, so a failing run can be repeated.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_actors_message_in_a_ring_and_at_random_and_every_link_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let stage = Stage::new(dir.path());
    let names = ["p0", "p1", "p2", "p3", "p4"];
    let handles = stage.pingpongs(&names).await;

    // Ping-pong: 40 balls between p0 and p1.
    assert_eq!(
        ask(&handles[0], json!({"serve": "p1", "rounds": 40}))
            .await
            .unwrap(),
        json!({"served": "p1"})
    );
    let mut expected = 40;
    // Two tokens three times round the ring.
    let ring: Vec<&str> = names.iter().cycle().skip(2).take(14).copied().collect();
    for tag in 0..2 {
        let message = json!({"route": ring, "tag": tag});
        ask(&handles[0], json!({"send": "p1", "message": message}))
            .await
            .unwrap();
        expected += 1 + ring.len() as u64;
    }
    // Random walks, started from random actors.
    let mut rng = Lcg(7);
    for tag in 2..10 {
        let len = 1 + rng.below(12);
        let route: Vec<&str> = (0..len)
            .map(|_| names[rng.below(names.len() as u64) as usize])
            .collect();
        let from = &handles[rng.below(names.len() as u64) as usize];
        let to = names[rng.below(names.len() as u64) as usize];
        ask(
            from,
            json!({"send": to, "message": {"route": route, "tag": tag}}),
        )
        .await
        .unwrap();
        expected += 1 + len;
    }
    assert_eq!(wait_received(&handles, expected).await, expected);
    let mut live_states = Vec::new();
    for h in &handles {
        live_states.push(h.state().await.unwrap().0);
    }
    let sent: u64 = live_states
        .iter()
        .map(|s| s["sent"].as_u64().unwrap())
        .sum();
    assert_eq!(sent, expected);

    let chains = stored_chains(dir.path(), &handles).await;
    for c in &chains {
        c.verify().unwrap();
    }
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
    assert_eq!(pending_sends(&dyns(&chains)).unwrap(), vec![]);
    // Every received message names its sender and the sending entry.
    for c in &chains {
        for seq in 0..c.len() {
            let e = c.get(seq).unwrap();
            if let Event::Input { input, .. } = e.event()
                && input.json["type"] == "message"
            {
                assert_eq!(e.refs().len(), 1);
                assert_eq!(
                    input.json["from"].as_str(),
                    Some(e.refs()[0].chain.as_str())
                );
            }
        }
    }
    // Each chain replays alone, bit for bit, to the state the live actor had.
    assert_eq!(replay_alone(&stage, "pingpong", &chains).await, live_states);
}

/// Rewrites `chain` with `change` applied to the input of the entries it picks, every hash
/// recomputed, so that the forgery verifies on its own. Returns it and the changed seqs.
fn forge(chain: &FileStore, mut change: impl FnMut(&mut Value) -> bool) -> (MemoryStore, Vec<u64>) {
    let mut forged = MemoryStore::new(chain.id().clone());
    let mut changed = Vec::new();
    for seq in 0..chain.len() {
        let entry = chain.get(seq).unwrap();
        let new = match entry.event() {
            Event::Input { input, output } => {
                let mut json = input.json.clone();
                if change(&mut json) {
                    changed.push(seq);
                }
                NewEntry::input(Payload::json(json), output.clone(), entry.state_hash())
                    .with_refs(entry.refs().to_vec())
                    .with_host_calls(entry.host_calls().to_vec())
            }
            Event::Read { input, output } => {
                let mut json = input.json.clone();
                if change(&mut json) {
                    changed.push(seq);
                }
                let event = Event::Read {
                    input: Payload::json(json),
                    output: *output,
                };
                NewEntry::from_event(event, entry.state_hash())
                    .with_refs(entry.refs().to_vec())
                    .with_host_calls(entry.host_calls().to_vec())
            }
            _ => NewEntry::from(entry),
        };
        let _ = forged.append(new).unwrap();
    }
    forged.verify().unwrap();
    (forged, changed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_or_doubled_message_in_a_rehashed_wasm_chain_is_caught_across_chains() {
    let dir = tempfile::tempdir().unwrap();
    let stage = Stage::new(dir.path());
    let handles = stage.pingpongs(&["a", "b"]).await;
    for n in 1..=3 {
        ask(&handles[0], json!({"send": "b", "message": {"n": n}}))
            .await
            .unwrap();
    }
    assert_eq!(wait_received(&handles, 3).await, 3);
    let chains = stored_chains(dir.path(), &handles).await;
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);

    // One payload changed: b's forged chain verifies alone; the link to a does not.
    let (forged, changed) = forge(&chains[1], |json| {
        let hit = json["payload"]["n"] == 2;
        if hit {
            json["payload"]["n"] = json!(20);
        }
        hit
    });
    assert_eq!(changed.len(), 1);
    let problems = verify_links(&[&chains[0], &forged]).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    let p = &problems[0];
    assert_eq!((p.chain.as_str(), p.seq), ("b", changed[0]));
    assert_eq!(p.other.as_str(), "a");
    assert!(p.to_string().contains("no such message"), "{p}");
    // The changed message now looks unreceived too.
    assert_eq!(pending_sends(&[&chains[0], &forged]).unwrap().len(), 1);

    // One message recorded twice (a replayed delivery), rehashed: caught as a double.
    let b = &chains[1];
    let mut doubled = MemoryStore::new(id("b"));
    let mut copied = None;
    for seq in 0..b.len() {
        let entry = b.get(seq).unwrap();
        let is_message =
            matches!(entry.event(), Event::Input { input, .. } if input.json["type"] == "message");
        let _ = doubled.append(NewEntry::from(entry.clone())).unwrap();
        if is_message && copied.is_none() {
            copied = Some(doubled.append(NewEntry::from(entry)).unwrap().seq);
        }
    }
    doubled.verify().unwrap();
    let problems = verify_links(&[&chains[0], &doubled]).unwrap();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].seq, copied.unwrap());
    assert!(
        problems[0].problem.contains("more times"),
        "{}",
        problems[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_requests_time_out_and_a_withdrawn_request_is_never_handled() {
    let dir = tempfile::tempdir().unwrap();
    let stage = Stage::new(dir.path());
    let asker = stage.pingpongs(&["asker"]).await.remove(0);
    let hog = stage
        .spawn(
            "hog",
            "hog",
            Value::Null,
            Limits {
                cpu: Duration::from_millis(400),
                ..Limits::default()
            },
            ActorConfig::default(),
            Durability::None,
        )
        .await;
    // Answered.
    let answer = ask(
        &asker,
        json!({"ask": "hog", "payload": {"add": 5}, "timeout_ms": 5000}),
    )
    .await
    .unwrap();
    assert_eq!(answer, json!({"answer": 5}));
    // The hog spins past the timeout: the asker's input fails, naming the wait.
    let err = ask(
        &asker,
        json!({"ask": "hog", "payload": {"spin": true}, "timeout_ms": 50}),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, CallError::Failed { error, .. } if error.contains("no reply from \"hog\" within 50ms")),
        "{err}"
    );
    // While it spins, a request that times out in its mailbox is withdrawn: never handled.
    hog.tell(ActorInput::request(json!({"spin": true})))
        .await
        .unwrap();
    let err = ask(
        &asker,
        json!({"ask": "hog", "payload": {"add": 100}, "timeout_ms": 50}),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CallError::Failed { .. }), "{err}");
    assert_eq!(ask(&hog, json!({"add": 0})).await.unwrap(), json!(5));

    let chains = stored_chains(dir.path(), &[asker, hog]).await;
    let hog_inputs: Vec<Value> = (0..chains[1].len())
        .filter_map(|s| match chains[1].get(s).unwrap().event() {
            Event::Input { input, .. } | Event::Failed { input, .. } => {
                Some(input.json["payload"].clone())
            }
            _ => None,
        })
        .collect();
    assert!(!hog_inputs.contains(&json!({"add": 100})), "{hog_inputs:?}");
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
    // The asker replays alone: answers and timeouts are in its chain.
    replay_alone(&stage, "pingpong", &chains[..1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_wasm_mailbox_pushes_back_without_losing_or_reordering_messages() {
    let dir = tempfile::tempdir().unwrap();
    let stage = Stage::new(dir.path());
    let fast = stage.pingpongs(&["fast"]).await.remove(0);
    let slow = stage
        .spawn(
            "pingpong",
            "slow",
            Value::Null,
            Limits::default(),
            ActorConfig::default().mailbox(2).max_batch(1),
            Durability::EveryEntry,
        )
        .await;
    for n in 0..150 {
        ask(&fast, json!({"send": "slow", "message": {"n": n}}))
            .await
            .unwrap();
    }
    let handles = [fast, slow];
    assert_eq!(wait_received(&handles, 150).await, 150);
    let chains = stored_chains(dir.path(), &handles).await;
    assert_eq!(received_ns(&chains[1]), (0..150).collect::<Vec<u64>>());
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
}

/// The `n` of every message `chain` recorded, in order.
fn received_ns(chain: &FileStore) -> Vec<u64> {
    (0..chain.len())
        .filter_map(|s| match chain.get(s).unwrap().event() {
            Event::Input { input, .. } if input.json["type"] == "message" => {
                input.json["payload"]["n"].as_u64()
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_host_restart_lost_messages_are_redelivered_once_each_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let slow = || ActorConfig::default().mailbox(4).max_batch(1);
    {
        // First host: the receiver goes away while messages are queued and in flight.
        let stage = Stage::new(dir.path());
        let a = stage.pingpongs(&["a"]).await.remove(0);
        let b = stage
            .spawn(
                "pingpong",
                "b",
                Value::Null,
                Limits::default(),
                slow(),
                Durability::EveryEntry,
            )
            .await;
        // Each message makes b work a few milliseconds: most are still queued at the stop.
        for n in 0..120 {
            ask(
                &a,
                json!({"send": "b", "message": {"n": n, "work": 3_000_000}}),
            )
            .await
            .unwrap();
        }
        b.stop().await.unwrap();
        a.stop().await.unwrap();
    }
    let chains: Vec<FileStore> = ["a", "b"]
        .iter()
        .map(|n| FileStore::open_read_only(dir.path().join(n)).unwrap())
        .collect();
    let got = received_ns(&chains[1]);
    let pending = pending_sends(&dyns(&chains)).unwrap();
    eprintln!("{} received, {} lost", got.len(), pending.len());
    assert!(!pending.is_empty(), "the test needs messages to be lost");
    assert_eq!(got.len() + pending.len(), 120);
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
    drop(chains);

    // Second host: the same chains, resumed; the lost messages are delivered again.
    let stage = Stage::new(dir.path());
    let a = stage.pingpongs(&["a"]).await.remove(0);
    let b = stage
        .spawn(
            "pingpong",
            "b",
            Value::Null,
            Limits::default(),
            slow(),
            Durability::EveryEntry,
        )
        .await;
    let before = b.state().await.unwrap().0["received"].as_u64().unwrap();
    assert_eq!(before, got.len() as u64);
    let report = stage.registry.redeliver(pending.clone()).await;
    assert_eq!(report.delivered, pending.len());
    assert_eq!(report.undelivered, vec![]);
    let handles = [a, b];
    assert_eq!(wait_received(&handles, 120).await, 120);
    // More traffic after the restart arrives after the redelivered messages.
    ask(&handles[0], json!({"send": "b", "message": {"n": 120}}))
        .await
        .unwrap();
    assert_eq!(wait_received(&handles, 121).await, 121);

    let chains = stored_chains(dir.path(), &handles).await;
    assert_eq!(received_ns(&chains[1]), (0..=120).collect::<Vec<u64>>());
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
    assert_eq!(pending_sends(&dyns(&chains)).unwrap(), vec![]);
    // Nothing left to redeliver: a second restart would deliver nothing twice.
    replay_alone(&stage, "pingpong", &chains).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_and_wasm_actors_talk_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let stage = Stage::new(dir.path());
    let wasm = stage.pingpongs(&["wasm"]).await.remove(0);
    let relay = Relay {
        messenger: stage.registry.messenger(id("native")),
        next: None,
    };
    let chain: Box<dyn ChainStore> = Box::new(
        FileStore::create(dir.path().join("native"), id("native"), Durability::None).unwrap(),
    );
    let native = spawn(move || relay.clone(), chain, ActorConfig::default())
        .await
        .unwrap();
    stage.registry.register(native.clone()).unwrap();

    // wasm asks native; native asks wasm; native serves a ball the wasm actor returns.
    assert_eq!(
        ask(&wasm, json!({"ask": "native", "payload": {"echo": 7}}))
            .await
            .unwrap(),
        json!({"answer": 7})
    );
    assert_eq!(
        ask(&native, json!({"ask": "wasm", "msg": {"echo": "hi"}}))
            .await
            .unwrap(),
        json!("hi")
    );
    ask(
        &native,
        json!({"send": "wasm", "msg": {"ball": 1, "rounds": 2}}),
    )
    .await
    .unwrap();
    let handles = [wasm, native];
    assert_eq!(wait_received(&handles, 2).await, 2);
    let chains = stored_chains(dir.path(), &handles).await;
    assert_eq!(verify_links(&dyns(&chains)).unwrap(), vec![]);
    assert_eq!(pending_sends(&dyns(&chains)).unwrap(), vec![]);
    // The ball the wasm actor returned names it as the sender.
    let last = chains[1].get(chains[1].len() - 1).unwrap();
    let Event::Input { input, .. } = last.event() else {
        panic!("expected the returned ball")
    };
    assert_eq!(input.json["from"], json!("wasm"));
    assert_eq!(input.json["payload"], json!({"ball": 2, "rounds": 2}));
}

/// The verifier of the account example, over the accounts' chains alone: each chain verifies
/// and replays bit for bit; every credit is a debit sent by another account, received once;
/// nothing is in flight; and the final balances add up to the initial ones (which each
/// chain's init entry records). Returns the final balances.
async fn audit(stage: &Stage, stores: &[&dyn ChainStore]) -> Result<Vec<i64>, String> {
    for c in stores {
        c.verify().map_err(|e| e.to_string())?;
    }
    let problems = verify_links(stores).map_err(|e| e.to_string())?;
    if let Some(p) = problems.first() {
        return Err(format!("link: {p}"));
    }
    let pending = pending_sends(stores).map_err(|e| e.to_string())?;
    if !pending.is_empty() {
        return Err(format!("{} credits in flight", pending.len()));
    }
    let (mut initial, mut balances) = (0, Vec::new());
    for c in stores {
        let init = c.get(0).map_err(|e| e.to_string())?;
        let Event::Init { params, .. } = init.event() else {
            return Err(format!("{} does not start with its init entry", c.id()));
        };
        initial += params.json["balance"]
            .as_i64()
            .ok_or("no initial balance")?;
        // An account's init parameters are its initial state.
        let mut actor = stage.actor(
            "account",
            c.id().as_str(),
            params.json.clone(),
            Limits::default(),
            Messenger::detached(c.id().clone()),
        );
        let report = replay(&mut actor, *c).await.map_err(|e| e.to_string())?;
        balances.push(
            report.state.value()["balance"]
                .as_i64()
                .ok_or("no balance")?,
        );
    }
    let total: i64 = balances.iter().sum();
    if total != initial {
        return Err(format!("balances add up to {total}, not {initial}"));
    }
    Ok(balances)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_between_wasm_accounts_conserve_money_across_both_chains() {
    let dir = tempfile::tempdir().unwrap();
    let stage = Stage::new(dir.path());
    let mut accounts = Vec::new();
    for name in ["alice", "bob"] {
        accounts.push(
            stage
                .spawn(
                    "account",
                    name,
                    json!({"balance": 1000}),
                    Limits::default(),
                    ActorConfig::default(),
                    Durability::Group { max_batch: 16 },
                )
                .await,
        );
    }
    // Both accounts transfer to each other at once; some transfers overdraw and fail.
    let mut tasks = Vec::new();
    for (i, from) in accounts.iter().enumerate() {
        let from = from.clone();
        let to = ["bob", "alice"][i];
        tasks.push(tokio::spawn(async move {
            let mut rng = Lcg(i as u64 + 1);
            let mut refused = 0;
            for _ in 0..80 {
                let amount = 1 + rng.below(400);
                let t = json!({"transfer": {"to": to, "amount": amount}});
                if ask(&from, t).await.is_err() {
                    refused += 1;
                }
            }
            refused
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Unknown targets and overdrafts change nothing.
    let err = ask(
        &accounts[0],
        json!({"transfer": {"to": "nobody", "amount": 1}}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("no actor named"), "{err}");
    let err = ask(
        &accounts[0],
        json!({"transfer": {"to": "bob", "amount": 1_000_000}}),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("insufficient funds"), "{err}");
    // Wait for the credits in flight to land.
    let mut total = 0;
    for _ in 0..500 {
        total = 0;
        for a in &accounts {
            total += ask(a, json!({"balance": true}))
                .await
                .unwrap()
                .as_i64()
                .unwrap();
        }
        if total == 2000 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(total, 2000);
    let chains = stored_chains(dir.path(), &accounts).await;
    let credits = (0..chains[1].len())
        .filter(|&s| {
            matches!(chains[1].get(s).unwrap().event(),
                Event::Input { input, .. } if input.json["payload"].get("credit").is_some())
        })
        .count();
    assert!(credits > 10, "only {credits} credits reached bob");
    let balances = audit(&stage, &[&chains[0], &chains[1]]).await.unwrap();
    assert_eq!(balances.iter().sum::<i64>(), 2000);

    // A credit inflated in bob's chain, rehashed so the chain verifies alone: the audit fails.
    let mut first = true;
    let (forged, changed) = forge(&chains[1], |json| {
        let hit = first && json["payload"].get("credit").is_some();
        if hit {
            json["payload"]["credit"] = json!(999_999);
            first = false;
        }
        hit
    });
    assert_eq!(changed.len(), 1);
    let err = audit(&stage, &[&chains[0], &forged]).await.unwrap_err();
    // Caught by a link: the changed credit matches no debit, and every later entry of bob's
    // has a new hash, which alice's references to them no longer name.
    assert!(err.starts_with("link: ") && err.contains("bob"), "{err}");
}

#[tokio::test]
async fn messaging_that_was_not_granted_is_an_error_to_the_guest() {
    let dir = tempfile::tempdir().unwrap();
    let stage = Stage::new(dir.path());
    let component = stage.host.load_file(example_component("pingpong")).unwrap();
    let actor = stage
        .host
        .actor(&component, &id("pingpong"), Value::Null, Limits::default());
    let chain: Box<dyn ChainStore> = Box::new(theater_chain::MemoryStore::new(id("pingpong")));
    let mut rt =
        theater_core::ActorRuntime::start(actor, chain, theater_core::RuntimeConfig::default())
            .await
            .unwrap();
    let h = rt
        .handle(
            ActorInput::request(json!({"send": "anyone", "message": 1})),
            vec![],
        )
        .await
        .unwrap();
    let err = h.result.unwrap_err().to_string();
    assert!(err.contains("messaging is not granted"), "{err}");
    // Nothing was recorded as sent, and the state did not change.
    let entry = rt.chain().get(h.seq).unwrap();
    assert!(entry.host_calls().is_empty());
    assert_eq!(rt.state()["sent"], json!(0));
}
