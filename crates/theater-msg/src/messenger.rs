//! [`Messenger`]: how an actor's host side sends messages and requests, recorded in the
//! sender's chain.

use std::time::Duration;

use serde_json::{Value, json};
use theater_chain::{ChainId, ChainRef, Hash, Payload};
use theater_core::{ActorInput, ActorStatus, HostCalls};

use crate::{MsgError, Registry};

/// Name of a recorded fire-and-forget send: request `{"to", "payload"}`, result `{"ok": true}`
/// or `{"error": ...}`.
pub const SEND: &str = "theater:msg/send";
/// Name of a recorded request: request `{"to", "payload"}`, result `{"reply", "seq", "hash"}`
/// (the answering entry of the target's chain) or `{"error": ...}`.
pub const REQUEST: &str = "theater:msg/request";

/// Sends messages and requests on behalf of one actor. Every send and request is a recorded
/// host call, so replay feeds back what happened instead of messaging again.
#[derive(Clone, Debug)]
pub struct Messenger {
    registry: Registry,
    me: ChainId,
}

fn error_of(result: &Payload) -> Option<String> {
    result
        .json
        .get("error")
        .and_then(Value::as_str)
        .map(str::to_string)
}

impl Messenger {
    pub(crate) fn new(registry: Registry, me: ChainId) -> Self {
        Messenger { registry, me }
    }

    /// The actor this messenger sends as.
    pub fn me(&self) -> &ChainId {
        &self.me
    }

    /// Sends `payload` to `to` without waiting for it to be handled. The target must be
    /// running now, or this is an error (recorded). The message is delivered once the
    /// sender's current entry is durable, naming that entry; a sender's messages to one
    /// target arrive in the order sent. An input that fails sends nothing.
    pub fn send(&self, host: &mut HostCalls, to: &str, payload: Value) -> Result<(), MsgError> {
        let request = Payload::json(json!({"to": to, "payload": payload}));
        let target = self.registry.lookup(to);
        let result = host.call_sync(SEND, request, || {
            Payload::json(match &target {
                None => json!({"error": format!("no actor named {to:?}")}),
                // A restarting actor keeps its mailbox: messages wait for it.
                Some(h)
                    if !matches!(
                        h.status(),
                        ActorStatus::Running | ActorStatus::Restarting { .. }
                    ) =>
                {
                    json!({"error": format!("actor {to:?} is not running")})
                }
                Some(_) => json!({"ok": true}),
            })
        })?;
        if let Some(reason) = error_of(&result) {
            return Err(MsgError::Unreachable {
                to: to.to_string(),
                reason,
            });
        }
        if let Some(target) = target
            && !host.is_replaying()
        {
            host.after_commit(move |sent_by: ChainRef| async move {
                let id = target.id().clone();
                if let Err(e) = target
                    .tell_with_refs(ActorInput::message(payload), vec![sent_by])
                    .await
                {
                    // The target stopped after the send was accepted. The sender's chain still
                    // records the send; link verification reports it as never received.
                    tracing::warn!(to = %id, "message could not be delivered: {e}");
                }
            });
        }
        Ok(())
    }

    /// Sends `payload` to `to` as a request and waits (at most `timeout`) for the reply. The
    /// sender's entry records the reply and refers to the target's answering entry.
    pub async fn request(
        &self,
        host: &mut HostCalls,
        to: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<Value, MsgError> {
        let request = Payload::json(json!({"to": to, "payload": payload}));
        let target = self.registry.lookup(to);
        let to_name = to.to_string();
        let result = host
            .call(REQUEST, request, || async move {
                let Some(target) = target else {
                    return Payload::json(json!({"error": format!("no actor named {to_name:?}")}));
                };
                let call = target.call(ActorInput::request(payload));
                Payload::json(match tokio::time::timeout(timeout, call).await {
                    Err(_) => {
                        json!({"error": format!("no reply from {to_name:?} within {timeout:?}")})
                    }
                    Ok(Err(e)) => json!({"error": e.to_string()}),
                    Ok(Ok(outcome)) => json!({
                        "reply": outcome.output.to_payload().json["payload"].clone(),
                        "chain": target.id().as_str(),
                        "seq": outcome.seq,
                        "hash": outcome.hash.to_string(),
                    }),
                })
            })
            .await?;
        if let Some(reason) = error_of(&result) {
            return Err(MsgError::Unreachable {
                to: to.to_string(),
                reason,
            });
        }
        let answered_by =
            answered_by(&result).ok_or_else(|| MsgError::Malformed(result.json.to_string()))?;
        host.refer(answered_by);
        Ok(result.json["reply"].clone())
    }
}

/// The target entry a recorded request result names.
pub(crate) fn answered_by(result: &Payload) -> Option<ChainRef> {
    Some(ChainRef {
        chain: ChainId::new(result.json.get("chain")?.as_str()?).ok()?,
        seq: result.json.get("seq")?.as_u64()?,
        hash: result.json.get("hash")?.as_str()?.parse::<Hash>().ok()?,
    })
}
