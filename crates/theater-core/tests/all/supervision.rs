//! Supervision: crashes restart the actor from its chain; too many give up, visibly.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use theater_chain::{ChainStore, MemoryStore};
use theater_core::{
    ActorConfig, ActorEvent, ActorInput, ActorStatus, CallError, RestartPolicy, spawn,
};
use theater_test_support::{Crashy, add, id};

fn panic_input() -> ActorInput {
    ActorInput::request(json!({"panic": true}))
}

fn mem() -> Box<dyn ChainStore> {
    Box::new(MemoryStore::new(id("crashy")))
}

#[tokio::test(start_paused = true)]
async fn a_crash_restarts_from_the_chain_with_state_intact() {
    let proto = Crashy::default();
    let factory = {
        let p = proto.clone();
        move || p.make()
    };
    let actor = spawn(factory, mem(), ActorConfig::default()).await.unwrap();
    let mut events = actor.subscribe();
    actor.call(add(5)).await.unwrap();
    let err = actor.call(panic_input()).await.unwrap_err();
    assert!(
        matches!(&err, CallError::Crashed { reason, .. } if reason.contains("asked to panic")),
        "{err}"
    );
    // The next call waits for the restart, then sees the state rebuilt from the chain.
    let out = actor.call(add(1)).await.unwrap();
    assert_eq!(out.seq, 2, "the crashing input was never recorded");
    assert_eq!(actor.state().await.unwrap().0, json!({"count": 6}));
    assert_eq!(proto.created.load(Ordering::SeqCst), 2);
    assert!(matches!(
        events.recv().await,
        Ok(ActorEvent::Entry { seq: 1, .. })
    ));
    assert!(matches!(
        events.recv().await,
        Ok(ActorEvent::Restarting { attempt: 1, .. })
    ));
    assert_eq!(
        events.recv().await,
        Ok(ActorEvent::Restarted { attempt: 1 })
    );
    // A fatal error from the actor is a crash too.
    let err = actor
        .call(ActorInput::request(json!({"fatal": true})))
        .await
        .unwrap_err();
    assert!(matches!(err, CallError::Crashed { .. }));
    assert_eq!(actor.call(add(1)).await.unwrap().seq, 3);
}

#[tokio::test(start_paused = true)]
async fn too_many_crashes_give_up_and_say_why() {
    let policy = RestartPolicy::default()
        .limit(3, Duration::from_secs(60))
        .backoff(Duration::from_millis(100), Duration::from_millis(250));
    let actor = spawn(
        Crashy::default,
        mem(),
        ActorConfig::default().restart(policy),
    )
    .await
    .unwrap();
    let mut events = actor.subscribe();
    for _ in 0..4 {
        let err = actor.call(panic_input()).await.unwrap_err();
        assert!(matches!(
            err,
            CallError::Crashed { .. } | CallError::Stopped { .. }
        ));
    }
    let status = actor.wait_stopped().await;
    let ActorStatus::Failed { reason } = status else {
        panic!("expected the supervisor to give up, got {status:?}");
    };
    assert!(
        reason.contains("gave up after 3 restarts") && reason.contains("asked to panic"),
        "{reason}"
    );
    let mut delays = Vec::new();
    loop {
        match events.recv().await.unwrap() {
            ActorEvent::Restarting { delay, .. } => delays.push(delay),
            ActorEvent::GaveUp { reason: r } => {
                assert_eq!(r, reason);
                break;
            }
            _ => {}
        }
    }
    // Exponential backoff, capped.
    assert_eq!(delays, [100, 200, 250].map(Duration::from_millis).to_vec());
    match actor.call(add(1)).await {
        Err(CallError::Stopped {
            reason: Some(r), ..
        }) => assert_eq!(r, reason),
        other => panic!("expected a stopped error with the reason, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn crashes_outside_the_window_do_not_count() {
    let policy = RestartPolicy::default()
        .limit(1, Duration::from_secs(10))
        .backoff(Duration::from_millis(1), Duration::from_millis(1));
    let actor = spawn(
        Crashy::default,
        mem(),
        ActorConfig::default().restart(policy),
    )
    .await
    .unwrap();
    for _ in 0..3 {
        assert!(actor.call(panic_input()).await.is_err());
        assert_eq!(actor.call(add(1)).await.map(|_| ()), Ok(()));
        tokio::time::sleep(Duration::from_secs(11)).await;
    }
    assert_eq!(actor.status(), ActorStatus::Running);
}
