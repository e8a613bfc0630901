//! [`WasmActor`]: an [`Actor`] whose code is a component.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use theater_chain::{ChainError, ChainStore};
use theater_chain::{ChainId, Hash, to_canonical_json};
use theater_core::{
    Actor, ActorError, ActorInput, ActorOutput, HostCalls, Patch, State, StateChange,
};
use wasmtime::{Store, UpdateDeadline};

use crate::Limits;
use crate::bindings;
use crate::capability::{Grant, Grants};
use crate::engine::{ActorComponent, Pre, WasmHost};
use crate::host::{CpuLimit, HostState, MemoryLimit};

struct Live {
    store: Store<HostState>,
    exports: Exports,
}

enum Exports {
    /// World `actor`: `actor-split`'s exports, and `handle-verified` if the component has it.
    Current(bindings::ActorSplit, Option<bindings::HandleVerified>),
    V1(bindings::v1::ActorV1),
}

/// What the live instance's own copy of the state is (world `actor`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Held {
    /// Unknown: the next input loads the state first.
    Nothing,
    /// The state with this hash.
    State(Hash),
    /// The state the host gets by applying the change the guest just reported (checked,
    /// and then known by its hash, when the host verifies it).
    Changed,
}

/// An actor running a wasm component. Keeps one instance between inputs; after a trap or
/// an interrupted input the instance is discarded and the next input gets a fresh one.
///
/// A component of world `actor` also keeps its state between inputs: the host sends it the
/// whole state only when its copy is not the one expected, and applies the change each
/// input reports. One of about [`Limits::audit_every`] changes is checked against the
/// guest's whole copy. A component of world `actor-v1` gets and returns the whole state on
/// every input.
pub struct WasmActor {
    host: WasmHost,
    component: ActorComponent,
    id: String,
    init: Value,
    limits: Limits,
    grants: Grants,
    live: Option<Live>,
    held: Held,
    /// Whether the change the guest just reported is to be audited.
    audit_next: bool,
    /// What `verify` said of the state the guest's last change left, when `handle-verified`
    /// asked it already (that state is the one [`Held::Changed`] stands for).
    verified: Option<bool>,
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
            grants: Grants::default(),
            live: None,
            held: Held::Nothing,
            audit_next: false,
            verified: None,
        }
    }

    /// Grants capability `name` to the actor: its host functions find `grant` (see
    /// [`crate::capability`]). Without a grant they answer an error, recorded like any
    /// answer.
    pub fn with_grant<G: Grant>(mut self, name: &'static str, grant: Arc<G>) -> Self {
        self.grants.insert(name, grant);
        self.live = None;
        self
    }

    /// Grants everything in `grants` (what [`crate::Capabilities::grants`] made from a
    /// manifest), replacing earlier grants.
    pub fn with_grants(mut self, grants: Grants) -> Self {
        self.grants = grants;
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
            let state = HostState::new(self.id.clone(), limit, self.grants.clone());
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
            let fatal =
                |e: wasmtime::Error| ActorError::Fatal(format!("instantiation failed: {e:#}"));
            let exports = match &self.component.pre {
                Pre::Current {
                    pre,
                    indices,
                    handle_verified,
                } => {
                    let instance = pre.instantiate_async(&mut store).await.map_err(fatal)?;
                    let exports = indices.load(&mut store, &instance).map_err(fatal)?;
                    // An export of that name but another type is not world `actor`'s: the
                    // component runs with two calls, as one without it does.
                    let handle_verified = handle_verified.as_ref().and_then(|index| {
                        instance
                            .get_typed_func(&mut store, index)
                            .inspect_err(|e| {
                                tracing::warn!(
                                    actor = %self.id,
                                    "the component's `{}` export is not the one world `actor` \
                                     defines, so it is not called: {e:#}",
                                    bindings::HANDLE_VERIFIED
                                );
                            })
                            .ok()
                    });
                    Exports::Current(exports, handle_verified)
                }
                Pre::V1(pre) => {
                    Exports::V1(pre.instantiate_async(&mut store).await.map_err(fatal)?)
                }
            };
            self.held = Held::Nothing;
            self.verified = None;
            self.live = Some(Live { store, exports });
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
        self.held = Held::Nothing;
        self.verified = None;
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
        let trap = match guest_said {
            Some(said) => format!("{trap} ({said})"),
            None => trap,
        };
        if self.limits.crash_on_trap {
            return ActorError::Fatal(format!("trap: {trap}"));
        }
        ActorError::Trap(trap)
    }
}

fn parse_json(bytes: &[u8], what: &str) -> Result<Value, ActorError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ActorError::Failed(format!(
            "the actor returned invalid JSON as its {what}: {e}"
        ))
    })
}

fn output_of(mut payload: bindings::Payload) -> Result<ActorOutput, ActorError> {
    if let Some(output) = ActorOutput::from_json_text(&payload.json, &mut payload.bytes) {
        return Ok(output);
    }
    // Not an output: the slow path says why.
    let json = parse_json(&payload.json, "output")?;
    ActorOutput::from_payload(&theater_chain::Payload {
        json,
        bytes: payload.bytes,
    })
    .map_err(|e| ActorError::Failed(e.to_string()))
}

/// Whether the input `input` (canonical JSON) to the state `state` is audited: about one in
/// `every`, chosen by both so that live runs and replays audit the same inputs.
fn audited(state: Hash, input: &[u8], every: u32) -> bool {
    if every == 0 {
        return false;
    }
    if every == 1 {
        return true;
    }
    let mut key = Vec::with_capacity(32 + input.len());
    key.extend_from_slice(state.as_bytes());
    key.extend_from_slice(input);
    let b = *Hash::digest(&key).as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]]).is_multiple_of(every)
}

impl WasmActor {
    /// Sends the guest `state` unless its copy is that state already (world `actor`).
    async fn load(&mut self, state: &State) -> Result<(), ActorError> {
        if self.held == Held::State(state.hash()) {
            return Ok(());
        }
        self.live().await?;
        let bytes = to_canonical_json(state.value());
        let mut host = HostCalls::replaying(Vec::new());
        self.begin(&mut host);
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| ActorError::Fatal("no instance".into()))?;
        let Exports::Current(exports, _) = &live.exports else {
            return Ok(());
        };
        let result = exports.call_load_state(&mut live.store, &bytes).await;
        self.end(&mut host);
        match result {
            Ok(Ok(())) => {
                self.held = Held::State(state.hash());
                Ok(())
            }
            Ok(Err(message)) => {
                // What the guest holds now is unknown.
                self.held = Held::Nothing;
                Err(ActorError::Failed(format!(
                    "the actor could not load its state: {message}"
                )))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The guest's own copy of its state (world `actor`).
    async fn guest_state(&mut self) -> Result<Value, ActorError> {
        let mut host = HostCalls::replaying(Vec::new());
        self.begin(&mut host);
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| ActorError::Fatal("no instance".into()))?;
        let Exports::Current(exports, _) = &live.exports else {
            return Err(ActorError::Fatal("not a world `actor` instance".into()));
        };
        let result = exports.call_state(&mut live.store).await;
        self.end(&mut host);
        match result {
            Ok(bytes) => parse_json(&bytes, "state"),
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn handle_v1(
        &mut self,
        input: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        let payload = input.to_payload();
        let input = bindings::v1::Payload {
            json: to_canonical_json(&payload.json),
            bytes: payload.bytes,
        };
        let state = to_canonical_json(state);
        self.begin(host);
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| ActorError::Fatal("no instance".into()))?;
        let Exports::V1(exports) = &live.exports else {
            return Err(ActorError::Fatal("not a world `actor-v1` instance".into()));
        };
        let result = exports
            .call_handle_input(&mut live.store, &state, &input)
            .await;
        self.end(host);
        match result {
            Ok(Ok((output, next))) => {
                let output = output_of(bindings::Payload {
                    json: output.json,
                    bytes: output.bytes,
                })?;
                Ok((output, parse_json(&next, "state")?))
            }
            Ok(Err(message)) => Err(ActorError::Failed(message)),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn is_v1(&self) -> bool {
        matches!(self.component.pre, Pre::V1(_))
    }
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
        self.verified = None;
        let result = match &live.exports {
            Exports::Current(e, _) => e.call_init(&mut live.store, &params).await,
            Exports::V1(e) => e.call_init(&mut live.store, &params).await,
        };
        self.end(host);
        match result {
            Ok(Ok(state)) => {
                // The guest keeps what it returned.
                self.held = Held::Changed;
                parse_json(&state, "initial state")
            }
            Ok(Err(message)) => Err(ActorError::Failed(message)),
            Err(e) => Err(self.fail(e)),
        }
    }

    /// The whole next state (for callers that want it; the runtime uses
    /// [`Actor::handle_change`]).
    async fn handle_input(
        &mut self,
        input: &ActorInput,
        state: &Value,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, Value), ActorError> {
        self.live().await?;
        if self.is_v1() {
            return self.handle_v1(input, state, host).await;
        }
        let mut state = State::new(state.clone());
        let (output, change) = self.handle_change(input, &state, host).await?;
        let applied = match change {
            StateChange::Patch(p) => state
                .apply(&p)
                .map(drop)
                .map_err(|e| ActorError::Failed(format!("the actor's change does not apply: {e}"))),
            StateChange::Replaced(v) => {
                let _ = state.replace(v);
                Ok(())
            }
            _ => Ok(()),
        };
        applied?;
        self.held = Held::Nothing;
        Ok((output, state.into_value()))
    }

    async fn handle_change(
        &mut self,
        input: &ActorInput,
        state: &State,
        host: &mut HostCalls,
    ) -> Result<(ActorOutput, StateChange), ActorError> {
        self.live().await?;
        if self.is_v1() {
            // The whole state both ways; only what differs is rehashed.
            let (output, next) = self.handle_v1(input, state.value(), host).await?;
            let patch = Patch::diff(state.value(), &next);
            let change = if patch.is_empty() {
                StateChange::Unchanged
            } else {
                StateChange::Patch(patch)
            };
            return Ok((output, change));
        }
        self.load(state).await?;
        let payload = input.to_payload();
        let input = bindings::Payload {
            json: to_canonical_json(&payload.json),
            bytes: payload.bytes,
        };
        let audit = audited(state.hash(), &input.json, self.limits.audit_every);
        self.audit_next = false;
        self.verified = None;
        self.begin(host);
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| ActorError::Fatal("no instance".into()))?;
        let (result, verified) = match &live.exports {
            Exports::Current(_, Some(handle_verified)) => {
                match handle_verified.call_async(&mut live.store, (input,)).await {
                    Ok((Ok((output, change, ok)),)) => (Ok(Ok((output, change))), Some(ok)),
                    Ok((Err(message),)) => (Ok(Err(message)), None),
                    Err(e) => (Err(e), None),
                }
            }
            Exports::Current(exports, None) => {
                (exports.call_handle(&mut live.store, &input).await, None)
            }
            Exports::V1(_) => {
                return Err(ActorError::Fatal("not a world `actor` instance".into()));
            }
        };
        self.end(host);
        match result {
            Ok(Ok((output, change))) => {
                let output = output_of(output);
                // An empty patch says the same as `unchanged`.
                let change = match change {
                    bindings::StateChange::Patch(bytes) if bytes.trim_ascii() == b"[]" => {
                        bindings::StateChange::Unchanged
                    }
                    change => change,
                };
                let change = match change {
                    bindings::StateChange::Unchanged if audit => {
                        // Its copy must still be `state`.
                        match self.guest_state().await? == *state.value() {
                            true => Ok(StateChange::Unchanged),
                            false => Err(ActorError::Failed(
                                "the actor reported no change, but its own state changed".into(),
                            )),
                        }
                    }
                    bindings::StateChange::Unchanged => Ok(StateChange::Unchanged),
                    bindings::StateChange::Patch(bytes) => {
                        self.held = Held::Changed;
                        self.audit_next = audit;
                        self.verified = verified;
                        Patch::from_slice(&bytes)
                            .map(StateChange::Patch)
                            .map_err(|e| {
                                ActorError::Failed(format!(
                                    "the actor's change is not a valid JSON Patch: {e}"
                                ))
                            })
                    }
                    bindings::StateChange::Replaced(bytes) => {
                        self.held = Held::Changed;
                        self.audit_next = audit;
                        self.verified = verified;
                        parse_json(&bytes, "state").map(StateChange::Replaced)
                    }
                };
                if output.is_err() || change.is_err() {
                    // The guest's copy may have moved: send it the state again next time.
                    self.held = Held::Nothing;
                }
                Ok((output?, change?))
            }
            Ok(Err(message)) => {
                // The guest should have kept its copy; do not rely on it.
                self.held = Held::Nothing;
                Err(ActorError::Failed(message))
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    async fn reapply(
        &mut self,
        entry: &theater_chain::Entry,
        blobs: &dyn theater_chain::BlobStore,
    ) -> Result<(), String> {
        for (name, grant) in self.grants.iter() {
            grant.reapply(entry, blobs).await.inspect_err(|e| {
                tracing::error!(actor = %self.id, seq = entry.seq(), "[interfaces.{name}]: {e}");
            })?;
        }
        Ok(())
    }

    fn snapshot_host(&self, chain: &dyn ChainStore) -> Result<Value, ChainError> {
        crate::capability::snapshot_host(&self.grants, chain)
    }

    fn code(&self) -> Option<Hash> {
        Some(self.component.hash())
    }

    async fn switch_code(&mut self, code: Hash) -> Result<(), ActorError> {
        if self.component.hash() == code {
            return Ok(());
        }
        let component = self.host.component(&code).map_err(ActorError::Failed)?;
        self.component = component;
        // A fresh instance of the new code, which loads the state at its first call.
        self.live = None;
        self.held = Held::Nothing;
        self.audit_next = false;
        self.verified = None;
        Ok(())
    }

    async fn verify_state(&mut self, state: &State) -> Result<(), ActorError> {
        match self.verify(state).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ActorError::Failed("the actor's verify said no".into())),
            Err(e) => {
                tracing::warn!(actor = %self.id, "rejecting the state: {e}");
                Err(e)
            }
        }
    }
}

impl WasmActor {
    async fn verify(&mut self, state: &State) -> Result<bool, ActorError> {
        self.live().await?;
        let hash = state.hash();
        if !self.is_v1() {
            if self.held == Held::Changed {
                // The guest reported a change (or returned its initial state): its copy must
                // now be `state`. Checked for about one input in `audit_every`.
                self.held = Held::Nothing;
                if std::mem::take(&mut self.audit_next)
                    && self.guest_state().await? != *state.value()
                {
                    return Err(ActorError::Failed(
                        "the actor's own state is not the state its reported change gives".into(),
                    ));
                }
                self.held = Held::State(hash);
                // `handle-verified` asked `verify` of this state already.
                match self.verified.take() {
                    Some(true) => return Ok(true),
                    Some(false) => {
                        self.held = Held::Nothing;
                        return Ok(false);
                    }
                    None => {}
                }
            } else {
                self.load(state).await?;
            }
        }
        // verify must be a pure function of the state: here it gets no host calls (any it
        // makes fail, and the state is rejected), so it can neither record nor write. (Inside
        // `handle-verified` the host cannot tell verify's calls from handle's: they are
        // recorded as the input's, and the two share the input's CPU budget.)
        let v1_state = self.is_v1().then(|| to_canonical_json(state.value()));
        let mut host = HostCalls::replaying(Vec::new());
        self.begin(&mut host);
        let live = self
            .live
            .as_mut()
            .ok_or_else(|| ActorError::Fatal("no instance".into()))?;
        let result = match (&live.exports, &v1_state) {
            (Exports::Current(e, _), _) => e.call_verify(&mut live.store).await,
            (Exports::V1(e), Some(bytes)) => e.call_verify_state(&mut live.store, bytes).await,
            (Exports::V1(_), None) => Ok(false),
        };
        self.end(&mut host);
        match result {
            Ok(true) => Ok(true),
            Ok(false) => {
                // A rejected state is not adopted: the guest's copy is not the host's.
                self.held = Held::Nothing;
                Ok(false)
            }
            Err(e) => Err(self.fail(e)),
        }
    }
}
