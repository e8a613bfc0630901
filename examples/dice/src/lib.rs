//! Rolls dice: each input reads the host clock and randomness (both recorded in the chain,
//! so replay rolls the very same numbers) and appends `{"at": ms, "roll": 1..=6}`.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, host, json};

#[derive(Serialize, Deserialize)]
struct Roll {
    at: u64,
    roll: u8,
}

#[derive(Serialize, Deserialize)]
struct State {
    started: u64,
    rolls: Vec<Roll>,
}

struct Dice;

impl Actor for Dice {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State {
            started: host::now_millis(),
            rolls: Vec::new(),
        })
    }

    fn handle(mut state: State, _: Input) -> Result<(Output, State), String> {
        let at = host::now_millis();
        let bytes = host::random_bytes(8);
        let n = u64::from_le_bytes(bytes.try_into().map_err(|_| "short random read")?);
        let roll = (n % 6 + 1) as u8;
        state.rolls.push(Roll { at, roll });
        Ok((Output::reply(json!({"at": at, "roll": roll})), state))
    }
}

theater_guest::export_actor!(Dice);
