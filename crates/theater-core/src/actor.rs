//! The [`Actor`] trait and how an actor fails.

use async_trait::async_trait;
use serde_json::Value;
use theater_chain::state::{Patch, State};
use theater_chain::{BlobStore, Entry};

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

/// The kind of a recorded failure, read back from a failed entry's error text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailureKind {
    /// Replay re-runs the input and expects it to fail again.
    Reproducible,
    /// Replay does not re-run the input (it failed for reasons outside the actor).
    Environmental,
}

impl FailureKind {
    pub(crate) fn of_recorded(error: &str) -> Self {
        if error.starts_with("timeout:") {
            FailureKind::Environmental
        } else {
            FailureKind::Reproducible
        }
    }
}

impl ActorError {
    /// Whether the actor must be restarted rather than the input recorded as failed.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ActorError::Fatal(_))
    }
}
