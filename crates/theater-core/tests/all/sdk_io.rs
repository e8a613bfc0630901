//! The guest SDK's inputs and outputs are the host's: its `io.rs` is compiled here as it is,
//! and every variant goes host → SDK (inputs) and SDK → host (outputs) with the same JSON and
//! binary body. A variant added on one side and not the other fails here.

use serde_json::json;
use theater_chain::{Hash, Payload};
use theater_core::{
    ActorInput, ActorOutput, ChildEvent, FileRef, HttpRequest, HttpResponse, WebSocketMessage,
    WebSocketReply, WebSocketSend,
};

#[allow(
    dead_code,
    unreachable_pub,
    reason = "the SDK's file, compiled as it is"
)]
#[path = "../../../../guest/theater-guest/src/io.rs"]
mod sdk;

/// The SDK's parse of what the host sends for `input`.
fn to_sdk(input: &ActorInput) -> sdk::Input {
    let p = input.to_payload();
    sdk::input_from_parts(&serde_json::to_vec(&p.json).unwrap(), p.bytes).unwrap()
}

/// The host's parse of what the SDK sends for `output`.
fn from_sdk(output: &sdk::Output) -> ActorOutput {
    let (json, bytes) = sdk::output_parts(output).unwrap();
    let json = serde_json::from_slice(&json).unwrap();
    ActorOutput::from_payload(&Payload { json, bytes }).unwrap()
}

/// The SDK's counterpart of each host input (an exhaustive match on the SDK's side: a new SDK
/// variant must be added here, and so to the host's list below).
fn same_input(host: &ActorInput, sdk: &sdk::Input) -> bool {
    match sdk {
        sdk::Input::Message { payload, from } => {
            matches!(host, ActorInput::Message { payload: p, from: f } if p == payload && f == from)
        }
        sdk::Input::Request { payload } => {
            matches!(host, ActorInput::Request { payload: p } if p == payload)
        }
        sdk::Input::HttpRequest(r) => matches!(host, ActorInput::HttpRequest(h)
            if h.method == r.method && h.path == r.path && h.query == r.query
                && h.headers == r.headers && h.body == r.body),
        sdk::Input::WebSocketMessage(m) => matches!(host, ActorInput::WebSocketMessage(h)
            if h.conn == m.conn && h.text == m.text && h.binary == m.binary),
        sdk::Input::WebSocketClose { conn } => {
            matches!(host, ActorInput::WebSocketClose { conn: c } if c == conn)
        }
        sdk::Input::Timer { name, due_ms } => {
            matches!(host, ActorInput::Timer { name: n, due_ms: d } if n == name && d == due_ms)
        }
        sdk::Input::Child {
            name,
            event,
            reason,
        } => matches!(host, ActorInput::Child { name: n, event: e, reason: r }
            if n == name && r == reason && format!("{e:?}") == format!("{event:?}")),
    }
}

#[test]
fn every_host_input_reaches_the_sdk_as_the_same_variant() {
    let inputs = [
        ActorInput::Message {
            payload: json!({"add": 1}),
            from: Some("sender".into()),
        },
        ActorInput::Message {
            payload: json!("plain"),
            from: None,
        },
        ActorInput::request(json!([1, 2, {"x": null}])),
        ActorInput::HttpRequest(HttpRequest {
            method: "POST".into(),
            path: "/todos".into(),
            query: Some("a=1".into()),
            headers: vec![("content-type".into(), "application/json".into())],
            body: b"{\"title\": \"milk\"}".to_vec(),
        }),
        ActorInput::WebSocketMessage(WebSocketMessage {
            conn: "c1".into(),
            text: Some("hi".into()),
            binary: Vec::new(),
        }),
        ActorInput::WebSocketMessage(WebSocketMessage {
            conn: "c2".into(),
            text: None,
            binary: vec![0, 1, 255],
        }),
        ActorInput::WebSocketClose { conn: "c1".into() },
        ActorInput::Timer {
            name: "job".into(),
            due_ms: 1_700_000_000_000,
        },
        ActorInput::Child {
            name: "worker-1".into(),
            event: ChildEvent::Failed,
            reason: Some("trapped".into()),
        },
        ActorInput::Child {
            name: "worker-2".into(),
            event: ChildEvent::Stopped,
            reason: None,
        },
    ];
    for input in &inputs {
        let sdk = to_sdk(input);
        assert!(same_input(input, &sdk), "{input:?} became {sdk:?}");
    }
}

#[test]
fn every_sdk_output_reaches_the_host_as_the_same_variant_and_json() {
    let hash = Hash::digest(b"index");
    let pairs = [
        (sdk::Output::None, ActorOutput::None),
        (
            sdk::Output::reply(json!({"n": 3})),
            ActorOutput::reply(json!({"n": 3})),
        ),
        (
            sdk::Output::HttpResponse(
                sdk::HttpResponse::json(201, &json!({"id": 4})).header("location", "/todos/4"),
            ),
            ActorOutput::HttpResponse(HttpResponse {
                status: 201,
                headers: vec![
                    ("content-type".into(), "application/json".into()),
                    ("location".into(), "/todos/4".into()),
                ],
                body: b"{\"id\":4}".to_vec(),
                file: None,
            }),
        ),
        (
            sdk::Output::HttpResponse(sdk::HttpResponse {
                status: 200,
                headers: vec![],
                body: vec![],
                file: Some(sdk::FileRef {
                    path: "index.html".into(),
                    sha256: hash.to_string(),
                    size: 5,
                }),
            }),
            ActorOutput::HttpResponse(HttpResponse {
                status: 200,
                headers: vec![],
                body: vec![],
                file: Some(FileRef {
                    path: "index.html".into(),
                    sha256: hash,
                    size: 5,
                }),
            }),
        ),
        (
            sdk::Output::WebSocket(sdk::WebSocketReply {
                send: vec![
                    sdk::WebSocketSend {
                        to: None,
                        text: "mine".into(),
                    },
                    sdk::WebSocketSend {
                        to: Some("c9".into()),
                        text: "theirs".into(),
                    },
                ],
                binary: vec![7, 7],
                close: true,
            }),
            ActorOutput::WebSocket(WebSocketReply {
                send: vec![
                    WebSocketSend {
                        to: None,
                        text: "mine".into(),
                    },
                    WebSocketSend {
                        to: Some("c9".into()),
                        text: "theirs".into(),
                    },
                ],
                binary: vec![7, 7],
                close: true,
            }),
        ),
    ];
    for (sdk_output, host) in &pairs {
        // An exhaustive match: a new SDK variant must get a pair here.
        match sdk_output {
            sdk::Output::None
            | sdk::Output::Reply { .. }
            | sdk::Output::HttpResponse(_)
            | sdk::Output::WebSocket(_) => {}
        }
        assert_eq!(&from_sdk(sdk_output), host, "{sdk_output:?}");
        let (json, bytes) = sdk::output_parts(sdk_output).unwrap();
        let theirs = host.to_payload();
        let ours: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(ours, theirs.json, "the same JSON for {sdk_output:?}");
        assert_eq!(bytes, theirs.bytes);
    }
}
