//! A bank account that transfers money to other accounts by message.
//!
//! - init `{"balance": n}` (default 0).
//! - request `{"transfer": {"to": id, "amount": n}}`: debits `n` and sends `{"credit": n}` to
//!   `to`; fails (nothing debited, nothing sent) if `n` is not positive, exceeds the balance,
//!   or `to` cannot be reached. Replies with the new balance.
//! - message `{"credit": n}` from another account: credits `n`.
//! - request `{"balance": true}`: replies with the balance.
//!
//! A balance never goes negative (`verify`), and money moves only as a debit in one chain
//! linked to a credit in another: a verifier over both chains can check that none is created
//! or lost.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, json, msg};

#[derive(Serialize, Deserialize)]
struct State {
    balance: i64,
}

struct Account;

impl Actor for Account {
    type State = State;

    fn init(params: Value) -> Result<State, String> {
        let balance = match &params {
            Value::Null => 0,
            p => p["balance"].as_i64().ok_or("init: expected {\"balance\": n}")?,
        };
        if balance < 0 {
            return Err("init: a balance cannot be negative".into());
        }
        Ok(State { balance })
    }

    fn handle(mut state: State, input: Input) -> Result<(Output, State), String> {
        match &input {
            Input::Message { payload, from } => {
                let amount = payload["credit"].as_i64().ok_or("expected {\"credit\": n}")?;
                if amount <= 0 || from.is_none() {
                    return Err(format!("refusing credit {payload} from {from:?}"));
                }
                state.balance = state.balance.checked_add(amount).ok_or("overflow")?;
                Ok((Output::None, state))
            }
            Input::Request { payload } => {
                if payload["balance"] == json!(true) {
                    return Ok((Output::reply(json!(state.balance)), state));
                }
                let t = &payload["transfer"];
                let to = t["to"].as_str().ok_or("expected {\"transfer\": {\"to\", \"amount\"}}")?;
                let amount = t["amount"].as_i64().ok_or("the amount must be an integer")?;
                if amount <= 0 {
                    return Err(format!("the amount must be positive, got {amount}"));
                }
                if amount > state.balance {
                    return Err(format!(
                        "insufficient funds: balance {}, transfer {amount}",
                        state.balance
                    ));
                }
                msg::send(to, &json!({"credit": amount}))?;
                state.balance -= amount;
                Ok((Output::reply(json!(state.balance)), state))
            }
            _ => Err("an account takes messages and requests".into()),
        }
    }

    fn verify(state: &State) -> bool {
        state.balance >= 0
    }
}

theater_guest::export_actor!(Account);
