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
            "invalid actor name",
        ),
        (
            format!("name = \"../up\"\n{c}"),
            "field `name`",
            "invalid actor name",
        ),
        (
            format!("name = \"a/b\"\n{c}"),
            "field `name`",
            "'/' is not allowed",
        ),
        (
            format!("name = \".hidden\"\n{c}"),
            "field `name`",
            "must not start with `.`",
        ),
        (
            format!("name = \"*\"\n{c}"),
            "field `name`",
            "a family's pattern is a name prefix",
        ),
        (
            format!("name = \"x\"\n{c}[activation]\nidle_ms = 5\n"),
            "field `activation`",
            "only a family",
        ),
        (
            format!("name = \"room-*\"\n{c}[activation]\nmax_active = 0\n"),
            "field `activation.max_active`",
            "at least 1",
        ),
        (
            format!("name = \"room-*\"\n{c}[activation]\nidle = 5\n"),
            "idle",
            "unknown field",
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

#[test]
fn a_pattern_declares_a_family_whose_members_are_valid_names_with_its_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rooms.toml");
    let c = format!("component = {:?}\n", example_component("counter"));
    std::fs::write(
        &path,
        format!(
            "name = \"room-*\"\n{c}[activation]\nidle_ms = 250\nmax_active = 7\n[init]\nx = 1\n"
        ),
    )
    .unwrap();
    let m = Manifest::load(&path).unwrap();
    let f = m.family.clone().expect("a family");
    assert_eq!(f.prefix, "room-");
    assert_eq!(f.idle, std::time::Duration::from_millis(250));
    assert_eq!(f.max_active, 7);
    for yes in ["room-a", "room-lobby.2", "room-A_b-c"] {
        assert!(f.covers(yes), "{yes}");
    }
    for no in [
        "room-",
        "room",
        "hall-a",
        "room-../x",
        "room-a/b",
        "room- a",
        "room-\u{e9}",
    ] {
        assert!(!f.covers(no), "{no}");
    }
    let member = m.instance("room-a", None).unwrap();
    assert_eq!(member.name.as_str(), "room-a");
    assert!(member.family.is_none());
    assert_eq!(member.init, serde_json::json!({"x": 1}));
    let given = m.instance("room-b", Some(serde_json::json!(5))).unwrap();
    assert_eq!(given.init, serde_json::json!(5));
    assert!(m.instance("../x", None).is_err());
    // Without a pattern, a manifest is one actor.
    std::fs::write(&path, format!("name = \"room\"\n{c}")).unwrap();
    assert!(Manifest::load(&path).unwrap().family.is_none());
}

/// Without `[retention]` a chain keeps the default (the newest 100,000 entries, reads by
/// digest); the section changes each part, `keep_all` turns pruning off, and a bad value
/// names its field.
#[test]
fn retention_has_a_default_and_each_setting_is_checked() {
    use theater_core::{Reads, Retention};
    let dir = tempfile::tempdir().unwrap();
    let c = component_line();
    let load =
        |extra: &str| Manifest::load(write(dir.path(), &format!("name = \"x\"\n{c}{extra}")));
    let m = load("").unwrap();
    assert_eq!(m.retention, Some(Retention::default()));
    assert_eq!(m.reads, Reads::Digest);
    assert!(!m.retention_declared);
    let m = load("[retention]\nkeep_days = 30\nreads = \"full\"\n").unwrap();
    assert_eq!(
        m.retention,
        Some(Retention {
            keep_entries: 100_000,
            keep_days: Some(30)
        })
    );
    assert_eq!(m.reads, Reads::Full);
    assert!(m.retention_declared);
    let m = load("[retention]\nkeep_all = true\n").unwrap();
    assert_eq!((m.retention, m.reads), (None, Reads::Digest));
    let m = load("[retention]\nkeep_entries = 10\n").unwrap();
    assert_eq!(m.retention.map(|r| r.keep_entries), Some(10));
    // Only `reads`: what to prune is still the default's.
    let m = load("[retention]\nreads = \"full\"\n").unwrap();
    assert_eq!(
        (m.retention, m.reads),
        (Some(Retention::default()), Reads::Full)
    );
    assert!(!m.retention_declared);
    for (extra, field, problem) in [
        (
            "[retention]\nreads = \"some\"\n",
            "retention.reads",
            "\"digest\" or \"full\"",
        ),
        (
            "[retention]\nkeep_all = true\nkeep_entries = 5\n",
            "retention.keep_entries",
            "keep_all",
        ),
        (
            "[retention]\nkeep_all = true\nkeep_days = 5\n",
            "retention.keep_days",
            "keep_all",
        ),
        (
            "[retention]\nkeep_days = 0\n",
            "retention.keep_days",
            "at least 1",
        ),
        ("[retention]\nkeep = 5\n", "keep", "unknown field"),
    ] {
        let msg = error_of(&format!("name = \"x\"\n{c}{extra}"));
        assert!(
            msg.contains(field) && msg.contains(problem),
            "{extra}: {msg}"
        );
    }
}
