//! # theater-guest
//!
//! Write a Theater actor in Rust: implement a trait and export it with one macro. Build it
//! as a component with `theater build` (any `wasm32` build followed by `wit-component` works
//! too). `theater new` writes this crate, with the WIT world in `wit/`, into each new project.
//!
//! An actor is a state machine over a JSON state. The actor keeps its state between inputs
//! and answers each input with what changed (a JSON Patch), which Theater applies to its own
//! copy, hashes along the changed paths and records in the actor's chain. There are two ways
//! to write one:
//!
//! | trait (macro) | the state is | an input costs, inside the actor | pick it when |
//! |---|---|---|---|
//! | [`Actor`] ([`export_actor!`]) | your `State` type, by value | O(state): the SDK serialises the next state and diffs it | the state is small, or you want plain Rust types |
//! | [`DocActor`] ([`export_doc_actor!`]) | a JSON [`Doc`] you read and write by JSON Pointer | O(what it reads and writes) | the state grows (a store, a REST resource collection) |
//!
//! Either way only the change crosses to the host and is hashed, not the state (unless an
//! input replaces the whole state; Theater also reads the whole copy now and then, to check
//! it against its own).
//!
//! ## [`Actor`]: a typed state
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
//! ## [`DocActor`]: a document, touched where it changes
//!
//! ```ignore
//! use theater_guest::{Doc, DocActor, Input, Output, Value, json};
//!
//! struct Tally;
//!
//! impl DocActor for Tally {
//!     fn init(_params: Value) -> Result<Value, String> { Ok(json!({"counts": {}})) }
//!     fn handle(doc: &mut Doc, input: Input) -> Result<Output, String> {
//!         let name = input.payload().and_then(|p| p["count"].as_str()).ok_or("expected {\"count\": name}")?;
//!         let at = Doc::pointer(&["counts", name]);
//!         let n = doc.get_as::<u64>(&at)?.unwrap_or(0) + 1;
//!         doc.set(&at, n)?; // the change Theater records: [{"op": "add", "path": "/counts/<name>", "value": n}]
//!         Ok(Output::reply(json!(n)))
//!     }
//! }
//!
//! theater_guest::export_doc_actor!(Tally);
//! ```
//!
//! An `Err` from either `handle` fails the input: it is recorded as a failure and the state
//! stays as it was (a [`Doc`]'s writes are undone).
//!
//! ## Contents
//!
//! | item | what |
//! |---|---|
//! | [`Actor`], [`export_actor!`] | an actor over a typed state |
//! | [`DocActor`], [`Doc`], [`export_doc_actor!`] | an actor over a JSON document, by JSON Pointer |
//! | [`Input`], [`Output`], [`HttpRequest`], [`HttpResponse`], ... | what reaches the actor and what it answers |
//! | [`host`], [`msg`], [`files`], [`timers`], [`db`] | the outside world, every call recorded in the chain |
//!
//! Everything an actor learns from outside its inputs goes through these modules: those calls
//! are recorded in the actor's chain, so replay gives the actor exactly what it saw.

use serde::de::DeserializeOwned;
use serde::Serialize;
pub use serde_json::{self, Value, json};

pub use doc::Doc;

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

mod io;
pub use io::{
    ChildEvent, FileRef, HttpRequest, HttpResponse, Input, Output, WebSocketMessage, WebSocketReply,
    WebSocketSend,
};

impl HttpResponse {
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

/// A Theater actor over a typed state, exported with [`export_actor!`].
///
/// The SDK keeps the state between inputs as JSON and derives the typed state from it at each
/// input, so the actor behaves the same live and on a replay even if `State` does not
/// round-trip through JSON exactly. After each successful input it serialises the next state
/// and diffs it against the last one to tell Theater what changed: an input costs O(state)
/// inside the actor (but only the change leaves it). For a state that grows, see
/// [`DocActor`].
pub trait Actor {
    /// The state, stored by Theater as JSON.
    type State: Serialize + DeserializeOwned;

    /// The initial state, from the manifest's `[init]` parameters (`null` if none).
    fn init(params: Value) -> Result<Self::State, String>;

    /// Handles one input; an `Err` leaves the state unchanged and is recorded as a failure.
    fn handle(state: Self::State, input: Input) -> Result<(Output, Self::State), String>;

    /// Whether a state satisfies the actor's invariants; Theater asks after each change and
    /// never adopts a state that fails.
    fn verify(_state: &Self::State) -> bool {
        true
    }
}

/// A Theater actor over a JSON document, exported with [`export_doc_actor!`].
///
/// `handle` reads and writes the state in place through [`Doc`], by JSON Pointer; its writes
/// are the change Theater records, so an input costs what it reads and writes, whatever the
/// size of the state.
pub trait DocActor {
    /// The initial state, from the manifest's `[init]` parameters (`null` if none).
    fn init(params: Value) -> Result<Value, String>;

    /// Handles one input, reading and writing `state`. An `Err` undoes this input's writes
    /// and is recorded as a failure.
    fn handle(state: &mut Doc, input: Input) -> Result<Output, String>;

    /// Whether the state satisfies the actor's invariants; Theater asks after each change and
    /// never adopts a state that fails. It runs on every change: keep it to checks that do
    /// not walk the whole state, or the actor loses what [`DocActor`] is for.
    fn verify(_state: &Doc) -> bool {
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

    /// Deletes the file at `path`, applied like [`write`](fn@write).
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

/// Child actors (granted by `[interfaces.actors]`, which names the manifests this actor may
/// spawn children of). A spawn or stop is recorded and takes effect once this input is
/// recorded; the child's genesis entry refers to this input's entry. What happens to a
/// child later arrives as [`Input::Child`]: a child that failed stays down until spawned
/// again, which resumes it from its chain.
pub mod actors {
    use crate::bindings::theater::actor::actors as wit;
    use serde_json::Value;

    /// Spawns the child `name` from the granted manifest `kind` with init parameters `init`
    /// (`None`: the manifest's own). Returns the child's name.
    pub fn spawn(kind: &str, name: &str, init: Option<&Value>) -> Result<String, String> {
        let bytes = match init {
            Some(v) => serde_json::to_vec(v).map_err(|e| e.to_string())?,
            None => Vec::new(),
        };
        wit::spawn(kind, name, &bytes)
    }

    /// Stops the child `name`; its chain stays.
    pub fn stop(name: &str) -> Result<(), String> {
        wit::stop(name)
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

    /// Runs a statement: `{"changes": n}`, with its `"columns"` and `"rows"` if it returns
    /// rows (`RETURNING`), and on SQLite `"last_insert_rowid": id` if it inserted a row.
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

/// Outbound HTTP (granted by `[interfaces.http-client]`: the hosts this actor may reach, a
/// timeout, a size limit). Each request and its response are recorded, so replay needs no
/// network; a host not granted is refused, and the refusal is recorded too.
pub mod http_client {
    use crate::bindings::theater::actor::http_client as wit;
    pub use wit::{Error, Response};

    /// Sends a request with `method` to `url` (absolute, `http://...`), with `headers` and
    /// `body`, and waits for the whole response.
    pub fn send(
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, Error> {
        let request = wit::Request {
            method: method.to_string(),
            url: url.to_string(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
        };
        wit::send(&request)
    }

    /// `GET url`.
    pub fn get(url: &str) -> Result<Response, Error> {
        send("GET", url, &[], &[])
    }

    /// What an error says, with its kind: `"refused: ..."`, `"timeout: ..."`, ...
    pub fn describe(e: &Error) -> String {
        match e {
            Error::Refused(m) => format!("refused: {m}"),
            Error::Invalid(m) => format!("invalid: {m}"),
            Error::Unreachable(m) => format!("unreachable: {m}"),
            Error::Timeout(m) => format!("timeout: {m}"),
            Error::TooLarge(m) => format!("too large: {m}"),
        }
    }

    /// The kind of an error, as the chain records it: `refused`, `invalid`, `unreachable`,
    /// `timeout` or `too-large`.
    pub fn kind(e: &Error) -> &'static str {
        match e {
            Error::Refused(_) => "refused",
            Error::Invalid(_) => "invalid",
            Error::Unreachable(_) => "unreachable",
            Error::Timeout(_) => "timeout",
            Error::TooLarge(_) => "too-large",
        }
    }
}

/// Secrets this actor holds itself, e.g. a key it signs with (granted by
/// `[interfaces.secrets] names = [...]`). The chain records each read as the secret's name and
/// version, never its value; what the actor does with the value is recorded like anything
/// else, so keep it out of the state and the outputs.
pub mod secrets {
    use crate::bindings::theater::actor::secrets as wit;

    /// The current value of secret `name` (a rotated secret is seen from the next read on).
    pub fn get(name: &str) -> Result<Vec<u8>, String> {
        wit::get(name)
    }
}

/// [`Doc`]: the state of a [`DocActor`], read and written by JSON Pointer.
mod doc {
    use serde::Serialize;
    use serde::de::DeserializeOwned;
    use serde_json::Value;

    use crate::patch::{self, Edit, PatchOp};

    /// The state of a [`DocActor`](crate::DocActor): a JSON document read and written by
    /// JSON Pointer (RFC 6901: `/todos/1`; in a name `~1` stands for `/` and `~0` for `~`;
    /// `""` is the whole document; build one with [`Doc::pointer`]).
    ///
    /// Reads borrow (nothing is cloned or serialised but what a read returns). Each write
    /// applies at once, so later reads of the same input see it, and is recorded: the writes
    /// of an input that succeeds are the change Theater records (a JSON Patch), those of an
    /// input that fails are undone. A write costs what it writes.
    #[derive(Debug, Default)]
    pub struct Doc {
        value: Value,
        /// Each write, with what undoes it, in order.
        edits: Vec<(Edit, Edit)>,
    }

    impl Doc {
        pub(crate) fn new(value: Value) -> Doc {
            Doc {
                value,
                edits: Vec::new(),
            }
        }

        /// The escaped JSON Pointer to the member or item at `tokens`:
        /// `Doc::pointer(&["todos", "a/b"])` is `"/todos/a~1b"`, `Doc::pointer::<&str>(&[])`
        /// is `""`.
        pub fn pointer<T: AsRef<str>>(tokens: &[T]) -> String {
            patch::pointer(tokens)
        }

        /// The whole state.
        pub fn value(&self) -> &Value {
            &self.value
        }

        /// The value at `pointer`; `None` if there is none or `pointer` is not a JSON Pointer.
        pub fn get(&self, pointer: &str) -> Option<&Value> {
            patch::lookup(&self.value, pointer)
        }

        /// The value at `pointer` as a `T`: `Ok(None)` if there is none, an error naming the
        /// pointer if it does not fit `T`.
        pub fn get_as<T: DeserializeOwned>(&self, pointer: &str) -> Result<Option<T>, String> {
            self.get(pointer)
                .map(|v| {
                    T::deserialize(v)
                        .map_err(|e| format!("the value at {pointer:?} does not fit: {e}"))
                })
                .transpose()
        }

        /// Sets the value at `pointer`: adds or replaces an object member, replaces an existing
        /// array item (to add items, see [`Doc::insert`] and [`Doc::push`]), or replaces the
        /// whole state (`""`, which makes the change as large as the state). The parent must
        /// exist.
        pub fn set(&mut self, pointer: &str, value: impl Serialize) -> Result<(), String> {
            let fail = |e: String| format!("cannot set {pointer:?}: {e}");
            let path = patch::parse(pointer).map_err(fail)?;
            let value = to_value(pointer, value)?;
            let edit = match path.split_last() {
                None => Edit::Replace(path, value),
                Some((_, parent)) => match patch::resolve(&self.value, parent) {
                    Some(Value::Array(_)) => Edit::Replace(path, value),
                    _ => Edit::Add(path, value),
                },
            };
            self.apply(edit).map(|_| ()).map_err(fail)
        }

        /// Inserts `value` into an array at `pointer` (its last token an index up to the
        /// array's length, or `-` for the end), shifting the items after it.
        pub fn insert(&mut self, pointer: &str, value: impl Serialize) -> Result<(), String> {
            let fail = |e: String| format!("cannot insert at {pointer:?}: {e}");
            let path = patch::parse(pointer).map_err(fail)?;
            let Some((_, parent)) = path.split_last() else {
                return Err(fail("the whole state is not an array item".into()));
            };
            if !matches!(patch::resolve(&self.value, parent), Some(Value::Array(_))) {
                return Err(fail(
                    "its parent is not an array (set an object member with set)".into(),
                ));
            }
            let value = to_value(pointer, value)?;
            self.apply(Edit::Add(path, value)).map(|_| ()).map_err(fail)
        }

        /// Appends `value` to the array at `array`.
        pub fn push(&mut self, array: &str, value: impl Serialize) -> Result<(), String> {
            let fail = |e: String| format!("cannot push to {array:?}: {e}");
            let mut path = patch::parse(array).map_err(fail)?;
            if !matches!(patch::resolve(&self.value, &path), Some(Value::Array(_))) {
                return Err(fail("there is no array there".into()));
            }
            let value = to_value(array, value)?;
            path.push("-".into());
            self.apply(Edit::Add(path, value)).map(|_| ()).map_err(fail)
        }

        /// Removes the object member or array item at `pointer` (which must exist; the items
        /// after it shift) and returns it.
        pub fn remove(&mut self, pointer: &str) -> Result<Value, String> {
            let fail = |e: String| format!("cannot remove {pointer:?}: {e}");
            let path = patch::parse(pointer).map_err(fail)?;
            match self.apply(Edit::Remove(path)).map_err(fail)? {
                Edit::Add(_, old) => Ok(old.clone()),
                _ => Err(fail("nothing was removed (a bug)".into())),
            }
        }

        /// Applies `edit` and records it; returns what undoes it.
        fn apply(&mut self, edit: Edit) -> Result<&Edit, String> {
            let undo = patch::apply(&mut self.value, &edit)?;
            self.edits.push((edit, undo));
            Ok(&self.edits[self.edits.len() - 1].1)
        }

        /// This input's writes as a patch, in order.
        pub(crate) fn patch(&self) -> Vec<PatchOp<'_>> {
            self.edits.iter().map(|(edit, _)| edit.to_op()).collect()
        }

        /// The state with this input's writes.
        pub(crate) fn into_value(self) -> Value {
            self.value
        }

        /// The state with this input's writes undone, as it was before them.
        pub(crate) fn undo(mut self) -> Value {
            for (_, undo) in self.edits.into_iter().rev() {
                let undone = patch::apply(&mut self.value, &undo);
                debug_assert!(undone.is_ok(), "an undo always applies: {undone:?}");
            }
            self.value
        }
    }

    fn to_value(pointer: &str, value: impl Serialize) -> Result<Value, String> {
        serde_json::to_value(value)
            .map_err(|e| format!("cannot serialise the value for {pointer:?}: {e}"))
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        #[test]
        fn writes_apply_at_once_and_undo_in_reverse() {
            let before = json!({"list": [1, 2], "obj": {"a": 1}});
            let mut doc = Doc::new(before.clone());
            doc.set("/obj/a", 2).unwrap();
            doc.set("/obj/b~1c", "x").unwrap();
            doc.push("/list", 3).unwrap();
            doc.insert("/list/0", 0).unwrap();
            doc.set("/list/1", 10).unwrap();
            assert_eq!(doc.remove("/list/2").unwrap(), json!(2));
            assert_eq!(
                doc.value(),
                &json!({"list": [0, 10, 3], "obj": {"a": 2, "b/c": "x"}})
            );
            assert_eq!(doc.get("/obj/b~1c"), Some(&json!("x")));
            assert_eq!(doc.get_as::<u64>("/list/2").unwrap(), Some(3));
            assert!(doc.get_as::<String>("/list/2").is_err());
            let patch = serde_json::to_value(doc.patch()).unwrap();
            assert_eq!(
                patch,
                json!([
                    {"op": "add", "path": "/obj/a", "value": 2},
                    {"op": "add", "path": "/obj/b~1c", "value": "x"},
                    {"op": "add", "path": "/list/-", "value": 3},
                    {"op": "add", "path": "/list/0", "value": 0},
                    {"op": "replace", "path": "/list/1", "value": 10},
                    {"op": "remove", "path": "/list/2"},
                ])
            );
            assert_eq!(doc.undo(), before);
        }

        #[test]
        fn bad_writes_name_the_path_and_change_nothing() {
            let mut doc = Doc::new(json!({"list": [1], "s": "x"}));
            let e = doc.set("/missing/a", 1).unwrap_err();
            assert!(e.contains("\"/missing/a\""), "{e}");
            assert!(doc.set("/list/1", 1).is_err());
            assert!(doc.set("/s/a", 1).is_err());
            assert!(doc.set("nope", 1).is_err());
            assert!(doc.insert("/s", 1).is_err());
            assert!(doc.insert("/list/2", 1).is_err());
            assert!(doc.push("/s", 1).is_err());
            assert!(doc.remove("").is_err());
            assert!(doc.remove("/list/01").is_err());
            assert!(doc.patch().is_empty());
            assert_eq!(doc.into_value(), json!({"list": [1], "s": "x"}));
        }
    }
}

/// JSON Pointer (RFC 6901) and the JSON Patch subset Theater accepts (RFC 6902: `add`,
/// `remove`, `replace`), with the semantics of the host's `theater_chain::state`.
mod patch {
    use std::borrow::Cow;

    use serde::Serialize;
    use serde_json::Value;

    /// One operation of a JSON Patch, ready to serialise.
    #[derive(Debug, Serialize)]
    pub(crate) struct PatchOp<'a> {
        op: &'static str,
        pub(crate) path: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        value: Option<&'a Value>,
    }

    /// A change to a document, at a path of unescaped tokens (`-` last: the end of an array).
    #[derive(Debug)]
    pub(crate) enum Edit {
        /// Sets an object member, inserts an array item, or replaces the whole document.
        Add(Vec<String>, Value),
        /// Removes an existing member or item.
        Remove(Vec<String>),
        /// Replaces an existing value.
        Replace(Vec<String>, Value),
    }

    impl Edit {
        pub(crate) fn to_op(&self) -> PatchOp<'_> {
            let (op, path, value) = match self {
                Edit::Add(path, value) => ("add", path, Some(value)),
                Edit::Remove(path) => ("remove", path, None),
                Edit::Replace(path, value) => ("replace", path, Some(value)),
            };
            PatchOp {
                op,
                path: pointer(path),
                value,
            }
        }
    }

    /// The escaped pointer to `tokens`.
    pub(crate) fn pointer<T: AsRef<str>>(tokens: &[T]) -> String {
        let mut out = String::new();
        for token in tokens {
            push_token(&mut out, token.as_ref());
        }
        out
    }

    fn push_token(pointer: &mut String, token: &str) {
        pointer.push('/');
        for c in token.chars() {
            match c {
                '~' => pointer.push_str("~0"),
                '/' => pointer.push_str("~1"),
                c => pointer.push(c),
            }
        }
    }

    /// The unescaped tokens of `pointer`.
    pub(crate) fn parse(pointer: &str) -> Result<Vec<String>, String> {
        tokens(pointer)?.map(|t| t.map(Cow::into_owned)).collect()
    }

    fn tokens(pointer: &str) -> Result<impl Iterator<Item = Result<Cow<'_, str>, String>>, String> {
        let rest = match pointer.strip_prefix('/') {
            Some(rest) => Some(rest),
            None if pointer.is_empty() => None,
            None => return Err("a JSON Pointer is empty or starts with \"/\"".into()),
        };
        Ok(rest.into_iter().flat_map(|r| r.split('/')).map(unescape))
    }

    fn unescape(token: &str) -> Result<Cow<'_, str>, String> {
        if !token.contains('~') {
            return Ok(Cow::Borrowed(token));
        }
        let mut out = String::with_capacity(token.len());
        let mut chars = token.chars();
        while let Some(c) = chars.next() {
            if c != '~' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return Err("in a JSON Pointer \"~\" is followed by 0 or 1".into()),
            }
        }
        Ok(Cow::Owned(out))
    }

    /// The value at `pointer`, if it is a pointer and there is one.
    pub(crate) fn lookup<'v>(value: &'v Value, pointer: &str) -> Option<&'v Value> {
        tokens(pointer)
            .ok()?
            .try_fold(value, |v, t| child(v, &t.ok()?))
    }

    /// The value at `tokens`, if any.
    pub(crate) fn resolve<'v>(value: &'v Value, tokens: &[String]) -> Option<&'v Value> {
        tokens.iter().try_fold(value, |v, t| child(v, t))
    }

    fn child<'v>(value: &'v Value, token: &str) -> Option<&'v Value> {
        match value {
            Value::Object(map) => map.get(token),
            Value::Array(items) => items.get(index(token, items.len()).ok()?),
            _ => None,
        }
    }

    fn resolve_mut<'v>(
        mut value: &'v mut Value,
        tokens: &[String],
    ) -> Result<&'v mut Value, String> {
        for token in tokens {
            value = match value {
                Value::Object(map) => map
                    .get_mut(token)
                    .ok_or_else(|| format!("there is no member {token:?}"))?,
                Value::Array(items) => {
                    let i = index(token, items.len())?;
                    &mut items[i]
                }
                other => return Err(format!("{token:?} is inside {}", kind(other))),
            };
        }
        Ok(value)
    }

    /// Applies `edit` to `doc`; returns the edit that undoes it. On error `doc` is unchanged.
    pub(crate) fn apply(doc: &mut Value, edit: &Edit) -> Result<Edit, String> {
        let path = match edit {
            Edit::Add(path, _) | Edit::Remove(path) | Edit::Replace(path, _) => path,
        };
        let Some((last, parent)) = path.split_last() else {
            return match edit {
                Edit::Remove(_) => Err("the whole state cannot be removed".into()),
                Edit::Add(_, new) | Edit::Replace(_, new) => Ok(Edit::Replace(
                    Vec::new(),
                    std::mem::replace(doc, new.clone()),
                )),
            };
        };
        let at = || path.clone();
        match (resolve_mut(doc, parent)?, edit) {
            (Value::Object(map), Edit::Add(_, new)) => {
                Ok(match map.insert(last.clone(), new.clone()) {
                    Some(old) => Edit::Replace(at(), old),
                    None => Edit::Remove(at()),
                })
            }
            (Value::Object(map), Edit::Replace(_, new)) => match map.get_mut(last) {
                Some(slot) => Ok(Edit::Replace(at(), std::mem::replace(slot, new.clone()))),
                None => Err(format!("there is no member {last:?}")),
            },
            (Value::Object(map), Edit::Remove(_)) => match map.remove(last) {
                Some(old) => Ok(Edit::Add(at(), old)),
                None => Err(format!("there is no member {last:?}")),
            },
            (Value::Array(items), Edit::Add(_, new)) => {
                let i = match last.as_str() {
                    "-" => items.len(),
                    _ => index(last, items.len() + 1)?,
                };
                items.insert(i, new.clone());
                let mut undo = parent.to_vec();
                undo.push(i.to_string());
                Ok(Edit::Remove(undo))
            }
            (Value::Array(items), Edit::Replace(_, new)) => {
                let i = index(last, items.len())?;
                Ok(Edit::Replace(
                    at(),
                    std::mem::replace(&mut items[i], new.clone()),
                ))
            }
            (Value::Array(items), Edit::Remove(_)) => {
                let i = index(last, items.len())?;
                Ok(Edit::Add(at(), items.remove(i)))
            }
            (other, _) => Err(format!(
                "its parent is {}, not an object or array",
                kind(other)
            )),
        }
    }

    /// An array index below `bound`: decimal digits without a leading zero.
    fn index(token: &str, bound: usize) -> Result<usize, String> {
        let digits = !token.is_empty()
            && token.bytes().all(|b| b.is_ascii_digit())
            && (token == "0" || !token.starts_with('0'));
        match digits.then(|| token.parse::<usize>().ok()).flatten() {
            Some(i) if i < bound => Ok(i),
            Some(i) => Err(format!("index {i} is past the end of the array")),
            None => Err(format!("{token:?} is not an array index")),
        }
    }

    fn kind(value: &Value) -> &'static str {
        match value {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }

    /// Appends to `ops` the operations that turn `old` into `new` (at `at`, an escaped
    /// pointer): object members replaced, added or removed; array items compared over the
    /// common prefix, then added or removed at the end (highest index first); anything else
    /// replaced when it differs.
    pub(crate) fn diff<'a>(
        old: &Value,
        new: &'a Value,
        at: &mut String,
        ops: &mut Vec<PatchOp<'a>>,
    ) {
        let len = at.len();
        match (old, new) {
            (Value::Object(a), Value::Object(b)) => {
                for (key, va) in a {
                    push_token(at, key);
                    match b.get(key) {
                        Some(vb) => diff(va, vb, at, ops),
                        None => ops.push(op("remove", at, None)),
                    }
                    at.truncate(len);
                }
                for (key, vb) in b.iter().filter(|(key, _)| !a.contains_key(*key)) {
                    push_token(at, key);
                    ops.push(op("add", at, Some(vb)));
                    at.truncate(len);
                }
            }
            (Value::Array(a), Value::Array(b)) => {
                for (i, (va, vb)) in a.iter().zip(b).enumerate() {
                    push_token(at, &i.to_string());
                    diff(va, vb, at, ops);
                    at.truncate(len);
                }
                for (i, vb) in b.iter().enumerate().skip(a.len()) {
                    push_token(at, &i.to_string());
                    ops.push(op("add", at, Some(vb)));
                    at.truncate(len);
                }
                for i in (b.len()..a.len()).rev() {
                    push_token(at, &i.to_string());
                    ops.push(op("remove", at, None));
                    at.truncate(len);
                }
            }
            (a, b) if a == b => {}
            (_, b) => ops.push(op("replace", at, Some(b))),
        }
    }

    fn op<'a>(op: &'static str, path: &str, value: Option<&'a Value>) -> PatchOp<'a> {
        PatchOp {
            op,
            path: path.to_string(),
            value,
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use serde_json::json;

        fn diff_of(old: &Value, new: &Value) -> Value {
            let mut ops = Vec::new();
            diff(old, new, &mut String::new(), &mut ops);
            serde_json::to_value(ops).unwrap()
        }

        #[test]
        fn a_diff_touches_only_what_changed() {
            let old = json!({"a": 1, "gone": true, "list": [1, 2, 3], "o": {"x~/": [1]}});
            let new = json!({"a": 2, "new": null, "list": [1, 5], "o": {"x~/": [1, 2]}});
            assert_eq!(
                diff_of(&old, &new),
                json!([
                    {"op": "replace", "path": "/a", "value": 2},
                    {"op": "remove", "path": "/gone"},
                    {"op": "replace", "path": "/list/1", "value": 5},
                    {"op": "remove", "path": "/list/2"},
                    {"op": "add", "path": "/o/x~0~1/1", "value": 2},
                    {"op": "add", "path": "/new", "value": null},
                ])
            );
            assert_eq!(diff_of(&old, &old), json!([]));
            assert_eq!(
                diff_of(&json!([1]), &json!({})),
                json!([{"op": "replace", "path": "", "value": {}}])
            );
        }

        #[test]
        fn surplus_items_go_from_the_end() {
            assert_eq!(
                diff_of(&json!([1, 2, 3]), &json!([1])),
                json!([{"op": "remove", "path": "/2"}, {"op": "remove", "path": "/1"}])
            );
        }

        #[test]
        fn pointers_round_trip() {
            assert_eq!(pointer(&["a/b", "c~d", ""]), "/a~1b/c~0d/");
            assert_eq!(parse("/a~1b/c~0d/").unwrap(), ["a/b", "c~d", ""]);
            assert_eq!(parse("").unwrap(), Vec::<String>::new());
            assert!(parse("a").is_err());
            assert!(parse("/a~2").is_err());
            let doc = json!({"a/b": [10, {"": 1}]});
            assert_eq!(lookup(&doc, "/a~1b/1/"), Some(&json!(1)));
            assert_eq!(lookup(&doc, ""), Some(&doc));
            assert_eq!(lookup(&doc, "/a~1b/01"), None);
            assert_eq!(lookup(&doc, "/a~1b/-"), None);
        }
    }
}

/// What the export macros expand to: the state kept between inputs, and how each kind of
/// actor answers the world's exports.
#[doc(hidden)]
pub mod __rt {
    use std::cell::RefCell;
    use std::marker::PhantomData;

    use serde::{Deserialize, Serialize};
    use serde_json::Value;

    use crate::bindings::{Payload, StateChange};
    use crate::patch::{self, PatchOp};
    use crate::{Actor, Doc, DocActor, Input, Output, host};

    thread_local! {
        // A component instance is single-threaded: this is the instance's one copy of the
        // state, as JSON (what Theater holds too).
        static KEPT: RefCell<Value> = const { RefCell::new(Value::Null) };
    }

    /// The world's exports, as one kind of actor implements them.
    pub trait Exports {
        /// `init`: the initial state, kept.
        fn init(params: Vec<u8>) -> Result<Vec<u8>, String>;
        /// `load-state`: replaces the kept state.
        fn load_state(state: Vec<u8>) -> Result<(), String>;
        /// `handle`: one input against the kept state, and what it changed.
        fn handle(input: Payload) -> Result<(Payload, StateChange), String>;
        /// `verify`: the kept state's invariants.
        fn verify() -> bool;
        /// `handle-verified`: `handle`, then `verify` if the state changed, in one call from
        /// the host: what the two calls would answer, for a `verify` that reads only the state
        /// (as it must: a host call it makes here is recorded as the input's, where a `verify`
        /// called on its own has its host calls refused).
        fn handle_verified(input: Payload) -> Result<(Payload, StateChange, bool), String> {
            let (output, change) = Self::handle(input)?;
            let ok = matches!(change, StateChange::Unchanged) || Self::verify();
            Ok((output, change, ok))
        }
        /// `state`: the kept state as JSON.
        fn state() -> Vec<u8> {
            KEPT.with_borrow(|k| serde_json::to_vec(k).unwrap_or_default())
        }
    }

    /// The exports of an [`Actor`].
    pub struct ActorExports<A>(PhantomData<A>);

    /// The exports of a [`DocActor`].
    pub struct DocExports<A>(PhantomData<A>);

    // The typed state is derived from the kept JSON at every input, never kept itself: a
    // type that does not round-trip through JSON (a `#[serde(skip)]` field, say) would
    // otherwise behave differently live than on a replay, which starts from the JSON.
    impl<A: Actor> Exports for ActorExports<A> {
        fn init(params: Vec<u8>) -> Result<Vec<u8>, String> {
            install_panic_hook();
            let state = A::init(params_from(&params)?)?;
            let value = to_value(&state)?;
            let bytes = to_bytes(&value)?;
            keep(value);
            Ok(bytes)
        }

        fn load_state(state: Vec<u8>) -> Result<(), String> {
            install_panic_hook();
            let value: Value = serde_json::from_slice(&state).map_err(does_not_fit)?;
            typed::<A>(&value)?;
            keep(value);
            Ok(())
        }

        fn handle(input: Payload) -> Result<(Payload, StateChange), String> {
            install_panic_hook();
            let input = input_from(input)?;
            let state = KEPT.with_borrow(typed::<A>)?;
            // An error from here until `keep` leaves the kept state as it was.
            let (output, next) = A::handle(state, input)?;
            let payload = payload_from(&output)?;
            let value = to_value(&next)?;
            let change = KEPT.with_borrow(|kept| {
                let mut ops = Vec::new();
                patch::diff(kept, &value, &mut String::new(), &mut ops);
                change_of(&ops, &value)
            })?;
            keep(value);
            Ok((payload, change))
        }

        fn verify() -> bool {
            install_panic_hook();
            KEPT.with_borrow(|kept| typed::<A>(kept).is_ok_and(|state| A::verify(&state)))
        }
    }

    impl<A: DocActor> Exports for DocExports<A> {
        fn init(params: Vec<u8>) -> Result<Vec<u8>, String> {
            install_panic_hook();
            let value = A::init(params_from(&params)?)?;
            let bytes = to_bytes(&value)?;
            keep(value);
            Ok(bytes)
        }

        fn load_state(state: Vec<u8>) -> Result<(), String> {
            install_panic_hook();
            let value = serde_json::from_slice(&state)
                .map_err(|e| format!("the state is not JSON: {e}"))?;
            keep(value);
            Ok(())
        }

        fn handle(input: Payload) -> Result<(Payload, StateChange), String> {
            install_panic_hook();
            let input = input_from(input)?;
            let mut doc = Doc::new(take_value());
            let answer = A::handle(&mut doc, input).and_then(|output| {
                Ok((
                    payload_from(&output)?,
                    change_of(&doc.patch(), doc.value())?,
                ))
            });
            let value = match answer {
                Ok(_) => doc.into_value(),
                Err(_) => doc.undo(),
            };
            keep(value);
            answer
        }

        fn verify() -> bool {
            install_panic_hook();
            let doc = Doc::new(take_value());
            let ok = A::verify(&doc);
            keep(doc.into_value());
            ok
        }
    }

    fn keep(value: Value) {
        KEPT.set(value);
    }

    fn take_value() -> Value {
        KEPT.take()
    }

    /// What the patch `ops` (which turn the kept state into `whole`) tell Theater.
    fn change_of(ops: &[PatchOp<'_>], whole: &Value) -> Result<StateChange, String> {
        Ok(if ops.is_empty() {
            StateChange::Unchanged
        } else if ops.iter().any(|op| op.path.is_empty()) {
            StateChange::Replaced(to_bytes(whole)?)
        } else {
            StateChange::Patch(to_bytes(&ops)?)
        })
    }

    fn typed<A: Actor>(value: &Value) -> Result<A::State, String> {
        A::State::deserialize(value).map_err(does_not_fit)
    }

    fn does_not_fit(e: serde_json::Error) -> String {
        format!("state does not fit the actor's type: {e}")
    }

    fn params_from(params: &[u8]) -> Result<Value, String> {
        if params.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_slice(params).map_err(|e| format!("init params are not JSON: {e}"))
    }

    fn input_from(input: Payload) -> Result<Input, String> {
        crate::io::input_from_parts(&input.json, input.bytes)
    }

    fn payload_from(output: &Output) -> Result<Payload, String> {
        let (json, bytes) = crate::io::output_parts(output)?;
        Ok(Payload { json, bytes })
    }

    fn to_value<T: Serialize>(v: &T) -> Result<Value, String> {
        serde_json::to_value(v).map_err(|e| format!("cannot serialise the state: {e}"))
    }

    fn to_bytes<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(v).map_err(|e| format!("cannot serialise: {e}"))
    }

    fn install_panic_hook() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::panic::set_hook(Box::new(|info| {
                host::log(host::Level::Error, &format!("panic: {info}"));
            }));
        });
    }

    #[cfg(test)]
    mod tests {
        use std::collections::BTreeMap;

        use serde_json::json;

        use super::*;

        fn request(payload: Value) -> Payload {
            let json = serde_json::to_vec(&json!({"type": "request", "payload": payload}));
            Payload {
                json: json.unwrap(),
                bytes: Vec::new(),
            }
        }

        fn patch_of(change: StateChange) -> Value {
            match change {
                StateChange::Patch(p) => serde_json::from_slice(&p).unwrap(),
                StateChange::Unchanged => json!([]),
                StateChange::Replaced(_) => panic!("replaced"),
            }
        }

        /// `{"set": [k, v]}` sets k to v; anything else fails, after changing the state.
        struct Map;

        impl Actor for Map {
            type State = BTreeMap<String, i64>;
            fn init(_: Value) -> Result<Self::State, String> {
                Ok(BTreeMap::from([("a".into(), 1)]))
            }
            fn handle(mut s: Self::State, input: Input) -> Result<(Output, Self::State), String> {
                let p = input.payload().cloned().unwrap_or_default();
                s.insert("broken".into(), -1);
                let (k, v) = p["set"][0]
                    .as_str()
                    .zip(p["set"][1].as_i64())
                    .ok_or("bad")?;
                s.remove("broken");
                s.insert(k.into(), v);
                Ok((Output::None, s))
            }
            fn verify(s: &Self::State) -> bool {
                s.values().all(|v| *v >= 0)
            }
        }

        #[test]
        fn an_actor_answers_with_the_diff_and_keeps_its_state_on_error() {
            type E = ActorExports<Map>;
            assert_eq!(E::init(Vec::new()).unwrap(), br#"{"a":1}"#);
            let (_, change) = E::handle(request(json!({"set": ["b", 2]}))).unwrap();
            assert_eq!(
                patch_of(change),
                json!([{"op": "add", "path": "/b", "value": 2}])
            );
            assert!(E::handle(request(json!("nope"))).is_err());
            assert_eq!(E::state(), br#"{"a":1,"b":2}"#);
            assert!(E::verify());
            let (_, change) = E::handle(request(json!({"set": ["a", 1]}))).unwrap();
            assert_eq!(patch_of(change), json!([]));
            assert!(E::load_state(br#"{"a":"x"}"#.to_vec()).is_err());
            assert_eq!(E::state(), br#"{"a":1,"b":2}"#);
            E::load_state(br#"{"z":-1}"#.to_vec()).unwrap();
            assert!(!E::verify());
        }

        #[test]
        fn handle_verified_answers_what_handle_then_verify_answer() {
            type E = ActorExports<Map>;
            E::init(Vec::new()).unwrap();
            let (_, change, ok) = E::handle_verified(request(json!({"set": ["b", 2]}))).unwrap();
            assert_eq!(
                patch_of(change),
                json!([{"op": "add", "path": "/b", "value": 2}])
            );
            assert!(ok);
            // A change verify rejects: said, and kept (the host sends the state again).
            let (_, _, ok) = E::handle_verified(request(json!({"set": ["c", -3]}))).unwrap();
            assert!(!ok);
            assert!(!E::verify());
            assert_eq!(E::state(), br#"{"a":1,"b":2,"c":-3}"#);
            // Nothing changed: nothing to verify, even on a state verify would reject.
            let (_, change, ok) = E::handle_verified(request(json!({"set": ["c", -3]}))).unwrap();
            assert_eq!(patch_of(change), json!([]));
            assert!(ok);
            assert!(E::handle_verified(request(json!("nope"))).is_err());
            assert_eq!(E::state(), br#"{"a":1,"b":2,"c":-3}"#);
        }

        /// `{"push": v}` appends v to `/list`; `{"fail": v}` does too, then fails.
        struct List;

        impl DocActor for List {
            fn init(_: Value) -> Result<Value, String> {
                Ok(json!({"list": []}))
            }
            fn handle(doc: &mut Doc, input: Input) -> Result<Output, String> {
                let p = input.payload().cloned().unwrap_or_default();
                if let Some(v) = p.get("push") {
                    doc.push("/list", v)?;
                    return Ok(Output::None);
                }
                doc.push("/list", &p["fail"])?;
                doc.set("", json!("gone"))?;
                Err("failed".into())
            }
            fn verify(doc: &Doc) -> bool {
                doc.get("/list").is_some_and(Value::is_array)
            }
        }

        #[test]
        fn a_doc_actor_answers_with_its_writes_and_undoes_them_on_error() {
            type E = DocExports<List>;
            E::init(b"null".to_vec()).unwrap();
            let (_, change) = E::handle(request(json!({"push": 1}))).unwrap();
            assert_eq!(
                patch_of(change),
                json!([{"op": "add", "path": "/list/-", "value": 1}])
            );
            assert!(E::handle(request(json!({"fail": 2}))).is_err());
            assert_eq!(E::state(), br#"{"list":[1]}"#);
            assert!(E::verify());
            E::load_state(br#"{"list":{}}"#.to_vec()).unwrap();
            assert!(!E::verify());
            assert!(E::load_state(b"{".to_vec()).is_err());
        }
    }
}

/// Exports `$actor` (a type implementing [`Actor`]) as the component's actor.
#[macro_export]
macro_rules! export_actor {
    ($actor:ty) => {
        $crate::__export!($crate::__rt::ActorExports<$actor>);
    };
}

/// Exports `$actor` (a type implementing [`DocActor`]) as the component's actor.
#[macro_export]
macro_rules! export_doc_actor {
    ($actor:ty) => {
        $crate::__export!($crate::__rt::DocExports<$actor>);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export {
    ($exports:ty) => {
        struct __TheaterExport;

        impl $crate::bindings::Guest for __TheaterExport {
            fn init(params: Vec<u8>) -> Result<Vec<u8>, String> {
                <$exports as $crate::__rt::Exports>::init(params)
            }
            fn load_state(state: Vec<u8>) -> Result<(), String> {
                <$exports as $crate::__rt::Exports>::load_state(state)
            }
            fn handle(
                input: $crate::bindings::Payload,
            ) -> Result<($crate::bindings::Payload, $crate::bindings::StateChange), String> {
                <$exports as $crate::__rt::Exports>::handle(input)
            }
            fn verify() -> bool {
                <$exports as $crate::__rt::Exports>::verify()
            }
            fn handle_verified(
                input: $crate::bindings::Payload,
            ) -> Result<
                (
                    $crate::bindings::Payload,
                    $crate::bindings::StateChange,
                    bool,
                ),
                String,
            > {
                <$exports as $crate::__rt::Exports>::handle_verified(input)
            }
            fn state() -> Vec<u8> {
                <$exports as $crate::__rt::Exports>::state()
            }
        }

        $crate::bindings::export_wit!(__TheaterExport with_types_in $crate::bindings);
    };
}
