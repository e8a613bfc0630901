//! [`WasmActor`]: an [`Actor`] whose code is a component.

use std::sync::Arc;

use theater_core::files::FileGrant;

use async_trait::async_trait;
use serde_json::Value;
use theater_chain::{ChainId, to_canonical_json};
use theater_core::{Actor, ActorError, ActorInput, ActorOutput, HostCalls, Outbox};
use wasmtime::{Store, UpdateDeadline};

use crate::Limits;
use crate::bindings;
use crate::engine::{ActorComponent, WasmHost};
use crate::host::{CpuLimit, HostState, MemoryLimit};

struct Live {
    store: Store<HostState>,
    bindings: bindings::Actor,
}

/// An actor running a wasm component. Keeps one instance between inputs; after a trap or
/// an interrupted input the instance is discarded and the next input gets a fresh one.
pub struct WasmActor {
    host: WasmHost,
    component: ActorComponent,
    id: String,
    init: Value,
    limits: Limits,
    outbox: Option<Arc<dyn Outbox>>,
    files: Option<Arc<FileGrant>>,
    timers: Option<theater_core::timers::Timers>,
    db: Option<Arc<dyn theater_core::db::Database>>,
    live: Option<Live>,
}

impl std::fmt::Debug for WasmActor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmActor")
            .field("id", &self.id)
            .field("component", &self.component.hash())
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl WasmActor {
    pub(crate) fn new(
        host: WasmHost,
        component: ActorComponent,
        id: &ChainId,
        init: Value,
        limits: Limits,
    ) -> Self {
        WasmActor {
            host,
            component,
            id: id.to_string(),
            init,
            limits,
            outbox: None,
            files: None,
            timers: None,
            db: None,
            live: None,
        }
    }

    /// Grants a database: the guest's `db.run` goes to `db` (each request and answer
    /// recorded). Without it the import returns an error (replay needs none).
    pub fn with_database(mut self, db: Arc<dyn theater_core::db::Database>) -> Self {
        self.db = Some(db);
        self.live = None;
        self
    }

    /// Grants timers: the guest's `timers` imports set and cancel them through `timers`
    /// (see [`theater_core::timers`]). Without it they return an error (replay needs none).
    pub fn with_timers(mut self, timers: theater_core::timers::Timers) -> Self {
        self.timers = Some(timers);
        self.live = None;
        self
    }

    /// Grants read access to `dir`: the guest's `files` imports read files in it (each call
    /// recorded). Without a grant they return an error.
    pub fn with_files(self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.with_file_grant(FileGrant::read_only(dir))
    }

    /// Grants `grant`'s directory, writable if it says so (see
    /// [`theater_core::files::calls`]).
    pub fn with_file_grant(mut self, grant: FileGrant) -> Self {
        self.files = Some(Arc::new(grant));
        self.live = None;
        self
    }

    /// Grants messaging: the guest's `send` and `request` imports go to `outbox` (e.g. a
    /// `theater_msg::Messenger`). Without it they return an error. Replaying a chain that
    /// messaged needs an outbox too, though it is never used to reach anyone.
    pub fn with_outbox(mut self, outbox: Arc<dyn Outbox>) -> Self {
        self.outbox = Some(outbox);
        self.live = None;
        self
    }

    /// Instantiates now (otherwise the first input does): to measure or to fail early.
    pub async fn instantiate(&mut self) -> Result<(), ActorError> {
        self.live().await.map(|_| ())
    }

    async fn live(&mut self) -> Result<&mut Live, ActorError> {
        if self.live.is_none() {
            let engine = &self.host.inner.engine;
            let limit = self
                .limits
                .memory_bytes
                .min(self.host.inner.config.max_memory_bytes);
            let state = HostState::new(
                self.id.clone(),
                limit,
                self.outbox.clone(),
                self.files.clone(),
                self.timers.clone(),
                self.db.clone(),
            );
            let mut store = Store::new(engine, state);
            store.limiter(|s| s);
            let cpu = self.limits.cpu;
            store.epoch_deadline_callback(move |mut ctx| {
                let state = ctx.data_mut();
                if state.ticks_left == 0 {
                    return Err(wasmtime::Error::new(CpuLimit(cpu)));
                }
                state.ticks_left -= 1;
                // Yield so other actors on this thread run while this one computes.
                Ok(UpdateDeadline::Yield(1))
            });
            // Instantiation runs guest code (start functions) too: same budget.
            store.data_mut().ticks_left = self.ticks();
            store.set_epoch_deadline(1);
            let bindings = self
                .component
                .pre
                .instantiate_async(&mut store)
                .await
                .map_err(|e| ActorError::Fatal(format!("instantiation failed: {e:#}")))?;
            self.live = Some(Live { store, bindings });
        }
        self.live
            .as_mut()
            .ok_or_else(|| ActorError::Fatal("no instance".into()))
    }

    fn ticks(&self) -> u64 {
        let tick = self.host.inner.config.epoch_tick.as_nanos().max(1);
        (self.limits.cpu.as_nanos() / tick).max(1) as u64
    }

    /// Moves the recorder into the store and arms the CPU budget.
    fn begin(&mut self, host: &mut HostCalls) {
        let ticks = self.ticks();
        if let Some(live) = &mut self.live {
            let data = live.store.data_mut();
            data.calls = std::mem::take(host);
            data.call_error = None;
            data.last_error_log = None;
            data.ticks_left = ticks;
            live.store.set_epoch_deadline(1);
        }
    }

    /// Takes the recorder back.
    fn end(&mut self, host: &mut HostCalls) {
        if let Some(live) = &mut self.live {
            *host = std::mem::take(&mut live.store.data_mut().calls);
        }
    }

    /// Turns a failed call into an [`ActorError`] and discards the instance.
    fn fail(&mut self, e: wasmtime::Error) -> ActorError {
        let live = self.live.take();
        let (call_error, guest_said) = live
            .map(|mut l| {
                let d = l.store.data_mut();
                (d.call_error.take(), d.last_error_log.take())
            })
            .unwrap_or_default();
        if let Some(ce) = call_error {
            return ActorError::HostCall(ce);
        }
        if let Some(m) = e.downcast_ref::<MemoryLimit>() {
            return ActorError::Limit(m.to_string());
        }
        if let Some(c) = e.downcast_ref::<CpuLimit>() {
            return ActorError::Timeout(c.to_string());
        }
        let trap = match e.downcast_ref::<wasmtime::Trap>() {
            Some(t) => t.to_string(),
            None => format!("{e:#}"),
        };
        match guest_said {
            Some(said) => ActorError::Trap(format!("{trap} ({said})")),
            None => ActorError::Trap(trap),
        }
    }
}

fn parse_json(bytes: &[u8], what: &str) -> Result<Value, ActorError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ActorError::Failed(format!(
            "the actor returned invalid JSON as its {what}: {e}"
        ))
    })
}

#[async_trait]
impl Actor for WasmActor {
    async fn init(&mut self, host: &mut HostCalls) -> Result<Value, ActorError> {
        let params = to_canonical_json(&self.init);
        self.live().await?;
        self.begin(host);
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| ActorError::Fatal("no instance".into()))?;
        let result = live.bindings.call_init(&mut live.store, &params).await;
        self.end(host);
        match result {
            Ok(Ok(state)) => parse_json(&state, "initial state"),
            Ok(Err(message)) => Err(ActorError::Failed(message)),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let payload = input.to_payload();
        let input = bindings::Payload {
            json: to_canonical_json(&payload.json),
            bytes: payload.bytes,
        };
        let state = to_canonical_json(state);
        self.live().await?;
        self.begin(host);
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| ActorError::Fatal("no instance".into()))?;
        let result = live
            .bindings
            .call_handle_input(&mut live.store, &state, &input)
            .await;
        self.end(host);
        match result {
            Ok(Ok((output, next))) => {
                let json = parse_json(&output.json, "output")?;
                let output = ActorOutput::from_payload(&theater_chain::Payload {
                    json,
                    bytes: output.bytes,
                })
                .map_err(|e| ActorError::Failed(e.to_string()))?;
                Ok((output, parse_json(&next, "state")?))
            }
            Ok(Err(message)) => Err(ActorError::Failed(message)),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn reapply(
        &mut self,
        entry: &theater_chain::Entry,
        blobs: &dyn theater_chain::BlobStore,
    ) -> Result<(), String> {
        let n = theater_core::files::calls::reapply(self.files.as_deref(), entry, blobs)?;
        if n > 0 {
            tracing::info!(actor = %self.id, seq = entry.seq(), "applied {n} file writes again");
        }
        if let Some(db) = &self.db
            && theater_core::db::reapply(&**db, entry)?
        {
            tracing::info!(actor = %self.id, seq = entry.seq(), "applied the entry's SQL again");
        }
        Ok(())
    }

    async fn verify_state(&mut self, state: &Value) -> bool {
        let state = to_canonical_json(state);
        if self.live().await.is_err() {
            return false;
        }
        // verify-state must be a pure function of the state: it gets no host calls (any
        // it makes fail, and the state is rejected), so it can neither record nor write.
        let mut host = HostCalls::replaying(Vec::new());
        self.begin(&mut host);
        let Some(live) = self.live.as_mut() else {
            return false;
        };
        let result = live
            .bindings
            .call_verify_state(&mut live.store, &state)
            .await;
        self.end(&mut host);
        match result {
            Ok(ok) => ok,
            Err(e) => {
                let e = self.fail(e);
                tracing::warn!(actor = %self.id, "verify-state failed, rejecting the state: {e}");
                false
            }
        }
    }
}
