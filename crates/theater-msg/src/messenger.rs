//! [`Messenger`]: how an actor's host side sends messages and requests, recorded in the
//! sender's chain.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};
use theater_chain::{ChainId, ChainRef, Hash, Payload};
use theater_core::{HostCallError, HostCalls, Outbox};

use crate::MsgError;
use crate::transport::{Delivery, Transport};

/// Name of a recorded fire-and-forget send: request `{"to", "payload"}` (`to` as addressed),
/// result `{"ok": true, "id": <the target's chain id>}` or `{"error": ...}`.
pub const SEND: &str = "theater:msg/send";
/// Name of a recorded request: request `{"to", "payload"}`, result `{"reply", "chain", "seq",
/// "hash"}` (the answering entry of the target's chain) or `{"error": ...}`.
pub const REQUEST: &str = "theater:msg/request";

/// The longest a request may wait for its reply; longer timeouts are shortened to it. (Time
/// spent waiting is not CPU time, so the actor's CPU limit does not bound it.)
pub const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);

/// Sends messages and requests on behalf of one actor. Every send and request is a recorded
/// host call, so replay feeds back what happened instead of messaging again. It is the
/// [`Outbox`] that wasm actors' `send` and `request` imports use.
#[derive(Clone, Debug)]
pub struct Messenger {
    transport: Arc<dyn Transport>,
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
    /// A messenger sending as `me` through `transport` (see also [`crate::Registry::messenger`]).
    pub fn new(transport: Arc<dyn Transport>, me: ChainId) -> Self {
        Messenger { transport, me }
    }

    /// A messenger connected to no actor: every live send fails, and replay, which only reads
    /// the recording, works as with any other. For replaying chains offline.
    pub fn detached(me: ChainId) -> Self {
        Messenger::new(Arc::new(crate::InProcess::new(crate::Registry::new())), me)
    }

    /// The actor this messenger sends as.
    pub fn me(&self) -> &ChainId {
        &self.me
    }

    /// Sends `payload` to `to` without waiting for it to be handled. The target must be
    /// reachable now, or this is an error (recorded). The message is delivered once the
    /// sender's current entry is durable, naming that entry; a sender's messages to one
    /// target arrive in the order sent. An input that fails sends nothing.
    pub fn send(&self, host: &mut HostCalls, to: &str, payload: Value) -> Result<(), MsgError> {
        let request = Payload::json(json!({"to": to, "payload": payload}));
        let result = host.call_sync(SEND, request, || {
            Payload::json(match self.transport.reachable(to) {
                Ok(id) => json!({"ok": true, "id": id.as_str()}),
                Err(reason) => json!({"error": reason.message}),
            })
        })?;
        if let Some(reason) = error_of(&result) {
            return Err(MsgError::Unreachable {
                to: to.to_string(),
                reason,
            });
        }
        if !host.is_replaying() {
            let transport = Arc::clone(&self.transport);
            let from = self.me.clone();
            // Deliver to the actor the send resolved (and recorded), even if the name it was
            // addressed by points elsewhere by the time the entry is durable.
            let to = result.json["id"].as_str().unwrap_or(to).to_string();
            host.after_commit(move |sent_by: ChainRef| async move {
                let delivery = Delivery {
                    from,
                    payload,
                    sent_by,
                };
                if let Err(e) = transport.deliver(&to, delivery).await {
                    // The target went away after the send was accepted. The sender's chain
                    // records the send; `pending_sends` finds it and `redeliver` retries it.
                    tracing::warn!(%to, "message could not be delivered: {e}");
                }
            });
        }
        Ok(())
    }

    /// Sends `payload` to `to` as a request and waits (at most `timeout`) for the reply. The
    /// sender's entry records the reply and refers to the target's answering entry. A
    /// request that times out before the target takes it up is withdrawn, never handled.
    pub async fn request(
        &self,
        host: &mut HostCalls,
        to: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<Value, MsgError> {
        let request = Payload::json(json!({"to": to, "payload": payload}));
        let transport = Arc::clone(&self.transport);
        let to_name = to.to_string();
        let me = self.me.clone();
        let timeout = timeout.min(MAX_REQUEST_TIMEOUT);
        let result = host
            .call(REQUEST, request, || async move {
                // An actor handles one input at a time: asking itself could only time out.
                if transport.reachable(&to_name).is_ok_and(|id| id == me) {
                    return Payload::json(
                        json!({"error": "an actor cannot send a request to itself"}),
                    );
                }
                let ask = transport.ask(&to_name, payload);
                Payload::json(match tokio::time::timeout(timeout, ask).await {
                    Err(_) => {
                        json!({"error": format!("no reply from {to_name:?} within {timeout:?}")})
                    }
                    Ok(Err(reason)) => json!({"error": reason.message}),
                    Ok(Ok(answer)) => json!({
                        "reply": answer.reply,
                        "chain": answer.answered_by.chain.as_str(),
                        "seq": answer.answered_by.seq,
                        "hash": answer.answered_by.hash.to_string(),
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

fn split<T>(r: Result<T, MsgError>) -> Result<Result<T, String>, HostCallError> {
    match r {
        Ok(v) => Ok(Ok(v)),
        Err(MsgError::Replay(e)) => Err(e),
        Err(e) => Ok(Err(e.to_string())),
    }
}

#[async_trait]
impl Outbox for Messenger {
    fn send(
        &self,
        host: &mut HostCalls,
        to: &str,
        payload: Value,
    ) -> Result<Result<(), String>, HostCallError> {
        split(Messenger::send(self, host, to, payload))
    }

    async fn request(
        &self,
        host: &mut HostCalls,
        to: &str,
        payload: Value,
        timeout: Duration,
    ) -> Result<Result<Value, String>, HostCallError> {
        split(Messenger::request(self, host, to, payload, timeout).await)
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
