//! Effects and references: work deferred until an entry is durable, and links to other chains.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serde_json::{Value, json};
use theater_chain::{ChainRef, ChainStore, Hash, MemoryStore};
use theater_core::{
    Actor, ActorConfig, ActorError, ActorInput, ActorOutput, HostCalls, replay, spawn,
};
use theater_test_support::id;

type Log = Arc<Mutex<Vec<(ChainRef, Value)>>>;

/// `{"notify": v}` registers an effect logging `v` with its entry; `{"fail": true}` registers
/// one and then fails; `{"refer": seq}` refers to entry `seq` of chain "other".
#[derive(Clone, Default)]
struct Notifier {
    log: Log,
}

#[async_trait]
impl Actor for Notifier {
    async fn init(&mut self, host: &mut HostCalls) -> Result<Value, ActorError> {
        let log = Arc::clone(&self.log);
        host.after_commit(move |at| async move {
            log.lock().unwrap().push((at, json!("init")));
        });
        Ok(json!(0))
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let p = input.payload().cloned().unwrap_or_default();
        let log = Arc::clone(&self.log);
        let v = p["notify"].clone();
        host.after_commit(move |at| async move {
            log.lock().unwrap().push((at, v));
        });
        if p["fail"] == json!(true) {
            return Err(ActorError::Failed("asked to fail".into()));
        }
        if let Some(seq) = p["refer"].as_u64() {
            host.refer(ChainRef {
                chain: id("other"),
                seq,
                hash: Hash::digest(b"other"),
            });
        }
        let n = state.as_i64().unwrap_or(0) + 1;
        Ok((ActorOutput::None, json!(n)))
    }
}

fn request(v: Value) -> ActorInput {
    ActorInput::request(v)
}

#[tokio::test]
async fn effects_run_after_commit_in_order_with_their_entry_and_never_for_failures() {
    let notifier = Notifier::default();
    let log = Arc::clone(&notifier.log);
    let actor = spawn(
        move || notifier.clone(),
        Box::new(MemoryStore::new(id("n"))),
        ActorConfig::default(),
    )
    .await
    .unwrap();
    let mut outcomes = Vec::new();
    for i in 0..5 {
        outcomes.push(actor.call(request(json!({"notify": i}))).await.unwrap());
    }
    assert!(
        actor
            .call(request(json!({"notify": "x", "fail": true})))
            .await
            .is_err()
    );
    actor.stop().await.unwrap();
    // Effects run on their own task: wait (bounded) for the last one.
    for _ in 0..100 {
        if log.lock().unwrap().len() >= 6 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let log = log.lock().unwrap().clone();
    let values: Vec<Value> = log.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        values,
        [
            json!("init"),
            json!(0),
            json!(1),
            json!(2),
            json!(3),
            json!(4)
        ]
    );
    assert_eq!(log[0].0.seq, 0);
    for (i, outcome) in outcomes.iter().enumerate() {
        let (at, _) = &log[i + 1];
        assert_eq!(
            (at.chain.as_str(), at.seq, at.hash),
            ("n", outcome.seq, outcome.hash)
        );
    }
}

#[tokio::test]
async fn refs_from_host_calls_are_recorded_and_replay_runs_no_effects() {
    let notifier = Notifier::default();
    let mut rt = theater_core::ActorRuntime::start(
        notifier.clone(),
        Box::new(MemoryStore::new(id("r"))) as Box<dyn ChainStore>,
        theater_core::RuntimeConfig::default(),
    )
    .await
    .unwrap();
    let h = rt
        .handle(request(json!({"refer": 7})), vec![])
        .await
        .unwrap();
    let refs = rt.chain().get(h.seq).unwrap().refs().to_vec();
    assert_eq!(refs.len(), 1);
    assert_eq!((refs[0].chain.as_str(), refs[0].seq), ("other", 7));
    assert_eq!(rt.take_effects().len(), 2, "init's and the input's");

    let fresh = Notifier::default();
    let mut replayer = fresh.clone();
    replay(&mut replayer, rt.chain()).await.unwrap();
    assert!(fresh.log.lock().unwrap().is_empty());
}

/// Each input registers an effect logging its payload's `n`; `{"n": .., "wait": true}`'s
/// effect first waits for the gate to open, and `{"n": .., "panic": true}`'s panics.
#[derive(Clone)]
struct Gated {
    log: Arc<Mutex<Vec<u64>>>,
    gate: Arc<tokio::sync::Semaphore>,
}

#[async_trait]
impl Actor for Gated {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        Ok(json!(0))
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let p = input.payload().cloned().unwrap_or_default();
        let (log, gate) = (Arc::clone(&self.log), Arc::clone(&self.gate));
        let n = p["n"].as_u64().unwrap_or(0);
        // Quick: the actor's loop polls each one once itself when nothing waits before it.
        host.after_commit_quick(move |_| async move {
            if p["wait"] == json!(true) {
                let _ = gate.acquire().await;
            }
            if p["panic"] == json!(true) {
                panic!("an effect that panics");
            }
            log.lock().unwrap().push(n);
        });
        Ok((ActorOutput::None, json!(state.as_u64().unwrap_or(0) + 1)))
    }
}

#[tokio::test]
async fn an_effect_that_waits_holds_back_the_later_ones_and_one_that_panics_stops_none() {
    let actor = Gated {
        log: Arc::default(),
        gate: Arc::new(tokio::sync::Semaphore::new(0)),
    };
    let (log, gate) = (Arc::clone(&actor.log), Arc::clone(&actor.gate));
    let handle = spawn(
        move || actor.clone(),
        Box::new(MemoryStore::new(id("g"))),
        ActorConfig::default(),
    )
    .await
    .unwrap();
    // Effects that finish at once run in order; the one that waits holds back those after it
    // (they are ready at once, and would otherwise overtake it); a panic is logged and skipped,
    // on the actor's loop (1) or on the task, queued behind the one that waits (4).
    let inputs = [
        json!({"n": 0}),
        json!({"n": 1, "panic": true}),
        json!({"n": 2}),
        json!({"n": 3, "wait": true}),
        json!({"n": 4, "panic": true}),
        json!({"n": 5}),
    ];
    for p in inputs {
        handle.call(request(p)).await.unwrap();
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        *log.lock().unwrap(),
        [0, 2],
        "nothing overtakes the effect that waits"
    );
    gate.add_permits(1);
    // Bounded waits, generous for a loaded machine; they end as soon as the effects ran.
    for _ in 0..2000 {
        if log.lock().unwrap().len() >= 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(*log.lock().unwrap(), [0, 2, 3, 5]);
    // Once the queue is empty, effects run at once again, and in order.
    handle.call(request(json!({"n": 6}))).await.unwrap();
    for _ in 0..2000 {
        if log.lock().unwrap().len() >= 5 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(*log.lock().unwrap(), [0, 2, 3, 5, 6]);
    handle.stop().await.unwrap();
}
