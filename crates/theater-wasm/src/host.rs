//! What the store holds for one actor instance, and the host functions every actor gets
//! (logging, the clock, randomness). Capabilities add theirs (see [`crate::capability`]).

use std::sync::Arc;

use theater_core::{HostCallError, HostCalls};
use wasmtime::ResourceLimiter;

use crate::bindings::{Host, Level};
use crate::capability::{Grant, Grants};

/// The memory limit was reached (raised as a trap from the limiter).
#[derive(Debug, thiserror::Error)]
#[error("memory limit of {limit} bytes exceeded (the guest asked for {wanted} bytes)")]
pub(crate) struct MemoryLimit {
    pub(crate) limit: usize,
    pub(crate) wanted: usize,
}

/// The CPU budget for one call ran out (raised as a trap from the epoch callback).
#[derive(Debug, thiserror::Error)]
#[error("CPU limit of {0:?} per input exceeded")]
pub(crate) struct CpuLimit(pub(crate) std::time::Duration);

/// Store data of one actor instance: what every host function works with. A capability's
/// host functions find their grant with [`HostState::grant`], record through
/// [`HostState::calls`], and turn a recorder error into a trap with [`HostState::record`].
pub struct HostState {
    /// The recorder of the call in progress (moved in for the call, moved out after).
    pub(crate) calls: HostCalls,
    /// A recorder error raised inside a host function, reported after the trap.
    pub(crate) call_error: Option<HostCallError>,
    /// The last error-level log line (a guest panic message), to explain a trap.
    pub(crate) last_error_log: Option<String>,
    /// Epoch ticks left for the call in progress.
    pub(crate) ticks_left: u64,
    pub(crate) memory_limit: usize,
    pub(crate) actor: String,
    /// What the manifest granted, by capability.
    grants: Grants,
}

impl HostState {
    pub(crate) fn new(actor: String, memory_limit: usize, grants: Grants) -> Self {
        HostState {
            calls: HostCalls::live(),
            call_error: None,
            last_error_log: None,
            ticks_left: 0,
            memory_limit,
            actor,
            grants,
        }
    }

    /// The actor's grant of type `G` (`None`: its manifest does not grant that capability).
    pub fn grant<G: Grant>(&self) -> Option<Arc<G>> {
        self.grants.get()
    }

    /// The recorder of the input being handled.
    pub fn calls(&mut self) -> &mut HostCalls {
        &mut self.calls
    }

    /// The actor's id.
    pub fn actor(&self) -> &str {
        &self.actor
    }

    /// Passes a host call's answer on, or turns a recorder error (replay found another call
    /// than the recording) into a trap that fails the input with that error.
    pub fn record<T>(&mut self, r: Result<T, HostCallError>) -> wasmtime::Result<T> {
        r.map_err(|e| {
            self.call_error = Some(e.clone());
            wasmtime::Error::new(e)
        })
    }
}

impl Host for HostState {
    async fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
        // A guest that logs a secret it holds: the log (and a trap's explanation) says
        // `[secret NAME]` instead.
        let message = self.grants.redact(message);
        let actor = &self.actor;
        match level {
            Level::Trace => tracing::trace!(%actor, "{message}"),
            Level::Debug => tracing::debug!(%actor, "{message}"),
            Level::Info => tracing::info!(%actor, "{message}"),
            Level::Warn => tracing::warn!(%actor, "{message}"),
            Level::Error => {
                tracing::error!(%actor, "{message}");
                self.last_error_log = Some(message);
            }
        }
        Ok(())
    }

    async fn now_millis(&mut self) -> wasmtime::Result<u64> {
        let r = self.calls.now_millis();
        self.record(r)
    }

    async fn random_bytes(&mut self, n: u32) -> wasmtime::Result<Vec<u8>> {
        let r = self.calls.random_bytes(n as usize);
        self.record(r)
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_limit {
            return Err(wasmtime::Error::new(MemoryLimit {
                limit: self.memory_limit,
                wanted: desired,
            }));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}
