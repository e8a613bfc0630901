//! Ping-pong, and messages forwarded along a route: the same component plays every part.
//!
//! - request `{"serve": to, "rounds": r}`: sends `{"ball": 1, "rounds": r}` to `to`.
//! - message `{"ball": n, "rounds": r}`: returns `{"ball": n + 1, ...}` to its sender while
//!   `n < r`. Two actors thus exchange `r` messages.
//! - message `{"route": [a, b, ...], "tag": t}`: forwards `{"route": [b, ...], "tag": t}` to
//!   `a`; stops when the route is empty (rings, random walks).
//! - request `{"ask": to, "payload": p, "timeout_ms": t}`: requests `p` from `to` and replies
//!   with the answer; the input fails if the request does.
//! - any message with `"work": n` first spins `n` rounds of arithmetic (a slow receiver).
//! - request `{"send": to, "message": v}`: sends `v` to `to`.
//! - request `{"echo": v}`: replies `v`. Request `{"get": true}`: replies with the state.
//!
//! The state counts messages received and sent, and keeps a digest of the order in which
//! messages arrived, so a replay or a lost or doubled message shows.

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, json, msg, serde_json};

#[derive(Serialize, Deserialize)]
struct State {
    received: u64,
    sent: u64,
    /// A running FNV-1a over the messages received, in order.
    digest: u64,
}

fn fold(digest: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(digest, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn send(state: &mut State, to: &str, message: Value) -> Result<(), String> {
    msg::send(to, &message)?;
    state.sent += 1;
    Ok(())
}

struct PingPong;

impl Actor for PingPong {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State {
            received: 0,
            sent: 0,
            digest: 0xcbf2_9ce4_8422_2325,
        })
    }

    fn handle(mut state: State, input: Input) -> Result<(Output, State), String> {
        match &input {
            Input::Message { payload, from } => {
                state.received += 1;
                state.digest = fold(state.digest, payload.to_string().as_bytes());
                if let Some(n) = payload["work"].as_u64() {
                    let mut x = state.digest;
                    for i in 0..n {
                        x = std::hint::black_box(x.wrapping_mul(0x5851_f42d_4c95_7f2d) ^ i);
                    }
                    state.digest ^= x;
                }
                if let Some(n) = payload["ball"].as_u64() {
                    let rounds = payload["rounds"].as_u64().unwrap_or(0);
                    let from = from.as_deref().ok_or("a ball with no sender")?;
                    if n < rounds {
                        send(&mut state, from, json!({"ball": n + 1, "rounds": rounds}))?;
                    }
                } else if let Some(route) = payload["route"].as_array() {
                    if let Some((next, rest)) = route.split_first() {
                        let next = next.as_str().ok_or("route entries are actor names")?;
                        send(&mut state, next, json!({"route": rest, "tag": payload["tag"]}))?;
                    }
                }
                Ok((Output::None, state))
            }
            Input::Request { payload } => {
                if let Some(to) = payload["serve"].as_str() {
                    let rounds = payload["rounds"].as_u64().unwrap_or(1);
                    send(&mut state, to, json!({"ball": 1, "rounds": rounds}))?;
                    return Ok((Output::reply(json!({"served": to})), state));
                }
                if let Some(to) = payload["send"].as_str() {
                    send(&mut state, to, payload["message"].clone())?;
                    return Ok((Output::reply(json!({"sent": to})), state));
                }
                if let Some(to) = payload["ask"].as_str() {
                    let timeout = payload["timeout_ms"].as_u64().unwrap_or(1000);
                    let timeout = u32::try_from(timeout).unwrap_or(u32::MAX);
                    let answer = msg::request(to, &payload["payload"], timeout)?;
                    return Ok((Output::reply(json!({"answer": answer})), state));
                }
                if payload.get("echo").is_some() {
                    return Ok((Output::reply(payload["echo"].clone()), state));
                }
                if payload["get"] == json!(true) {
                    let s = serde_json::to_value(&state).map_err(|e| e.to_string())?;
                    return Ok((Output::reply(s), state));
                }
                Err(format!("unknown request {payload}"))
            }
            _ => Err("pingpong takes messages and requests".into()),
        }
    }
}

theater_guest::export_actor!(PingPong);
