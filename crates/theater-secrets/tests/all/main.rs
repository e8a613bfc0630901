//! The signer example holds a key as a secret: it signs with it; the chain records the read
//! as a name and a version; replay reads the key again, and fails naming it when it is gone.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is how a test reports failure"
)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use theater_chain::{ChainStore, Durability, FileStore};
use theater_core::{ActorInput, ActorOutput, ActorRuntime, RuntimeConfig, replay};
use theater_secrets::{GET, Secrets, SecretsConfig, SecretsGrant};
use theater_test_support::{example_component, files_under, id, write_private as private_file};
use theater_wasm::secrets::Source;
use theater_wasm::{Capabilities, Limits, WasmActor, WasmConfig, WasmHost};

fn host() -> WasmHost {
    WasmHost::new(
        WasmConfig::default()
            .pooling(None)
            .capabilities(Capabilities::new().with(Secrets::default())),
    )
    .unwrap()
}

fn signer(host: &WasmHost, names: &[&str], secrets: Option<&theater_wasm::Secrets>) -> WasmActor {
    let component = host.load_file(example_component("signer")).unwrap();
    let actor = host.actor(&component, &id("signer"), Value::Null, Limits::default());
    match secrets {
        None => actor,
        Some(s) => {
            let config = SecretsConfig {
                names: names.iter().map(|n| n.to_string()).collect(),
            };
            actor.with_grant("secrets", Arc::new(SecretsGrant::new(&config, s)))
        }
    }
}

async fn ask(rt: &mut ActorRuntime<WasmActor>, request: Value) -> Result<Value, String> {
    let handled = rt
        .handle(ActorInput::request(request), vec![])
        .await
        .unwrap();
    match handled.result {
        Ok(ActorOutput::Reply { payload }) => Ok(payload),
        Ok(other) => panic!("{other:?}"),
        Err(e) => Err(e.to_string()),
    }
}

fn hmac_hex(key: &[u8], text: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, text.as_bytes());
    tag.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn every_byte(dir: &Path) -> Vec<u8> {
    files_under(dir)
        .iter()
        .flat_map(|f| std::fs::read(f).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_signs_with_a_secret_the_chain_records_only_its_name_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("signing.key");
    let (first, second) = (
        b"key-one-0f1e2d3c4b5a6978".as_slice(),
        b"key-two-8796a5b4c3d2e1f0".as_slice(),
    );
    private_file(&key_file, first);
    let sources = BTreeMap::from([("SIGNING_KEY".to_string(), Source::File(key_file.clone()))]);
    let secrets = theater_wasm::Secrets::new(sources.clone())
        .with_key_in(dir.path())
        .unwrap();
    let host = host();
    let chain_dir = dir.path().join("chain");
    let chain = FileStore::create(&chain_dir, id("signer"), Durability::None).unwrap();
    let mut rt = ActorRuntime::start(
        signer(&host, &["SIGNING_KEY"], Some(&secrets)),
        Box::new(chain),
        RuntimeConfig::default(),
    )
    .await
    .unwrap();
    let a = ask(&mut rt, json!({"sign": "hello"})).await.unwrap();
    assert_eq!(a["signature"], hmac_hex(first, "hello"));
    // Rotated: the next input signs with the new key.
    private_file(&key_file, second);
    let b = ask(&mut rt, json!({"sign": "hello"})).await.unwrap();
    assert_eq!(b["signature"], hmac_hex(second, "hello"));
    let v = ask(
        &mut rt,
        json!({"verify": {"text": "hello", "signature": b["signature"]}}),
    )
    .await
    .unwrap();
    assert_eq!(v["valid"], true);
    rt.commit().unwrap();
    let state = rt.state().clone();
    let recorded: Vec<Value> = (0..rt.chain().len())
        .flat_map(|s| rt.chain().get(s).unwrap().host_calls().to_vec())
        .filter(|c| c.name == GET)
        .map(|c| c.result.json)
        .collect();
    drop(rt);
    assert_eq!(recorded.len(), 3);
    assert_eq!(
        recorded[0]["ok"]["version"].as_str(),
        secrets.version_of("SIGNING_KEY", first).as_deref()
    );
    assert_ne!(recorded[0], recorded[1], "a rotation shows in the version");
    let written = every_byte(&chain_dir);
    for key in [first, second] {
        assert!(memchr::memmem::find(&written, key).is_none());
    }

    // The key rotated again while the actor was down: it still starts (a snapshot follows
    // every input that read a secret, so resuming runs none of them again), and signs with
    // the new key.
    let third = b"key-three-55aa55aa55aa55aa".as_slice();
    private_file(&key_file, third);
    let reopened = FileStore::open(&chain_dir, Durability::None).unwrap();
    assert_eq!(reopened.latest_snapshot().unwrap().unwrap().seq, 3);
    let mut rt = ActorRuntime::start(
        signer(&host, &["SIGNING_KEY"], Some(&secrets)),
        Box::new(reopened),
        RuntimeConfig::default(),
    )
    .await
    .unwrap();
    assert_eq!(rt.state().clone(), state, "resumed to the same state");
    let c = ask(&mut rt, json!({"sign": "hello"})).await.unwrap();
    assert_eq!(c["signature"], hmac_hex(third, "hello"));
    rt.commit().unwrap();
    drop(rt);
    private_file(&key_file, second);

    // Replay with the current key: the first two inputs need the first key, which is gone.
    let stored = FileStore::open_read_only(&chain_dir).unwrap();
    let with = theater_wasm::Secrets::new(sources.clone()).with_existing_key_in(dir.path());
    let mut actor = signer(&host, &["SIGNING_KEY"], Some(&with));
    let e = replay(&mut actor, &stored).await.unwrap_err().to_string();
    assert!(
        e.contains("at seq 1") && e.contains("SIGNING_KEY") && e.contains("another one"),
        "{e}"
    );
    // With the first key back, up to the rotation: it passes that far.
    private_file(&key_file, first);
    let mut actor = signer(&host, &["SIGNING_KEY"], Some(&with));
    let e = replay(&mut actor, &stored).await.unwrap_err().to_string();
    let second_version = recorded[1]["ok"]["version"].as_str().unwrap();
    assert!(
        e.contains("at seq 2") && e.contains(second_version) && e.contains("another one"),
        "the first input replays with the first key, the second needs the second: {e}"
    );
    // Without the secret at all: fails naming it.
    std::fs::remove_file(&key_file).unwrap();
    let mut actor = signer(&host, &["SIGNING_KEY"], Some(&with));
    let e = replay(&mut actor, &stored).await.unwrap_err().to_string();
    assert!(e.contains("needs secret SIGNING_KEY"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_not_granted_is_an_error_the_guest_sees_and_the_chain_records() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("signing.key");
    private_file(&key_file, b"some-key-value-1234");
    let sources = BTreeMap::from([("SIGNING_KEY".to_string(), Source::File(key_file))]);
    let secrets = theater_wasm::Secrets::new(sources);
    let host = host();
    for (names, grant, want) in [
        (vec!["OTHER"], Some(&secrets), "is not granted"),
        (vec![], None, "not granted to this actor"),
    ] {
        let chain = FileStore::create(
            dir.path().join(format!("c{}", names.len())),
            id("signer"),
            Durability::None,
        )
        .unwrap();
        let mut rt = ActorRuntime::start(
            signer(&host, &names, grant),
            Box::new(chain),
            RuntimeConfig::default(),
        )
        .await
        .unwrap();
        let e = ask(&mut rt, json!({"sign": "x"})).await.unwrap_err();
        assert!(e.contains(want), "{e}");
        // The refusal is recorded (so the chain replays), never a value.
        let head = rt.chain().len() - 1;
        let calls = rt.chain().get(head).unwrap().host_calls().to_vec();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].name, GET);
        assert!(
            calls[0].result.json["error"]
                .as_str()
                .unwrap()
                .contains(want),
            "{:?}",
            calls[0].result
        );
    }
}

#[test]
fn what_the_guest_logs_of_a_value_it_read_is_redacted() {
    use theater_wasm::Grant;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("k");
    private_file(&key_file, b"value-to-hide-42");
    let secrets =
        theater_wasm::Secrets::new(BTreeMap::from([("K".to_string(), Source::File(key_file))]));
    let grant = SecretsGrant::new(
        &SecretsConfig {
            names: vec!["K".into()],
        },
        &secrets,
    );
    // Nothing handed out yet: nothing to redact.
    assert_eq!(grant.redact("value-to-hide-42"), None);
    let mut calls = theater_core::HostCalls::live();
    let got = theater_secrets::calls::get(Some(&grant), &mut calls, "K")
        .unwrap()
        .unwrap();
    assert_eq!(&got[..], b"value-to-hide-42");
    assert_eq!(
        grant.redact("the key is value-to-hide-42!").as_deref(),
        Some("the key is [secret K]!")
    );
    assert!(!format!("{:?}", calls.calls()).contains("value-to-hide"));
}
