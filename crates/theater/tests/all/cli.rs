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
