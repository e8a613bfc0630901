//! The wasm side: the `theater:actor/db` import.

use theater_chain::to_canonical_json;
use theater_wasm::bindings::theater::actor::db::Host;

use crate::{DbGrant, unit};

theater_wasm::host_view!();

// An ungranted database answers an error that is recorded like any answer, so the chain
// replays; in replay the answers come from the recording.
impl Host for View<'_> {
    async fn run(&mut self, request: Vec<u8>) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let request: serde_json::Value = match serde_json::from_slice(&request) {
            Ok(v) => v,
            Err(e) => return Ok(Err(format!("the request is not valid JSON: {e}"))),
        };
        let grant = self.0.grant::<DbGrant>();
        let r = unit::run(grant.as_ref().map(|g| &g.db), self.0.calls(), request).await;
        Ok(self.0.record(r)?.map(|answer| to_canonical_json(&answer)))
    }
}
