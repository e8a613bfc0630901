//! A native test actor that sends, forwards and answers messages.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use std::path::Path;

use theater_chain::{ChainStore, Durability, FileStore};
use theater_core::{
    Actor, ActorConfig, ActorError, ActorHandle, ActorInput, ActorOutput, HostCalls, spawn,
};
use theater_msg::{Messenger, Registry};
use theater_test_support::id;

/// State: `{"received": n}`.
/// - request `{"send": to, "msg": v}`: sends `v` to `to`;
/// - request `{"ask": to, "msg": v, "timeout_ms": t}`: requests `to`, replies with its reply;
/// - request `{"echo": v}`: replies `v` (after `sleep_ms`, if given);
/// - request `{"send": to, "msg": v, "then_fail": true}`: sends, then fails the input;
/// - message `{"hops": k}`: counts it, and passes `{"hops": k - 1}` on to `next` while k > 0;
/// - message `{"ask": to}`: counts it, and requests `{"echo": count}` from `to` meanwhile.
#[derive(Clone)]
pub(crate) struct Relay {
    pub(crate) messenger: Messenger,
    pub(crate) next: Option<String>,
}

fn fail(e: impl std::fmt::Display) -> ActorError {
    ActorError::Failed(e.to_string())
}

#[async_trait]
impl Actor for Relay {
    async fn init(&mut self, _: &mut HostCalls) -> Result<Value, ActorError> {
        Ok(json!({"received": 0}))
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let p = input.payload().cloned().unwrap_or_default();
        match input {
            ActorInput::Message { .. } => {
                let received = state["received"].as_u64().unwrap_or(0) + 1;
                if let Some(to) = p["ask"].as_str() {
                    self.messenger
                        .request(host, to, json!({"echo": received}), Duration::from_secs(5))
                        .await
                        .map_err(fail)?;
                }
                if let (Some(k), Some(next)) = (p["hops"].as_u64(), &self.next)
                    && k > 0
                {
                    self.messenger
                        .send(host, next, json!({"hops": k - 1}))
                        .map_err(fail)?;
                }
                Ok((ActorOutput::None, json!({"received": received})))
            }
            _ => {
                if let Some(to) = p["send"].as_str() {
                    self.messenger
                        .send(host, to, p["msg"].clone())
                        .map_err(fail)?;
                    if p["then_fail"] == json!(true) {
                        return Err(fail("failing after the send"));
                    }
                    return Ok((ActorOutput::reply(json!("sent")), state.clone()));
                }
                if let Some(to) = p["ask"].as_str() {
                    let timeout = Duration::from_millis(p["timeout_ms"].as_u64().unwrap_or(1000));
                    let reply = self
                        .messenger
                        .request(host, to, p["msg"].clone(), timeout)
                        .await
                        .map_err(fail)?;
                    return Ok((ActorOutput::reply(reply), state.clone()));
                }
                if let Some(ms) = p["sleep_ms"].as_u64() {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                }
                Ok((ActorOutput::reply(p["echo"].clone()), state.clone()))
            }
        }
    }
}

/// Spawns relays named `names` with chains under `dir`, each passing hops to the next (in a
/// ring).
pub(crate) async fn ring(
    registry: &Registry,
    dir: &Path,
    names: &[&str],
    config: ActorConfig,
) -> Vec<ActorHandle> {
    let mut handles = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let relay = Relay {
            messenger: registry.messenger(id(name)),
            next: Some(names[(i + 1) % names.len()].to_string()),
        };
        let chain: Box<dyn ChainStore> =
            Box::new(FileStore::create(dir.join(name), id(name), Durability::None).unwrap());
        let h = spawn(move || relay.clone(), chain, config.clone())
            .await
            .unwrap();
        registry.register(h.clone()).unwrap();
        handles.push(h);
    }
    handles
}

/// Waits (bounded) until the relays together have received `total` messages.
pub(crate) async fn wait_received(handles: &[ActorHandle], total: u64) -> u64 {
    let mut got = 0;
    for _ in 0..500 {
        got = 0;
        for h in handles {
            got += h.state().await.unwrap().0["received"].as_u64().unwrap();
        }
        if got >= total {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    got
}

/// Stops the actors and opens their stored chains read-only.
pub(crate) async fn stored_chains(dir: &Path, handles: &[ActorHandle]) -> Vec<FileStore> {
    for h in handles {
        h.stop().await.unwrap();
    }
    handles
        .iter()
        .map(|h| FileStore::open_read_only(dir.join(h.id().as_str())).unwrap())
        .collect()
}

/// The stores as trait objects, for the verifiers.
pub(crate) fn dyns(stores: &[FileStore]) -> Vec<&dyn ChainStore> {
    stores.iter().map(|s| s as &dyn ChainStore).collect()
}
