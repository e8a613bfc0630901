//! Golden chains of every example (`tests/golden/v2`), written by `theater run` before the
//! capability contract moved files, timers and the database out of `theater-core`: each chain
//! verifies, replays bit for bit with its component and grants, and a host resumes every actor
//! on it to the state its head names.
//!
//! They are written again (from the components in `target/examples`) by
//! `THEATER_WRITE_GOLDEN=1 cargo test -p theater --test all write_golden_v2 -- --ignored`; do
//! that only for a new fixture set, never to make a failing test pass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use theater_chain::{ChainStore, FileStore, Hash};

use crate::run::{Running, http, text};

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v2")
}

/// Every actor of the fixtures: its name, the example it runs, and its manifest's sections.
const ACTORS: &[(&str, &str, &str)] = &[
    ("counter", "counter", "[init]\ncount = 10\n"),
    ("dice", "dice", ""),
    ("fragile", "fragile", ""),
    ("hog", "hog", "[limits]\nmemory_mb = 16\ncpu_ms = 200\n"),
    (
        "account",
        "account",
        "[init]\nbalance = 100\n\n[interfaces.msg]\n",
    ),
    ("savings", "account", "[interfaces.msg]\n"),
    ("pingpong", "pingpong", "[interfaces.msg]\n"),
    ("pong", "pingpong", "[interfaces.msg]\n"),
    ("ticker", "ticker", "[interfaces.timers]\n"),
    (
        "todo",
        "todo",
        "[init]\nseed = 3\n\n[interfaces.http]\naddr = \"127.0.0.1:0\"\nprefix = \"/todo\"\n",
    ),
    (
        "notes",
        "notes",
        "[interfaces.http]\naddr = \"127.0.0.1:0\"\nprefix = \"/notes\"\nmax_body_bytes = 1048576\n\n[interfaces.files]\ndir = \"notes-data\"\nwritable = true\n",
    ),
    (
        "fileserver",
        "fileserver",
        "[interfaces.http]\naddr = \"127.0.0.1:0\"\nprefix = \"/files\"\n\n[interfaces.files]\ndir = \"public\"\n",
    ),
    (
        "inventory",
        "inventory",
        "[interfaces.http]\naddr = \"127.0.0.1:0\"\nprefix = \"/inventory\"\n\n[interfaces.db]\n",
    ),
    (
        "chat",
        "chat",
        "[interfaces.http]\naddr = \"127.0.0.1:0\"\nprefix = \"/chat\"\n",
    ),
];

fn manifests(dir: &Path) -> Vec<PathBuf> {
    ACTORS
        .iter()
        .map(|(name, _, _)| dir.join(format!("{name}.toml")))
        .collect()
}

/// A copy of the fixtures (tests write to their copy only).
fn copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    crate::golden::copy_tree(&golden(), dir.path());
    // Git keeps no empty directories.
    for (name, _, _) in ACTORS {
        std::fs::create_dir_all(dir.path().join("chains").join(name).join("snapshots")).unwrap();
    }
    dir
}

/// What each chain's head is: `{name: {"seq", "hash", "state_hash"}}`.
fn heads(dir: &Path) -> BTreeMap<String, Value> {
    let text = std::fs::read_to_string(dir.join("heads.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = crate::run::bin()
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

#[test]
fn every_example_s_golden_chain_verifies_and_replays_bit_for_bit() {
    let dir = copy();
    let chains: Vec<String> = ACTORS
        .iter()
        .map(|(n, _, _)| format!("chains/{n}"))
        .collect();
    let mut args = vec!["chain", "verify"];
    args.extend(chains.iter().map(String::as_str));
    let (code, said) = run(dir.path(), &args);
    assert_eq!(code, Some(0), "{said}");
    let heads = heads(dir.path());
    for (name, _, _) in ACTORS {
        let seq = heads[*name]["seq"].as_u64().unwrap();
        assert!(
            said.contains(&format!(
                "ok chains/{name}: chain \"{name}\": {} entries verified",
                seq + 1
            )),
            "{name}: {said}"
        );
        let (code, said) = run(
            dir.path(),
            &[
                "chain",
                "replay",
                "--manifest",
                &format!("{name}.toml"),
                &format!("chains/{name}"),
            ],
        );
        assert_eq!(code, Some(0), "{name}: {said}");
        assert!(said.contains("bit for bit"), "{name}: {said}");
    }
}

#[test]
fn every_example_resumes_on_its_golden_chain_to_the_state_its_head_names() {
    let dir = copy();
    let heads = heads(dir.path());
    // Twelve components compile before the host says it runs: on a loaded 2-core machine
    // that takes a while.
    let host =
        Running::start_patiently(dir.path(), &manifests(dir.path()), Duration::from_secs(600));
    for (name, _, _) in ACTORS {
        let state = host.json(&["state", name]);
        let head = &heads[*name];
        assert_eq!(
            Hash::of_state(&state["state"]).to_string(),
            head["state_hash"].as_str().unwrap(),
            "{name}: {state}"
        );
        // The golden chains predate recorded code: their first start records the code that
        // runs them from here on, an upgrade entry after the head, the state unchanged.
        let seq = head["seq"].as_u64().unwrap() + 1;
        assert_eq!(state["seq"], json!(seq), "{name}: {state}");
        let chain = FileStore::open_read_only(dir.path().join("chains").join(name)).unwrap();
        let entry = chain.get(seq).unwrap();
        assert_eq!(entry.parent().to_string(), head["hash"].as_str().unwrap());
        assert_eq!(
            entry.state_hash().to_string(),
            head["state_hash"].as_str().unwrap()
        );
        assert!(
            matches!(
                entry.event(),
                theater_chain::Event::Upgrade { from: None, .. }
            ),
            "{name}: {entry:?}"
        );
    }
    host.stop();
}

/// The HTTP address the host printed for `name`.
fn addr_of(host: &mut Running, name: &str) -> String {
    let line = host.wait_for(&format!("{name} serves HTTP at http://"));
    let url = line.split("http://").nth(1).unwrap();
    url.split('/').next().unwrap().to_string()
}

fn request(host: &Running, name: &str, payload: Value) -> Value {
    host.json(&["send", name, &payload.to_string(), "--request"])
}

/// Sends a request that the actor fails (recorded as a failed input).
fn failing(host: &Running, name: &str, payload: Value) {
    let out = host.cli(&["send", name, &payload.to_string(), "--request"]);
    assert!(!out.status.success(), "{name} {payload}: {}", text(&out));
}

#[test]
#[ignore = "writes the golden fixtures: THEATER_WRITE_GOLDEN=1 to run"]
fn write_golden_v2() {
    if std::env::var_os("THEATER_WRITE_GOLDEN").is_none() {
        return;
    }
    let dir = golden();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("public")).unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    std::fs::copy(
        examples.join("fileserver/public/index.html"),
        dir.join("public/index.html"),
    )
    .unwrap();
    for (name, example, sections) in ACTORS {
        let wasm = format!("{example}.wasm");
        std::fs::copy(
            theater_test_support::example_component(example),
            dir.join(&wasm),
        )
        .unwrap();
        let text = format!("name = {name:?}\ncomponent = {wasm:?}\n\n{sections}");
        std::fs::write(dir.join(format!("{name}.toml")), text).unwrap();
    }
    let mut host = Running::start(&dir, &manifests(&dir));

    for n in 1..=5 {
        request(&host, "counter", json!({"add": n}));
    }
    request(&host, "counter", json!({"get": true}));
    for _ in 0..3 {
        request(&host, "dice", json!({"roll": true}));
    }
    request(&host, "fragile", json!({"add": 2}));
    failing(&host, "fragile", json!({"boom": true}));
    request(&host, "fragile", json!({"add": 3}));
    request(&host, "hog", json!({"add": 1}));
    failing(&host, "hog", json!({"alloc_mb": 64}));
    failing(&host, "hog", json!({"spin": true}));
    request(&host, "hog", json!({"add": 2}));

    let transfer = |to: &str, amount: i64| json!({"transfer": {"to": to, "amount": amount}});
    request(&host, "account", transfer("savings", 30));
    failing(&host, "account", transfer("savings", 1000));
    failing(&host, "account", transfer("nobody", 5));
    request(&host, "account", transfer("savings", 20));
    request(&host, "pingpong", json!({"serve": "pong", "rounds": 6}));
    assert_eq!(host.wait_received(&["pingpong", "pong"], 6), 6);
    let echoed = request(
        &host,
        "pingpong",
        json!({"ask": "pong", "payload": {"echo": [1, 2]}, "timeout_ms": 5000}),
    );
    assert_eq!(echoed["reply"]["answer"], json!([1, 2]), "{echoed}");
    request(
        &host,
        "pingpong",
        json!({"send": "pong", "message": {"route": ["pingpong"], "tag": "t"}}),
    );

    request(&host, "ticker", json!({"every_ms": 40}));
    request(&host, "ticker", json!({"remind": "soon", "in_ms": 10}));
    // Still pending, for years, whenever the fixtures are used: a host resuming on them
    // rebuilds it from the chain (a due one would fire on resume and move the head).
    request(
        &host,
        "ticker",
        json!({"remind": "later", "in_ms": 300_000_000_000u64}),
    );
    std::thread::sleep(Duration::from_millis(300));
    request(&host, "ticker", json!({"stop": true}));

    let todo = addr_of(&mut host, "todo");
    let json_body = "content-type: application/json\r\n";
    for title in ["milk", "bread"] {
        let (status, _) = http(
            &todo,
            "POST",
            "/todo/todos",
            json_body,
            &format!("{{\"title\": \"{title}\"}}"),
        );
        assert_eq!(status, 201);
    }
    assert_eq!(
        http(
            &todo,
            "PATCH",
            "/todo/todos/4",
            json_body,
            "{\"done\": true}"
        )
        .0,
        200
    );
    assert_eq!(http(&todo, "DELETE", "/todo/todos/1", "", "").0, 204);
    assert_eq!(
        http(&todo, "POST", "/todo/todos", json_body, "not json").0,
        400
    );
    assert_eq!(http(&todo, "GET", "/todo/todos", "", "").0, 200);
    assert_eq!(http(&todo, "GET", "/todo/todos/99", "", "").0, 404);

    let notes = addr_of(&mut host, "notes");
    assert_eq!(
        http(&notes, "PUT", "/notes/notes/hello", "", "# Hello\nworld").0,
        201
    );
    let big = "line of a long note\n".repeat(2000);
    assert_eq!(http(&notes, "PUT", "/notes/notes/big", "", &big).0, 201);
    assert_eq!(
        http(&notes, "PUT", "/notes/notes/hello", "", "# Hello again").0,
        200
    );
    assert_eq!(http(&notes, "GET", "/notes/notes", "", "").0, 200);
    assert_eq!(http(&notes, "GET", "/notes/notes/big", "", "").0, 200);
    assert_eq!(http(&notes, "GET", "/notes/search?q=again", "", "").0, 200);
    assert_eq!(
        http(&notes, "PUT", "/notes/notes/..%2Fescape", "", "x").0,
        403
    );
    assert_eq!(http(&notes, "DELETE", "/notes/notes/hello", "", "").0, 204);

    let files = addr_of(&mut host, "fileserver");
    assert_eq!(http(&files, "GET", "/files/", "", "").0, 200);
    assert_eq!(http(&files, "GET", "/files/missing.txt", "", "").0, 404);
    assert_eq!(
        http(&files, "GET", "/files/..%2F..%2Fetc%2Fpasswd", "", "").0,
        403
    );

    let inventory = addr_of(&mut host, "inventory");
    let item = |name: &str, qty: i64| format!("{{\"name\": \"{name}\", \"qty\": {qty}}}");
    assert_eq!(
        http(
            &inventory,
            "POST",
            "/inventory/items",
            json_body,
            &item("bolt", 10)
        )
        .0,
        201
    );
    assert_eq!(
        http(
            &inventory,
            "POST",
            "/inventory/items",
            json_body,
            &item("nut", 5)
        )
        .0,
        201
    );
    assert_eq!(
        http(
            &inventory,
            "POST",
            "/inventory/items",
            json_body,
            &item("bolt", 1)
        )
        .0,
        409
    );
    let moved = "{\"from\": \"bolt\", \"to\": \"nut\", \"qty\": 4}";
    assert_eq!(
        http(&inventory, "POST", "/inventory/move", json_body, moved).0,
        200
    );
    assert_eq!(http(&inventory, "GET", "/inventory/items", "", "").0, 200);
    request(
        &host,
        "inventory",
        json!({"sql": "SELECT name, qty FROM items ORDER BY name"}),
    );
    failing(&host, "inventory", json!({"sql": "SELEKT nothing"}));

    let chat = addr_of(&mut host, "chat");
    assert_eq!(http(&chat, "GET", "/chat/chat", "", "").0, 426);
    assert_eq!(http(&chat, "GET", "/chat/elsewhere", "", "").0, 404);

    host.stop();
    let _ = std::fs::remove_dir_all(dir.join("cache"));
    // The management API's token must not be checked in.
    let _ = std::fs::remove_file(dir.join("admin.token"));
    let mut heads = BTreeMap::new();
    for (name, _, _) in ACTORS {
        let chain = FileStore::open_read_only(dir.join("chains").join(name)).unwrap();
        let head = chain.head().unwrap();
        let entry = chain.get(head.seq).unwrap();
        heads.insert(
            name.to_string(),
            json!({
                "seq": head.seq,
                "hash": head.hash.to_string(),
                "state_hash": entry.state_hash().to_string(),
            }),
        );
    }
    std::fs::write(
        dir.join("heads.json"),
        serde_json::to_string_pretty(&heads).unwrap() + "\n",
    )
    .unwrap();
}
