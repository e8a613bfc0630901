//! The wasm side: the `theater:actor/secrets` import.

use theater_wasm::bindings::theater::actor::secrets::Host;

use crate::{SecretsGrant, calls};

theater_wasm::host_view!();

impl Host for View<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let grant = self.0.grant::<SecretsGrant>();
        let r = calls::get(grant.as_deref(), self.0.calls(), &name);
        // The value crosses into the guest's memory and nowhere else.
        Ok(self.0.record(r)?.map(|v| v.to_vec()))
    }
}
