//! Messaging through a transport other than the in-process one: one that carries every
//! message as bytes, as a network transport would. Sends, requests and redelivery after a
//! restart go through it, and errors keep their kind.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use serde_json::{Value, json};
use theater_chain::{ChainId, ChainRef, Hash, MemoryStore};
use theater_core::{ActorConfig, ActorInput, spawn};
use theater_msg::{
    Answer, Delivery, InProcess, Messenger, Pending, Registry, Transport, TransportError,
    TransportErrorKind, redeliver,
};
use theater_test_support::{Counter, id};

/// Serialises each delivery and request to JSON bytes and back before handing it on.
#[derive(Debug)]
struct Wire {
    inner: InProcess,
    carried: AtomicUsize,
}

#[async_trait]
impl Transport for Wire {
    fn reachable(&self, to: &str) -> Result<ChainId, TransportError> {
        self.inner.reachable(to)
    }

    async fn deliver(&self, to: &str, delivery: Delivery) -> Result<(), TransportError> {
        let bytes = serde_json::to_vec(&delivery).unwrap();
        let delivery: Delivery = serde_json::from_slice(&bytes).unwrap();
        self.carried.fetch_add(1, Ordering::SeqCst);
        self.inner.deliver(to, delivery).await
    }

    async fn ask(&self, to: &str, payload: Value) -> Result<Answer, TransportError> {
        let answer = self.inner.ask(to, payload).await?;
        let bytes = serde_json::to_vec(&answer).unwrap();
        self.carried.fetch_add(1, Ordering::SeqCst);
        Ok(serde_json::from_slice(&bytes).unwrap())
    }
}

#[tokio::test]
async fn redelivery_and_requests_go_through_any_transport_and_errors_keep_their_kind() {
    let registry = Registry::new();
    let counter = spawn(
        || Counter,
        Box::new(MemoryStore::new(id("counter"))),
        ActorConfig::default(),
    )
    .await
    .unwrap();
    registry.register(counter.clone()).unwrap();
    let wire = Arc::new(Wire {
        inner: InProcess::new(registry.clone()),
        carried: AtomicUsize::new(0),
    });
    // Two messages a previous run sent and nobody recorded.
    let sent_by = |seq| ChainRef {
        chain: id("sender"),
        seq,
        hash: Hash::digest(b"entry"),
    };
    let pending = vec![
        Pending {
            sent_by: sent_by(3),
            to: id("counter"),
            payload: json!({"add": 2}),
            nth: 0,
        },
        Pending {
            sent_by: sent_by(4),
            to: id("nobody"),
            payload: json!({"add": 5}),
            nth: 0,
        },
    ];
    let report = redeliver(&*wire, pending).await;
    assert_eq!(report.delivered, 1);
    let (lost, why) = &report.undelivered[0];
    assert_eq!(lost.to, id("nobody"));
    assert_eq!(why.kind, TransportErrorKind::NoSuchActor, "{why}");
    // The delivery reached the counter through the wire, naming its sending entry.
    let out = counter
        .call(ActorInput::request(json!({"add": 1})))
        .await
        .unwrap();
    assert_eq!(out.seq, 2);
    assert_eq!(counter.state().await.unwrap().0, json!({"count": 3}));

    // A request through the wire: the answer names the counter's entry.
    let answer = wire.ask("counter", json!({"add": 10})).await.unwrap();
    assert_eq!(answer.reply, json!(13));
    assert_eq!(answer.answered_by.chain, id("counter"));
    let failed = wire
        .ask("counter", json!("not a number"))
        .await
        .unwrap_err();
    assert_eq!(failed.kind, TransportErrorKind::Failed, "{failed}");
    // Two deliveries (one to nobody) and one answer crossed the wire.
    assert_eq!(wire.carried.load(Ordering::SeqCst), 3);

    // A messenger over the wire records what the sender is told, as over any transport.
    let messenger = Messenger::new(wire.clone(), id("asker"));
    let mut host = theater_core::HostCalls::live();
    let e = messenger
        .send(&mut host, "nobody", json!(1))
        .unwrap_err()
        .to_string();
    assert!(e.contains("no actor named \"nobody\""), "{e}");
    counter.stop().await.unwrap();
    let e = wire.reachable("counter").unwrap_err();
    assert_eq!(e.kind, TransportErrorKind::NotRunning, "{e}");
}
