//! A test actor that misreports what it changed, written against the raw bindings (the SDK
//! never misreports): the host must catch each kind of lie, fail the input and keep its
//! state. Its state is `{"count": n}`; a message or request `{"add": n, "lie": how}` adds
//! `n` to its own count and answers with it, then reports:
//!
//! | `lie` | reported change |
//! |---|---|
//! | absent | the truth: `count` replaced |
//! | `"omit"` | nothing changed |
//! | `"wrong"` | `count` replaced by another number |
//! | `"bad-path"` | a patch of a member that does not exist |
//! | `"not-a-patch"` | bytes that are not a JSON Patch |

use std::cell::Cell;

use theater_guest::bindings::{self, Guest, Payload, StateChange};
use theater_guest::{Value, json, serde_json};

thread_local! {
    static COUNT: Cell<i64> = const { Cell::new(0) };
}

fn state_json() -> Vec<u8> {
    json!({"count": COUNT.get()}).to_string().into_bytes()
}

fn patch(path: &str, value: i64) -> StateChange {
    let ops = json!([{"op": "replace", "path": path, "value": value}]);
    StateChange::Patch(ops.to_string().into_bytes())
}

struct Liar;

impl Guest for Liar {
    fn init(_params: Vec<u8>) -> Result<Vec<u8>, String> {
        COUNT.set(0);
        Ok(state_json())
    }

    fn load_state(state: Vec<u8>) -> Result<(), String> {
        let state: Value = serde_json::from_slice(&state).map_err(|e| e.to_string())?;
        let count = state["count"].as_i64().ok_or("expected {\"count\": n}")?;
        COUNT.set(count);
        Ok(())
    }

    fn handle(input: Payload) -> Result<(Payload, StateChange), String> {
        let input: Value = serde_json::from_slice(&input.json).map_err(|e| e.to_string())?;
        let payload = &input["payload"];
        let add = payload["add"].as_i64().ok_or("expected {\"add\": n}")?;
        let count = COUNT.get() + add;
        COUNT.set(count);
        let change = match payload["lie"].as_str() {
            None => patch("/count", count),
            Some("omit") => StateChange::Unchanged,
            Some("wrong") => patch("/count", count + 1000),
            Some("bad-path") => patch("/no-such-member", count),
            Some("not-a-patch") => StateChange::Patch(b"{\"op\": \"replace\"}".to_vec()),
            Some(other) => return Err(format!("unknown lie {other:?}")),
        };
        let output = json!({"type": "reply", "payload": count});
        Ok((
            Payload {
                json: output.to_string().into_bytes(),
                bytes: Vec::new(),
            },
            change,
        ))
    }

    fn verify() -> bool {
        true
    }

    // Lies the same way in one call: `verify` has nothing against any count.
    fn handle_verified(input: Payload) -> Result<(Payload, StateChange, bool), String> {
        let (output, change) = Self::handle(input)?;
        Ok((output, change, true))
    }

    fn state() -> Vec<u8> {
        state_json()
    }
}

bindings::export_wit!(Liar with_types_in theater_guest::bindings);
