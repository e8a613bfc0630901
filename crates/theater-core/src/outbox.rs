//! [`Outbox`]: how the host side of an actor reaches other actors, without this crate knowing
//! how messages travel.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::{HostCallError, HostCalls};

/// Sends messages and requests to other actors on behalf of one actor, recording each in the
/// chain through the [`HostCalls`] of the input being handled.
///
/// This is the seam between an actor's host functions (a wasm guest's `send` and `request`
/// imports, or a native actor's code) and a messaging layer such as `theater-msg`, which
/// implements it. The outer `Result` is the recorder's: an `Err` means replay found a
/// different call than the recording and the input must fail. The inner one is what the
/// actor sees: `Err(reason)` when the target is unknown, stopped, or did not answer in time.
#[async_trait]
pub trait Outbox: Send + Sync + std::fmt::Debug {
    /// Sends `payload` to the actor `to` without waiting for it to be handled. Delivery
    /// happens once the current entry is durable, and only if the input succeeds.
    fn send(
        &self,
        host: &mut HostCalls,
        to: &str,
        payload: Value,
    ) -> Result<Result<(), String>, HostCallError>;

    /// Asks the actor `to` and waits at most `timeout` for its reply.
    async fn request(
        &self,
        host: &mut HostCalls,
        to: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<Result<Value, String>, HostCallError>;
}
