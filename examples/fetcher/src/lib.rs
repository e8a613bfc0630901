//! Fetches JSON documents over outbound HTTP and caches them.
//!
//! - request `{"fetch": url}`: the cached document if there is one; otherwise a `GET` of
//!   `url` (a host the manifest grants), whose body, if it is JSON and the status is 2xx, is
//!   cached. Answers `{"url", "status", "document", "cached"}`.
//! - request `{"refresh": url}`: fetches again even if cached.
//! - request `{"cached": url}`: the cached entry, or null. `{"list": true}`: the cached URLs.
//!
//! A fetch that fails (a host not granted, a timeout, a body over the limit, no server)
//! answers `{"error": {"kind", "message"}}` and only counts the failure; a body that is not
//! JSON answers kind `not-json`. The chain records every request and response, so a replay
//! of this actor needs no network.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use theater_guest::{Actor, Input, Output, Value, http_client, json, serde_json};

#[derive(Serialize, Deserialize, Default)]
struct State {
    /// Cached documents by URL.
    docs: BTreeMap<String, Doc>,
    /// Requests sent, and how many failed.
    fetches: u64,
    failures: u64,
}

#[derive(Serialize, Deserialize, Clone)]
struct Doc {
    status: u16,
    document: Value,
    /// When it was fetched (ms since the Unix epoch, from the recorded clock).
    fetched_ms: u64,
}

struct Fetcher;

fn failed(state: State, url: &str, kind: &str, message: String) -> (Output, State) {
    let reply = json!({"url": url, "error": {"kind": kind, "message": message}});
    let state = State {
        failures: state.failures + 1,
        ..state
    };
    (Output::reply(reply), state)
}

impl Actor for Fetcher {
    type State = State;

    fn init(_: Value) -> Result<State, String> {
        Ok(State::default())
    }

    fn handle(mut state: State, input: Input) -> Result<(Output, State), String> {
        let p = input.payload().ok_or("the fetcher takes requests")?;
        if p["list"] == json!(true) {
            let urls: Vec<&String> = state.docs.keys().collect();
            return Ok((Output::reply(json!(urls)), state));
        }
        if let Some(url) = p["cached"].as_str() {
            let doc = state.docs.get(url).map(|d| json!(d));
            return Ok((Output::reply(doc.unwrap_or(Value::Null)), state));
        }
        let (url, refresh) = match (p["fetch"].as_str(), p["refresh"].as_str()) {
            (Some(u), _) => (u.to_string(), false),
            (_, Some(u)) => (u.to_string(), true),
            _ => return Err("expected {\"fetch\": url}, {\"refresh\": url}, {\"cached\": url} or {\"list\": true}".into()),
        };
        if !refresh && let Some(doc) = state.docs.get(&url) {
            let reply = json!({"url": url, "status": doc.status, "document": doc.document, "cached": true});
            return Ok((Output::reply(reply), state));
        }
        state.fetches += 1;
        let response = match http_client::get(&url) {
            Ok(r) => r,
            Err(e) => {
                let message = http_client::describe(&e);
                return Ok(failed(state, &url, http_client::kind(&e), message));
            }
        };
        let document: Value = match serde_json::from_slice(&response.body) {
            Ok(v) => v,
            Err(e) => return Ok(failed(state, &url, "not-json", e.to_string())),
        };
        if (200..300).contains(&response.status) {
            let doc = Doc {
                status: response.status,
                document: document.clone(),
                fetched_ms: theater_guest::host::now_millis(),
            };
            state.docs.insert(url.clone(), doc);
        }
        let reply = json!({"url": url, "status": response.status, "document": document, "cached": false});
        Ok((Output::reply(reply), state))
    }
}

theater_guest::export_actor!(Fetcher);
