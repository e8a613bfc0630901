//! What reaches an actor ([`ActorInput`]) and what it answers ([`ActorOutput`]).
//!
//! Both are explicit enums: adding a kind of interaction means adding a variant, and the
//! compiler then shows every place that must handle it. In the chain, each becomes a
//! [`Payload`]: the structure as JSON, any binary body as raw bytes beside it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use theater_chain::Payload;

/// Something that arrives at an actor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActorInput {
    /// A fire-and-forget message; the actor answers [`ActorOutput::None`].
    Message {
        /// The message.
        payload: Value,
        /// The sending actor, when another actor sent it (its chain id). The entry that
        /// records this input also refers to the sender's entry that sent it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
    /// A request expecting a [`ActorOutput::Reply`].
    Request {
        /// The request.
        payload: Value,
    },
    /// An HTTP request.
    HttpRequest(HttpRequest),
    /// A message that arrived on a WebSocket connection the actor accepted.
    #[serde(rename = "websocket_message")]
    WebSocketMessage(WebSocketMessage),
    /// A WebSocket connection closed (by the client, or the connection broke).
    #[serde(rename = "websocket_close")]
    WebSocketClose {
        /// The connection's id.
        conn: String,
    },
    /// A timer the actor set came due (set through the `theater-timers` capability).
    Timer {
        /// The timer's name.
        name: String,
        /// When it was due, in milliseconds since the Unix epoch (it may fire later).
        due_ms: u64,
    },
    /// Something happened to a child actor this actor spawned (the `actors` capability):
    /// what a supervisor written as an actor acts on.
    Child {
        /// The child's name.
        name: String,
        /// What happened.
        event: ChildEvent,
        /// Why, for a crash or a failure.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// What happened to a child actor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChildEvent {
    /// It crashed and is being restarted from its chain.
    Restarting,
    /// It runs again after a crash.
    Restarted,
    /// It failed for good (or could not be started): spawn it again to restart it.
    Failed,
    /// It stopped.
    Stopped,
}

/// A WebSocket message as an actor sees it: text, or binary in the payload's bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSocketMessage {
    /// The connection's id (given to the actor in the upgrade request's
    /// `theater-ws-conn` header).
    pub conn: String,
    /// The text of a text message; `None` for a binary one.
    pub text: Option<String>,
    /// The data of a binary message; stored in the chain as raw bytes.
    #[serde(skip)]
    pub binary: Vec<u8>,
}

/// What an actor answers a WebSocket input: messages to send, and whether to close.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSocketReply {
    /// Text messages to send.
    #[serde(default)]
    pub send: Vec<WebSocketSend>,
    /// A binary message for the input's own connection (if not empty); raw bytes in the chain.
    #[serde(skip)]
    pub binary: Vec<u8>,
    /// Close the input's own connection after sending.
    #[serde(default)]
    pub close: bool,
}

/// One text message to send over WebSocket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebSocketSend {
    /// The connection to send on; `None`: the input's own connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The text.
    pub text: String,
}

/// What an actor answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ActorOutput {
    /// Nothing to answer (e.g. to a message).
    None,
    /// The answer to a request.
    Reply {
        /// The answer.
        payload: Value,
    },
    /// An HTTP response.
    HttpResponse(HttpResponse),
    /// The answer to a WebSocket input.
    #[serde(rename = "websocket")]
    WebSocket(WebSocketReply),
}

/// An HTTP request as an actor sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, percent-encoded as received (`/todos/1`).
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// Header names (lowercase) and values, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body; stored in the chain as raw bytes.
    #[serde(skip)]
    pub body: Vec<u8>,
}

/// An HTTP response from an actor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body; stored in the chain as raw bytes.
    #[serde(skip)]
    pub body: Vec<u8>,
    /// Instead of `body`, a file under the actor's granted directory: the server sends its
    /// bytes after checking they still hash to what the actor was told; the chain holds only
    /// the reference (or, for a read recorded by digest, the digest of an output holding it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileRef>,
}

/// A payload in the chain that is not a valid [`ActorInput`] or [`ActorOutput`].
#[derive(Debug, thiserror::Error)]
#[error("invalid {what} in the chain: {source}")]
pub struct PayloadError {
    what: &'static str,
    source: serde_json::Error,
}

macro_rules! payload_conversions {
    ($ty:ident, $what:literal, $($binary:ident . $field:ident),+) => {
        impl $ty {
            /// The chain form: structure as JSON, the body (if any) as raw bytes.
            pub fn to_payload(&self) -> Payload {
                // Serialising these types cannot fail: every field is a string, number or
                // JSON value.
                let json = serde_json::to_value(self).unwrap_or(Value::Null);
                let bytes = match self {
                    $($ty::$binary(inner) => inner.$field.clone(),)+
                    _ => Vec::new(),
                };
                Payload { json, bytes }
            }

            /// Reads back what [`Self::to_payload`] wrote.
            pub fn from_payload(payload: &Payload) -> Result<Self, PayloadError> {
                // Read from the JSON in place: no copy of it first.
                let mut v = <$ty as serde::Deserialize>::deserialize(&payload.json).map_err(
                    |source| PayloadError {
                        what: $what,
                        source,
                    },
                )?;
                match &mut v {
                    $($ty::$binary(inner) => inner.$field = payload.bytes.clone(),)+
                    _ => {}
                }
                Ok(v)
            }

            /// [`Self::from_payload`] of a payload whose JSON is still text: read from the
            /// text, without building a `Value` first. The bytes are taken from `bytes` only
            /// when the text reads; `None` when it does not (then [`Self::from_payload`]
            /// says why).
            pub fn from_json_text(json: &[u8], bytes: &mut Vec<u8>) -> Option<Self> {
                let mut v: $ty = serde_json::from_slice(json).ok()?;
                match &mut v {
                    $($ty::$binary(inner) => inner.$field = std::mem::take(bytes),)+
                    _ => {}
                }
                Some(v)
            }
        }
    };
}

payload_conversions!(
    ActorInput,
    "input",
    HttpRequest.body,
    WebSocketMessage.binary
);
payload_conversions!(ActorOutput, "output", HttpResponse.body, WebSocket.binary);

impl ActorInput {
    /// The input's type, as its JSON's `type` names it (`message`, `request`,
    /// `http_request`...).
    pub fn kind(&self) -> &'static str {
        match self {
            ActorInput::Message { .. } => "message",
            ActorInput::Request { .. } => "request",
            ActorInput::HttpRequest(_) => "http_request",
            ActorInput::WebSocketMessage(_) => "websocket_message",
            ActorInput::WebSocketClose { .. } => "websocket_close",
            ActorInput::Timer { .. } => "timer",
            ActorInput::Child { .. } => "child",
        }
    }

    /// A message input from outside any actor.
    pub fn message(payload: Value) -> Self {
        ActorInput::Message {
            payload,
            from: None,
        }
    }

    /// A message input sent by the actor `from`.
    pub fn message_from(from: impl Into<String>, payload: Value) -> Self {
        ActorInput::Message {
            payload,
            from: Some(from.into()),
        }
    }

    /// The sending actor of a message from another actor.
    pub fn sender(&self) -> Option<&str> {
        match self {
            ActorInput::Message { from, .. } => from.as_deref(),
            _ => None,
        }
    }

    /// A request input.
    pub fn request(payload: Value) -> Self {
        ActorInput::Request { payload }
    }

    /// The JSON payload of a message or request.
    pub fn payload(&self) -> Option<&Value> {
        match self {
            ActorInput::Message { payload, .. } | ActorInput::Request { payload } => Some(payload),
            _ => None,
        }
    }
}

impl ActorOutput {
    /// A reply output.
    pub fn reply(payload: Value) -> Self {
        ActorOutput::Reply { payload }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_and_outputs_round_trip_through_payloads() {
        let inputs = [
            ActorInput::message(json!({"add": 1})),
            ActorInput::message_from("alice", json!([1, 2])),
            ActorInput::request(json!("hi")),
            ActorInput::HttpRequest(HttpRequest {
                method: "POST".into(),
                path: "/todos".into(),
                query: Some("x=1".into()),
                headers: vec![("content-type".into(), "application/json".into())],
                body: vec![0, 159, 146, 150],
            }),
        ];
        for input in inputs {
            let p = input.to_payload();
            assert_eq!(ActorInput::from_payload(&p).unwrap(), input);
        }
        let ws = [
            ActorInput::WebSocketMessage(WebSocketMessage {
                conn: "c1".into(),
                text: None,
                binary: vec![0, 255, 1],
            }),
            ActorInput::WebSocketClose { conn: "c1".into() },
        ];
        for input in ws {
            assert_eq!(
                ActorInput::from_payload(&input.to_payload()).unwrap(),
                input
            );
        }
        let reply = ActorOutput::WebSocket(WebSocketReply {
            send: vec![WebSocketSend {
                to: Some("c2".into()),
                text: "hi".into(),
            }],
            binary: vec![9, 9],
            close: true,
        });
        let p = reply.to_payload();
        assert_eq!(p.bytes, vec![9, 9]);
        assert_eq!(ActorOutput::from_payload(&p).unwrap(), reply);
        let out = ActorOutput::HttpResponse(HttpResponse {
            status: 201,
            headers: vec![],
            body: b"\x00binary".to_vec(),
            file: None,
        });
        let p = out.to_payload();
        assert_eq!(p.bytes, b"\x00binary");
        assert_eq!(p.json["status"], 201);
        assert_eq!(ActorOutput::from_payload(&p).unwrap(), out);
        assert!(ActorInput::from_payload(&Payload::json(json!({"type": "nope"}))).is_err());
        // A message from outside carries no `from` at all: chains written before the field
        // existed read the same.
        let p = ActorInput::message(json!(1)).to_payload();
        assert_eq!(p.json, json!({"type": "message", "payload": 1}));
    }
}

/// A file an actor answered with, by reference: the server sends its bytes, the chain holds
/// its hash.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileRef {
    /// The path, relative to the granted directory.
    pub path: String,
    /// The SHA-256 of the content the actor was told about.
    pub sha256: theater_chain::Hash,
    /// Its size in bytes.
    pub size: u64,
}
