//! What the store holds for one actor instance, and the host functions guests import.

use theater_core::{HostCallError, HostCalls};
use wasmtime::ResourceLimiter;

use crate::bindings::{Host, Level};

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

/// Store data of one actor instance.
pub(crate) struct HostState {
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
}

impl HostState {
    pub(crate) fn new(actor: String, memory_limit: usize) -> Self {
        HostState {
            calls: HostCalls::live(),
            call_error: None,
            last_error_log: None,
            ticks_left: 0,
            memory_limit,
            actor,
        }
    }

    fn record<T>(&mut self, r: Result<T, HostCallError>) -> wasmtime::Result<T> {
        r.map_err(|e| {
            self.call_error = Some(e.clone());
            wasmtime::Error::new(e)
        })
    }
}

impl Host for HostState {
    fn log(&mut self, level: Level, message: String) -> wasmtime::Result<()> {
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

    fn now_millis(&mut self) -> wasmtime::Result<u64> {
        let r = self.calls.now_millis();
        self.record(r)
    }

    fn random_bytes(&mut self, n: u32) -> wasmtime::Result<Vec<u8>> {
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
