//! Shared set-up: one host per test, example components, runtimes on memory chains.

use serde_json::Value;
use theater_chain::{ChainStore, MemoryStore};
use theater_core::{ActorRuntime, RuntimeConfig};
use theater_test_support::{example_component, id};
use theater_wasm::{Limits, WasmActor, WasmConfig, WasmHost};

pub(crate) fn host() -> WasmHost {
    WasmHost::new(WasmConfig::default().pooling(Some(64))).unwrap()
}

pub(crate) fn actor(host: &WasmHost, example: &str, limits: Limits) -> WasmActor {
    let component = host.load_file(example_component(example)).unwrap();
    host.actor(&component, &id(example), Value::Null, limits)
}

pub(crate) async fn runtime(
    host: &WasmHost,
    example: &str,
    limits: Limits,
) -> ActorRuntime<WasmActor> {
    let chain: Box<dyn ChainStore> = Box::new(MemoryStore::new(id(example)));
    ActorRuntime::start(
        actor(host, example, limits),
        chain,
        RuntimeConfig::default(),
    )
    .await
    .unwrap()
}
