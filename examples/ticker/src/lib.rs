//! A periodic job, and reminders.
//!
//! - request `{"every_ms": n}`: runs the job every n ms (timer "job"); `{"stop": true}` stops it.
//! - request `{"remind": text, "in_ms": n}`: a one-shot timer; when it fires, the text is
//!   moved from `pending` to `reminded`.
//! - request `{"get": true}`: the state.
//!
//! The job counts its runs and remembers when the last one was due; the chain records every
//! firing, so replay (and a restart) sees exactly the runs that happened.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, json, serde_json, timers};

#[derive(Serialize, Deserialize)]
struct State {
    runs: u64,
    last_due_ms: u64,
    every_ms: Option<u64>,
    pending: Vec<(String, String)>,
    reminded: Vec<String>,
}

struct Ticker;

impl Actor for Ticker {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State {
            runs: 0,
            last_due_ms: 0,
            every_ms: None,
            pending: Vec::new(),
            reminded: Vec::new(),
        })
    }

    fn handle(mut state: State, input: Input) -> Result<(Output, State), String> {
        match input {
            Input::Timer { name, due_ms } if name == "job" => {
                state.runs += 1;
                state.last_due_ms = due_ms;
                Ok((Output::None, state))
            }
            Input::Timer { name, .. } => {
                if let Some(i) = state.pending.iter().position(|(n, _)| *n == name) {
                    let (_, text) = state.pending.remove(i);
                    state.reminded.push(text);
                }
                Ok((Output::None, state))
            }
            Input::Request { payload } => {
                if let Some(every) = payload["every_ms"].as_u64() {
                    let due = timers::set("job", every, Some(every))?;
                    state.every_ms = Some(every);
                    return Ok((Output::reply(json!({"first_due_ms": due})), state));
                }
                if payload["stop"] == json!(true) {
                    timers::cancel("job")?;
                    state.every_ms = None;
                    return Ok((Output::reply(json!({"stopped": true})), state));
                }
                if let Some(text) = payload["remind"].as_str() {
                    let name = format!("reminder-{}", state.pending.len() + state.reminded.len());
                    let due = timers::set(&name, payload["in_ms"].as_u64().unwrap_or(0), None)?;
                    state.pending.push((name, text.to_string()));
                    return Ok((Output::reply(json!({"due_ms": due})), state));
                }
                if payload["get"] == json!(true) {
                    let s = serde_json::to_value(&state).map_err(|e| e.to_string())?;
                    return Ok((Output::reply(s), state));
                }
                Err(format!("unknown request {payload}"))
            }
            _ => Err("the ticker takes requests and its timers".into()),
        }
    }
}

theater_guest::export_actor!(Ticker);
