//! The counter's second version, to show an upgrade (`theater upgrade counter
//! target/examples/counter-v2.wasm`): the same state, read as the first version left it, but
//! `{"add": n}` now replies `{"count": c, "version": 2}`, and a count below zero is a state
//! it refuses (`verify`), so an upgrade of a counter that went negative is refused with
//! nothing changed. `{"get": true}` replies with the count, as before.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, json, serde_json};

#[derive(Serialize, Deserialize)]
struct State {
    count: i64,
    #[serde(flatten)]
    rest: serde_json::Map<String, Value>,
}

struct CounterV2;

impl Actor for CounterV2 {
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
        Ok((
            Output::reply(json!({"count": count, "version": 2})),
            State { count, ..state },
        ))
    }

    fn verify(state: &State) -> bool {
        state.count >= 0
    }
}

theater_guest::export_actor!(CounterV2);
