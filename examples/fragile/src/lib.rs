//! A counter that traps on bad input: `{"add": n}` counts, anything else panics (a trap the
//! host records as a failed input, leaving the state as it was).

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, json};

#[derive(Serialize, Deserialize)]
struct State {
    count: i64,
}

struct Fragile;

impl Actor for Fragile {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State { count: 0 })
    }

    fn handle(state: State, input: Input) -> Result<(Output, State), String> {
        let add = input
            .payload()
            .and_then(|p| p["add"].as_i64())
            .expect("fragile only understands {\"add\": n}");
        let count = state.count + add;
        Ok((Output::reply(json!(count)), State { count }))
    }
}

theater_guest::export_actor!(Fragile);
