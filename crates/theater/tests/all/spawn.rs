//! Actors that come and go, on the real binary and real components: `theater spawn`, a
//! family of chat rooms created by their first message, passivated when idle and activated
//! again (across a host restart too) with the same state hashes, and a supervisor actor that
//! spawns workers, is told when one crashes and spawns it again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use theater_test_support::example_component;

use crate::run::{Running, bin, text};

/// How long a host may take to start here: components compile on first use.
const PATIENCE: Duration = Duration::from_secs(300);

/// A manifest of the rooms family in `dir`, passivating after `idle_ms`.
fn rooms(dir: &Path, idle_ms: u64, max_active: usize) -> PathBuf {
    let path = dir.join("rooms.toml");
    let text = format!(
        "name = \"room-*\"\ncomponent = {:?}\n\n[activation]\nidle_ms = {idle_ms}\nmax_active = {max_active}\n",
        example_component("rooms")
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `theater ps` as (name, status) pairs.
fn ps(host: &Running) -> Vec<(String, String)> {
    let out = host.cli(&["ps"]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            Some((words.next()?.to_string(), words.next()?.to_string()))
        })
        .collect()
}

fn status_of(host: &Running, name: &str) -> Option<String> {
    ps(host)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, s)| s)
}

/// Waits (bounded: a guard against a hang, not a speed check) until `done` holds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..1500 {
        if done() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("never happened: {what}");
}

/// `theater chain verify` over the chains of `names` in `data`: exits 0, and its output.
fn verify(data: &Path, names: &[&str]) -> String {
    let out = bin()
        .args(["chain", "verify"])
        .args(names.iter().map(|n| data.join("chains").join(n)))
        .output()
        .unwrap();
    assert!(out.status.success(), "{names:?}: {}", text(&out));
    text(&out)
}

fn request(host: &Running, name: &str, payload: Value) -> Value {
    host.json(&["send", name, &payload.to_string(), "--request"])
}

fn post(host: &Running, room: &str, user: &str, text: &str) -> Value {
    request(host, room, json!({"post": {"user": user, "text": text}}))
}

#[test]
fn rooms_are_created_by_their_first_message_passivated_and_activated_with_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifest = rooms(dir.path(), 300, 1000);
    let host = Running::start_patiently(&data, std::slice::from_ref(&manifest), PATIENCE);

    // Nothing exists before the first message; each room is its own actor and chain.
    assert_eq!(status_of(&host, "room-lobby"), None);
    assert_eq!(
        post(&host, "room-lobby", "ann", "hello")["reply"],
        json!({"post": 1})
    );
    assert_eq!(
        post(&host, "room-lobby", "bob", "hi ann")["reply"],
        json!({"post": 2})
    );
    let games = post(&host, "room-games", "cy", "gg");
    assert_eq!(games["reply"], json!({"post": 1}));
    assert!(data.join("chains/room-lobby").is_dir());
    assert!(data.join("chains/room-games").is_dir());

    // Idle rooms are passivated: listed as passive, a snapshot at their head.
    eventually("both rooms passive", || {
        status_of(&host, "room-lobby").as_deref() == Some("passive")
            && status_of(&host, "room-games").as_deref() == Some("passive")
    });
    let snapshots = std::fs::read_dir(data.join("chains/room-lobby/snapshots"))
        .unwrap()
        .count();
    assert!(snapshots >= 1, "passivation saved no snapshot");

    // The next message activates the room from its chain: nothing was lost.
    let third = post(&host, "room-lobby", "ann", "still here?");
    assert_eq!(third["reply"], json!({"post": 3}));
    assert_eq!(status_of(&host, "room-lobby").as_deref(), Some("active"));
    let lobby = request(&host, "room-lobby", json!({"read": {}}));
    assert_eq!(lobby["reply"]["count"], 3);
    assert_eq!(lobby["reply"]["posts"][1]["text"], "hi ann");
    let lobby_hash = lobby["hash"].clone();

    // Reading a member that was never created does not create it.
    let out = host.cli(&["state", "room-nobody"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no actor named"), "{}", text(&out));
    assert!(!data.join("chains/room-nobody").exists());

    // A name outside the family, or not a valid name, is no actor.
    let out = host.cli(&["send", "lobby", "{}", "--request"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("no actor named"), "{}", text(&out));
    let out = host.cli(&["send", "room-../x", "{}", "--request"]);
    assert!(!out.status.success(), "{}", text(&out));

    // A host restart finds the rooms passive, and a message brings each back as it was.
    host.stop();
    let host = Running::start_patiently(&data, std::slice::from_ref(&manifest), PATIENCE);
    assert_eq!(status_of(&host, "room-lobby").as_deref(), Some("passive"));
    assert_eq!(status_of(&host, "room-games").as_deref(), Some("passive"));
    let state = host.json(&["state", "room-lobby"]);
    assert_eq!(state["hash"], lobby_hash, "activation changed the head");
    assert_eq!(state["state"]["posts"][2]["text"], "still here?");
    let games_again = host.json(&["state", "room-games"]);
    assert_eq!(games_again["hash"], games["hash"]);
    host.stop();

    // The chains verify, and replay (with the family's manifest) reaches the same states as
    // the rooms had: passivation left no trace in them.
    for room in ["room-lobby", "room-games"] {
        let chain = data.join("chains").join(room);
        verify(&data, &[room]);
        let out = bin()
            .args(["chain", "replay"])
            .arg(&chain)
            .arg("--manifest")
            .arg(&manifest)
            .output()
            .unwrap();
        assert!(out.status.success(), "{room}: {}", text(&out));
    }

    // The same posts to a room that never passivates reach the same state hash.
    let data2 = dir.path().join("data2");
    let always = dir.path().join("always.toml");
    std::fs::write(
        &always,
        format!(
            "name = \"room-*\"\ncomponent = {:?}\n\n[activation]\nidle_ms = 3600000\n",
            example_component("rooms")
        ),
    )
    .unwrap();
    let host = Running::start_patiently(&data2, &[always], PATIENCE);
    post(&host, "room-lobby", "ann", "hello");
    post(&host, "room-lobby", "bob", "hi ann");
    post(&host, "room-lobby", "ann", "still here?");
    let stayed = host.json(&["state", "room-lobby"]);
    assert_eq!(stayed["state"], state["state"]);
    let read = |d: &Path| {
        let out = bin()
            .args(["chain", "log", "--json"])
            .arg(d.join("chains/room-lobby"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["state_hash"].clone())
            .collect::<Vec<_>>()
    };
    host.stop();
    let (passivated, stayed_up) = (read(&data), read(&data2));
    assert_eq!(passivated.len(), 5, "genesis, 3 posts, 1 read");
    assert_eq!(stayed_up.len(), 4, "genesis, 3 posts");
    assert_eq!(
        passivated[..4],
        stayed_up[..],
        "the state hashes of a passivated room and one that stayed up differ"
    );
}

#[test]
fn at_most_max_active_members_are_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifest = rooms(dir.path(), 3_600_000, 2);
    let host = Running::start_patiently(&data, &[manifest], PATIENCE);
    for room in ["room-a", "room-b", "room-c", "room-d"] {
        post(&host, room, "ann", room);
    }
    let listed = ps(&host);
    let active = listed.iter().filter(|(_, s)| s == "active").count();
    let passive = listed.iter().filter(|(_, s)| s == "passive").count();
    assert_eq!((active, passive), (2, 2), "{listed:?}");
    // The least recently active went first.
    assert_eq!(status_of(&host, "room-a").as_deref(), Some("passive"));
    assert_eq!(status_of(&host, "room-d").as_deref(), Some("active"));
    // Every room still answers with its own posts.
    for room in ["room-a", "room-b", "room-c", "room-d"] {
        let r = request(&host, room, json!({"read": {}}));
        assert_eq!(r["reply"]["posts"][0]["text"], room);
    }
    host.stop();
}

/// Manifests of the supervisor example and its worker kind, in `dir`.
fn supervisor(dir: &Path) -> PathBuf {
    let worker = dir.join("worker.toml");
    std::fs::write(
        &worker,
        format!(
            "name = \"worker\"\ncomponent = {:?}\n\n[limits]\ncrash_on_trap = true\n",
            example_component("worker")
        ),
    )
    .unwrap();
    let path = dir.join("supervisor.toml");
    std::fs::write(
        &path,
        format!(
            "name = \"supervisor\"\ncomponent = {:?}\n\n[interfaces.actors.children]\nworker = \"worker.toml\"\n",
            example_component("supervisor")
        ),
    )
    .unwrap();
    path
}

#[test]
fn a_supervisor_actor_spawns_workers_sees_one_crash_and_restarts_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifest = supervisor(dir.path());
    let host = Running::start_patiently(&data, std::slice::from_ref(&manifest), PATIENCE);

    let spawned = request(&host, "supervisor", json!({"spawn": "w1"}));
    assert_eq!(spawned["reply"], json!({"spawned": "w1"}));
    request(
        &host,
        "supervisor",
        json!({"spawn": "w2", "init": {"team": "b"}}),
    );
    eventually("both workers running", || {
        status_of(&host, "w1").as_deref() == Some("running")
            && status_of(&host, "w2").as_deref() == Some("running")
    });
    assert_eq!(request(&host, "w1", json!({"work": 21}))["reply"], 42);
    assert_eq!(
        request(&host, "w2", json!({"status": true}))["reply"]["label"],
        json!({"team": "b"})
    );

    // A name that is taken, or no name at all, is refused (and recorded as refused).
    let out = host.cli(&[
        "send",
        "supervisor",
        r#"{"spawn": "supervisor"}"#,
        "--request",
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("already running"), "{}", text(&out));
    let out = host.cli(&["send", "supervisor", r#"{"spawn": "../etc"}"#, "--request"]);
    assert!(text(&out).contains("invalid actor name"), "{}", text(&out));

    // w1 crashes: nothing of that input is recorded, the supervisor is told (an input in
    // its chain) and spawns it again, which resumes it from its chain.
    let out = host.cli(&["send", "w1", r#"{"crash": true}"#, "--request"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("crashed"), "{}", text(&out));
    eventually("the supervisor restarted w1", || {
        let s = request(&host, "supervisor", json!({"status": true}));
        s["reply"]["w1"]["restarts"] == 1 && s["reply"]["w1"]["status"] == "restarted"
    });
    eventually("w1 running again", || {
        status_of(&host, "w1").as_deref() == Some("running")
    });
    let w1 = request(&host, "w1", json!({"status": true}));
    assert_eq!(w1["reply"]["done"], 1, "the worker lost its state: {w1}");

    // Stopping a child through its parent; the host restarts the rest on its next run.
    request(&host, "supervisor", json!({"stop": "w2"}));
    eventually("w2 stopped", || {
        let s = request(&host, "supervisor", json!({"status": true}));
        s["reply"]["w2"]["status"] == "stopped"
    });
    host.stop();
    let host = Running::start_patiently(&data, std::slice::from_ref(&manifest), PATIENCE);
    assert_eq!(status_of(&host, "w1").as_deref(), Some("running"));
    assert_eq!(status_of(&host, "w2"), None, "a stopped child came back");
    assert_eq!(request(&host, "w1", json!({"work": 1}))["reply"], 2);
    host.stop();

    // Parent and children verify together: every child's genesis refers to the entry of
    // the supervisor that spawned it.
    let verified = verify(&data, &["supervisor", "w1", "w2"]);
    assert!(verified.contains("link"), "{verified}");
    let out = bin()
        .args(["chain", "log", "--json"])
        .arg(data.join("chains/w1"))
        .output()
        .unwrap();
    let genesis: Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(genesis["refs"][0]["chain"], "supervisor", "{genesis}");
}

#[test]
fn theater_spawn_starts_actors_on_a_running_host_and_refuses_bad_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let counter = crate::run::manifest(dir.path(), "counter", "counter", "");
    let mut host = Running::start_patiently(&data, std::slice::from_ref(&counter), PATIENCE);
    let spawn = |host: &Running, args: &[&str]| {
        let mut all = vec!["spawn"];
        all.extend_from_slice(args);
        host.cli(&all)
    };

    let c = counter.to_str().unwrap();
    let out = spawn(&host, &[c, "--name", "c2", "--init", r#"{"count": 5}"#]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(request(&host, "c2", json!({"add": 1}))["reply"], 6);

    // Bad input: each a clear error; the host goes on.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"bad\"\ncomponent = \"nowhere.wasm\"\n").unwrap();
    let cases: [(Vec<&str>, &str); 5] = [
        (vec![bad.to_str().unwrap()], "component"),
        (vec!["missing.toml"], "missing.toml"),
        (vec![c], "already running"),
        (vec![c, "--name", "../up"], "invalid actor name"),
        (
            vec![c, "--name", "c3", "--init", "{not json"],
            "--init is not JSON",
        ),
    ];
    for (args, says) in cases {
        let out = spawn(&host, &args);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
    }
    assert_eq!(status_of(&host, "counter").as_deref(), Some("running"));
    assert!(!data.join("chains/up").exists());

    // A family spawned at run time takes messages at once.
    let rooms = rooms(dir.path(), 3_600_000, 10);
    let out = spawn(&host, &[rooms.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        post(&host, "room-x", "ann", "hi")["reply"],
        json!({"post": 1})
    );

    // Spawned actors and families come back with the host; a stopped one does not, and
    // its chain stays and verifies.
    let out = spawn(&host, &[c, "--name", "c3"]);
    assert!(out.status.success(), "{}", text(&out));
    request(&host, "c3", json!({"add": 2}));
    let out = host.cli(&["stop", "c3"]);
    assert!(out.status.success(), "{}", text(&out));
    host.stop();
    host = Running::start_patiently(&data, std::slice::from_ref(&counter), PATIENCE);
    assert_eq!(request(&host, "c2", json!({"get": true}))["reply"], 6);
    assert_eq!(status_of(&host, "c3"), None);
    assert_eq!(
        request(&host, "room-x", json!({"read": {}}))["reply"]["count"],
        1
    );
    host.stop();
    verify(&data, &["c3"]);
}

#[test]
fn families_that_cannot_work_are_refused_when_the_host_starts() {
    let dir = tempfile::tempdir().unwrap();
    let write = |file: &str, text: String| {
        let p = dir.path().join(file);
        std::fs::write(&p, text).unwrap();
        p
    };
    let component = format!("component = {:?}\n", example_component("rooms"));
    let served = write(
        "served.toml",
        format!("name = \"room-*\"\n{component}[interfaces.http]\naddr = \"127.0.0.1:0\"\n"),
    );
    let timed = write(
        "timed.toml",
        format!("name = \"room-*\"\n{component}[interfaces.timers]\n"),
    );
    let rooms = write("rooms.toml", format!("name = \"room-*\"\n{component}"));
    let wide = write("wide.toml", format!("name = \"ro*\"\n{component}"));
    let single = write("single.toml", format!("name = \"room-1\"\n{component}"));
    let cases: [(Vec<&PathBuf>, &str); 4] = [
        (vec![&served], "[interfaces.http]"),
        (vec![&timed], "[interfaces.timers]"),
        (vec![&rooms, &wide], "overlaps"),
        (vec![&rooms, &single], "belongs to the family"),
    ];
    for (manifests, says) in cases {
        let out = bin()
            .arg("run")
            .args(&manifests)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{manifests:?} started");
        assert!(text(&out).contains(says), "{manifests:?}: {}", text(&out));
    }
}

#[test]
fn a_child_whose_spawn_is_durable_starts_even_if_the_host_stopped_before_starting_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let manifest = supervisor(dir.path());
    let host = Running::start_patiently(&data, std::slice::from_ref(&manifest), PATIENCE);
    request(
        &host,
        "supervisor",
        json!({"spawn": "w9", "init": {"n": 9}}),
    );
    eventually("w9 running", || {
        status_of(&host, "w9").as_deref() == Some("running")
    });
    host.stop();
    // What a host that died right after the supervisor's entry was durable leaves behind:
    // the spawn in the parent's chain, no child chain, no record of it.
    std::fs::remove_dir_all(data.join("chains/w9")).unwrap();
    std::fs::remove_file(data.join("actors.json")).unwrap();
    let host = Running::start_patiently(&data, std::slice::from_ref(&manifest), PATIENCE);
    assert_eq!(status_of(&host, "w9").as_deref(), Some("running"));
    assert_eq!(
        request(&host, "w9", json!({"status": true}))["reply"]["label"],
        json!({"n": 9})
    );
    host.stop();
    verify(&data, &["supervisor", "w9"]);
}
