//! A counter: `{"add": n}` adds n and replies with the new count; `{"get": true}` replies
//! with the count. The manifest's `[init]` may set a starting `count`.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, json};

#[derive(Serialize, Deserialize)]
struct State {
    count: i64,
}

struct Counter;

impl Actor for Counter {
    type State = State;

    fn init(params: Value) -> Result<State, String> {
        Ok(State {
            count: params["count"].as_i64().unwrap_or(0),
        })
    }

    fn handle(state: State, input: Input) -> Result<(Output, State), String> {
        let p = input.payload().ok_or("the counter takes messages and requests")?;
        if p["get"] == json!(true) {
            return Ok((Output::reply(json!(state.count)), state));
        }
        let add = p["add"].as_i64().ok_or("expected {\"add\": n} or {\"get\": true}")?;
        let count = state.count.checked_add(add).ok_or("count overflow")?;
        Ok((Output::reply(json!(count)), State { count }))
    }
}

theater_guest::export_actor!(Counter);
