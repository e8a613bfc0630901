//! WebSocket over real loopback connections, with the chat example (a wasm component).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use theater_chain::{ChainStore, Durability, Event, FileStore};
use theater_core::{ActorConfig, replay, spawn};
use theater_http::HttpConfig;
use theater_test_support::{example_component, id};
use theater_wasm::{Limits, WasmConfig, WasmHost};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, connect_async};

use crate::support::{Client, serve};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The next data message (pings and pongs skipped), waiting at most 10 s.
async fn next(ws: &mut Ws) -> Message {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no message within 10 s")
            .expect("the connection ended")
            .unwrap();
        if !matches!(m, Message::Ping(_) | Message::Pong(_)) {
            return m;
        }
    }
}

async fn next_json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_chat_and_binary_echo_round_trip_then_the_chain_replays() {
    let dir = tempfile::tempdir().unwrap();
    let host = WasmHost::new(WasmConfig::default().pooling(Some(16))).unwrap();
    let component = host.load_file(example_component("chat")).unwrap();
    let make = {
        let (host, component) = (host.clone(), component.clone());
        move || host.actor(&component, &id("chat"), Value::Null, Limits::default())
    };
    let chain: Box<dyn ChainStore> = Box::new(
        FileStore::create(dir.path().join("chat"), id("chat"), Durability::EveryEntry).unwrap(),
    );
    let actor = spawn(make.clone(), chain, ActorConfig::default())
        .await
        .unwrap();
    let server = serve(HttpConfig::default(), vec![("/", actor.clone())]).await;
    let url = format!("ws://{}/chat", server.addr);

    // Not an upgrade: the actor says so.
    let mut plain = Client::connect(server.addr).await;
    let r = plain.get("/chat").await;
    assert_eq!(r.status, 426);
    assert_eq!(r.header("upgrade"), Some("websocket"));

    let (mut a, response) = connect_async(url.as_str()).await.unwrap();
    assert_eq!(response.status(), 101);
    let (mut b, _) = connect_async(url.as_str()).await.unwrap();
    let (state, _) = actor.state().await.unwrap();
    let members: Vec<String> = serde_json::from_value(state["members"].clone()).unwrap();
    assert_eq!(members.len(), 2);
    let (a_conn, b_conn) = (members[0].clone(), members[1].clone());
    assert_ne!(a_conn, b_conn);

    // Text to the room: both members get it, naming the sender.
    a.send(Message::text("hello, room")).await.unwrap();
    let expected = json!({"from": a_conn, "text": "hello, room"});
    assert_eq!(next_json(&mut a).await, expected);
    assert_eq!(next_json(&mut b).await, expected);
    // Binary: echoed to its sender alone, byte for byte.
    let data: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    b.send(Message::binary(data.clone())).await.unwrap();
    match next(&mut b).await {
        Message::Binary(got) => assert_eq!(got.as_ref(), &data[..]),
        other => panic!("expected the binary echo, got {other:?}"),
    }
    // b leaves: a is told.
    b.close(None).await.unwrap();
    assert_eq!(next_json(&mut a).await, json!({"left": b_conn}));
    a.send(Message::text("anyone?")).await.unwrap();
    assert_eq!(next_json(&mut a).await["text"], "anyone?");
    a.close(None).await.unwrap();
    let mut members = Vec::new();
    for _ in 0..500 {
        members = actor.state().await.unwrap().0["members"]
            .as_array()
            .unwrap()
            .clone();
        if members.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(members.is_empty(), "{members:?}");
    server.stop().await;

    // Every upgrade, message and close is in the chain, with binary data as raw bytes; the
    // chain verifies and replays bit for bit.
    let (state, head) = actor.state().await.unwrap();
    assert_eq!(state["messages"], 2);
    actor.stop().await.unwrap();
    let chain = FileStore::open_read_only(dir.path().join("chat")).unwrap();
    chain.verify().unwrap();
    let kinds: Vec<String> = (1..chain.len())
        .map(|s| match chain.get(s).unwrap().event() {
            Event::Input { input, .. } | Event::Read { input, .. } => {
                input.json["type"].as_str().unwrap().to_string()
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "http_request",
            "http_request",
            "http_request",
            "websocket_message",
            "websocket_message",
            "websocket_close",
            "websocket_message",
            "websocket_close"
        ]
    );
    // The echo changed nothing: a read, its answer (the same bytes) recorded by digest, which
    // the replay below checks.
    let echo = chain.get(5).unwrap();
    let Event::Read { input, output } = echo.event() else {
        panic!("{echo:?}")
    };
    assert_eq!(input.bytes, data);
    assert_ne!(*output, theater_chain::Payload::default().digest());
    let report = replay(&mut make(), &chain).await.unwrap();
    assert_eq!(report.state.value(), &state);
    assert_eq!(report.head.unwrap().hash, head.unwrap().hash);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_websocket_message_closes_that_connection_only() {
    let host = WasmHost::new(WasmConfig::default().pooling(Some(16))).unwrap();
    let component = host.load_file(example_component("chat")).unwrap();
    let chain: Box<dyn ChainStore> = Box::new(theater_chain::MemoryStore::new(id("chat")));
    let actor = spawn(
        move || host.actor(&component, &id("chat"), Value::Null, Limits::default()),
        chain,
        ActorConfig::default(),
    )
    .await
    .unwrap();
    let config = HttpConfig {
        max_body_bytes: 1000,
        ..HttpConfig::default()
    };
    let server = serve(config, vec![("/", actor.clone())]).await;
    let url = format!("ws://{}/chat", server.addr);
    let (mut big, _) = connect_async(url.as_str()).await.unwrap();
    let _ = big.send(Message::binary(vec![7u8; 5000])).await;
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match big.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "the oversize sender was not disconnected");
    // The message never reached the actor; others are served.
    let (mut ok, _) = connect_async(url.as_str()).await.unwrap();
    ok.send(Message::text("small")).await.unwrap();
    assert_eq!(next_json(&mut ok).await["text"], "small");
    assert_eq!(actor.state().await.unwrap().0["messages"], 1);
    server.stop().await;
}
