//! [`Registry`]: the actors one host runs, by id and by name; and [`InProcess`], the
//! [`Transport`] that delivers into their mailboxes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use serde_json::Value;
use theater_chain::{ChainId, ChainRef};
use theater_core::{ActorHandle, ActorInput, ActorStatus};

use crate::transport::{
    Answer, Delivery, Redelivery, Transport, TransportError, TransportErrorKind, redeliver,
};
use crate::{Messenger, MsgError, Pending};

/// The actors one host runs, addressable by id and by any names given to them. Cheap to
/// clone; clones share the table. [`InProcess`] carries messages between them.
#[derive(Clone, Default, Debug)]
pub struct Registry {
    inner: Arc<RwLock<Table>>,
}

#[derive(Default, Debug)]
struct Table {
    by_id: HashMap<ChainId, ActorHandle>,
    names: HashMap<String, ChainId>,
    activator: Option<Arc<dyn Activator>>,
    transport: Option<Arc<dyn Transport>>,
}

/// Brings up actors that are addressable without running: members of a family (created on
/// their first message, or activated from their chain). A [`Registry`] with one asks it for
/// names it has no running actor for.
#[async_trait]
pub trait Activator: Send + Sync + std::fmt::Debug {
    /// The id of the actor `name` names, if this activator can bring it up. Cheap and
    /// local: a send is recorded with the answer, without waiting.
    fn covers(&self, name: &str) -> Option<ChainId>;

    /// Brings `name` up (creating it, or activating it from its chain) and registers it;
    /// returns its handle.
    async fn activate(&self, name: &str) -> Result<ActorHandle, TransportError>;
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
        let id = t.names.get(to).map_or(to, ChainId::as_str);
        t.by_id.get(id).cloned()
    }

    /// Makes `activator` bring up the actors it covers when they are addressed.
    pub fn set_activator(&self, activator: Arc<dyn Activator>) {
        if let Ok(mut t) = self.inner.write() {
            t.activator = Some(activator);
        }
    }

    /// Makes the messengers this registry hands out send through `transport` (one that also
    /// reaches other hosts' actors) instead of [`InProcess`].
    pub fn set_transport(&self, transport: Arc<dyn Transport>) {
        if let Ok(mut t) = self.inner.write() {
            t.transport = Some(transport);
        }
    }

    /// The transport messengers send through: the one set, or [`InProcess`].
    pub fn transport(&self) -> Arc<dyn Transport> {
        self.inner
            .read()
            .ok()
            .and_then(|t| t.transport.clone())
            .unwrap_or_else(|| Arc::new(InProcess::new(self.clone())))
    }

    fn activator(&self) -> Option<Arc<dyn Activator>> {
        self.inner.read().ok()?.activator.clone()
    }

    /// The running actor `to` names, activating it first if it is a passive (or not yet
    /// created) member of a family.
    pub async fn resolve(&self, to: &str) -> Result<ActorHandle, TransportError> {
        InProcess::new(self.clone()).handle(to).await
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

    /// A messenger sending as the actor `me` through [`Registry::transport`].
    pub fn messenger(&self, me: ChainId) -> Messenger {
        Messenger::new(self.transport(), me)
    }

    /// [`redeliver`] through [`InProcess`] to the actors of this registry.
    pub async fn redeliver(&self, pending: Vec<Pending>) -> Redelivery {
        redeliver(&InProcess::new(self.clone()), pending).await
    }
}

/// The in-process [`Transport`]: messages go straight into the mailboxes of the actors of a
/// [`Registry`] (a full mailbox makes the sender wait: backpressure).
#[derive(Clone, Debug)]
pub struct InProcess {
    actors: Registry,
}

impl InProcess {
    /// Carries messages to the actors of `actors`.
    pub fn new(actors: Registry) -> Self {
        InProcess { actors }
    }

    /// The running actor `to`, activated if it has to be.
    async fn handle(&self, to: &str) -> Result<ActorHandle, TransportError> {
        match self.reachable_handle(to) {
            Ok(h) => Ok(h),
            Err(e) => match self.actors.activator() {
                Some(a) if a.covers(to).is_some() => {
                    // Activating opens a chain and may replay it: a quick effect's first poll
                    // on the sender's loop ends here, and the outbound task does the rest.
                    tokio::task::yield_now().await;
                    a.activate(to).await
                }
                _ => Err(e),
            },
        }
    }

    /// Whether an error of a handle means it stopped (passivated) under the sender's feet:
    /// then the input was not taken, and a covered actor is activated again and asked once more.
    fn retry(&self, to: &str, e: &theater_core::CallError) -> bool {
        matches!(e, theater_core::CallError::Stopped { reason: None, .. })
            && self
                .actors
                .activator()
                .is_some_and(|a| a.covers(to).is_some())
    }

    fn reachable_handle(&self, to: &str) -> Result<ActorHandle, TransportError> {
        let handle = self.actors.lookup(to).ok_or_else(|| {
            TransportError::new(
                TransportErrorKind::NoSuchActor,
                format!("no actor named {to:?}"),
            )
        })?;
        let not_running = |m: String| TransportError::new(TransportErrorKind::NotRunning, m);
        match handle.status() {
            // A restarting actor keeps its mailbox: messages wait for it.
            ActorStatus::Running | ActorStatus::Restarting { .. } => Ok(handle),
            ActorStatus::Failed { reason } => {
                Err(not_running(format!("actor {to:?} has failed: {reason}")))
            }
            _ => Err(not_running(format!("actor {to:?} is not running"))),
        }
    }
}

/// How many times a message or request to a family member passivated under it is retried.
const RETRIES: usize = 8;

/// What a call's error is, as a transport error.
fn call_error(e: &theater_core::CallError) -> TransportError {
    use theater_core::CallError;
    let kind = match e {
        CallError::Failed { .. } | CallError::Crashed { .. } => TransportErrorKind::Failed,
        CallError::Stopped { .. } => TransportErrorKind::NotRunning,
        _ => TransportErrorKind::Unavailable,
    };
    TransportError::new(kind, e.to_string())
}

#[async_trait]
impl Transport for InProcess {
    fn reachable(&self, to: &str) -> Result<ChainId, TransportError> {
        match self.reachable_handle(to) {
            Ok(h) => Ok(h.id().clone()),
            Err(e) => self.actors.activator().and_then(|a| a.covers(to)).ok_or(e),
        }
    }

    async fn deliver(&self, to: &str, delivery: Delivery) -> Result<(), TransportError> {
        let input = ActorInput::message_from(delivery.from.as_str(), delivery.payload);
        let refs = vec![delivery.sent_by];
        // A member passivated under the sender (again and again, if its family is at its
        // limit) is activated again, a bounded number of times.
        let mut tries = 0;
        loop {
            let handle = self.handle(to).await?;
            match handle.tell_with_refs(input.clone(), refs.clone()).await {
                Err(e) if tries < RETRIES && self.retry(to, &e) => tries += 1,
                r => return r.map_err(|e| call_error(&e)),
            }
        }
    }

    async fn ask(&self, to: &str, payload: Value) -> Result<Answer, TransportError> {
        let input = ActorInput::request(payload);
        let mut tries = 0;
        let (handle, outcome) = loop {
            let handle = self.handle(to).await?;
            match handle.call(input.clone()).await {
                Err(e) if tries < RETRIES && self.retry(to, &e) => tries += 1,
                r => break (handle, r.map_err(|e| call_error(&e))?),
            }
        };
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
