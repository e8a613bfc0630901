//! The chain tools and the demo, as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

fn theater(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_theater"))
        .args(args)
        .output()
        .expect("run theater")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn demo_chain(root: &Path) -> std::path::PathBuf {
    theater_test_support::example_component("counter");
    let out = theater(&["demo", "--dir", root.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let said = text(&out);
    assert!(said.contains("verify refuses it"), "{said}");
    assert!(said.contains("at seq 2"), "{said}");
    root.join("counter")
}

#[test]
fn demo_runs_a_wasm_actor_and_shows_tampering_and_recovery() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_chain(root.path());
    assert!(dir.join("chain.log").is_file());
}

#[test]
fn verify_passes_then_fails_naming_the_seq() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_chain(root.path());
    // The demo leaves the chain cut after a simulated crash: a reader ignores the torn tail.
    let out = theater(&["chain", "verify", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("4 entries verified"), "{}", text(&out));

    let log = dir.join("chain.log");
    let mut bytes = std::fs::read(&log).unwrap();
    let pos = bytes
        .windows(7)
        .position(|w| w == b"\"add\":3")
        .expect("entry 1 in the log");
    bytes[pos + 6] = b'9';
    std::fs::write(&log, bytes).unwrap();
    let out = theater(&["chain", "verify", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("at seq 1, byte offset"),
        "{}",
        text(&out)
    );
}

#[test]
fn log_prints_entries_as_text_and_json() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_chain(root.path());
    let out = theater(&[
        "chain",
        "log",
        dir.to_str().unwrap(),
        "--from",
        "1",
        "--to",
        "2",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let lines: Vec<String> = text(&out).lines().map(str::to_string).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines[0]
            .contains(r#"{"payload":{"add":3},"type":"request"} -> {"payload":3,"type":"reply"}"#),
        "{lines:?}"
    );
    let out = theater(&["chain", "log", dir.to_str().unwrap(), "--json"]);
    let entries: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 4);
    assert_eq!(entries[3]["kind"], "failed");
    assert_eq!(entries[1]["parent"], entries[0]["hash"]);
}

#[test]
fn unreadable_chains_exit_2() {
    let root = tempfile::tempdir().unwrap();
    let out = theater(&[
        "chain",
        "verify",
        root.path().join("nope").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("cannot read the chain"),
        "{}",
        text(&out)
    );
}

#[test]
fn replay_state_at_diff_and_log_kinds_on_a_real_session() {
    let root = tempfile::tempdir().unwrap();
    let dir = demo_chain(root.path());
    let d = dir.to_str().unwrap();
    let manifest = theater_test_support::workspace_root().join("examples/counter/counter.toml");
    let m = manifest.to_str().unwrap();
    // The demo's session: init, add 3, add 4, a failed input, get.
    let out = theater(&["chain", "replay", d, "--manifest", m]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("replayed 4 entries"), "{}", text(&out));
    for (at, count) in [("0", 0), ("1", 3), ("2", 7), ("3", 7)] {
        let out = theater(&["chain", "state", d, "--at", at, "--manifest", m]);
        assert!(out.status.success(), "{}", text(&out));
        let state: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(state["count"], count, "at {at}");
    }
    let out = theater(&["chain", "diff", d, "1", "2", "--manifest", m]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "~ /count: 3 -> 7"
    );
    let out = theater(&["chain", "diff", d, "0", "2", "--manifest", m, "--json"]);
    let diff: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        diff,
        serde_json::json!([{"path": "/count", "before": 0, "after": 7}])
    );
    let out = theater(&["chain", "state", d, "--at", "99", "--manifest", m]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).contains("seq 99 is not in the chain"),
        "{}",
        text(&out)
    );
    // Log filtered by kind.
    let out = theater(&["chain", "log", d, "--kind", "failed"]);
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("failed"), "{lines:?}");
    let out = theater(&["chain", "log", d, "--kind", "request", "--json"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);

    // A manifest that would start the actor differently: the replay diverges at seq 0.
    let other = root.path().join("counter.toml");
    std::fs::write(
        &other,
        format!(
            "name = \"counter\"\ncomponent = {:?}\n[init]\ncount = 10\n",
            theater_test_support::example_component("counter")
        ),
    )
    .unwrap();
    let out = theater(&["chain", "replay", d, "--manifest", other.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("DIVERGED") && text(&out).contains("seq 0"),
        "{}",
        text(&out)
    );
    // A manifest for another actor is refused.
    let dice = theater_test_support::workspace_root().join("examples/dice/dice.toml");
    let out = theater(&["chain", "replay", d, "--manifest", dice.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).contains("the manifest is for"), "{}", text(&out));
}
