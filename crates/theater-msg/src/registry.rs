//! [`Registry`]: running actors by id and by name, and the in-process [`Transport`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde_json::Value;
use theater_chain::{ChainId, ChainRef};
use theater_core::{ActorHandle, ActorInput, ActorStatus};

use crate::transport::{Answer, Delivery, Transport};
use crate::{Messenger, MsgError, Pending};

/// What [`Registry::redeliver`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Redelivery {
    /// Messages put in their receivers' mailboxes.
    pub delivered: usize,
    /// Messages that could not be, and why (still pending: a later redelivery may retry).
    pub undelivered: Vec<(Pending, String)>,
}

/// The actors one host runs, addressable by id and by any names given to them. Cheap to
/// clone; clones share the table. It is the in-process [`Transport`].
#[derive(Clone, Default, Debug)]
pub struct Registry {
    inner: Arc<RwLock<Table>>,
}

#[derive(Default, Debug)]
struct Table {
    by_id: HashMap<ChainId, ActorHandle>,
    names: HashMap<String, ChainId>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a running actor under its id.
    pub fn register(&self, actor: ActorHandle) -> Result<(), MsgError> {
        let mut t = self.inner.write().map_err(|_| MsgError::Poisoned)?;
        if t.by_id.contains_key(actor.id()) {
            return Err(MsgError::Duplicate(actor.id().to_string()));
        }
        t.by_id.insert(actor.id().clone(), actor);
        Ok(())
    }

    /// Makes `name` address the actor `id` too.
    pub fn alias(&self, name: &str, id: &ChainId) -> Result<(), MsgError> {
        let mut t = self.inner.write().map_err(|_| MsgError::Poisoned)?;
        if t.names.contains_key(name) || t.by_id.keys().any(|k| k.as_str() == name) {
            return Err(MsgError::Duplicate(name.to_string()));
        }
        t.names.insert(name.to_string(), id.clone());
        Ok(())
    }

    /// Removes the actor `id` and its names.
    pub fn unregister(&self, id: &ChainId) {
        if let Ok(mut t) = self.inner.write() {
            t.by_id.remove(id);
            t.names.retain(|_, v| v != id);
        }
    }

    /// The actor addressed by `to` (an id or a name).
    pub fn lookup(&self, to: &str) -> Option<ActorHandle> {
        let t = self.inner.read().ok()?;
        let id = match t.names.get(to) {
            Some(id) => id.clone(),
            None => ChainId::new(to).ok()?,
        };
        t.by_id.get(&id).cloned()
    }

    /// The ids of the registered actors, sorted.
    pub fn ids(&self) -> Vec<ChainId> {
        let mut ids: Vec<ChainId> = self
            .inner
            .read()
            .map(|t| t.by_id.keys().cloned().collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    /// A messenger sending as the actor `me` through this registry.
    pub fn messenger(&self, me: ChainId) -> Messenger {
        Messenger::new(Arc::new(self.clone()), me)
    }

    /// Delivers messages that were sent (their sending entries are durable) but never
    /// recorded by their receivers, as found by [`crate::pending_sends`] after a host
    /// restart. Call it once the actors are registered and before they take new messages,
    /// so each sender's messages still arrive in order. Goes on past a message that cannot be
    /// delivered; returns how many were, and those that were not with the reason.
    pub async fn redeliver(&self, pending: Vec<Pending>) -> Redelivery {
        let mut report = Redelivery::default();
        for p in pending {
            let delivery = Delivery {
                from: p.sent_by.chain.clone(),
                payload: p.payload.clone(),
                sent_by: p.sent_by.clone(),
            };
            match self.deliver(p.to.as_str(), delivery).await {
                Ok(()) => report.delivered += 1,
                Err(reason) => report.undelivered.push((p, reason)),
            }
        }
        report
    }

    fn reachable_handle(&self, to: &str) -> Result<ActorHandle, String> {
        let handle = self
            .lookup(to)
            .ok_or_else(|| format!("no actor named {to:?}"))?;
        match handle.status() {
            // A restarting actor keeps its mailbox: messages wait for it.
            ActorStatus::Running | ActorStatus::Restarting { .. } => Ok(handle),
            ActorStatus::Failed { reason } => Err(format!("actor {to:?} has failed: {reason}")),
            _ => Err(format!("actor {to:?} is not running")),
        }
    }
}

#[async_trait]
impl Transport for Registry {
    fn reachable(&self, to: &str) -> Result<ChainId, String> {
        self.reachable_handle(to).map(|h| h.id().clone())
    }

    async fn deliver(&self, to: &str, delivery: Delivery) -> Result<(), String> {
        let handle = self.reachable_handle(to)?;
        let input = ActorInput::message_from(delivery.from.as_str(), delivery.payload);
        handle
            .tell_with_refs(input, vec![delivery.sent_by])
            .await
            .map_err(|e| e.to_string())
    }

    async fn ask(&self, to: &str, payload: Value) -> Result<Answer, String> {
        let handle = self.reachable_handle(to)?;
        let outcome = handle
            .call(ActorInput::request(payload))
            .await
            .map_err(|e| e.to_string())?;
        Ok(Answer {
            reply: outcome.output.to_payload().json["payload"].clone(),
            answered_by: ChainRef {
                chain: handle.id().clone(),
                seq: outcome.seq,
                hash: outcome.hash,
            },
        })
    }
}
