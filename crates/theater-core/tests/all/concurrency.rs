//! Many actors, many interfaces per actor, backpressure, and observers that cannot slow an actor.

use std::time::Duration;

use serde_json::json;
use theater_chain::{ChainStore, MemoryStore};
use theater_core::{ActorConfig, ActorEvent, ActorInput, CallError, RecvError, spawn};
use theater_test_support::{Counter, Sleepy, add, id};

fn mem(name: &str) -> Box<dyn ChainStore> {
    Box::new(MemoryStore::new(id(name)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_actors_on_one_runtime() {
    let mut handles = Vec::new();
    for i in 0..200 {
        handles.push(
            spawn(|| Counter, mem(&format!("a{i}")), ActorConfig::default())
                .await
                .unwrap(),
        );
    }
    let mut tasks = Vec::new();
    for (i, h) in handles.iter().enumerate() {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                h.call(add(i as i64)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for (i, h) in handles.iter().enumerate() {
        let (state, head) = h.state().await.unwrap();
        assert_eq!(state, json!({"count": 10 * i}));
        assert_eq!(head.unwrap().seq, 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_interfaces_serve_one_actor() {
    let actor = spawn(|| Counter, mem("shared"), ActorConfig::default().mailbox(4))
        .await
        .unwrap();
    // Four "interfaces", each with its own clone of the handle, all at once.
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let h = actor.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..100 {
                seqs.push(h.call(add(1)).await.unwrap().seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        // Each sender's inputs are handled in the order it sent them.
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=400).collect::<Vec<u64>>());
    assert_eq!(actor.state().await.unwrap().0, json!({"count": 400}));
}

#[tokio::test(start_paused = true)]
async fn a_full_mailbox_pushes_back_without_losing_inputs() {
    let actor = spawn(
        || Sleepy,
        mem("slow"),
        ActorConfig::default().mailbox(2).max_batch(1),
    )
    .await
    .unwrap();
    let slow = || ActorInput::message(json!({"sleep_ms": 100}));
    // One input in hand, two in the mailbox: the next one does not fit.
    actor.tell(slow()).await.unwrap();
    tokio::task::yield_now().await;
    actor.tell(slow()).await.unwrap();
    actor.tell(slow()).await.unwrap();
    assert!(matches!(
        actor.try_tell(slow()),
        Err(CallError::Full { .. })
    ));
    // `tell` waits for room instead, then every input is handled.
    let waiting = tokio::spawn({
        let a = actor.clone();
        async move { a.tell(ActorInput::message(json!({"sleep_ms": 1}))).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        !waiting.is_finished(),
        "tell must wait while the mailbox is full"
    );
    waiting.await.unwrap().unwrap();
    let (state, _) = actor.state().await.unwrap();
    assert_eq!(state, json!({"count": 4}));
}

#[tokio::test]
async fn a_slow_subscriber_does_not_slow_the_actor() {
    let actor = spawn(
        || Counter,
        mem("observed"),
        ActorConfig::default().events(8),
    )
    .await
    .unwrap();
    let mut idle = actor.subscribe();
    let mut live = actor.subscribe();
    // The idle subscriber never reads while 100 inputs go through.
    for _ in 0..100 {
        actor.call(add(1)).await.unwrap();
        let ev = live.recv().await.unwrap();
        assert!(matches!(ev, ActorEvent::Entry { failed: None, .. }));
    }
    assert_eq!(actor.state().await.unwrap().0, json!({"count": 100}));
    match idle.recv().await {
        Err(RecvError::Lagged { missed }) => assert_eq!(missed, 92),
        other => panic!("expected lag, got {other:?}"),
    }
    // After the lag notice it continues with what is still kept.
    assert!(matches!(
        idle.recv().await,
        Ok(ActorEvent::Entry { seq: 93, .. })
    ));
}

#[tokio::test]
async fn stop_is_clean_and_later_calls_are_refused() {
    let actor = spawn(|| Counter, mem("stop"), ActorConfig::default())
        .await
        .unwrap();
    let mut events = actor.subscribe();
    actor.call(add(1)).await.unwrap();
    actor.stop().await.unwrap();
    assert_eq!(
        actor.wait_stopped().await,
        theater_core::ActorStatus::Stopped
    );
    assert!(matches!(
        actor.call(add(1)).await,
        Err(CallError::Stopped { reason: None, .. })
    ));
    assert!(matches!(
        events.recv().await,
        Ok(ActorEvent::Entry { seq: 1, .. })
    ));
    assert_eq!(events.recv().await, Ok(ActorEvent::Stopped));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivation_handles_every_accepted_input_then_snapshots_and_stops() {
    use theater_chain::{Durability, FileStore};
    let dir = tempfile::tempdir().unwrap();
    let open = || {
        Box::new(
            FileStore::open_or_create(
                dir.path(),
                id("passive"),
                Durability::Group { max_batch: 8 },
            )
            .unwrap(),
        )
    };
    let actor = spawn(|| Counter, open(), ActorConfig::default().mailbox(4))
        .await
        .unwrap();
    // Senders keep telling while the actor is passivated under them: every tell that was
    // accepted is handled and recorded, every other one is refused as `Stopped`.
    let mut senders = Vec::new();
    for _ in 0..4 {
        let a = actor.clone();
        senders.push(tokio::spawn(async move {
            let mut accepted = 0u64;
            loop {
                match a.tell(add(1)).await {
                    Ok(()) => accepted += 1,
                    Err(CallError::Stopped { reason: None, .. }) => return accepted,
                    Err(e) => panic!("unexpected {e}"),
                }
                tokio::task::yield_now().await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    actor.passivate().await.unwrap();
    let mut accepted = 0;
    for s in senders {
        accepted += s.await.unwrap();
    }
    assert!(accepted > 0);
    assert_eq!(actor.status(), theater_core::ActorStatus::Stopped);
    let chain = FileStore::open_read_only(dir.path()).unwrap();
    assert_eq!(
        chain.len(),
        accepted + 1,
        "an accepted input was lost or doubled"
    );
    let snapshot = chain
        .latest_snapshot()
        .unwrap()
        .expect("a snapshot at the head");
    assert_eq!(snapshot.seq, accepted);
    assert_eq!(snapshot.state, json!({"count": accepted}));
    drop(chain);
    // Activated again, it goes on from the snapshot.
    let again = spawn(|| Counter, open(), ActorConfig::default())
        .await
        .unwrap();
    assert_eq!(again.state().await.unwrap().0, json!({"count": accepted}));
    again.stop().await.unwrap();
}

#[tokio::test]
async fn reading_the_state_is_not_activity() {
    let actor = spawn(|| Counter, mem("idle"), ActorConfig::default())
        .await
        .unwrap();
    actor.call(add(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    actor.state().await.unwrap();
    let idle = actor.idle_for();
    assert!(idle >= Duration::from_millis(30), "{idle:?}");
    actor.call(add(1)).await.unwrap();
    assert!(actor.idle_for() < idle);
}
