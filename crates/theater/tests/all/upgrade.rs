//! Code upgrades through the binary, on real components: the counter runs v1, then v2 (which
//! answers differently and refuses a negative count), then v1 again; a refused upgrade
//! changes nothing; restarts resume on the code the chain says; a changed manifest is picked
//! up on restart; the whole chain replays with each entry on its own code.

use std::path::Path;

use serde_json::{Value, json};
use theater_chain::Hash;
use theater_test_support::example_component;

use crate::run::{Running, bin, manifest, text};

fn add(host: &Running, n: i64) -> Value {
    host.json(&["send", "counter", &format!("{{\"add\": {n}}}"), "--request"])["reply"].clone()
}

fn head(host: &Running) -> u64 {
    host.json(&["state", "counter"])["seq"].as_u64().unwrap()
}

/// `theater chain log --kind upgrade --json`: each upgrade's (from, code).
fn upgrades(data: &Path) -> Vec<(Value, Value)> {
    let out = bin()
        .args(["chain", "log", "--kind", "upgrade", "--json"])
        .arg(data.join("chains/counter"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["from"].clone(), v["code"].clone())
        })
        .collect()
}

fn replay(data: &Path, m: &Path) -> std::process::Output {
    bin()
        .args(["chain", "replay"])
        .arg(data.join("chains/counter"))
        .arg("--manifest")
        .arg(m)
        .output()
        .unwrap()
}

#[test]
fn a_counter_is_upgraded_refused_rolled_back_and_replays_on_each_entrys_code() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = manifest(dir.path(), "counter", "counter", "");
    let (v1, v2) = (
        example_component("counter"),
        example_component("counter-v2"),
    );
    let hash = |p: &Path| Hash::digest(&std::fs::read(p).unwrap()).to_string();
    let (h1, h2) = (hash(&v1), hash(&v2));
    let v2_arg = v2.to_str().unwrap();

    let host = Running::start(&data, std::slice::from_ref(&m));
    assert_eq!(add(&host, 5), json!(5));
    assert_eq!(add(&host, -8), json!(-3));
    // The init entry names the code that ran it.
    let out = bin()
        .args(["chain", "log", "--kind", "init", "--json"])
        .arg(data.join("chains/counter"))
        .output()
        .unwrap();
    let init: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(init["code"], json!(h1), "{init}");

    // v2 refuses a negative count: the upgrade is refused, and nothing changes.
    let before = head(&host);
    let out = host.cli(&["upgrade", "counter", v2_arg]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("rejects the current state"),
        "{}",
        text(&out)
    );
    assert_eq!(head(&host), before, "a refused upgrade recorded something");
    assert_eq!(add(&host, 10), json!(7), "still v1 after the refusal");

    // Accepted: v2 answers from the next input on.
    let up = host.json(&["upgrade", "counter", v2_arg]);
    assert_eq!((&up["code"], &up["from"]), (&json!(h2), &json!(h1)), "{up}");
    assert_eq!(add(&host, 1), json!({"count": 8, "version": 2}));
    // Asked again: nothing to do, nothing recorded.
    let again = host.json(&["upgrade", "counter", v2_arg]);
    assert_eq!(again["unchanged"], json!("counter"), "{again}");

    // A restart resumes on the code the chain names (the manifest, unchanged, names v1).
    let out = host.cli(&["restart", "counter"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(add(&host, 1), json!({"count": 9, "version": 2}));

    // Rolled back with the same command, by the hash of a component the host has run.
    let back = host.json(&["upgrade", "counter", &h1]);
    assert_eq!((&back["code"], &back["from"]), (&json!(h1), &json!(h2)));
    assert_eq!(add(&host, 1), json!(10));
    // Bad input is named.
    let out = host.cli(&["upgrade", "counter", "no-such-file.wasm"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no such file"), "{}", text(&out));
    let out = host.cli(&["upgrade", "counter", &"ab".repeat(32)]);
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("is not in"), "{}", text(&out));
    let out = host.cli(&["upgrade", "counter", "/dev/null"]);
    assert!(text(&out).contains("is not a file"), "{}", text(&out));
    host.stop();

    assert_eq!(
        upgrades(&data),
        vec![(json!(h1), json!(h2)), (json!(h2), json!(h1))]
    );
    // The whole chain replays, each entry on the code that handled it.
    let out = replay(&data, &m);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // ... which it finds in the host's store: without it, replay says which is missing.
    let store = data.join("components");
    let moved = dir.path().join("moved-components");
    std::fs::rename(&store, &moved).unwrap();
    let out = replay(&data, &m);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&h2) && text(&out).contains("is not in"),
        "{}",
        text(&out)
    );
    std::fs::rename(&moved, &store).unwrap();

    // A manifest that names another component is picked up on restart.
    let named_v2 = std::fs::read_to_string(&m)
        .unwrap()
        .replace(v1.to_str().unwrap(), v2_arg);
    std::fs::write(&m, &named_v2).unwrap();
    let host = Running::start(&data, std::slice::from_ref(&m));
    assert_eq!(add(&host, 1), json!({"count": 11, "version": 2}));
    host.stop();
    // Unchanged since: nothing more is recorded at the next start. A rollback through the
    // CLI stays across restarts while the manifest does not change.
    let host = Running::start(&data, std::slice::from_ref(&m));
    host.json(&["upgrade", "counter", &h1]);
    assert_eq!(add(&host, -20), json!(-9));
    host.stop();
    let host = Running::start(&data, std::slice::from_ref(&m));
    assert_eq!(add(&host, 0), json!(-9), "the CLI's rollback was undone");
    host.stop();
    assert_eq!(upgrades(&data).len(), 4);

    // A manifest changed to a component that refuses the state: the actor does not start,
    // says why, and its chain is as it was.
    std::fs::write(
        &m,
        std::fs::read_to_string(&m)
            .unwrap()
            .replace(v2_arg, v1.to_str().unwrap()),
    )
    .unwrap();
    Running::start(&data, std::slice::from_ref(&m)).stop();
    std::fs::write(&m, &named_v2).unwrap();
    let out = bin()
        .args(["run", "--data-dir"])
        .arg(&data)
        .arg(&m)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("rejects the current state") && text(&out).contains("not adopted"),
        "{}",
        text(&out)
    );
    assert_eq!(upgrades(&data).len(), 4);
    let out = replay(&data, &m);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_new_build_is_adopted_at_restart_and_a_missing_component_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (v1, v2) = (
        example_component("counter"),
        example_component("counter-v2"),
    );
    let hash = |p: &Path| Hash::digest(&std::fs::read(p).unwrap()).to_string();
    let (h1, h2) = (hash(&v1), hash(&v2));
    // The manifest names a file that a new build replaces in place.
    let built = dir.path().join("counter.wasm");
    std::fs::copy(&v1, &built).unwrap();
    let m = dir.path().join("counter.toml");
    std::fs::write(&m, format!("name = \"counter\"\ncomponent = {built:?}\n")).unwrap();

    let host = Running::start(&data, std::slice::from_ref(&m));
    assert_eq!(add(&host, 2), json!(2));
    std::fs::copy(&v2, &built).unwrap();
    let out = host.cli(&["restart", "counter"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(add(&host, 2), json!({"count": 4, "version": 2}));
    // Back to v1 by hash, then up to v2 again with nothing after: the snapshot the upgrade
    // took is the head.
    host.json(&["upgrade", "counter", &h1]);
    host.json(&["upgrade", "counter", &h2]);
    host.stop();
    assert_eq!(upgrades(&data).len(), 3);

    // The store loses v2 and the file is v1 again: nothing needs v2 to resume, so the actor
    // starts on v1 and the chain records the change; a replay, which needs v2, names it.
    let kept = dir.path().join("v2.wasm");
    std::fs::rename(data.join(format!("components/{h2}.wasm")), &kept).unwrap();
    std::fs::copy(&v1, &built).unwrap();
    let host = Running::start(&data, std::slice::from_ref(&m));
    assert_eq!(add(&host, 1), json!(5));
    host.stop();
    assert_eq!(upgrades(&data).last(), Some(&(json!(h2), json!(h1))));
    let out = replay(&data, &m);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains(&h2) && text(&out).contains("is not in"),
        "{}",
        text(&out)
    );
    std::fs::rename(&kept, data.join(format!("components/{h2}.wasm"))).unwrap();
    let out = replay(&data, &m);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}

#[test]
fn a_stopped_actors_chain_is_pruned_to_a_snapshot_and_still_verifies_and_replays() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = manifest(dir.path(), "counter", "counter", "");
    let v2 = example_component("counter-v2");
    let host = Running::start(&data, std::slice::from_ref(&m));
    let chain = data.join("chains/counter");
    let chain_arg = chain.to_str().unwrap();
    // Each upgrade takes a snapshot: at seq 11 and 22. Messages from outside any actor
    // (a request's answer may be referred to by the actor that asked: never dropped).
    let tell = || {
        let out = host.cli(&["send", "counter", "{\"add\": 1}"]);
        assert!(out.status.success(), "{}", text(&out));
    };
    for _ in 0..10 {
        tell();
    }
    host.json(&["upgrade", "counter", v2.to_str().unwrap()]);
    for _ in 0..10 {
        tell();
    }
    host.json(&[
        "upgrade",
        "counter",
        example_component("counter").to_str().unwrap(),
    ]);
    // Not while the host runs the actor.
    let out = bin()
        .args(["chain", "prune", chain_arg, "--keep-entries", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("locked"), "{}", text(&out));
    host.stop();

    let prune = |args: &[&str]| {
        let out = bin()
            .args(["chain", "prune", chain_arg])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        text(&out)
    };
    let said = prune(&["--keep-entries", "100"]);
    assert!(said.contains("nothing to prune"), "{said}");
    let said = prune(&["--keep-entries", "5", "--dry-run"]);
    assert!(said.contains("would drop entries 0 to 10"), "{said}");
    let said = prune(&["--keep-entries", "5"]);
    assert!(said.contains("dropped entries 0 to 10"), "{said}");
    // The chain starts at the snapshot, verifies from it, and replays on each entry's code.
    let out = bin().args(["chain", "verify", chain_arg]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = replay(&data, &m);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let host = Running::start(&data, std::slice::from_ref(&m));
    assert_eq!(add(&host, 1), json!(21));
    host.stop();

    // A policy in the manifest is checked.
    let bad = manifest(
        dir.path(),
        "counter",
        "other",
        "[retention]\nkeep_entries = 10\nkeep_days = 0\n",
    );
    let out = bin()
        .args(["run", "--data-dir"])
        .arg(dir.path().join("data2"))
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("retention.keep_days"), "{}", text(&out));
}

#[test]
fn a_manifests_retention_prunes_the_chain_as_the_host_snapshots_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let m = manifest(
        dir.path(),
        "counter",
        "counter",
        "[retention]\nkeep_entries = 5\n",
    );
    let (v1, v2) = (
        example_component("counter"),
        example_component("counter-v2"),
    );
    let host = Running::start(&data, std::slice::from_ref(&m));
    let tell = || {
        let out = host.cli(&["send", "counter", "{\"add\": 1}"]);
        assert!(out.status.success(), "{}", text(&out));
    };
    // Snapshots (each upgrade takes one) at 11 and 22: the second lets the first be the start.
    for to in [&v2, &v1] {
        for _ in 0..10 {
            tell();
        }
        host.json(&["upgrade", "counter", to.to_str().unwrap()]);
    }
    host.stop();
    let out = bin()
        .args(["chain", "log", "--json"])
        .arg(data.join("chains/counter"))
        .output()
        .unwrap();
    let first: Value = serde_json::from_str(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(first["seq"], json!(11), "{first}");
    let out = replay(&data, &m);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
}
