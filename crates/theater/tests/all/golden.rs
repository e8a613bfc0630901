//! Chains written before the structural state hash (format 1, `tests/golden/v1`) still
//! verify and replay, with their 0.1.0 components; an actor resumes on them and appends
//! format-2 entries; the mixed chain verifies and replays too.

use std::path::{Path, PathBuf};

use serde_json::json;
use theater_chain::state::StateScheme;
use theater_chain::{ChainStore, Durability, FileStore};
use theater_core::{ActorOutput, ActorRuntime, RuntimeConfig, replay};
use theater_test_support::add;
use theater_wasm::{Limits, WasmConfig, WasmHost};

use crate::run::bin;

fn golden() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/v1")
}

/// Copies the tree at `from` to `to`.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// A copy of the golden directory (the tests write to their copy only).
fn copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&golden(), dir.path());
    for chain in ["counter", "todo"] {
        std::fs::create_dir_all(dir.path().join("chains").join(chain).join("snapshots")).unwrap();
    }
    dir
}

fn run(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = bin().current_dir(dir).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn format_1_chains_verify_and_replay_with_their_components() {
    let dir = copy();
    let (code, said) = run(
        dir.path(),
        &["chain", "verify", "chains/counter", "chains/todo"],
    );
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("1006 entries verified"), "{said}");
    assert!(said.contains("head d4ad7d29af80cba3"), "{said}");
    assert!(said.contains("9 entries verified"), "{said}");
    for name in ["counter", "todo"] {
        let manifest = format!("{name}.toml");
        let chain = format!("chains/{name}");
        let (code, said) = run(
            dir.path(),
            &["chain", "replay", "--manifest", &manifest, &chain],
        );
        assert_eq!(code, Some(0), "{name}: {said}");
        assert!(said.contains("bit for bit"), "{name}: {said}");
    }
}

#[tokio::test]
async fn an_actor_resumes_on_a_format_1_chain_and_appends_format_2_entries() {
    let dir = copy();
    let host = WasmHost::new(WasmConfig::default().pooling(None)).unwrap();
    let component = host.load_file(dir.path().join("counter.wasm")).unwrap();
    assert_eq!(component.world(), "actor-v1");
    let id = theater_chain::ChainId::new("counter").unwrap();
    let open =
        || FileStore::open(dir.path().join("chains/counter"), Durability::EveryEntry).unwrap();
    let actor = || host.actor(&component, &id, serde_json::Value::Null, Limits::default());
    let mut rt = ActorRuntime::start(actor(), Box::new(open()), RuntimeConfig::default())
        .await
        .unwrap();
    assert_eq!(rt.state(), &json!({"count": 1016}));
    let handled = rt.handle(add(4), vec![]).await.unwrap();
    assert_eq!(handled.result.unwrap(), ActorOutput::reply(json!(1020)));
    rt.commit().unwrap();
    let chain = rt.chain();
    assert_eq!(chain.get(1005).unwrap().state_scheme(), StateScheme::Flat);
    // Resuming recorded the code that runs it (the chain predates recorded code).
    let upgrade = chain.get(1006).unwrap();
    assert_eq!(upgrade.event().code(), Some(component.hash()));
    assert_eq!(upgrade.event().kind(), "upgrade");
    let new = chain.get(1007).unwrap();
    assert_eq!((new.version(), new.state_scheme()), (2, StateScheme::Tree));
    assert_eq!(
        new.state_hash(),
        theater_chain::Hash::of_state(&json!({"count": 1020}))
    );
    drop(rt);
    // The mixed chain verifies, replays from genesis and resumes from its format-1 snapshot.
    let chain = open();
    chain.verify().unwrap();
    let report = replay(&mut actor(), &chain).await.unwrap();
    assert_eq!(report.state, json!({"count": 1020}));
    assert_eq!(report.entries, 1008);
    let rt = ActorRuntime::start(actor(), Box::new(chain), RuntimeConfig::default())
        .await
        .unwrap();
    assert_eq!(rt.state(), &json!({"count": 1020}));
    drop(rt);
    let (code, said) = run(dir.path(), &["chain", "verify", "chains/counter"]);
    assert_eq!(code, Some(0), "{said}");
    let (code, said) = run(
        dir.path(),
        &[
            "chain",
            "replay",
            "--manifest",
            "counter.toml",
            "chains/counter",
        ],
    );
    assert_eq!(code, Some(0), "{said}");
}

/// The todo example rebuilt for world `actor` (a `DocActor` now) answers exactly as the
/// 0.1.0 build did: it replays that build's chain bit for bit.
#[tokio::test]
async fn the_rebuilt_todo_replays_the_chain_of_its_0_1_0_build() {
    let dir = copy();
    let host = WasmHost::new(WasmConfig::default().pooling(None)).unwrap();
    let component = host
        .load_file(theater_test_support::example_component("todo"))
        .unwrap();
    assert_eq!(component.world(), "actor");
    let id = theater_chain::ChainId::new("todo").unwrap();
    let chain = FileStore::open_read_only(dir.path().join("chains/todo")).unwrap();
    let mut actor = host.actor(&component, &id, serde_json::Value::Null, Limits::default());
    let report = replay(&mut actor, &chain).await.unwrap();
    assert_eq!(report.entries, 9);
    assert_eq!(report.state["next_id"], 4);
}

/// A chain of the 0.1.0 world (`actor-v1`, format 1) is upgraded to today's counter: the
/// older component's entries and the new one's replay in one chain, each on its own code.
#[test]
fn a_chain_from_the_first_world_is_upgraded_to_the_current_one_and_replays_whole() {
    let dir = copy();
    let old = theater_chain::Hash::digest(&std::fs::read(dir.path().join("counter.wasm")).unwrap());
    let new = theater_test_support::example_component("counter");
    let mut cmd = bin();
    cmd.arg("run")
        .arg(dir.path().join("counter.toml"))
        .stderr(std::process::Stdio::null());
    // The data directory is the golden tree, whose chains/ holds the old chain.
    let host = crate::run::Running::start_cmd(cmd, dir.path());
    // Its first start recorded the code that runs it (the chain predates recorded code).
    let up = host.json(&["upgrade", "counter", new.to_str().unwrap()]);
    assert_eq!(up["from"], json!(old.to_string()), "{up}");
    let r = host.json(&["send", "counter", "{\"add\": 4}", "--request"]);
    assert_eq!(r["reply"], json!(1020), "{r}");
    host.stop();
    let (code, said) = run(
        dir.path(),
        &[
            "chain",
            "replay",
            "--manifest",
            "counter.toml",
            "chains/counter",
        ],
    );
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("bit for bit"), "{said}");
}
