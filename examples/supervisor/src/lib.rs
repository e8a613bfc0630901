//! A supervisor written as an actor. `{"spawn": name}` starts a worker child (the `worker`
//! kind its manifest grants); when one fails, the supervisor is told (an input of its own,
//! recorded in its chain) and spawns it again, which resumes the worker from its chain: up to
//! 5 times, then it leaves it down. `{"stop": name}` stops one; `{"status": true}` shows them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, ChildEvent, Input, Output, Value, actors, json, serde_json};

/// Restarts of one worker before the supervisor leaves it down.
const MAX_RESTARTS: u32 = 5;

#[derive(Serialize, Deserialize)]
struct Worker {
    status: String,
    restarts: u32,
    #[serde(default)]
    last_failure: Option<String>,
}

#[derive(Serialize, Deserialize, Default)]
struct State {
    workers: BTreeMap<String, Worker>,
}

struct Supervisor;

impl Actor for Supervisor {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State::default())
    }

    fn handle(mut state: State, input: Input) -> Result<(Output, State), String> {
        if let Input::Child {
            name,
            event,
            reason,
        } = &input
        {
            let Some(w) = state.workers.get_mut(name) else {
                return Ok((Output::None, state));
            };
            match event {
                ChildEvent::Failed if w.restarts < MAX_RESTARTS => {
                    w.restarts += 1;
                    w.last_failure = reason.clone();
                    w.status = match actors::spawn("worker", name, None) {
                        Ok(_) => "restarted".into(),
                        Err(e) => format!("down: {e}"),
                    };
                }
                ChildEvent::Failed => {
                    w.last_failure = reason.clone();
                    w.status = "down: too many restarts".into();
                }
                ChildEvent::Stopped => w.status = "stopped".into(),
                ChildEvent::Restarting | ChildEvent::Restarted => {}
            }
            return Ok((Output::None, state));
        }
        let p = input.payload().ok_or("the supervisor takes messages and requests")?;
        if let Some(name) = p["spawn"].as_str() {
            let init = p.get("init");
            actors::spawn("worker", name, init)?;
            state.workers.insert(
                name.to_string(),
                Worker {
                    status: "running".into(),
                    restarts: 0,
                    last_failure: None,
                },
            );
            return Ok((Output::reply(json!({"spawned": name})), state));
        }
        if let Some(name) = p["stop"].as_str() {
            actors::stop(name)?;
            if let Some(w) = state.workers.get_mut(name) {
                w.status = "stopping".into();
            }
            return Ok((Output::reply(json!({"stopping": name})), state));
        }
        if p["status"] == json!(true) {
            let reply = serde_json::to_value(&state.workers).map_err(|e| e.to_string())?;
            return Ok((Output::reply(reply), state));
        }
        Err("expected {\"spawn\": name}, {\"stop\": name} or {\"status\": true}".into())
    }
}

theater_guest::export_actor!(Supervisor);
