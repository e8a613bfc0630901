//! The wasm side: the `theater:actor/timers` imports.

use std::time::Duration;

use theater_wasm::bindings::theater::actor::timers::Host;

use crate::{TimerGrant, schedule};

theater_wasm::host_view!();

// Ungranted timers answer an error that is recorded like any answer, so the chain replays; in
// replay the answers come from the recording.
impl Host for View<'_> {
    async fn set(
        &mut self,
        name: String,
        delay_ms: u64,
        every_ms: Option<u64>,
    ) -> wasmtime::Result<Result<u64, String>> {
        let grant = self.0.grant::<TimerGrant>();
        let r = schedule::set(
            grant.as_ref().map(|g| &g.timers),
            self.0.calls(),
            &name,
            Duration::from_millis(delay_ms),
            every_ms.map(Duration::from_millis),
        );
        self.0.record(r)
    }

    async fn cancel(&mut self, name: String) -> wasmtime::Result<Result<(), String>> {
        let grant = self.0.grant::<TimerGrant>();
        let r = schedule::cancel(grant.as_ref().map(|g| &g.timers), self.0.calls(), &name);
        self.0.record(r)
    }
}
