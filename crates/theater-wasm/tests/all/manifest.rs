//! Manifests: good ones load; bad ones name the file, the field and the problem.

use std::path::Path;

use serde_json::json;
use theater_test_support::example_component;
use theater_wasm::Manifest;

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("actor.toml");
    std::fs::write(&p, text).unwrap();
    p
}

fn component_line() -> String {
    format!("component = {:?}\n", example_component("counter"))
}

#[test]
fn a_full_manifest_loads() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "name = \"counter\"\n{}\n[init]\ncount = 10\n\n[limits]\nmemory_mb = 32\ncpu_ms = 250\n\n[interfaces.http]\nlisten = \"127.0.0.1:0\"\n",
        component_line()
    );
    let m = Manifest::load(write(dir.path(), &text)).unwrap();
    assert_eq!(m.name.as_str(), "counter");
    assert_eq!(m.init, json!({"count": 10}));
    assert_eq!(m.limits.memory_bytes, 32 << 20);
    assert_eq!(m.limits.cpu.as_millis(), 250);
    assert!(m.interfaces.contains_key("http"));
}

#[test]
fn the_example_manifests_load() {
    example_component("counter");
    let root = theater_test_support::workspace_root();
    for ex in [
        "account",
        "chat",
        "counter",
        "dice",
        "fileserver",
        "fragile",
        "hog",
        "notes",
        "pingpong",
        "todo",
    ] {
        let m = Manifest::load(root.join(format!("examples/{ex}/{ex}.toml"))).unwrap();
        assert!(m.component.is_file(), "{}", m.component.display());
    }
    let m = Manifest::load(root.join("examples/fileserver/fileserver.toml")).unwrap();
    let files = &m.interfaces["files"];
    assert!(
        m.relative(files["dir"].as_str().unwrap())
            .join("index.html")
            .is_file()
    );
    let m = Manifest::load(root.join("examples/account/account.toml")).unwrap();
    assert!(m.grants("msg") && !m.grants("http") && !m.grants("files"));
}

fn error_of(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), text);
    let e = Manifest::load(&p).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("actor.toml"), "the file is named: {msg}");
    msg
}

#[test]
fn errors_name_the_field() {
    let c = component_line();
    let cases = [
        (c.clone(), "field `name`", "missing field"),
        (
            "name = \"x\"\n".to_string(),
            "field `component`",
            "missing field",
        ),
        (
            format!("name = \"x\"\n{c}colour = \"red\"\n"),
            "field `colour`",
            "unknown field",
        ),
        (
            format!("name = \"\"\n{c}"),
            "field `name`",
            "invalid chain id",
        ),
        (
            "name = \"x\"\ncomponent = \"nope.wasm\"\n".into(),
            "field `component`",
            "no file at",
        ),
        (
            format!("name = \"x\"\n{c}[limits]\nmemory_mb = 0\n"),
            "field `limits.memory_mb`",
            "between 1 and",
        ),
        (
            format!("name = \"x\"\n{c}[limits]\ncpu_ms = 0\n"),
            "field `limits.cpu_ms`",
            "at least 1",
        ),
        (format!("name = 5\n{c}"), "name", "line 1"),
        ("name = \"x\"\ncomponent = \n".into(), "line 2", ""),
    ];
    for (text, field, problem) in cases {
        let msg = error_of(&text);
        assert!(
            msg.contains(field) && msg.contains(problem),
            "{text:?} gave {msg}"
        );
    }
}
