//! A worker, spawned by the supervisor example as its child: `{"work": n}` replies `2n` and
//! counts the jobs done; `{"crash": true}` crashes it (a trap: nothing is recorded), which
//! its supervisor is told of.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, json};

#[derive(Serialize, Deserialize)]
struct State {
    done: u64,
    label: Value,
}

struct Worker;

impl Actor for Worker {
    type State = State;

    fn init(params: Value) -> Result<State, String> {
        Ok(State {
            done: 0,
            label: params,
        })
    }

    fn handle(state: State, input: Input) -> Result<(Output, State), String> {
        let p = input.payload().ok_or("a worker takes messages and requests")?;
        if p["crash"] == json!(true) {
            panic!("asked to crash");
        }
        if p["status"] == json!(true) {
            let reply = json!({"done": state.done, "label": state.label});
            return Ok((Output::reply(reply), state));
        }
        let n = p["work"].as_i64().ok_or("expected {\"work\": n}")?;
        let done = state.done + 1;
        Ok((
            Output::reply(json!(n.saturating_mul(2))),
            State { done, ..state },
        ))
    }
}

theater_guest::export_actor!(Worker);
