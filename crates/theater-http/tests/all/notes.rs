//! The notes example (a wasm component writing real files) over real HTTP: notes land on
//! disk before the answer, escapes are refused and recorded, large notes live beside the
//! entry by hash, and the chain replays without the directory.

use std::path::Path;

use serde_json::{Value, json};
use theater_chain::{ChainStore, Durability, FileStore, Hash};
use theater_core::{ActorConfig, ActorHandle, replay, spawn};
use theater_files::{FILES_WRITE, FileGrant};
use theater_http::HttpConfig;
use theater_test_support::{example_component, id};
use theater_wasm::{Limits, WasmActor, WasmConfig, WasmHost};

use crate::support::{Client, serve};

fn notes_actor(host: &WasmHost, dir: Option<&Path>) -> WasmActor {
    let component = host.load_file(example_component("notes")).unwrap();
    let actor = host.actor(&component, &id("notes"), Value::Null, Limits::default());
    match dir {
        Some(d) => actor.with_grant("files", std::sync::Arc::new(FileGrant::read_write(d))),
        None => actor,
    }
}

async fn spawn_notes(host: &WasmHost, chain_dir: &Path, dir: &Path) -> ActorHandle {
    let chain: Box<dyn ChainStore> = Box::new(
        FileStore::open_or_create(chain_dir, id("notes"), Durability::Group { max_batch: 32 })
            .unwrap(),
    );
    let (host, dir) = (host.clone(), dir.to_path_buf());
    spawn(
        move || notes_actor(&host, Some(&dir)),
        chain,
        ActorConfig::default(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_are_files_written_once_recorded_and_replay_needs_none_of_them() {
    let tmp = tempfile::tempdir().unwrap();
    let notes = tmp.path().join("notes");
    std::fs::create_dir(&notes).unwrap();
    let chain_dir = tmp.path().join("chain");
    std::fs::write(tmp.path().join("secret.md"), "outside").unwrap();
    std::os::unix::fs::symlink(tmp.path(), notes.join("up")).unwrap();
    let host = WasmHost::new(
        WasmConfig::default()
            .capabilities(theater_wasm::Capabilities::new().with(theater_files::Files))
            .pooling(Some(16)),
    )
    .unwrap();
    let actor = spawn_notes(&host, &chain_dir, &notes).await;
    let server = serve(HttpConfig::default(), vec![("/", actor.clone())]).await;
    let mut c = Client::connect(server.addr).await;

    let r = c.send("PUT", "/notes/hello", b"# Hello\nfirst").await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        r.json()["sha256"],
        Hash::digest(b"# Hello\nfirst").to_string()
    );
    // On disk before the answer.
    assert_eq!(
        std::fs::read_to_string(notes.join("hello.md")).unwrap(),
        "# Hello\nfirst"
    );
    let r = c.send("PUT", "/notes/hello", b"# Hello\nsecond").await;
    assert_eq!(r.status, 200);
    let r = c.get("/notes/hello").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text(), "# Hello\nsecond");
    assert_eq!(
        r.header("content-type"),
        Some("text/markdown; charset=utf-8")
    );
    c.send("PUT", "/notes/sub%2Ftodo", b"buy milk").await;
    let big: Vec<u8> = (0..200_000u32)
        .map(|i| b"abcdefgh\n"[(i % 9) as usize])
        .collect();
    assert_eq!(c.send("PUT", "/notes/big", &big).await.status, 201);
    assert_eq!(c.get("/notes/big").await.body.as_ref(), big.as_slice());
    let r = c.get("/notes").await;
    assert_eq!(
        r.json(),
        json!([{"name": "big", "size": big.len()}, {"name": "hello", "size": 14}])
    );
    assert_eq!(
        c.get("/search?q=milk").await.json(),
        json!([]),
        "only top-level notes"
    );
    assert_eq!(c.get("/search?q=second").await.json(), json!(["hello"]));

    // Escapes: refused (403), recorded, and nothing written or read outside.
    for path in [
        "/notes/..%2Fsecret",
        "/notes/up%2Fsecret",
        "/notes/..%2F..%2Fetc%2Fpasswd",
    ] {
        let r = c.send("PUT", path, b"pwned").await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(
            r.text().contains("outside the granted directory"),
            "{}",
            r.text()
        );
        let r = c.get(path).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(!r.text().contains("outside\""), "{path} leaked");
    }
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("secret.md")).unwrap(),
        "outside"
    );

    assert_eq!(c.send("DELETE", "/notes/hello", b"").await.status, 204);
    assert!(!notes.join("hello.md").exists());
    assert_eq!(c.send("DELETE", "/notes/hello", b"").await.status, 404);
    assert_eq!(c.get("/notes/hello").await.status, 404);
    server.stop().await;

    let (state, head) = actor.state().await.unwrap();
    assert_eq!(state["writes"], json!(4));
    assert_eq!(state["notes"].as_object().unwrap().len(), 2, "{state}");
    actor.stop().await.unwrap();

    let chain = FileStore::open_read_only(&chain_dir).unwrap();
    chain.verify().unwrap();
    let calls: Vec<_> = (0..chain.len())
        .flat_map(|s| chain.get(s).unwrap().host_calls().to_vec())
        .filter(|c| c.name == FILES_WRITE)
        .collect();
    let refused = calls
        .iter()
        .filter(|c| {
            c.result.json["error"]
                .as_str()
                .is_some_and(|e| e.contains("outside"))
        })
        .count();
    assert_eq!(refused, 3, "each escape attempt is in the chain");
    let big_write = calls
        .iter()
        .find(|c| c.request.json["path"] == "big.md")
        .unwrap();
    assert!(big_write.request.bytes.is_empty());
    let blob = Hash::digest(&big).to_string();
    assert_eq!(big_write.request.json["$blob"], blob);
    assert!(chain_dir.join("blobs").join(&blob).is_file());

    // Replay bit for bit without the directory or a grant.
    std::fs::remove_dir_all(&notes).unwrap();
    let report = replay(&mut notes_actor(&host, None), &chain).await.unwrap();
    assert_eq!(report.state.value(), &state);
    assert_eq!(report.head.unwrap().hash, head.unwrap().hash);
}
