//! [`Messenger`]: how an actor's host side sends messages and requests, recorded in the
//! sender's chain.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::Value;
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

/// A recorded send or request: to whom (as the sender addressed it) and what.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MsgRequest {
    /// The target, an id or a name.
    pub to: String,
    /// The message.
    pub payload: Value,
}

/// What a recorded send answered.
// Untagged variants are tried in order, and each miss builds an error: the common answer
// comes first. (No host records an answer with both `ok` and `error`, so the order changes
// no recorded answer.)
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SendAnswer {
    /// Accepted, to be delivered once the sending entry is durable.
    Sent {
        /// Always true.
        ok: bool,
        /// The target's id (older hosts did not record it: then the target as addressed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<ChainId>,
    },
    /// Not sent: why (unknown target, not running).
    Refused {
        /// What the sender was told.
        error: String,
    },
}

/// What a recorded request answered.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
// As with `SendAnswer`, the common answer comes first.
#[serde(untagged)]
pub enum RequestAnswer {
    /// The reply, and the target's entry that answered.
    Answered {
        /// The reply.
        reply: Value,
        /// The target's chain.
        chain: ChainId,
        /// The answering entry's seq.
        seq: u64,
        /// The answering entry's hash.
        hash: Hash,
    },
    /// No reply: why (unknown target, a timeout, the target failed the request).
    Refused {
        /// What the requester was told.
        error: String,
    },
}

fn encode<T: Serialize>(v: &T) -> Payload {
    Payload::json(serde_json::to_value(v).unwrap_or_default())
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
        let request = MsgRequest {
            to: to.to_string(),
            payload,
        };
        let answer = host.call_typed(SEND, &request, || match self.transport.reachable(to) {
            Ok(id) => SendAnswer::Sent {
                ok: true,
                id: Some(id),
            },
            Err(reason) => SendAnswer::Refused {
                error: reason.message,
            },
        })?;
        let id = match answer {
            SendAnswer::Refused { error } => {
                return Err(MsgError::Unreachable {
                    to: to.to_string(),
                    reason: error,
                });
            }
            SendAnswer::Sent { id, .. } => id,
        };
        let payload = request.payload;
        if !host.is_replaying() {
            let transport = Arc::clone(&self.transport);
            let from = self.me.clone();
            // Deliver to the actor the send resolved (and recorded), even if the name it was
            // addressed by points elsewhere by the time the entry is durable.
            let to = id.map_or_else(|| to.to_string(), |id| id.to_string());
            host.after_commit_quick(move |sent_by: ChainRef| async move {
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
        let request = encode(&MsgRequest {
            to: to.to_string(),
            payload: payload.clone(),
        });
        let transport = Arc::clone(&self.transport);
        let to_name = to.to_string();
        let me = self.me.clone();
        let timeout = timeout.min(MAX_REQUEST_TIMEOUT);
        let result = host
            .call(REQUEST, request, || async move {
                // An actor handles one input at a time: asking itself could only time out.
                if transport.reachable(&to_name).is_ok_and(|id| id == me) {
                    return encode(&RequestAnswer::Refused {
                        error: "an actor cannot send a request to itself".into(),
                    });
                }
                let ask = transport.ask(&to_name, payload);
                encode(&match tokio::time::timeout(timeout, ask).await {
                    Err(_) => RequestAnswer::Refused {
                        error: format!("no reply from {to_name:?} within {timeout:?}"),
                    },
                    Ok(Err(reason)) => RequestAnswer::Refused {
                        error: reason.message,
                    },
                    Ok(Ok(answer)) => RequestAnswer::Answered {
                        reply: answer.reply,
                        chain: answer.answered_by.chain,
                        seq: answer.answered_by.seq,
                        hash: answer.answered_by.hash,
                    },
                })
            })
            .await?;
        match serde_json::from_value::<RequestAnswer>(result.json.clone()) {
            Ok(RequestAnswer::Refused { error }) => Err(MsgError::Unreachable {
                to: to.to_string(),
                reason: error,
            }),
            Ok(RequestAnswer::Answered {
                reply,
                chain,
                seq,
                hash,
            }) => {
                host.refer(ChainRef { chain, seq, hash });
                Ok(reply)
            }
            Err(_) => Err(MsgError::Malformed(result.json.to_string())),
        }
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

/// The target entry a recorded request result names, and the reply.
pub(crate) fn answered_by(result: &Payload) -> Option<(ChainRef, Value)> {
    match serde_json::from_value::<RequestAnswer>(result.json.clone()).ok()? {
        RequestAnswer::Answered {
            reply,
            chain,
            seq,
            hash,
        } => Some((ChainRef { chain, seq, hash }, reply)),
        RequestAnswer::Refused { .. } => None,
    }
}
