//! A chat room over WebSocket, and an echo for binary messages.
//!
//! - `GET /chat` with a WebSocket upgrade: accepted (101); the connection (named by the
//!   `theater-ws-conn` header) joins the room. Any other request: 426 or 404.
//! - a text message: sent to every member as `{"from": conn, "text": ...}`.
//! - a binary message: echoed back to its sender, byte for byte.
//! - a closed connection leaves the room; the others get `{"left": conn}`.
//!
//! The state keeps the members and how many messages the room has carried.

use serde::{Deserialize, Serialize};
use theater_guest::{
    Actor, HttpResponse, Input, Output, Value, WebSocketReply, WebSocketSend, json,
};

#[derive(Serialize, Deserialize)]
struct State {
    members: Vec<String>,
    messages: u64,
}

fn to_all(members: &[String], text: &str) -> Vec<WebSocketSend> {
    members
        .iter()
        .map(|m| WebSocketSend {
            to: Some(m.clone()),
            text: text.to_string(),
        })
        .collect()
}

struct Chat;

impl Actor for Chat {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State {
            members: Vec::new(),
            messages: 0,
        })
    }

    fn handle(mut state: State, input: Input) -> Result<(Output, State), String> {
        match input {
            Input::HttpRequest(req) => {
                if req.path != "/chat" {
                    return Ok((HttpResponse::new(404).into(), state));
                }
                let Some(conn) = req.header("theater-ws-conn") else {
                    let r = HttpResponse::new(426)
                        .header("upgrade", "websocket")
                        .body("this is a WebSocket endpoint\n");
                    return Ok((r.into(), state));
                };
                state.members.push(conn.to_string());
                Ok((HttpResponse::new(101).into(), state))
            }
            Input::WebSocketMessage(m) => {
                let reply = match m.text {
                    Some(text) => {
                        state.messages += 1;
                        let line = json!({"from": m.conn, "text": text}).to_string();
                        WebSocketReply {
                            send: to_all(&state.members, &line),
                            ..WebSocketReply::default()
                        }
                    }
                    None => WebSocketReply {
                        binary: m.binary,
                        ..WebSocketReply::default()
                    },
                };
                Ok((Output::WebSocket(reply), state))
            }
            Input::WebSocketClose { conn } => {
                state.members.retain(|m| *m != conn);
                let line = json!({"left": conn}).to_string();
                let reply = WebSocketReply {
                    send: to_all(&state.members, &line),
                    ..WebSocketReply::default()
                };
                Ok((Output::WebSocket(reply), state))
            }
            _ => Err("the chat answers HTTP and WebSocket".into()),
        }
    }
}

theater_guest::export_actor!(Chat);
