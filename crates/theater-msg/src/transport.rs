//! [`Transport`]: how messages travel between actors. [`crate::Registry`] is the in-process
//! one; a network transport (actors spread across hosts) would implement the same trait, and
//! because messages are plain data that name their sending entry, chains still link.

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

/// Moves messages and requests between actors. Every method names the target as the sender
/// addressed it (an id or a name); errors are reasons shown to (and recorded by) the sender.
#[async_trait]
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Whether `to` can take messages now; if so, the id of the actor it names.
    fn reachable(&self, to: &str) -> Result<ChainId, String>;

    /// Puts `delivery` in `to`'s mailbox, waiting while the mailbox is full.
    async fn deliver(&self, to: &str, delivery: Delivery) -> Result<(), String>;

    /// Sends `payload` to `to` as a request and waits for its answer (no timeout: the caller
    /// bounds the wait, and dropping the future withdraws the request if not yet handled).
    async fn ask(&self, to: &str, payload: Value) -> Result<Answer, String>;
}
