//! A counter: `{"add": n}` adds n and replies with the new count; `{"get": true}` replies
//! with the count. The manifest's `[init]` becomes the initial state: it may set a starting
//! `count`, and any other fields ride along untouched.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, json, serde_json};

#[derive(Serialize, Deserialize)]
struct State {
    count: i64,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

struct Counter;

impl Actor for Counter {
    type State = State;

    fn init(params: Value) -> Result<State, String> {
        let mut rest = match params {
            Value::Object(map) => map,
            Value::Null => serde_json::Map::new(),
            other => return Err(format!("init params must be a table, got {other}")),
        };
        let count = rest.remove("count").and_then(|c| c.as_i64()).unwrap_or(0);
        Ok(State { count, rest })
    }

    fn handle(state: State, input: Input) -> Result<(Output, State), String> {
        let p = input.payload().ok_or("the counter takes messages and requests")?;
        if p["get"] == json!(true) {
            return Ok((Output::reply(json!(state.count)), state));
        }
        let add = p["add"].as_i64().ok_or("expected {\"add\": n} or {\"get\": true}")?;
        let count = state.count.checked_add(add).ok_or("count overflow")?;
        Ok((Output::reply(json!(count)), State { count, ..state }))
    }
}

theater_guest::export_actor!(Counter);
