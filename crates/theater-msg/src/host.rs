//! The wasm side: the `theater:actor/msg` imports.

use std::time::Duration;

use theater_chain::to_canonical_json;
use theater_wasm::bindings::theater::actor::msg::Host;

use crate::MsgGrant;

/// What a guest's `send`/`request` returns when the manifest did not grant messaging.
const NOT_GRANTED: &str =
    "messaging is not granted to this actor (add [interfaces.msg] to its manifest)";

theater_wasm::host_view!();

fn parse_message(message: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(message).map_err(|e| format!("the message is not valid JSON: {e}"))
}

impl Host for View<'_> {
    async fn send(&mut self, to: String, message: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let Some(grant) = self.0.grant::<MsgGrant>() else {
            return Ok(Err(NOT_GRANTED.into()));
        };
        let payload = match parse_message(&message) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let r = grant.outbox.send(self.0.calls(), &to, payload);
        self.0.record(r)
    }

    async fn request(
        &mut self,
        to: String,
        message: Vec<u8>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let Some(grant) = self.0.grant::<MsgGrant>() else {
            return Ok(Err(NOT_GRANTED.into()));
        };
        let payload = match parse_message(&message) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let timeout = Duration::from_millis(timeout_ms.into());
        let r = grant
            .outbox
            .request(self.0.calls(), &to, payload, timeout)
            .await;
        Ok(self.0.record(r)?.map(|reply| to_canonical_json(&reply)))
    }
}
