//! [`Transport`]: how messages travel between actors. [`crate::InProcess`] is the in-process
//! one (over a [`crate::Registry`] of local actors); a network transport (actors spread across
//! hosts) implements the same trait, and because messages are plain data that name their
//! sending entry, chains still link. [`redeliver`] works through any of them.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use theater_chain::{ChainId, ChainRef};

/// A message on its way to an actor: plain data, serializable for any transport.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The sending actor.
    pub from: ChainId,
    /// The message.
    pub payload: Value,
    /// The (durable) sender's entry that sent it.
    pub sent_by: ChainRef,
}

/// The answer to a request: the reply and the target's entry that produced it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The reply (`null` if the target answered nothing).
    pub reply: Value,
    /// The target's entry that handled the request.
    pub answered_by: ChainRef,
}

/// Why a message or request did not reach its target: the kind is data, the message what
/// the sender is told (and records).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TransportError {
    /// What kind of failure.
    pub kind: TransportErrorKind,
    /// What the sender is told.
    pub message: String,
}

/// The kinds of [`TransportError`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// No actor has that id or name.
    NoSuchActor,
    /// The actor exists but does not take messages (stopped, or failed for good).
    NotRunning,
    /// The actor took the request and failed it (or crashed handling it).
    Failed,
    /// The transport itself could not carry it (a full mailbox that stays full, a network).
    Unavailable,
}

impl TransportError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        TransportError {
            kind,
            message: message.into(),
        }
    }
}

/// Moves messages and requests between actors. Every method names the target as the sender
/// addressed it (an id or a name); an error's message is shown to (and recorded by) the
/// sender.
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Whether `to` can take messages now; if so, the id of the actor it names. Answered from
    /// what the transport knows locally (a send is recorded with the answer, without waiting).
    fn reachable(&self, to: &str) -> Result<ChainId, TransportError>;

    /// Puts `delivery` in `to`'s mailbox, waiting while the mailbox is full.
    async fn deliver(&self, to: &str, delivery: Delivery) -> Result<(), TransportError>;

    /// Sends `payload` to `to` as a request and waits for its answer (no timeout: the caller
    /// bounds the wait, and dropping the future withdraws the request if not yet handled).
    async fn ask(&self, to: &str, payload: Value) -> Result<Answer, TransportError>;
}

/// What [`redeliver`] did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Redelivery {
    /// Messages put in their receivers' mailboxes.
    pub delivered: usize,
    /// Messages that could not be, and why (still pending: a later redelivery may retry).
    pub undelivered: Vec<(crate::Pending, TransportError)>,
}

/// Delivers, through `transport`, messages that were sent (their sending entries are durable)
/// but never recorded by their receivers, as found by [`crate::pending_sends`] after a host
/// restart. Call it once the actors can be reached and before they take new messages, so each
/// sender's messages still arrive in order. Goes on past a message that cannot be delivered;
/// returns how many were, and those that were not with the reason.
pub async fn redeliver(transport: &dyn Transport, pending: Vec<crate::Pending>) -> Redelivery {
    let mut report = Redelivery::default();
    for p in pending {
        let delivery = Delivery {
            from: p.sent_by.chain.clone(),
            payload: p.payload.clone(),
            sent_by: p.sent_by.clone(),
        };
        match transport.deliver(p.to.as_str(), delivery).await {
            Ok(()) => report.delivered += 1,
            Err(reason) => report.undelivered.push((p, reason)),
        }
    }
    report
}
