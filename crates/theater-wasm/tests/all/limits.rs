//! CPU and memory limits: a looping or memory-hungry actor is stopped with a clear error and
//! keeps its last good state.

use std::time::Duration;

use serde_json::json;
use theater_core::{ActorError, ActorInput};
use theater_test_support::add;
use theater_wasm::Limits;

use crate::support::{host, runtime};

#[tokio::test]
async fn an_infinite_loop_is_stopped_and_the_actor_answers_the_next_input() {
    let host = host();
    let limits = Limits {
        cpu: Duration::from_millis(200),
        ..Limits::default()
    };
    let mut rt = runtime(&host, "hog", limits).await;
    rt.handle(add(1), vec![]).await.unwrap().result.unwrap();
    let before = rt.state_hash();
    let spun = rt
        .handle(ActorInput::request(json!({"spin": true})), vec![])
        .await
        .unwrap();
    match spun.result {
        Err(ActorError::Timeout(m)) => assert!(m.contains("CPU limit"), "{m}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert_eq!(rt.state_hash(), before);
    rt.handle(add(1), vec![]).await.unwrap().result.unwrap();
    assert_eq!(rt.state(), &json!({"count": 2}));
}

#[tokio::test]
async fn a_memory_bomb_is_stopped_with_a_limit_error() {
    let host = host();
    let limits = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let mut rt = runtime(&host, "hog", limits).await;
    let small = rt
        .handle(ActorInput::request(json!({"alloc_mb": 2})), vec![])
        .await
        .unwrap();
    assert!(small.result.is_ok(), "{:?}", small.result);
    let bomb = rt
        .handle(ActorInput::request(json!({"alloc_mb": 64})), vec![])
        .await
        .unwrap();
    match bomb.result {
        Err(ActorError::Limit(m)) => assert!(m.contains("memory limit of 16777216 bytes"), "{m}"),
        other => panic!("expected a memory limit error, got {other:?}"),
    }
    rt.handle(add(7), vec![]).await.unwrap().result.unwrap();
    assert_eq!(rt.state(), &json!({"count": 7}));
}
