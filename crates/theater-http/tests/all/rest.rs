//! The REST example (a wasm component) over real HTTP: CRUD, then its chain verifies,
//! replays bit for bit, and a restarted host serves the same state.

use std::path::Path;

use serde_json::{Value, json};
use theater_chain::{ChainStore, Durability, FileStore};
use theater_core::{ActorConfig, ActorHandle, replay, spawn};
use theater_http::{ENTRY_HEADER, HttpConfig};
use theater_test_support::{example_component, id};
use theater_wasm::{Limits, WasmActor, WasmConfig, WasmHost};

use crate::support::{Client, serve};

fn todo_actor(host: &WasmHost) -> WasmActor {
    let component = host.load_file(example_component("todo")).unwrap();
    host.actor(&component, &id("todo"), Value::Null, Limits::default())
}

async fn spawn_todo(host: &WasmHost, dir: &Path) -> ActorHandle {
    let chain: Box<dyn ChainStore> = Box::new(
        FileStore::open_or_create(dir, id("todo"), Durability::Group { max_batch: 32 }).unwrap(),
    );
    let host = host.clone();
    spawn(move || todo_actor(&host), chain, ActorConfig::default())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_on_the_rest_example_then_verify_replay_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let chain_dir = dir.path().join("todo");
    let host = WasmHost::new(WasmConfig::default().pooling(Some(16))).unwrap();
    let actor = spawn_todo(&host, &chain_dir).await;
    let server = serve(HttpConfig::default(), vec![("/", actor.clone())]).await;
    let mut c = Client::connect(server.addr).await;

    // Create.
    let r = c
        .json("POST", "/todos", json!({"title": "write tests"}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("location"), Some("/todos/1"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        json!({"id": 1, "title": "write tests", "done": false})
    );
    let seq: u64 = r
        .header(ENTRY_HEADER)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(seq, 1, "the first input after init");
    let r = c
        .json("POST", "/todos", json!({"title": "ship", "done": true}))
        .await;
    assert_eq!(r.status, 201);
    // Read.
    let r = c.get("/todos").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!([
            {"id": 1, "title": "write tests", "done": false},
            {"id": 2, "title": "ship", "done": true}
        ])
    );
    assert_eq!(c.get("/todos/2").await.json()["title"], "ship");
    // Update.
    let r = c.json("PUT", "/todos/1", json!({"done": true})).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"id": 1, "title": "write tests", "done": true})
    );
    let r = c
        .json("PATCH", "/todos/2", json!({"title": "ship it"}))
        .await;
    assert_eq!(r.json()["title"], "ship it");
    // Delete.
    assert_eq!(c.send("DELETE", "/todos/2", b"").await.status, 204);
    assert_eq!(c.get("/todos/2").await.status, 404);
    assert_eq!(c.send("DELETE", "/todos/2", b"").await.status, 404);
    // Errors, with proper codes, and no state change.
    let r = c.send("POST", "/todos", b"{not json").await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("not JSON"));
    assert_eq!(
        c.json("POST", "/todos", json!({"done": true})).await.status,
        422
    );
    assert_eq!(
        c.json("PUT", "/todos/1", json!({"done": "yes"}))
            .await
            .status,
        422
    );
    let r = c.send("DELETE", "/todos", b"").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST"));
    assert_eq!(c.get("/nothing/here").await.status, 404);
    assert_eq!(c.get("/todos/abc").await.status, 404);
    let expected = json!([{"id": 1, "title": "write tests", "done": true}]);
    assert_eq!(c.get("/todos").await.json(), expected);

    // Every exchange is in the chain, which verifies and replays bit for bit.
    server.stop().await;
    let (state, head) = actor.state().await.unwrap();
    let head = head.unwrap();
    assert_eq!(head.seq, 16, "init + 16 requests, errors included");
    actor.stop().await.unwrap();
    let chain = FileStore::open_read_only(&chain_dir).unwrap();
    chain.verify().unwrap();
    let report = replay(&mut todo_actor(&host), &chain).await.unwrap();
    assert_eq!(report.state.value(), &state);
    assert_eq!(report.head.unwrap().hash, head.hash);
    drop(chain);

    // A restarted host serves the same state.
    let host = WasmHost::new(WasmConfig::default().pooling(Some(16))).unwrap();
    let actor = spawn_todo(&host, &chain_dir).await;
    let server = serve(HttpConfig::default(), vec![("/", actor.clone())]).await;
    let mut c = Client::connect(server.addr).await;
    assert_eq!(c.get("/todos").await.json(), expected);
    let r = c
        .json("POST", "/todos", json!({"title": "after restart"}))
        .await;
    assert_eq!(r.json()["id"], 3, "ids continue where they were");
    server.stop().await;
    actor.stop().await.unwrap();
}
