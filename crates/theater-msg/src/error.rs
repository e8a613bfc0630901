//! Errors of messaging.

use theater_core::HostCallError;

/// A send or request that did not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MsgError {
    /// The target is unknown, stopped, failed, timed out or refused the request.
    #[error("cannot reach {to:?}: {reason}")]
    Unreachable {
        /// The target as addressed.
        to: String,
        /// Why.
        reason: String,
    },
    /// An id or name is already registered.
    #[error("{0:?} is already registered")]
    Duplicate(String),
    /// A recorded result does not have the expected shape.
    #[error("malformed recorded result: {0}")]
    Malformed(String),
    /// Replay found a different call than the recording.
    #[error(transparent)]
    Replay(#[from] HostCallError),
    /// The registry's lock was poisoned by a panic.
    #[error("the registry is unusable after a panic")]
    Poisoned,
}
