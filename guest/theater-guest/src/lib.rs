//! # theater-guest
//!
//! Write a Theater actor in Rust: implement [`Actor`] and export it with
//! [`export_actor!`]. Build it as a component with `theater build` (any `wasm32` build
//! followed by `wit-component` works too). `theater new` writes this crate, with the WIT
//! world in `wit/`, into each new project.
//!
//! ```ignore
//! use theater_guest::{Actor, Input, Output, json};
//!
//! struct Counter;
//!
//! impl Actor for Counter {
//!     type State = i64;
//!     fn init(_params: theater_guest::Value) -> Result<i64, String> { Ok(0) }
//!     fn handle(count: i64, input: Input) -> Result<(Output, i64), String> {
//!         let add = input.payload().and_then(|p| p["add"].as_i64()).ok_or("expected {\"add\": n}")?;
//!         Ok((Output::reply(json!(count + add)), count + add))
//!     }
//! }
//!
//! theater_guest::export_actor!(Counter);
//! ```
//!
//! Everything an actor learns from outside its inputs goes through [`host`]: those calls
//! are recorded in the actor's chain, so replay gives the actor exactly what it saw.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
pub use serde_json::{self, Value, json};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "wit",
        world: "actor",
        pub_export_macro: true,
        export_macro_name: "export_wit",
        default_bindings_module: "theater_guest::bindings",
    });
}

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
    /// A timer this actor set came due (see [`timers`]).
    Timer {
        /// The timer's name.
        name: String,
        /// When it was due (ms since the Unix epoch); it may fire later.
        due_ms: u64,
    },
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
    /// Instead of `body`, a file of the granted directory, by reference (see [`files`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<FileRef>,
}

/// A file of the granted directory an HTTP response sends: the server reads it and checks
/// it still matches; the chain keeps only this reference.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileRef {
    /// The path, relative to the granted directory.
    pub path: String,
    /// SHA-256 of the content (lowercase hex), as [`files::stat`] reported it.
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

    /// Sends the file at `path`, which [`files::stat`] described as `info`, with its content
    /// type.
    pub fn file(mut self, path: &str, info: &files::FileInfo) -> Self {
        self.file = Some(FileRef {
            path: path.to_string(),
            sha256: info.sha256.clone(),
            size: info.size,
        });
        self.header("content-type", &info.content_type)
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

/// Decodes `%XX` escapes (of a URL path); `None` if an escape is malformed or the result is
/// not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl From<HttpResponse> for Output {
    fn from(r: HttpResponse) -> Self {
        Output::HttpResponse(r)
    }
}

/// A Theater actor.
pub trait Actor {
    /// The state, stored by Theater as JSON.
    type State: Serialize + DeserializeOwned;

    /// The initial state, from the manifest's `[init]` parameters (`null` if none).
    fn init(params: Value) -> Result<Self::State, String>;

    /// Handles one input; an `Err` leaves the state unchanged and is recorded as a failure.
    fn handle(state: Self::State, input: Input) -> Result<(Output, Self::State), String>;

    /// Whether a state satisfies the actor's invariants.
    fn verify(_state: &Self::State) -> bool {
        true
    }
}

/// Calls into the host. Each read of the outside world is recorded in the chain.
pub mod host {
    use crate::bindings::theater::actor::host as wit;
    pub use wit::Level;

    /// Writes a log line.
    pub fn log(level: Level, message: &str) {
        wit::log(level, message);
    }

    /// Milliseconds since the Unix epoch (recorded; replayed exactly).
    pub fn now_millis() -> u64 {
        wit::now_millis()
    }

    /// `n` random bytes (recorded; replayed exactly).
    pub fn random_bytes(n: u32) -> Vec<u8> {
        wit::random_bytes(n)
    }
}

/// Messages to other actors (granted by the manifest's `[interfaces.msg]`). Each call is
/// recorded in this actor's chain, so replay gives back the same answers.
pub mod msg {
    use crate::bindings::theater::actor::msg as wit;
    use serde_json::Value;

    /// Sends `message` to the actor `to` (an id or a name). It is delivered once this input
    /// is recorded, and only if this input succeeds. An error says the target cannot be
    /// reached (unknown, stopped) and nothing was sent.
    pub fn send(to: &str, message: &Value) -> Result<(), String> {
        let bytes = serde_json::to_vec(message).map_err(|e| e.to_string())?;
        wit::send(to, &bytes)
    }

    /// Asks the actor `to` and waits at most `timeout_ms` for its reply.
    pub fn request(to: &str, message: &Value, timeout_ms: u32) -> Result<Value, String> {
        let bytes = serde_json::to_vec(message).map_err(|e| e.to_string())?;
        let reply = wit::request(to, &bytes, timeout_ms)?;
        serde_json::from_slice(&reply).map_err(|e| format!("the reply is not JSON: {e}"))
    }
}

/// Files of the directory the manifest grants (`[interfaces.files]`, `writable = true` to
/// write and delete). Every call is recorded, so replay needs neither the directory nor the
/// files. Paths are relative and `/`-separated; paths leaving the directory are refused.
pub mod files {
    use crate::bindings::theater::actor::files as wit;
    pub use wit::{DirEntry, FileInfo};

    /// Size, SHA-256 and content type of the file at `path`; an error if there is none.
    pub fn stat(path: &str) -> Result<FileInfo, String> {
        wit::stat(path)
    }

    /// The contents of the file at `path`.
    pub fn read(path: &str) -> Result<Vec<u8>, String> {
        wit::read(path)
    }

    /// The contents of the file at `path` as UTF-8 text.
    pub fn read_to_string(path: &str) -> Result<String, String> {
        String::from_utf8(read(path)?).map_err(|_| format!("{path:?} is not UTF-8 text"))
    }

    /// The entries of the directory at `path` (`""` for the granted directory), by name.
    pub fn list(path: &str) -> Result<Vec<DirEntry>, String> {
        wit::list_dir(path)
    }

    /// Writes `contents` to the file at `path` (replacing it, creating directories). Applied
    /// once this input is recorded, and only if it succeeds; later calls of this input see it.
    pub fn write(path: &str, contents: &[u8]) -> Result<(), String> {
        wit::write(path, contents)
    }

    /// Deletes the file at `path`, applied like [`write`].
    pub fn delete(path: &str) -> Result<(), String> {
        wit::delete(path)
    }
}

/// Timers (granted by `[interfaces.timers]`): each firing arrives as [`Input::Timer`].
/// Setting and cancelling are recorded, and take effect once this input is recorded.
pub mod timers {
    use crate::bindings::theater::actor::timers as wit;

    /// Sets timer `name` to fire after `delay_ms`, then every `every_ms` if given; replaces
    /// a timer of the same name. Returns when it is due (ms since the Unix epoch).
    pub fn set(name: &str, delay_ms: u64, every_ms: Option<u64>) -> Result<u64, String> {
        wit::set(name, delay_ms, every_ms)
    }

    /// Cancels timer `name`, if set. A firing already on its way when the cancel takes
    /// effect (the input that cancels is being handled, or one before it) still arrives,
    /// once: check a firing against what you set (its name, and its `due_ms` against the one
    /// [`set`] returned) if acting on it after a cancel or a re-set would be wrong.
    pub fn cancel(name: &str) -> Result<(), String> {
        wit::cancel(name)
    }
}

/// SQL (granted by `[interfaces.db]`): each request and its answer are recorded, so replay
/// needs no database. See the WIT `db` interface for the request forms.
pub mod db {
    use crate::bindings::theater::actor::db as wit;
    use serde_json::{Value, json};

    /// Runs a raw request (`{"query" | "execute" | "transaction": ...}`).
    pub fn run(request: &Value) -> Result<Value, String> {
        let bytes = serde_json::to_vec(request).map_err(|e| e.to_string())?;
        let answer = wit::run(&bytes)?;
        serde_json::from_slice(&answer).map_err(|e| format!("the answer is not JSON: {e}"))
    }

    /// Rows of a query: `{"columns": [...], "rows": [[...]]}`.
    pub fn query(sql: &str, params: &[Value]) -> Result<Value, String> {
        run(&json!({"query": sql, "params": params}))
    }

    /// Runs a statement: `{"changes": n}`, with `"last_insert_rowid": id` if it inserted a
    /// row.
    pub fn execute(sql: &str, params: &[Value]) -> Result<Value, String> {
        run(&json!({"execute": sql, "params": params}))
    }

    /// Runs statements as one transaction: all applied, or none.
    pub fn transaction(statements: &[(&str, Vec<Value>)]) -> Result<Value, String> {
        let list: Vec<Value> = statements
            .iter()
            .map(|(sql, params)| json!({"execute": sql, "params": params}))
            .collect();
        run(&json!({"transaction": list}))
    }
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            host::log(host::Level::Error, &format!("panic: {info}"));
        }));
    });
}

fn state_from<A: Actor>(bytes: &[u8]) -> Result<A::State, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("state does not fit the actor's type: {e}"))
}

fn to_bytes<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(v).map_err(|e| format!("cannot serialise: {e}"))
}

#[doc(hidden)]
pub fn __init<A: Actor>(params: Vec<u8>) -> Result<Vec<u8>, String> {
    install_panic_hook();
    let params = if params.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&params).map_err(|e| format!("init params are not JSON: {e}"))?
    };
    to_bytes(&A::init(params)?)
}

#[doc(hidden)]
pub fn __handle<A: Actor>(
    state: Vec<u8>,
    input: bindings::Payload,
) -> Result<(bindings::Payload, Vec<u8>), String> {
    install_panic_hook();
    let state = state_from::<A>(&state)?;
    let mut parsed: Input =
        serde_json::from_slice(&input.json).map_err(|e| format!("unsupported input: {e}"))?;
    match &mut parsed {
        Input::HttpRequest(req) => req.body = input.bytes,
        Input::WebSocketMessage(m) => m.binary = input.bytes,
        _ => {}
    }
    let (output, next) = A::handle(state, parsed)?;
    let body = match &output {
        Output::HttpResponse(r) => r.body.clone(),
        Output::WebSocket(w) => w.binary.clone(),
        _ => Vec::new(),
    };
    let out = bindings::Payload {
        json: to_bytes(&output)?,
        bytes: body,
    };
    Ok((out, to_bytes(&next)?))
}

#[doc(hidden)]
pub fn __verify<A: Actor>(state: Vec<u8>) -> bool {
    install_panic_hook();
    state_from::<A>(&state).is_ok_and(|s| A::verify(&s))
}

/// Exports `$actor` (a type implementing [`Actor`]) as the component's actor world.
#[macro_export]
macro_rules! export_actor {
    ($actor:ty) => {
        struct __TheaterExport;

        impl $crate::bindings::Guest for __TheaterExport {
            fn init(params: Vec<u8>) -> Result<Vec<u8>, String> {
                $crate::__init::<$actor>(params)
            }
            fn handle_input(
                state: Vec<u8>,
                input: $crate::bindings::Payload,
            ) -> Result<($crate::bindings::Payload, Vec<u8>), String> {
                $crate::__handle::<$actor>(state, input)
            }
            fn verify_state(state: Vec<u8>) -> bool {
                $crate::__verify::<$actor>(state)
            }
        }

        $crate::bindings::export_wit!(__TheaterExport with_types_in $crate::bindings);
    };
}
