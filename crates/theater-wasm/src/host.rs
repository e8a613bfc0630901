//! What the store holds for one actor instance, and the host functions guests import.

use std::sync::Arc;
use std::time::Duration;

use theater_chain::to_canonical_json;
use theater_core::files::{FileGrant, calls as files};
use theater_core::{HostCallError, HostCalls, Outbox};
use wasmtime::ResourceLimiter;

use crate::bindings::{
    DbHost, FilesHost, Host, Level, MsgHost, TimersHost, WitDirEntry, WitFileInfo,
};

/// What a guest's `send`/`request` returns when the manifest did not grant messaging.
pub(crate) const MSG_NOT_GRANTED: &str =
    "messaging is not granted to this actor (add [interfaces.msg] to its manifest)";

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
    /// Where `send` and `request` go (`None`: messaging not granted).
    pub(crate) outbox: Option<Arc<dyn Outbox>>,
    /// The directory `files` uses (`None`: not granted).
    pub(crate) files: Option<Arc<FileGrant>>,
    /// The actor's timers (`None`: not granted).
    pub(crate) timers: Option<theater_core::timers::Timers>,
    /// The actor's database (`None`: not granted).
    pub(crate) db: Option<Arc<dyn theater_core::db::Database>>,
}

impl HostState {
    pub(crate) fn new(
        actor: String,
        memory_limit: usize,
        outbox: Option<Arc<dyn Outbox>>,
        files: Option<Arc<FileGrant>>,
        timers: Option<theater_core::timers::Timers>,
        db: Option<Arc<dyn theater_core::db::Database>>,
    ) -> Self {
        HostState {
            calls: HostCalls::live(),
            call_error: None,
            last_error_log: None,
            ticks_left: 0,
            memory_limit,
            actor,
            outbox,
            files,
            timers,
            db,
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

fn parse_message(message: &[u8]) -> Result<serde_json::Value, String> {
    serde_json::from_slice(message).map_err(|e| format!("the message is not valid JSON: {e}"))
}

impl MsgHost for HostState {
    fn send(&mut self, to: String, message: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let Some(outbox) = self.outbox.clone() else {
            return Ok(Err(MSG_NOT_GRANTED.into()));
        };
        let payload = match parse_message(&message) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let r = outbox.send(&mut self.calls, &to, payload);
        self.record(r)
    }

    async fn request(
        &mut self,
        to: String,
        message: Vec<u8>,
        timeout_ms: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let Some(outbox) = self.outbox.clone() else {
            return Ok(Err(MSG_NOT_GRANTED.into()));
        };
        let payload = match parse_message(&message) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        let timeout = Duration::from_millis(timeout_ms.into());
        let r = outbox.request(&mut self.calls, &to, payload, timeout).await;
        Ok(self.record(r)?.map(|reply| to_canonical_json(&reply)))
    }
}

impl FilesHost for HostState {
    fn stat(&mut self, path: String) -> wasmtime::Result<Result<WitFileInfo, String>> {
        let r = files::stat(self.files.as_deref(), &mut self.calls, &path);
        Ok(self.record(r)?.map(|info| WitFileInfo {
            size: info.size,
            sha256: info.sha256.to_string(),
            content_type: info.content_type,
        }))
    }

    fn read(&mut self, path: String) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let r = files::read(self.files.as_deref(), &mut self.calls, &path);
        self.record(r)
    }

    fn list_dir(&mut self, path: String) -> wasmtime::Result<Result<Vec<WitDirEntry>, String>> {
        let r = files::list(self.files.as_deref(), &mut self.calls, &path);
        Ok(self.record(r)?.map(|entries| {
            entries
                .into_iter()
                .map(|e| WitDirEntry {
                    name: e.name,
                    is_dir: e.dir,
                    size: e.size,
                })
                .collect()
        }))
    }

    fn write(&mut self, path: String, contents: Vec<u8>) -> wasmtime::Result<Result<(), String>> {
        let r = files::write(self.files.as_deref(), &mut self.calls, &path, contents);
        self.record(r)
    }

    fn delete(&mut self, path: String) -> wasmtime::Result<Result<(), String>> {
        let r = files::delete(self.files.as_deref(), &mut self.calls, &path);
        self.record(r)
    }
}

// Ungranted timers and databases answer an error that is recorded like any answer (by
// `theater_core`), so the chain replays; in replay the answers come from the recording.
impl TimersHost for HostState {
    fn set(
        &mut self,
        name: String,
        delay_ms: u64,
        every_ms: Option<u64>,
    ) -> wasmtime::Result<Result<u64, String>> {
        let r = theater_core::timers::set(
            self.timers.as_ref(),
            &mut self.calls,
            &name,
            Duration::from_millis(delay_ms),
            every_ms.map(Duration::from_millis),
        );
        self.record(r)
    }

    fn cancel(&mut self, name: String) -> wasmtime::Result<Result<(), String>> {
        let r = theater_core::timers::cancel(self.timers.as_ref(), &mut self.calls, &name);
        self.record(r)
    }
}

impl DbHost for HostState {
    fn run(&mut self, request: Vec<u8>) -> wasmtime::Result<Result<Vec<u8>, String>> {
        let request: serde_json::Value = match serde_json::from_slice(&request) {
            Ok(v) => v,
            Err(e) => return Ok(Err(format!("the request is not valid JSON: {e}"))),
        };
        let r = theater_core::db::run(self.db.as_ref(), &mut self.calls, request);
        Ok(self.record(r)?.map(|answer| to_canonical_json(&answer)))
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
