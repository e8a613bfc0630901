//! The inventory example's database, as far as the wasm host is concerned: every answer, a
//! refusal included, is recorded, so the chain replays without a database.

use std::sync::Arc;

use serde_json::{Value, json};
use theater_chain::{ChainStore, MemoryStore};
use theater_core::{ActorInput, ActorRuntime, RuntimeConfig, replay};
use theater_db::{Database, Db, DbGrant};
use theater_test_support::id;
use theater_wasm::{Capabilities, Limits, WasmActor, WasmConfig, WasmHost};

fn host() -> WasmHost {
    WasmHost::new(
        WasmConfig::default()
            .pooling(Some(64))
            .capabilities(Capabilities::new().with(Db::new())),
    )
    .unwrap()
}

fn actor(host: &WasmHost, example: &str, limits: Limits) -> WasmActor {
    let component = host
        .load_file(theater_test_support::example_component(example))
        .unwrap();
    host.actor(&component, &id(example), Value::Null, limits)
}

/// A database that answers every request with no change.
#[derive(Debug)]
struct Nothing;

#[async_trait::async_trait]
impl Database for Nothing {
    async fn run(&self, _: &Value) -> Result<Value, theater_db::DbError> {
        Ok(json!({"changes": 0}))
    }
}

#[tokio::test]
async fn a_database_that_is_no_longer_granted_is_a_recorded_error_to_the_guest() {
    let host = host();
    let chain: Box<dyn ChainStore> = Box::new(MemoryStore::new(id("inventory")));
    let granted = actor(&host, "inventory", Limits::default()).with_grant(
        "db",
        Arc::new(DbGrant {
            db: Arc::new(Nothing),
        }),
    );
    let rt = ActorRuntime::start(granted, chain, RuntimeConfig::default())
        .await
        .unwrap();
    // Restarted from a manifest without [interfaces.db].
    let (_, chain) = rt.into_parts();
    let ungranted = actor(&host, "inventory", Limits::default());
    let mut rt = ActorRuntime::start(ungranted, chain, RuntimeConfig::default())
        .await
        .unwrap();
    let h = rt
        .handle(ActorInput::request(json!({"sql": "SELECT 1"})), vec![])
        .await
        .unwrap();
    let err = h.result.unwrap_err().to_string();
    assert!(err.contains("no database is granted"), "{err}");
    let mut fresh = actor(&host, "inventory", Limits::default());
    let report = replay(&mut fresh, rt.chain()).await.unwrap();
    assert_eq!(report.entries, 2);
}
