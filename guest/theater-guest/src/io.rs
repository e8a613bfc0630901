//! What reaches an actor and what it answers: the SDK's side of the host's `ActorInput` and
//! `ActorOutput`, as JSON (the `json` of a payload) plus a binary body (its `bytes`).
//!
//! This file depends only on `serde` and `serde_json`: the host's tests compile it as it is
//! and check that every variant has the same JSON on both sides
//! (`crates/theater-core/tests/all/sdk_io.rs`).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What reaches the actor.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Input {
    /// A fire-and-forget message.
    Message {
        /// The message.
        payload: Value,
        /// The sending actor's id, when another actor sent it.
        #[serde(default)]
        from: Option<String>,
    },
    /// A request expecting a reply.
    Request {
        /// The request.
        payload: Value,
    },
    /// An HTTP request.
    HttpRequest(HttpRequest),
    /// A message on a WebSocket connection this actor accepted (by answering 101 to the
    /// upgrade request, whose `theater-ws-conn` header named the connection).
    #[serde(rename = "websocket_message")]
    WebSocketMessage(WebSocketMessage),
    /// A WebSocket connection closed.
    #[serde(rename = "websocket_close")]
    WebSocketClose {
        /// The connection.
        conn: String,
    },
    /// A timer this actor set came due (see `theater_guest::timers`).
    Timer {
        /// The timer's name.
        name: String,
        /// When it was due (ms since the Unix epoch); it may fire later.
        due_ms: u64,
    },
    /// Something happened to a child this actor spawned (see `theater_guest::actors`).
    Child {
        /// The child's name.
        name: String,
        /// What happened.
        event: ChildEvent,
        /// Why, for a crash or a failure.
        #[serde(default)]
        reason: Option<String>,
    },
}

/// What happened to a child actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
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

/// A WebSocket message: text, or binary.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WebSocketMessage {
    /// The connection it arrived on.
    pub conn: String,
    /// The text of a text message.
    pub text: Option<String>,
    /// The data of a binary message.
    #[serde(skip)]
    pub binary: Vec<u8>,
}

/// What to send in answer to a WebSocket input.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct WebSocketReply {
    /// Text messages, each to a connection of this actor (`None`: the input's own).
    pub send: Vec<WebSocketSend>,
    /// A binary message for the input's own connection, if not empty.
    #[serde(skip)]
    pub binary: Vec<u8>,
    /// Close the input's own connection.
    pub close: bool,
}

/// One text message to send.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WebSocketSend {
    /// The connection (`None`: the input's own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The text.
    pub text: String,
}

impl Input {
    /// The JSON payload of a message or request.
    pub fn payload(&self) -> Option<&Value> {
        match self {
            Input::Message { payload, .. } | Input::Request { payload } => Some(payload),
            _ => None,
        }
    }

    /// The actor that sent this message, if another actor did.
    pub fn sender(&self) -> Option<&str> {
        match self {
            Input::Message { from, .. } => from.as_deref(),
            _ => None,
        }
    }
}

/// An HTTP request.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path.
    pub path: String,
    /// The query string, without `?`.
    pub query: Option<String>,
    /// Header names (lowercase) and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    #[serde(skip)]
    pub body: Vec<u8>,
}

/// What the actor answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Output {
    /// Nothing (e.g. to a message).
    None,
    /// A reply to a request.
    Reply {
        /// The reply.
        payload: Value,
    },
    /// An HTTP response.
    HttpResponse(HttpResponse),
    /// What to send over WebSocket.
    #[serde(rename = "websocket")]
    WebSocket(WebSocketReply),
}

impl Output {
    /// A reply.
    pub fn reply(payload: Value) -> Self {
        Output::Reply { payload }
    }
}

/// An HTTP response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Header names and values.
    pub headers: Vec<(String, String)>,
    /// The body.
    #[serde(skip)]
    pub body: Vec<u8>,
    /// Instead of `body`, a file of the granted directory, by reference (see `theater_guest::files`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileRef>,
}

/// A file of the granted directory an HTTP response sends: the server reads it and checks
/// it still matches; the chain keeps only this reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileRef {
    /// The path, relative to the granted directory.
    pub path: String,
    /// SHA-256 of the content (lowercase hex), as `theater_guest::files::stat` reported it.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

impl HttpResponse {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        HttpResponse {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            file: None,
        }
    }

    /// A JSON response.
    pub fn json(status: u16, value: &Value) -> Self {
        HttpResponse::new(status)
            .header("content-type", "application/json")
            .body(value.to_string().into_bytes())
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Sets the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
}

impl HttpRequest {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses an input the host sent: its JSON and its binary body.
pub(crate) fn input_from_parts(json: &[u8], bytes: Vec<u8>) -> Result<Input, String> {
    let mut parsed: Input =
        serde_json::from_slice(json).map_err(|e| format!("unsupported input: {e}"))?;
    match &mut parsed {
        Input::HttpRequest(req) => req.body = bytes,
        Input::WebSocketMessage(m) => m.binary = bytes,
        _ => {}
    }
    Ok(parsed)
}

/// What the host gets for `output`: its JSON and its binary body.
pub(crate) fn output_parts(output: &Output) -> Result<(Vec<u8>, Vec<u8>), String> {
    let bytes = match output {
        Output::HttpResponse(r) => r.body.clone(),
        Output::WebSocket(w) => w.binary.clone(),
        _ => Vec::new(),
    };
    let json = serde_json::to_vec(output).map_err(|e| format!("cannot serialise: {e}"))?;
    Ok((json, bytes))
}
