//! Events for observers: they never slow or block the actor.

use std::time::Duration;

use theater_chain::Hash;
use tokio::sync::broadcast;

/// Something that happened to an actor.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ActorEvent {
    /// An entry was recorded and is durable.
    Entry {
        /// Its seq.
        seq: u64,
        /// Its hash.
        hash: Hash,
        /// `None` for a transition; the error for a failed input.
        failed: Option<String>,
    },
    /// The actor crashed and will be restarted after `delay`.
    Restarting {
        /// Restarts so far within the policy's window, this one included.
        attempt: u32,
        /// Why it crashed.
        reason: String,
        /// The backoff before the restart.
        delay: Duration,
    },
    /// The actor was restarted from its chain.
    Restarted {
        /// Which restart this was.
        attempt: u32,
    },
    /// The supervisor gave up restarting the actor; it is stopped for good.
    GaveUp {
        /// Why.
        reason: String,
    },
    /// The actor stopped normally.
    Stopped,
}

/// A stream of an actor's events. Slow subscribers are told how much they missed.
#[derive(Debug)]
pub struct Subscription {
    pub(crate) rx: broadcast::Receiver<ActorEvent>,
}

/// Why [`Subscription::recv`] returned no event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecvError {
    /// The subscriber fell behind and `missed` events were dropped for it (never for the
    /// actor); the next `recv` continues with the oldest event still kept.
    #[error("subscriber lagged: {missed} events missed")]
    Lagged {
        /// How many events it missed.
        missed: u64,
    },
    /// The actor is gone and every event has been received.
    #[error("the actor is gone")]
    Closed,
}

impl Subscription {
    /// The next event.
    pub async fn recv(&mut self) -> Result<ActorEvent, RecvError> {
        self.rx.recv().await.map_err(|e| match e {
            broadcast::error::RecvError::Lagged(missed) => RecvError::Lagged { missed },
            broadcast::error::RecvError::Closed => RecvError::Closed,
        })
    }
}
