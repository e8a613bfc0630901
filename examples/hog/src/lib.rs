//! Misbehaves on request: `{"spin": true}` loops forever, `{"alloc_mb": n}` allocates and
//! touches n MiB; `{"add": n}` counts. For testing CPU and memory limits.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, json};

#[derive(Serialize, Deserialize)]
struct State {
    count: i64,
}

struct Hog;

impl Actor for Hog {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State { count: 0 })
    }

    fn handle(state: State, input: Input) -> Result<(Output, State), String> {
        let p = input.payload().ok_or("hog takes messages and requests")?;
        if p["spin"] == json!(true) {
            let mut x: u64 = 1;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        if let Some(mb) = p["alloc_mb"].as_u64() {
            let mut v: Vec<u8> = Vec::new();
            for _ in 0..mb {
                v.extend(std::iter::repeat_n(1u8, 1 << 20));
            }
            return Ok((Output::reply(json!(v.len())), state));
        }
        let add = p["add"].as_i64().ok_or("expected {\"add\": n}")?;
        let count = state.count + add;
        Ok((Output::reply(json!(count)), State { count }))
    }
}

theater_guest::export_actor!(Hog);
