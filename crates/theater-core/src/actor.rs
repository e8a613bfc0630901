//! The [`Actor`] trait and how an actor fails.

use async_trait::async_trait;
use serde_json::Value;
use theater_chain::state::{Patch, State};
use theater_chain::{BlobStore, ChainError, ChainStore, Entry, Hash};

use crate::{ActorInput, ActorOutput, HostCallError, HostCalls};

/// A sequential state machine over a JSON state.
///
/// Theater owns the state: `init` produces it, `handle_input` gets it by reference and
/// returns the next one, `verify_state` checks an invariant before any new state is
/// accepted. Anything non-deterministic (time, randomness, the outside world) must go
/// through [`HostCalls`], so the chain records it and replay can feed it back.
#[async_trait]
pub trait Actor: Send + 'static {
    /// Produces the initial state.
    async fn init(&mut self, host: &mut HostCalls) -> Result<Value, ActorError>;

    /// Handles one input: returns the output and the next state.
    ///
    /// The runtime calls [`Actor::handle_change`], whose default calls this and works out
    /// what changed by comparing the states (O(state), but only the changed paths are
    /// rehashed). An actor that knows what it changed implements `handle_change` instead.
    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError>;

    /// Handles one input and says what it changed: nothing, a [`Patch`] (whose cost to
    /// apply and hash follows the paths it touches), or a whole new state. A patch that does
    /// not apply to `state` fails the input.
    async fn handle_change(
        &mut self,
        input: &ActorInput,
        state: &State,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, StateChange), ActorError> {
        let (output, next) = self.handle_input(input, state.value(), host).await?;
        let patch = Patch::diff(state.value(), &next);
        let change = if patch.is_empty() {
            StateChange::Unchanged
        } else {
            StateChange::Patch(patch)
        };
        Ok((output, change))
    }

    /// Checks that `state` is acceptable: called with the initial state and after each
    /// change. A rejected state is never adopted: the input is recorded as failed, with the
    /// error (`Failed(reason)` for a plain rejection; a timeout stays a timeout, which replay
    /// does not re-run), and the state stays as it was. A `Fatal` error restarts the actor.
    async fn verify_state(&mut self, _state: &State) -> Result<(), ActorError> {
        Ok(())
    }

    /// Applies again the writes to the world (files) that `entry`, the chain's last entry,
    /// recorded: called when the actor resumes on a chain whose last writes may not have been
    /// applied (the host stopped between making the entry durable and applying them). Must be
    /// idempotent. The default has nothing to apply.
    async fn reapply(&mut self, _entry: &Entry, _blobs: &dyn BlobStore) -> Result<(), String> {
        Ok(())
    }

    /// The SHA-256 of the code this actor runs now (a wasm component's bytes), recorded in
    /// the init entry and in upgrades; `None` (the default) for code the chain cannot name,
    /// such as a native Rust actor.
    fn code(&self) -> Option<Hash> {
        None
    }

    /// Runs `code` from now on: what an upgrade does, and what replay does where the chain
    /// says another code handled the entries that follow. The next call sees the state
    /// afresh. The default can run only the code it has.
    async fn switch_code(&mut self, code: Hash) -> Result<(), ActorError> {
        if self.code() == Some(code) {
            Ok(())
        } else {
            Err(ActorError::Failed(format!(
                "this actor cannot run the code {}",
                code.short()
            )))
        }
    }

    /// What a snapshot at the head of `chain` carries beside the state (a JSON object, e.g.
    /// the actor's pending timers), so that pruning the entries before the snapshot loses
    /// nothing the actor's capabilities rebuild from them. The default carries nothing.
    fn snapshot_host(&self, _chain: &dyn ChainStore) -> Result<Value, ChainError> {
        Ok(Value::Object(serde_json::Map::new()))
    }
}

/// What an input did to the state.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum StateChange {
    /// Nothing changed: no hashing, no verification.
    Unchanged,
    /// These operations, applied in order.
    Patch(Patch),
    /// A whole new state (rehashed in full).
    Replaced(Value),
}

/// Why an actor could not handle an input.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ActorError {
    /// The actor refused or failed the input. Replay reproduces it.
    #[error("error: {0}")]
    Failed(String),
    /// The actor trapped (a wasm trap, a guest panic). Replay reproduces it.
    #[error("trap: {0}")]
    Trap(String),
    /// The actor hit a deterministic resource limit (memory, fuel).
    #[error("limit: {0}")]
    Limit(String),
    /// The actor was interrupted for taking too long (wall-clock). Not reproducible, so
    /// replay does not re-run such an input; it only checks the state stayed the same.
    #[error("timeout: {0}")]
    Timeout(String),
    /// A host call did not match the recording during replay.
    #[error("host call: {0}")]
    HostCall(#[from] HostCallError),
    /// The actor is broken and must be restarted (its instance is unusable). Nothing is
    /// recorded; the supervisor restarts it from its chain.
    #[error("fatal: {0}")]
    Fatal(String),
}

/// What kind of failure an input had. It travels as data with every failure
/// ([`ActorError::kind`], [`crate::CallError::Failed`]); a failed entry records it as the
/// prefix of its error text (`"timeout: ..."`, the [`ActorError`] display), which is the
/// chain's encoding of it and is read back in one place, [`FailureKind::of_recorded`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureKind {
    /// The actor refused or failed the input.
    Failed,
    /// The actor trapped.
    Trap,
    /// A deterministic resource limit (memory).
    Limit,
    /// The input ran out of (wall-clock) time.
    Timeout,
    /// A host call did not match the recording.
    HostCall,
    /// The actor is broken and restarts.
    Fatal,
}

impl FailureKind {
    /// Whether replay re-runs an input that failed this way and expects it to fail again.
    /// A timeout depends on the machine, not the actor: replay does not re-run it.
    pub fn is_reproducible(self) -> bool {
        self != FailureKind::Timeout
    }

    /// The kind a failed entry recorded, from the prefix of its error text. An unknown
    /// prefix (an older or foreign writer) counts as [`FailureKind::Failed`].
    pub fn of_recorded(error: &str) -> Self {
        let prefix = error.split_once(':').map_or("", |(p, _)| p);
        match prefix {
            "timeout" => FailureKind::Timeout,
            "trap" => FailureKind::Trap,
            "limit" => FailureKind::Limit,
            "host call" => FailureKind::HostCall,
            "fatal" => FailureKind::Fatal,
            _ => FailureKind::Failed,
        }
    }
}

impl ActorError {
    /// What kind of failure this is.
    pub fn kind(&self) -> FailureKind {
        match self {
            ActorError::Failed(_) => FailureKind::Failed,
            ActorError::Trap(_) => FailureKind::Trap,
            ActorError::Limit(_) => FailureKind::Limit,
            ActorError::Timeout(_) => FailureKind::Timeout,
            ActorError::HostCall(_) => FailureKind::HostCall,
            ActorError::Fatal(_) => FailureKind::Fatal,
        }
    }

    /// Whether the actor must be restarted rather than the input recorded as failed.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ActorError::Fatal(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_survives_the_recorded_text() {
        let cases = [
            ActorError::Failed("no: not this".into()),
            ActorError::Trap("unreachable".into()),
            ActorError::Limit("memory".into()),
            ActorError::Timeout("cpu".into()),
            ActorError::HostCall(HostCallError::Blob("gone".into())),
            ActorError::Fatal("broken".into()),
        ];
        for e in cases {
            assert_eq!(FailureKind::of_recorded(&e.to_string()), e.kind(), "{e}");
        }
        assert!(!FailureKind::Timeout.is_reproducible());
        assert!(FailureKind::Trap.is_reproducible());
        assert_eq!(
            FailureKind::of_recorded("a writer we never knew"),
            FailureKind::Failed
        );
    }
}
